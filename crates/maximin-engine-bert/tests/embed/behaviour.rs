//! Semantics, batching invariance, the window, token counts and errors.

use std::path::Path;

use maximin_core::engines::EmbedProvider;
use maximin_engine_bert::{BertEngine, BATCH_SIZE, MAX_INPUTS};
use maximin_types::ErrorCode;

use crate::support::{cosine, engine, spec, strings, weights};

#[tokio::test]
async fn paraphrases_are_closer_than_unrelated_sentences() {
    let out = engine()
        .embed(
            &spec(),
            Some(&weights()),
            &strings(&[
                "How do I reset my password?",
                "What are the steps to change my login password?",
                "The stock market fell sharply on Monday.",
            ]),
            true,
        )
        .await
        .expect("embed");
    let para = cosine(&out.vectors[0], &out.vectors[1]);
    let unrelated = cosine(&out.vectors[0], &out.vectors[2]);
    eprintln!("paraphrase {para:.4}, unrelated {unrelated:.4}");
    assert!(
        para > unrelated + 0.3,
        "paraphrase {para} vs unrelated {unrelated}"
    );
}

#[tokio::test]
async fn padding_and_batching_do_not_change_vectors() {
    let short = "A man is eating food.";
    let long = "The history of the city begins with a small fishing village on the river bank, where traders from the north and the south met every spring to exchange salt, furs, amber and iron tools, and over the centuries the village grew into a market town.";
    let alone = engine()
        .embed(&spec(), Some(&weights()), &strings(&[short]), true)
        .await
        .expect("embed alone");

    // Inside one padded batch with a much longer input, on either side of it
    // (a one-thread engine puts all three in one batch).
    let mixed = BertEngine::new(1)
        .embed(
            &spec(),
            Some(&weights()),
            &strings(&[long, short, long]),
            true,
        )
        .await
        .expect("embed mixed");
    assert_eq!(mixed.vectors.len(), 3);
    let cos = cosine(&alone.vectors[0], &mixed.vectors[1]);
    assert!(cos > 0.9999, "alone vs padded in a batch: cosine {cos}");
    assert!(cosine(&mixed.vectors[0], &mixed.vectors[2]) > 0.9999);

    // Over several internal batches, results come back in input order.
    let many: Vec<String> = (0..BATCH_SIZE * 2 + 5)
        .map(|i| {
            if i % 7 == 3 {
                short.to_owned()
            } else {
                format!("{long} Item {i}.")
            }
        })
        .collect();
    let out = engine()
        .embed(&spec(), Some(&weights()), &many, true)
        .await
        .expect("embed many");
    assert_eq!(out.vectors.len(), many.len());
    for (i, v) in out.vectors.iter().enumerate() {
        if i % 7 == 3 {
            let cos = cosine(&alone.vectors[0], v);
            assert!(
                cos > 0.9999,
                "input {i}: cosine {cos} with the short sentence alone"
            );
        } else {
            assert!(
                cosine(&alone.vectors[0], v) < 0.9,
                "input {i} is a long one"
            );
        }
    }
}

#[tokio::test]
async fn token_counts_are_the_real_tokens() {
    // [CLS] a man is eating food . [SEP]
    let out = engine()
        .embed(
            &spec(),
            Some(&weights()),
            &strings(&["A man is eating food."]),
            true,
        )
        .await
        .expect("embed");
    assert_eq!(out.prompt_tokens, 8);

    // Padding in a batch with a longer input is not counted.
    let out = engine()
        .embed(
            &spec(),
            Some(&weights()),
            &strings(&["A man is eating food.", "A man is eating a piece of bread."]),
            true,
        )
        .await
        .expect("embed");
    assert_eq!(out.prompt_tokens, 8 + 11);

    // Surrounding whitespace is stripped, as sentence-transformers does.
    let out = engine()
        .embed(
            &spec(),
            Some(&weights()),
            &strings(&["  A man is eating food.\n"]),
            true,
        )
        .await
        .expect("embed");
    assert_eq!(out.prompt_tokens, 8);

    let out = engine()
        .embed(&spec(), Some(&weights()), &[], true)
        .await
        .expect("embed nothing");
    assert!(out.vectors.is_empty());
    assert_eq!(out.prompt_tokens, 0);
}

#[tokio::test]
async fn over_long_inputs_are_refused_or_cut() {
    // 300 words: 302 tokens with [CLS] and [SEP], over the 256-token window.
    let long = vec!["word"; 300].join(" ");
    let inputs = vec!["A short one.".to_owned(), long];

    let err = engine()
        .embed(&spec(), Some(&weights()), &inputs, false)
        .await
        .expect_err("truncate=false refuses an input over the window");
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(
        err.details.get("field").and_then(|v| v.as_str()),
        Some("input")
    );
    assert_eq!(err.details.get("index").and_then(|v| v.as_u64()), Some(1));
    assert_eq!(
        err.details.get("tokens").and_then(|v| v.as_u64()),
        Some(302)
    );
    assert_eq!(err.details.get("limit").and_then(|v| v.as_u64()), Some(256));
    assert!(
        err.message.contains("Input 1")
            && err.message.contains("302")
            && err.message.contains("256"),
        "{}",
        err.message
    );

    let out = engine()
        .embed(&spec(), Some(&weights()), &inputs, true)
        .await
        .expect("truncate=true cuts it");
    assert_eq!(out.vectors.len(), 2);
    // "A short one." is 6 tokens ([CLS] a short one . [SEP]); the long one is cut to the window.
    assert_eq!(out.prompt_tokens, 6 + 256);

    // At the window exactly, truncate=false accepts it.
    let exact = vec!["word"; 254].join(" ");
    let out = engine()
        .embed(&spec(), Some(&weights()), &[exact], false)
        .await
        .expect("an input of exactly 256 tokens fits");
    assert_eq!(out.prompt_tokens, 256);
}

#[tokio::test]
async fn too_many_inputs_are_refused() {
    let inputs = vec!["x".to_owned(); MAX_INPUTS + 1];
    let err = engine()
        .embed(&spec(), Some(&weights()), &inputs, true)
        .await
        .expect_err("more than MAX_INPUTS");
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(
        err.details.get("field").and_then(|v| v.as_str()),
        Some("input")
    );
}

#[tokio::test]
async fn a_missing_or_broken_model_is_unavailable() {
    let engine = BertEngine::new(1);
    let spec = spec();
    let inputs = strings(&["hello"]);

    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("models/all-minilm-l6-v2/model.safetensors");
    let err = engine
        .embed(&spec, Some(&missing), &inputs, true)
        .await
        .expect_err("no model dir");
    assert_eq!(err.code, ErrorCode::ModelUnavailable);
    assert!(
        err.message.contains("maximin models pull all-minilm-l6-v2"),
        "{}",
        err.message
    );
    assert!(
        !err.message.contains(&dir.path().display().to_string()),
        "no server paths in client messages: {}",
        err.message
    );

    let err = engine
        .embed(&spec, None, &inputs, true)
        .await
        .expect_err("no weights configured");
    assert_eq!(err.code, ErrorCode::ModelUnavailable);

    // A corrupt model dir: real config and tokenizer, garbage weights.
    let real = weights();
    let real_dir = real.parent().expect("model dir");
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    for f in [
        "config.json",
        "tokenizer.json",
        "sentence_bert_config.json",
        "modules.json",
    ] {
        std::fs::copy(real_dir.join(f), broken.join(f)).expect("copy");
    }
    let weights = broken.join("model.safetensors");
    std::fs::write(&weights, b"not a safetensors file").expect("write");
    let err = engine
        .embed(&spec, Some(&weights), &inputs, true)
        .await
        .expect_err("corrupt weights");
    assert_eq!(err.code, ErrorCode::ModelUnavailable);
    assert!(
        err.message.contains("maximin models pull"),
        "{}",
        err.message
    );

    // Truncated weights (a download cut short).
    let bytes = std::fs::read(&real).expect("read weights");
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).expect("write");
    let err = engine
        .embed(&spec, Some(&weights), &inputs, true)
        .await
        .expect_err("truncated weights");
    assert_eq!(err.code, ErrorCode::ModelUnavailable);

    // A broken config.
    std::fs::write(broken.join("config.json"), b"{").expect("write");
    let err = engine
        .embed(&spec, Some(&weights), &inputs, true)
        .await
        .expect_err("broken config");
    assert_eq!(err.code, ErrorCode::ModelUnavailable);

    // Failures are not cached: once the files are right, the same path loads.
    std::fs::copy(real_dir.join("config.json"), broken.join("config.json")).expect("copy");
    std::fs::copy(&real, &weights).expect("copy weights");
    let pooling = broken.join("1_Pooling");
    std::fs::create_dir_all(&pooling).expect("mkdir");
    std::fs::copy(
        real_dir.join("1_Pooling/config.json"),
        pooling.join("config.json"),
    )
    .expect("copy");
    let out = engine
        .embed(&spec, Some(&weights), &inputs, true)
        .await
        .expect("loads once repaired");
    assert_eq!(out.vectors.len(), 1);
    assert!(Path::new(&weights).is_file());
}

#[tokio::test(flavor = "current_thread")]
async fn compute_does_not_block_the_runtime() {
    // On a single-threaded runtime a ticker keeps ticking while a large request
    // is embedded: the work runs on the engine's pool, not on the runtime.
    let inputs: Vec<String> = (0..BATCH_SIZE * 4)
        .map(|i| format!("Sentence number {i} about rivers, towns and markets."))
        .collect();
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let started = std::time::Instant::now();
    engine()
        .embed(&spec(), Some(&weights()), &inputs, true)
        .await
        .expect("embed");
    let elapsed = started.elapsed();
    ticker.abort();
    let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{} inputs in {elapsed:?}, {ticks} ticks", inputs.len());
    assert!(
        ticks as u128 >= elapsed.as_millis() / 5 / 4,
        "the runtime stalled: {ticks} ticks in {elapsed:?}"
    );
}
