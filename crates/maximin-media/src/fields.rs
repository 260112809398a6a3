//! Reading a JSON body's fields with errors that name the field and say
//! what it must be.

use maximin_core::{Error, Result};
use serde_json::Value;

fn present<'a>(body: &'a Value, field: &str) -> Option<&'a Value> {
    body.get(field).filter(|v| !v.is_null())
}

pub fn required_str<'a>(body: &'a Value, field: &str) -> Result<&'a str> {
    match present(body, field) {
        None => Err(Error::invalid(field, format!("'{field}' is required."))),
        Some(Value::String(s)) if s.trim().is_empty() => Err(Error::invalid(
            field,
            format!("'{field}' must not be empty."),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::invalid(
            field,
            format!("'{field}' must be a string."),
        )),
    }
}

pub fn opt_str<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>> {
    match present(body, field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::invalid(
            field,
            format!("'{field}' must be a string."),
        )),
    }
}

pub fn opt_u64(body: &Value, field: &str) -> Result<Option<u64>> {
    match present(body, field) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            Error::invalid(field, format!("'{field}' must be a non-negative integer."))
        }),
    }
}

pub fn opt_bool(body: &Value, field: &str) -> Result<Option<bool>> {
    match present(body, field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Error::invalid(
            field,
            format!("'{field}' must be true or false."),
        )),
    }
}
