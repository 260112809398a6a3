//! `/v1/t2a_v2` over a speech provider that answers with encoded audio (an
//! upstream's kind): the hex, the stream's frames and the final frame carry
//! the provider's bytes as they came, and the request is metered in the
//! provider's characters.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use maximin_core::providers::speech::AudioOutput;
use maximin_speech::testing::{speech_key, upstream_install, CannedUpstream, CLOUD_MODEL};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::state_with;

async fn post(app: &axum::Router, secret: &str, body: Value) -> (StatusCode, Vec<u8>) {
    let req = Request::post("/v1/t2a_v2")
        .header(header::AUTHORIZATION, format!("Bearer {secret}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, bytes.to_vec())
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

#[tokio::test]
async fn t2a_v2_serves_an_upstreams_encoded_audio_as_hex_and_as_a_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (catalog, engines, installed) =
        upstream_install(Some(Arc::new(CannedUpstream::new(42)))).expect("install");
    let st = state_with(dir.path(), catalog, engines, installed).await;
    let p = st.platform.clone();
    let (account, secret) = speech_key(&p, "cloud@example.com").await.expect("key");
    let app = maximin_http::app(st);
    // The request asks for T2A's default output: mp3 at 32 kHz.
    let sent = CannedUpstream::audio_for(&AudioOutput::default()).expect("canned");

    // Whole: the hex is the provider's file.
    let body = json!({"model": CLOUD_MODEL, "text": "Hello.",
                      "voice_setting": {"voice_id": "English_Graceful_Lady"}});
    let (status, bytes) = post(&app, &secret, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let r: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(r["base_resp"]["status_code"], 0, "{r}");
    assert_eq!(hex_of(&r["data"]["audio"]), sent);
    assert_eq!(r["extra_info"]["usage_characters"], 42);
    assert_eq!(r["extra_info"]["audio_size"], sent.len());

    // Streamed: the provider's chunks as status-1 frames, then the whole.
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let (status, bytes) = post(&app, &secret, streamed).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(bytes).expect("utf8");
    let frames: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("frame json"))
        .collect();
    let (last, pieces) = frames.split_last().expect("frames");
    assert_eq!(pieces.len(), 3, "{text}");
    let joined: Vec<u8> = pieces
        .iter()
        .flat_map(|f| hex_of(&f["data"]["audio"]))
        .collect();
    assert_eq!(joined, sent);
    assert_eq!(last["data"]["status"], 2);
    assert_eq!(hex_of(&last["data"]["audio"]), sent);
    assert_eq!(last["extra_info"]["usage_characters"], 42);

    // Both metered in the provider's characters, no tokens.
    let usage = p.usage(&account, None, None).await.expect("usage");
    assert_eq!(usage.total.characters, 84);
    assert_eq!(usage.total.prompt_tokens, 0);
}
