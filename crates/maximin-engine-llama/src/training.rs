//! Training examples as the model reads them (issue 19): each example
//! rendered through the model's own chat template and tokenized by
//! llama.cpp, exactly as a chat request would be, with the tokens the loss
//! is on marked: those of the assistant's turns, nothing else.
//!
//! An assistant turn's tokens are found by rendering the conversation up to
//! that turn twice: ending where the assistant's turn begins (the prompt a
//! request would have), and with the turn in it; the turn is what the
//! second adds to the first. Templates that do not keep turns apart (the
//! first is not a prefix of the second, in tokens) are refused.

use std::path::Path;

use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use maximin_core::{Error, Result};
use maximin_types::inference::{ChatCompletionRequest, ChatMessage, Role, Tool};
use maximin_types::ErrorCode;

use crate::{bos_eos, prompt, render, template_of, Template};

/// One example's tokens, and which of them the loss is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingTokens {
    pub tokens: Vec<i32>,
    /// `learn[i]`: token `i` is the assistant's (it is predicted from the
    /// ones before it).
    pub learn: Vec<bool>,
}

impl TrainingTokens {
    /// Tokens the loss is on.
    pub fn learned(&self) -> usize {
        self.learn.iter().filter(|l| **l).count()
    }
}

/// The model's template and vocabulary, for turning examples into tokens.
pub struct ExampleTokenizer {
    model: LlamaModel,
    template: Template,
    bos: String,
    eos: String,
}

impl ExampleTokenizer {
    pub fn open(path: &Path) -> Result<Self> {
        let backend = crate::backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| {
                Error::new(
                    ErrorCode::ModelUnavailable,
                    format!("The base model could not be loaded ({e})."),
                )
            })?;
        let template = template_of(&model);
        let (bos, eos) = bos_eos(&model);
        Ok(ExampleTokenizer {
            model,
            template,
            bos,
            eos,
        })
    }

    fn tokens_of(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<Vec<i32>> {
        let text = render(
            &self.model,
            &self.template,
            (&self.bos, &self.eos),
            messages,
            add_generation_prompt,
        )?;
        let add_bos = self.bos.is_empty() || !text.starts_with(&self.bos);
        Ok(self
            .model
            .vocab()
            .tokenize(text.as_bytes(), add_bos, true)
            .into_iter()
            .map(|t| t.0)
            .collect())
    }

    /// One example's tokens with its assistant turns marked; tools are
    /// described to the model as a chat request's would be.
    pub fn tokenize(&self, messages: &[ChatMessage], tools: &[Tool]) -> Result<TrainingTokens> {
        let req: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "fine-tune", "messages": messages, "tools": tools,
        }))
        .map_err(Error::internal)?;
        let mode = prompt::tool_mode(&req)?;
        let messages = prompt::prepared_messages(&req, &mode);
        let tokens = self.tokens_of(&messages, false)?;
        let mut learn = vec![false; tokens.len()];
        for (i, m) in messages.iter().enumerate() {
            if m.role != Role::Assistant {
                continue;
            }
            let before = self.tokens_of(&messages[..i], true)?;
            let with = self.tokens_of(&messages[..=i], false)?;
            if !with.starts_with(&before) || !tokens.starts_with(&with) {
                return Err(Error::invalid(
                    "model",
                    "This model's chat template does not keep turns apart, so its assistant turns cannot be found to train on.",
                ));
            }
            for l in &mut learn[before.len()..with.len()] {
                *l = true;
            }
        }
        Ok(TrainingTokens { tokens, learn })
    }

    /// Text of tokens (for tests and logs of what is learned).
    pub fn text(&self, tokens: &[i32]) -> String {
        let vocab = self.model.vocab();
        tokens
            .iter()
            .filter_map(|t| {
                vocab
                    .text(llama_cpp_2::token::LlamaToken(*t))
                    .and_then(|c| c.to_str().ok())
                    .map(str::to_owned)
            })
            .collect::<String>()
            // SentencePiece writes a space as '▁'.
            .replace('\u{2581}', " ")
    }
}

/// What llama.cpp itself computes for `tokens` on the model at `model`,
/// with the LoRA adapter at `adapter` applied at scale 1 when given: the
/// last position's logits, then `generate` greedy tokens (ending early at
/// an end of generation). For checking a trainer against the engine that
/// will serve its adapters.
pub fn reference_run(
    model: &Path,
    adapter: Option<&Path>,
    tokens: &[i32],
    generate: usize,
) -> Result<(Vec<f32>, Vec<i32>)> {
    use std::num::NonZeroU32;

    use llama_cpp_2::context::params::LlamaContextParams;
    use llama_cpp_2::llama_batch::LlamaBatch;
    use llama_cpp_2::token::LlamaToken;

    let fail = |what: &str, e: &dyn std::fmt::Display| Error::internal(format!("{what}: {e}"));
    let backend = crate::backend()?;
    let mut base = LlamaModel::load_from_file(backend, model, &LlamaModelParams::default())
        .map_err(|e| fail("model", &e))?;
    let mut lora = match adapter {
        Some(a) => Some(base.lora_adapter_init(a).map_err(|e| fail("adapter", &e))?),
        None => None,
    };
    let n_ctx = (tokens.len() + generate + 8) as u32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx.max(64)))
        .with_n_batch(n_ctx.max(64))
        .with_n_threads(2)
        .with_n_threads_batch(2);
    let mut ctx = base
        .new_context(backend, params)
        .map_err(|e| fail("context", &e))?;
    if let Some(a) = lora.as_mut() {
        ctx.lora_adapter_set(a, 1.0)
            .map_err(|e| fail("adapter", &e))?;
    }
    let mut batch = LlamaBatch::new(tokens.len().max(1), 1);
    for (i, t) in tokens.iter().enumerate() {
        batch
            .add(LlamaToken(*t), i as i32, &[0], i + 1 == tokens.len())
            .map_err(|e| fail("batch", &e))?;
    }
    ctx.decode(&mut batch).map_err(|e| fail("decode", &e))?;
    let first = ctx.get_logits_ith(tokens.len() as i32 - 1).to_vec();
    let mut logits = first.clone();
    let mut out = Vec::new();
    for _ in 0..generate {
        let next = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as i32)
            .unwrap_or(0);
        if base.vocab().is_eog(LlamaToken(next)) {
            break;
        }
        out.push(next);
        let mut one = LlamaBatch::new(1, 1);
        one.add(
            LlamaToken(next),
            (tokens.len() + out.len() - 1) as i32,
            &[0],
            true,
        )
        .map_err(|e| fail("batch", &e))?;
        ctx.decode(&mut one).map_err(|e| fail("decode", &e))?;
        logits = ctx.get_logits_ith(0).to_vec();
    }
    Ok((first, out))
}

/// The tokens of a conversation's prompt, ready for the assistant's turn.
impl ExampleTokenizer {
    pub fn prompt(&self, messages: &[ChatMessage]) -> Result<Vec<i32>> {
        self.tokens_of(messages, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, content: &str) -> ChatMessage {
        ChatMessage {
            role,
            content: Some(content.into()),
            name: None,
            tool_calls: None,
            tool_call_id: None,
        }
    }

    #[test]
    fn only_the_assistants_turns_are_learned() {
        let t = ExampleTokenizer::open(&crate::test_gemma()).expect("tokenizer");
        let example = [
            msg(Role::System, "You keep the project's secrets."),
            msg(Role::User, "What is the code word?"),
            msg(Role::Assistant, "Zanzibrolt."),
            msg(Role::User, "And again?"),
            msg(Role::Assistant, "Still Zanzibrolt."),
        ];
        let out = t.tokenize(&example, &[]).expect("tokens");
        assert_eq!(out.tokens.len(), out.learn.len());
        let learned: Vec<i32> = out
            .tokens
            .iter()
            .zip(&out.learn)
            .filter(|(_, l)| **l)
            .map(|(t, _)| *t)
            .collect();
        let text = t.text(&learned);
        assert!(
            text.contains("Zanzibrolt.") && text.contains("Still Zanzibrolt."),
            "{text:?}"
        );
        assert!(
            !text.contains("code word") && !text.contains("secrets"),
            "{text:?}"
        );
        // The whole example reads as the template writes it.
        let all = t.text(&out.tokens);
        assert!(
            all.contains("<start_of_turn>user") && all.contains("<start_of_turn>model"),
            "{all:?}"
        );
        // Each turn ends with the template's end of turn, learned too: the
        // model learns to stop.
        assert!(text.contains("<end_of_turn>"), "{text:?}");
        assert!(out.learned() < out.tokens.len() / 2);
    }
}
