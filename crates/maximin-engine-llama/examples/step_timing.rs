//! Times llama.cpp decode steps under the chat worker's context settings,
//! one knob changed at a time, to find what a step costs beyond the
//! arithmetic (`llama-bench`'s figure): a long prompt in one step, and 16
//! short prompts followed by 16-row decode steps.
//!
//! `cargo run --release -p maximin-engine-llama --example step_timing -- GGUF`

use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;

const PROMPT: &str =
    "Once upon a time, in a small village by the sea, there lived an old lighthouse keeper who";

struct Variant {
    name: &'static str,
    n_ctx: u32,
    unified: bool,
    swa_full: bool,
    fa: i32,
    ubatch: u32,
}

fn main() {
    let gguf = std::env::args().nth(1).expect("usage: step_timing GGUF");
    let threads: i32 = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let mut backend = LlamaBackend::init().expect("backend");
    backend.void_logs();
    let model =
        LlamaModel::load_from_file(&backend, &gguf, &LlamaModelParams::default()).expect("model");
    let long: Vec<_> = model
        .vocab()
        .tokenize([PROMPT; 24].join(" ").as_bytes(), true, true);
    let short: Vec<Vec<_>> = (0..16)
        .map(|i| {
            model
                .vocab()
                .tokenize(format!("Fable 16.{i}. {PROMPT}").as_bytes(), true, true)
        })
        .collect();
    let variants = [
        Variant {
            name: "worker (16x4096 unified, swa_full, fa auto, ub 256)",
            n_ctx: 65536,
            unified: true,
            swa_full: true,
            fa: -1,
            ubatch: 256,
        },
        Variant {
            name: "swa_full off",
            n_ctx: 65536,
            unified: true,
            swa_full: false,
            fa: -1,
            ubatch: 256,
        },
        Variant {
            name: "swa_full off, fa off",
            n_ctx: 65536,
            unified: true,
            swa_full: false,
            fa: 0,
            ubatch: 256,
        },
        Variant {
            name: "swa_full off, ub 512",
            n_ctx: 65536,
            unified: true,
            swa_full: false,
            fa: -1,
            ubatch: 512,
        },
        Variant {
            name: "n_ctx 4096 (one slot's)",
            n_ctx: 4096,
            unified: true,
            swa_full: true,
            fa: -1,
            ubatch: 256,
        },
        Variant {
            name: "not unified, swa_full off",
            n_ctx: 65536,
            unified: false,
            swa_full: false,
            fa: -1,
            ubatch: 256,
        },
    ];
    for v in &variants {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(v.n_ctx))
            .with_n_batch(512)
            .with_n_ubatch(v.ubatch)
            .with_n_seq_max(16)
            .with_kv_unified(v.unified)
            .with_swa_full(v.swa_full)
            .with_flash_attention_policy(v.fa)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx = model.new_context(&backend, params).expect("context");
        let mut batch = LlamaBatch::new(512, 16);
        // The long prompt, three times (a fresh cache each time).
        let mut prompt_ms = Vec::new();
        for r in 0..4 {
            ctx.clear_kv_cache();
            batch.clear();
            for (p, t) in long.iter().enumerate() {
                batch
                    .add(*t, p as i32, &[r % 16], p + 1 == long.len())
                    .expect("add");
            }
            let t0 = Instant::now();
            ctx.decode(&mut batch).expect("decode");
            prompt_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        prompt_ms.remove(0);
        prompt_ms.sort_by(f64::total_cmp);
        let pms = prompt_ms[1];
        // 16 short prompts in one step, then 128 steps of 16 rows.
        ctx.clear_kv_cache();
        batch.clear();
        let mut pos = [0i32; 16];
        for (s, toks) in short.iter().enumerate() {
            for (p, t) in toks.iter().enumerate() {
                batch
                    .add(*t, p as i32, &[s as i32], p + 1 == toks.len())
                    .expect("add");
            }
            pos[s] = toks.len() as i32;
        }
        let n_short = batch.n_tokens();
        let t0 = Instant::now();
        ctx.decode(&mut batch).expect("decode");
        let short_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t0 = Instant::now();
        for _ in 0..128 {
            batch.clear();
            for (s, p) in pos.iter_mut().enumerate() {
                batch
                    .add(
                        llama_cpp_2::token::LlamaToken(236761),
                        *p,
                        &[s as i32],
                        true,
                    )
                    .expect("add");
                *p += 1;
            }
            ctx.decode(&mut batch).expect("decode");
        }
        let step_ms = t0.elapsed().as_secs_f64() * 1e3 / 128.0;
        println!(
            "{:<52} prompt {} tok {:>6.0} ms ({:>4.0} tok/s) | 16 prompts {} tok {:>5.0} ms | 16-row step {:>5.1} ms ({:>4.0} tok/s)",
            v.name,
            long.len(),
            pms,
            long.len() as f64 / pms * 1e3,
            n_short,
            short_ms,
            step_ms,
            16e3 / step_ms
        );
    }
}
