//! The chat and embeddings use-cases every surface shares: checks, the
//! caller's model, routing to a provider (local or upstream, through
//! [`crate::routing`]), PII protection, and the answer's event stream.
//! Surfaces only translate shapes around these calls.

use std::sync::Arc;
use std::time::Duration;

use maximin_types::inference::{ChatCompletionRequest, Role};
use maximin_types::{ErrorCode, Modality, TokenUsage};

use crate::catalog::ModelSpec;
use crate::engines::{ChatEvent, ChatOutput, ChatStream, EmbedOutput};
use crate::pii::{self, PiiMode, Redactor};
use crate::routing::{Lease, Policy, Target};
use crate::{Caller, Error, Platform, Result};

/// Most inputs one embeddings request may carry (seed 002).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// A chat answer under way: the catalog model asked for, the deployment
/// that answers, and its events (deltas, then `Done`, `Failed` or
/// `Broken`), read whole ([`ChatRun::finish`], on the caller's task) or as
/// a stream ([`ChatRun::into_events`], read by the response body).
pub struct ChatRun {
    pub spec: ModelSpec,
    /// The deployment's label (`X-Maximin-Upstream`): `NAME:MODEL` or `local:ENGINE`.
    pub deployment: String,
    answer: Answer,
}

/// The provider's events as they came, with what reading them needs.
struct Answer {
    first: Option<ChatEvent>,
    rx: ChatStream,
    lease: Lease,
    redactor: Option<Redactor>,
    /// For an upstream: the longest quiet between events.
    idle: Option<Duration>,
    prompt_estimate: u64,
    /// `X-Maximin-Max-Cost-Usd` and the prices it is reckoned in: a stream
    /// is cut before the delta that would cost more.
    cap: Option<(crate::billing::Prices, i64)>,
}

impl Answer {
    /// The next event; a provider gone quiet past `idle` or gone is a failure.
    async fn next(&mut self) -> ChatEvent {
        if let Some(first) = self.first.take() {
            return first;
        }
        let event = match self.idle {
            Some(limit) => match tokio::time::timeout(limit, self.rx.recv()).await {
                Ok(e) => e,
                Err(_) => {
                    return ChatEvent::Failed(
                        Error::new(
                            ErrorCode::UpstreamError,
                            format!(
                            "The upstream '{}' went quiet for {:.0} s in the middle of the answer.",
                            self.lease.target().label,
                            limit.as_secs_f64()
                        ),
                        )
                        .with("reason", "timeout"),
                    )
                }
            },
            None => self.rx.recv().await,
        };
        event.unwrap_or_else(|| {
            ChatEvent::Failed(
                Error::new(
                    ErrorCode::UpstreamError,
                    "The provider closed the answer before it finished.",
                )
                .with("reason", "closed"),
            )
        })
    }
}

impl ChatRun {
    /// Waits for the whole answer, placeholders restored. No task of its
    /// own: a non-streamed answer is read where it is awaited.
    pub async fn finish(&mut self) -> Result<ChatOutput> {
        let a = &mut self.answer;
        loop {
            match a.next().await {
                ChatEvent::Delta(_) => {}
                ChatEvent::Done(mut out) => {
                    if let Some(r) = &a.redactor {
                        pii::restore_message(r, &mut out.message);
                    }
                    return Ok(out);
                }
                ChatEvent::Failed(e) | ChatEvent::Broken { error: e, .. } => {
                    a.lease.broke();
                    return Err(e);
                }
            }
        }
    }

    /// The answer as a stream of events (see [`ChatEvents`]).
    pub fn into_events(self) -> ChatEvents {
        let answer = self.answer;
        ChatEvents {
            restorer: answer.redactor.as_ref().map(Redactor::restorer),
            answer,
            delivered: 0,
            held: None,
            ended: false,
        }
    }
}

/// Embeddings from the deployment that answered.
pub struct EmbedRun {
    pub spec: ModelSpec,
    pub deployment: String,
    pub output: EmbedOutput,
}

fn modality_mismatch(spec: &ModelSpec, wanted: Modality) -> Error {
    Error::invalid(
        "model",
        format!(
            "'{}' is a {} model; this endpoint needs a {wanted} model.",
            spec.id, spec.modality
        ),
    )
}

fn provider_missing(target: &Target) -> Error {
    Error::new(
        ErrorCode::ModelUnavailable,
        format!(
            "No provider serves '{}' ({}) in this install.",
            target.spec.id, target.provider
        ),
    )
    .with("model", target.spec.id.as_str())
}

/// Checks a chat request's fields; errors name the wire field.
pub fn validate_chat(req: &ChatCompletionRequest) -> Result<()> {
    if req.messages.is_empty() {
        return Err(Error::invalid(
            "messages",
            "'messages' must hold at least one message.",
        ));
    }
    for (i, m) in req.messages.iter().enumerate() {
        if m.role == Role::Tool && m.tool_call_id.as_deref().unwrap_or("").is_empty() {
            return Err(Error::invalid(
                &format!("messages[{i}].tool_call_id"),
                "A 'tool' message needs the 'tool_call_id' of the call it answers.",
            ));
        }
        if m.content.is_none() && m.tool_calls.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::invalid(
                &format!("messages[{i}].content"),
                "A message needs 'content' (or, from the assistant, 'tool_calls').",
            ));
        }
    }
    if let Some(t) = req.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(Error::invalid(
                "temperature",
                "'temperature' must be between 0 and 2.",
            ));
        }
    }
    if let Some(p) = req.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(Error::invalid(
                "top_p",
                "'top_p' must be greater than 0 and at most 1.",
            ));
        }
    }
    if req.max_tokens == Some(0) {
        return Err(Error::invalid(
            "max_tokens",
            "'max_tokens' must be at least 1.",
        ));
    }
    if let Some(stop) = &req.stop {
        let stops = stop.to_vec();
        if stops.len() > 4 || stops.iter().any(|s| s.is_empty()) {
            return Err(Error::invalid(
                "stop",
                "'stop' takes up to 4 non-empty strings.",
            ));
        }
        // As in messages: the engines take text without NUL.
        if stops.iter().any(|s| s.contains('\0')) {
            return Err(Error::invalid(
                "stop",
                "'stop' strings may not contain NUL characters.",
            ));
        }
    }
    if let Some(rf) = &req.response_format {
        match rf.get("type").and_then(|t| t.as_str()) {
            Some("text") | Some("json_object") => {}
            Some("json_schema") => {
                if !rf["json_schema"]["schema"].is_object() {
                    return Err(Error::invalid(
                        "response_format.json_schema.schema",
                        "'response_format.json_schema.schema' must be a JSON schema object.",
                    ));
                }
            }
            _ => {
                return Err(Error::invalid(
                    "response_format",
                    "'response_format.type' is text, json_object or json_schema.",
                ))
            }
        }
    }
    for (i, t) in req.tools.iter().enumerate() {
        if t.kind != "function" || t.function.name.is_empty() {
            return Err(Error::invalid(
                &format!("tools[{i}]"),
                "Each tool must be {\"type\":\"function\",\"function\":{\"name\":…}}.",
            ));
        }
    }
    Ok(())
}

/// Whether content bound for `target` is protected, and how.
fn pii_mode(policy: &Policy, target: &Target) -> PiiMode {
    if target.is_local() && !policy.pii_local {
        PiiMode::Off
    } else {
        policy.pii
    }
}

/// A rough count of the prompt's tokens (four characters each), for a
/// stream that broke before the provider reported its usage.
/// Most completion tokens an answer with no `max_tokens` is reserved for.
const DEFAULT_COMPLETION_BOUND: u64 = 8192;

/// What a chat request can cost at most, for its credit hold: a token is at
/// least one byte, so the request's JSON (messages, tools, everything the
/// template renders, and more) bounds the prompt; the completion is bounded
/// by `max_tokens`, else by the context window (at most 8,192).
fn chat_bound(spec: &ModelSpec, req: &ChatCompletionRequest) -> crate::billing::Quantities {
    let prompt = serde_json::to_vec(req).map_or(0, |v| v.len() as u64) + 64;
    let completion = match req.max_tokens {
        Some(n) => u64::from(n),
        None => u64::from(spec.context_window).clamp(1, DEFAULT_COMPLETION_BOUND),
    };
    crate::billing::Quantities {
        prompt_tokens: prompt,
        completion_tokens: completion,
        ..Default::default()
    }
}

fn estimate_prompt_tokens(req: &ChatCompletionRequest) -> u64 {
    let chars: usize = req
        .messages
        .iter()
        .map(|m| m.content.as_deref().map_or(0, str::len))
        .sum();
    (chars as u64).div_ceil(4).max(1)
}

impl Platform {
    /// The routing policy of a caller: the account's regions narrowed by
    /// the key's, the key's PII mode over the account's.
    pub fn policy(&self, caller: &Caller) -> Policy {
        let a = &caller.account.routing;
        let k = &caller.key.routing;
        let regions = match (a.regions.is_empty(), k.regions.is_empty()) {
            (true, _) => k.regions.clone(),
            (false, true) => a.regions.clone(),
            (false, false) => a
                .regions
                .iter()
                .filter(|r| k.regions.contains(r))
                .cloned()
                .collect(),
        };
        // Both pinned, with nothing in common: nowhere, which refuses.
        let regions = if !a.regions.is_empty() && !k.regions.is_empty() && regions.is_empty() {
            vec!["(none: the account's and the key's regions do not overlap)".to_owned()]
        } else {
            regions
        };
        Policy {
            regions,
            sandbox: caller.key.test,
            pii: k.pii.or(a.pii).unwrap_or_default(),
            pii_local: a.pii_local,
        }
    }

    /// Starts a chat answer: checks, the caller's model, a deployment.
    /// Returns once the answer has started (its first event), so every
    /// failure before that could still be retried elsewhere.
    pub async fn start_chat(
        &self,
        caller: &Caller,
        req: &ChatCompletionRequest,
    ) -> Result<ChatRun> {
        validate_chat(req)?;
        let fine_tuned = if req.model.starts_with("ft:") {
            Some(self.fine_tuned(caller, &req.model).await?)
        } else {
            None
        };
        let spec = match &fine_tuned {
            Some(f) => &f.spec,
            None => self.model_for(caller, &req.model)?,
        };
        // A fine-tuned model runs where its base runs, with its adapter.
        let route_spec = fine_tuned.as_ref().map_or(spec, |f| f.base);
        let adapter = fine_tuned.as_ref().map(|f| f.adapter.clone());
        if spec.modality != Modality::Text {
            return Err(modality_mismatch(spec, Modality::Text));
        }
        let prompt = estimate_prompt_tokens(req);
        let expected = crate::billing::Quantities {
            prompt_tokens: prompt,
            completion_tokens: req.max_tokens.map_or(0, u64::from),
            ..Default::default()
        };
        self.reserve_bounded(caller, spec, expected, chat_bound(spec, req))
            .await?;
        self.take_tokens(caller, prompt).await?;
        let cap = caller
            .bill
            .as_ref()
            .and_then(|b| b.cap_micro)
            .map(|c| (self.prices_of(spec), c));
        let policy = self.policy(caller);
        let models_dir = &self.installed.models_dir;
        let ((first, rx, redactor), lease) =
            self.router
                .route(&self.catalog, route_spec, &policy, |target: Arc<Target>| {
                    let policy = &policy;
                    let adapter = adapter.clone();
                    async move {
                        let provider = self
                            .engines
                            .chat
                            .get(&target.provider)
                            .ok_or_else(|| provider_missing(&target))?
                            .clone();
                        let mut req = req.clone();
                        let redactor = pii::protect_chat(&mut req, pii_mode(policy, &target))?;
                        let weights = target.spec.weights_path(models_dir);
                        let mut rx = match &adapter {
                            Some(a) => {
                                provider
                                    .start_adapted(&target.spec, weights.as_deref(), &a.path, &req)
                                    .await?
                            }
                            None => {
                                provider
                                    .start(&target.spec, weights.as_deref(), &req)
                                    .await?
                            }
                        };
                        match rx.recv().await {
                            Some(ChatEvent::Failed(e))
                            | Some(ChatEvent::Broken { error: e, .. }) => Err(e),
                            None => Err(Error::new(
                                ErrorCode::UpstreamError,
                                "The provider closed the answer before it started.",
                            )
                            .with("reason", "closed")),
                            Some(first) => Ok((first, rx, redactor)),
                        }
                    }
                })
                .await?;
        let deployment = lease.target().label.clone();
        let idle = lease.target().upstream.as_ref().map(|u| u.config.timeout());
        Ok(ChatRun {
            spec: spec.clone(),
            deployment,
            answer: Answer {
                first: Some(first),
                rx,
                lease,
                redactor,
                idle,
                prompt_estimate: prompt,
                cap,
            },
        })
    }

    /// Embeds `inputs` (named `field` on the wire) with the caller's model.
    pub async fn embed(
        &self,
        caller: &Caller,
        model: &str,
        (field, inputs): (&str, &[String]),
        truncate: bool,
    ) -> Result<EmbedRun> {
        if inputs.is_empty() || inputs.len() > MAX_EMBEDDING_INPUTS {
            return Err(Error::invalid(
                field,
                format!("'{field}' takes 1 to {MAX_EMBEDDING_INPUTS} strings."),
            )
            .with("limit", MAX_EMBEDDING_INPUTS));
        }
        let spec = self.model_for(caller, model)?;
        if spec.modality != Modality::Embeddings {
            return Err(modality_mismatch(spec, Modality::Embeddings));
        }
        // A token is at least a byte, and each input gains two markers.
        let bound: u64 = inputs.iter().map(|t| t.len() as u64 + 2).sum();
        self.reserve(
            caller,
            spec,
            crate::billing::Quantities {
                prompt_tokens: bound,
                ..Default::default()
            },
        )
        .await?;
        let estimate = inputs
            .iter()
            .map(|t| (t.len() as u64).div_ceil(4) + 2)
            .sum();
        self.take_tokens(caller, estimate).await?;
        let policy = self.policy(caller);
        let models_dir = &self.installed.models_dir;
        let (output, lease) = self
            .router
            .route(&self.catalog, spec, &policy, |target: Arc<Target>| {
                let policy = &policy;
                async move {
                    let provider = self
                        .engines
                        .embed
                        .get(&target.provider)
                        .ok_or_else(|| provider_missing(&target))?
                        .clone();
                    let mut texts = inputs.to_vec();
                    pii::protect_texts(&mut texts, field, pii_mode(policy, &target))?;
                    let weights = target.spec.weights_path(models_dir);
                    provider
                        .embed(&target.spec, weights.as_deref(), &texts, truncate)
                        .await
                }
            })
            .await?;
        Ok(EmbedRun {
            spec: spec.clone(),
            deployment: lease.target().label.clone(),
            output,
        })
    }
}

/// A streamed answer, read by the surface's response body: PII placeholders
/// restored across delta boundaries, a stream that goes quiet for longer
/// than `idle` cut, a failure after the start turned into `Broken` with
/// what was delivered, the deployment's lease held until the end. No task
/// of its own (a hop between tasks per event showed as a third of the
/// streamed gateway path's CPU): dropping it, as a client that goes away
/// does, drops the provider's stream, which stops the provider.
pub struct ChatEvents {
    answer: Answer,
    restorer: Option<pii::StreamRestorer>,
    delivered: u64,
    /// The `Done` or `Broken` that follows the restorer's last delta.
    held: Option<ChatEvent>,
    ended: bool,
}

impl ChatEvents {
    /// What the stream has delivered so far: the prompt's estimate and a
    /// token per delta. A surface reports it with each delta, so that a
    /// client who leaves mid-stream is metered (and charged) for what it
    /// was sent, not for nothing.
    pub fn delivered(&self) -> TokenUsage {
        TokenUsage {
            prompt_tokens: self.answer.prompt_estimate,
            completion_tokens: self.delivered,
        }
    }

    /// The break that ends a stream whose next delta would cost more than
    /// its cap, metered for what was delivered.
    fn over_cap(&self) -> Option<ChatEvent> {
        let (prices, cap) = self.answer.cap?;
        let delivered = TokenUsage {
            prompt_tokens: self.answer.prompt_estimate,
            completion_tokens: self.delivered,
        };
        let next = crate::billing::Quantities {
            prompt_tokens: delivered.prompt_tokens,
            completion_tokens: delivered.completion_tokens + 1,
            ..Default::default()
        };
        if prices.cost_micro(&next) <= cap {
            return None;
        }
        Some(ChatEvent::Broken {
            error: crate::billing::insufficient(
                "max_cost",
                format!(
                    "The answer was cut where its cost reached the ${:.6} its X-Maximin-Max-Cost-Usd header allows.",
                    crate::billing::micro_to_usd(cap)
                ),
            )
            .with("max_cost_usd", crate::billing::micro_to_usd(cap)),
            delivered,
        })
    }

    /// The next event; `None` once the answer ended.
    pub async fn recv(&mut self) -> Option<ChatEvent> {
        if let Some(e) = self.held.take() {
            return Some(e);
        }
        if self.ended {
            return None;
        }
        loop {
            match self.answer.next().await {
                ChatEvent::Delta(text) => {
                    if let Some(e) = self.over_cap() {
                        // Dropping the answer (with these events) stops it.
                        self.ended = true;
                        return Some(e);
                    }
                    self.delivered += 1;
                    let text = match self.restorer.as_mut() {
                        Some(r) => r.push(&text),
                        None => text,
                    };
                    if !text.is_empty() {
                        return Some(ChatEvent::Delta(text));
                    }
                }
                ChatEvent::Done(mut out) => {
                    self.ended = true;
                    if let Some(r) = &self.answer.redactor {
                        pii::restore_message(r, &mut out.message);
                    }
                    let rest = self
                        .restorer
                        .as_mut()
                        .map(|r| r.finish())
                        .unwrap_or_default();
                    if rest.is_empty() {
                        return Some(ChatEvent::Done(out));
                    }
                    self.held = Some(ChatEvent::Done(out));
                    return Some(ChatEvent::Delta(rest));
                }
                ChatEvent::Failed(error) | ChatEvent::Broken { error, .. } => {
                    self.ended = true;
                    self.answer.lease.broke();
                    return Some(ChatEvent::Broken {
                        error,
                        delivered: TokenUsage {
                            prompt_tokens: self.answer.prompt_estimate,
                            completion_tokens: self.delivered,
                        },
                    });
                }
            }
        }
    }
}
