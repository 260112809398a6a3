//! The local trainer: [`FineTuner`] for models the llama.cpp engine serves.
//! Examples are tokenized by llama.cpp through the model's own chat
//! template (exactly as a request to the fine-tuned model will be); the run
//! is a thread of its own with a pool of `threads` for candle, reporting on
//! a channel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use maximin_core::catalog::ModelSpec;
use maximin_core::finetune::data::Example as DataExample;
use maximin_core::finetune::provider::{FineTuner, StepMetrics, TrainEvent, TrainRun};
use maximin_core::{Error, Result};
use maximin_engine_llama::training::ExampleTokenizer;
use tokio::sync::mpsc;

use crate::train::{Example, Hyper, Trainer};

/// The learning rate a multiplier of 1 means (LoRA on a small model learns
/// a new fact in a few dozen steps at this rate without forgetting how to
/// talk).
pub const BASE_LEARNING_RATE: f64 = 2e-3;
/// The longest example trained, in tokens.
pub const MAX_EXAMPLE_TOKENS: usize = 2048;

#[derive(Default)]
pub struct LocalFineTuner {
    tokenizers: Mutex<HashMap<PathBuf, Arc<ExampleTokenizer>>>,
}

impl LocalFineTuner {
    pub fn new() -> Self {
        Self::default()
    }

    fn tokenizer(&self, path: &Path) -> Result<Arc<ExampleTokenizer>> {
        if let Some(t) = self.tokenizers.lock().map_err(Error::internal)?.get(path) {
            return Ok(t.clone());
        }
        let t = Arc::new(ExampleTokenizer::open(path)?);
        self.tokenizers
            .lock()
            .map_err(Error::internal)?
            .insert(path.to_owned(), t.clone());
        Ok(t)
    }
}

fn architecture(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).map_err(crate::model::ce)?;
    Ok(ct
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_default())
}

/// Each example's tokens, or the first line that cannot be trained.
fn tokenize(tok: &ExampleTokenizer, field: &str, examples: &[DataExample]) -> Result<Vec<Example>> {
    let mut out = Vec::with_capacity(examples.len());
    for e in examples {
        let at = |reason: String| {
            Error::invalid(
                field,
                format!(
                    "The {field} line {} cannot be trained on: {reason}.",
                    e.line
                ),
            )
            .with("line", e.line as u64)
        };
        let t = tok
            .tokenize(&e.messages, &e.tools)
            .map_err(|err| at(err.message))?;
        if t.tokens.len() > MAX_EXAMPLE_TOKENS {
            return Err(at(format!(
                "it is {} tokens long; at most {MAX_EXAMPLE_TOKENS} are trained",
                t.tokens.len()
            )));
        }
        if t.learned() == 0 {
            return Err(at("it has no assistant turn to learn".into()));
        }
        out.push(Example {
            tokens: t.tokens.iter().map(|&x| x as u32).collect(),
            learn: t.learn,
        });
    }
    Ok(out)
}

#[async_trait]
impl FineTuner for LocalFineTuner {
    fn supports(&self, model: &ModelSpec) -> Result<()> {
        if model.engine != maximin_engine_llama::ENGINE_NAME {
            return Err(Error::invalid(
                "model",
                format!("The model '{}' is not a local llama.cpp model.", model.id),
            ));
        }
        Ok(())
    }

    async fn count_tokens(
        &self,
        model: &ModelSpec,
        weights: PathBuf,
        field: &str,
        examples: Vec<DataExample>,
    ) -> Result<Vec<u64>> {
        let arch = {
            let w = weights.clone();
            tokio::task::spawn_blocking(move || architecture(&w))
                .await
                .map_err(Error::internal)??
        };
        if arch != "gemma3" {
            return Err(Error::invalid(
                "model",
                format!(
                    "The model '{}' cannot be fine-tuned here: the trainer takes Gemma 3 models, and this one is '{arch}'.",
                    model.id
                ),
            ));
        }
        let tok = self.tokenizer(&weights)?;
        let field = field.to_owned();
        tokio::task::spawn_blocking(move || {
            Ok(tokenize(&tok, &field, &examples)?
                .iter()
                .map(|e| e.tokens.len() as u64)
                .collect())
        })
        .await
        .map_err(Error::internal)?
    }

    async fn train(&self, run: TrainRun) -> Result<mpsc::Receiver<Result<TrainEvent>>> {
        let tok = self.tokenizer(&run.weights)?;
        let (tx, rx) = mpsc::channel(64);
        std::thread::Builder::new()
            .name("fine-tune".into())
            .spawn(move || {
                let cancel = run.cancel.clone();
                let out = crate::pool(run.threads)
                    .and_then(|pool| pool.install(|| train(&tok, run, &tx)));
                // When the thread (and its pool) let go of the cores.
                tracing::info!(
                    cancelled = cancel.load(Ordering::Relaxed),
                    "fine-tune run ended"
                );
                if let Err(e) = out {
                    let _ = tx.blocking_send(Err(e));
                }
            })
            .map_err(Error::internal)?;
        Ok(rx)
    }
}

fn train(
    tok: &ExampleTokenizer,
    run: TrainRun,
    tx: &mpsc::Sender<Result<TrainEvent>>,
) -> Result<()> {
    let send = |ev: TrainEvent| tx.blocking_send(Ok(ev)).is_ok();
    let training = tokenize(tok, "training_file", &run.training)?;
    let validation = tokenize(tok, "validation_file", &run.validation)?;
    let h = &run.hyperparameters;
    let hyper = Hyper {
        epochs: h.n_epochs as usize,
        learning_rate: BASE_LEARNING_RATE * h.learning_rate_multiplier,
        batch_size: h.batch_size as usize,
        rank: h.lora_rank as usize,
        mlp: h.lora_mlp,
        seed: run.seed,
    };
    let epochs = hyper.epochs as u64;
    let mut trainer = Trainer::new(&run.weights, hyper, training.len())?;
    let tokens: u64 = training.iter().map(|e| e.tokens.len() as u64).sum();
    let total = trainer.total_steps() as u64;
    if let Some(bytes) = &run.checkpoint {
        trainer.resume(bytes)?;
        if !send(TrainEvent::Resumed {
            step: trainer.step() as u64,
        }) {
            return Ok(());
        }
    }
    if !send(TrainEvent::Prepared {
        examples: training.len(),
        tokens,
        total_steps: total,
    }) {
        return Ok(());
    }
    let stop = || run.cancel.load(Ordering::Relaxed) || tx.is_closed();
    let mut saved = Instant::now();
    while !trainer.done() {
        let (batch, epoch) = trainer.next_batch();
        let batch: Vec<&Example> = batch.iter().map(|&i| &training[i]).collect();
        let Some(r) = trainer.train_step(&batch, epoch, &stop)? else {
            return Ok(());
        };
        let epoch_end = r.step % trainer.steps_per_epoch() == 0;
        let valid_loss = if epoch_end && !validation.is_empty() {
            Some(trainer.evaluate(&validation)?)
        } else {
            None
        };
        let metrics = StepMetrics {
            step: r.step as u64,
            total_steps: total,
            epoch: r.epoch as u64,
            train_loss: r.loss,
            valid_loss,
            learning_rate: r.learning_rate,
            tokens_per_s: r.tokens as f64 / r.seconds.max(1e-9),
        };
        if !send(TrainEvent::Step(metrics.clone())) {
            return Ok(());
        }
        let due = saved.elapsed().as_secs() >= run.checkpoint_every_s || epoch_end;
        if due && !trainer.done() {
            saved = Instant::now();
            let bytes = trainer.checkpoint()?;
            if !send(TrainEvent::Checkpoint {
                step: r.step as u64,
                bytes,
                metrics,
            }) {
                return Ok(());
            }
        }
    }
    if stop() {
        return Ok(());
    }
    send(TrainEvent::Done {
        adapter: trainer.adapter()?,
        trained_tokens: tokens * epochs,
    });
    Ok(())
}
