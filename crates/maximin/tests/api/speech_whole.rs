//! Audio delivered whole (hex, url, the async task's tar, OpenAI's
//! `audio/speech`) carries exact sizes: a strict WAV reader's sizes, FLAC's
//! sample count, MP3's Info/LAME tag. Only streamed audio may leave its
//! length open (issue 13, point 6: Python's `wave` read a 2 s whole clip
//! as 97,391 s).

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::Server;
use crate::speech_async::{create, member, output, wait};

const TEXT: &str = "Whole files know their length. So does this one.";

fn u32_le(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// A strict WAV reader: the RIFF size is the bytes after it, every chunk
/// fits, and the `data` chunk's size is exactly the bytes that follow its
/// header. Returns (sample rate, channels, frames).
fn strict_wav(b: &[u8], what: &str) -> (u32, u16, usize) {
    assert!(b.len() >= 44, "{what}: {} bytes", b.len());
    assert_eq!(&b[..4], b"RIFF", "{what}");
    assert_eq!(&b[8..12], b"WAVE", "{what}");
    assert_eq!(u32_le(b, 4), b.len() - 8, "{what}: RIFF size");
    let (mut at, mut fmt) = (12, None);
    loop {
        let (id, len) = (&b[at..at + 4], u32_le(b, at + 4));
        let body = at + 8;
        assert!(
            body + len <= b.len(),
            "{what}: chunk {id:?} runs past the end"
        );
        if id == b"fmt " {
            let channels = u16::from_le_bytes([b[body + 2], b[body + 3]]);
            fmt = Some((u32_le(b, body + 4) as u32, channels));
        }
        if id == b"data" {
            assert_eq!(len, b.len() - body, "{what}: data size");
            let (rate, channels) = fmt.expect("fmt before data");
            return (rate, channels, len / (2 * usize::from(channels)));
        }
        at = body + len + len % 2;
    }
}

/// What Python's `wave` module reads (nframes, rate), when python3 is here.
fn python_wave(b: &[u8]) -> Option<(u64, u64)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.wav");
    std::fs::write(&path, b).expect("write");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, wave; w = wave.open(sys.argv[1]); print(w.getnframes(), w.getframerate())",
        ])
        .arg(&path)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|n| n.parse().expect("number"));
    Some((it.next()?, it.next()?))
}

/// Checks a whole WAV against `extra_info.audio_length` (ms).
fn check_wav(b: &[u8], length_ms: f64, what: &str) {
    let (rate, _, frames) = strict_wav(b, what);
    let ms = frames as f64 * 1000.0 / f64::from(rate);
    assert!(
        (ms - length_ms).abs() <= 2.0,
        "{what}: {ms} ms vs {length_ms}"
    );
    if let Some((n, r)) = python_wave(b) {
        assert_eq!(
            (n, r),
            (frames as u64, u64::from(rate)),
            "{what}: python wave"
        );
    }
}

/// The FLAC STREAMINFO's sample count, in ms.
fn flac_ms(b: &[u8]) -> f64 {
    assert_eq!(&b[..4], b"fLaC");
    let packed = u64::from_be_bytes(b[18..26].try_into().expect("8 bytes"));
    let rate = packed >> 44;
    (packed & ((1 << 36) - 1)) as f64 * 1000.0 / rate as f64
}

fn audio_length(info: &Value) -> f64 {
    info["audio_length"].as_f64().expect("audio_length")
}

async fn t2a(s: &Server, key: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": "speech-2.8-turbo", "text": TEXT,
        "voice_setting": {"voice_id": "English_expressive_narrator"},
    });
    body.as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    let r = s.post("/v1/t2a_v2", key, body).await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{:?}", r.body);
    r.body
}

fn hex_audio(body: &Value) -> Vec<u8> {
    hex::decode(body["data"]["audio"].as_str().expect("audio")).expect("hex")
}

#[tokio::test]
async fn whole_audio_carries_exact_sizes_in_every_output() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");

    // Sync, hex: WAV mono and stereo, and the other formats' length fields.
    for (rate, channels) in [(16_000, 1), (24_000, 2)] {
        let setting = json!({"format": "wav", "sample_rate": rate, "channel": channels});
        let body = t2a(&s, &key, json!({"audio_setting": setting})).await;
        let what = format!("hex wav {rate} Hz x{channels}");
        let audio = hex_audio(&body);
        check_wav(&audio, audio_length(&body["extra_info"]), &what);
        assert_eq!(strict_wav(&audio, &what).1, channels);
    }
    let body = t2a(&s, &key, json!({"audio_setting": {"format": "flac"}})).await;
    let ms = flac_ms(&hex_audio(&body));
    let want = audio_length(&body["extra_info"]);
    assert!((ms - want).abs() <= 2.0, "flac: {ms} ms vs {want}");
    // An MP3 with its Info/LAME tag decodes to the exact length; without it
    // the decoder adds LAME's delay and padding (tens of ms).
    let body = t2a(&s, &key, json!({"audio_setting": {"format": "mp3"}})).await;
    let audio = hex_audio(&body);
    assert!(
        audio
            .windows(4)
            .take(200)
            .any(|w| w == b"Info" || w == b"Xing"),
        "mp3: no Info tag in the first frame"
    );
    let ms = maximin_audio::decode(&audio).expect("mp3").duration_secs() * 1000.0;
    let want = audio_length(&body["extra_info"]);
    assert!((ms - want).abs() <= 2.0, "mp3: {ms} ms vs {want}");

    // Sync, url.
    let body = t2a(
        &s,
        &key,
        json!({"audio_setting": {"format": "wav"}, "output_format": "url"}),
    )
    .await;
    let (status, audio) = s
        .get_bytes(body["data"]["audio"].as_str().expect("url"), None)
        .await;
    assert_eq!(status, 200);
    check_wav(&audio, audio_length(&body["extra_info"]), "url wav");

    // OpenAI's audio/speech.
    let resp = s
        .http
        .post(s.url("/openai/v1/audio/speech"))
        .bearer_auth(&key)
        .json(&json!({"model": "speech-2.8-turbo", "input": TEXT, "voice": "alloy", "response_format": "wav"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let audio = resp.bytes().await.expect("body");
    let (rate, _, frames) = strict_wav(&audio, "openai wav");
    assert!(
        frames as f64 / f64::from(rate) > 1.0,
        "openai wav: {frames} frames"
    );

    // Async: every audio member of the task's tar.
    for format in ["wav", "flac", "mp3"] {
        let created = create(
            &s,
            &key,
            json!({
                "model": "speech-2.8-turbo", "text": TEXT,
                "voice_setting": {"voice_id": "English_expressive_narrator"},
                "audio_setting": {"format": format, "audio_sample_rate": 22050},
            }),
        )
        .await;
        assert_eq!(created["base_resp"]["status_code"], 0, "{created}");
        let task_id = created["task_id"].as_i64().expect("task_id");
        let done = wait(&s, &key, task_id, Duration::from_secs(120)).await;
        assert_eq!(done["status"], "Success", "{done}");
        let file_id = done["file_id"].as_i64().expect("file_id");
        let members = output(&s, &key, file_id).await;
        let audio = member(&members, &format!("speech.{format}"));
        let extra: Value =
            serde_json::from_slice(member(&members, "speech.extra.json")).expect("extra");
        assert_eq!(extra["audio_size"], audio.len(), "async {format}");
        let want = audio_length(&extra);
        let what = format!("async {format}");
        match format {
            "wav" => check_wav(audio, want, &what),
            "flac" => {
                let ms = flac_ms(audio);
                assert!((ms - want).abs() <= 2.0, "{what}: {ms} ms vs {want}");
            }
            _ => {
                let ms = maximin_audio::decode(audio).expect("mp3").duration_secs() * 1000.0;
                assert!((ms - want).abs() <= 2.0, "{what}: {ms} ms vs {want}");
            }
        }
        let pcm = maximin_audio::decode(audio).expect("decodes");
        assert!(pcm.rms_dbfs() > -35.0, "{what}: silent");
    }
}
