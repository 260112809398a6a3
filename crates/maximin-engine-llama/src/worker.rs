//! The decode thread of one model: continuous batching over a fixed set of
//! sequence slots.
//!
//! Each step builds one batch: the last sampled token of every generating
//! sequence, then prompt chunks of admitted sequences up to the batch size.
//! After the decode, each sequence that produced logits samples its next token:
//! from its logits row directly (`sample.rs`: top-k, top-p, temperature,
//! seeded draw), or through llama.cpp's sampler chain when a grammar
//! constrains it. Its text goes through its stop
//! matcher to the client. A sequence whose client has gone is dropped before
//! the next step and its KV cells freed.
//!
//! Where the CPU has AVX-512 VNNI or AVX2 and the output matrix is Q8_0, the logits
//! of grammar-free steps come from maximin's own output projection
//! (`lmhead.rs`): llama.cpp's graph is stopped at the final hidden states
//! (see [`Capture`]), which that kernel multiplies about twice as fast.

use std::ffi::c_void;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use maximin_core::engines::{ChatEvent, ChatOutput};
use maximin_core::Error;
use maximin_types::inference::{ChatMessage, FunctionCall, Role, ToolCall};
use maximin_types::TokenUsage;
use tokio::sync::mpsc::UnboundedSender;

use crate::lmhead::LmHead;
use crate::prompt::{self, ToolMode, CALL_CLOSE, CALL_OPEN};
use crate::sample::{Draw, TOP_K};
use crate::stops::{Hit, StopMatcher};

pub struct WorkerOptions {
    pub threads: usize,
    pub slots: usize,
    pub ctx_per_slot: u32,
    pub batch: u32,
    /// llama.cpp's micro-batch (at most `batch`): a step of more tokens runs
    /// as several, in order, each caught by the graph callback in turn.
    pub ubatch: u32,
    /// The GGUF llama.cpp loaded: its Q8_0 output matrix is what maximin
    /// multiplies itself on CPUs with AVX-512 VNNI or AVX2 (`lmhead.rs`).
    pub gguf: PathBuf,
    /// A fine-tuned model's LoRA adapter, applied to the whole context.
    pub adapter: Option<llama_cpp_2::model::LlamaLoraAdapter>,
}

/// A request made ready on the blocking pool.
pub struct Prepared {
    pub tokens: Vec<LlamaToken>,
    pub grammar: Option<String>,
    pub mode: ToolMode,
    pub max_tokens: Option<u32>,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: Option<u64>,
    pub stops: Vec<String>,
}

pub struct Job {
    pub prepared: Prepared,
    pub events: UnboundedSender<ChatEvent>,
}

struct Seq {
    prompt: Vec<LlamaToken>,
    /// Prompt tokens already in the KV cache.
    fed: usize,
    /// Next position to write.
    pos: i32,
    last: LlamaToken,
    /// Index of this sequence's logits in the current batch.
    logits_at: Option<i32>,
    picker: Picker,
    budget: u32,
    generated: u32,
    stops: StopMatcher,
    utf8: Vec<u8>,
    content: String,
    /// Text of a tool call, once one has begun.
    call: Option<String>,
    mode: ToolMode,
    events: UnboundedSender<ChatEvent>,
}

/// How a sequence picks its tokens.
enum Picker {
    /// Straight from the logits row (a fraction of a millisecond).
    Direct(Draw),
    /// llama.cpp's chain, led by a grammar that needs every candidate.
    Chain(Box<LlamaSampler>),
}

fn picker(model: &LlamaModel, p: &Prepared) -> Result<Picker, Error> {
    let seed = p.seed.unwrap_or_else(rand_seed);
    let Some(g) = &p.grammar else {
        return Ok(Picker::Direct(Draw::new(p.temperature, p.top_p, seed)));
    };
    let grammar = match p.mode {
        ToolMode::Forced(_) | ToolMode::Json => LlamaSampler::grammar(model, g, "root"),
        // The call grammar applies only once the model writes the opening tag.
        _ => {
            let wrapped = format!("{g}\ncall ::= \"{CALL_OPEN}\" root \"{CALL_CLOSE}\"\n");
            LlamaSampler::grammar_lazy(model, &wrapped, "call", [CALL_OPEN], &[])
        }
    }
    .map_err(|e| match p.mode {
        ToolMode::Json => Error::invalid(
            "response_format",
            format!("The response format's grammar was refused (a schema too large?): {e}"),
        ),
        _ => Error::invalid("tools", format!("The tools' grammar was refused: {e}")),
    })?;
    let mut chain = vec![grammar];
    if p.mode == ToolMode::Json {
        // A free JSON object tends to grow key after key on small models; a
        // penalty on repeats makes closing it likelier.
        chain.push(LlamaSampler::penalties(model.n_vocab(), 64, 1.3, 0.0, 0.0));
    }
    if p.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        // The same cut as `Draw`: top-p over a whole vocabulary is a sort per
        // token, and what it keeps beyond the 40th token has negligible mass.
        chain.push(LlamaSampler::top_k(TOP_K as i32));
        chain.push(LlamaSampler::top_p(p.top_p, 1));
        chain.push(LlamaSampler::temp(p.temperature));
        chain.push(LlamaSampler::dist((seed ^ (seed >> 32)) as u32));
    }
    Ok(Picker::Chain(Box::new(LlamaSampler::chain_simple(chain))))
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

pub fn run(
    backend: &'static LlamaBackend,
    model: Arc<LlamaModel>,
    opts: WorkerOptions,
    jobs: Receiver<Job>,
    ready: std::sync::mpsc::Sender<Result<(), Error>>,
) {
    let n_ctx = opts
        .ctx_per_slot
        .saturating_mul(u32::try_from(opts.slots).unwrap_or(1));
    let threads = i32::try_from(opts.threads).unwrap_or(1);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(opts.batch)
        .with_n_ubatch(opts.ubatch.min(opts.batch))
        .with_n_seq_max(u32::try_from(opts.slots).unwrap_or(1))
        // One KV buffer for every sequence: llama.cpp then decodes a step's
        // tokens as one micro-batch. With a buffer per sequence it splits a
        // step wherever the sequences in it are not consecutive slots or
        // carry unequal token counts, down to one-row micro-batches whose
        // matrix products cannot use its batched kernels.
        .with_kv_unified(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut head = load_head(&opts.gguf, &model);
    // Declared before the context, so dropped after it.
    let capture = CaptureBox::new(model.n_embd() as usize);
    let params = match &head {
        Some(_) => capture.attach(params),
        None => params,
    };
    let mut ctx = match model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(Error::internal(format!("llama.cpp context: {e}"))));
            return;
        }
    };
    let mut opts = opts;
    if let Some(a) = opts.adapter.as_mut() {
        if let Err(e) = ctx.lora_adapter_set(a, 1.0) {
            let _ = ready.send(Err(Error::internal(format!("llama.cpp adapter: {e}"))));
            return;
        }
    }
    let mut batch = LlamaBatch::new(opts.batch as usize, i32::try_from(opts.slots).unwrap_or(1));
    if let Some(h) = &head {
        if !check_head(
            &mut ctx,
            &model,
            &mut batch,
            h,
            &capture,
            opts.threads,
            opts.slots,
        ) {
            head = None;
        }
    }
    let _ = ready.send(Ok(()));
    let mut logits = Vec::new();
    let mut slots: Vec<Option<Seq>> = (0..opts.slots).map(|_| None).collect();
    let mut open = true;

    while open || slots.iter().any(Option::is_some) {
        // Admit waiting requests into free slots; sleep only when idle.
        let idle = slots.iter().all(Option::is_none);
        let mut first = true;
        while let Some(free) = slots.iter().position(Option::is_none) {
            let job = if idle && first {
                match jobs.recv() {
                    Ok(j) => j,
                    Err(_) => {
                        open = false;
                        break;
                    }
                }
            } else {
                match jobs.try_recv() {
                    Ok(j) => j,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            };
            first = false;
            if job.events.is_closed() {
                continue;
            }
            let p = job.prepared;
            match picker(&model, &p) {
                Ok(picker) => {
                    let _ = ctx.clear_kv_cache_seq(Some(free as u32), None, None);
                    let room = opts.ctx_per_slot.saturating_sub(p.tokens.len() as u32);
                    let marker = (p.mode == ToolMode::Auto).then(|| CALL_OPEN.to_owned());
                    slots[free] = Some(Seq {
                        last: p.tokens.last().copied().unwrap_or(LlamaToken(0)),
                        fed: 0,
                        pos: 0,
                        logits_at: None,
                        picker,
                        budget: p.max_tokens.unwrap_or(room).min(room),
                        generated: 0,
                        stops: StopMatcher::new(p.stops, marker),
                        utf8: Vec::new(),
                        content: String::new(),
                        call: matches!(p.mode, ToolMode::Forced(_)).then(String::new),
                        mode: p.mode,
                        events: job.events,
                        prompt: p.tokens,
                    });
                }
                Err(e) => {
                    let _ = job.events.send(ChatEvent::Failed(e));
                }
            }
        }

        // Sequences whose client went away free their slot now.
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|s| s.events.is_closed()) {
                *slot = None;
                let _ = ctx.clear_kv_cache_seq(Some(i as u32), None, None);
            }
        }

        batch.clear();
        let mut room = opts.batch as usize;
        for (i, seq) in slots.iter_mut().enumerate() {
            let Some(seq) = seq else { continue };
            seq.logits_at = None;
            if seq.fed == seq.prompt.len()
                && room > 0
                && batch.add(seq.last, seq.pos, &[i as i32], true).is_ok()
            {
                seq.logits_at = Some(batch.n_tokens() - 1);
                seq.pos += 1;
                room -= 1;
            }
        }
        for (i, seq) in slots.iter_mut().enumerate() {
            let Some(seq) = seq else { continue };
            while seq.fed < seq.prompt.len() && room > 0 {
                let is_last = seq.fed + 1 == seq.prompt.len();
                if batch
                    .add(seq.prompt[seq.fed], seq.pos, &[i as i32], is_last)
                    .is_err()
                {
                    break;
                }
                if is_last {
                    seq.logits_at = Some(batch.n_tokens() - 1);
                }
                seq.fed += 1;
                seq.pos += 1;
                room -= 1;
            }
        }
        if batch.n_tokens() == 0 {
            continue;
        }
        // maximin's output projection serves the step unless a sequence in
        // it samples through llama.cpp's chain (a grammar), which reads
        // llama.cpp's logits.
        let own_head = head.as_ref().filter(|_| {
            slots
                .iter()
                .flatten()
                .all(|s| s.logits_at.is_none() || matches!(s.picker, Picker::Direct(_)))
        });
        capture.begin(if own_head.is_some() {
            Catch::RowsAndStop
        } else {
            Catch::Off
        });
        if let Err(e) = ctx.decode(&mut batch) {
            tracing::error!(error = %e, "llama.cpp decode failed");
            for (i, slot) in slots.iter_mut().enumerate() {
                if let Some(seq) = slot.take() {
                    let _ = seq
                        .events
                        .send(ChatEvent::Failed(Error::internal(format!("decode: {e}"))));
                    let _ = ctx.clear_kv_cache_seq(Some(i as u32), None, None);
                }
            }
            continue;
        }
        let picks = match own_head {
            Some(h) => match own_logits(h, &capture, &slots, &mut logits, opts.threads) {
                Ok(rows) => pick_from_rows(&mut slots, &logits, h.rows(), rows),
                Err(e) => {
                    tracing::error!(error = %e, "maximin's output projection failed; llama.cpp's from now on");
                    head = None;
                    for (i, slot) in slots.iter_mut().enumerate() {
                        if let Some(seq) = slot.take_if(|s| s.logits_at.is_some()) {
                            let _ = seq
                                .events
                                .send(ChatEvent::Failed(Error::internal(e.clone())));
                            let _ = ctx.clear_kv_cache_seq(Some(i as u32), None, None);
                        }
                    }
                    continue;
                }
            },
            None => pick_tokens(&ctx, &mut slots),
        };
        for (i, token) in picks {
            let Some(seq) = &mut slots[i] else { continue };
            let finished = step(&model, seq, token, opts.ctx_per_slot);
            if let Some(reason) = finished {
                let slot = &mut slots[i];
                if let Some(seq) = slot.take() {
                    finish(seq, reason);
                }
                let _ = ctx.clear_kv_cache_seq(Some(i as u32), None, None);
            }
        }
    }
}

/// The next token of every sequence that produced logits this step, by slot.
fn pick_tokens(ctx: &LlamaContext<'_>, slots: &mut [Option<Seq>]) -> Vec<(usize, LlamaToken)> {
    let mut picks = Vec::new();
    for (i, slot) in slots.iter_mut().enumerate() {
        let Some(seq) = slot else { continue };
        let Some(at) = seq.logits_at else { continue };
        let token = match &mut seq.picker {
            Picker::Direct(draw) => LlamaToken(draw.sample(ctx.get_logits_ith(at))),
            Picker::Chain(chain) => chain.sample(ctx, at),
        };
        picks.push((i, token));
    }
    picks
}

/// The final hidden states of a decode, caught by llama.cpp's graph callback
/// (`cb_eval`) at its `result_norm` node, the input of the output product.
/// With [`Catch::RowsAndStop`] the callback stops the graph there: llama.cpp
/// then leaves its logits unwritten, and maximin's kernel computes them.
struct Capture {
    width: usize,
    mode: Catch,
    /// Rows caught this decode, in output order (one per token that asked
    /// for logits, in batch order: a step's micro-batches run in order, and
    /// stopping one graph at `result_norm` leaves the next to run).
    rows: Vec<f32>,
    /// The node was not the f32 matrix expected: nothing was skipped.
    fault: bool,
}

/// What the graph callback does with `result_norm` in the next decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Catch {
    /// Nothing: the node is not even asked for, so the graph runs whole in
    /// one piece (no kernel, or a step that needs llama.cpp's logits).
    Off,
    /// Copies the rows and lets the graph go on (the check at load).
    Rows,
    /// Copies the rows and stops the graph before llama.cpp's product.
    RowsAndStop,
}

/// Owns a [`Capture`] that llama.cpp reaches through a raw pointer while a
/// decode runs; it is read and reset here only between decodes.
struct CaptureBox(*mut Capture);

#[allow(unsafe_code)]
impl CaptureBox {
    fn new(width: usize) -> CaptureBox {
        CaptureBox(Box::into_raw(Box::new(Capture {
            width,
            mode: Catch::Off,
            rows: Vec::new(),
            fault: false,
        })))
    }

    /// `params` with the callback set on this capture.
    fn attach(&self, params: LlamaContextParams) -> LlamaContextParams {
        // SAFETY: llama-cpp-2 0.1.160 (pinned) defines `LlamaContextParams`
        // as a struct whose one field is the C `llama_context_params`, and
        // gives no way to set the callback; `transmute` checks the sizes.
        let mut raw: llama_cpp_sys_2::llama_context_params = unsafe { std::mem::transmute(params) };
        raw.cb_eval = Some(on_tensor);
        raw.cb_eval_user_data = self.0.cast::<c_void>();
        unsafe {
            std::mem::transmute::<llama_cpp_sys_2::llama_context_params, LlamaContextParams>(raw)
        }
    }

    fn begin(&self, mode: Catch) {
        // SAFETY: no decode is running (the decode thread is this one).
        let cap = unsafe { &mut *self.0 };
        cap.mode = mode;
        cap.fault = false;
        cap.rows.clear();
    }

    fn get(&self) -> &Capture {
        // SAFETY: as in `begin`.
        unsafe { &*self.0 }
    }
}

#[allow(unsafe_code)]
impl Drop for CaptureBox {
    fn drop(&mut self) {
        // SAFETY: made by `Box::into_raw`; the context that used it is gone.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

/// llama.cpp's `ggml_backend_sched_eval_callback`: asked (`ask`) whether the
/// node `t` is wanted, then called once it is computed; `false` stops the
/// graph.
#[allow(unsafe_code)]
unsafe extern "C" fn on_tensor(
    t: *mut llama_cpp_sys_2::ggml_tensor,
    ask: bool,
    user: *mut c_void,
) -> bool {
    // SAFETY: llama.cpp passes a live tensor and the pointer `attach` set.
    let (Some(t), Some(cap)) = (unsafe { t.as_ref() }, unsafe {
        user.cast::<Capture>().as_mut()
    }) else {
        return true;
    };
    let name = unsafe { std::ffi::CStr::from_ptr(t.name.as_ptr()) };
    if name.to_bytes() != b"result_norm" {
        // Not wanted; and never stop the graph for another node.
        return !ask;
    }
    if ask {
        return cap.mode != Catch::Off;
    }
    let rows = usize::try_from(t.ne[1]).unwrap_or(0);
    let plain = t.type_ == llama_cpp_sys_2::GGML_TYPE_F32
        && usize::try_from(t.ne[0]).ok() == Some(cap.width)
        && t.ne[2] == 1
        && t.ne[3] == 1
        && t.nb[0] == 4
        && (!t.data.is_null() || rows == 0);
    if !plain {
        cap.fault = true;
        return true;
    }
    for r in 0..rows {
        // SAFETY: a computed f32 tensor of `rows` rows of `width`, `nb[1]`
        // bytes apart.
        let row = unsafe {
            std::slice::from_raw_parts(
                t.data.cast::<u8>().add(r * t.nb[1]).cast::<f32>(),
                cap.width,
            )
        };
        cap.rows.extend_from_slice(row);
    }
    cap.mode != Catch::RowsAndStop
}

/// The repacked output matrix of the GGUF at `path`, when this CPU and the
/// model allow it.
fn load_head(path: &Path, model: &LlamaModel) -> Option<LmHead> {
    let Some(kernel) = crate::lmhead::Kernel::for_this_cpu() else {
        tracing::debug!("output projection: llama.cpp's (neither AVX-512 VNNI nor AVX2)");
        return None;
    };
    let started = std::time::Instant::now();
    let (rows, cols, data) = match crate::gguf::output_q8_0(path) {
        Ok(Some(m)) => m,
        Ok(None) => {
            tracing::debug!("output projection: llama.cpp's (the output matrix is not Q8_0)");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "output projection: llama.cpp's");
            return None;
        }
    };
    if rows != model.n_vocab().max(0) as usize || cols != model.n_embd().max(0) as usize {
        tracing::warn!(
            rows,
            cols,
            "output projection: llama.cpp's (the output matrix does not match the model)"
        );
        return None;
    }
    match LmHead::from_q8_0(rows, cols, &data) {
        Ok(h) => {
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                ?kernel,
                "output matrix repacked"
            );
            Some(h)
        }
        Err(e) => {
            tracing::warn!(error = %e, "output projection: llama.cpp's");
            None
        }
    }
}

/// Decodes a small batch both ways (two sequences, three outputs, a token
/// without logits between them) and keeps maximin's kernel only if its rows
/// are llama.cpp's, in llama.cpp's order. An architecture that scales, caps
/// or biases its logits after the product, or names its nodes otherwise,
/// fails here and keeps llama.cpp's projection.
fn check_head(
    ctx: &mut LlamaContext<'_>,
    model: &LlamaModel,
    batch: &mut LlamaBatch,
    head: &LmHead,
    capture: &CaptureBox,
    threads: usize,
    slots: usize,
) -> bool {
    match head_deviation(ctx, model, batch, head, capture, threads, slots > 1) {
        Ok(d) if d <= 1e-3 => {
            tracing::info!(
                deviation = d,
                kernel = ?head.kernel(),
                "output projection: maximin's"
            );
            true
        }
        Ok(d) => {
            tracing::info!(
                deviation = d,
                "output projection: llama.cpp's (maximin's kernel disagrees with it on this model)"
            );
            false
        }
        Err(e) => {
            tracing::info!(reason = %e, "output projection: llama.cpp's");
            false
        }
    }
}

/// The largest difference between maximin's and llama.cpp's logits on a test
/// batch, relative to the largest logit.
fn head_deviation(
    ctx: &mut LlamaContext<'_>,
    model: &LlamaModel,
    batch: &mut LlamaBatch,
    head: &LmHead,
    capture: &CaptureBox,
    threads: usize,
    two: bool,
) -> Result<f32, String> {
    let n = head.rows() as i32;
    let bos = model.vocab().bos();
    let seq1 = i32::from(two);
    // (token, position, sequence, logits)
    let plan = [
        (bos, 0, 0, true),
        (LlamaToken(n / 3), 1, 0, false),
        (LlamaToken(n / 2), 2, 0, true),
        (bos, if two { 0 } else { 3 }, seq1, false),
        (LlamaToken(n / 5), if two { 1 } else { 4 }, seq1, true),
    ];
    batch.clear();
    for (token, pos, seq, logits) in plan {
        batch
            .add(token, pos, &[seq], logits)
            .map_err(|e| e.to_string())?;
    }
    capture.begin(Catch::Rows);
    let decoded = ctx.decode(batch);
    batch.clear();
    let result = (|| {
        decoded.map_err(|e| e.to_string())?;
        let cap = capture.get();
        let outs: Vec<i32> = (0..plan.len() as i32)
            .filter(|&i| plan[i as usize].3)
            .collect();
        if cap.fault || cap.rows.len() != outs.len() * head.cols() {
            return Err("the model's graph has no plain result_norm".to_owned());
        }
        let mut ours = vec![0f32; outs.len() * head.rows()];
        head.logits(&cap.rows, &mut ours, threads);
        let mut worst = 0f32;
        for (r, &at) in outs.iter().enumerate() {
            let theirs = ctx.get_logits_ith(at);
            let mine = &ours[r * head.rows()..(r + 1) * head.rows()];
            let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
            if !(scale.is_finite() && scale > 0.0) {
                return Err("llama.cpp's logits are not finite".to_owned());
            }
            let d = mine
                .iter()
                .zip(theirs)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            worst = worst.max(d / scale);
        }
        Ok(worst)
    })();
    for seq in 0..=seq1 {
        let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
    }
    result
}

/// Computes this step's logits rows with maximin's kernel; returns, for each
/// row, the slot it belongs to.
fn own_logits(
    head: &LmHead,
    capture: &CaptureBox,
    slots: &[Option<Seq>],
    logits: &mut Vec<f32>,
    threads: usize,
) -> Result<Vec<usize>, String> {
    let mut outs: Vec<(i32, usize)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref()?.logits_at.map(|at| (at, i)))
        .collect();
    outs.sort_unstable();
    let cap = capture.get();
    if cap.fault || cap.rows.len() != outs.len() * head.cols() {
        return Err(format!(
            "llama.cpp handed over {} hidden values for {} outputs",
            cap.rows.len(),
            outs.len()
        ));
    }
    logits.resize(outs.len() * head.rows(), 0.0);
    head.logits(&cap.rows, logits, threads);
    Ok(outs.into_iter().map(|(_, i)| i).collect())
}

/// The next token of each slot in `rows`, from its row of `logits`.
fn pick_from_rows(
    slots: &mut [Option<Seq>],
    logits: &[f32],
    vocab: usize,
    rows: Vec<usize>,
) -> Vec<(usize, LlamaToken)> {
    let mut picks = Vec::with_capacity(rows.len());
    for (r, i) in rows.into_iter().enumerate() {
        let Some(seq) = &mut slots[i] else { continue };
        if let Picker::Direct(draw) = &mut seq.picker {
            picks.push((
                i,
                LlamaToken(draw.sample(&logits[r * vocab..(r + 1) * vocab])),
            ));
        }
    }
    picks
}

/// Takes `token` as `seq`'s next one; returns a finish reason when it is done.
fn step(model: &LlamaModel, seq: &mut Seq, token: LlamaToken, window: u32) -> Option<&'static str> {
    let vocab = model.vocab();
    if vocab.is_eog(token) {
        return Some(if seq.call.is_some() {
            "tool_calls"
        } else {
            "stop"
        });
    }
    seq.generated += 1;
    seq.last = token;
    seq.utf8.extend(vocab.token_to_piece(token, false, None));
    let text = take_utf8(&mut seq.utf8);
    if let Some(call) = &mut seq.call {
        call.push_str(&text);
        let complete = match seq.mode {
            ToolMode::Auto => call.contains(CALL_CLOSE),
            // The grammar allows only the call: done once it is whole JSON.
            _ => {
                call.trim_end().ends_with('}')
                    && serde_json::from_str::<serde_json::Value>(call).is_ok()
            }
        };
        if complete {
            return Some("tool_calls");
        }
    } else if !text.is_empty() {
        let (out, hit) = seq.stops.push(&text);
        if !out.is_empty() {
            seq.content.push_str(&out);
            let _ = seq.events.send(ChatEvent::Delta(out));
        }
        match hit {
            Some(Hit::Stop) => return Some("stop"),
            Some(Hit::Marker) => seq.call = Some(seq.stops.rest()),
            None => {}
        }
        // JSON mode: done once the reply is whole JSON (the grammar allows
        // nothing but whitespace after it).
        if seq.mode == ToolMode::Json
            && seq.content.trim_end().ends_with(['}', ']'])
            && serde_json::from_str::<serde_json::Value>(&seq.content).is_ok()
        {
            return Some("stop");
        }
        if let Some(call) = &seq.call {
            if call.contains(CALL_CLOSE) {
                return Some("tool_calls");
            }
        }
    }
    if seq.generated >= seq.budget || seq.pos as u32 >= window {
        return Some("length");
    }
    None
}

/// The longest valid UTF-8 prefix; an incomplete character stays for later.
fn take_utf8(buf: &mut Vec<u8>) -> String {
    let valid = match std::str::from_utf8(buf) {
        Ok(_) => buf.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => buf.len(),
    };
    let out = String::from_utf8_lossy(&buf[..valid]).into_owned();
    buf.drain(..valid);
    out
}

fn finish(mut seq: Seq, reason: &'static str) {
    let mut reason = reason;
    let mut tool_calls = None;
    if let Some(call) = seq.call.take() {
        match (reason, prompt::parse_call(&call)) {
            ("tool_calls", Ok((name, arguments))) => {
                tool_calls = Some(vec![ToolCall {
                    id: maximin_core::secrets::new_id("call"),
                    kind: "function".into(),
                    function: FunctionCall { name, arguments },
                }]);
            }
            _ => {
                // Cut short (max_tokens): what was written is returned as text.
                seq.content.push_str(&call);
                let _ = seq.events.send(ChatEvent::Delta(call));
                if reason == "tool_calls" {
                    reason = "stop";
                }
            }
        }
    } else {
        // Text held back for a stop string that never completed.
        let rest = seq.stops.rest();
        if !rest.is_empty() {
            seq.content.push_str(&rest);
            let _ = seq.events.send(ChatEvent::Delta(rest));
        }
    }
    let usage = TokenUsage {
        prompt_tokens: seq.prompt.len() as u64,
        completion_tokens: u64::from(seq.generated),
    };
    let message = ChatMessage {
        role: Role::Assistant,
        content: if seq.content.is_empty() && tool_calls.is_some() {
            None
        } else {
            Some(seq.content)
        },
        name: None,
        tool_calls,
        tool_call_id: None,
    };
    let _ = seq.events.send(ChatEvent::Done(ChatOutput {
        message,
        finish_reason: reason.to_owned(),
        usage,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_output_projection_gives_llama_cpps_logits() {
        let path = crate::gguf::batched_copy(&crate::test_gemma());
        let backend = crate::backend().expect("llama.cpp backend");
        let model = LlamaModel::load_from_file(backend, &path, &Default::default()).expect("model");
        let Some(head) = load_head(&path, &model) else {
            assert!(
                crate::lmhead::Kernel::for_this_cpu().is_none(),
                "the CPU runs a kernel but the output matrix was not taken"
            );
            eprintln!("skipped: this CPU has neither AVX-512 VNNI nor AVX2");
            return;
        };
        let capture = CaptureBox::new(model.n_embd() as usize);
        // A context of 64-token steps in micro-batches of `ubatch`.
        let context = |ubatch: u32| {
            let params = LlamaContextParams::default()
                .with_n_ctx(NonZeroU32::new(1024))
                .with_n_batch(64)
                .with_n_ubatch(ubatch)
                .with_n_seq_max(2)
                .with_kv_unified(true)
                .with_n_threads(2)
                .with_n_threads_batch(2);
            model
                .new_context(backend, capture.attach(params))
                .expect("context")
        };
        let mut ctx = context(64);
        let mut batch = LlamaBatch::new(64, 2);
        for two in [true, false] {
            let d = head_deviation(&mut ctx, &model, &mut batch, &head, &capture, 2, two)
                .expect("both projections");
            assert!(
                d <= 1e-5,
                "maximin's logits differ from llama.cpp's by {d} of the largest"
            );
        }

        // With `skip`, the graph stops before llama.cpp's product and every
        // output row is still handed over.
        batch.clear();
        for (i, t) in [2, 100, 1000].into_iter().enumerate() {
            batch
                .add(LlamaToken(t), i as i32, &[0], i != 1)
                .expect("batch");
        }
        capture.begin(Catch::RowsAndStop);
        ctx.decode(&mut batch).expect("decode");
        assert!(!capture.get().fault);
        assert_eq!(capture.get().rows.len(), 2 * head.cols());
        let whole = capture.get().rows.clone();

        // A step in several micro-batches (as a long prompt's is): the graph
        // stopped in one leaves the next to run, and the rows come in batch
        // order, as from one micro-batch.
        drop(ctx);
        let mut ctx = context(2);
        capture.begin(Catch::RowsAndStop);
        ctx.decode(&mut batch).expect("decode");
        assert!(!capture.get().fault);
        let parts = &capture.get().rows;
        assert_eq!(parts.len(), whole.len());
        let largest = whole.iter().fold(0f32, |m, x| m.max(x.abs()));
        let worst = whole
            .iter()
            .zip(parts)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // Micro-batches of two take llama.cpp's one-row kernels, not its
        // batched ones. With BF16 layers (activations rounded to 8
        // significant bits either way, summed in another order) that is a
        // few thousandths apart; rows out of order would differ by their
        // whole size.
        let tolerance = match crate::gguf::Recipe::for_this_cpu() {
            crate::gguf::Recipe::Bf16Layers => 1e-2,
            crate::gguf::Recipe::Q8_0 => 1e-3,
        };
        assert!(
            worst <= tolerance * largest,
            "rows differ by {worst} (largest {largest})"
        );
    }
}
