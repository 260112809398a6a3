//! The privacy canary, on success: a unique string goes into the prompt or
//! text of a request on every inference surface, each request is answered
//! for real by the local models, and afterwards the string is nowhere in the
//! server's data dir (the database with its WAL, the blobs, every other file)
//! nor in what the server printed with debug logging on.
//!
//! `privacy.rs` proves the same for requests that fail (its server has no
//! models); this proves it for the path where content really flows: through
//! the engines, into stored answers (idempotent replays, audio and subtitle
//! files, async speech tasks) and back out. Content that the server keeps is
//! sealed under the master key, so the canary must never appear in plaintext.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{rand_suffix, Resp, Server};
use crate::speech_async::{member, output, wait};

/// A POST with a key and a JSON body that also carries the canary in its
/// headers, as `privacy.rs` sends them.
fn post(s: &Server, canary: &str, path: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
    s.http
        .post(s.url(path))
        .bearer_auth(key)
        .header("x-canary", canary)
        .header("user-agent", canary)
        .header("x-request-id", canary)
        .json(body)
}

async fn send(req: reqwest::RequestBuilder) -> Resp {
    Resp::from(req.send().await.expect("send")).await
}

/// The non-empty string at `pointer` in `body`: a real answer.
fn answer(body: &Value, pointer: &str, what: &str) -> String {
    let text = body
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what}: no text at {pointer} in {body}"));
    assert!(!text.is_empty(), "{what}: an empty answer in {body}");
    text.to_owned()
}

/// Sends a streaming request and returns the `data:` payloads of its events,
/// after checking that it is a 200 event stream.
async fn sse(req: reqwest::RequestBuilder, what: &str) -> Vec<String> {
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 200, "{what}: {text}");
    assert!(ct.starts_with("text/event-stream"), "{what}: {ct}: {text}");
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim().to_owned())
        .collect()
}

/// The text of an OpenAI-style stream (`chat.completion.chunk` deltas, then
/// `[DONE]`): no error on the way, and not empty.
fn streamed_text(frames: &[String], what: &str) -> String {
    assert_eq!(
        frames.last().map(String::as_str),
        Some("[DONE]"),
        "{what}: {frames:?}"
    );
    let mut text = String::new();
    for f in &frames[..frames.len() - 1] {
        let v: Value = serde_json::from_str(f)
            .unwrap_or_else(|e| panic!("{what}: a frame is not JSON ({e}): {f}"));
        assert!(v.get("error").is_none(), "{what}: {v}");
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    assert!(!text.is_empty(), "{what}: nothing streamed: {frames:?}");
    text
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON event of the socket; `None` once the server has closed.
async fn event(ws: &mut Socket) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("an event within 60 s")?;
        match msg.expect("frame") {
            Message::Text(t) => {
                return Some(serde_json::from_str(t.as_str()).expect("every event is JSON"))
            }
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

async fn ws_send(ws: &mut Socket, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// Every file under the data dir, not following links, and not under the
/// models dir: `Server::with_models` links the shared, provisioned models
/// (gigabytes of weights the server only reads) in as `models`.
fn files_under(dir: &Path, models: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        let t = e.file_type().expect("type");
        if p == models || t.is_symlink() {
            continue;
        }
        if t.is_dir() {
            files_under(&p, models, out);
        } else if t.is_file() {
            out.push(p);
        }
    }
}

/// Successful answers from the real local models on every surface (chat on
/// the platform, OpenAI, Anthropic and native routes, plain and streamed;
/// embeddings on two; speech whole, streamed, as a link with subtitles,
/// OpenAI's, over WebSocket and as an async task; an idempotent replay) carry
/// a unique canary in their prompt, text and headers. Once the server has
/// stopped, the canary is in none of the files under its data dir, read
/// byte for byte, and not in anything it printed at debug level — although
/// it was stored: the replay, the subtitle files and the async task's output
/// hand it back, so it is at rest only sealed.
#[tokio::test]
async fn answered_content_reaches_neither_disk_nor_logs_in_plaintext() {
    let mut s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let canary = format!("CANARY-{}", rand_suffix());
    let canary = canary.as_str();

    // Chat: short answers, the canary in the prompt.
    let messages =
        json!([{"role": "user", "content": format!("Remember the code {canary}. Now say hello.")}]);

    // The platform's chat completions, whole and streamed.
    let chat =
        json!({"model": "minimax-chat-v2", "messages": messages, "max_tokens": 8, "seed": 7});
    let r = send(post(&s, canary, "/v1/chat/completions", &key, &chat)).await;
    let d = r.assert_ok(200);
    answer(d, "/choices/0/message/content", "/v1/chat/completions");
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let frames = sse(
        post(&s, canary, "/v1/chat/completions", &key, &streamed),
        "/v1/chat/completions streamed",
    )
    .await;
    streamed_text(&frames, "/v1/chat/completions streamed");

    // OpenAI's chat completions, whole and streamed.
    let openai = json!({"model": "gemma-3-270m", "messages": messages, "max_tokens": 8});
    let r = send(post(
        &s,
        canary,
        "/openai/v1/chat/completions",
        &key,
        &openai,
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["object"], "chat.completion", "{:?}", r.body);
    answer(
        &r.body,
        "/choices/0/message/content",
        "/openai/v1/chat/completions",
    );
    let mut streamed = openai.clone();
    streamed["stream"] = json!(true);
    let frames = sse(
        post(&s, canary, "/openai/v1/chat/completions", &key, &streamed),
        "/openai/v1/chat/completions streamed",
    )
    .await;
    streamed_text(&frames, "/openai/v1/chat/completions streamed");

    // Anthropic's messages, whole and streamed.
    let anthropic = json!({"model": "gemma-3-270m", "max_tokens": 8, "messages": messages});
    let r = send(
        post(&s, canary, "/anthropic/v1/messages", &key, &anthropic)
            .header("anthropic-version", "2023-06-01"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["type"], "message", "{:?}", r.body);
    answer(&r.body, "/content/0/text", "/anthropic/v1/messages");
    let mut streamed = anthropic.clone();
    streamed["stream"] = json!(true);
    let frames = sse(
        post(&s, canary, "/anthropic/v1/messages", &key, &streamed)
            .header("anthropic-version", "2023-06-01"),
        "/anthropic/v1/messages streamed",
    )
    .await;
    let events: Vec<Value> = frames
        .iter()
        .map(|f| serde_json::from_str(f).expect("every Anthropic event is JSON"))
        .collect();
    assert!(
        events.iter().all(|e| e["type"] != "error"),
        "/anthropic/v1/messages streamed: {events:?}"
    );
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some(json!("message_stop")),
        "{events:?}"
    );
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert!(!text.is_empty(), "nothing streamed: {events:?}");

    // The MiniMax-native text API, whole and streamed.
    let native =
        json!({"model": "minimax-chat-v2", "messages": messages, "max_completion_tokens": 8});
    let r = send(post(
        &s,
        canary,
        "/v1/text/chatcompletion_v2",
        &key,
        &native,
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{:?}", r.body);
    answer(
        &r.body,
        "/choices/0/message/content",
        "/v1/text/chatcompletion_v2",
    );
    let mut streamed = native.clone();
    streamed["stream"] = json!(true);
    let frames = sse(
        post(&s, canary, "/v1/text/chatcompletion_v2", &key, &streamed),
        "/v1/text/chatcompletion_v2 streamed",
    )
    .await;
    streamed_text(&frames, "/v1/text/chatcompletion_v2 streamed");
    let aggregate: Value =
        serde_json::from_str(&frames[frames.len() - 2]).expect("the aggregate is JSON");
    assert_eq!(aggregate["base_resp"]["status_code"], 0, "{aggregate}");

    // An idempotent replay: the answer is stored (sealed) and handed back.
    let idem = format!("replay-{canary}");
    let first = send(
        post(&s, canary, "/v1/chat/completions", &key, &chat)
            .header("idempotency-key", idem.as_str()),
    )
    .await;
    answer(
        first.assert_ok(200),
        "/choices/0/message/content",
        "the first of two",
    );
    assert_eq!(first.header("idempotent-replayed"), Some("false"));
    let second = send(
        post(&s, canary, "/v1/chat/completions", &key, &chat)
            .header("idempotency-key", idem.as_str()),
    )
    .await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.body, first.body, "the replay is the first answer");

    // Embeddings, on the platform's route and OpenAI's.
    let input = json!([format!("The code is {canary}."), canary]);
    let r = send(post(
        &s,
        canary,
        "/v1/embeddings",
        &key,
        &json!({"model": "minimax-embed-v1", "input": input}),
    ))
    .await;
    let e = r.assert_ok(200)["embeddings"]
        .as_array()
        .expect("embeddings")
        .clone();
    assert_eq!(e.len(), 2);
    for item in &e {
        assert_eq!(item["embedding"].as_array().map(Vec::len), Some(384));
    }
    let r = send(post(
        &s,
        canary,
        "/openai/v1/embeddings",
        &key,
        &json!({"model": "all-minilm-l6-v2", "input": input}),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let e = r.body["data"].as_array().expect("data");
    assert_eq!(e.len(), 2);
    for item in e {
        assert_eq!(item["embedding"].as_array().map(Vec::len), Some(384));
    }

    // Speech: one short sentence with the canary in it.
    let sentence = format!("The code {canary} is spoken aloud.");

    // Whole, as hex audio.
    let r = send(post(
        &s,
        canary,
        "/v1/t2a_v2",
        &key,
        &json!({"model": "speech-2.8-turbo", "text": sentence,
                "voice_setting": {"voice_id": "English_expressive_narrator"}}),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{:?}", r.body);
    let audio = hex::decode(r.body["data"]["audio"].as_str().expect("audio hex")).expect("hex");
    assert!(!audio.is_empty(), "no audio");

    // Streamed.
    let frames = sse(
        post(
            &s,
            canary,
            "/v1/t2a_v2",
            &key,
            &json!({"model": "speech-2.8-turbo", "text": sentence, "stream": true,
                    "voice_setting": {"voice_id": "English_expressive_narrator"}}),
        ),
        "/v1/t2a_v2 streamed",
    )
    .await;
    let frames: Vec<Value> = frames
        .iter()
        .map(|f| serde_json::from_str(f).expect("every speech frame is JSON"))
        .collect();
    assert!(
        frames.iter().any(|f| f["data"]["status"] == 1
            && f["data"]["audio"].as_str().is_some_and(|a| !a.is_empty())),
        "no audio chunk: {frames:?}"
    );
    let last = frames.last().expect("frames");
    assert_eq!(last["data"]["status"], 2, "{last}");
    assert_eq!(last["base_resp"]["status_code"], 0, "{last}");

    // As a link, with subtitles: both are files the server keeps, and the
    // subtitles hold the sentence, canary included.
    let r = send(post(
        &s,
        canary,
        "/v1/t2a_v2",
        &key,
        &json!({"model": "speech-2.8-hd", "text": sentence,
                "voice_setting": {"voice_id": "English_expressive_narrator"},
                "output_format": "url", "subtitle_enable": true}),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{:?}", r.body);
    let url = r.body["data"]["audio"].as_str().expect("url");
    let (status, audio) = s.get_bytes(url, None).await;
    assert_eq!(status, 200);
    assert!(!audio.is_empty(), "no audio at the link");
    let subs_url = r.body["data"]["subtitle_file"]
        .as_str()
        .expect("subtitle_file");
    let (status, subs) = s.get_bytes(subs_url, None).await;
    assert_eq!(status, 200);
    let subs: Vec<Value> = serde_json::from_slice(&subs).expect("subtitles");
    let said: String = subs
        .iter()
        .filter_map(|seg| seg["text"].as_str())
        .collect::<String>()
        .split_whitespace()
        .collect();
    assert!(
        said.contains(canary),
        "the stored subtitles hold the canary: {subs:?}"
    );

    // OpenAI's audio/speech.
    let resp = post(
        &s,
        canary,
        "/openai/v1/audio/speech",
        &key,
        &json!({"model": "speech-2.8-turbo", "input": sentence, "voice": "alloy", "response_format": "wav"}),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(resp.status(), 200);
    assert!(!resp.bytes().await.expect("body").is_empty(), "no audio");

    // Over WebSocket: one task, one text, its audio, a clean finish.
    let ws_url = s.url("/ws/v1/t2a_v2").replacen("http://", "ws://", 1);
    let mut req = ws_url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    req.headers_mut()
        .insert("x-canary", canary.parse().expect("header"));
    req.headers_mut()
        .insert("user-agent", canary.parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connected");
    let hello = event(&mut ws).await.expect("greeting");
    assert_eq!(hello["event"], "connected_success", "{hello}");
    ws_send(
        &mut ws,
        json!({
            "event": "task_start", "model": "speech-2.8-turbo",
            "voice_setting": {"voice_id": "espeak_en-us"},
            "audio_setting": {"format": "pcm", "sample_rate": 16000},
        }),
    )
    .await;
    let started = event(&mut ws).await.expect("task_started");
    assert_eq!(started["event"], "task_started", "{started}");
    ws_send(&mut ws, json!({"event": "task_continue", "text": sentence})).await;
    let mut audio = Vec::new();
    loop {
        let ev = event(&mut ws).await.expect("task_continued");
        assert_eq!(ev["event"], "task_continued", "{ev}");
        assert_eq!(ev["base_resp"]["status_code"], 0, "{ev}");
        if let Some(h) = ev["data"]["audio"].as_str() {
            audio.extend(hex::decode(h).expect("hex audio"));
        }
        if ev["is_final"] == true {
            break;
        }
    }
    assert!(!audio.is_empty(), "no audio over the socket");
    ws_send(&mut ws, json!({"event": "task_finish"})).await;
    let finished = event(&mut ws).await.expect("task_finished");
    assert_eq!(finished["event"], "task_finished", "{finished}");
    assert!(event(&mut ws).await.is_none(), "the server closes");

    // As an async task: created, polled to success, its output fetched. The
    // task's input and its output (audio and subtitles) are stored.
    let r = send(post(
        &s,
        canary,
        "/v1/t2a_async_v2",
        &key,
        &json!({"model": "speech-2.8-turbo", "text": sentence,
                "voice_setting": {"voice_id": "English_expressive_narrator"}}),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{:?}", r.body);
    let task_id = r.body["task_id"].as_i64().expect("task_id");
    let done = wait(&s, &key, task_id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "Success", "{done}");
    let members = output(&s, &key, done["file_id"].as_i64().expect("file_id")).await;
    assert!(!member(&members, "speech.mp3").is_empty(), "no audio");
    assert!(
        String::from_utf8_lossy(member(&members, "speech.subtitle.json")).contains(canary),
        "the task's stored subtitles hold the canary"
    );

    // Nothing of it in what the server printed (at debug level)...
    let log = s.stop();
    assert!(log.contains("request"), "the server did log requests");
    assert!(!log.contains(canary), "canary in the server's output");

    // ...nor in plaintext in any file it left, though it stored some.
    let data = s.dir.path();
    let mut files = Vec::new();
    files_under(data, &data.join("models"), &mut files);
    if crate::backend::postgres_server().is_none() {
        assert!(files.iter().any(|f| f.ends_with("maximin.db")), "{files:?}");
    }
    // The database (the SQLite file, or a dump of the PostgreSQL one).
    let stored = crate::backend::stored_bytes(data);
    assert!(
        !stored.is_empty(),
        "the database holds the requests' records"
    );
    assert!(
        !stored.windows(canary.len()).any(|w| w == canary.as_bytes()),
        "canary in the database"
    );
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "mxf")),
        "the stored audio, subtitles and task output are blobs: {files:?}"
    );
    let needle = canary.as_bytes();
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "canary in {}",
            f.display()
        );
    }
}
