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
    // It may answer and close while the client is still writing (a broken
    // pipe to reqwest, which then never reads the answer): tried again.
    let mut answered = None;
    for _ in 0..5 {
        let sent = reqwest::Client::new()
            .post(s.url("/v1/embeddings"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await;
        if let Ok(r) = sent {
            answered = Some(Resp::from(r).await);
            break;
        }
    }
    let r = answered.expect("an answer to the oversized body in 5 tries");
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

/// Query parameters are checked like body fields: the parameter named, its
/// range stated (issue 13, point 9).
#[tokio::test]
async fn query_parameters_name_the_parameter_and_its_range() {
    let s = Server::start().await;
    let (account, key) = s.admin("payg");
    let (key_id, _) = s.key(&account, &[]);
    let activity = |q: &str| format!("/v1/account/keys/{key_id}/activity?{q}");
    for bad in [
        "limit=-1",
        "limit=0",
        "limit=1001",
        "limit=2147483648",
        "limit=lots",
        "limit=",
    ] {
        let r = s.get(&activity(bad), &key).await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.detail("field"), "limit", "{bad}");
        assert_eq!(r.detail("minimum"), 1, "{bad}");
        assert_eq!(r.detail("maximum"), 1000, "{bad}");
        let msg = r.body["error"]["message"].as_str().expect("message");
        assert!(msg.contains("from 1 to 1000"), "{bad}: {msg}");
    }
    let r = s.get(&activity("limit=1&limit=2"), &key).await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "limit");
    for good in ["limit=1", "limit=1000", "", "other=x"] {
        let r = s.get(&activity(good), &key).await;
        r.assert_ok(200);
    }
    // Two requests by the admin key so far are in its own log: limit holds.
    let (admin_id, _) = {
        let keys = s.get("/v1/account/keys", &key).await;
        let list = keys.assert_ok(200).as_array().expect("list").clone();
        let k = list
            .iter()
            .find(|k| k["id"] != key_id.as_str())
            .expect("the admin key");
        (k["id"].as_str().expect("id").to_owned(), ())
    };
    let r = s
        .get(
            &format!("/v1/account/keys/{admin_id}/activity?limit=1"),
            &key,
        )
        .await;
    assert_eq!(r.assert_ok(200).as_array().expect("list").len(), 1);

    // Native routes: the same checks, in base_resp.
    for (path, field) in [
        ("/v1/files/retrieve?file_id=abc", "file_id"),
        ("/v1/files/retrieve", "file_id"),
        ("/v1/files/retrieve_content?file_id=-5", "file_id"),
        ("/v1/query/t2a_async_query_v2?task_id=1.5", "task_id"),
        ("/v1/query/t2a_async_query_v2", "task_id"),
        ("/v1/files/list?purpose=a&purpose=b", "purpose"),
    ] {
        let r = s.get(path, &key).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.body["base_resp"]["status_code"], 2013,
            "{path}: {:?}",
            r.body
        );
        let msg = r.body["base_resp"]["status_msg"].as_str().expect("msg");
        assert!(msg.contains(&format!("'{field}'")), "{path}: {msg}");
    }
    let r = s.get("/v1/account/usage?since=yesterday", &key).await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "since");
    let (status, body) = s
        .get_bytes(&s.url("/v1/files/download/123?signature=x"), None)
        .await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let msg = body["base_resp"]["status_msg"].as_str().expect("msg");
    assert!(msg.contains("'expires'"), "{msg}");
}

/// Body mistakes in the client's words, never a Rust type's name; NUL in
/// `stop` refused as in messages; a negative `max_tokens` is out of range,
/// not missing (issue 13, point 9).
#[tokio::test]
async fn body_mistakes_speak_json_not_rust() {
    let s = Server::start().await;
    let (_, key) = s.admin("payg");
    let chat = |extra: serde_json::Value| {
        let mut b =
            json!({"model": "minimax-chat-v2", "messages": [{"role": "user", "content": "hi"}]});
        b.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        b
    };
    let text_of = |r: &Resp| -> String {
        [
            &r.body["error"]["message"],
            &r.body["base_resp"]["status_msg"],
        ]
        .iter()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(" ")
    };
    let no_rust = |msg: &str, what: &str| {
        for name in [
            "struct", "Request", "enum ", "u32", "i64", "sequence", "untagged",
        ] {
            assert!(!msg.contains(name), "{what}: {msg}");
        }
    };

    // `[]` as a body, on every surface.
    for path in [
        "/v1/chat/completions",
        "/openai/v1/chat/completions",
        "/anthropic/v1/messages",
        "/v1/text/chatcompletion_v2",
        "/v1/t2a_v2",
        "/v1/embeddings",
    ] {
        let r = s.post(path, &key, json!([])).await;
        let msg = text_of(&r);
        assert!(
            msg.contains("must be a JSON object"),
            "{path}: {:?}",
            r.body
        );
        no_rust(&msg, path);
    }
    let r = s.post("/v1/chat/completions", &key, json!([])).await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "body");

    // Wrong kinds of value name the field and what it takes.
    let r = s
        .post(
            "/v1/chat/completions",
            &key,
            chat(json!({"messages": "hi"})),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "messages");
    let msg = text_of(&r);
    assert!(msg.contains("must be a JSON array"), "{msg}");
    no_rust(&msg, "messages");
    let r = s
        .post("/v1/chat/completions", &key, chat(json!({"stop": 5})))
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "stop");
    no_rust(&text_of(&r), "stop: 5");

    // NUL in stop, as in messages.
    for stop in [json!(["\u{0}"]), json!("a\u{0}b")] {
        let r = s
            .post("/v1/chat/completions", &key, chat(json!({"stop": stop})))
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.detail("field"), "stop");
        assert!(text_of(&r).contains("NUL"), "{:?}", r.body);
    }
    let r = s
        .post(
            "/anthropic/v1/messages",
            &key,
            chat(json!({"max_tokens": 8, "stop_sequences": ["\u{0}"]})),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["type"], "error");
    assert!(
        text_of_anthropic(&r).contains("stop_sequences[0]"),
        "{:?}",
        r.body
    );

    // max_tokens out of range is out of range, on every chat surface.
    for v in [json!(-1), json!(0), json!(4_294_967_296_u64), json!("ten")] {
        let r = s
            .post("/v1/chat/completions", &key, chat(json!({"max_tokens": v})))
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.detail("field"), "max_tokens", "{v}");
        let msg = text_of(&r);
        assert!(msg.contains("from 1 to 4294967295"), "{v}: {msg}");

        let r = s
            .post(
                "/openai/v1/chat/completions",
                &key,
                chat(json!({"max_tokens": v})),
            )
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.body["error"]["param"], "max_tokens", "{v}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("from 1 to 4294967295")),
            "{v}: {:?}",
            r.body
        );

        let r = s
            .post(
                "/anthropic/v1/messages",
                &key,
                chat(json!({"max_tokens": v})),
            )
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
        let msg = text_of_anthropic(&r);
        assert!(msg.contains("max_tokens"), "{v}: {msg}");
        assert!(msg.contains("from 1 to 4294967295"), "{v}: {msg}");
        assert!(
            !msg.contains("required"),
            "{v}: out of range, not missing: {msg}"
        );
    }
    let r = s
        .post("/anthropic/v1/messages", &key, chat(json!({})))
        .await;
    assert!(text_of_anthropic(&r).contains("required"), "{:?}", r.body);
}

fn text_of_anthropic(r: &Resp) -> String {
    r.body["error"]["message"].as_str().unwrap_or("").to_owned()
}
