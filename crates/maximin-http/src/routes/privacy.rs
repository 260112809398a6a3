//! The privacy dashboard API (issue 16): `/v1/account/privacy/...`.

use axum::extract::State;
use axum::response::Response;

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::AppState;

/// The account's privacy action log, oldest first: keys made and revoked,
/// routing and PII changes. Append-only.
#[utoipa::path(get, path = "/v1/account/privacy/log", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data` is the log", body = crate::openapi::PrivacyLogResponse)))]
pub async fn get_privacy_log(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(ctx.ok(app.platform.privacy_log(&ctx.caller.account.id).await?))
}
