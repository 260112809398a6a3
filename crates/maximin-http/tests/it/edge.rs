//! Nothing escapes the edge as a panic or a bare 500: a handler that panics, or
//! a framework error, still answers in the envelope with a request id.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use maximin_http::with_edge;
use tower::ServiceExt;

use crate::state;

async fn panics() -> &'static str {
    panic!("boom with CANARY-edge")
}

async fn bare_500() -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn call(app: Router, path: &str) -> (StatusCode, serde_json::Value, String) {
    let resp = app
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let rid = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).expect("json body"),
        rid,
    )
}

#[tokio::test]
async fn panics_and_bare_errors_become_server_error_envelopes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let st = state(dir.path()).await;
    let router = Router::new()
        .route("/panics", get(panics))
        .route("/bare", get(bare_500));
    let app = with_edge(router, st);

    for path in ["/panics", "/bare"] {
        let (status, body, rid) = call(app.clone(), path).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(body["error"]["code"], "server_error", "{path}");
        assert_eq!(body["meta"]["request_id"], rid.as_str());
        assert!(rid.starts_with("req_"));
        assert!(
            !body.to_string().contains("CANARY"),
            "no internals reach the client"
        );
    }
    let (status, body, _) = call(app, "/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}
