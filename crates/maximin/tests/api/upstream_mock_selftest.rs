//! The upstream mocks (`upstream_mock.rs`) checked on their own, with a
//! plain HTTP client: the shapes the routing tests rely on, and each fault.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::upstream_mock::{tone_ms, vector_for, Behaviour, MockKind, MockUpstream};

async fn post(url: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .bearer_auth("sk-upstream")
        .json(&body)
        .send()
        .await
        .expect("send")
}

async fn post_json(url: &str, body: Value) -> (u16, Value) {
    let resp = post(url, body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

/// The `data:` payloads of a whole SSE body.
async fn sse(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.expect("sse body");
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn parse(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).expect("event json"))
        .collect()
}

fn chat_body(user: &str, stream: bool) -> Value {
    json!({
        "model": "gpt-mock",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": user},
        ],
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "other", "description": "d", "parameters": {"type": "object"}}},
    ])
}

const USER: &str = "mail me at [EMAIL_1] please";

#[tokio::test]
async fn upstream_mock_openai_chat() {
    let mock = MockUpstream::start(MockKind::OpenAi).await;
    let url = format!("{}/v1/chat/completions", mock.url);

    let (status, v) = post_json(&url, chat_body(USER, false)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-mock");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("echo: {USER}")
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // 2 + 5 words in, 6 out.
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13})
    );

    let events = sse(post(&url, chat_body(USER, true)).await).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks = parse(&events);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(pieces.concat(), format!("echo: {USER}"));
    assert!(
        pieces.iter().all(|p| !p.contains("[EMAIL_1]")),
        "{pieces:?}"
    );
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(chunks[n - 1]["usage"]["completion_tokens"], 6);

    // Without include_usage: no usage chunk.
    let mut body = chat_body(USER, true);
    body["stream_options"] = json!({"include_usage": false});
    let chunks = parse(&sse(post(&url, body).await).await);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        chunks.last().expect("chunk")["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn upstream_mock_openai_tool_call() {
    let mock = MockUpstream::start(MockKind::OpenAi).await;
    let url = format!("{}/v1/chat/completions", mock.url);
    let mut body = chat_body("please call_tool now", false);
    body["tools"] = tools();

    let (_, v) = post_json(&url, body.clone()).await;
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().expect("args"))
        .expect("args json");
    assert_eq!(args, json!({"echo": "please call_tool now"}));

    body["stream"] = json!(true);
    let chunks = parse(&sse(post(&url, body).await).await);
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["function"]["name"], "lookup");
    assert!(first["id"].as_str().is_some());
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        streamed,
        call["function"]["arguments"].as_str().expect("args")
    );
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}

#[tokio::test]
async fn upstream_mock_minimax_chat() {
    let mock = MockUpstream::start(MockKind::MiniMax).await;
    let url = format!("{}/v1/text/chatcompletion_v2", mock.url);

    let (status, v) = post_json(&url, chat_body(USER, false)).await;
    assert_eq!(status, 200);
    assert_eq!(v["base_resp"]["status_code"], 0);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("echo: {USER}")
    );
    assert_eq!(v["choices"][0]["message"]["name"], "MiniMax AI");
    assert_eq!(v["usage"]["total_tokens"], 13);
    assert_eq!(v["input_sensitive"], false);

    let events = sse(post(&url, chat_body(USER, true)).await).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks = parse(&events);
    let pieces: Vec<&str> = chunks
        .iter()
        .filter(|c| c["object"] == "chat.completion.chunk")
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(pieces.concat(), format!("echo: {USER}"));
    assert!(pieces.iter().all(|p| !p.contains("[EMAIL_1]")));
    let last = chunks.last().expect("aggregate");
    assert_eq!(last["object"], "chat.completion");
    assert_eq!(
        last["base_resp"],
        json!({"status_code": 0, "status_msg": "success"})
    );
    assert_eq!(last["usage"]["completion_tokens"], 6);
    assert_eq!(
        last["choices"][0]["message"]["content"],
        format!("echo: {USER}")
    );

    // A tool call: in the finishing chunk and the aggregate.
    let mut body = chat_body("call_tool with x", false);
    body["tools"] = tools();
    let (_, v) = post_json(&url, body.clone()).await;
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup");
    assert!(call["id"]
        .as_str()
        .expect("id")
        .starts_with("call_function_"));
    body["stream"] = json!(true);
    let chunks = parse(&sse(post(&url, body).await).await);
    let finishing = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"] == "tool_calls")
        .expect("finish chunk");
    assert_eq!(
        finishing["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );

    // Not MiniMax's shape: 2013 at HTTP 200.
    let (status, v) = post_json(&url, json!({"model": "m", "prompt": "hi"})).await;
    assert_eq!(status, 200);
    assert_eq!(v["base_resp"]["status_code"], 2013);
}

#[tokio::test]
async fn upstream_mock_embeddings() {
    let openai = MockUpstream::start(MockKind::OpenAi).await;
    let url = format!("{}/v1/embeddings", openai.url);
    let (status, v) = post_json(&url, json!({"model": "e", "input": ["one two", "three"]})).await;
    assert_eq!(status, 200);
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let got: Vec<f32> = serde_json::from_value(v["data"][0]["embedding"].clone()).expect("floats");
    assert_eq!(got, vector_for("one two"));
    let norm: f32 = got.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-5 && got.len() == 8);
    assert_ne!(vector_for("one two"), vector_for("three"));
    let (_, v) = post_json(
        &url,
        json!({"model": "e", "input": "one two", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(v["data"][0]["embedding"].as_str().expect("b64").len(), 44); // 32 bytes

    let minimax = MockUpstream::start(MockKind::MiniMax).await;
    let url = format!("{}/v1/embeddings", minimax.url);
    let (status, v) = post_json(
        &url,
        json!({"model": "embo-01", "texts": ["one two", "three"], "type": "db"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["base_resp"]["status_code"], 0);
    assert_eq!(v["total_tokens"], 3);
    let got: Vec<Vec<f32>> = serde_json::from_value(v["vectors"].clone()).expect("vectors");
    assert_eq!(got, vec![vector_for("one two"), vector_for("three")]);
    let (status, v) = post_json(&url, json!({"model": "embo-01", "input": ["x"]})).await;
    assert_eq!(
        (status, v["base_resp"]["status_code"].clone()),
        (200, json!(2013))
    );
}

fn t2a_body(format: &str, stream: bool) -> Value {
    json!({
        "model": "speech-02-turbo",
        "text": "Hello there.",
        "stream": stream,
        "voice_setting": {"voice_id": "male-qn-qingse"},
        "audio_setting": {"format": format, "sample_rate": 16000},
    })
}

#[tokio::test]
async fn upstream_mock_minimax_t2a() {
    let mock = MockUpstream::start(MockKind::MiniMax).await;
    let url = format!("{}/v1/t2a_v2", mock.url);

    let (_, v) = post_json(&url, t2a_body("wav", false)).await;
    assert_eq!(v["base_resp"]["status_code"], 0, "{v}");
    assert_eq!(v["data"]["status"], 2);
    let wav = hex::decode(v["data"]["audio"].as_str().expect("hex")).expect("hex audio");
    assert_eq!((&wav[..4], &wav[8..12]), (&b"RIFF"[..], &b"WAVE"[..]));
    let info = &v["extra_info"];
    assert_eq!(info["audio_length"], tone_ms("Hello there."));
    assert_eq!(info["audio_sample_rate"], 16000);
    assert_eq!(info["audio_size"], wav.len());
    assert_eq!(info["usage_characters"], 12);
    assert_eq!(info["audio_format"], "wav");
    let pcm = maximin_audio::decode(&wav).expect("decode wav");
    assert_eq!((pcm.sample_rate, pcm.frames()), (16000, 16000 * 720 / 1000));

    let (_, v) = post_json(&url, t2a_body("mp3", false)).await;
    let mp3 = hex::decode(v["data"]["audio"].as_str().expect("hex")).expect("hex audio");
    assert!(mp3.starts_with(b"ID3") || (mp3[0] == 0xff && mp3[1] & 0xe0 == 0xe0));
    let pcm = maximin_audio::decode(&mp3).expect("decode mp3");
    assert!(
        (pcm.duration_secs() - 0.72).abs() < 0.05,
        "{}",
        pcm.duration_secs()
    );

    // Streamed: hex chunks (status 1), then status 2 with the whole audio.
    let chunks = parse(&sse(post(&url, t2a_body("mp3", true)).await).await);
    assert!(chunks.len() >= 3, "{}", chunks.len());
    let (last, parts) = chunks.split_last().expect("chunks");
    assert!(parts
        .iter()
        .all(|c| c["data"]["status"] == 1 && c["base_resp"]["status_code"] == 0));
    let joined: Vec<u8> = parts
        .iter()
        .flat_map(|c| hex::decode(c["data"]["audio"].as_str().expect("hex")).expect("hex"))
        .collect();
    assert_eq!(last["data"]["status"], 2);
    assert_eq!(last["base_resp"]["status_msg"], "success");
    assert_eq!(
        hex::decode(last["data"]["audio"].as_str().expect("hex")).expect("hex"),
        joined
    );
    assert_eq!(last["extra_info"]["audio_size"], joined.len());
    maximin_audio::decode(&joined).expect("decode streamed mp3");

    let mut bad = t2a_body("mp3", false);
    bad["audio_setting"]["sample_rate"] = json!(12345);
    let (status, v) = post_json(&url, bad).await;
    assert_eq!(
        (status, v["base_resp"]["status_code"].clone()),
        (200, json!(2013))
    );
}

#[tokio::test]
async fn upstream_mock_openai_speech() {
    let mock = MockUpstream::start(MockKind::OpenAi).await;
    let url = format!("{}/v1/audio/speech", mock.url);
    for (format, content_type) in [("mp3", "audio/mpeg"), ("wav", "audio/wav")] {
        let resp = post(&url, json!({"model": "tts-1", "input": "Hello there.", "voice": "alloy", "response_format": format})).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], content_type);
        let bytes = resp.bytes().await.expect("audio");
        let pcm = maximin_audio::decode(&bytes).expect("decode");
        assert_eq!(pcm.sample_rate, 24000);
        assert!(
            (pcm.duration_secs() - 0.72).abs() < 0.05,
            "{format} {}",
            pcm.duration_secs()
        );
    }
    let (status, v) = post_json(&url, json!({"model": "tts-1", "voice": "alloy"})).await;
    assert_eq!((status, v["error"]["param"].clone()), (400, json!("input")));
}

#[tokio::test]
async fn upstream_mock_fail_then_recover() {
    let mock = MockUpstream::start(MockKind::OpenAi).await;
    let url = format!("{}/v1/chat/completions", mock.url);
    mock.behave(Behaviour::Fail {
        status: 429,
        retry_after: Some(3),
        times: 2,
    });
    // A health check sees the failure but does not use one up.
    let health = reqwest::get(format!("{}/health", mock.url))
        .await
        .expect("health");
    assert_eq!(health.status(), 429);
    for _ in 0..2 {
        let resp = post(&url, chat_body("hi", false)).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "3");
        let v: Value = resp.json().await.expect("json");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    }
    let (status, v) = post_json(&url, chat_body("hi", false)).await;
    assert_eq!(
        (status, v["choices"][0]["message"]["content"].clone()),
        (200, json!("echo: hi"))
    );
    assert_eq!(mock.hits(), 3);
    assert_eq!(mock.hits_on("/health"), 1);

    let minimax = MockUpstream::start(MockKind::MiniMax).await;
    let url = format!("{}/v1/text/chatcompletion_v2", minimax.url);
    minimax.behave(Behaviour::Fail {
        status: 503,
        retry_after: None,
        times: 1,
    });
    let resp = post(&url, chat_body("hi", false)).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_none());
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["base_resp"]["status_code"], 1000);
    assert_eq!(post_json(&url, chat_body("hi", false)).await.0, 200);

    // Business errors: HTTP 200 + base_resp on MiniMax, a status on OpenAI.
    minimax.behave(Behaviour::Code {
        code: 1002,
        times: 1,
    });
    let (status, v) = post_json(&url, chat_body("hi", true)).await;
    assert_eq!(
        (status, v["base_resp"]["status_code"].clone()),
        (200, json!(1002))
    );
    assert_eq!(
        post_json(&url, chat_body("hi", false)).await.1["base_resp"]["status_code"],
        0
    );
    mock.behave(Behaviour::Code {
        code: 1002,
        times: 1,
    });
    let (status, v) = post_json(
        &format!("{}/v1/chat/completions", mock.url),
        chat_body("hi", false),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (429, json!("rate_limit_exceeded"))
    );
}

#[tokio::test]
async fn upstream_mock_hang_times_out_and_stop_cuts() {
    let mock = MockUpstream::start(MockKind::OpenAi).await;
    mock.behave(Behaviour::Hang);
    let url = format!("{}/v1/chat/completions", mock.url);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let err = client
        .post(&url)
        .json(&chat_body("hi", false))
        .send()
        .await
        .expect_err("hangs");
    assert!(err.is_timeout(), "{err}");

    // A request still hanging when the upstream dies sees its connection cut.
    let waiting = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&chat_body("hi", false))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = mock.url.clone();
    assert_eq!(mock.hits(), 2);
    mock.stop().await;
    let cut = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("cut at once")
        .expect("task");
    assert!(cut.is_err());
    let refused = reqwest::get(format!("{base}/health")).await;
    assert!(refused.is_err_and(|e| e.is_connect()));
}

/// Reads a body until it ends or breaks: (the `data:` payloads, whether it broke).
async fn read_until_cut(resp: reqwest::Response) -> (Vec<String>, bool) {
    let mut stream = resp.bytes_stream();
    let mut text = Vec::new();
    let mut broke = false;
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(b) => text.extend_from_slice(&b),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let events = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_owned)
        .collect();
    (events, broke)
}

#[tokio::test]
async fn upstream_mock_dies_mid_stream() {
    for (kind, path) in [
        (MockKind::OpenAi, "/v1/chat/completions"),
        (MockKind::MiniMax, "/v1/text/chatcompletion_v2"),
    ] {
        let mock = MockUpstream::start(kind).await;
        mock.behave(Behaviour::DieMidStream { chunks: 3 });
        let url = format!("{}{path}", mock.url);
        let resp = post(&url, chat_body(USER, true)).await;
        assert_eq!(resp.status(), 200);
        let (events, broke) = read_until_cut(resp).await;
        assert!(broke, "{kind:?}: the stream ends in an error");
        assert_eq!(events.len(), 3, "{kind:?}: {events:?}");
        assert!(!events.iter().any(|e| e == "[DONE]"));

        // Not streamed: half a body, then the cut.
        let resp = post(&url, chat_body(USER, false)).await;
        let promised = resp.content_length().expect("content-length");
        let mut stream = resp.bytes_stream();
        let mut got = 0;
        let mut broke = false;
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(b) => got += b.len() as u64,
                Err(_) => broke = true,
            }
        }
        assert!(
            broke && got == promised / 2,
            "{kind:?}: {got} of {promised}"
        );
    }
}

#[tokio::test]
async fn upstream_mock_expect_key_and_received() {
    let openai = MockUpstream::start(MockKind::OpenAi).await;
    openai.expect_key("sk-upstream");
    let url = format!("{}/v1/chat/completions?api-version=1", openai.url);
    let wrong = reqwest::Client::new()
        .post(&url)
        .bearer_auth("sk-wrong")
        .header("X-Test", "yes")
        .json(&chat_body("hi", false))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 401);
    let v: Value = wrong.json().await.expect("json");
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert_eq!(post_json(&url, chat_body("hi", false)).await.0, 200);
    let health = reqwest::get(format!("{}/health", openai.url))
        .await
        .expect("health");
    assert_eq!(health.status(), 200);

    let got = openai.received();
    assert_eq!(got.len(), 3);
    let first = &got[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(first.query.as_deref(), Some("api-version=1"));
    assert_eq!(first.header("authorization"), Some("Bearer sk-wrong"));
    assert_eq!(first.header("x-test"), Some("yes"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.body, chat_body("hi", false));
    assert!(got[1].at >= first.at);

    let minimax = MockUpstream::start(MockKind::MiniMax).await;
    assert_eq!(
        (openai.kind, minimax.kind),
        (MockKind::OpenAi, MockKind::MiniMax)
    );
    assert!(minimax.url.starts_with("http://127.0.0.1:") && !minimax.url.ends_with('/'));
    minimax.expect_key("sk-upstream");
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/t2a_v2", minimax.url))
        .json(&t2a_body("mp3", false))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["base_resp"]["status_code"], 1004);
    assert!(v.get("data").is_none());
}
