//! The service over a provider that sends encoded audio (an upstream's
//! kind, here [`CannedUpstream`]): the bytes reach the caller as they came,
//! whole or chunk by chunk, never decoded or encoded again; the provider's
//! characters are the ones billed.

use std::sync::Arc;

use maximin_core::providers::speech::{AudioOutput, SpeechProvider};
use maximin_core::{Caller, Error, Platform};
use maximin_types::speech::T2aRequest;
use maximin_types::ErrorCode;
use serde_json::json;

use crate::testing::{speech_key, upstream_install, CannedUpstream, CANNED_MS};
use crate::{plan, speak_whole, Synth};

/// A platform in a fresh dir whose `cloud-speech` is spoken by `cloud`, and
/// a caller with a speech key.
struct Setup {
    p: Arc<Platform>,
    caller: Arc<Caller>,
    _dir: tempfile::TempDir,
}

async fn setup(cloud: Option<Arc<dyn SpeechProvider>>) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let (catalog, engines, installed) = upstream_install(cloud).expect("install");
    let p = maximin_store::testing::platform(dir.path(), catalog, engines, installed).await;
    let (_, secret) = speech_key(&p, "speaker@example.com").await.expect("key");
    let caller = p.authenticate(&secret).await.expect("caller");
    Setup {
        p,
        caller,
        _dir: dir,
    }
}

/// Why a request for the upstream's model is refused.
async fn refusal(p: &Platform, caller: &Caller, voice: &str) -> Error {
    let req = request(json!({
        "model": "cloud-speech", "text": "Hello?",
        "voice_setting": {"voice_id": voice},
    }));
    plan(p, caller, &req, Some(&req.text))
        .await
        .err()
        .expect("refused")
}

fn request(body: serde_json::Value) -> T2aRequest {
    serde_json::from_value(body).expect("request")
}

fn mp3_24k() -> AudioOutput {
    AudioOutput {
        format: "mp3".into(),
        sample_rate: 24_000,
        bitrate: 128_000,
        channels: 1,
    }
}

#[tokio::test]
async fn an_upstreams_encoded_audio_is_served_whole_as_it_came() {
    let cloud = Arc::new(CannedUpstream::new(4242));
    let Setup { p, caller, _dir } = setup(Some(cloud.clone())).await;
    let req = request(json!({
        "model": "cloud-speech", "text": "Hello from the cloud.",
        "voice_setting": {"voice_id": "male-qn-qingse", "speed": 1.5, "vol": 2, "emotion": "happy"},
        "audio_setting": {"format": "mp3", "sample_rate": 24000},
        "language_boost": "English",
    }));
    let spoken = speak_whole(&p, &caller, &req).await.expect("spoken");

    // Byte for byte what the provider sent: nothing decoded or re-encoded.
    let sent = CannedUpstream::audio_for(&mp3_24k()).expect("canned");
    assert_eq!(spoken.whole.audio, sent);
    assert_eq!(spoken.model, "cloud-speech");
    let info = &spoken.whole.info;
    assert_eq!(info.audio_size, sent.len() as u64);
    assert_eq!(
        (info.audio_length, info.audio_sample_rate),
        (CANNED_MS, 24_000)
    );
    assert_eq!(info.audio_format, "mp3");
    // The provider's count is the one billed.
    assert_eq!((spoken.whole.chars, info.usage_characters), (4242, 4242));
    assert!(spoken.whole.subtitles.is_empty());

    // The provider got the request's voice and settings as sent.
    let jobs = cloud.jobs();
    let job = jobs.last().expect("a job");
    assert_eq!(job.text, "Hello from the cloud.");
    assert_eq!(job.voice.id, "male-qn-qingse");
    // A MiniMax id's language, as language_boost asks.
    assert_eq!(job.voice.language, "en-us");
    assert_eq!(job.settings.speed, 1.5);
    assert_eq!(job.settings.volume, 2.0);
    assert_eq!(job.settings.emotion.as_deref(), Some("happy"));
    assert_eq!(job.language_boost.as_deref(), Some("English"));
    assert_eq!(job.output, mp3_24k());
    assert!(job.whole);
}

#[tokio::test]
async fn an_upstreams_encoded_audio_streams_chunk_by_chunk() {
    let cloud = Arc::new(CannedUpstream::new(7));
    let Setup { p, caller, _dir } = setup(Some(cloud.clone())).await;
    let req = request(json!({
        "model": "cloud-speech", "text": "Streamed.", "stream": true,
        "voice_setting": {"voice_id": "English_Graceful_Lady"},
        "audio_setting": {"format": "pcm", "sample_rate": 16000},
    }));
    let plan = plan(&p, &caller, &req, Some(&req.text))
        .await
        .expect("plan");
    let mut synth = Synth::new(plan);
    synth.start(&p).await.expect("start");
    assert_eq!(synth.deployment(), Some("cloud:cloud-speech"));
    let mut chunks = Vec::new();
    while let Some(bytes) = synth.next().await {
        chunks.push(bytes.expect("chunk"));
    }
    let (tail, info, chars) = synth.finish().expect("finish");
    assert_eq!(chunks.len(), 3, "the provider's three chunks, one by one");
    assert!(tail.is_empty(), "no encoder of ours: no tail");
    let sent = CannedUpstream::audio_for(&cloud.jobs()[0].output).expect("canned");
    assert_eq!(chunks.concat(), sent);
    assert_eq!(info.audio_size, sent.len() as u64);
    assert_eq!(chars, 7);
    assert!(!cloud.jobs()[0].whole, "a stream asks for streamed audio");
}

#[tokio::test]
async fn an_upstream_model_refuses_what_only_this_server_can_speak() {
    let Setup { p, caller, _dir } = setup(Some(Arc::new(CannedUpstream::new(1)))).await;
    // An account's own voice is parameters over a local voice.
    let profile = maximin_core::voices::design("a calm, deep older male voice").expect("design");
    crate::voices::insert_voice(
        &p,
        &caller.account.id,
        "MyOwnVoice01",
        maximin_core::voices::DESIGNED,
        &profile,
    )
    .await
    .expect("voice");
    let err = refusal(&p, &caller, "MyOwnVoice01").await;
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(err.details["field"], "voice_setting.voice_id");
}

#[tokio::test]
async fn an_upstream_without_a_speech_provider_is_unavailable() {
    let Setup { p, caller, _dir } = setup(None).await;
    let err = refusal(&p, &caller, "male-qn-qingse").await;
    assert_eq!(err.code, ErrorCode::ModelUnavailable);
}

/// A provider that refuses every job as an upstream answering 503 does,
/// counting the tries.
#[derive(Default)]
struct Down(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl SpeechProvider for Down {
    async fn start(
        &self,
        _model: &maximin_core::catalog::ModelSpec,
        _job: maximin_core::providers::speech::SpeechJob,
    ) -> maximin_core::Result<
        tokio::sync::mpsc::Receiver<maximin_core::providers::speech::SpeechEvent>,
    > {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(Error::new(
            ErrorCode::UpstreamError,
            "The upstream 'down' failed (HTTP 503).",
        )
        .with("reason", "status")
        .with("upstream_status", 503))
    }
}

#[tokio::test]
async fn speech_fails_over_to_the_fallback_model_before_any_audio() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Arc::new(CannedUpstream::new(11));
    let down = Arc::new(Down::default());
    let (mut catalog_models, mut engines, mut installed) = (
        Vec::new(),
        maximin_core::engines::Engines::default(),
        maximin_core::catalog::Installed::default(),
    );
    for m in [
        json!({"id": "cloud-speech", "modality": "speech", "context_window": 10000, "engine": "upstream:cloud"}),
        json!({"id": "flaky-speech", "modality": "speech", "context_window": 10000, "engine": "upstream:down",
               "fallbacks": ["cloud-speech"]}),
    ] {
        catalog_models.push(serde_json::from_value(m).expect("model"));
    }
    let catalog = maximin_core::catalog::Catalog::with_overrides(catalog_models).expect("catalog");
    engines
        .speech
        .insert("upstream:cloud".into(), cloud.clone());
    engines.speech.insert("upstream:down".into(), down.clone());
    installed.upstreams = ["cloud".to_owned(), "down".to_owned()].into();
    let p = maximin_store::testing::platform(dir.path(), catalog, engines, installed).await;
    let (_, secret) = speech_key(&p, "failover@example.com").await.expect("key");
    let caller = p.authenticate(&secret).await.expect("caller");

    // Whole: the fallback speaks, and says so.
    let req = request(json!({
        "model": "flaky-speech", "text": "Still here.",
        "voice_setting": {"voice_id": "male-qn-qingse"},
        "audio_setting": {"format": "mp3", "sample_rate": 24000},
    }));
    let spoken = speak_whole(&p, &caller, &req).await.expect("spoken");
    assert_eq!(spoken.deployment, "cloud:cloud-speech");
    assert_eq!(
        spoken.whole.audio,
        CannedUpstream::audio_for(&mp3_24k()).expect("canned")
    );
    assert_eq!(
        down.0.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the first choice was tried"
    );
    assert_eq!(cloud.jobs().len(), 1);

    // Streamed: the same, before the first chunk.
    let req = request(json!({
        "model": "flaky-speech", "text": "Streamed.", "stream": true,
        "voice_setting": {"voice_id": "male-qn-qingse"},
        "audio_setting": {"format": "pcm", "sample_rate": 16000},
    }));
    let mut synth = Synth::new(
        plan(&p, &caller, &req, Some(&req.text))
            .await
            .expect("plan"),
    );
    synth.start(&p).await.expect("start");
    assert_eq!(synth.deployment(), Some("cloud:cloud-speech"));
    let mut audio = Vec::new();
    while let Some(bytes) = synth.next().await {
        audio.extend(bytes.expect("chunk"));
    }
    assert!(!audio.is_empty());
    assert_eq!(down.0.load(std::sync::atomic::Ordering::Relaxed), 2);
}
