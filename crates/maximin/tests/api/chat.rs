//! Chat completions with the real default model (a small base model: tests
//! check behaviour — token counts, stops, seeds, streaming, schema-valid tool
//! calls — not the quality of its answers).

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{Resp, Server};

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "minimax-chat-v2",
        "messages": [{"role": "user", "content": "Write a short story about a lighthouse keeper."}],
        "max_tokens": 24,
        "temperature": 0.8,
        "seed": 7,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

/// Reads an SSE response into its `data:` payloads.
async fn sse(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let text = resp.text().await.expect("body");
    text.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn completions_count_tokens_honour_limits_and_are_reproducible_by_seed() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");

    let r = s.post("/v1/chat/completions", &key, chat(json!({}))).await;
    let d = r.assert_ok(200).clone();
    let text = d["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(!text.is_empty());
    assert_eq!(d["choices"][0]["message"]["role"], "assistant");
    assert_eq!(d["model"], "gemma-3-270m");
    let usage = &d["usage"];
    assert!(usage["prompt_tokens"].as_u64().expect("n") > 5);
    assert_eq!(usage["completion_tokens"], 24, "max_tokens reached: {d}");
    assert_eq!(d["choices"][0]["finish_reason"], "length");
    assert_eq!(r.body["meta"]["usage"], *usage);
    assert_eq!(r.body["meta"]["model"], "gemma-3-270m");

    // The same seed and input give the same output; max_tokens is a hard cap.
    let again = s.post("/v1/chat/completions", &key, chat(json!({}))).await;
    assert_eq!(
        again.body["data"]["choices"][0]["message"]["content"],
        text.as_str()
    );
    let short = s
        .post("/v1/chat/completions", &key, chat(json!({"max_tokens": 3})))
        .await;
    assert_eq!(short.body["data"]["usage"]["completion_tokens"], 3);

    // A stop string cuts the output before it, and is not part of it.
    let cut_at = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| i >= text.len() / 2 && !text[i..].starts_with(char::is_whitespace))
        .expect("a cut point");
    let stop: String = text[cut_at..].chars().take(3).collect();
    let r = s
        .post(
            "/v1/chat/completions",
            &key,
            chat(json!({"stop": [stop.clone()]})),
        )
        .await;
    let d = r.assert_ok(200);
    let stopped = d["choices"][0]["message"]["content"]
        .as_str()
        .expect("text");
    assert_eq!(d["choices"][0]["finish_reason"], "stop", "{d}");
    assert_eq!(stopped, &text[..text.find(&stop).expect("stop in text")]);

    // Usage is metered per key.
    let u = s.get("/v1/account/usage", &key).await;
    let by_model = u.assert_ok(200)["by_model"]
        .as_array()
        .expect("models")
        .clone();
    let gemma = by_model
        .iter()
        .find(|m| m["model"] == "gemma-3-270m")
        .expect("gemma usage");
    assert!(gemma["completion_tokens"].as_u64().expect("n") >= 24 + 24 + 3);
}

#[tokio::test]
async fn streaming_sends_deltas_that_add_up_to_the_same_text() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let whole = s.post("/v1/chat/completions", &key, chat(json!({}))).await;
    let text = whole.body["data"]["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .to_owned();

    let resp = s
        .http
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat(json!({"stream": true})))
        .send()
        .await
        .expect("send");
    let frames = sse(resp).await;
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).expect("chunk json"))
        .collect();
    let deltas: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(deltas.len() >= 5, "several deltas: {deltas:?}");
    assert_eq!(deltas.concat(), text);
    let last = chunks.last().expect("last chunk");
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["usage"]["completion_tokens"], 24);
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    // The stream's tokens are metered once it ends.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let u = s.get("/v1/account/usage", &key).await;
    assert_eq!(u.assert_ok(200)["total"]["completion_tokens"], 48);
}

#[tokio::test]
async fn tool_calls_come_back_as_schema_valid_json() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let tools = json!([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7}
                },
                "required": ["city", "unit", "days"],
                "additionalProperties": false
            }
        }
    }]);
    let schema = tools[0]["function"]["parameters"].clone();
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
    ] {
        let body = json!({
            "model": "minimax-chat-v2",
            "messages": [{"role": "user", "content": "What is the weather in Paris for the next 3 days?"}],
            "tools": tools, "tool_choice": choice, "max_tokens": 120, "seed": 1,
        });
        let r = s.post("/v1/chat/completions", &key, body).await;
        let d = r.assert_ok(200);
        assert_eq!(d["choices"][0]["finish_reason"], "tool_calls", "{d}");
        let call = &d["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().expect("string"))
                .expect("arguments parse as JSON");
        let validator = jsonschema::validator_for(&schema).expect("schema");
        assert!(
            validator.is_valid(&args),
            "arguments {args} violate the schema"
        );
    }

    // The tool's answer is accepted in the next turn.
    let body = json!({
        "model": "minimax-chat-v2",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\",\"days\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}
        ],
        "tools": tools, "max_tokens": 8,
    });
    let r = s.post("/v1/chat/completions", &key, body).await;
    r.assert_ok(200);

    // A tool_choice naming an unknown tool is the caller's mistake.
    let r = s
        .post(
            "/v1/chat/completions",
            &key,
            json!({"model": "minimax-chat-v2", "messages": [{"role": "user", "content": "x"}], "tools": tools,
                   "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "tool_choice");
}

#[tokio::test]
async fn overflow_is_refused_and_a_departed_client_frees_its_slot() {
    // One sequence and one queued request at most, to make slots visible.
    let s = Server::with_models("[engines]\nchat_slots = 1\nchat_queue = 1\nchat_context = 2048\n")
        .await;
    let (_, key) = s.admin("enterprise");

    let long = "lighthouse ".repeat(3000);
    let r = s
        .post(
            "/v1/chat/completions",
            &key,
            chat(json!({"messages": [{"role": "user", "content": long}]})),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "messages");
    assert_eq!(r.detail("context_window"), 2048);
    let r = s
        .post(
            "/v1/chat/completions",
            &key,
            chat(json!({"max_tokens": 5000})),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "max_tokens");

    // A long stream holds the only slot; a second request waits in the queue;
    // a third finds the queue full.
    let mut first = s
        .http
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat(json!({"stream": true, "max_tokens": 1900})))
        .send()
        .await
        .expect("send");
    assert_eq!(first.status(), 200);
    let _ = first.chunk().await.expect("first chunk");
    let queued = {
        let http = s.http.clone();
        let url = s.url("/v1/chat/completions");
        let key = key.clone();
        tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(&key)
                .json(&chat(json!({"max_tokens": 4})))
                .send()
                .await;
            Resp::from(r.expect("send")).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = s
        .post("/v1/chat/completions", &key, chat(json!({"max_tokens": 4})))
        .await;
    r.assert_error(429, "rate_limit_exceeded");
    assert_eq!(r.detail("reason"), "engine_queue_full");
    assert!(r.header("retry-after").is_some());

    // The client of the long stream goes away: its slot is freed at once, so
    // the queued request finishes long before 1,900 tokens could be decoded.
    drop(first);
    let queued = tokio::time::timeout(Duration::from_secs(20), queued)
        .await
        .expect("the queued request ran once the slot was freed")
        .expect("join");
    assert_eq!(queued.status, 200, "{:?}", queued.body);
    assert_eq!(queued.body["data"]["usage"]["completion_tokens"], 4);
}

/// A client that leaves a stream after its first deltas is metered for
/// what it was sent (the model, the prompt, a token per delta), on every
/// surface: leaving early is not a way to use a model for nothing.
#[tokio::test]
async fn a_stream_left_early_is_metered_for_what_it_sent() {
    use futures::StreamExt;
    let s = Server::with_models("").await;
    for (path, body) in [
        (
            "/v1/chat/completions",
            chat(json!({"stream": true, "max_tokens": 200})),
        ),
        (
            "/openai/v1/chat/completions",
            chat(json!({"stream": true, "max_tokens": 200, "model": "gemma-3-270m"})),
        ),
        (
            "/v1/text/chatcompletion_v2",
            chat(json!({"stream": true, "max_tokens": 200, "model": "gemma-3-270m"})),
        ),
        (
            "/anthropic/v1/messages",
            json!({"model": "gemma-3-270m", "max_tokens": 200, "stream": true,
                   "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]}),
        ),
    ] {
        // An account each: its usage is this stream's alone.
        let account = s.account("payg");
        let (_, key) = s.key(&account, &["--scope", "admin"]);
        let resp = s
            .http
            .post(s.url(path))
            .bearer_auth(&key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200, "{path}");
        // Read until a few deltas came, then hang up.
        let mut stream = resp.bytes_stream();
        let mut seen = String::new();
        while seen.matches("\"content\"").count() + seen.matches("text_delta").count() < 4 {
            let chunk = stream.next().await.expect("more").expect("bytes");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        drop(stream);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let u = s.get("/v1/account/usage", &key).await;
        let gemma = u.assert_ok(200)["by_model"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["model"] == "gemma-3-270m").cloned())
            .unwrap_or_else(|| panic!("{path}: no usage for the model: {:?}", u.body));
        let tokens = gemma["completion_tokens"].as_u64().expect("tokens");
        assert!(
            (1..200).contains(&tokens),
            "{path}: metered for what it sent, not nothing and not all: {tokens}"
        );
        assert!(
            gemma["prompt_tokens"].as_u64() > Some(0),
            "{path}: the prompt counts"
        );
    }
}
