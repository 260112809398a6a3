use serde_json::json;

use crate::helpers::Server;

#[tokio::test]
async fn every_authentication_failure_is_a_401_with_its_reason() {
    let s = Server::start().await;
    // No key at all.
    let r = s.http.get(s.url("/v1/models")).send().await.expect("send");
    let r = crate::helpers::Resp::from(r).await;
    r.assert_error(401, "authentication_failed");
    assert_eq!(r.detail("reason"), "missing");
    assert!(
        r.header("x-ratelimit-limit").is_none(),
        "no limit headers before auth"
    );

    // Malformed: not a maximin key, and a wrong scheme.
    let r = s.get("/v1/models", "sk-not-ours").await;
    r.assert_error(401, "authentication_failed");
    assert_eq!(r.detail("reason"), "malformed");
    let r = crate::helpers::Resp::from(
        s.http
            .get(s.url("/v1/models"))
            .header("authorization", "Basic abc")
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(401, "authentication_failed");

    // Well formed but unknown.
    let unknown = format!("mmx_live_{}", "A".repeat(40));
    let r = s.get("/v1/models", &unknown).await;
    r.assert_error(401, "authentication_failed");
    assert_eq!(r.detail("reason"), "unknown");

    // Revoked with the CLI while the server runs: fails on the next request.
    let account = s.account("payg");
    let (id, secret) = s.key(&account, &[]);
    s.get("/v1/models", &secret).await.assert_ok(200);
    s.cli(&["keys", "revoke", &id]).expect("revoke");
    let r = s.get("/v1/models", &secret).await;
    r.assert_error(401, "authentication_failed");
    assert_eq!(r.detail("reason"), "revoked");

    // x-api-key works as well as Bearer (spec §0.2).
    let (_, other) = s.key(&account, &[]);
    let r = s
        .http
        .get(s.url("/v1/models"))
        .header("x-api-key", &other)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn scopes_and_plans_narrow_what_a_key_may_do() {
    let s = Server::start().await;
    let payg = s.account("payg");

    // A key without scopes: every endpoint except the account API.
    let (_, plain) = s.key(&payg, &[]);
    s.get("/v1/models", &plain).await.assert_ok(200);
    let r = s.get("/v1/account", &plain).await;
    r.assert_error(403, "permission_denied");
    assert_eq!(r.detail("required_scope"), "admin");
    // Authenticated, so it carries the key's limits, without spending one.
    assert_eq!(r.header("x-ratelimit-limit"), Some("60"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("60"));

    // read-only: GETs pass, a POST is refused.
    let (_, read) = s.key(&payg, &["--scope", "read"]);
    s.get("/v1/models/minimax-chat-v2", &read)
        .await
        .assert_ok(200);
    let r = s
        .post(
            "/v1/embeddings",
            &read,
            json!({"model": "minimax-embed-v1", "input": "hi"}),
        )
        .await;
    r.assert_error(403, "permission_denied");
    assert_eq!(r.detail("scope"), "read");

    // A modality scope: only that modality.
    let (_, text_only) = s.key(&payg, &["--scope", "text"]);
    let r = s
        .post(
            "/v1/embeddings",
            &text_only,
            json!({"model": "minimax-embed-v1", "input": "hi"}),
        )
        .await;
    r.assert_error(403, "permission_denied");
    assert_eq!(r.detail("required_scope"), "embeddings");

    // A model scope: other models are refused, by id or alias.
    let (_, gemma_only) = s.key(&payg, &["--model", "minimax-chat-v2"]);
    let r = s
        .post(
            "/v1/embeddings",
            &gemma_only,
            json!({"model": "all-minilm-l6-v2", "input": "hi"}),
        )
        .await;
    r.assert_error(403, "permission_denied");
    assert_eq!(r.detail("field"), "model");

    // The coding plan is text only: a non-text endpoint is refused for any key.
    let coding = s.account("coding");
    let (_, coder) = s.key(&coding, &[]);
    let r = s
        .post(
            "/v1/embeddings",
            &coder,
            json!({"model": "minimax-embed-v1", "input": "hi"}),
        )
        .await;
    r.assert_error(403, "permission_denied");
    assert_eq!(r.detail("plan"), "coding");
    assert_eq!(r.detail("modality"), "embeddings");
    // ...while its text endpoint passes auth and scopes (and then meets the catalog).
    let r = s
        .post(
            "/v1/chat/completions",
            &coder,
            json!({"model": "minimax-chat-v2", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_ne!(r.status, 403, "{:?}", r.body);
    // A coding account cannot even be given a non-text scope.
    let err = s
        .cli(&[
            "keys",
            "create",
            "--account",
            &coding,
            "--name",
            "x",
            "--scope",
            "video",
        ])
        .expect_err("refused");
    assert_eq!(err["error"]["code"], "invalid_request");
}
