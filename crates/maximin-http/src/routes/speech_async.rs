//! Long text to speech as a durable task (spec §4): `POST /v1/t2a_async_v2`
//! queues it, `GET /v1/query/t2a_async_query_v2` reports it, and the output
//! is a file (a tar of the audio, a subtitle file with sentence timestamps
//! and an extra-info file per input) fetched through the file API.
//!
//! The text comes from `text`, or a `t2a_async_input` file (plain text, or a
//! zip of text and JSON files) read here; `maximin_speech::task` checks and
//! queues it, and its handler speaks it.

use std::io::Read;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maximin_core::store::TaskStatus;
use maximin_core::Error;
use maximin_speech::task::{self, Input};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ctx::{ApiQuery, Ctx, Param, QueryParams, UsageReport};
use crate::error::ApiError;
use crate::routes::files::opt_id_from_json;
use crate::AppState;

/// Largest text input file read (a million characters of UTF-8).
const MAX_INPUT_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Deserialize)]
struct Ids {
    #[serde(default, deserialize_with = "opt_id_from_json")]
    text_file_id: Option<i64>,
}

fn invalid(field: &str, msg: impl Into<String>) -> ApiError {
    Error::invalid(field, msg).into()
}

/// The texts of a `t2a_async_input` file: a text file, or a zip of text
/// files and JSON files (`title`, `content`, `extra`: each non-empty key is
/// its own input).
fn inputs_of(kind: &str, bytes: Vec<u8>) -> Result<Vec<Input>, ApiError> {
    let text_of = |b: Vec<u8>, what: &str| {
        String::from_utf8(b)
            .map_err(|_| invalid("text_file_id", format!("{what} is not UTF-8 text.")))
    };
    match kind {
        "txt" => Ok(vec![Input {
            name: "speech".into(),
            text: text_of(bytes, "The file")?,
        }]),
        "zip" => {
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
                .map_err(|e| invalid("text_file_id", format!("The zip cannot be read: {e}")))?;
            let mut inputs = Vec::new();
            let mut total = 0u64;
            for i in 0..zip.len() {
                let mut entry = zip
                    .by_index(i)
                    .map_err(|e| invalid("text_file_id", format!("The zip cannot be read: {e}")))?;
                if entry.is_dir() {
                    continue;
                }
                let name = entry.name().to_owned();
                total += entry.size();
                if total > MAX_INPUT_BYTES {
                    return Err(invalid("text_file_id", "The zip's files are too large."));
                }
                let mut data = Vec::new();
                entry
                    .by_ref()
                    .take(MAX_INPUT_BYTES)
                    .read_to_end(&mut data)
                    .map_err(|e| invalid("text_file_id", format!("The zip cannot be read: {e}")))?;
                let stem = name
                    .rsplit('/')
                    .next()
                    .unwrap_or(&name)
                    .rsplit_once('.')
                    .map(|(s, _)| s.to_owned())
                    .unwrap_or_else(|| name.clone());
                let stem: String = stem
                    .chars()
                    .map(|c| {
                        if c.is_alphanumeric() || c == '-' || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                if name.ends_with(".json") {
                    let v: Value = serde_json::from_slice(&data).map_err(|e| {
                        invalid(
                            "text_file_id",
                            format!("{name} in the zip is not JSON: {e}"),
                        )
                    })?;
                    for key in ["title", "content", "extra"] {
                        if let Some(t) = v
                            .get(key)
                            .and_then(Value::as_str)
                            .filter(|t| !t.trim().is_empty())
                        {
                            inputs.push(Input {
                                name: format!("{stem}.{key}"),
                                text: t.to_owned(),
                            });
                        }
                    }
                } else if name.ends_with(".txt") {
                    inputs.push(Input {
                        name: stem,
                        text: text_of(data, &name)?,
                    });
                } else {
                    return Err(invalid(
                        "text_file_id",
                        format!("{name}: a zip may hold only .txt or .json files."),
                    ));
                }
            }
            let kinds: std::collections::HashSet<bool> = (0..zip.len())
                .filter_map(|i| zip.name_for_index(i).map(|n| n.ends_with(".json")))
                .collect();
            if kinds.len() > 1 {
                return Err(invalid(
                    "text_file_id",
                    "A zip must hold files of one type: all .txt or all .json.",
                ));
            }
            Ok(inputs)
        }
        other => Err(invalid(
            "text_file_id",
            format!("The file is '{other}'; async speech reads txt or zip files."),
        )),
    }
}

#[utoipa::path(post, path = "/v1/t2a_async_v2", tag = "speech", security(("bearer" = [])),
    request_body = crate::openapi::T2aAsyncRequest,
    responses((status = 200, description = "The task, queued; its output file is reserved. A `base_resp.status_code` of 1042: more than 10% illegal characters.", body = crate::openapi::T2aAsyncResponse),
              (status = 402), (status = 404, description = "`not_found` / `model_not_found`: no such `text_file_id` or model"), (status = 503)))]
pub async fn t2a_async_v2(
    State(app): State<AppState>,
    ctx: Ctx,
    crate::ctx::ApiJson(body): crate::ctx::ApiJson<Value>,
) -> Result<Response, ApiError> {
    let p = &app.platform;
    let account = &ctx.caller.account.id;
    let ids: Ids = serde_json::from_value(body.clone()).map_err(|e| {
        invalid(
            "text_file_id",
            format!("'text_file_id' must be an integer id: {e}"),
        )
    })?;
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let req = task::t2a_request(&body)?;
    let inputs = match (text, ids.text_file_id) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "text_file_id",
                "Send 'text' or 'text_file_id', not both.",
            ))
        }
        (None, None) => return Err(invalid("text", "'text' or 'text_file_id' is required.")),
        (Some(t), None) => vec![Input {
            name: "speech".into(),
            text: t.to_owned(),
        }],
        (None, Some(id)) => {
            let f = p.files.get(account, id).await?;
            if f.purpose != "t2a_async_input" {
                return Err(invalid(
                    "text_file_id",
                    format!(
                        "File {id} has purpose '{}'; upload text with purpose 't2a_async_input'.",
                        f.purpose
                    ),
                ));
            }
            let bytes = p.files.read_all(&f, MAX_INPUT_BYTES).await?;
            inputs_of(&f.kind, bytes)?
        }
    };
    let created = task::create(p, &ctx.caller, body, &req, inputs).await?;
    let body = json!({
        "task_id": created.task_id,
        "task_token": created.task_token,
        "file_id": created.file_id,
        "usage_characters": created.usage_characters,
        "base_resp": {"status_code": 0, "status_msg": "success"},
    });
    let mut resp = axum::Json(body).into_response();
    resp.extensions_mut().insert(UsageReport::characters(
        created.model,
        created.usage_characters,
    ));
    Ok(resp)
}

/// `?task_id=` of the query.
#[derive(Deserialize)]
pub struct TaskQuery {
    task_id: i64,
}

impl QueryParams for TaskQuery {
    const PARAMS: &'static [Param] = &[Param::id("task_id")];
}

#[utoipa::path(get, path = "/v1/query/t2a_async_query_v2", tag = "speech", security(("bearer" = [])),
    params(("task_id" = i64, Query, description = "From t2a_async_v2")),
    responses((status = 200, description = "The task's status; `extra_info` on success, `error` on failure", body = crate::openapi::T2aAsyncQueryResponse),
              (status = 404, description = "`not_found`: no such task on this account")))]
pub async fn query_t2a_async(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> Result<Response, ApiError> {
    let id = q.task_id;
    let p = &app.platform;
    let task = p.tasks.get(&ctx.caller.account.id, id).await?;
    let mut body = json!({
        "task_id": task.id,
        "file_id": task.file_id,
        "base_resp": {"status_code": 0, "status_msg": "success"},
    });
    body["status"] = json!(match task.status {
        TaskStatus::Queued | TaskStatus::Processing => "Processing",
        TaskStatus::Failed => "Failed",
        TaskStatus::Success => {
            let present = match task.file_id {
                Some(f) => p.files.get(&ctx.caller.account.id, f).await.is_ok(),
                None => false,
            };
            if present {
                "Success"
            } else {
                "Expired"
            }
        }
    });
    match task.status {
        TaskStatus::Success => {
            if let Some(r) = task
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
            {
                body["extra_info"] = r;
            }
        }
        TaskStatus::Failed => {
            body["error"] = json!({
                "code": task.error_code,
                "message": task.error_message,
            });
        }
        _ => {}
    }
    Ok(axum::Json(body).into_response())
}
