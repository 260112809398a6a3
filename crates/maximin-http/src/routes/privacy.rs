//! The privacy dashboard API (issue 16): `/v1/account/privacy/...`, the
//! account's closure and its support tickets. Admin scope; the hub calls
//! these same routes.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maximin_types::privacy::{
    DebugLoggingRequest, DeleteRequest, ExportRequest, NewTicket, TicketReply,
};

use crate::ctx::{ApiJson, Ctx};
use crate::error::ApiError;
use crate::routes::files::base_url;
use crate::AppState;

/// Every category of data held for the account: count, bytes, the oldest
/// record, how long it is kept, whether the law requires it and whether it
/// can be deleted on request.
#[utoipa::path(get, path = "/v1/account/privacy/categories", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data` is the categories", body = crate::openapi::CategoryListResponse)))]
pub async fn list_privacy_categories(
    State(app): State<AppState>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    Ok(ctx.ok(app.platform.categories(&ctx.caller.account.id).await?))
}

/// The account's privacy action log, oldest first: exports, deletions,
/// debug logging on and off, keys made and revoked, routing and PII
/// changes, closure. Append-only.
#[utoipa::path(get, path = "/v1/account/privacy/log", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data` is the log", body = crate::openapi::PrivacyLogResponse)))]
pub async fn get_privacy_log(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(ctx.ok(app.platform.privacy_log(&ctx.caller.account.id).await?))
}

/// Export everything held for the account: a durable task writing one JSON
/// document (a zip with the files' contents when `include_files`); poll
/// `GET /v1/account/privacy/export/{task_id}` for its progress and link.
#[utoipa::path(post, path = "/v1/account/privacy/export", tag = "account", security(("bearer" = [])),
    request_body = ExportRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first response")),
    responses((status = 202, description = "`data` is the queued export", body = crate::openapi::ExportResponse)))]
pub async fn create_privacy_export(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<ExportRequest>,
) -> Result<Response, ApiError> {
    let view = app.platform.start_export(&ctx.caller, &req).await?;
    Ok(ctx.respond(axum::http::StatusCode::ACCEPTED, view, Default::default()))
}

/// An export's status and progress; once done, its file id and a signed
/// download link (no key needed until it expires).
#[utoipa::path(get, path = "/v1/account/privacy/export/{task_id}", tag = "account", security(("bearer" = [])),
    params(("task_id" = String, Path, description = "The export's task id")),
    responses((status = 200, description = "`data` is the export", body = crate::openapi::ExportResponse),
              (status = 404, description = "`not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn get_privacy_export(
    State(app): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(task_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = task_id
        .parse::<i64>()
        .map_err(|_| maximin_core::Error::not_found("export", &task_id).with("field", "task_id"))?;
    let base = base_url(&app, &headers);
    Ok(ctx.ok(app
        .platform
        .export_status(&ctx.caller.account.id, id, &base)
        .await?))
}

/// Delete the account's data of the named categories now (usage logs,
/// files, task records, voices, debug logs). A category kept by law
/// (billing records) or by rule is refused with the reason, and then
/// nothing is deleted.
#[utoipa::path(post, path = "/v1/account/privacy/delete", tag = "account", security(("bearer" = [])),
    request_body = DeleteRequest,
    responses((status = 200, description = "`data` says what went, per category", body = crate::openapi::DeleteResponse),
              (status = 403, description = "`permission_denied`: a category that cannot be deleted, with the reason", body = crate::openapi::ErrorResponse)))]
pub async fn create_privacy_deletion(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<DeleteRequest>,
) -> Result<Response, ApiError> {
    Ok(ctx.ok(app
        .platform
        .delete_categories(&ctx.caller.account.id, &body.categories)
        .await?))
}

/// Whether debug logging is on, until when, and how many entries it kept.
#[utoipa::path(get, path = "/v1/account/privacy/debug-logging", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data` is the state", body = crate::openapi::DebugLoggingResponse)))]
pub async fn get_debug_logging(
    State(app): State<AppState>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    Ok(ctx.ok(app.platform.debug_logging(&ctx.caller.account.id).await?))
}

/// Turn debug logging on for 1 to 168 hours, or off. Only while it is on
/// are the account's request and response bodies kept, sealed at rest;
/// they are deleted when it ends (or is turned off).
#[utoipa::path(post, path = "/v1/account/privacy/debug-logging", tag = "account", security(("bearer" = [])),
    request_body = DebugLoggingRequest,
    responses((status = 200, description = "`data` is the new state", body = crate::openapi::DebugLoggingResponse),
              (status = 400, description = "`invalid_request`: a duration over 7 days", body = crate::openapi::ErrorResponse)))]
pub async fn set_debug_logging(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<DebugLoggingRequest>,
) -> Result<Response, ApiError> {
    Ok(ctx.ok(app
        .platform
        .set_debug_logging(&ctx.caller.account.id, &body)
        .await?))
}

/// Close the account: every key is refused at once, files (with their
/// bytes) and voices are deleted; billing records are kept 7 years and the
/// profile is purged 90 days after closure.
#[utoipa::path(post, path = "/v1/account/close", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data` says what was done", body = crate::openapi::ClosureResponse)))]
pub async fn close_account(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(ctx.ok(app.platform.close_account(&ctx.caller.account.id).await?))
}

/// The account's support tickets, newest first.
#[utoipa::path(get, path = "/v1/account/support", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data` is the tickets", body = crate::openapi::TicketListResponse)))]
pub async fn list_tickets(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(ctx.ok(app.platform.list_tickets(&ctx.caller.account.id).await?))
}

/// Open a support ticket with its first message. Kept 2 years after it closes.
#[utoipa::path(post, path = "/v1/account/support", tag = "account", security(("bearer" = [])),
    request_body = NewTicket,
    responses((status = 201, description = "`data` is the ticket", body = crate::openapi::TicketResponse)))]
pub async fn create_ticket(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewTicket>,
) -> Result<Response, ApiError> {
    Ok(ctx.created(
        app.platform
            .open_ticket(&ctx.caller.account.id, &body.subject, &body.message)
            .await?,
    ))
}

/// A ticket with its messages.
#[utoipa::path(get, path = "/v1/account/support/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "The ticket's id")),
    responses((status = 200, description = "`data` is the ticket", body = crate::openapi::TicketResponse),
              (status = 404, description = "`not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn get_ticket(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ctx.ok(app
        .platform
        .ticket(Some(&ctx.caller.account.id), &id)
        .await?))
}

/// Reply to an open ticket.
#[utoipa::path(post, path = "/v1/account/support/{id}/messages", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "The ticket's id")),
    request_body = TicketReply,
    responses((status = 200, description = "`data` is the ticket", body = crate::openapi::TicketResponse),
              (status = 400, description = "`invalid_request`: the ticket is closed", body = crate::openapi::ErrorResponse),
              (status = 404, description = "`not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn reply_ticket(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TicketReply>,
) -> Result<Response, ApiError> {
    Ok(ctx.ok(app
        .platform
        .reply_ticket(Some(&ctx.caller.account.id), &id, &body.message)
        .await?))
}

/// Close a ticket; its 2 years of retention start now.
#[utoipa::path(post, path = "/v1/account/support/{id}/close", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "The ticket's id")),
    responses((status = 200, description = "`data` is the ticket", body = crate::openapi::TicketResponse),
              (status = 404, description = "`not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn close_ticket(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ctx.ok(app
        .platform
        .close_ticket(Some(&ctx.caller.account.id), &id)
        .await?))
}
