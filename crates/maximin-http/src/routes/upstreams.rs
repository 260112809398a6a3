//! `GET /v1/upstreams` (admin scope): the configured upstreams with their
//! health, and every deployment's breaker state and figures. Never a key:
//! the view has the upstream's name, kind, host and region only.

use axum::extract::State;
use axum::response::Response;
use maximin_core::routing::Router;
use serde::Serialize;
use std::time::Instant;
use utoipa::ToSchema;

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentView {
    /// The catalog model it serves.
    pub model: String,
    /// What `X-Maximin-Upstream` says when it answers: `NAME:MODEL`.
    pub deployment: String,
    pub weight: u32,
    /// `closed`, `half_open` or `open`.
    pub breaker: String,
    pub in_flight: usize,
    pub requests: u64,
    pub retries: u64,
    pub errors: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamView {
    pub name: String,
    /// `openai`, `anthropic` or `minimax`.
    pub kind: String,
    /// Scheme, host and port of its base URL (no path, no credentials).
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// False while its active health check fails.
    pub healthy: bool,
    pub paid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
    pub deployments: Vec<DeploymentView>,
}

/// Scheme, host and port of a URL, without user info or path.
fn host_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}")
}

pub fn views(router: &Router) -> Vec<UpstreamView> {
    let now = Instant::now();
    let mut out: Vec<UpstreamView> = router
        .upstreams()
        .map(|u| UpstreamView {
            name: u.name.clone(),
            kind: u.config.kind.as_str().to_owned(),
            host: host_of(&u.config.base_url),
            region: u.config.region.clone(),
            healthy: u.healthy(),
            paid: u.config.paid,
            max_concurrency: u.config.max_concurrency,
            deployments: Vec::new(),
        })
        .collect();
    let mut targets: Vec<_> = router.targets().collect();
    targets.sort_by(|a, b| a.0.cmp(b.0));
    for (model, list) in targets {
        for t in list {
            let Some(up) = &t.upstream else { continue };
            let Some(view) = out.iter_mut().find(|v| v.name == up.name) else {
                continue;
            };
            let s = t.stats.snapshot();
            view.deployments.push(DeploymentView {
                model: model.clone(),
                deployment: t.label.clone(),
                weight: t.weight,
                breaker: t.breaker.state(now).as_str().to_owned(),
                in_flight: t.in_flight(),
                requests: s.requests,
                retries: s.retries,
                errors: s.errors.values().sum(),
            });
        }
    }
    out
}

/// The upstreams this install routes to, their health and breakers.
#[utoipa::path(get, path = "/v1/upstreams", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "`data` is the list of upstreams", body = crate::openapi::UpstreamListResponse),
              (status = 403, description = "`permission_denied`: the key lacks the admin scope", body = crate::openapi::ErrorResponse)))]
pub async fn list_upstreams(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(ctx.ok(views(&app.platform.router)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_lose_credentials_and_paths() {
        assert_eq!(
            super::host_of("https://user:secret@api.example.com:8443/v1"),
            "https://api.example.com:8443"
        );
        assert_eq!(
            super::host_of("http://10.0.0.5:8000/v1"),
            "http://10.0.0.5:8000"
        );
    }
}
