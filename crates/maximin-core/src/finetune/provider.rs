//! The fine-tuning capability: what a trainer (the local one on candle, or
//! an upstream's some day) does for a job. The job service and its task
//! handler ([`super::jobs`]) call it; they never know how it trains.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::catalog::ModelSpec;
use crate::finetune::data::Example;
use crate::Result;

/// A job's hyperparameters, resolved (no defaults left).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    pub n_epochs: u32,
    pub batch_size: u32,
    pub learning_rate_multiplier: f64,
    pub lora_rank: u32,
    /// Factors on the MLP projections too (`[fine_tune] mlp`).
    #[serde(default)]
    pub lora_mlp: bool,
}

/// What a trainer is asked to do.
pub struct TrainRun {
    pub model: ModelSpec,
    pub weights: PathBuf,
    pub training: Vec<Example>,
    pub validation: Vec<Example>,
    pub hyperparameters: Hyperparameters,
    pub seed: u64,
    /// Where a stopped run left off (from an earlier [`TrainEvent::Checkpoint`]).
    pub checkpoint: Option<Vec<u8>>,
    /// Write a checkpoint at least this often (seconds), and at each epoch's end.
    pub checkpoint_every_s: u64,
    /// Threads the run may use.
    pub threads: usize,
    /// Set to stop the run (checked between examples).
    pub cancel: Arc<AtomicBool>,
}

/// What a run reports as it goes.
#[derive(Debug)]
pub enum TrainEvent {
    /// The run resumed from a checkpoint at this step.
    Resumed {
        step: u64,
    },
    /// Tokenized: examples' tokens (the trained ones, one pass) and steps.
    Prepared {
        examples: usize,
        tokens: u64,
        total_steps: u64,
    },
    Step(StepMetrics),
    /// Everything a resumed run needs, after `step` steps.
    Checkpoint {
        step: u64,
        bytes: Vec<u8>,
        metrics: StepMetrics,
    },
    /// The adapter (a GGUF LoRA adapter) and the tokens trained in all
    /// (each example's tokens × epochs).
    Done {
        adapter: Vec<u8>,
        trained_tokens: u64,
    },
}

/// One optimizer step's figures (the events a job shows).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: u64,
    pub total_steps: u64,
    pub epoch: u64,
    pub train_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_loss: Option<f64>,
    pub learning_rate: f64,
    pub tokens_per_s: f64,
}

/// A trainer for some base models.
#[async_trait]
pub trait FineTuner: Send + Sync {
    /// Whether it can train this base model (else `invalid_request` on `model`).
    fn supports(&self, model: &ModelSpec) -> Result<()>;

    /// Each example's token count as the model reads it; an example the
    /// model cannot learn from (too long, no turn to learn) is refused with
    /// its line.
    async fn count_tokens(
        &self,
        model: &ModelSpec,
        weights: PathBuf,
        field: &str,
        examples: Vec<Example>,
    ) -> Result<Vec<u64>>;

    /// Starts a run; its events arrive on the channel, and an `Err` in it
    /// ends the run (cancelled runs end with `Err` of code `cancelled`
    /// semantics left to the caller: the channel simply closes).
    async fn train(&self, run: TrainRun) -> Result<mpsc::Receiver<Result<TrainEvent>>>;
}
