//! The traits inference engines implement, and the registry that routes a
//! catalog model's `engine` name to one. Engines live in their own crates (one
//! feature each); the core and the surfaces only see these traits.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use maximin_types::inference::{ChatCompletionRequest, ChatMessage};
use maximin_types::TokenUsage;

use crate::catalog::ModelSpec;
use crate::Result;

/// The output of one chat completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatOutput {
    pub message: ChatMessage,
    pub finish_reason: String,
    pub usage: TokenUsage,
}

/// The output of one embeddings batch: one vector per input, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedOutput {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u64,
}

/// What a chat generation reports, in order: text deltas as they are decoded,
/// then exactly one `Done` (or `Failed`).
#[derive(Debug, Clone)]
pub enum ChatEvent {
    Delta(String),
    Done(ChatOutput),
    Failed(crate::Error),
}

/// A chat engine. `start` admits a request (or refuses it at once: bad input,
/// context overflow, queue full) and returns the event stream; dropping the
/// receiver cancels the generation and frees its slot. The channel is
/// unbounded so a slow client never stalls the decode loop; what it can hold is
/// bounded by the request's token budget.
#[async_trait]
pub trait ChatEngine: Send + Sync + 'static {
    async fn start(
        &self,
        model: &ModelSpec,
        weights: Option<&Path>,
        request: &ChatCompletionRequest,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<ChatEvent>>;
}

#[async_trait]
pub trait EmbedEngine: Send + Sync + 'static {
    async fn embed(
        &self,
        model: &ModelSpec,
        weights: Option<&Path>,
        inputs: &[String],
        truncate: bool,
    ) -> Result<EmbedOutput>;
}

/// Engines built into this binary, by the name catalog entries use.
#[derive(Default, Clone)]
pub struct Engines {
    pub chat: HashMap<String, Arc<dyn ChatEngine>>,
    pub embed: HashMap<String, Arc<dyn EmbedEngine>>,
}

impl Engines {
    pub fn names(&self) -> BTreeSet<String> {
        self.chat.keys().chain(self.embed.keys()).cloned().collect()
    }
}
