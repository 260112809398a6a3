//! Billing (issue 16): the account's balance and spend, and credit grants
//! by the install's operator.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maximin_core::billing::micro_to_usd;
use maximin_core::Error;
use maximin_types::billing::CreditGranted;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::ctx::{ApiJson, ApiQuery, Ctx, Param, QueryParams};
use crate::error::ApiError;
use crate::AppState;

/// The account's balance, this month's spend by model and by key (sandbox
/// keys apart, never charged), the last 12 months and the credits added.
#[utoipa::path(get, path = "/v1/account/billing", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data` is the billing view", body = crate::openapi::BillingResponse)))]
pub async fn get_billing(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(ctx.ok(app.platform.billing_view(&ctx.caller.account.id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"account_id": "acct_…", "usd": 20, "note": "December top-up"}))]
pub struct GrantRequest {
    /// The account to credit (default: the caller's own).
    #[serde(default)]
    pub account_id: Option<String>,
    /// US dollars to add, more than 0.
    pub usd: f64,
    /// Why, shown on the account's billing view.
    #[serde(default)]
    pub note: String,
}

/// Add credit to an account. Only the install's operator account (`maximin
/// accounts create --operator`, or the owner account made on first start)
/// may grant credit; a billing record kept 7 years.
#[utoipa::path(post, path = "/v1/account/credits", tag = "account", security(("bearer" = [])),
    request_body = GrantRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first response")),
    responses((status = 201, description = "`data` is the grant and the balance after it", body = crate::openapi::CreditGrantedResponse),
              (status = 403, description = "`permission_denied`: not the operator's account", body = crate::openapi::ErrorResponse),
              (status = 404, description = "`not_found`: no such account", body = crate::openapi::ErrorResponse)))]
pub async fn create_credits(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<GrantRequest>,
) -> Result<Response, ApiError> {
    if !ctx.caller.account.operator {
        return Err(Error::permission_denied(
            "Only the operator's account may grant credit (maximin accounts create --operator).",
        )
        .with("reason", "not_operator")
        .into());
    }
    let account = body
        .account_id
        .unwrap_or_else(|| ctx.caller.account.id.clone());
    let balance = app
        .platform
        .grant_credit(&account, body.usd, &body.note)
        .await?;
    Ok(ctx.created(CreditGranted {
        account_id: account,
        amount_usd: body.usd,
        balance_usd: micro_to_usd(balance),
        note: body.note.trim().to_owned(),
    }))
}

/// The account's monthly statements, newest first: the current month's
/// (open) and every month with spend or credit in the last 7 years
/// (closed on the 1st of the next month).
#[utoipa::path(get, path = "/v1/account/invoices", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data` is the statements", body = crate::openapi::InvoiceListResponse)))]
pub async fn list_invoices(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(ctx.ok(app.platform.invoices(&ctx.caller.account.id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct InvoiceQuery {
    /// `json` (default: the statement in the envelope) or `html` (a
    /// printable page).
    pub format: Option<String>,
}

impl QueryParams for InvoiceQuery {
    const PARAMS: &'static [Param] = &[Param::text("format")];
}

/// One monthly statement with its lines, as JSON or as a printable page.
#[utoipa::path(get, path = "/v1/account/invoices/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "Statement id, `inv_2026-11`"), InvoiceQuery),
    responses((status = 200, description = "`data` is the statement; with `format=html`, the page",
                   content((crate::openapi::InvoiceResponse = "application/json"), (String = "text/html"))),
              (status = 404, description = "`not_found`: no statement for that month", body = crate::openapi::ErrorResponse)))]
pub async fn get_invoice(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<InvoiceQuery>,
) -> Result<Response, ApiError> {
    let html = match q.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(other) => {
            return Err(Error::invalid(
                "format",
                format!("'format' is json or html, not '{other}'."),
            )
            .into())
        }
    };
    let invoice = app.platform.invoice(&ctx.caller.account.id, &id).await?;
    if html {
        let page = maximin_core::invoices::invoice_html(&invoice);
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page,
        )
            .into_response());
    }
    Ok(ctx.ok(invoice))
}
