//! The Piper voice from the PyPI package on ONNX Runtime from its PyPI wheel,
//! as provisioned by `scripts/provision-models` into $MAXIMIN_TEST_MODELS.

use std::path::PathBuf;

use maximin_core::engines::{Prosody, SpeechEngine};
use maximin_engine_espeak::EspeakEngine;
use maximin_engine_piper::PiperEngine;

fn models() -> PathBuf {
    let root = std::env::var_os("MAXIMIN_TEST_MODELS")
        .expect("MAXIMIN_TEST_MODELS: a data dir provisioned by scripts/provision-models");
    PathBuf::from(root).join("models")
}

fn engine() -> PiperEngine {
    let m = models();
    let lib = m.join("onnxruntime").join("libonnxruntime.so");
    let e = PiperEngine::new(&m, Some(&lib), EspeakEngine::shared().expect("espeak"), 2);
    assert!(e.unavailable().is_none(), "{:?}", e.unavailable());
    e
}

/// Zero crossings per second of the voiced part: a rough pitch measure.
fn crossings_per_sec(s: &[f32], rate: u32) -> f32 {
    let loud: Vec<f32> = s.iter().copied().filter(|x| x.abs() > 0.01).collect();
    let c = loud
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    c as f32 / (loud.len() as f32 / rate as f32)
}

#[tokio::test]
async fn the_default_voice_speaks_english() {
    let e = engine();
    let voices = e.voices();
    let joe = voices
        .iter()
        .find(|v| v.id == "en_US-joe-medium")
        .expect("joe installed");
    assert_eq!(joe.language, "en-us");
    let text = "The quick brown fox jumps over the lazy dog.";
    let a = e
        .synthesize("en_US-joe-medium", text, Prosody::default())
        .await
        .expect("synth");
    assert_eq!(a.sample_rate, 22_050);
    let secs = a.samples.len() as f32 / 22_050.0;
    assert!((1.5..5.0).contains(&secs), "{secs} s");
    let rms = (a.samples.iter().map(|x| x * x).sum::<f32>() / a.samples.len() as f32).sqrt();
    assert!(rms > 0.02, "audible: {rms}");

    let slow = e
        .synthesize(
            "en_US-joe-medium",
            text,
            Prosody {
                rate: 0.5,
                ..Prosody::default()
            },
        )
        .await
        .expect("slow");
    assert!(slow.samples.len() as f32 > 1.6 * a.samples.len() as f32);

    // Pitch: more samples, declared at a higher rate: same duration, higher pitch.
    let high = e
        .synthesize(
            "en_US-joe-medium",
            text,
            Prosody {
                pitch: 12.0,
                ..Prosody::default()
            },
        )
        .await
        .expect("high");
    assert_eq!(high.sample_rate, 44_100);
    let high_secs = high.samples.len() as f32 / high.sample_rate as f32;
    assert!(
        (high_secs - secs).abs() < secs * 0.2,
        "{high_secs} vs {secs}"
    );
    assert!(
        crossings_per_sec(&high.samples, high.sample_rate)
            > 1.5 * crossings_per_sec(&a.samples, a.sample_rate)
    );

    let err = e
        .synthesize("en_GB-nobody", text, Prosody::default())
        .await
        .expect_err("unknown");
    assert!(err.message.contains("en_GB-nobody"));
}

#[test]
fn without_the_runtime_there_are_no_voices_and_a_reason() {
    let e = PiperEngine::new(
        &models(),
        Some(std::path::Path::new("/nonexistent/libonnxruntime.so")),
        EspeakEngine::shared().expect("espeak"),
        1,
    );
    assert!(e.voices().is_empty());
    assert!(e.unavailable().is_some_and(|w| w.contains("missing")));
}

/// A voice and the runtime installed while the server runs (the first
/// start's pull) are found by `refresh`, without building a new engine.
#[test]
fn refresh_finds_the_runtime_and_voices_pulled_after_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = dir.path().join("onnxruntime").join("libonnxruntime.so");
    let e = PiperEngine::new(
        dir.path(),
        Some(&lib),
        EspeakEngine::shared().expect("espeak"),
        1,
    );
    assert!(e.voices().is_empty());
    assert!(e.unavailable().is_some());
    for id in ["onnxruntime", "speech-2.8-hd"] {
        std::os::unix::fs::symlink(models().join(id), dir.path().join(id)).expect("link");
    }
    e.refresh();
    assert!(e.unavailable().is_none(), "{:?}", e.unavailable());
    assert!(e.voices().iter().any(|v| v.id == "en_US-joe-medium"));
}
