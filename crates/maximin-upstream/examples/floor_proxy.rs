//! The floor for `bench/gateway.sh`: the least a gateway on maximin's own
//! stack (Tokio, axum, a pooled reqwest client with the same settings,
//! mimalloc) can cost. It forwards the request body to one upstream URL and
//! the answer back, bytes as they come: no auth, no limits, no parsing, no
//! routing, no metering. Not part of maximin; it shows how much of a
//! request's cost is the stack and the machine, and how much is maximin.
//!
//!   floor_proxy UPSTREAM_URL    (prints the address it listens on)

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Upstream {
    http: reqwest::Client,
    url: reqwest::Url,
}

async fn forward(State(up): State<Upstream>, body: Bytes) -> Response {
    let res = up
        .http
        .post(up.url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    match res {
        Ok(res) => {
            let status =
                StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let ct = res
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            (
                status,
                [(header::CONTENT_TYPE, ct)],
                Body::from_stream(res.bytes_stream()),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url: reqwest::Url = std::env::args()
        .nth(1)
        .ok_or("usage: floor_proxy UPSTREAM_URL")?
        .parse()?;
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let app = Router::new()
        .route("/chat/completions", post(forward))
        .with_state(Upstream { http, url });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("floor_proxy listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
