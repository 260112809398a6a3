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

/// What serde writes for each value of a wire enum.
fn wire<T: serde::Serialize>(all: &[T]) -> Vec<serde_json::Value> {
    all.iter()
        .map(|v| serde_json::to_value(v).expect("serialize"))
        .collect()
}

/// Every `enum` anywhere in the document, with where it is.
fn enums(v: &serde_json::Value, at: &str, out: &mut Vec<(String, Vec<serde_json::Value>)>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(values) = m.get("enum").and_then(|e| e.as_array()) {
                out.push((at.to_owned(), values.clone()));
            }
            for (k, child) in m {
                enums(child, &format!("{at}/{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                enums(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A client generated from the document parses what the wire carries: every
/// enum the document lists is exactly what serde writes for one of the wire
/// enums (`free`, not `Free`), and each wire enum is listed in full.
#[test]
fn every_enum_is_what_the_wire_carries() {
    use maximin_types::inference::Role;
    use maximin_types::{DataCategory, ErrorCode, Modality, PiiMode, Plan, RateClass, Scope};
    let mut scopes = vec![Scope::Read, Scope::Admin];
    scopes.extend(Modality::ALL.iter().copied().map(Scope::Modality));
    let known: Vec<(&str, Vec<serde_json::Value>)> = vec![
        ("Plan", wire(Plan::ALL)),
        ("Modality", wire(Modality::ALL)),
        ("RateClass", wire(RateClass::ALL)),
        ("DataCategory", wire(DataCategory::ALL)),
        ("ErrorCode", wire(&ErrorCode::ALL)),
        ("Scope", wire(&scopes)),
        (
            "PiiMode",
            wire(&[PiiMode::Off, PiiMode::Redact, PiiMode::Block]),
        ),
        (
            "Role",
            wire(&[Role::System, Role::User, Role::Assistant, Role::Tool]),
        ),
    ];

    let doc = serde_json::to_value(openapi::document()).expect("json");
    let mut found = Vec::new();
    enums(&doc, "", &mut found);
    assert!(!found.is_empty(), "the document lists enums");
    for (at, values) in &found {
        assert!(
            known.iter().any(|(_, k)| k == values),
            "{at}: {values:?} is not what any wire enum serializes to"
        );
    }
    // The named ones are the wire enums themselves.
    for (name, values) in &known {
        let schema = &doc["components"]["schemas"][*name];
        if schema.is_null() {
            continue; // not used by any operation
        }
        assert_eq!(&schema["enum"], &serde_json::json!(values), "{name}");
    }
    // And the ones the issue named are there.
    assert_eq!(
        doc["components"]["schemas"]["Plan"]["enum"][0],
        serde_json::json!("free")
    );
    assert_eq!(
        doc["components"]["schemas"]["Modality"]["enum"][0],
        serde_json::json!("text")
    );
}

/// Every operation documents the errors of the request path in its
/// surface's shape: seed 002's envelope, OpenAI's and Anthropic's error
/// objects with real statuses, and the native `base_resp` at HTTP 200.
#[test]
fn every_operation_documents_its_errors_per_surface() {
    let doc = serde_json::to_value(openapi::document()).expect("json");
    let schema_of = |op: &serde_json::Value, status: &str| {
        op["responses"][status]["content"]["application/json"]["schema"].clone()
    };
    let refers = |schema: &serde_json::Value, name: &str| {
        schema
            .to_string()
            .contains(&format!("#/components/schemas/{name}\""))
    };
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("item") {
            let authenticated = op["security"].as_array().is_some_and(|s| !s.is_empty());
            if !authenticated {
                continue;
            }
            checked += 1;
            let at = format!("{method} {path}");
            let native = maximin_http::table::surface_of_template(path)
                == Some(maximin_http::error::Surface::Native);
            if native {
                for status in op["responses"].as_object().expect("responses").keys() {
                    assert!(
                        !status.starts_with('4') && !status.starts_with('5'),
                        "{at}: the native surface answers errors with HTTP 200, not {status}"
                    );
                }
                assert!(
                    refers(&schema_of(op, "200"), "NativeErrorResponse"),
                    "{at}: 200 must admit the native error"
                );
                continue;
            }
            let shape = if path.starts_with("/openai/") {
                "OpenAiErrorResponse"
            } else if path.starts_with("/anthropic/") {
                "AnthropicErrorResponse"
            } else {
                "ErrorResponse"
            };
            let mut statuses = vec!["401", "403", "429", "500"];
            if method != "get" {
                statuses.extend(["400", "413"]);
            }
            // Idempotency-Key (and its 409) is for POST and DELETE.
            if method == "post" || method == "delete" {
                statuses.push("409");
            }
            for status in statuses {
                assert!(
                    refers(&schema_of(op, status), shape),
                    "{at}: {status} must be documented with {shape}"
                );
            }
            let rate = &op["responses"]["429"]["headers"];
            for h in ["retry-after", "x-ratelimit-limit", "x-ratelimit-reset"] {
                assert!(rate[h].is_object(), "{at}: 429 documents {h}");
            }
        }
    }
    assert!(checked >= 25, "only {checked} authenticated operations");
    // The route that serves two shapes documents the native one's errors.
    let emb = &doc["paths"]["/v1/embeddings"]["post"];
    assert!(refers(&schema_of(emb, "200"), "EmbeddingsReply"));
    let reply = doc["components"]["schemas"]["EmbeddingsReply"].to_string();
    assert!(reply.contains("NativeErrorResponse") && reply.contains("NativeEmbeddingsResponse"));
}
