//! The OpenAPI document must list every route the router mounts, with its
//! method: a route added without its `#[utoipa::path]` in `openapi.rs` fails here.

use maximin_http::{mounted_routes, openapi};

use crate::state;

#[tokio::test]
async fn every_mounted_route_is_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let routes = mounted_routes(state(dir.path()).await);
    assert!(
        routes.len() >= 15,
        "the router mounts the platform's routes"
    );

    let doc = serde_json::to_value(openapi::document()).expect("json");
    let mut missing = Vec::new();
    for (method, path) in &routes {
        let m = method.as_str().to_ascii_lowercase();
        if doc["paths"][*path][&m].is_null() {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from /v1/openapi.json: {missing:?}"
    );

    // And the document lists nothing the router does not serve.
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for m in item.as_object().expect("item").keys() {
            assert!(
                routes
                    .iter()
                    .any(|(rm, rp)| rp == path && rm.as_str().eq_ignore_ascii_case(m)),
                "documented but not mounted: {m} {path}"
            );
        }
    }
}
