//! The local chat engine: GGUF models on llama.cpp (`llama-cpp-2`).
//!
//! One worker thread per loaded model owns the llama.cpp context and runs a
//! continuous-batching loop ([`worker`]): every step decodes one token for each
//! generating sequence and a chunk of prompt for each new one in a single
//! batch, so concurrent requests share decode steps instead of queueing. Work
//! reaches it through a bounded queue; a full queue is refused at once. Prompt
//! rendering and tokenization run on Tokio's blocking pool, never on its
//! workers, and never on the decode thread.

mod gguf;
mod lmhead;
pub mod lora;
mod prompt;
mod quants;
mod sample;
mod stops;
pub mod training;

/// The default chat model from `MAXIMIN_TEST_MODELS` (provisioned by
/// `scripts/provision-models DATA_DIR`); fails, never skips, without it.
#[cfg(test)]
pub(crate) fn test_gemma() -> std::path::PathBuf {
    let dir = std::env::var_os("MAXIMIN_TEST_MODELS")
        .filter(|d| !d.is_empty())
        .expect("MAXIMIN_TEST_MODELS is not set: run scripts/provision-models DATA_DIR and set it to DATA_DIR");
    let file = std::path::PathBuf::from(dir).join("models/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf");
    assert!(
        file.is_file(),
        "{} is missing: run scripts/provision-models",
        file.display()
    );
    file
}
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use maximin_core::catalog::ModelSpec;
use maximin_core::engines::{ChatProvider, ChatStream};
use maximin_core::{Error, Result};
use maximin_types::inference::ChatCompletionRequest;
use maximin_types::ErrorCode;

use crate::prompt::ToolMode;

pub const ENGINE_NAME: &str = "llama.cpp";

/// Tuning of the engine.
#[derive(Debug, Clone)]
pub struct Options {
    /// CPU threads for decoding (default: the machine's cores).
    pub threads: usize,
    /// Sequences decoded together (default 16).
    pub slots: usize,
    /// Context window of one sequence, in tokens (capped by the model's).
    pub ctx_per_slot: u32,
    /// Requests that may wait for a slot before new ones are refused.
    pub queue: usize,
    /// Tokens per decode step (prompt chunks and generated tokens together).
    pub batch: u32,
    /// Tokens llama.cpp computes at once within a step (its micro-batch): a
    /// long prompt's step runs as micro-batches of this many. 256 keeps a
    /// micro-batch's activations in the caches: prompts run 5-10 % faster
    /// than in one 512-token micro-batch (bench/local_models.py).
    pub ubatch: u32,
    /// Load a copy of a GGUF whose layer weights are in the format this CPU
    /// multiplies fastest in batches (BF16 with AVX-512 BF16, else Q8_0 for
    /// Q5_0 and Q6_K), made once beside the file (see `gguf.rs`).
    pub requantize: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            slots: 16,
            ctx_per_slot: 4096,
            queue: 64,
            batch: 512,
            ubatch: 256,
            requantize: true,
        }
    }
}

fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            LlamaBackend::init()
                .map(|mut b| {
                    b.void_logs();
                    b
                })
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::internal(format!("llama.cpp backend: {e}")))
}

/// How a model's prompts are written.
#[derive(Debug, Clone)]
enum Template {
    /// The GGUF's own Jinja template.
    Jinja(String),
    /// A llama.cpp built-in template, by name.
    Builtin(String),
}

/// A loaded model: shared with the blocking pool for tokenization, and with
/// its worker thread for decoding.
struct Loaded {
    model: Arc<LlamaModel>,
    template: Template,
    bos: String,
    eos: String,
    ctx_per_slot: u32,
    jobs: std::sync::mpsc::SyncSender<worker::Job>,
}

/// A loaded model's weights file and adapter.
type LoadKey = (PathBuf, Option<PathBuf>);

pub struct LlamaEngine {
    opts: Options,
    /// By weights file and adapter (a fine-tuned model's own context).
    loaded: Mutex<HashMap<LoadKey, Arc<Loaded>>>,
    loading: tokio::sync::Mutex<()>,
}

impl LlamaEngine {
    pub fn new(opts: Options) -> Self {
        LlamaEngine {
            opts,
            loaded: Mutex::default(),
            loading: tokio::sync::Mutex::const_new(()),
        }
    }

    fn cached(&self, key: &LoadKey) -> Option<Arc<Loaded>> {
        let map = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    /// Loads a model (with an adapter: a context of its own, since
    /// llama.cpp applies adapters per context) once; concurrent first
    /// requests wait for the one load.
    async fn load(
        &self,
        spec: &ModelSpec,
        path: &Path,
        adapter: Option<&Path>,
    ) -> Result<Arc<Loaded>> {
        let key = (path.to_path_buf(), adapter.map(Path::to_path_buf));
        if let Some(l) = self.cached(&key) {
            return Ok(l);
        }
        let _one_at_a_time = self.loading.lock().await;
        if let Some(l) = self.cached(&key) {
            return Ok(l);
        }
        if !path.is_file() {
            return Err(Error::new(
                ErrorCode::ModelUnavailable,
                format!(
                    "The weights of '{}' are missing: run `maximin models pull {}`.",
                    spec.id, spec.id
                ),
            )
            .with("model", spec.id.as_str()));
        }
        let opts = self.opts.clone();
        let owned = path.to_path_buf();
        let id = spec.id.clone();
        let window = spec.context_window;
        let adapter = key.1.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            load_blocking(&owned, adapter.as_deref(), &id, window, &opts)
        })
        .await
        .map_err(|e| Error::internal(format!("loading task: {e}")))??;
        let loaded = Arc::new(loaded);
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, loaded.clone());
        Ok(loaded)
    }
}

/// libgomp's spin count (`GOMP_SPINCOUNT`) that [`configure_process`] sets.
const GOMP_SPINCOUNT: &str = "10000";

/// Process settings for the chat engine; call it first thing in `main`,
/// while the process has one thread.
///
/// llama.cpp runs its thread team on OpenMP. When a graph is done, libgomp
/// keeps the team's other threads spinning for `GOMP_SPINCOUNT` rounds
/// (300,000 by default: milliseconds) before they sleep, and with as many
/// threads as cores that spinning takes a core from the work that follows
/// each decode: maximin's output projection and sampling, the HTTP server.
/// libgomp reads the variable once, when it is loaded, before `main` runs;
/// so when neither it nor `OMP_WAIT_POLICY` is set, this sets it and
/// executes the program again (Linux only). If that fails, nothing changes.
pub fn configure_process() {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("GOMP_SPINCOUNT").is_some()
            || std::env::var_os("OMP_WAIT_POLICY").is_some()
        {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        std::env::set_var("GOMP_SPINCOUNT", GOMP_SPINCOUNT);
        // Returns only if the program could not be executed again.
        let _ = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec();
    }
}

fn load_blocking(
    path: &Path,
    adapter: Option<&Path>,
    id: &str,
    window: u32,
    opts: &Options,
) -> Result<Loaded> {
    let backend = backend()?;
    let started = std::time::Instant::now();
    let file = if opts.requantize {
        gguf::batched_copy(path)
    } else {
        path.to_path_buf()
    };
    let mut model = LlamaModel::load_from_file(backend, &file, &LlamaModelParams::default()).map_err(|e| {
        Error::new(
            ErrorCode::ModelUnavailable,
            format!("The weights of '{id}' could not be loaded ({e}): pull them again with `maximin models pull {id}`."),
        )
        .with("model", id)
    })?;
    let adapter = match adapter {
        Some(a) => Some(model.lora_adapter_init(a).map_err(|e| {
            Error::new(
                ErrorCode::ModelUnavailable,
                format!("The adapter of '{id}' could not be loaded ({e})."),
            )
            .with("model", id)
        })?),
        None => None,
    };
    let model = Arc::new(model);
    let template = template_of(&model);
    let (bos, eos) = bos_eos(&model);
    let mut ctx_per_slot = opts.ctx_per_slot.min(model.n_ctx_train().max(256));
    if window > 0 {
        ctx_per_slot = ctx_per_slot.min(window);
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(opts.queue.max(1));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let worker_model = model.clone();
    let wopts = worker::WorkerOptions {
        threads: opts.threads.max(1),
        slots: opts.slots.max(1),
        ctx_per_slot,
        batch: opts.batch.max(16),
        ubatch: opts.ubatch.max(16),
        gguf: file,
        adapter,
    };
    std::thread::Builder::new()
        .name(format!("llama-{id}"))
        .spawn(move || worker::run(backend, worker_model, wopts, rx, ready_tx))
        .map_err(|e| Error::internal(format!("starting the decode thread: {e}")))?;
    ready_rx
        .recv()
        .map_err(|_| Error::internal("the decode thread stopped while starting"))??;
    tracing::info!(model = %id, ms = started.elapsed().as_millis() as u64, ctx_per_slot, slots = opts.slots, "chat model loaded");
    Ok(Loaded {
        model,
        template,
        bos,
        eos,
        ctx_per_slot,
        jobs: tx,
    })
}

/// Renders and tokenizes a request; checks it fits the context window.
fn prepare(
    loaded: &Loaded,
    req: &ChatCompletionRequest,
    mode: &ToolMode,
) -> Result<worker::Prepared> {
    let messages = prompt::prepared_messages(req, mode);
    let text = render(
        &loaded.model,
        &loaded.template,
        (&loaded.bos, &loaded.eos),
        &messages,
        true,
    )?;
    let add_bos = loaded.bos.is_empty() || !text.starts_with(&loaded.bos);
    let tokens = loaded
        .model
        .vocab()
        .tokenize(text.as_bytes(), add_bos, true);
    let n = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
    let window = loaded.ctx_per_slot;
    let wanted = n.saturating_add(req.max_tokens.unwrap_or(1));
    if n >= window || wanted > window {
        return Err(Error::invalid(
            if n >= window { "messages" } else { "max_tokens" },
            format!(
                "This request needs {wanted} tokens ({n} in the prompt, {} to generate) but the model's context window here is {window}.",
                wanted - n
            ),
        )
        .with("prompt_tokens", n)
        .with("context_window", window));
    }
    let grammar = match mode {
        ToolMode::None => None,
        ToolMode::Json => {
            let schema = req.json_schema().unwrap_or_default();
            let g = llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| {
                Error::invalid(
                    "response_format",
                    format!("'response_format' has no usable JSON schema: {e}"),
                )
            })?;
            Some(g)
        }
        ToolMode::Auto | ToolMode::Forced(_) => {
            let only = match mode {
                ToolMode::Forced(Some(n)) => Some(n.as_str()),
                _ => None,
            };
            let schema = prompt::call_schema(&req.tools, only);
            let g = llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| {
                Error::invalid(
                    "tools",
                    format!("A tool's parameters are not a usable JSON schema: {e}"),
                )
            })?;
            Some(g)
        }
    };
    Ok(worker::Prepared {
        tokens,
        grammar,
        mode: mode.clone(),
        max_tokens: req.max_tokens,
        temperature: req.temperature.unwrap_or(1.0),
        top_p: req.top_p.unwrap_or(1.0),
        seed: req.seed,
        stops: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
    })
}

/// The model's chat template: its own Jinja, or llama.cpp's built-in one
/// for its architecture.
fn template_of(model: &LlamaModel) -> Template {
    match model.meta_val_str("tokenizer.chat_template") {
        Ok(t) if !t.trim().is_empty() => Template::Jinja(t),
        _ => {
            let arch = model
                .meta_val_str("general.architecture")
                .unwrap_or_default();
            Template::Builtin(prompt::builtin_for(&arch).to_owned())
        }
    }
}

/// The text of the model's BOS and EOS tokens.
fn bos_eos(model: &LlamaModel) -> (String, String) {
    let vocab = model.vocab();
    let text_of = |t| {
        vocab
            .text(t)
            .and_then(|c| c.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    (text_of(vocab.bos()), text_of(vocab.eos()))
}

/// Messages as the model reads them, through its template; with
/// `add_generation_prompt`, ending where the assistant's turn begins.
fn render(
    model: &LlamaModel,
    template: &Template,
    (bos, eos): (&str, &str),
    messages: &[maximin_types::inference::ChatMessage],
    add_generation_prompt: bool,
) -> Result<String> {
    match template {
        Template::Jinja(src) => {
            prompt::render_jinja(src, messages, bos, eos, add_generation_prompt)
                .or_else(|_| {
                    // Templates that know no tool role or tool calls get them as text.
                    let plain: Vec<_> = prompt::plain_messages(messages)
                        .into_iter()
                        .map(|(role, content)| maximin_types::inference::ChatMessage {
                            role: match role.as_str() {
                                "system" => maximin_types::inference::Role::System,
                                "assistant" => maximin_types::inference::Role::Assistant,
                                _ => maximin_types::inference::Role::User,
                            },
                            content: Some(content),
                            name: None,
                            tool_calls: None,
                            tool_call_id: None,
                        })
                        .collect();
                    prompt::render_jinja(src, &plain, bos, eos, add_generation_prompt)
                })
                .or_else(|_| builtin(model, "chatml", messages, add_generation_prompt))
        }
        Template::Builtin(name) => builtin(model, name, messages, add_generation_prompt),
    }
}

fn builtin(
    model: &LlamaModel,
    name: &str,
    messages: &[maximin_types::inference::ChatMessage],
    add_generation_prompt: bool,
) -> Result<String> {
    let tmpl = LlamaChatTemplate::new(name).map_err(|e| Error::internal(e.to_string()))?;
    let chat = prompt::plain_messages(messages)
        .into_iter()
        .enumerate()
        .map(|(i, (role, content))| {
            LlamaChatMessage::new(role, content).map_err(|_| {
                Error::invalid(
                    &format!("messages[{i}].content"),
                    "Message text may not contain NUL characters.",
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    model
        .apply_chat_template(&tmpl, &chat, add_generation_prompt)
        .map_err(|e| Error::internal(format!("chat template '{name}': {e}")))
}

fn weights_of<'a>(model: &ModelSpec, weights: Option<&'a Path>) -> Result<&'a Path> {
    weights.ok_or_else(|| {
        Error::new(
            ErrorCode::ModelUnavailable,
            format!("'{}' names no weights file.", model.id),
        )
    })
}

#[async_trait]
impl ChatProvider for LlamaEngine {
    async fn start(
        &self,
        model: &ModelSpec,
        weights: Option<&Path>,
        request: &ChatCompletionRequest,
    ) -> Result<ChatStream> {
        self.start_with(model, weights_of(model, weights)?, None, request)
            .await
    }

    async fn start_adapted(
        &self,
        model: &ModelSpec,
        weights: Option<&Path>,
        adapter: &Path,
        request: &ChatCompletionRequest,
    ) -> Result<ChatStream> {
        self.start_with(model, weights_of(model, weights)?, Some(adapter), request)
            .await
    }
}

impl LlamaEngine {
    async fn start_with(
        &self,
        model: &ModelSpec,
        path: &Path,
        adapter: Option<&Path>,
        request: &ChatCompletionRequest,
    ) -> Result<ChatStream> {
        let mode = prompt::tool_mode(request)?;
        let loaded = self.load(model, path, adapter).await?;
        let req = request.clone();
        let l2 = loaded.clone();
        let prepared = tokio::task::spawn_blocking(move || prepare(&l2, &req, &mode))
            .await
            .map_err(|e| Error::internal(format!("prompt task: {e}")))??;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let job = worker::Job {
            prepared,
            events: tx,
        };
        loaded.jobs.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => {
                let mut e = Error::new(
                    ErrorCode::RateLimitExceeded,
                    "The model is busy: its queue is full. Retry shortly.",
                )
                .with("reason", "engine_queue_full");
                e.retry_after = Some(1);
                e
            }
            std::sync::mpsc::TrySendError::Disconnected(_) => {
                Error::internal("the decode thread has stopped")
            }
        })?;
        Ok(rx.into())
    }
}
