//! The local embeddings engine: BERT-family sentence-transformers models
//! (all-MiniLM-L6-v2 by default) on candle, CPU only.
//!
//! - Vectors match sentence-transformers: inputs are stripped, tokenized with the
//!   model's `tokenizer.json` (cut at the model's `max_seq_length` when
//!   `truncate` is set, refused otherwise), run through the encoder (a batch's
//!   inputs packed end to end, never padded: `encoder.rs`), pooled as `1_Pooling/config.json` says (mean over the
//!   attention mask for MiniLM) and L2-normalised when `modules.json` lists a
//!   Normalize module.
//! - Compute never runs on the async runtime: tokenization, model loading and
//!   every forward pass run on the engine's own pool of `threads` threads.
//!   Each thread computes one batch at a time, single-threaded (with
//!   [`configure_process`]; candle takes those settings only from the
//!   environment): batches run side by side rather than one batch split over
//!   every core, which keeps every core busy through the element-wise parts
//!   of the model and needs no synchronisation inside a forward pass.
//! - A request is cut into up to one batch per thread (at most [`BATCH_SIZE`]
//!   inputs each, at least [`MIN_SPLIT_BATCH`] when split), in input order. Turns on
//!   the pool are fair (FIFO), so a short request waits for at most one batch
//!   per thread of a long one, and a dropped request starts no further batch.
//! - Models are loaded on first use and cached per catalog id (and weights
//!   path). A missing or broken model directory is `model_unavailable` with the
//!   `maximin models pull` hint, and is retried on the next request.

mod encoder;
mod model;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use maximin_core::catalog::ModelSpec;
use maximin_core::engines::{EmbedOutput, EmbedProvider};
use maximin_core::{Error, Result};
use maximin_types::ErrorCode;
use tokio::sync::{oneshot, OnceCell, Semaphore};

use crate::model::{Model, TokenizeError, Tokenized};

/// The catalog's engine name for the models this crate serves.
pub const ENGINE_NAME: &str = "bert";

/// Most inputs one call may carry.
pub const MAX_INPUTS: usize = 2048;

/// Most inputs per forward pass.
pub const BATCH_SIZE: usize = 32;

/// A request is not split into batches smaller than this to spread it over
/// more threads.
pub const MIN_SPLIT_BATCH: usize = 8;

/// How many inputs go into each batch of a request of `inputs` on `threads`.
fn per_batch(inputs: usize, threads: usize) -> usize {
    let batches = (inputs / MIN_SPLIT_BATCH).clamp(1, threads.max(1));
    inputs.div_ceil(batches).clamp(1, BATCH_SIZE)
}

type ModelCell = Arc<OnceCell<Arc<Model>>>;

/// The embeddings engine. Cheap to construct (the pool starts on first use),
/// `Send + Sync`, and cheap to clone (clones share the pool and the cache).
#[derive(Clone)]
pub struct BertEngine {
    inner: Arc<Inner>,
}

struct Inner {
    threads: usize,
    pool: OnceLock<std::result::Result<rayon::ThreadPool, String>>,
    models: Mutex<HashMap<(String, PathBuf), ModelCell>>,
    /// At most `threads` batches on the pool at once, one per thread; fair, so
    /// concurrent requests take turns batch by batch.
    gate: Arc<Semaphore>,
}

/// Sets the two process-wide thread settings candle reads from the
/// environment, unless the operator already set them, so that each of the
/// engine's threads computes its own batch without further threads:
///
/// - `CANDLE_NUM_THREADS=1`: candle's element-wise kernels run on the calling
///   thread instead of a second, spinning pool of their own that competes with
///   the engine's threads for the same cores.
/// - `RAYON_NUM_THREADS=1`: candle's matrix products run on the calling thread
///   (otherwise they are split over the engine's pool, and candle parses
///   `/proc/cpuinfo` on every product to decide how many pieces to cut).
///
/// Call it at the top of `main`, before the async runtime or any other thread
/// starts: changing the environment is only sound while the process has a
/// single thread. Engines work without it, only slower. It also caps the
/// global rayon pool (which nothing else in maximin uses) at one thread.
pub fn configure_process() {
    for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, "1");
        }
    }
}

/// The number of threads [`BertEngine::new`] uses when given 0.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for BertEngine {
    fn default() -> Self {
        BertEngine::new(0)
    }
}

impl std::fmt::Debug for BertEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertEngine")
            .field("threads", &self.inner.threads)
            .finish_non_exhaustive()
    }
}

impl BertEngine {
    /// An engine computing on `threads` threads (0: one per available core).
    /// Call [`configure_process`] at the start of `main` too: without it candle
    /// adds threads of its own (one per physical core) inside every batch.
    pub fn new(threads: usize) -> Self {
        let threads = if threads == 0 {
            default_threads()
        } else {
            threads
        };
        BertEngine {
            inner: Arc::new(Inner {
                threads,
                pool: OnceLock::new(),
                models: Mutex::new(HashMap::new()),
                gate: Arc::new(Semaphore::new(threads)),
            }),
        }
    }

    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    fn pool(&self) -> Result<&rayon::ThreadPool> {
        let threads = self.inner.threads;
        self.inner
            .pool
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("maximin-bert-{i}"))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::internal(format!("cannot start the embeddings pool: {e}")))
    }

    /// Starts `job` on the compute pool; the receiver gets its result. A panic
    /// in the job becomes an internal error.
    fn spawn<T, F>(&self, job: F) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let pool = self.pool()?;
        let (tx, rx) = oneshot::channel();
        pool.spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                Err(Error::internal(format!("embeddings job panicked: {what}")))
            });
            // The caller may have gone away; nothing to do then.
            let _ = tx.send(result);
        });
        Ok(rx)
    }

    /// Runs `job` on the compute pool and waits for it without blocking the
    /// runtime.
    async fn run<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        self.spawn(job)?
            .await
            .map_err(|_| Error::internal("the embeddings pool dropped a job"))?
    }

    /// A turn on one of the pool's threads.
    async fn gate(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.inner
            .gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("the embeddings gate is closed"))
    }

    /// The loaded model for `spec`, loading it on first use.
    async fn model(&self, spec: &ModelSpec, weights: Option<&Path>) -> Result<Arc<Model>> {
        let Some(weights) = weights else {
            return Err(unavailable(spec, "no weights file is configured for it"));
        };
        let cell = {
            let mut models = self
                .inner
                .models
                .lock()
                .map_err(|_| Error::internal("the bert model cache lock is poisoned"))?;
            models
                .entry((spec.id.clone(), weights.to_path_buf()))
                .or_default()
                .clone()
        };
        let model = cell
            .get_or_try_init(|| {
                let path = weights.to_path_buf();
                let id = spec.id.clone();
                let spec = spec.clone();
                async move {
                    self.run(move || {
                        let started = std::time::Instant::now();
                        match Model::load(&path) {
                            Ok(model) => {
                                tracing::info!(
                                    model = %id,
                                    ms = started.elapsed().as_millis() as u64,
                                    "embeddings model loaded"
                                );
                                Ok(Arc::new(model))
                            }
                            Err(cause) => {
                                tracing::warn!(
                                    model = %id,
                                    path = %path.display(),
                                    %cause,
                                    "embeddings model cannot be loaded"
                                );
                                Err(unavailable(&spec, &cause))
                            }
                        }
                    })
                    .await
                }
            })
            .await?;
        Ok(model.clone())
    }
}

fn embed_chunk(model: &Model, tokenized: &[Tokenized]) -> Result<Vec<Vec<f32>>> {
    let batch: Vec<&[u32]> = tokenized.iter().map(|t| t.ids.as_slice()).collect();
    model
        .embed_batch(&batch)
        .map_err(|e| Error::internal(format!("bert forward pass failed: {e}")))
}

fn tokenize_error(e: TokenizeError) -> Error {
    match e {
        TokenizeError::TooLong {
            index,
            tokens,
            limit,
        } => Error::invalid(
            "input",
            format!(
                "Input {index} is {tokens} tokens long; this model takes at most {limit}. Shorten it or send truncate: true."
            ),
        )
        .with("index", index)
        .with("tokens", tokens)
        .with("limit", limit),
        TokenizeError::Failed(cause) => Error::internal(format!("tokenization failed: {cause}")),
    }
}

fn unavailable(spec: &ModelSpec, cause: &str) -> Error {
    Error::new(
        ErrorCode::ModelUnavailable,
        format!(
            "The model '{id}' cannot be loaded ({cause}): run `maximin models pull {id}` to install it.",
            id = spec.id
        ),
    )
    .with("model", spec.id.as_str())
}

#[async_trait]
impl EmbedProvider for BertEngine {
    async fn embed(
        &self,
        model: &ModelSpec,
        weights: Option<&Path>,
        inputs: &[String],
        truncate: bool,
    ) -> Result<EmbedOutput> {
        if inputs.len() > MAX_INPUTS {
            return Err(Error::invalid(
                "input",
                format!(
                    "At most {MAX_INPUTS} inputs per request; this one has {}.",
                    inputs.len()
                ),
            ));
        }
        let loaded = self.model(model, weights).await?;
        if inputs.is_empty() {
            return Ok(EmbedOutput {
                vectors: Vec::new(),
                prompt_tokens: 0,
            });
        }

        // Batches run side by side, one per thread, each single-threaded: a
        // request is cut into up to one batch per thread so that even a lone
        // request uses several cores, but not into batches under
        // MIN_SPLIT_BATCH inputs (every forward pass streams all the weights, so
        // tiny batches would be bound by memory bandwidth), nor over BATCH_SIZE.
        let per_batch = per_batch(inputs.len(), self.inner.threads);

        if inputs.len() <= per_batch {
            // One batch: tokenize and embed in a single trip to the pool.
            let permit = self.gate().await?;
            let loaded = loaded.clone();
            let inputs = inputs.to_vec();
            return self
                .run(move || {
                    let _permit = permit;
                    let tokenized = loaded.tokenize(&inputs, truncate).map_err(tokenize_error)?;
                    let prompt_tokens = tokenized.iter().map(|t| t.ids.len() as u64).sum();
                    let vectors = embed_chunk(&loaded, &tokenized)?;
                    Ok(EmbedOutput {
                        vectors,
                        prompt_tokens,
                    })
                })
                .await;
        }

        let tokenized = {
            let loaded = loaded.clone();
            let inputs = inputs.to_vec();
            self.run(move || loaded.tokenize(&inputs, truncate).map_err(tokenize_error))
                .await?
        };
        let prompt_tokens: u64 = tokenized.iter().map(|t| t.ids.len() as u64).sum();
        let tokenized: Arc<Vec<Tokenized>> = Arc::new(tokenized);

        // Batches are packed, never padded, so they need no sorting by
        // length. Start every batch as a thread frees up (other requests'
        // batches take their turns in between), then collect the results in
        // order.
        let mut pending = Vec::new();
        for start in (0..tokenized.len()).step_by(per_batch) {
            let end = (start + per_batch).min(tokenized.len());
            let permit = self.gate().await?;
            let loaded = loaded.clone();
            let tokenized = tokenized.clone();
            pending.push(self.spawn(move || {
                let _permit = permit;
                embed_chunk(&loaded, &tokenized[start..end])
            })?);
        }
        let mut vectors = Vec::with_capacity(tokenized.len());
        for rx in pending {
            vectors.extend(
                rx.await
                    .map_err(|_| Error::internal("the embeddings pool dropped a job"))??,
            );
        }
        Ok(EmbedOutput {
            vectors,
            prompt_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn requests_are_cut_into_one_batch_per_thread_within_bounds() {
        assert_eq!(per_batch(1, 2), 1);
        assert_eq!(per_batch(10, 2), 10);
        assert_eq!(per_batch(16, 2), 8);
        assert_eq!(per_batch(32, 2), 16);
        assert_eq!(per_batch(32, 1), 32);
        assert_eq!(per_batch(32, 16), 8);
        assert_eq!(per_batch(100, 1), 32);
        assert_eq!(per_batch(2048, 2), 32);
        assert_eq!(per_batch(0, 2), 1);
    }

    #[test]
    fn engine_is_send_sync_and_cheap() {
        assert_send_sync::<BertEngine>();
        let engine = BertEngine::new(3);
        assert_eq!(engine.threads(), 3);
        assert!(engine.inner.pool.get().is_none(), "the pool starts lazily");
        assert_eq!(BertEngine::new(0).threads(), default_threads());
    }
}
