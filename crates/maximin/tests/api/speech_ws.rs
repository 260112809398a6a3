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

async fn connect(s: &Server, key: &str) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
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
    assert!(
        event(&mut ws).await.is_none(),
        "the server closes after task_finished"
    );

    // The connection's characters are metered once it ends.
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
            .and_then(|m| m["prompt_tokens"].as_u64())
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
    let failed = event(&mut ws).await.expect("task_failed");
    assert_eq!(failed["event"], "task_failed", "{failed}");
    assert_eq!(failed["base_resp"]["status_code"], 2202);
    assert!(
        event(&mut ws).await.is_none(),
        "the server closes after task_failed"
    );

    // A task_start naming no known voice: the same code as over HTTP.
    let mut ws = connect(&s, &key).await.expect("connected");
    event(&mut ws).await.expect("greeting");
    send(
        &mut ws,
        json!({"event": "task_start", "model": "speech-2.8-turbo",
               "voice_setting": {"voice_id": "no-such-voice"}}),
    )
    .await;
    let failed = event(&mut ws).await.expect("task_failed");
    assert_eq!(failed["event"], "task_failed", "{failed}");
    assert_eq!(failed["base_resp"]["status_code"], 20132, "{failed}");
    assert!(failed["base_resp"]["status_msg"]
        .as_str()
        .is_some_and(|m| m.contains("no-such-voice")));

    // Not JSON: 2202.
    let mut ws = connect(&s, &key).await.expect("connected");
    event(&mut ws).await.expect("greeting");
    ws.send(Message::Text("task_start please".into()))
        .await
        .expect("send");
    let failed = event(&mut ws).await.expect("task_failed");
    assert_eq!(failed["base_resp"]["status_code"], 2202, "{failed}");
}
