//! Fine-tunes (issue 19): LoRA training of the local GGUF chat model,
//! in-process on the CPU.
//!
//! - `model.rs`: Gemma 3 as llama.cpp runs it, on candle, with LoRA factors
//!   on the attention (and optionally MLP) projections; the base weights
//!   dequantised and frozen.
//! - `train.rs`: the loop (seeded order, gradient accumulation, clipping,
//!   AdamW, warm-up and cosine decay), checkpoints, the adapter's bytes.
//! - `local.rs`: `LocalFineTuner`, the `FineTuner` of llama.cpp's models
//!   (examples tokenized by llama.cpp through the model's chat template).
//!
//! Training runs on its own threads ([`pool`]), never on Tokio's, with the
//! share of the cores the operator gave it.

pub mod local;
pub mod model;
pub mod train;

pub use local::LocalFineTuner;
pub use train::{Example, Hyper, StepReport, Trainer};

/// A thread pool for training with `threads` threads; candle's matrix
/// products run on the pool they are called from.
pub fn pool(threads: usize) -> maximin_core::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("fine-tune-{i}"))
        .build()
        .map_err(maximin_core::Error::internal)
}

#[cfg(test)]
mod tests;
