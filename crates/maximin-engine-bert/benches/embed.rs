//! Throughput and latency of the embeddings engine on all-MiniLM-L6-v2.
//!
//!   MAXIMIN_TEST_MODELS=DATA_DIR cargo bench -p maximin-engine-bert --bench embed [-- THREADS]
//!
//! DATA_DIR/models/all-minilm-l6-v2/ must hold the sentence-transformers model.
//! Prints sentences/s for batches of 32 short sentences and the latency of one
//! sentence; `bench/embeddings_peer.py` prints the same figures for
//! sentence-transformers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use maximin_core::catalog::Catalog;
use maximin_core::engines::EmbedProvider;
use maximin_engine_bert::BertEngine;

const SENTENCES: [&str; 16] = [
    "The cat sits on the mat.",
    "A man is playing a guitar on stage.",
    "The new movie is awesome.",
    "How do I reset my password?",
    "Stock markets fell sharply on Monday.",
    "She loves reading books in the park.",
    "The weather will be sunny tomorrow.",
    "Can you recommend a good restaurant nearby?",
    "The quick brown fox jumps over the lazy dog.",
    "Machine learning models need lots of data.",
    "He forgot his umbrella at the office.",
    "Our team won the championship last night.",
    "Please send me the report by Friday.",
    "The train to Berlin leaves at noon.",
    "Fresh bread smells wonderful in the morning.",
    "This phone has an excellent camera.",
];

fn main() {
    let threads: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    // As the server does: before any other thread starts.
    maximin_engine_bert::configure_process();
    let data = std::env::var_os("MAXIMIN_TEST_MODELS")
        .map(PathBuf::from)
        .expect(
            "set MAXIMIN_TEST_MODELS to a data dir whose models/all-minilm-l6-v2/ holds the model",
        );
    let catalog = Catalog::with_overrides(Vec::new()).expect("catalog");
    let spec = catalog
        .resolve("all-minilm-l6-v2")
        .expect("all-minilm-l6-v2 in the catalog")
        .clone();
    let weights = spec
        .weights_path(&data.join("models"))
        .expect("weights path");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let engine = BertEngine::new(threads);
    let batch: Vec<String> = SENTENCES
        .iter()
        .chain(SENTENCES.iter())
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(batch.len(), 32);

    rt.block_on(async {
        let started = Instant::now();
        engine
            .embed(&spec, Some(&weights), &batch[..1], true)
            .await
            .expect("load + first embed");
        println!(
            "bert engine, {} threads (CANDLE_NUM_THREADS={}, RAYON_NUM_THREADS={}): load + first call {:.0} ms",
            engine.threads(),
            std::env::var("CANDLE_NUM_THREADS").unwrap_or_default(),
            std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
            started.elapsed().as_secs_f64() * 1e3
        );
        // Warm-up.
        for _ in 0..3 {
            engine
                .embed(&spec, Some(&weights), &batch, true)
                .await
                .expect("embed");
        }

        let mut batches = 0usize;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) || batches < 10 {
            engine
                .embed(&spec, Some(&weights), &batch, true)
                .await
                .expect("embed");
            batches += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "batch of 32 short sentences: {:.1} sentences/s ({batches} batches, {:.1} ms per batch)",
            (batches * 32) as f64 / secs,
            secs * 1e3 / batches as f64
        );

        let mut lat = Vec::new();
        for i in 0..200 {
            let one = [SENTENCES[i % SENTENCES.len()].to_owned()];
            let t = Instant::now();
            engine
                .embed(&spec, Some(&weights), &one, true)
                .await
                .expect("embed");
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        lat.sort_by(f64::total_cmp);
        println!(
            "single sentence latency: p50 {:.2} ms, p90 {:.2} ms (200 calls)",
            lat[lat.len() / 2],
            lat[lat.len() * 9 / 10]
        );
    });
}
