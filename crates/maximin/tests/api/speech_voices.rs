//! An account's own voices (spec §5.2–5.5): designed from a description,
//! cloned from an uploaded clip, used in synthesis, private to the account,
//! expiring after 168 hours unless used, deleted on request.

use maximin_audio::analysis::voice_stats;
use maximin_audio::Pcm;
use serde_json::{json, Value};

use crate::helpers::Server;

const SENTENCE: &str = "Every voice here is made from a handful of numbers.";

async fn speak(s: &Server, key: &str, model: &str, voice: &str) -> Value {
    s.post(
        "/v1/t2a_v2",
        key,
        json!({"model": model, "text": SENTENCE, "voice_setting": {"voice_id": voice}}),
    )
    .await
    .body
}

fn pcm_of(body: &Value) -> Pcm {
    assert_eq!(body["base_resp"]["status_code"], 0, "{body}");
    let bytes = hex::decode(body["data"]["audio"].as_str().expect("audio")).expect("hex");
    maximin_audio::decode(&bytes).expect("decodes")
}

fn median_hz(pcm: &Pcm) -> f32 {
    voice_stats(pcm).f0_median_hz.expect("voiced speech")
}

fn semitones(a: f32, b: f32) -> f32 {
    12.0 * (a / b).log2()
}

async fn design(s: &Server, key: &str, prompt: &str, id: Option<&str>) -> Value {
    let mut body = json!({"prompt": prompt, "preview_text": "Hello, this is my new voice."});
    if let Some(id) = id {
        body["voice_id"] = json!(id);
    }
    s.post("/v1/voice_design", key, body).await.body
}

fn own_ids(list: &Value, kind: &str) -> Vec<String> {
    list[kind]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v["voice_id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn designed_voices_follow_their_description_and_stay_private() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let (_, other) = s.admin("payg");

    let deep = design(&s, &key, "a calm, deep older male voice, slow", None).await;
    assert_eq!(deep["base_resp"]["status_code"], 0, "{deep}");
    let deep_id = deep["voice_id"].as_str().expect("voice_id").to_owned();
    assert!(deep_id.starts_with("ttv-voice-"), "{deep_id}");
    let trial = hex::decode(deep["trial_audio"].as_str().expect("trial")).expect("hex");
    let trial = maximin_audio::decode(&trial).expect("trial audio is mp3");
    assert!(trial.duration_secs() > 1.0);

    let high = design(
        &s,
        &key,
        "a bright, high young female voice, fast",
        Some("bright-girl-01"),
    )
    .await;
    assert_eq!(high["voice_id"], "bright-girl-01", "{high}");

    // Both speak, and differently: the deep one far lower and slower.
    for model in ["speech-2.8-hd", "speech-2.8-turbo"] {
        let d = pcm_of(&speak(&s, &key, model, &deep_id).await);
        let h = pcm_of(&speak(&s, &key, model, "bright-girl-01").await);
        let gap = semitones(median_hz(&h), median_hz(&d));
        assert!(
            gap > 6.0,
            "{model}: the high voice is only {gap:.1} semitones above the deep one"
        );
        assert!(
            d.duration_secs() > h.duration_secs() * 1.15,
            "{model}: slow {:.2} s vs fast {:.2} s",
            d.duration_secs(),
            h.duration_secs()
        );
    }

    // Listed for the owner only; unusable by another account.
    let mine = s
        .post("/v1/get_voice", &key, json!({"voice_type": "all"}))
        .await
        .body;
    let ids = own_ids(&mine, "voice_generation");
    assert!(
        ids.contains(&deep_id) && ids.contains(&"bright-girl-01".to_owned()),
        "{mine}"
    );
    let theirs = s
        .post("/v1/get_voice", &other, json!({"voice_type": "all"}))
        .await
        .body;
    assert!(own_ids(&theirs, "voice_generation").is_empty(), "{theirs}");
    let r = speak(&s, &other, "speech-2.8-hd", &deep_id).await;
    assert_eq!(r["base_resp"]["status_code"], 20132, "{r}");

    // Ids: taken, system, malformed.
    let r = design(&s, &key, "a voice", Some("bright-girl-01")).await;
    assert_eq!(r["base_resp"]["status_code"], 2039, "{r}");
    let r = design(&s, &key, "a voice", Some("male-qn-qingse")).await;
    assert_eq!(r["base_resp"]["status_code"], 2039, "{r}");
    let r = design(&s, &key, "a voice", Some("1bad")).await;
    assert_eq!(r["base_resp"]["status_code"], 2013, "{r}");
    // The other account may use the same id for its own voice.
    let r = design(&s, &other, "a voice", Some("bright-girl-01")).await;
    assert_eq!(r["base_resp"]["status_code"], 0, "{r}");
}

#[tokio::test]
async fn a_cloned_voice_follows_the_speaker_of_the_clip() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");

    // A clip: 12 s or more of a raised male voice (far from the neural
    // voice's own pitch), in stereo wav.
    let text =
        "This recording is long enough to be cloned. It needs ten seconds of speech at least. \
        So it goes on for a while, sentence after sentence, at an easy pace. \
        The speaker has a raised voice, and the clone should sound raised too.";
    let clip = s
        .post(
            "/v1/t2a_v2",
            &key,
            json!({
                "model": "speech-2.8-turbo", "text": text,
                "voice_setting": {"voice_id": "male-qn-qingse", "pitch": 10},
                "language_boost": "English",
                "audio_setting": {"format": "wav", "channel": 2, "sample_rate": 22050},
            }),
        )
        .await
        .body;
    let clip_pcm = pcm_of(&clip);
    assert!(
        clip_pcm.duration_secs() >= 10.0,
        "{} s",
        clip_pcm.duration_secs()
    );
    let clip_bytes = hex::decode(clip["data"]["audio"].as_str().expect("audio")).expect("hex");
    let up = s.upload(&key, "voice_clone", "me.wav", clip_bytes).await;
    let file_id = up.body["file"]["file_id"].as_i64().expect("file id");

    let r = s
        .post(
            "/v1/voice_clone",
            &key,
            json!({
                "file_id": file_id, "voice_id": "MyHighVoice1",
                "text": "A short preview of the clone.", "model": "speech-2.8-hd",
            }),
        )
        .await
        .body;
    assert_eq!(r["base_resp"]["status_code"], 0, "{r}");
    assert_eq!(r["input_sensitive"], false);
    let demo = r["demo_audio"].as_str().expect("demo url");
    let (status, demo) = s.get_bytes(demo, None).await;
    assert_eq!(status, 200);
    assert!(
        maximin_audio::decode(&demo)
            .expect("demo mp3")
            .duration_secs()
            > 1.0
    );
    assert!(r["extra_info"]["usage_characters"].as_u64().expect("chars") > 0);

    // The clone speaks near its speaker, far from the neural voice's own
    // pitch. (VITS runs are random: a few semitones of spread.)
    let cloned = pcm_of(&speak(&s, &key, "speech-2.8-hd", "MyHighVoice1").await);
    let plain = pcm_of(&speak(&s, &key, "speech-2.8-hd", "en_US-joe-medium").await);
    let (source, clone, own) = (median_hz(&clip_pcm), median_hz(&cloned), median_hz(&plain));
    assert!(
        semitones(clone, source).abs() < 3.0,
        "the clone ({clone:.0} Hz) should be near the speaker ({source:.0} Hz)"
    );
    assert!(
        semitones(clone, own) > 5.0,
        "the clone ({clone:.0} Hz) should be well above the plain neural voice ({own:.0} Hz)"
    );
    let list = s
        .post(
            "/v1/get_voice",
            &key,
            json!({"voice_type": "voice_cloning"}),
        )
        .await
        .body;
    assert_eq!(own_ids(&list, "voice_cloning"), vec!["MyHighVoice1"]);

    // A clip too short, a file of another purpose, a taken id.
    let short = s
        .post(
            "/v1/t2a_v2",
            &key,
            json!({"model": "speech-2.8-turbo", "text": "Too short.", "voice_setting": {"voice_id": "male-qn-qingse"}, "audio_setting": {"format": "wav"}}),
        )
        .await
        .body;
    let bytes = hex::decode(short["data"]["audio"].as_str().expect("audio")).expect("hex");
    let up = s
        .upload(&key, "voice_clone", "short.wav", bytes.clone())
        .await;
    let short_id = up.body["file"]["file_id"].as_i64().expect("id");
    let r = s
        .post(
            "/v1/voice_clone",
            &key,
            json!({"file_id": short_id, "voice_id": "ShortVoice01"}),
        )
        .await
        .body;
    assert_eq!(r["base_resp"]["status_code"], 2037, "{r}");
    let up = s.upload(&key, "prompt_audio", "p.wav", bytes).await;
    let prompt_id = up.body["file"]["file_id"].as_i64().expect("id");
    let r = s
        .post(
            "/v1/voice_clone",
            &key,
            json!({"file_id": prompt_id, "voice_id": "ShortVoice01"}),
        )
        .await
        .body;
    assert_eq!(r["base_resp"]["status_code"], 20132, "{r}");
    let r = s
        .post(
            "/v1/voice_clone",
            &key,
            json!({"file_id": file_id, "voice_id": "MyHighVoice1"}),
        )
        .await
        .body;
    assert_eq!(r["base_resp"]["status_code"], 2039, "{r}");
}

#[tokio::test]
async fn unused_voices_expire_after_168_hours_and_deleted_ids_stay_taken() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    let unused = design(&s, &key, "a warm female narrator", Some("unused-voice-1")).await;
    assert_eq!(unused["base_resp"]["status_code"], 0, "{unused}");
    let used = design(&s, &key, "a gruff old man", Some("used-voice-01")).await;
    assert_eq!(used["base_resp"]["status_code"], 0, "{used}");
    // The trial audio does not count as use; a real synthesis does.
    pcm_of(&speak(&s, &key, "speech-2.8-turbo", "used-voice-01").await);

    // 167 hours later both are there.
    let s = s
        .restart("", &[("MAXIMIN_CLOCK_OFFSET", &(167 * 3600).to_string())])
        .await;
    let list = s
        .post(
            "/v1/get_voice",
            &key,
            json!({"voice_type": "voice_generation"}),
        )
        .await
        .body;
    assert_eq!(own_ids(&list, "voice_generation").len(), 2, "{list}");

    // 169 hours later the unused one is gone, everywhere.
    let s = s
        .restart("", &[("MAXIMIN_CLOCK_OFFSET", &(169 * 3600).to_string())])
        .await;
    let list = s
        .post("/v1/get_voice", &key, json!({"voice_type": "all"}))
        .await
        .body;
    assert_eq!(
        own_ids(&list, "voice_generation"),
        vec!["used-voice-01"],
        "{list}"
    );
    let r = speak(&s, &key, "speech-2.8-turbo", "unused-voice-1").await;
    assert_eq!(r["base_resp"]["status_code"], 20132, "{r}");
    pcm_of(&speak(&s, &key, "speech-2.8-turbo", "used-voice-01").await);

    // Deleting: the wrong type is refused, the right one works once, and the id stays taken.
    let r = s
        .post(
            "/v1/delete_voice",
            &key,
            json!({"voice_type": "voice_cloning", "voice_id": "used-voice-01"}),
        )
        .await
        .body;
    assert_eq!(r["base_resp"]["status_code"], 20132, "{r}");
    let r = s
        .post(
            "/v1/delete_voice",
            &key,
            json!({"voice_type": "voice_generation", "voice_id": "used-voice-01"}),
        )
        .await
        .body;
    assert_eq!(r["base_resp"]["status_code"], 0, "{r}");
    assert_eq!(r["voice_id"], "used-voice-01");
    assert!(r["created_time"]
        .as_str()
        .expect("unix seconds string")
        .parse::<i64>()
        .is_ok());
    let r = speak(&s, &key, "speech-2.8-turbo", "used-voice-01").await;
    assert_eq!(r["base_resp"]["status_code"], 20132, "{r}");
    let r = design(&s, &key, "a voice", Some("used-voice-01")).await;
    assert_eq!(r["base_resp"]["status_code"], 2039, "{r}");
    let r = design(&s, &key, "a voice", Some("unused-voice-1")).await;
    assert_eq!(
        r["base_resp"]["status_code"], 2039,
        "an expired id is not reused either: {r}"
    );
}

#[tokio::test]
async fn mixed_voices_weigh_their_parameters() {
    let s = Server::with_models("").await;
    let (_, key) = s.admin("payg");
    design(
        &s,
        &key,
        "a very deep low male voice",
        Some("deep-voice-01"),
    )
    .await;
    design(
        &s,
        &key,
        "a very high bright male voice",
        Some("high-voice-01"),
    )
    .await;
    let mut hz = Vec::new();
    for (deep, high) in [(100, 1), (50, 50), (1, 100)] {
        let body = s
            .post(
                "/v1/t2a_v2",
                &key,
                json!({
                    "model": "speech-2.8-turbo", "text": SENTENCE,
                    "timbre_weights": [
                        {"voice_id": "deep-voice-01", "weight": deep},
                        {"voice_id": "high-voice-01", "weight": high},
                    ],
                }),
            )
            .await
            .body;
        hz.push(median_hz(&pcm_of(&body)));
    }
    assert!(
        hz[0] < hz[1] && hz[1] < hz[2],
        "pitch should rise with the high voice's weight: {hz:?}"
    );
}
