//! espeak-ng through the engine: voices, synthesis and prosody, phonemes.

use maximin_core::engines::{Prosody, SpeechEngine};
use maximin_engine_espeak::EspeakEngine;

fn engine() -> EspeakEngine {
    EspeakEngine::shared().expect("espeak-ng starts (Debian: libespeak-ng1, espeak-ng-data)")
}

fn voices_for(e: &EspeakEngine, language: &str) -> String {
    e.voices()
        .into_iter()
        .find(|v| v.language == language)
        .map(|v| v.id)
        .unwrap_or_else(|| panic!("a voice for {language}"))
}

fn rms(s: &[f32]) -> f32 {
    (s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32).sqrt()
}

#[test]
fn lists_languages_and_variants() {
    let e = engine();
    let voices = e.voices();
    assert!(voices.len() >= 100, "{} voices", voices.len());
    for lang in ["en-us", "en-gb-x-rp", "fr-fr", "de", "cmn", "ja", "es"] {
        // Listed by language; the id is what espeak-ng selects the voice by.
        assert!(
            voices.iter().any(|v| v.language == lang || v.id == lang),
            "no espeak-ng voice for {lang}"
        );
    }
    let variants = e.variants();
    assert!(variants.iter().any(|v| v.id == "f3"), "{variants:?}");
    assert!(variants.len() >= 20);
}

#[tokio::test]
async fn speaks_and_follows_rate_and_voice() {
    let e = engine();
    let text = "The quick brown fox jumps over the lazy dog.";
    let normal = e
        .synthesize("en-us", text, Prosody::default())
        .await
        .expect("synth");
    assert_eq!(normal.sample_rate, 22_050);
    let secs = normal.samples.len() as f32 / 22_050.0;
    assert!((1.2..5.0).contains(&secs), "{secs} s");
    assert!(rms(&normal.samples) > 0.02, "audible");
    let fast = e
        .synthesize(
            "en-us",
            text,
            Prosody {
                rate: 2.0,
                ..Prosody::default()
            },
        )
        .await
        .expect("fast");
    assert!(
        (fast.samples.len() as f32) < normal.samples.len() as f32 * 0.7,
        "rate 2 is shorter: {} vs {}",
        fast.samples.len(),
        normal.samples.len()
    );
    let female = e
        .synthesize("en-us+f3", text, Prosody::default())
        .await
        .expect("variant");
    assert!(!female.samples.is_empty());
    let fr = voices_for(&e, "fr-fr");
    let french = e
        .synthesize(&fr, "Bonjour tout le monde.", Prosody::default())
        .await
        .expect("fr");
    assert!(!french.samples.is_empty());
    let err = e
        .synthesize("xx-nope", text, Prosody::default())
        .await
        .expect_err("unknown voice");
    assert!(err.message.contains("xx-nope"), "{err}");
}

#[tokio::test]
async fn phonemizes_clause_by_clause_with_punctuation() {
    let e = engine();
    let clauses = e
        .phonemize("en-us", "Hello, world. It costs 3.50 dollars. How are you?")
        .await
        .expect("ipa");
    let terms: Vec<_> = clauses.iter().map(|c| c.terminator).collect();
    assert_eq!(
        terms,
        vec![Some(','), Some('.'), Some('.'), Some('?')],
        "{clauses:?}"
    );
    assert!(clauses[0].phonemes.contains('h'), "{clauses:?}");
    assert!(clauses.iter().all(|c| !c.phonemes.is_empty()));
    // IPA, not espeak's ASCII names.
    assert!(
        clauses.iter().any(|c| !c.phonemes.is_ascii()),
        "{clauses:?}"
    );
}
