//! The MiniMax file API (spec §10): upload, list, retrieve (with a signed
//! download link), retrieve content, delete; and the signed download itself.
//!
//! Uploads stream from the multipart body into the file store, sealed as
//! they arrive; downloads stream back out, opened as they leave. Neither is
//! ever held whole in memory.

use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maximin_core::files::{self, FileReader};
use maximin_core::store::FileRecord;
use maximin_core::{Error, Platform};
use maximin_types::ErrorCode;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use crate::ctx::{ApiJson, ApiQuery, Ctx, Param, QueryParams};
use crate::error::ApiError;
use crate::AppState;

/// The file object of the native API.
pub(crate) fn file_object(f: &FileRecord) -> Value {
    json!({
        "file_id": f.id,
        "bytes": f.bytes,
        "created_at": f.created_at.unix_timestamp(),
        "filename": f.filename,
        "purpose": f.purpose,
    })
}

fn success(body: Value) -> Response {
    let mut body = body;
    body["base_resp"] = json!({"status_code": 0, "status_msg": "success"});
    axum::Json(body).into_response()
}

/// The base URL clients reach this server at: `public_url` when configured,
/// else the request's own scheme and host.
pub(crate) fn base_url(app: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &app.public_url {
        return u.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{proto}://{host}")
}

/// A file id from a query string: digits.
/// `?purpose=` of the list.
#[derive(Deserialize)]
pub struct ListQuery {
    purpose: Option<String>,
}

impl QueryParams for ListQuery {
    const PARAMS: &'static [Param] = &[Param::text("purpose")];
}

/// `?file_id=` of retrieve and retrieve_content.
#[derive(Deserialize)]
pub struct FileIdQuery {
    file_id: i64,
}

impl QueryParams for FileIdQuery {
    const PARAMS: &'static [Param] = &[Param::id("file_id")];
}

/// The signed part of a download link.
#[derive(Deserialize)]
pub struct LinkQuery {
    expires: i64,
    #[serde(default)]
    signature: String,
}

impl QueryParams for LinkQuery {
    const PARAMS: &'static [Param] = &[
        Param::int("expires", 0, i64::MAX).required(),
        Param::text("signature"),
    ];
}

/// An id in a JSON body: a number or a string of digits (spec §11).
pub(crate) fn id_from_json<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        N(i64),
        S(String),
    }
    match Id::deserialize(d)? {
        Id::N(n) => Ok(n),
        Id::S(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom("expected an integer id")),
    }
}

pub(crate) fn opt_id_from_json<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "id_from_json")] i64);
    Option::<W>::deserialize(d).map(|o| o.map(|w| w.0))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::new(ErrorCode::PayloadTooLarge, e.body_text())
            .with("field", "file")
            .into();
    }
    Error::invalid(
        "file",
        format!("The multipart body could not be read: {}", e.body_text()),
    )
    .into()
}

#[utoipa::path(post, path = "/v1/files/upload", tag = "files", security(("bearer" = [])),
    request_body(content = crate::openapi::FileUploadForm, content_type = "multipart/form-data", description = "`purpose` and `file`. The content decides the kind (checked against the purpose); at most 512 MB"),
    responses((status = 200, description = "The stored file", body = crate::openapi::FileResponse),
              (status = 413, description = "`payload_too_large`: the file is over 512 MB, or the account's quota is used up")))]
pub async fn upload_file(
    State(app): State<AppState>,
    ctx: Ctx,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let rec = read_upload(&app, &ctx, multipart).await?;
    Ok(success(json!({ "file": file_object(&rec) })))
}

/// A multipart upload (`purpose` and `file` parts) streamed into the store.
pub(crate) async fn read_upload(
    app: &AppState,
    ctx: &Ctx,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<FileRecord, ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::from(Error::invalid(
            "Content-Type",
            format!(
                "The body must be multipart/form-data with 'purpose' and 'file' parts: {}",
                e.body_text()
            ),
        ))
    })?;
    let files = &app.platform.files;
    let mut purpose: Option<String> = None;
    let mut upload = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("purpose") => {
                let p = field.text().await.map_err(multipart_error)?;
                let p = p.trim().to_owned();
                files::upload_kinds(&p)?;
                purpose = Some(p);
            }
            Some("file") => {
                if upload.is_some() {
                    return Err(Error::invalid("file", "Send one 'file' part.").into());
                }
                let name = field.file_name().unwrap_or("file").to_owned();
                let mut up = files.upload(&ctx.caller.account.id, &name).await?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    up.write(&chunk).await?;
                }
                upload = Some(up);
            }
            _ => {}
        }
    }
    let purpose = purpose.ok_or_else(|| Error::invalid("purpose", "'purpose' is required."))?;
    let upload = upload.ok_or_else(|| Error::invalid("file", "'file' is required."))?;
    Ok(upload.finish(files, &purpose).await?)
}

/// The file object of seed 002's envelope: the native one with `id` and
/// `kind`, and a signed `download_url` when asked.
fn platform_file(f: &FileRecord) -> Value {
    let mut obj = file_object(f);
    obj["id"] = json!(f.id);
    obj["kind"] = json!(f.kind);
    obj["object"] = json!("file");
    obj
}

#[utoipa::path(post, path = "/v1/files", tag = "files", security(("bearer" = [])),
    request_body(content = crate::openapi::FileUploadForm, content_type = "multipart/form-data", description = "`purpose` and `file`, as `/v1/files/upload` takes them"),
    responses((status = 201, description = "`data` is the stored file", body = Object),
              (status = 413, description = "`payload_too_large`: the file is over 512 MB, or the account's quota is used up", body = crate::openapi::ErrorResponse)))]
pub async fn create_file(
    State(app): State<AppState>,
    ctx: Ctx,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let rec = read_upload(&app, &ctx, multipart).await?;
    Ok(ctx.created(platform_file(&rec)))
}

#[utoipa::path(get, path = "/v1/files/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The file")),
    responses((status = 200, description = "`data` is the file with `download_url`, a link that works without a key for 9 hours", body = Object),
              (status = 404, description = "`not_found`: no such file on this account", body = crate::openapi::ErrorResponse)))]
pub async fn get_file(
    State(app): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| Error::invalid("id", "The file id must be an integer."))?;
    let files = &app.platform.files;
    let f = files.get(&ctx.caller.account.id, id).await?;
    let mut obj = platform_file(&f);
    obj["download_url"] = json!(files.link(&base_url(&app, &headers), &f, files::LINK_TTL));
    Ok(ctx.ok(obj))
}

#[utoipa::path(get, path = "/v1/files/list", tag = "files", security(("bearer" = [])),
    params(("purpose" = Option<String>, Query, description = "Only files of this purpose (an upload purpose, t2a_async or t2a_output)")),
    responses((status = 200, description = "The account's files", body = crate::openapi::FileListResponse)))]
pub async fn list_files(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let purpose = q.purpose.as_deref().filter(|p| !p.is_empty());
    if let Some(p) = purpose {
        if files::upload_kinds(p).is_err() && !files::OUTPUT_PURPOSES.contains(&p) {
            return Err(Error::invalid("purpose", format!("Unknown purpose '{p}'.")).into());
        }
    }
    let list = app
        .platform
        .files
        .list(&ctx.caller.account.id, purpose)
        .await?;
    Ok(success(json!({
        "files": list.iter().map(file_object).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(get, path = "/v1/files/retrieve", tag = "files", security(("bearer" = [])),
    params(("file_id" = i64, Query, description = "The file")),
    responses((status = 200, description = "The file with `download_url`, a link that works without a key for 9 hours", body = crate::openapi::FileResponse),
              (status = 404, description = "`not_found`: no such file on this account")))]
pub async fn retrieve_file(
    State(app): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FileIdQuery>,
) -> Result<Response, ApiError> {
    let id = q.file_id;
    let files = &app.platform.files;
    let f = files.get(&ctx.caller.account.id, id).await?;
    let mut obj = file_object(&f);
    obj["download_url"] = json!(files.link(&base_url(&app, &headers), &f, files::LINK_TTL));
    Ok(success(json!({ "file": obj })))
}

#[utoipa::path(get, path = "/v1/files/retrieve_content", tag = "files", security(("bearer" = [])),
    params(("file_id" = i64, Query, description = "The file")),
    responses((status = 200, description = "The file's bytes, with its type, length and name (`Content-Disposition`)",
                   content((Vec<crate::openapi::SubtitleLine> = "application/json"), ("audio/mpeg"), ("audio/wav"), ("audio/flac"), ("audio/ogg"), ("audio/mp4"), ("audio/L16"), ("application/pdf"),
                       ("application/vnd.openxmlformats-officedocument.wordprocessingml.document"), ("application/zip"), ("application/x-tar"), ("application/jsonl"), ("text/plain"), ("image/png"), ("image/jpeg"), ("video/mp4"), ("application/octet-stream"))),
              (status = 404, description = "`not_found`: no such file on this account")))]
pub async fn retrieve_file_content(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<FileIdQuery>,
) -> Result<Response, ApiError> {
    let id = q.file_id;
    let f = app.platform.files.get(&ctx.caller.account.id, id).await?;
    content(&app.platform, f).await
}

/// Streams a file's plaintext with its type, length and name.
pub(crate) async fn content(p: &Platform, f: FileRecord) -> Result<Response, ApiError> {
    let mut reader = p.files.read(&f).await?;
    // Open the first piece before answering, so a file that does not open
    // is an error response rather than a cut-off body.
    let first = reader.next().await?;
    let stream = futures_util::stream::unfold(
        (Some(reader), first),
        |(reader, pending): (Option<FileReader>, Option<Vec<u8>>)| async move {
            if let Some(p) = pending {
                return Some((Ok(bytes::Bytes::from(p)), (reader, None)));
            }
            let mut reader = reader?;
            match reader.next().await {
                Ok(Some(p)) => Some((Ok(bytes::Bytes::from(p)), (Some(reader), None))),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e.message)), (None, None))),
            }
        },
    );
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(files::content_type(&f.kind)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(f.bytes));
    let ascii: String = f
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeleteFileRequest {
    #[serde(deserialize_with = "id_from_json")]
    #[schema(value_type = i64)]
    pub file_id: i64,
    /// Checked against the file's purpose when given.
    #[serde(default)]
    pub purpose: Option<String>,
}

#[utoipa::path(post, path = "/v1/files/delete", tag = "files", security(("bearer" = [])),
    request_body = DeleteFileRequest,
    responses((status = 200, description = "The deleted file's id", body = crate::openapi::FileDeleteResponse),
              (status = 404, description = "`not_found`: no such file on this account")))]
pub async fn delete_file(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<DeleteFileRequest>,
) -> Result<Response, ApiError> {
    let files = &app.platform.files;
    let account = &ctx.caller.account.id;
    if let Some(p) = req.purpose.as_deref().filter(|p| !p.is_empty()) {
        let f = files.get(account, req.file_id).await?;
        if f.purpose != p {
            return Err(Error::invalid(
                "purpose",
                format!("File {} has purpose '{}', not '{p}'.", f.id, f.purpose),
            )
            .into());
        }
    }
    let f = files.delete(account, req.file_id).await?;
    Ok(success(json!({ "file_id": f.id })))
}

/// `GET /v1/files/download/{file_id}?expires=…&signature=…`: a link made by
/// `retrieve` (or a `url` output), good without a key until it expires.
#[utoipa::path(get, path = "/v1/files/download/{file_id}", tag = "files",
    params(("file_id" = i64, Path, description = "The file"),
        ("expires" = i64, Query, description = "Unix seconds the link works until"),
        ("signature" = String, Query, description = "The link's signature")),
    responses((status = 200, description = "The file's bytes; no key needed",
                   content((Vec<crate::openapi::SubtitleLine> = "application/json"), ("audio/mpeg"), ("audio/wav"), ("audio/flac"), ("audio/ogg"), ("audio/mp4"), ("audio/L16"), ("application/pdf"),
                       ("application/vnd.openxmlformats-officedocument.wordprocessingml.document"), ("application/zip"), ("application/x-tar"), ("application/jsonl"), ("text/plain"), ("image/png"), ("image/jpeg"), ("video/mp4"), ("application/octet-stream"))),
              (status = 400, description = "`invalid_request`: the link has no valid `expires`"),
              (status = 403, description = "`permission_denied`: the link is expired or its signature wrong"),
              (status = 404, description = "`not_found`: no such file"),
              (status = 500)))]
pub async fn download_file(
    State(app): State<AppState>,
    Path(id): Path<String>,
    q: Result<ApiQuery<LinkQuery>, ApiError>,
) -> Response {
    let result = async {
        let id: i64 = id.parse().map_err(|_| Error::not_found("file", &id))?;
        let ApiQuery(q) = q.map_err(|e| e.0)?;
        let f = app
            .platform
            .files
            .by_link(id, q.expires, &q.signature)
            .await?;
        content(&app.platform, f).await.map_err(|e| e.0)
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => ApiError(e).into_response(),
    }
}
