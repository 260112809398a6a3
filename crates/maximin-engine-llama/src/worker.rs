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

use std::num::NonZeroU32;
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

use crate::prompt::{self, ToolMode, CALL_CLOSE, CALL_OPEN};
use crate::sample::{Draw, TOP_K};
use crate::stops::{Hit, StopMatcher};

pub struct WorkerOptions {
    pub threads: usize,
    pub slots: usize,
    pub ctx_per_slot: u32,
    pub batch: u32,
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
        ToolMode::Forced(_) => LlamaSampler::grammar(model, g, "root"),
        // The call grammar applies only once the model writes the opening tag.
        _ => {
            let wrapped = format!("{g}\ncall ::= \"{CALL_OPEN}\" root \"{CALL_CLOSE}\"\n");
            LlamaSampler::grammar_lazy(model, &wrapped, "call", [CALL_OPEN], &[])
        }
    }
    .map_err(|e| Error::invalid("tools", format!("The tools' grammar was refused: {e}")))?;
    let mut chain = vec![grammar];
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
        .with_n_ubatch(opts.batch)
        .with_n_seq_max(u32::try_from(opts.slots).unwrap_or(1))
        // One KV buffer for every sequence: llama.cpp then decodes a step's
        // tokens as one micro-batch. With a buffer per sequence it splits a
        // step wherever the sequences in it are not consecutive slots or
        // carry unequal token counts, down to one-row micro-batches whose
        // matrix products cannot use its batched kernels.
        .with_kv_unified(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(Error::internal(format!("llama.cpp context: {e}"))));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut batch = LlamaBatch::new(opts.batch as usize, i32::try_from(opts.slots).unwrap_or(1));
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
        let picks = pick_tokens(&ctx, &mut slots);
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
