//! OpenAI's file API (`/openai/v1/files…`) over the same file store, so the
//! official SDKs upload training data (`purpose: fine-tune`) and read what
//! the server made. Ids are `file-N`, N the file's id on the other surfaces.

use axum::extract::{Multipart, Path, State};
use axum::response::{IntoResponse, Response};
use maximin_core::store::FileRecord;
use maximin_core::Error;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::ctx::{ApiQuery, Ctx, Param, QueryParams};
use crate::error::ApiError;
use crate::routes::files::{content, read_upload};
use crate::AppState;

/// A file as OpenAI's `file` object.
pub(crate) fn openai_file(f: &FileRecord) -> Value {
    json!({
        "id": format!("file-{}", f.id),
        "object": "file",
        "bytes": f.bytes,
        "created_at": f.created_at.unix_timestamp(),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": Value::Null,
        "expires_at": f.expires_at.map(|t| t.unix_timestamp()),
    })
}

/// `file-N` (or `N`); anything else names no file.
fn file_id(s: &str) -> Result<i64, ApiError> {
    s.strip_prefix("file-")
        .unwrap_or(s)
        .parse()
        .map_err(|_| Error::not_found("file", s).with("field", "file_id").into())
}

#[utoipa::path(post, path = "/openai/v1/files", tag = "openai", security(("bearer" = [])),
    request_body(content = crate::openapi::FileUploadForm, content_type = "multipart/form-data", description = "`purpose` (e.g. `fine-tune`) and `file`"),
    responses((status = 200, description = "The `file` object", body = Object),
              (status = 413, description = "The file is over 512 MB, or the account's quota is used up")))]
pub async fn openai_create_file(
    State(app): State<AppState>,
    ctx: Ctx,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let rec = read_upload(&app, &ctx, multipart).await?;
    Ok(axum::Json(openai_file(&rec)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct FileListQuery {
    /// Only files of this purpose.
    pub purpose: Option<String>,
    /// The last id of the previous page.
    pub after: Option<String>,
    /// At most this many (default 10000).
    pub limit: Option<i64>,
    /// `asc` or `desc` (default) by creation.
    pub order: Option<String>,
}

impl QueryParams for FileListQuery {
    const PARAMS: &'static [Param] = &[
        Param::text("purpose"),
        Param::text("after"),
        Param::int("limit", 1, 10_000),
        Param::text("order"),
    ];
}

#[utoipa::path(get, path = "/openai/v1/files", tag = "openai", security(("bearer" = [])),
    params(FileListQuery),
    responses((status = 200, description = "A list of `file` objects", body = Object)))]
pub async fn openai_list_files(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<FileListQuery>,
) -> Result<Response, ApiError> {
    let purpose = q.purpose.as_deref().filter(|p| !p.is_empty());
    let mut list = app
        .platform
        .files
        .list(&ctx.caller.account.id, purpose)
        .await?;
    list.sort_by_key(|f| (f.created_at, f.id));
    match q.order.as_deref() {
        None | Some("desc") => list.reverse(),
        Some("asc") => {}
        Some(_) => return Err(Error::invalid("order", "'order' is 'asc' or 'desc'.").into()),
    }
    let start = match q.after.as_deref() {
        Some(a) => {
            let id = file_id(a)?;
            list.iter().position(|f| f.id == id).map_or(0, |i| i + 1)
        }
        None => 0,
    };
    let rest = &list[start.min(list.len())..];
    let n = (q.limit.unwrap_or(10_000).max(1) as usize).min(rest.len());
    let data: Vec<Value> = rest[..n].iter().map(openai_file).collect();
    Ok(
        axum::Json(json!({"object": "list", "data": data, "has_more": rest.len() > n}))
            .into_response(),
    )
}

#[utoipa::path(get, path = "/openai/v1/files/{id}", tag = "openai", security(("bearer" = [])),
    params(("id" = String, Path, description = "The file (`file-N`)")),
    responses((status = 200, description = "The `file` object", body = Object), (status = 404, description = "Not found")))]
pub async fn openai_get_file(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let f = app
        .platform
        .files
        .get(&ctx.caller.account.id, file_id(&id)?)
        .await?;
    Ok(axum::Json(openai_file(&f)).into_response())
}

#[utoipa::path(delete, path = "/openai/v1/files/{id}", tag = "openai", security(("bearer" = [])),
    params(("id" = String, Path, description = "The file (`file-N`)")),
    responses((status = 200, description = "`{id, object: file, deleted: true}`", body = Object), (status = 404, description = "Not found")))]
pub async fn openai_delete_file(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let f = app
        .platform
        .files
        .delete(&ctx.caller.account.id, file_id(&id)?)
        .await?;
    Ok(
        axum::Json(json!({"id": format!("file-{}", f.id), "object": "file", "deleted": true}))
            .into_response(),
    )
}

#[utoipa::path(get, path = "/openai/v1/files/{id}/content", tag = "openai", security(("bearer" = [])),
    params(("id" = String, Path, description = "The file (`file-N`)")),
    responses((status = 200, description = "The file's bytes", content(("application/octet-stream"), ("application/jsonl"), ("text/plain"))),
              (status = 404, description = "Not found")))]
pub async fn openai_file_content(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let f = app
        .platform
        .files
        .get(&ctx.caller.account.id, file_id(&id)?)
        .await?;
    content(&app.platform, f).await
}
