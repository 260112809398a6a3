//! The compatibility surfaces driven by the official SDKs (`openai`,
//! `anthropic`, installed by scripts/check into a virtual environment named
//! by MAXIMIN_SDK_PYTHON), and the MiniMax-native text API over plain HTTP.
//! The Python side (tests/sdk/*.py) prints what the SDK returned; the
//! assertions are here.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::Server;

fn python() -> String {
    std::env::var("MAXIMIN_SDK_PYTHON").unwrap_or_else(|_| {
        panic!("MAXIMIN_SDK_PYTHON is not set: scripts/check makes a virtual environment with the openai and anthropic packages and sets it")
    })
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sdk")
        .join(name)
}

/// Runs one case of an SDK script against the server; its JSON output.
pub(crate) fn sdk(s: &Server, key: &str, file: &str, case: &str, env: &[(&str, &str)]) -> Value {
    let out = Command::new(python())
        .arg(script(file))
        .arg(case)
        .env("MAXIMIN_BASE", &s.base)
        .env("MAXIMIN_KEY", key)
        .envs(env.iter().copied())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{file} {case} failed:\n{stdout}\n{}\nserver log tail: {}",
        String::from_utf8_lossy(&out.stderr),
        s.output()
            .chars()
            .rev()
            .take(3000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{case}: no JSON ({e}): {stdout}"))
}

/// The (prompt, completion) tokens the SDK cases reported (`spent`).
pub(crate) fn sum_spent(cases: &[&Value]) -> (u64, u64) {
    cases.iter().fold((0, 0), |(p, c), v| {
        (
            p + v["spent"][0].as_u64().unwrap_or(0),
            c + v["spent"][1].as_u64().unwrap_or(0),
        )
    })
}

/// The key's usage of one model: (requests, prompt tokens, completion tokens).
pub(crate) async fn usage_of(s: &Server, key: &str, model: &str) -> (u64, u64, u64) {
    let u = s.get("/v1/account/usage", key).await;
    let by_model = u.assert_ok(200)["by_model"]
        .as_array()
        .expect("by_model")
        .clone();
    by_model
        .iter()
        .find(|m| m["model"] == model)
        .map(|m| {
            (
                m["requests"].as_u64().unwrap_or(0),
                m["prompt_tokens"].as_u64().unwrap_or(0),
                m["completion_tokens"].as_u64().unwrap_or(0),
            )
        })
        .unwrap_or((0, 0, 0))
}

#[tokio::test]
async fn the_openai_sdk_chats_calls_tools_writes_json_and_embeds() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");

    let chat = sdk(&s, &key, "openai_sdk.py", "chat", &[]);
    let text = chat["text"].as_str().expect("text");
    assert!(!text.is_empty(), "{chat}");
    assert_eq!(chat["object"], "chat.completion");
    assert_eq!(chat["model"], "gemma-3-270m");
    let usage = &chat["usage"];
    assert!(usage["prompt_tokens"].as_u64().expect("prompt") > 5);
    let completion = usage["completion_tokens"].as_u64().expect("completion");
    assert!((1..=24).contains(&completion));
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap_or(0) + completion)
    );
    // Same seed, temperature 0: the stream says the same, and ends with usage.
    assert_eq!(chat["stream_text"], chat["text"], "{chat}");
    assert_eq!(chat["stream_usage"], chat["usage"], "{chat}");
    assert!(chat["chunks"].as_u64().expect("chunks") >= 3);
    assert_eq!(chat["n2"]["status"], 400);
    assert_eq!(chat["n2"]["param"], "n");

    let tools = sdk(&s, &key, "openai_sdk.py", "tools", &[]);
    assert_eq!(tools["finish_reason"], "tool_calls", "{tools}");
    assert_eq!(tools["name"], "get_weather");
    assert!(tools["args"]["city"].is_string(), "{tools}");
    assert!(
        tools["answer"].as_str().is_some_and(|a| !a.is_empty()),
        "{tools}"
    );

    let j = sdk(&s, &key, "openai_sdk.py", "json_mode", &[]);
    assert!(
        j["object"].is_object() && j["object"].get("unparsed").is_none(),
        "{j}"
    );
    assert_eq!(j["object_finish"], "stop", "{j}");
    assert!(
        j["person"]["name"].is_string() && j["person"]["age"].is_i64(),
        "{j}"
    );

    let e = sdk(&s, &key, "openai_sdk.py", "embeddings", &[]);
    let floats = e["floats"].as_array().expect("floats");
    let b64 = e["base64"].as_array().expect("base64");
    assert_eq!(floats.len(), 3);
    for (f, b) in floats.iter().zip(b64) {
        let (f, b) = (f.as_array().expect("f"), b.as_array().expect("b"));
        assert_eq!(f.len(), 384);
        assert_eq!(f, b, "base64 decodes to the same floats");
    }
    let cos = |a: &Value, b: &Value| -> f64 {
        a.as_array()
            .expect("a")
            .iter()
            .zip(b.as_array().expect("b"))
            .map(|(x, y)| x.as_f64().unwrap_or(0.0) * y.as_f64().unwrap_or(0.0))
            .sum()
    };
    assert!(cos(&floats[0], &floats[1]) > cos(&floats[0], &floats[2]));
    assert_eq!(e["one"], 1);
    assert_eq!(e["dimensions_error"]["status"], 400, "{e}");
    assert!(e["usage"]["prompt_tokens"].as_u64().expect("tokens") > 5);

    let m = sdk(&s, &key, "openai_sdk.py", "models", &[]);
    let ids: Vec<&str> = m["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        ids.contains(&"gemma-3-270m") && ids.contains(&"all-minilm-l6-v2"),
        "{m}"
    );

    let a = sdk(&s, &key, "openai_sdk.py", "auth", &[]);
    assert_eq!(a["error"], "AuthenticationError", "{a}");
    assert_eq!(a["status"], 401);
    assert!(a["request_id"]
        .as_str()
        .is_some_and(|r| r.starts_with("req_")));

    // Speech through the SDK: real audio.
    let out = s.dir.path().join("speech.mp3");
    let sp = sdk(
        &s,
        &key,
        "openai_sdk.py",
        "speech",
        &[("MAXIMIN_OUT", out.to_str().expect("path"))],
    );
    assert!(sp["bytes"].as_u64().expect("bytes") > 1000);
    let pcm = maximin_audio::decode(&std::fs::read(&out).expect("mp3")).expect("decodes");
    assert!(pcm.duration_secs() > 1.0);

    // Every SDK request is in the key's usage, with the tokens the SDK saw.
    let (requests, prompt, completion) = usage_of(&s, &key, "gemma-3-270m").await;
    // chat 2, tools 2, JSON 2 (the refused n = 2 names no model).
    assert_eq!(requests, 6, "chat requests metered");
    let seen = sum_spent(&[&chat, &tools, &j]);
    assert_eq!((prompt, completion), seen, "metered vs reported to the SDK");
    let (requests, prompt, _) = usage_of(&s, &key, "all-minilm-l6-v2").await;
    assert_eq!(requests, 3);
    assert_eq!(prompt, sum_spent(&[&e]).0);
}

#[tokio::test]
async fn the_anthropic_sdk_chats_streams_and_calls_tools() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");

    let chat = sdk(&s, &key, "anthropic_sdk.py", "chat", &[]);
    assert_eq!(chat["type"], "message");
    assert_eq!(chat["role"], "assistant");
    assert!(
        chat["text"].as_str().is_some_and(|t| !t.is_empty()),
        "{chat}"
    );
    assert!(["end_turn", "max_tokens"].contains(&chat["stop_reason"].as_str().unwrap_or("")));
    assert!(chat["usage"]["input_tokens"].as_u64().expect("input") > 5);
    assert_eq!(chat["stream_text"], chat["text"], "{chat}");
    assert_eq!(
        chat["stream_usage"]["output_tokens"],
        chat["usage"]["output_tokens"]
    );
    let events: Vec<&str> = chat["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(events.first(), Some(&"message_start"), "{events:?}");
    assert_eq!(events.last(), Some(&"message_stop"), "{events:?}");
    for e in [
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
    ] {
        assert!(events.contains(&e), "{e} missing: {events:?}");
    }

    let tools = sdk(&s, &key, "anthropic_sdk.py", "tools", &[]);
    assert_eq!(tools["stop_reason"], "tool_use", "{tools}");
    assert_eq!(tools["name"], "get_weather");
    assert!(tools["input"]["city"].is_string(), "{tools}");
    assert!(
        tools["answer"].as_str().is_some_and(|a| !a.is_empty()),
        "{tools}"
    );
    assert_eq!(tools["stream_name"], "get_weather");
    assert!(tools["stream_input"]["city"].is_string(), "{tools}");

    let a = sdk(&s, &key, "anthropic_sdk.py", "auth", &[]);
    assert_eq!(a["error"], "AuthenticationError", "{a}");
    assert_eq!(a["status"], 401);
    assert_eq!(a["type"], "authentication_error");

    let (requests, prompt, completion) = usage_of(&s, &key, "gemma-3-270m").await;
    assert_eq!(requests, 5);
    assert_eq!(
        (prompt, completion),
        sum_spent(&[&chat, &tools]),
        "metered vs reported to the SDK"
    );
}

#[tokio::test]
async fn sdks_raise_their_rate_limit_errors_after_honouring_retry_after() {
    // One sequence and one queued request: long answers hold both.
    let s = Server::with_models("[engines]\nchat_slots = 1\nchat_queue = 1\nchat_context = 2048\n")
        .await;
    let account = s.account("payg");
    let (key_id, key) = s.key(&account, &["--scope", "admin"]);
    for file in ["openai_sdk.py", "anthropic_sdk.py"] {
        let r = sdk(&s, &key, file, "rate_limit", &[]);
        assert_eq!(r["error"], "RateLimitError", "{file}: {r}");
        assert_eq!(r["status"], 429);
        assert_eq!(r["retry_after"], "1");
        // Two retries, each after the 1 s the server asked for.
        let elapsed = r["elapsed"].as_f64().expect("elapsed");
        assert!(elapsed >= 2.0, "{file}: gave up after {elapsed:.2} s");
    }
    // Three refused attempts per SDK, each in the key's activity log.
    let log = s
        .cli(&["keys", "activity", &key_id, "--limit", "100"])
        .expect("activity");
    let refused = |endpoint: &str| {
        log.as_array()
            .expect("entries")
            .iter()
            .filter(|e| {
                e["status"] == 429 && e["endpoint"].as_str().unwrap_or("").contains(endpoint)
            })
            .count()
    };
    assert_eq!(refused("/openai/v1/chat/completions"), 3, "{log}");
    assert_eq!(refused("/anthropic/v1/messages"), 3, "{log}");
}

#[tokio::test]
async fn the_native_text_api_speaks_minimax() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let body = json!({
        "model": "minimax-chat-v2",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi."}],
        "max_completion_tokens": 16, "temperature": 0.5,
    });
    let r = s
        .post("/v1/text/chatcompletion_v2", &key, body.clone())
        .await;
    assert_eq!(r.status, 200);
    let b = &r.body;
    assert_eq!(b["base_resp"]["status_code"], 0, "{b}");
    assert_eq!(b["object"], "chat.completion");
    assert!(b["choices"][0]["message"]["content"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert_eq!(b["choices"][0]["message"]["role"], "assistant");
    assert_eq!(b["input_sensitive"], false);
    let u = &b["usage"];
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(
            u["prompt_tokens"].as_u64().unwrap_or(0) + u["completion_tokens"].as_u64().unwrap_or(0)
        )
    );
    assert!(r.header("x-ratelimit-limit").is_some() && r.header("x-request-id").is_some());

    // Streamed: chunks, then the whole completion with usage, then [DONE].
    let mut sb = body.clone();
    sb["stream"] = json!(true);
    let text = s
        .http
        .post(s.url("/v1/text/chatcompletion_v2"))
        .bearer_auth(&key)
        .json(&sb)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    let frames: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .collect();
    assert_eq!(frames.last(), Some(&"[DONE]"), "{text}");
    let last: Value = serde_json::from_str(frames[frames.len() - 2]).expect("aggregate");
    assert_eq!(last["object"], "chat.completion");
    assert_eq!(last["base_resp"]["status_code"], 0);
    let streamed: String = frames[..frames.len() - 2]
        .iter()
        .map(|f| serde_json::from_str::<Value>(f).expect("chunk"))
        .map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        streamed,
        last["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
    );

    // Native errors: HTTP 200, base_resp, the field named.
    let r = s
        .post(
            "/v1/text/chatcompletion_v2",
            &key,
            json!({"model": "gemma-3-270m", "messages": [], "tool_choice": {"type": "function"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["base_resp"]["status_code"], 2013, "{:?}", r.body);
    assert!(r.body["base_resp"]["status_msg"]
        .as_str()
        .unwrap_or("")
        .contains("tool_choice"));
    let r = s
        .http
        .post(s.url("/v1/text/chatcompletion_v2"))
        .bearer_auth("mmx_live_wrong")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["base_resp"]["status_code"], 1004, "{v}");

    // Native embeddings: texts and type; vectors in order; errors as base_resp.
    let r = s
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "embo-01", "texts": ["a cat", "a kitten", "tax law"], "type": "db"}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{:?}", r.body);
    let v = r.body["vectors"].as_array().expect("vectors");
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].as_array().expect("vec").len(), 384);
    assert!(r.body["total_tokens"].as_u64().expect("tokens") > 3);
    let r = s
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "all-minilm-l6-v2", "texts": ["x"], "type": "both"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["base_resp"]["status_code"], 2013, "{:?}", r.body);
    assert!(r.body["base_resp"]["status_msg"]
        .as_str()
        .unwrap_or("")
        .contains("type"));

    let (requests, prompt, completion) = usage_of(&s, &key, "gemma-3-270m").await;
    assert!(
        requests >= 2 && prompt > 10 && completion > 0,
        "{requests} {prompt} {completion}"
    );
}

#[tokio::test]
async fn every_surface_shares_limits_ids_and_idempotency_and_maps_errors() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let cases = [
        (
            "/v1/embeddings",
            json!({"model": "all-minilm-l6-v2", "input": ["one", "two"]}),
        ),
        (
            "/openai/v1/embeddings",
            json!({"model": "all-minilm-l6-v2", "input": ["one", "two"]}),
        ),
        (
            "/v1/embeddings",
            json!({"model": "all-minilm-l6-v2", "texts": ["one", "two"], "type": "query"}),
        ),
        (
            "/anthropic/v1/messages",
            json!({"model": "gemma-3-270m", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}),
        ),
        (
            "/v1/text/chatcompletion_v2",
            json!({"model": "gemma-3-270m", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}),
        ),
    ];
    for (i, (path, body)) in cases.iter().enumerate() {
        let send = || {
            s.http
                .post(s.url(path))
                .header("x-api-key", &key)
                .header("anthropic-version", "2023-06-01")
                .header("idempotency-key", format!("same-request-{i}"))
                .json(body)
                .send()
        };
        let first = send().await.expect("send");
        let h1 = first.headers().clone();
        let b1 = first.text().await.expect("body");
        let second = send().await.expect("send");
        let h2 = second.headers().clone();
        let b2 = second.text().await.expect("body");
        for h in [&h1, &h2] {
            for name in [
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
                "x-request-id",
            ] {
                assert!(h.get(name).is_some(), "{path}: no {name}");
            }
        }
        assert_eq!(h1["idempotent-replayed"], "false", "{path}");
        assert_eq!(h2["idempotent-replayed"], "true", "{path}");
        assert_eq!(b1, b2, "{path}: the replay is the first response");
        assert_ne!(h1["x-request-id"], h2["x-request-id"]);
    }

    // One mistake, each surface's way.
    let nope = |path: &'static str| {
        let body = if path.contains("embeddings") {
            json!({"model": "no-such-model", "input": "x"})
        } else {
            json!({"model": "no-such-model", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
        };
        s.post(path, &key, body)
    };
    let r = nope("/openai/v1/chat/completions").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["type"], "not_found_error", "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "model_not_found");
    assert_eq!(r.body["error"]["param"], "model");
    let r = nope("/anthropic/v1/messages").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["type"], "error");
    assert_eq!(r.body["error"]["type"], "not_found_error", "{:?}", r.body);
    assert!(r.body["request_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("req_")));
    let r = nope("/v1/text/chatcompletion_v2").await;
    assert_eq!(r.status, 200);
    assert_ne!(r.body["base_resp"]["status_code"], 0, "{:?}", r.body);
    let r = nope("/v1/chat/completions").await;
    r.assert_error(404, "model_not_found");
    // A missing field, named in every shape.
    let r = s
        .post(
            "/anthropic/v1/messages",
            &key,
            json!({"model": "gemma-3-270m", "messages": []}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("max_tokens"));
    let r = s
        .post(
            "/openai/v1/embeddings",
            &key,
            json!({"model": "all-minilm-l6-v2", "input": "x", "encoding_format": "hex"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["param"], "encoding_format");
}
