//! `GET /ws/v1/t2a_v2`: MiniMax's WebSocket text to speech, driven as a
//! client would, with a real WebSocket client over a real connection.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::Server;

/// Characters billed: everything but whitespace (as over HTTP).
fn billed(text: &str) -> u64 {
    text.chars().filter(|c| !c.is_whitespace()).count() as u64
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(
    s: &Server,
    key: &str,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let url = s.url("/ws/v1/t2a_v2").replacen("http://", "ws://", 1);
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

async fn send(ws: &mut Socket, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// The next JSON event; `None` once the server has closed.
async fn event(ws: &mut Socket) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(60), ws.next())
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

/// The `task_failed` event that must come next, and the close frame after
/// it: (event, close code, close reason).
async fn failed_and_closed(ws: &mut Socket) -> (Value, u16, String) {
    let failed = event(ws).await.expect("task_failed before the close");
    assert_eq!(failed["event"], "task_failed", "{failed}");
    let (code, reason) = closed(ws).await;
    (failed, code, reason)
}

/// The server's close frame, which must come next: its code and reason
/// (1005, "no code", is a close frame without one).
async fn closed(ws: &mut Socket) -> (u16, String) {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(60), ws.next())
            .await
            .expect("a close frame within 60 s")
            .expect("a close frame before the end of the stream")
            .expect("frame");
        match msg {
            Message::Close(Some(f)) => return (u16::from(f.code), f.reason.as_str().to_owned()),
            Message::Close(None) => return (1005, String::new()),
            Message::Text(t) => panic!("an event after the last one: {t}"),
            _ => continue,
        }
    }
}

/// Connects and starts a task on espeak-ng (the cheapest voice), raw PCM.
async fn started(s: &Server, key: &str) -> Socket {
    let mut ws = connect(s, key).await.expect("connected");
    let hello = event(&mut ws).await.expect("greeting");
    assert_eq!(hello["event"], "connected_success", "{hello}");
    send(
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
    ws
}

/// Audio chunks of one `task_continue` up to its final event, and that event.
async fn chunks(ws: &mut Socket) -> (Vec<Vec<u8>>, Value) {
    let mut audio = Vec::new();
    loop {
        let ev = event(ws).await.expect("task_continued");
        assert_eq!(ev["event"], "task_continued", "{ev}");
        if let Some(hex) = ev["data"]["audio"].as_str() {
            audio.push(hex::decode(hex).expect("hex audio"));
        }
        if ev["is_final"] == true {
            return (audio, ev);
        }
        assert_eq!(ev["base_resp"]["status_code"], 0, "{ev}");
    }
}

#[tokio::test]
async fn a_task_streams_audio_per_text_and_is_metered() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let mut ws = connect(&s, &key).await.expect("connected");
    let hello = event(&mut ws).await.expect("greeting");
    assert_eq!(hello["event"], "connected_success", "{hello}");
    assert_eq!(hello["base_resp"]["status_code"], 0);
    let session = hello["session_id"].as_str().expect("session_id").to_owned();
    assert!(hello["trace_id"].as_str().is_some_and(|t| !t.is_empty()));

    send(
        &mut ws,
        json!({
            "event": "task_start", "model": "speech-2.8-hd",
            "voice_setting": {"voice_id": "English_expressive_narrator", "speed": 1.0},
            "audio_setting": {"format": "mp3", "sample_rate": 32000, "bitrate": 128000, "channel": 1},
        }),
    )
    .await;
    let started = event(&mut ws).await.expect("task_started");
    assert_eq!(started["event"], "task_started", "{started}");
    assert_eq!(started["session_id"], session.as_str());

    let first = "The first sentence is short. The second one follows it closely.";
    send(&mut ws, json!({"event": "task_continue", "text": first})).await;
    let (audio, last) = chunks(&mut ws).await;
    assert!(
        audio.len() >= 2,
        "one chunk per sentence at least, got {}",
        audio.len()
    );
    assert_eq!(last["base_resp"]["status_code"], 0, "{last}");
    let bytes: Vec<u8> = audio.concat();
    let pcm = maximin_audio::decode(&bytes).expect("the chunks make one mp3 stream");
    assert!(
        pcm.duration_secs() > 2.0,
        "{:.2} s of audio",
        pcm.duration_secs()
    );
    assert!(pcm.rms_dbfs() > -40.0, "audible: {} dBFS", pcm.rms_dbfs());
    let info = &last["extra_info"];
    assert_eq!(info["audio_format"], "mp3");
    assert_eq!(info["audio_sample_rate"], 32000);
    assert_eq!(info["audio_size"], bytes.len());
    assert_eq!(info["usage_characters"], billed(first));
    let ms = info["audio_length"].as_u64().expect("audio_length");
    assert!(
        (ms as f64 / 1000.0 - pcm.duration_secs()).abs() < 0.2,
        "{ms} ms"
    );

    // An empty text is skipped (2203) and the task goes on.
    send(&mut ws, json!({"event": "task_continue", "text": "  "})).await;
    let skipped = event(&mut ws).await.expect("skipped");
    assert_eq!(skipped["event"], "task_continued");
    assert_eq!(skipped["base_resp"]["status_code"], 2203, "{skipped}");
    assert_eq!(skipped["is_final"], true);

    let second = "Hello again.";
    send(&mut ws, json!({"event": "task_continue", "text": second})).await;
    let (audio, last) = chunks(&mut ws).await;
    assert!(!audio.is_empty());
    assert_eq!(last["extra_info"]["usage_characters"], billed(second));

    send(&mut ws, json!({"event": "task_finish"})).await;
    let finished = event(&mut ws).await.expect("task_finished");
    assert_eq!(finished["event"], "task_finished", "{finished}");
    assert_eq!(
        closed(&mut ws).await.0,
        1000,
        "the server closes normally after task_finished"
    );

    // Each task_continue's characters are metered as it is done.
    let billed = billed(first) + billed(second);
    let mut found = 0;
    for _ in 0..50 {
        let u = s.get("/v1/account/usage", &key).await;
        let body = u.assert_ok(200);
        found = body["by_model"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["model"] == "speech-2.8-hd")
            .and_then(|m| m["characters"].as_u64())
            .unwrap_or(0);
        if found == billed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(found, billed, "characters billed for the connection");
}

#[tokio::test]
async fn protocol_mistakes_fail_the_task_with_native_codes() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    // A bad key gets no socket, and the native authentication error (1004).
    match connect(&s, "mmx_live_not_a_key").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                .expect("a JSON error body");
            assert_eq!(body["base_resp"]["status_code"], 1004, "{body}");
        }
        Err(e) => panic!("the upgrade was refused without a native error: {e}"),
        Ok(_) => panic!("a bad key got a socket"),
    }

    // task_continue before task_start: 2202.
    let mut ws = connect(&s, &key).await.expect("connected");
    assert_eq!(
        event(&mut ws).await.expect("greeting")["event"],
        "connected_success"
    );
    send(
        &mut ws,
        json!({"event": "task_continue", "text": "Too early."}),
    )
    .await;
    let (failed, code, reason) = failed_and_closed(&mut ws).await;
    assert_eq!(failed["base_resp"]["status_code"], 2202);
    assert_eq!(code, 1002, "a protocol error");
    assert!(reason.contains("task_start"), "{reason}");

    // A task_start naming no known voice: the same code as over HTTP.
    let mut ws = connect(&s, &key).await.expect("connected");
    event(&mut ws).await.expect("greeting");
    send(
        &mut ws,
        json!({"event": "task_start", "model": "speech-2.8-turbo",
               "voice_setting": {"voice_id": "no-such-voice"}}),
    )
    .await;
    let (failed, code, _) = failed_and_closed(&mut ws).await;
    assert_eq!(failed["base_resp"]["status_code"], 20132, "{failed}");
    assert!(failed["base_resp"]["status_msg"]
        .as_str()
        .is_some_and(|m| m.contains("no-such-voice")));
    assert_eq!(code, 1008, "a refused request");

    // Not JSON: 2202.
    let mut ws = connect(&s, &key).await.expect("connected");
    event(&mut ws).await.expect("greeting");
    ws.send(Message::Text("task_start please".into()))
        .await
        .expect("send");
    let (failed, code, _) = failed_and_closed(&mut ws).await;
    assert_eq!(failed["base_resp"]["status_code"], 2202, "{failed}");
    assert_eq!(code, 1002, "not JSON breaks the protocol");

    // A binary frame: the protocol is JSON text frames (1003: unsupported data).
    let mut ws = started(&s, &key).await;
    ws.send(Message::Binary(vec![0x7b, 0x7d].into()))
        .await
        .expect("send");
    let (failed, code, _) = failed_and_closed(&mut ws).await;
    assert_eq!(failed["base_resp"]["status_code"], 2202, "{failed}");
    assert_eq!(code, 1003);

    // A text frame that is not UTF-8 (sent raw, as a broken client would).
    let mut ws = started(&s, &key).await;
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![b'{', 0xff, 0xfe, b'}'],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    ws.send(Message::Frame(frame)).await.expect("send");
    let (failed, code, _) = failed_and_closed(&mut ws).await;
    assert_eq!(failed["base_resp"]["status_code"], 2202, "{failed}");
    assert_eq!(code, 1007);
}

#[tokio::test]
async fn an_oversized_message_fails_the_task_and_closes_with_1009() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let mut ws = started(&s, &key).await;
    // Past the 256 KiB a message may have (a task_continue's 10,000
    // characters are far less, even as JSON escapes).
    let text = "a".repeat(300 * 1024);
    // The server may close before it has read it all: sending may fail.
    let _ = ws
        .send(Message::Text(
            json!({"event": "task_continue", "text": text})
                .to_string()
                .into(),
        ))
        .await;
    let (failed, code, reason) = failed_and_closed(&mut ws).await;
    assert_eq!(failed["base_resp"]["status_code"], 2013, "{failed}");
    let msg = failed["base_resp"]["status_msg"].as_str().unwrap_or("");
    assert!(msg.contains("262144"), "{msg}");
    assert_eq!(code, 1009, "message too big");
    assert!(!reason.is_empty());
}

#[tokio::test]
async fn a_revoked_keys_session_fails_at_its_next_message() {
    let s = Server::with_models("").await;
    let (account, admin) = s.admin("payg");
    let (id, key) = s.key(&account, &[]);
    let mut ws = started(&s, &key).await;
    send(
        &mut ws,
        json!({"event": "task_continue", "text": "Still here."}),
    )
    .await;
    let (audio, last) = chunks(&mut ws).await;
    assert_eq!(last["base_resp"]["status_code"], 0, "{last}");
    assert!(!audio.is_empty());

    // Revoked by the operator's CLI, a separate process, while the socket is open.
    s.cli(&["keys", "revoke", &id]).expect("revoke");
    s.get("/v1/models", &key)
        .await
        .assert_error(401, "authentication_failed");
    send(
        &mut ws,
        json!({"event": "task_continue", "text": "Not any more."}),
    )
    .await;
    let (failed, code, reason) = failed_and_closed(&mut ws).await;
    assert_eq!(failed["base_resp"]["status_code"], 1004, "{failed}");
    assert!(reason.contains("revoked"), "{reason}");
    assert_eq!(code, 1008, "policy: the key may no longer be used");

    // The refused message is in the key's activity, like a refused request.
    let r = s
        .get(&format!("/v1/account/keys/{id}/activity"), &admin)
        .await;
    let log = r.assert_ok(200).as_array().expect("log").clone();
    let refused: Vec<&Value> = log
        .iter()
        .filter(|e| e["error_code"] == "authentication_failed")
        .collect();
    assert_eq!(refused.len(), 1, "{log:?}");
    assert_eq!(refused[0]["endpoint"], "/ws/v1/t2a_v2");
    assert_eq!(refused[0]["method"], "WS");
    assert_eq!(refused[0]["status"], 401);
    // The message spoken before it was metered as a request with its characters.
    assert!(
        log.iter().any(|e| e["method"] == "WS"
            && e["status"] == 200
            && e["characters"] == billed("Still here.")
            && e["prompt_tokens"] == 0),
        "{log:?}"
    );
}

#[tokio::test]
async fn each_task_continue_counts_against_the_rate_limit() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("free");
    crate::ratelimit::away_from_a_window_edge().await;
    // The upgrade is one request of the free plan's 60 a minute.
    let mut ws = started(&s, &key).await;
    for i in 1..60 {
        send(&mut ws, json!({"event": "task_continue", "text": "Hi."})).await;
        let (_, last) = chunks(&mut ws).await;
        assert_eq!(last["base_resp"]["status_code"], 0, "message {i}: {last}");
    }
    // The 61st request of the minute: refused with the native 1002.
    send(&mut ws, json!({"event": "task_continue", "text": "Hi."})).await;
    let (failed, code, _) = failed_and_closed(&mut ws).await;
    assert_eq!(failed["base_resp"]["status_code"], 1002, "{failed}");
    assert_eq!(code, 1013, "try again later");
    // The messages counted in the same counter as HTTP requests.
    s.get("/v1/models", &key)
        .await
        .assert_error(429, "rate_limit_exceeded");
}
