//! The HTTP edge of maximin.
//!
//! - [`app`] builds the router from an [`AppState`] without a socket (tests can
//!   call it directly); [`Application`] binds a listener and serves until stopped.
//! - Every authenticated route is mounted through [`Api::route`] with the
//!   [`EndpointSpec`] it requires; that attaches the shared request path
//!   ([`pipeline`]) and records the route, so a test can check that the OpenAPI
//!   document lists every mounted route.
//! - The [`edge`] middleware wraps everything: request id, error rendering,
//!   metrics, and one log line per request (metadata only).

pub mod ctx;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod routes;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use maximin_core::{EndpointSpec, Error, Platform};
use maximin_types::{ErrorCode, Modality, RateClass};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::ctx::RequestId;
use crate::error::{render_body, ApiError, PendingError, Surface};
use crate::metrics::Metrics;
use crate::pipeline::{request_path, RouteCtx};

#[derive(Clone)]
pub struct AppState {
    pub platform: Arc<Platform>,
    pub metrics: Arc<Metrics>,
    pub openapi: axum::body::Bytes,
    /// Set when shutdown starts: `/readyz` turns 503 so balancers move away.
    pub draining: Arc<AtomicBool>,
    /// The URL clients reach this server at, for links (`public_url`);
    /// `None`: the request's own host.
    pub public_url: Option<String>,
}

impl AppState {
    pub fn new(platform: Arc<Platform>) -> Self {
        let doc = openapi::document()
            .to_json()
            .unwrap_or_else(|_| "{}".into());
        AppState {
            platform,
            metrics: Arc::default(),
            openapi: axum::body::Bytes::from(doc),
            draining: Arc::default(),
            public_url: None,
        }
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

    /// An authenticated route behind the shared request path.
    fn route(
        mut self,
        method: Method,
        path: &'static str,
        spec: EndpointSpec,
        handler: MethodRouter<AppState>,
    ) -> Self {
        let rc = RouteCtx {
            app: self.state.clone(),
            spec,
        };
        self.router = self
            .router
            .route(path, handler.layer(from_fn_with_state(rc, request_path)));
        self.mounted.push((method, path));
        self
    }

    /// An unauthenticated operational route.
    fn open(mut self, path: &'static str, handler: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, handler);
        self.mounted.push((Method::GET, path));
        self
    }
}

const fn spec(
    class: RateClass,
    modality: Option<Modality>,
    read_only: bool,
    admin: bool,
) -> EndpointSpec {
    EndpointSpec {
        class,
        modality,
        read_only,
        admin,
    }
}

const READ: EndpointSpec = spec(RateClass::Read, None, true, false);
const ACCOUNT_READ: EndpointSpec = spec(RateClass::Account, None, true, true);
const ACCOUNT_WRITE: EndpointSpec = spec(RateClass::Account, None, false, true);

fn mount(state: AppState) -> Api {
    use axum::routing::{delete, post};
    use routes::{account, inference, models, speech, system};
    Api::new(state)
        .open("/healthz", get(system::get_healthz))
        .open("/readyz", get(system::get_readyz))
        .open("/metrics", get(system::get_metrics))
        .open("/v1/openapi.json", get(system::get_openapi))
        .route(Method::GET, "/v1/models", READ, get(models::list_models))
        .route(Method::GET, "/v1/models/{id}", READ, get(models::get_model))
        .route(
            Method::GET,
            "/v1/account",
            ACCOUNT_READ,
            get(account::get_account),
        )
        .route(
            Method::PATCH,
            "/v1/account",
            ACCOUNT_WRITE,
            axum::routing::patch(account::update_account),
        )
        .route(
            Method::GET,
            "/v1/upstreams",
            ACCOUNT_READ,
            get(routes::upstreams::list_upstreams),
        )
        .route(
            Method::GET,
            "/v1/account/keys",
            ACCOUNT_READ,
            get(account::list_keys),
        )
        .route(
            Method::POST,
            "/v1/account/keys",
            ACCOUNT_WRITE,
            post(account::create_key),
        )
        .route(
            Method::GET,
            "/v1/account/keys/{id}",
            ACCOUNT_READ,
            get(account::get_key),
        )
        .route(
            Method::DELETE,
            "/v1/account/keys/{id}",
            ACCOUNT_WRITE,
            delete(account::revoke_key),
        )
        .route(
            Method::GET,
            "/v1/account/keys/{id}/activity",
            ACCOUNT_READ,
            get(account::list_key_activity),
        )
        .route(
            Method::GET,
            "/v1/account/usage",
            ACCOUNT_READ,
            get(account::get_usage),
        )
        .route(
            Method::POST,
            "/v1/chat/completions",
            spec(RateClass::Chat, Some(Modality::Text), false, false),
            post(inference::create_chat_completion),
        )
        .route(
            Method::POST,
            "/v1/t2a_v2",
            spec(RateClass::Speech, Some(Modality::Speech), false, false),
            post(speech::t2a_v2),
        )
        .route(
            Method::GET,
            "/ws/v1/t2a_v2",
            spec(RateClass::Speech, Some(Modality::Speech), false, false),
            axum::routing::get(routes::speech_ws::t2a_ws),
        )
        .route(
            Method::POST,
            "/v1/t2a_async_v2",
            spec(RateClass::Speech, Some(Modality::Speech), false, false),
            post(routes::speech_async::t2a_async_v2),
        )
        .route(
            Method::GET,
            "/v1/query/t2a_async_query_v2",
            spec(RateClass::Read, Some(Modality::Speech), true, false),
            get(routes::speech_async::query_t2a_async),
        )
        .route(
            Method::POST,
            "/v1/voice_design",
            spec(RateClass::Speech, Some(Modality::Speech), false, false),
            post(routes::voices::voice_design),
        )
        .route(
            Method::POST,
            "/v1/voice_clone",
            spec(RateClass::Speech, Some(Modality::Speech), false, false),
            post(routes::voices::voice_clone),
        )
        .route(
            Method::POST,
            "/v1/delete_voice",
            spec(RateClass::Speech, Some(Modality::Speech), false, false),
            post(routes::voices::delete_voice),
        )
        .route(
            Method::POST,
            "/v1/get_voice",
            spec(RateClass::Read, Some(Modality::Speech), true, false),
            post(routes::voices::get_voice),
        )
        .route(
            Method::POST,
            "/v1/files/upload",
            spec(RateClass::FileUpload, Some(Modality::Files), false, false),
            post(routes::files::upload_file).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            Method::GET,
            "/v1/files/list",
            spec(RateClass::Read, Some(Modality::Files), true, false),
            get(routes::files::list_files),
        )
        .route(
            Method::GET,
            "/v1/files/retrieve",
            spec(RateClass::Read, Some(Modality::Files), true, false),
            get(routes::files::retrieve_file),
        )
        .route(
            Method::GET,
            "/v1/files/retrieve_content",
            spec(RateClass::Read, Some(Modality::Files), true, false),
            get(routes::files::retrieve_file_content),
        )
        .route(
            Method::POST,
            "/v1/files/delete",
            spec(RateClass::FileUpload, Some(Modality::Files), false, false),
            post(routes::files::delete_file),
        )
        .open(
            "/v1/files/download/{file_id}",
            get(routes::files::download_file),
        )
        .route(
            Method::POST,
            "/openai/v1/chat/completions",
            spec(RateClass::Chat, Some(Modality::Text), false, false),
            post(routes::openai::chat_completions),
        )
        .route(
            Method::POST,
            "/openai/v1/embeddings",
            spec(
                RateClass::Embeddings,
                Some(Modality::Embeddings),
                false,
                false,
            ),
            post(routes::openai::embeddings),
        )
        .route(
            Method::GET,
            "/openai/v1/models",
            READ,
            get(routes::openai::list_models),
        )
        .route(
            Method::POST,
            "/openai/v1/audio/speech",
            spec(RateClass::Speech, Some(Modality::Speech), false, false),
            post(routes::openai::audio_speech),
        )
        .route(
            Method::POST,
            "/anthropic/v1/messages",
            spec(RateClass::Chat, Some(Modality::Text), false, false),
            post(routes::anthropic::messages),
        )
        .route(
            Method::POST,
            "/v1/text/chatcompletion_v2",
            spec(RateClass::Chat, Some(Modality::Text), false, false),
            post(routes::native_text::chatcompletion_v2),
        )
        .route(
            Method::POST,
            "/v1/embeddings",
            spec(
                RateClass::Embeddings,
                Some(Modality::Embeddings),
                false,
                false,
            ),
            post(inference::create_embeddings),
        )
}

/// Every (method, path) the router serves.
pub fn mounted_routes(state: AppState) -> Vec<(Method, &'static str)> {
    mount(state).mounted
}

/// The whole application as a router.
pub fn app(state: AppState) -> Router {
    let api = mount(state.clone());
    with_edge(api.router, state)
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
    let surface = Surface::of_path(req.uri().path());

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
            let is_json = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.contains("json"));
            if is_json {
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
}

impl Application {
    pub async fn build(listen: &str, state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        Ok(Application { listener, state })
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
        let router = app(state.clone());
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
