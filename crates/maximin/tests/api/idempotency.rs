use serde_json::json;

use crate::helpers::{Resp, Server};

#[tokio::test]
async fn a_retry_replays_the_first_response_without_running_again() {
    let s = Server::start().await;
    let (_, key) = s.admin("payg");
    let send = || {
        s.http
            .post(s.url("/v1/account/keys"))
            .bearer_auth(&key)
            .header("idempotency-key", "create-ci-key")
            .json(&json!({"name": "ci"}))
            .send()
    };
    let first = Resp::from(send().await.expect("send")).await;
    let data = first.assert_ok(201);
    assert_eq!(first.header("idempotent-replayed"), Some("false"));
    let second = Resp::from(send().await.expect("send")).await;
    assert_eq!(second.status, 201);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.body["data"], *data, "the same key, secret included");
    assert_eq!(
        second.body["meta"]["request_id"],
        first.body["meta"]["request_id"]
    );
    // It ran once: one key named "ci".
    let keys = s.get("/v1/account/keys", &key).await;
    let n = keys
        .assert_ok(200)
        .as_array()
        .expect("list")
        .iter()
        .filter(|k| k["name"] == "ci")
        .count();
    assert_eq!(n, 1);

    // The same Idempotency-Key on another account is another request.
    let (_, other) = s.admin("payg");
    let r = Resp::from(
        s.http
            .post(s.url("/v1/account/keys"))
            .bearer_auth(&other)
            .header("idempotency-key", "create-ci-key")
            .json(&json!({"name": "ci"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.header("idempotent-replayed"), Some("false"));

    // DELETE is idempotent too.
    let id = data["id"].as_str().expect("id");
    for replayed in ["false", "true"] {
        let r = Resp::from(
            s.http
                .delete(s.url(&format!("/v1/account/keys/{id}")))
                .bearer_auth(&key)
                .header("idempotency-key", "revoke-ci")
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("idempotent-replayed"), Some(replayed));
    }

    // A malformed Idempotency-Key is refused.
    let r = Resp::from(
        s.http
            .post(s.url("/v1/account/keys"))
            .bearer_auth(&key)
            .header("idempotency-key", "x".repeat(300))
            .json(&json!({"name": "ci"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "Idempotency-Key");
}

#[tokio::test]
async fn concurrent_duplicates_execute_once_and_share_the_answer() {
    let s = Server::start().await;
    let (_, key) = s.admin("payg");
    let send = || {
        s.http
            .post(s.url("/v1/account/keys"))
            .bearer_auth(&key)
            .header("idempotency-key", "same-time")
            .json(&json!({"name": "raced"}))
            .send()
    };
    let responses = futures::future::join_all((0..16).map(|_| send())).await;
    let mut ids = Vec::new();
    let mut replays = 0;
    for r in responses {
        let r = Resp::from(r.expect("send")).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        replays += usize::from(r.header("idempotent-replayed") == Some("true"));
        ids.push(r.body["data"]["id"].as_str().expect("id").to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "all got the same key");
    assert_eq!(replays, 15, "one execution, fifteen replays");
    let keys = s.get("/v1/account/keys", &key).await;
    let n = keys
        .assert_ok(200)
        .as_array()
        .expect("list")
        .iter()
        .filter(|k| k["name"] == "raced")
        .count();
    assert_eq!(n, 1, "executed once");
}

#[tokio::test]
async fn a_replayed_error_keeps_its_json_type_on_every_surface() {
    let s = Server::start().await;
    let (_, key) = s.admin("payg");
    let cases = [
        // Native: HTTP 200 with base_resp.
        (
            "/v1/t2a_v2",
            json!({"model": "no-such-model", "text": "hi"}),
            200,
        ),
        (
            "/v1/text/chatcompletion_v2",
            json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}),
            200,
        ),
        // Seed 002, OpenAI and Anthropic: real statuses.
        ("/v1/account/keys", json!({"name": 5}), 400),
        ("/v1/get_voice", json!({"voice_type": "nobody"}), 200),
        (
            "/openai/v1/chat/completions",
            json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}),
            404,
        ),
        (
            "/anthropic/v1/messages",
            json!({"model": "no-such-model", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
            404,
        ),
    ];
    for (i, (path, body, status)) in cases.into_iter().enumerate() {
        let send = || {
            s.http
                .post(s.url(path))
                .bearer_auth(&key)
                .header("idempotency-key", format!("failing-{i}"))
                .json(&body)
                .send()
        };
        let first = Resp::from(send().await.expect("send")).await;
        let second = Resp::from(send().await.expect("send")).await;
        assert_eq!(first.status, status, "{path}: {:?}", first.body);
        assert!(first.body.is_object(), "{path}: {:?}", first.body);
        assert_eq!(second.header("idempotent-replayed"), Some("true"), "{path}");
        assert_eq!(second.status, first.status, "{path}");
        assert_eq!(
            second.header("content-type"),
            first.header("content-type"),
            "{path}: the replay's type"
        );
        assert!(
            second
                .header("content-type")
                .is_some_and(|ct| ct.starts_with("application/json")),
            "{path}: {:?}",
            second.header("content-type")
        );
        assert_eq!(second.body, first.body, "{path}: the replay's body");
    }
}
