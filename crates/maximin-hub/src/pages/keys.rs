//! API keys: the list, creation (the secret shown once), revocation, and
//! each key's usage and activity log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maximin_core::people::Permission;
use maximin_core::{Error, NewKey};
use maximin_types::Scope;
use minijinja::{context, Value};

use crate::page_or_return;
use crate::web::{form_error, see_other, status_of, Hub, Post, Visitor};

/// The scopes a key can be narrowed to, in the order the form shows them.
fn scope_names() -> Vec<&'static str> {
    Scope::names()
}

async fn list_page(hub: &Hub, v: &Visitor, status: StatusCode, extra: Value) -> Response {
    let (_, account) = page_or_return!(hub.allowed(v, Permission::ViewKeys));
    let keys = page_or_return!(hub.or_page(v, hub.platform.list_keys(&account.id).await));
    let models: Vec<String> = hub
        .platform
        .catalog
        .models()
        .iter()
        .map(|m| m.id.clone())
        .collect();
    hub.page_status(
        v,
        status,
        "keys.html",
        context! {
            keys => Value::from_serialize(&keys),
            scopes => scope_names(),
            models,
            ..extra
        },
    )
}

pub async fn list(State(hub): State<Hub>, v: Visitor) -> Response {
    list_page(&hub, &v, StatusCode::OK, context! {}).await
}

/// The form's fields as a new key; a field that does not read is named.
fn new_key(form: &crate::web::Form) -> Result<NewKey, Error> {
    let mut scopes = Vec::new();
    for s in form.all("scopes") {
        scopes.push(
            s.parse::<Scope>()
                .map_err(|e| Error::invalid("scopes", e.to_string()))?,
        );
    }
    let models: Vec<String> = form
        .all("models")
        .into_iter()
        .filter(|m| !m.is_empty())
        .collect();
    let budget = form.get("budget_usd").trim();
    let budget_usd = if budget.is_empty() {
        None
    } else {
        Some(
            budget
                .parse::<f64>()
                .ok()
                .filter(|b| b.is_finite() && *b > 0.0)
                .ok_or_else(|| {
                    Error::invalid(
                        "budget_usd",
                        "The budget is an amount in USD above 0, such as 25 or 7.50.",
                    )
                })?,
        )
    };
    let test = match form.get("mode") {
        "test" => true,
        "live" | "" => false,
        other => {
            return Err(Error::invalid(
                "mode",
                format!("The mode is 'live' or 'test', not '{other}'."),
            ))
        }
    };
    Ok(NewKey {
        name: form.get("name").trim().to_owned(),
        test,
        scopes,
        models,
        regions: Vec::new(),
        pii: None,
        budget_usd,
    })
}

pub async fn create(State(hub): State<Hub>, post: Post) -> Response {
    let v = &post.visitor;
    let (_, account) = page_or_return!(hub.allowed(v, Permission::ManageKeys));
    let created = match new_key(&post.form) {
        Ok(new) => hub.platform.create_key(&account.id, new).await,
        Err(e) => Err(e),
    };
    match created {
        // The one response that holds the secret; pages are never cached.
        Ok(k) => hub.page(
            v,
            "key_created.html",
            context! { key => Value::from_serialize(&k.key), secret => k.secret },
        ),
        Err(e) => {
            let extra = context! {
                name => post.form.get("name"),
                ..form_error(&e)
            };
            list_page(&hub, v, status_of(&e), extra).await
        }
    }
}

pub async fn show(State(hub): State<Hub>, v: Visitor, Path(id): Path<String>) -> Response {
    let (_, account) = page_or_return!(hub.allowed(&v, Permission::ViewKeys));
    let key = match hub.platform.key(Some(&account.id), &id).await {
        Ok(k) => maximin_core::key_view(&k),
        Err(e) => return hub.error(&v, &e),
    };
    let activity = page_or_return!(hub.or_page(
        &v,
        hub.platform.key_activity(Some(&account.id), &id, 100).await
    ));
    hub.page(
        &v,
        "key.html",
        context! {
            key => Value::from_serialize(&key),
            activity => Value::from_serialize(&activity),
        },
    )
}

pub async fn revoke(State(hub): State<Hub>, Path(id): Path<String>, post: Post) -> Response {
    let v = &post.visitor;
    let (_, account) = page_or_return!(hub.allowed(v, Permission::ManageKeys));
    if post.form.get("confirm") != "yes" {
        let e = Error::invalid("confirm", "Tick the box to confirm the revocation.");
        return hub.error(v, &e);
    }
    match hub.platform.revoke_key(Some(&account.id), &id).await {
        Ok(_) => see_other("/hub/keys?done=key_revoked"),
        Err(e) => hub.error(v, &e),
    }
}
