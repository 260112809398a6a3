use serde_json::json;

use crate::helpers::{Resp, Server};

/// Every error code reachable so far comes back in the seed 002 envelope with its
/// HTTP status (authentication, permission and rate limits have their own tests).
#[tokio::test]
async fn error_codes_render_in_the_envelope_with_their_status() {
    let s = Server::start().await;
    let (_, key) = s.admin("payg");

    // invalid_request: malformed JSON, a missing field, a value out of range,
    // a wrong content type, a bad query parameter, a wrong method.
    let r = Resp::from(
        s.http
            .post(s.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "body");

    let r = s
        .post("/v1/chat/completions", &key, json!({"messages": []}))
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "model");

    let r = s
        .post(
            "/v1/chat/completions",
            &key,
            json!({"model": "minimax-chat-v2", "messages": [{"role": "user", "content": "x"}], "temperature": 7}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "temperature");

    let r = s
        .post(
            "/v1/chat/completions",
            &key,
            json!({"model": "minimax-chat-v2", "messages": [{"role": "wizard", "content": "x"}]}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "messages[0].role");

    let r = Resp::from(
        s.http
            .post(s.url("/v1/embeddings"))
            .bearer_auth(&key)
            .body("input=hi")
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "Content-Type");

    let r = s
        .get("/v1/account/keys/key_x/activity?limit=lots", &key)
        .await;
    r.assert_error(400, "invalid_request");

    let r = Resp::from(
        s.http
            .put(s.url("/v1/models"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(400, "invalid_request");

    let r = s
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "minimax-embed-v1", "input": []}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "input");

    // model_not_found
    let r = s.get("/v1/models/no-such-model", &key).await;
    r.assert_error(404, "model_not_found");
    let r = s
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "no-such-model", "input": "x"}),
        )
        .await;
    r.assert_error(404, "model_not_found");
    assert_eq!(r.detail("field"), "model");

    // model_unavailable: a catalog model this install cannot serve, with the
    // setup it needs.
    let r = s
        .post(
            "/v1/chat/completions",
            &key,
            json!({"model": "MiniMax-M2", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    r.assert_error(503, "model_unavailable");
    assert!(r
        .detail("setup")
        .as_str()
        .unwrap_or("")
        .contains("upstreams.minimax"));

    // not_found: unknown route, unknown key id.
    let r = s.get("/v1/nothing-here", &key).await;
    r.assert_error(404, "not_found");
    let r = s.get("/v1/account/keys/key_doesnotexist", &key).await;
    r.assert_error(404, "not_found");
    let r = Resp::from(
        s.http
            .delete(s.url("/v1/account/keys/key_doesnotexist"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(404, "not_found");

    // payload_too_large: over 16 MiB.
    let big = format!(
        "{{\"model\":\"x\",\"input\":\"{}\"}}",
        "a".repeat(17 * 1024 * 1024)
    );
    // Its own client: the server closes a connection whose body it refused.
    let r = Resp::from(
        reqwest::Client::new()
            .post(s.url("/v1/embeddings"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(413, "payload_too_large");

    // idempotency_conflict: same key, other body.
    let send = |name: &str| {
        s.http
            .post(s.url("/v1/account/keys"))
            .bearer_auth(&key)
            .header("idempotency-key", "conflict-1")
            .json(&json!({"name": name}))
            .send()
    };
    assert_eq!(send("a").await.expect("send").status(), 201);
    let r = Resp::from(send("b").await.expect("send")).await;
    r.assert_error(409, "idempotency_conflict");
    assert_eq!(r.detail("field"), "Idempotency-Key");
}
