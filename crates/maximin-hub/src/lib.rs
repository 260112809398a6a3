//! The hub: the web side of maximin for the people of an account (issue
//! 18). Server-rendered pages under `/hub` (minijinja templates compiled
//! into the binary, plain forms, one stylesheet, a little script that only
//! adds to what works without it), over the same core operations the API
//! and the CLI call; no rule lives here twice.
//!
//! - `web.rs`: cookies, the visitor (session or not), CSRF tokens, forms,
//!   rendering and redirects.
//! - `pages/`: one module per area: `auth` (sign-up, log-in, the second
//!   factor, log-out, invitations), `security` (password, TOTP, recovery
//!   codes), `overview`, `keys`, `usage` (charts, billing, invoices),
//!   `privacy` (the dashboard), `files` (files and tasks), `playground`,
//!   `support`, `members`, `operator`.
//! - `charts.rs`: bar charts as server-drawn SVG; `qr.rs`: QR codes as SVG.
//!
//! Cookies (seed 001): `maximin_session` (the session's token, or before
//! signing in a token that only binds the forms' CSRF tokens; `HttpOnly`,
//! `SameSite=Lax`, `Secure` behind TLS, no expiry: it ends with the
//! browser) and `maximin_prefs` (language and theme, 12 months). No other.

// A page that refuses answers with the page that says why: handlers
// return `Result<_, Response>`, and a response is larger than clippy likes
// an error to be. Boxing it would only add an allocation per refusal.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use maximin_core::Platform;

mod charts;
mod pages;
mod qr;
mod web;

pub use web::Hub;

/// How the hub is served.
#[derive(Debug, Clone, Default)]
pub struct HubConfig {
    /// Mark cookies `Secure` (the hub is reached over TLS: `public_url`
    /// starts with `https://`).
    pub secure_cookies: bool,
}

/// The hub's routes, relative to where it is mounted (`/hub`); `api` is
/// the API's router, which the playground calls in-process.
pub fn router(platform: Arc<Platform>, api: Router, config: HubConfig) -> Router {
    let hub = Hub::new(platform, api, config);
    Router::new()
        .route("/", get(pages::overview::show))
        .route("/assets/hub.css", get(web::stylesheet))
        .route("/assets/hub.js", get(web::script))
        .route("/prefs", post(web::set_prefs))
        .route(
            "/signup",
            get(pages::auth::signup_form).post(pages::auth::signup),
        )
        .route(
            "/login",
            get(pages::auth::login_form).post(pages::auth::login),
        )
        .route(
            "/login/code",
            get(pages::auth::code_form).post(pages::auth::code),
        )
        .route("/logout", post(pages::auth::logout))
        .route(
            "/invite/{token}",
            get(pages::auth::invite_page).post(pages::auth::accept_invite),
        )
        .route("/account", post(pages::overview::switch_account))
        .route("/security", get(pages::security::show))
        .route("/security/password", post(pages::security::password))
        .route("/security/totp", post(pages::security::totp_begin))
        .route(
            "/security/totp/confirm",
            post(pages::security::totp_confirm),
        )
        .route(
            "/security/totp/disable",
            post(pages::security::totp_disable),
        )
        .route("/security/recovery", post(pages::security::recovery))
        .route("/keys", get(pages::keys::list).post(pages::keys::create))
        .route("/keys/{id}", get(pages::keys::show))
        .route("/keys/{id}/revoke", post(pages::keys::revoke))
        .route("/usage", get(pages::usage::usage))
        .route("/billing", get(pages::usage::billing))
        .route("/billing/invoices/{id}", get(pages::usage::invoice))
        .route("/privacy", get(pages::privacy::show))
        .route("/privacy/export", post(pages::privacy::export))
        .route(
            "/privacy/export/{task_id}",
            get(pages::privacy::export_status),
        )
        .route("/privacy/delete", post(pages::privacy::delete))
        .route("/privacy/debug", post(pages::privacy::debug))
        .route("/privacy/routing", post(pages::privacy::routing))
        .route("/privacy/close", post(pages::privacy::close))
        .route("/files", get(pages::files::list))
        .route("/files/{id}/delete", post(pages::files::delete))
        .route(
            "/support",
            get(pages::support::list).post(pages::support::open),
        )
        .route(
            "/support/{id}",
            get(pages::support::show).post(pages::support::reply),
        )
        .route(
            "/playground",
            get(pages::playground::show).post(pages::playground::send_form),
        )
        .route("/playground/send", post(pages::playground::send))
        .route("/operator", get(pages::operator::show))
        .route("/operator/plan", post(pages::operator::plan))
        .route("/operator/credits", post(pages::operator::credits))
        .route(
            "/members",
            get(pages::members::list).post(pages::members::invite),
        )
        .route("/members/{user_id}", post(pages::members::change))
        .route("/members/invites/{id}/cancel", post(pages::members::cancel))
        .fallback(web::not_found)
        .layer(axum::middleware::from_fn(web::headers))
        .with_state(hub)
}
