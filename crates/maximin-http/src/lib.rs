//! The HTTP edge of maximin.
//!
//! - [`app`] builds the router from an [`AppState`] without a socket (tests can
//!   call it directly); [`Application`] binds a listener and serves until stopped.
//! - Every route is an entry of [`table::ROUTES`]: method, path, surface,
//!   access (open, or a key with its [`maximin_core::EndpointSpec`]), handler
//!   and OpenAPI operation. `mount` mounts the table (an authenticated route
//!   behind the shared request path, [`pipeline`]), [`openapi::document`]
//!   documents it, and the edge renders errors in the surface of the route
//!   the request matched.
//! - The [`edge`] middleware wraps everything: request id, error rendering,
//!   metrics, and one log line per request (metadata only).

pub mod ctx;
pub mod debuglog;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod routes;
pub mod table;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use maximin_core::{Error, Platform};
use maximin_types::ErrorCode;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::ctx::RequestId;
use crate::error::{render_body, ApiError, PendingError, Surface};
use crate::metrics::Metrics;
use crate::pipeline::{request_path, RouteCtx};
use crate::table::{Access, Route};

/// What every handler shares; cloned per request (axum's `State`), so one
/// reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub platform: Arc<Platform>,
    pub metrics: Arc<Metrics>,
    pub openapi: axum::body::Bytes,
    /// Set when shutdown starts: `/readyz` turns 503 so balancers move away.
    pub draining: Arc<AtomicBool>,
    /// The URL clients reach this server at, for links (`public_url`);
    /// `None`: the request's own host.
    pub public_url: Option<Arc<str>>,
    /// `[media]`: whether caller-named URLs may be private.
    pub media: maximin_media::MediaConfig,
    /// Signs and sends task webhooks.
    pub webhooks: Arc<maximin_media::webhook::Webhooks>,
    /// `[fine_tune]`: how jobs are trained (what a create resolves).
    pub fine_tune: maximin_core::finetune::jobs::FineTuneConfig,
}

impl AppState {
    pub fn new(platform: Arc<Platform>) -> Self {
        AppState::with_public_url(platform, None)
    }

    /// With the URL clients reach this server at (`public_url`).
    pub fn with_public_url(platform: Arc<Platform>, public_url: Option<Arc<str>>) -> Self {
        let webhooks = Arc::new(maximin_media::webhook::Webhooks::new(&platform, false));
        AppState::build(
            platform,
            public_url,
            maximin_media::MediaConfig::default(),
            webhooks,
        )
    }

    /// With the public URL, the `[media]` settings and the webhook sender
    /// the task runners share.
    pub fn build(
        platform: Arc<Platform>,
        public_url: Option<Arc<str>>,
        media: maximin_media::MediaConfig,
        webhooks: Arc<maximin_media::webhook::Webhooks>,
    ) -> Self {
        let doc = openapi::document()
            .to_json()
            .unwrap_or_else(|_| "{}".into());
        AppState(Arc::new(Shared {
            platform,
            metrics: Arc::default(),
            openapi: axum::body::Bytes::from(doc),
            draining: Arc::default(),
            public_url,
            media,
            webhooks,
            fine_tune: Default::default(),
        }))
    }

    /// With the `[fine_tune]` settings; right after [`AppState::build`],
    /// before the state is shared.
    pub fn with_fine_tune(mut self, config: maximin_core::finetune::jobs::FineTuneConfig) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.0) {
            shared.fine_tune = config;
        }
        self
    }
}

/// Mounts routes and remembers which, for the OpenAPI check.
pub struct Api {
    router: Router<AppState>,
    state: AppState,
    mounted: Vec<(Method, &'static str)>,
}

impl Api {
    fn new(state: AppState) -> Self {
        Api {
            router: Router::new(),
            state,
            mounted: Vec::new(),
        }
    }

    /// A route of the table: an authenticated one behind the shared request
    /// path, an open one as it is.
    fn route(mut self, route: &'static Route) -> Self {
        let filter = MethodFilter::try_from(route.method.clone())
            .unwrap_or_else(|_| panic!("{} {}: no such method", route.method, route.path));
        let handler = (route.handler)(filter);
        let handler = match route.access {
            Access::Open => handler,
            Access::Key(spec) => {
                let rc = RouteCtx {
                    app: self.state.clone(),
                    spec,
                    surface: route.surface,
                };
                handler.layer(from_fn_with_state(rc, request_path))
            }
        };
        self.router = self.router.route(route.path, handler);
        self.mounted.push((route.method.clone(), route.path));
        self
    }
}

/// Mounts every route of [`table::ROUTES`].
fn mount(state: AppState) -> Api {
    table::ROUTES.iter().fold(Api::new(state), Api::route)
}

/// Every (method, path) the router serves.
pub fn mounted_routes(state: AppState) -> Vec<(Method, &'static str)> {
    mount(state).mounted
}

/// The whole application as a router.
pub fn app(state: AppState) -> Router {
    app_with_pages(state, None)
}

/// The application with web pages (the hub) nested at `/hub`, behind the
/// same edge (request id, panic catching, metrics, the access log).
pub fn app_with_pages(state: AppState, pages: Option<Router>) -> Router {
    let mut api = mount(state.clone()).router;
    if let Some(pages) = pages {
        api = api
            .route(
                "/",
                axum::routing::get(|| async { axum::response::Redirect::to("/hub") }),
            )
            .nest_service("/hub", pages);
    }
    with_edge(api, state)
}

/// Wraps routes in what every response passes through: fallbacks, panic
/// catching, the body limit, the edge (request id, error rendering, metrics,
/// access log).
pub fn with_edge(router: Router<AppState>, state: AppState) -> Router {
    router
        .fallback(|| async {
            ApiError(Error::new(
                ErrorCode::NotFound,
                "No such endpoint; GET /v1/openapi.json lists them.",
            ))
        })
        .method_not_allowed_fallback(|| async {
            ApiError(Error::invalid(
                "method",
                "This endpoint does not accept this HTTP method.",
            ))
        })
        .layer(CatchPanicLayer::custom(|_| {
            ApiError(Error::internal("a handler panicked")).into_response()
        }))
        .layer(axum::extract::DefaultBodyLimit::max(ctx::MAX_JSON_BODY))
        .layer(from_fn_with_state(state.metrics.clone(), edge))
        .layer(from_fn(assign_request_id))
        .with_state(state)
}

async fn assign_request_id(mut req: Request, next: Next) -> Response {
    req.extensions_mut()
        .insert(RequestId(maximin_core::secrets::new_request_id()));
    next.run(req).await
}

/// Request id, error rendering, metrics and the access log.
pub async fn edge(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let surface = Surface::of_request(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
        req.uri().path(),
    );

    let mut resp = next.run(req).await;
    let surface = resp
        .extensions()
        .get::<crate::error::SurfaceOverride>()
        .map_or(surface, |s| s.0);
    let code = finish_error(&mut resp, surface, &request_id).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    metrics.observe(&route, method.as_str(), status, elapsed);
    tracing::info!(
        request_id = %request_id,
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        code = code.map(|c| c.as_str()).unwrap_or(""),
        "request"
    );
    resp
}

/// Renders a pending error, or turns a bare framework error (a 4xx/5xx with no
/// JSON body, such as a malformed path or query) into the envelope.
async fn finish_error(
    resp: &mut Response,
    surface: Surface,
    request_id: &str,
) -> Option<ErrorCode> {
    let err = match resp.extensions().get::<PendingError>() {
        Some(p) => (*p.0).clone(),
        None if resp.status().is_client_error() || resp.status().is_server_error() => {
            // A body of its own (JSON, or a hub page in HTML) stays.
            let has_body = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.contains("json") || ct.starts_with("text/html"));
            if has_body {
                return None;
            }
            let status = resp.status();
            // The framework's own text (e.g. which query parameter failed).
            let body = std::mem::take(resp.body_mut());
            let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&text).trim().to_owned();
            match status {
                StatusCode::NOT_FOUND => Error::new(ErrorCode::NotFound, "Not found."),
                StatusCode::PAYLOAD_TOO_LARGE => {
                    Error::new(ErrorCode::PayloadTooLarge, "The request body is too large.")
                }
                s if s.is_server_error() => Error::internal(format!("bare {s} from the framework")),
                _ => Error::invalid(
                    "request",
                    if text.is_empty() {
                        "The request could not be parsed.".to_owned()
                    } else {
                        text
                    },
                ),
            }
        }
        None => return None,
    };
    if err.is_server_side() && err.code == ErrorCode::ServerError {
        tracing::error!(request_id = %request_id, "server error");
    }
    let body = render_body(surface, &err, request_id);
    let status = surface.status(&err);
    let mut new = (status, axum::Json(body)).into_response();
    for (name, value) in resp.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    *resp = new;
    Some(err.code)
}

/// A bound server: build, read the port, then serve until stopped.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    pages: Option<Router>,
}

impl Application {
    pub async fn build(listen: &str, state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        Ok(Application {
            listener,
            state,
            pages: None,
        })
    }

    /// Serves these pages at `/hub` beside the API.
    pub fn with_pages(mut self, pages: Router) -> Self {
        self.pages = Some(pages);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish and
    /// writes pending usage.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let draining = state.draining.clone();
        let router = app_with_pages(state.clone(), self.pages);
        // No Nagle delay: a streamed response's events (SSE chunks, audio)
        // go out as they are written, not after the client's delayed ACK.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        });
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            draining.store(true, Ordering::Relaxed);
            tracing::info!("shutting down: finishing in-flight requests");
        })
        .await?;
        state.platform.shutdown().await;
        Ok(())
    }
}
