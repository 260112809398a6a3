//! `POST /v1/t2a_v2` on the real engines: the Piper voice behind `*-hd`,
//! espeak-ng behind `*-turbo`. Audio is decoded (symphonia, through
//! maximin-audio) and measured, not compared with stored bytes.

use std::time::Instant;

use futures::StreamExt;
use maximin_audio::Pcm;
use serde_json::{json, Value};

use crate::helpers::Server;

const SENTENCE: &str = "The quick brown fox jumps over the lazy dog.";

fn audio_of(body: &Value) -> Vec<u8> {
    assert_eq!(body["base_resp"]["status_code"], 0, "{body}");
    hex::decode(body["data"]["audio"].as_str().expect("audio hex")).expect("hex")
}

fn decode(format: &str, bytes: &[u8], rate: u32, channels: u16) -> Pcm {
    if format == "pcm" {
        let samples = bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect();
        return Pcm::new(samples, rate, channels);
    }
    maximin_audio::decode(bytes).unwrap_or_else(|e| panic!("{format} does not decode: {e}"))
}

async fn t2a(s: &Server, key: &str, body: Value) -> Value {
    let r = s.post("/v1/t2a_v2", key, body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.header("trace-id").is_some());
    r.body
}

#[tokio::test]
async fn every_format_decodes_to_plausible_speech_on_both_engines() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    for model in ["speech-2.8-hd", "speech-2.8-turbo"] {
        for (format, rate, channels) in [
            ("mp3", 32_000, 1),
            ("flac", 24_000, 1),
            ("wav", 16_000, 2),
            ("pcm", 22_050, 1),
        ] {
            let body = t2a(
                &s,
                &key,
                json!({
                    "model": model, "text": SENTENCE,
                    "voice_setting": {"voice_id": "English_expressive_narrator"},
                    "audio_setting": {"format": format, "sample_rate": rate, "channel": channels},
                }),
            )
            .await;
            let bytes = audio_of(&body);
            let info = &body["extra_info"];
            assert_eq!(info["audio_format"], format);
            assert_eq!(info["audio_sample_rate"], rate);
            assert_eq!(info["audio_channel"], channels);
            assert_eq!(info["audio_size"], bytes.len());
            assert_eq!(info["usage_characters"], 36);
            assert_eq!(info["word_count"], 9);
            let pcm = decode(format, &bytes, rate, channels);
            assert_eq!(pcm.sample_rate, rate, "{model} {format}");
            assert_eq!(pcm.channels, channels, "{model} {format}");
            let secs = pcm.duration_secs();
            assert!(
                (1.2..6.0).contains(&secs),
                "{model} {format}: {secs:.2} s for one sentence"
            );
            let reported = info["audio_length"].as_f64().expect("ms") / 1000.0;
            assert!(
                (reported - secs).abs() < 0.15 + secs * 0.05,
                "{model} {format}: extra_info says {reported:.2} s, the audio is {secs:.2} s"
            );
            let level = pcm.rms_dbfs();
            assert!(
                level > -35.0,
                "{model} {format}: {level:.1} dBFS is near silence"
            );
        }
    }
}

#[tokio::test]
async fn speed_pitch_volume_and_pauses_take_effect() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    for model in ["speech-2.8-hd", "speech-2.8-turbo"] {
        let say = |voice: Value, text: &str| {
            json!({"model": model, "text": text, "voice_setting": voice,
                   "audio_setting": {"format": "wav", "sample_rate": 22050}})
        };
        let pcm = |b: &Value| decode("wav", &audio_of(b), 22_050, 1);
        let slow = pcm(&t2a(
            &s,
            &key,
            say(json!({"voice_id": "Wise_Woman", "speed": 0.5}), SENTENCE),
        )
        .await);
        let fast = pcm(&t2a(
            &s,
            &key,
            say(json!({"voice_id": "Wise_Woman", "speed": 2.0}), SENTENCE),
        )
        .await);
        assert!(
            slow.duration_secs() > 1.6 * fast.duration_secs(),
            "{model}: speed 0.5 gives {:.2} s, 2.0 gives {:.2} s",
            slow.duration_secs(),
            fast.duration_secs()
        );
        let f0 = |p: &Pcm| {
            maximin_audio::analysis::voice_stats(p)
                .f0_median_hz
                .expect("voiced speech")
        };
        let low = pcm(&t2a(
            &s,
            &key,
            say(json!({"voice_id": "Deep_Voice_Man", "pitch": -8}), SENTENCE),
        )
        .await);
        let high = pcm(&t2a(
            &s,
            &key,
            say(json!({"voice_id": "Deep_Voice_Man", "pitch": 8}), SENTENCE),
        )
        .await);
        assert!(
            f0(&high) > 1.4 * f0(&low),
            "{model}: pitch +8 gives {:.0} Hz, -8 gives {:.0} Hz",
            f0(&high),
            f0(&low)
        );
        let quiet = pcm(&t2a(
            &s,
            &key,
            say(json!({"voice_id": "Wise_Woman", "vol": 0.25}), SENTENCE),
        )
        .await);
        let normal = pcm(&t2a(&s, &key, say(json!({"voice_id": "Wise_Woman"}), SENTENCE)).await);
        assert!(
            normal.rms_dbfs() - quiet.rms_dbfs() > 9.0,
            "{model}: vol 0.25 should be ~12 dB quieter ({:.1} vs {:.1} dBFS)",
            quiet.rms_dbfs(),
            normal.rms_dbfs()
        );
        let paused = pcm(&t2a(
            &s,
            &key,
            say(json!({"voice_id": "Wise_Woman"}), "Hello.<#2#>Hello."),
        )
        .await);
        let plain = pcm(&t2a(
            &s,
            &key,
            say(json!({"voice_id": "Wise_Woman"}), "Hello. Hello."),
        )
        .await);
        assert!(
            paused.duration_secs() > plain.duration_secs() + 1.5,
            "{model}: a 2 s pause: {:.2} s against {:.2} s",
            paused.duration_secs(),
            plain.duration_secs()
        );
    }
}

#[tokio::test]
async fn streaming_sends_the_first_sentence_before_the_rest_is_synthesised() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let text = [
        "The first sentence is short.",
        "The second one follows it closely.",
        "A third sentence adds a little more to say.",
        "The fourth keeps the engine busy for a while longer.",
        "The fifth sentence is here as well.",
        "And the sixth one closes the paragraph at last.",
    ]
    .join(" ");
    for model in ["speech-2.8-hd", "speech-2.8-turbo"] {
        let started = Instant::now();
        let resp = s
            .http
            .post(s.url("/v1/t2a_v2"))
            .bearer_auth(&key)
            .json(&json!({
                "model": model, "text": text, "stream": true,
                "voice_setting": {"voice_id": "male-qn-qingse", "speed": 1.0},
                "language_boost": "English",
                "audio_setting": {"format": "mp3", "sample_rate": 32000},
            }))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
        assert!(resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream")));
        let mut body = resp.bytes_stream();
        let mut buf = String::new();
        let mut frames: Vec<(f64, Value)> = Vec::new();
        while let Some(chunk) = body.next().await {
            buf.push_str(std::str::from_utf8(&chunk.expect("chunk")).expect("utf8"));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                for line in frame.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        let v: Value = serde_json::from_str(data.trim())
                            .unwrap_or_else(|e| panic!("every data line is JSON ({e}): {data}"));
                        frames.push((started.elapsed().as_secs_f64(), v));
                    }
                }
            }
        }
        let total = started.elapsed().as_secs_f64();
        let chunks: Vec<&(f64, Value)> = frames
            .iter()
            .filter(|(_, f)| f["data"]["status"] == 1)
            .collect();
        assert!(
            chunks.len() >= 6,
            "{model}: {} chunks for 6 sentences",
            chunks.len()
        );
        // The neural voice takes a noticeable time per sentence, so the first
        // one must arrive well before the last is done. (espeak-ng speaks the
        // whole paragraph in milliseconds; there only the chunking is checked.)
        let first = chunks[0].0;
        if model.ends_with("-hd") {
            assert!(
                first < total * 0.5,
                "{model}: the first chunk came at {first:.2} s of {total:.2} s"
            );
        }
        let last = &frames.last().expect("frames").1;
        assert_eq!(last["data"]["status"], 2, "{model}: the last frame closes");
        assert_eq!(last["base_resp"]["status_code"], 0);
        let joined: Vec<u8> = chunks
            .iter()
            .flat_map(|(_, f)| hex::decode(f["data"]["audio"].as_str().expect("hex")).expect("hex"))
            .collect();
        let whole = hex::decode(last["data"]["audio"].as_str().expect("hex")).expect("hex");
        assert_eq!(
            joined, whole,
            "{model}: the chunks make up the aggregated audio"
        );
        let pcm = decode("mp3", &whole, 32_000, 1);
        assert!(
            pcm.duration_secs() > 6.0,
            "{model}: {:.2} s",
            pcm.duration_secs()
        );
        assert_eq!(last["extra_info"]["audio_size"], whole.len());
    }
}

fn assert_native_error(body: &Value, code: i64, mentions: &str) {
    assert_eq!(body["base_resp"]["status_code"], code, "{body}");
    let msg = body["base_resp"]["status_msg"].as_str().expect("msg");
    assert!(msg.contains(mentions), "'{mentions}' in {msg}");
    assert!(body["trace_id"]
        .as_str()
        .is_some_and(|t| t.starts_with("req_")));
}

#[tokio::test]
async fn mistakes_come_back_as_native_errors_naming_the_field() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let base = json!({"model": "speech-2.8-turbo", "text": SENTENCE,
                      "voice_setting": {"voice_id": "Wise_Woman"}});
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().expect("obj") {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (
            with(json!({"voice_setting": {"voice_id": "Wise_Woman", "speed": 3}})),
            2013,
            "voice_setting.speed",
        ),
        (
            with(json!({"voice_setting": {"voice_id": "Wise_Woman", "pitch": 0.5}})),
            2013,
            "voice_setting.pitch",
        ),
        (
            with(json!({"voice_setting": {"voice_id": "Wise_Woman", "emotion": "bored"}})),
            2013,
            "voice_setting.emotion",
        ),
        (
            with(json!({"voice_setting": {"voice_id": "nobody-here"}})),
            20132,
            "nobody-here",
        ),
        (
            with(json!({"audio_setting": {"sample_rate": 12345}})),
            2013,
            "audio_setting.sample_rate",
        ),
        (
            with(json!({"audio_setting": {"format": "ogg"}})),
            2013,
            "audio_setting.format",
        ),
        (
            with(json!({"stream": true, "audio_setting": {"format": "wav"}})),
            2013,
            "wav",
        ),
        (
            with(json!({"model": "minimax-chat-v2"})),
            2013,
            "speech model",
        ),
        (with(json!({"text": "x".repeat(10_001)})), 2013, "10000"),
        (
            with(json!({"text": format!("{}{}", "\u{1}".repeat(3), "abcdefghijklmnopq")})),
            1042,
            "illegal",
        ),
    ];
    for (body, code, mentions) in cases {
        let r = s.post("/v1/t2a_v2", &key, body).await;
        assert_eq!(r.status, 200, "native errors are HTTP 200: {:?}", r.body);
        assert_native_error(&r.body, code, mentions);
    }
    // Illegal characters up to 10%: spoken, and the ratio reported.
    let body = t2a(
        &s,
        &key,
        with(json!({"text": format!("\u{1}{}", "Hello there, friend.")})),
    )
    .await;
    assert!(!audio_of(&body).is_empty());
    let ratio = body["extra_info"]["invisible_character_ratio"]
        .as_f64()
        .expect("ratio");
    assert!((ratio - 1.0 / 21.0).abs() < 1e-3, "{ratio}");
    // Only a pause: that much silence, at the requested rate.
    let body = t2a(
        &s,
        &key,
        with(json!({"text": "<#1.5#>", "audio_setting": {"format": "wav", "sample_rate": 16000}})),
    )
    .await;
    let silence = decode("wav", &audio_of(&body), 16_000, 1);
    assert!(
        (silence.duration_secs() - 1.5).abs() < 0.05,
        "{}",
        silence.duration_secs()
    );
    assert!(silence.peak() < 1e-3);
    // An espeak-ng voice by its own id, with a variant.
    let body = t2a(
        &s,
        &key,
        with(json!({"text": "Bonjour.", "voice_setting": {"voice_id": "espeak_fr+f3"}})),
    )
    .await;
    assert!(decode("mp3", &audio_of(&body), 32_000, 1).duration_secs() > 0.3);
    // A bad key, the native way.
    let r = s.post("/v1/t2a_v2", "mmx_live_nope", base.clone()).await;
    assert_eq!(r.status, 200);
    assert_native_error(&r.body, 1004, "");
}

#[tokio::test]
async fn speech_is_metered_in_characters() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    t2a(
        &s,
        &key,
        json!({"model": "speech-02-turbo", "text": "One two three.",
               "voice_setting": {"voice_id": "female-shaonv"}, "language_boost": "English"}),
    )
    .await;
    let u = s.get("/v1/account/usage", &key).await;
    let by_model = u.assert_ok(200)["by_model"]
        .as_array()
        .expect("models")
        .clone();
    let speech = by_model
        .iter()
        .find(|m| m["model"] == "speech-2.8-turbo")
        .expect("speech usage, under the catalog id");
    assert_eq!(speech["characters"], 12, "characters billed: {speech}");
    assert_eq!(speech["prompt_tokens"], 0, "speech is no tokens: {speech}");
}

#[tokio::test]
async fn get_voice_lists_voices_that_speak() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let r = s
        .post("/v1/get_voice", &key, json!({"voice_type": "system"}))
        .await;
    assert_eq!(r.status, 200);
    let body = r.body;
    assert_eq!(body["base_resp"]["status_code"], 0, "{body}");
    assert!(body.get("voice_cloning").is_none() && body.get("voice_generation").is_none());
    let voices = body["system_voice"].as_array().expect("system_voice");
    let ids: Vec<&str> = voices
        .iter()
        .filter_map(|v| v["voice_id"].as_str())
        .collect();
    for want in [
        "en_US-joe-medium",
        "espeak_en-us",
        "espeak_fr",
        "Wise_Woman",
        "English_expressive_narrator",
    ] {
        assert!(ids.contains(&want), "{want} is listed");
    }
    assert!(
        ids.iter().filter(|i| i.starts_with("espeak_")).count() > 50,
        "every espeak-ng language"
    );
    for v in voices {
        assert_eq!(v["created_time"], "1970-01-01");
        assert!(
            v["voice_name"].as_str().is_some_and(|n| !n.is_empty()),
            "{v}"
        );
        assert!(
            v["description"].as_array().is_some_and(|d| !d.is_empty()),
            "{v}"
        );
    }
    // Listed voices speak, on the engine each model routes to.
    for (model, voice) in [
        ("speech-2.8-hd", "en_US-joe-medium"),
        ("speech-2.8-turbo", "espeak_fr"),
        ("speech-2.8-turbo", "espeak_de+f3"),
        ("speech-2.8-hd", "Wise_Woman"),
    ] {
        let body = t2a(
            &s,
            &key,
            json!({"model": model, "text": "Bonjour. Hello.", "voice_setting": {"voice_id": voice},
                   "audio_setting": {"format": "wav"}}),
        )
        .await;
        assert!(audio_of(&body).len() > 1000, "{model} {voice}");
    }

    let all = s
        .post("/v1/get_voice", &key, json!({"voice_type": "all"}))
        .await
        .body;
    assert_eq!(all["base_resp"]["status_code"], 0);
    assert!(all["system_voice"]
        .as_array()
        .is_some_and(|v| v.len() == voices.len()));
    assert_eq!(all["voice_cloning"], json!([]));
    assert_eq!(all["voice_generation"], json!([]));

    let bad = s
        .post("/v1/get_voice", &key, json!({"voice_type": "mine"}))
        .await
        .body;
    assert_native_error(&bad, 2013, "voice_type");
    let missing = s.post("/v1/get_voice", &key, json!({})).await.body;
    assert_native_error(&missing, 2013, "voice_type");
}

#[tokio::test]
async fn sentences_spoken_side_by_side_come_out_in_order() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    // Each sentence takes longer to say than the one before: after the
    // first, the neural engine speaks them side by side, and any sentence
    // out of its place would break the rising durations.
    // The first is long enough to come in pieces (a short first stretch,
    // then the rest), which its subtitle must still time as one sentence.
    let sentences = [
        "Hello there, friend.",
        "Good morning to you, and welcome to the show.",
        "This one is quite a bit longer than the greeting was, by a good few words.",
        "And this sentence, the longest of them all by some way, takes far more time to say than any before it, as you will hear.",
    ];
    let text = sentences.join(" ");
    let resp = s
        .http
        .post(s.url("/v1/t2a_v2"))
        .bearer_auth(&key)
        .json(&json!({
            "model": "speech-2.8-hd", "text": text, "stream": true,
            "voice_setting": {"voice_id": "en_US-joe-medium"},
            "audio_setting": {"format": "pcm", "sample_rate": 22050},
            "subtitle_enable": true,
        }))
        .send()
        .await
        .expect("send");
    let body = resp.text().await.expect("body");
    let frames: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str::<Value>(d.trim()).expect("JSON frame"))
        .collect();
    let streamed: usize = frames
        .iter()
        .filter(|f| f["data"]["status"] == 1)
        .map(|f| f["data"]["audio"].as_str().expect("hex").len() / 2)
        .sum();
    // The subtitles time each sentence by the audio that came back for it.
    let last = frames.last().expect("frames");
    let url = last["data"]["subtitle_file"]
        .as_str()
        .expect("subtitle_file");
    let (_, subs) = s.get_bytes(url, None).await;
    let subs: Vec<Value> = serde_json::from_slice(&subs).expect("subtitles");
    let mut durations = Vec::new();
    let mut segs = subs.iter();
    for sentence in sentences {
        let (mut said, mut ms) = (String::new(), 0.0);
        while said != sentence {
            let seg = segs
                .next()
                .unwrap_or_else(|| panic!("'{sentence}' is not in {subs:?}"));
            if !said.is_empty() {
                said.push(' ');
            }
            said.push_str(seg["text"].as_str().expect("text"));
            ms +=
                seg["time_end"].as_f64().expect("end") - seg["time_begin"].as_f64().expect("begin");
        }
        durations.push(ms);
    }
    for w in durations.windows(2) {
        assert!(
            w[0] * 1.2 < w[1],
            "each sentence should last longer than the one before: {durations:?}"
        );
    }
    // No pauses: the segments start at 0 and follow each other without gaps.
    let mut at = 0.0;
    for seg in &subs {
        let begin = seg["time_begin"].as_f64().expect("begin");
        assert!(
            (begin - at).abs() < 1.0,
            "a gap before {seg} (after {at} ms)"
        );
        at = seg["time_end"].as_f64().expect("end");
    }
    // And the streamed audio is all of it: 16-bit mono at 22,050 Hz.
    let end = subs[subs.len() - 1]["time_end"].as_f64().expect("end");
    let streamed_ms = streamed as f64 / 2.0 / 22.05;
    assert!(
        (streamed_ms - end).abs() < 5.0,
        "streamed {streamed_ms} ms, subtitles end at {end} ms"
    );
}

#[tokio::test]
async fn url_output_and_subtitles_are_links_to_files() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let text = "Links are handy. The audio waits on the server for a day. So do the subtitles.";
    let body = t2a(
        &s,
        &key,
        json!({
            "model": "speech-2.8-hd", "text": text,
            "voice_setting": {"voice_id": "English_expressive_narrator"},
            "output_format": "url", "subtitle_enable": true,
        }),
    )
    .await;
    assert_eq!(body["base_resp"]["status_code"], 0, "{body}");
    let url = body["data"]["audio"].as_str().expect("url");
    assert!(url.starts_with(&s.base), "{url}");
    assert_eq!(body["data"]["audio_url"], url);
    let (status, audio) = s.get_bytes(url, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["extra_info"]["audio_size"], audio.len());
    let pcm = maximin_audio::decode(&audio).expect("mp3 at the link");
    let secs = pcm.duration_secs();
    assert!(secs > 3.0, "{secs}");

    let subs_url = body["data"]["subtitle_file"]
        .as_str()
        .expect("subtitle_file");
    let (status, subs) = s.get_bytes(subs_url, None).await;
    assert_eq!(status, 200);
    let subs: Vec<Value> = serde_json::from_slice(&subs).expect("json");
    assert_eq!(subs.len(), 3, "{subs:?}");
    assert_eq!(subs[0]["text"], "Links are handy.");
    let mut last = 0.0;
    for seg in &subs {
        let (b, e) = (
            seg["time_begin"].as_f64().expect("begin"),
            seg["time_end"].as_f64().expect("end"),
        );
        assert!(b >= last && e > b, "{subs:?}");
        last = e;
    }
    assert!(
        (last / 1000.0 - secs).abs() < 0.25,
        "subtitles end at {last} ms, audio {secs} s"
    );

    // Streaming: subtitles come with the final frame.
    let resp = s
        .http
        .post(s.url("/v1/t2a_v2"))
        .bearer_auth(&key)
        .json(&json!({
            "model": "speech-2.8-turbo", "text": text, "stream": true,
            "voice_setting": {"voice_id": "English_expressive_narrator"},
            "subtitle_enable": true,
        }))
        .send()
        .await
        .expect("send");
    let all = resp.text().await.expect("body");
    let last = all
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| serde_json::from_str::<Value>(l.trim()).expect("json frame"))
        .next_back()
        .expect("frames");
    assert_eq!(last["data"]["status"], 2, "{last}");
    let subs_url = last["data"]["subtitle_file"]
        .as_str()
        .expect("subtitle_file");
    let (status, _) = s.get_bytes(subs_url, None).await;
    assert_eq!(status, 200);

    // url is for whole responses only.
    let r = s
        .post(
            "/v1/t2a_v2",
            &key,
            json!({"model": "speech-2.8-hd", "text": text, "stream": true, "output_format": "url",
                   "voice_setting": {"voice_id": "English_expressive_narrator"}}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 2013, "{:?}", r.body);
}
