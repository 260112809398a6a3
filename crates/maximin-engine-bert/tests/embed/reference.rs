//! Vectors against sentence-transformers' own (tests/fixtures/minilm_reference.json,
//! made by tests/fixtures/make_reference.py).

use maximin_core::engines::EmbedProvider;
use serde::Deserialize;

use crate::support::{cosine, engine, max_abs_diff, spec, weights};

#[derive(Deserialize)]
struct Fixture {
    sentence_transformers: String,
    max_seq_length: usize,
    sentences: Vec<Sentence>,
}

#[derive(Deserialize)]
struct Sentence {
    text: String,
    tokens: usize,
    embedding: Vec<f32>,
}

fn fixture() -> Fixture {
    let text = include_str!("../fixtures/minilm_reference.json");
    serde_json::from_str(text).expect("the reference fixture parses")
}

#[tokio::test]
async fn vectors_match_sentence_transformers() {
    let fixture = fixture();
    let inputs: Vec<String> = fixture.sentences.iter().map(|s| s.text.clone()).collect();
    let out = engine()
        .embed(&spec(), Some(&weights()), &inputs, true)
        .await
        .expect("embed the fixture sentences");
    assert_eq!(out.vectors.len(), inputs.len());

    let mut worst_cos = f64::INFINITY;
    let mut worst_diff = 0f32;
    for (s, v) in fixture.sentences.iter().zip(&out.vectors) {
        assert_eq!(v.len(), 384, "all-MiniLM-L6-v2 vectors have 384 dimensions");
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "unit vectors, got norm {norm}");
        let cos = cosine(v, &s.embedding);
        let diff = max_abs_diff(v, &s.embedding);
        eprintln!(
            "{:>4} tokens  1 - cosine {:.1e}  max |diff| {diff:.2e}  {:.40}",
            s.tokens,
            1.0 - cos,
            s.text
        );
        assert!(
            cos >= 0.999,
            "cosine {cos} with sentence-transformers for {:?}",
            s.text
        );
        worst_cos = worst_cos.min(cos);
        worst_diff = worst_diff.max(diff);
    }
    eprintln!(
        "vs sentence-transformers {}: worst cosine {worst_cos:.9}, max |diff| {worst_diff:.2e}",
        fixture.sentence_transformers
    );

    // Token counts: every input's real tokens, the over-long one cut to the window.
    let expected: u64 = fixture
        .sentences
        .iter()
        .map(|s| s.tokens.min(fixture.max_seq_length) as u64)
        .sum();
    assert_eq!(out.prompt_tokens, expected);
}

#[tokio::test]
async fn each_sentence_alone_matches_too() {
    // Alone, each input is its own batch with no padding at all.
    let fixture = fixture();
    for s in &fixture.sentences {
        let out = engine()
            .embed(
                &spec(),
                Some(&weights()),
                std::slice::from_ref(&s.text),
                true,
            )
            .await
            .expect("embed one sentence");
        let cos = cosine(&out.vectors[0], &s.embedding);
        assert!(cos >= 0.999, "cosine {cos} alone for {:?}", s.text);
        assert_eq!(
            out.prompt_tokens,
            s.tokens.min(fixture.max_seq_length) as u64
        );
    }
}
