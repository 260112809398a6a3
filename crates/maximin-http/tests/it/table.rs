//! The route table is the one list of routes: every entry is served by the
//! router at its method and path, answers its errors in its declared
//! surface, and is documented at its method and path with that surface's
//! error schema; its handler's `#[utoipa::path]` names the same path and
//! method, and the access it declares.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use maximin_http::error::Surface;
use maximin_http::table::{self, Access, ROUTES};
use maximin_http::{app, mounted_routes, openapi};
use maximin_types::ErrorCode;
use tower::ServiceExt;

use crate::state;

/// A concrete path for a template: each `{param}` becomes `x`.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

async fn call(app: axum::Router, method: &str, path: &str) -> (StatusCode, String) {
    let resp = app
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether `body` (with `status`) is an `authentication_failed` error in
/// the shape of `surface`.
fn is_auth_error(surface: Surface, status: StatusCode, body: &serde_json::Value) -> bool {
    let code = ErrorCode::AuthenticationFailed;
    match surface {
        Surface::Platform => {
            status == StatusCode::UNAUTHORIZED && body["error"]["code"] == code.as_str()
        }
        Surface::Native => {
            status == StatusCode::OK
                && body["base_resp"]["status_code"] == code.native_status_code()
                && body["trace_id"].is_string()
        }
        Surface::OpenAi => {
            status == StatusCode::UNAUTHORIZED
                && body["error"]["type"] == "authentication_error"
                && body["error"]["code"] == code.as_str()
        }
        Surface::Anthropic => {
            status == StatusCode::UNAUTHORIZED
                && body["type"] == "error"
                && body["error"]["type"] == "authentication_error"
        }
    }
}

#[test]
fn the_table_is_consistent() {
    let mut seen = BTreeSet::new();
    for r in ROUTES {
        assert!(
            seen.insert((r.method.as_str(), r.path)),
            "{} {} is in the table twice",
            r.method,
            r.path
        );
        // One template, one surface: the edge finds it by template.
        assert_eq!(
            table::surface_of_template(r.path),
            Some(r.surface),
            "{} {}: every method of a template declares the same surface",
            r.method,
            r.path
        );
        // A request under a surface's prefix that no route matches renders
        // in that surface; the routes under it must agree.
        for (prefix, surface) in table::UNMATCHED_PREFIXES {
            if r.path.starts_with(prefix) {
                assert_eq!(
                    r.surface, *surface,
                    "{} {} under {prefix}",
                    r.method, r.path
                );
            }
        }
        // The handler's attribute names the table's path and method.
        let doc = (r.doc)();
        assert_eq!(
            doc.path, r.path,
            "{} {}: #[utoipa::path] path",
            r.method, r.path
        );
        assert!(
            doc.methods == vec![table::http_method(&r.method)],
            "{} {}: #[utoipa::path] method",
            r.method,
            r.path
        );
        let secured = doc
            .operation
            .security
            .as_ref()
            .is_some_and(|s| !s.is_empty());
        assert_eq!(
            secured,
            matches!(r.access, Access::Key(_)),
            "{} {}: #[utoipa::path] security must match the table's access",
            r.method,
            r.path
        );
    }
    assert!(ROUTES.len() >= 37, "the table lists every route");
}

#[tokio::test]
async fn every_entry_is_served_in_its_surface() {
    let dir = tempfile::tempdir().expect("tempdir");
    let st = state(dir.path()).await;

    let mounted: BTreeSet<(String, &str)> = mounted_routes(st.clone())
        .into_iter()
        .map(|(m, p)| (m.to_string(), p))
        .collect();
    let listed: BTreeSet<(String, &str)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    assert_eq!(mounted, listed, "the router mounts exactly the table");

    let app = app(st);
    for r in ROUTES {
        let at = format!("{} {}", r.method, r.path);
        let (status, body) = call(app.clone(), r.method.as_str(), &concrete(r.path)).await;
        // Not the router's fallbacks: the route is there, at this method.
        assert!(
            !body.contains("No such endpoint")
                && !body.contains("does not accept this HTTP method"),
            "{at}: not served by the router ({status} {body})"
        );
        match r.access {
            Access::Key(_) => {
                // No key: the request path refuses it in the route's surface.
                let json: serde_json::Value = serde_json::from_str(&body).expect("json error");
                assert!(
                    is_auth_error(r.surface, status, &json),
                    "{at}: an unauthenticated call must answer in {:?}'s shape, got {status} {json}",
                    r.surface
                );
            }
            Access::Open => {
                if r.surface == Surface::Native {
                    assert_eq!(status, StatusCode::OK, "{at}: native answers HTTP 200");
                } else {
                    assert_ne!(status, StatusCode::UNAUTHORIZED, "{at}: open");
                }
            }
        }
    }

    // A request no route matches renders in the surface of its prefix.
    for (path, surface) in [
        ("/openai/v1/nope", Surface::OpenAi),
        ("/anthropic/v1/nope", Surface::Anthropic),
        ("/v1/files/nope/deeper", Surface::Platform),
        ("/ws/v1/nope", Surface::Native),
        ("/v1/nope", Surface::Platform),
    ] {
        let (status, body) = call(app.clone(), "GET", path).await;
        let json: serde_json::Value = serde_json::from_str(&body).expect("json error");
        let ok = match surface {
            Surface::Platform => {
                status == StatusCode::NOT_FOUND && json["error"]["code"] == "not_found"
            }
            Surface::Native => status == StatusCode::OK && json["base_resp"]["status_code"] != 0,
            Surface::OpenAi => {
                status == StatusCode::NOT_FOUND && json["error"]["type"] == "not_found_error"
            }
            Surface::Anthropic => status == StatusCode::NOT_FOUND && json["type"] == "error",
        };
        assert!(ok, "{path}: not {surface:?}'s shape: {status} {json}");
    }
}

#[test]
fn every_entry_is_documented_with_its_surfaces_errors() {
    let doc = serde_json::to_value(openapi::document()).expect("json");
    let refers = |schema: &serde_json::Value, name: &str| {
        schema
            .to_string()
            .contains(&format!("#/components/schemas/{name}\""))
    };
    let mut operations = 0;
    for item in doc["paths"].as_object().expect("paths").values() {
        operations += item.as_object().expect("item").len();
    }
    assert_eq!(
        operations,
        ROUTES.len(),
        "the document lists the table, no more"
    );

    for r in ROUTES {
        let at = format!("{} {}", r.method, r.path);
        let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{at}: not in the document");
        let authenticated = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(
            authenticated,
            matches!(r.access, Access::Key(_)),
            "{at}: security"
        );
        let responses = op["responses"].as_object().expect("responses");
        let schema = r.surface.error_schema();
        for other in [
            "ErrorResponse",
            "NativeErrorResponse",
            "OpenAiErrorResponse",
            "AnthropicErrorResponse",
        ] {
            if other != schema && !(r.path == "/v1/embeddings" && other == "NativeErrorResponse") {
                assert!(
                    !refers(&op["responses"], other),
                    "{at}: documents {other}, not {schema} of {:?}",
                    r.surface
                );
            }
        }
        if r.surface == Surface::Native {
            for status in responses.keys() {
                assert!(
                    !status.starts_with('4') && !status.starts_with('5'),
                    "{at}: native errors are HTTP 200, not {status}"
                );
            }
            if authenticated {
                assert!(
                    refers(&op["responses"]["200"], schema),
                    "{at}: 200 admits {schema}"
                );
            }
        } else if authenticated {
            // The request path's errors, in the surface's shape (an open
            // route's own errors, such as `/readyz`'s 503, have their own).
            for status in ["401", "403", "429", "500"] {
                assert!(
                    refers(&op["responses"][status], schema),
                    "{at}: {status} must be {schema}"
                );
            }
        }
    }
}
