//! The account API (`admin` scope): the same core operations as the CLI.

use axum::extract::{Path, State};
use axum::response::Response;
use maximin_core::clock::parse_iso8601;
use maximin_core::{Error, NewKey};
use maximin_types::{PiiMode, Scope};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::ctx::{ApiJson, ApiQuery, Ctx, Param, QueryParams};
use crate::error::ApiError;
use crate::AppState;

/// The caller's account.
#[utoipa::path(get, path = "/v1/account", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data` is the account", body = crate::openapi::AccountResponse),
              (status = 403, description = "`permission_denied`: the key lacks the admin scope", body = crate::openapi::ErrorResponse)))]
pub async fn get_account(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(ctx.ok(app.platform.account_view(&ctx.caller.account.id).await?))
}

/// Every key of the account, revoked ones included, with usage figures.
#[utoipa::path(get, path = "/v1/account/keys", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data` is the list of keys", body = crate::openapi::KeyListResponse)))]
pub async fn list_keys(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(ctx.ok(app.platform.list_keys(&ctx.caller.account.id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "reporting", "scopes": ["read"]}))]
pub struct CreateKeyRequest {
    pub name: String,
    /// A sandbox key (`mmx_test_…`).
    #[serde(default)]
    pub test: bool,
    /// `read`, `admin`, or modalities (`text`, `embeddings`, `speech`, `video`, `image`, `music`, `files`, `fine-tunes`).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<Scope>,
    /// Catalog ids or aliases the key may use; empty for all.
    #[serde(default)]
    pub models: Vec<String>,
    /// Regions within the account's that its requests may be served in.
    #[serde(default)]
    pub regions: Vec<String>,
    /// PII protection before upstreams for this key (default: the account's).
    #[serde(default)]
    pub pii: Option<PiiMode>,
    /// What the key may spend in a calendar month (UTC), in US dollars;
    /// past it, its requests are refused with `insufficient_credits`.
    #[serde(default)]
    pub budget_usd: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"regions": ["eu-west", "eu-central"], "pii": "redact"}))]
pub struct UpdateAccountRequest {
    /// Regions its requests may be served in; `[]` lifts the limit.
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    /// PII before upstreams: `off`, `redact` or `block`.
    #[serde(default)]
    pub pii: Option<PiiMode>,
    /// Protect content bound for local engines too.
    #[serde(default)]
    pub pii_local: Option<bool>,
}

/// Change the account's routing limits: regions and PII protection.
#[utoipa::path(patch, path = "/v1/account", tag = "account", security(("bearer" = [])),
    request_body = UpdateAccountRequest,
    responses((status = 200, description = "`data` is the account as changed", body = crate::openapi::AccountResponse),
              (status = 400, description = "`invalid_request`: a region name or PII mode is not valid", body = crate::openapi::ErrorResponse)))]
pub async fn update_account(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<UpdateAccountRequest>,
) -> Result<Response, ApiError> {
    Ok(ctx.ok(app
        .platform
        .update_account_routing(
            &ctx.caller.account.id,
            maximin_core::RoutingUpdate {
                regions: body.regions,
                pii: body.pii,
                pii_local: body.pii_local,
            },
        )
        .await?))
}

/// Create a key. The secret is in `data.secret`, shown this once.
#[utoipa::path(post, path = "/v1/account/keys", tag = "account", security(("bearer" = [])),
    request_body = CreateKeyRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first response")),
    responses((status = 201, description = "`data` is the key with its secret", body = crate::openapi::KeyCreatedResponse),
              (status = 400, description = "`invalid_request`, e.g. the 20-key limit", body = crate::openapi::ErrorResponse),
              (status = 404, description = "`model_not_found`: a model in `models` is not in the catalog")))]
pub async fn create_key(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    let created = app
        .platform
        .create_key(
            &ctx.caller.account.id,
            NewKey {
                name: body.name,
                test: body.test,
                scopes: body.scopes,
                models: body.models,
                regions: body.regions,
                pii: body.pii,
                budget_usd: body.budget_usd,
            },
        )
        .await?;
    Ok(ctx.created(created))
}

/// One key of the account.
#[utoipa::path(get, path = "/v1/account/keys/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "`data` is the key", body = crate::openapi::KeyResponse),
              (status = 404, description = "`not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn get_key(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = app.platform.key(Some(&ctx.caller.account.id), &id).await?;
    Ok(ctx.ok(maximin_core::key_view(&key)))
}

/// Revoke a key; it fails on its next request.
#[utoipa::path(delete, path = "/v1/account/keys/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "`data` is the revoked key", body = crate::openapi::KeyResponse),
              (status = 404, description = "`not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn revoke_key(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ctx.ok(app
        .platform
        .revoke_key(Some(&ctx.caller.account.id), &id)
        .await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ActivityQuery {
    /// At most this many entries, newest first (1 to 1000, default 100).
    pub limit: Option<u32>,
}

impl QueryParams for ActivityQuery {
    const PARAMS: &'static [Param] = &[Param::int("limit", 1, 1000)];
}

/// A key's activity log: metadata of its requests, never content.
#[utoipa::path(get, path = "/v1/account/keys/{id}/activity", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "Key id"), ActivityQuery),
    responses((status = 200, description = "`data` is the list of entries", body = crate::openapi::ActivityResponse),
              (status = 404, description = "`not_found`: no such key on this account")))]
pub async fn list_key_activity(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<Response, ApiError> {
    let entries = app
        .platform
        .key_activity(Some(&ctx.caller.account.id), &id, q.limit.unwrap_or(100))
        .await?;
    Ok(ctx.ok(entries))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// Start of the period, ISO 8601 (default: 30 days before `until`).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// End of the period, ISO 8601 (default: now).
    #[param(format = DateTime)]
    pub until: Option<String>,
}

impl QueryParams for UsageQuery {
    const PARAMS: &'static [Param] = &[Param::text("since"), Param::text("until")];
}

/// Usage of the account over a period: totals, by key and by model.
#[utoipa::path(get, path = "/v1/account/usage", tag = "account", security(("bearer" = [])),
    params(UsageQuery),
    responses((status = 200, description = "`data` is the usage", body = crate::openapi::UsageResponse)))]
pub async fn get_usage(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response, ApiError> {
    let parse = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| {
                parse_iso8601(s).ok_or_else(|| {
                    Error::invalid(
                        field,
                        format!("'{field}' must be an ISO 8601 time such as 2026-01-31T00:00:00Z."),
                    )
                })
            })
            .transpose()
    };
    let since = parse("since", &q.since)?;
    let until = parse("until", &q.until)?;
    Ok(ctx.ok(app
        .platform
        .usage(&ctx.caller.account.id, since, until)
        .await?))
}

/// The account's webhook signing secret: task webhooks carry
/// `X-Maximin-Signature: v1=HEX`, the HMAC-SHA256 under this secret of
/// `TIMESTAMP.BODY`, with the timestamp in `X-Maximin-Timestamp`.
#[utoipa::path(get, path = "/v1/account/webhook_secret", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data.secret` (`whsec_…`) and `data.algorithm`", body = Object),
              (status = 403, description = "`permission_denied`: the key lacks the admin scope", body = crate::openapi::ErrorResponse)))]
pub async fn get_webhook_secret(
    State(app): State<AppState>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    Ok(ctx.ok(serde_json::json!({
        "secret": app.webhooks.secret(&ctx.caller.account.id),
        "algorithm": "HMAC-SHA256 of TIMESTAMP.BODY, hex, as v1=…",
        "signature_header": "X-Maximin-Signature",
        "timestamp_header": "X-Maximin-Timestamp",
    })))
}
