//! Unauthenticated operational routes: health, readiness, metrics, OpenAPI.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::AppState;

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "The process is alive", body = crate::openapi::StatusResponse)))]
pub async fn get_healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Readiness: storage answers, the rate limiter can decide (Redis in reach,
/// unless `fail_open`), the default models are in place (not still
/// fetching on first start, none whose pull failed), and the server is not
/// shutting down. A 503 says which models are fetching or missing and the
/// command that fetches each.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, description = "Ready for traffic", body = crate::openapi::StatusResponse),
        (status = 503, description = "Not ready: draining, storage or rate limiter unavailable, or default models fetching or missing (`fetching`, `missing`: each model with the command that fetches it)", body = crate::openapi::StatusResponse)))]
pub async fn get_readyz(State(app): State<AppState>) -> Response {
    let unavailable =
        |body: serde_json::Value| (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    if app.draining.load(Ordering::Relaxed) {
        return unavailable(json!({"status": "draining"}));
    }
    if app.platform.ping().await.is_err() {
        return unavailable(json!({"status": "storage unavailable"}));
    }
    if app.platform.limiter_ready().await.is_err() {
        return unavailable(json!({"status": "rate limiter unavailable"}));
    }
    let report = app.platform.readiness_report();
    if report.ready() {
        return Json(json!({"status": "ready"})).into_response();
    }
    unavailable(json!({
        "status": if report.fetching.is_empty() { "models missing" } else { "fetching models" },
        "fetching": report.fetching,
        "missing": report.missing,
    }))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn get_metrics(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render() + &crate::metrics::render_routing(&app.platform.router),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI document of every route", body = Object)))]
pub async fn get_openapi(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.openapi.clone(),
    )
        .into_response()
}
