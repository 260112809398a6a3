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
use crate::providers::media::{ImageProvider, MusicProvider, VideoProvider};
use crate::providers::speech::SpeechProvider;
use crate::{Error, Result};

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
    /// The answer broke after it had started (an upstream cut the stream, a
    /// decode failed): the error, and what was delivered before it, which is
    /// what the request is metered for. Sent by the router, not by engines.
    Broken {
        error: crate::Error,
        delivered: TokenUsage,
    },
}

/// A provider's events as they come, read by whoever awaits the answer (the
/// surface's response body): a local engine's channel from its decode
/// thread, or an upstream's body parsed as it is polled, with no task in
/// between (a hop between tasks per event showed as a large share of the
/// streamed gateway path's CPU). Dropping it cancels the answer.
pub enum ChatStream {
    Channel(tokio::sync::mpsc::UnboundedReceiver<ChatEvent>),
    Stream(std::pin::Pin<Box<dyn futures_util::Stream<Item = ChatEvent> + Send>>),
}

impl ChatStream {
    /// An answer that is already whole.
    pub fn once(event: ChatEvent) -> Self {
        ChatStream::Stream(Box::pin(futures_util::stream::iter([event])))
    }

    /// The next event; `None` when the provider is gone.
    pub async fn recv(&mut self) -> Option<ChatEvent> {
        match self {
            ChatStream::Channel(rx) => rx.recv().await,
            ChatStream::Stream(s) => futures_util::StreamExt::next(s).await,
        }
    }
}

impl From<tokio::sync::mpsc::UnboundedReceiver<ChatEvent>> for ChatStream {
    fn from(rx: tokio::sync::mpsc::UnboundedReceiver<ChatEvent>) -> Self {
        ChatStream::Channel(rx)
    }
}

/// A chat provider: a local engine or an upstream. `start` admits a request
/// (or refuses it at once: bad input, context overflow, queue full) and
/// returns the event stream; dropping it cancels the generation and frees
/// its slot. A local engine's channel is unbounded so a slow client never
/// stalls the decode loop; what it can hold is bounded by the request's
/// token budget.
#[async_trait]
pub trait ChatProvider: Send + Sync + 'static {
    async fn start(
        &self,
        model: &ModelSpec,
        weights: Option<&Path>,
        request: &ChatCompletionRequest,
    ) -> Result<ChatStream>;

    /// [`ChatProvider::start`] with a LoRA adapter applied (a fine-tuned
    /// model); a provider that cannot apply one refuses.
    async fn start_adapted(
        &self,
        model: &ModelSpec,
        _weights: Option<&Path>,
        _adapter: &Path,
        _request: &ChatCompletionRequest,
    ) -> Result<ChatStream> {
        Err(Error::new(
            maximin_types::ErrorCode::ModelUnavailable,
            format!(
                "The fine-tuned model's base '{}' runs where adapters cannot be applied.",
                model.id
            ),
        ))
    }
}

/// An embeddings provider: a local engine or an upstream.
#[async_trait]
pub trait EmbedProvider: Send + Sync + 'static {
    async fn embed(
        &self,
        model: &ModelSpec,
        weights: Option<&Path>,
        inputs: &[String],
        truncate: bool,
    ) -> Result<EmbedOutput>;
}

/// The gender a voice presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    Female,
    Male,
}

/// A voice a speech engine offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVoice {
    /// The engine's own id for it: espeak-ng `en-us` or `en-us+f3`, a Piper
    /// voice's file stem such as `en_US-joe-medium`.
    pub id: String,
    pub name: String,
    /// Lower-case language tag, region after a hyphen: `en-us`, `fr`, `cmn`.
    pub language: String,
    pub gender: Option<Gender>,
}

/// How to speak, in engine-neutral terms (the request's speed, pitch and
/// emotion become these; volume is applied to the samples afterwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prosody {
    /// Speaking-rate factor; 1.0 is the voice's own rate.
    pub rate: f32,
    /// Pitch shift in semitones.
    pub pitch: f32,
    /// Intonation range factor; 1.0 is the voice's own, 0 is monotone.
    pub range: f32,
}

impl Default for Prosody {
    fn default() -> Self {
        Prosody {
            rate: 1.0,
            pitch: 0.0,
            range: 1.0,
        }
    }
}

/// Mono audio from an engine.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechAudio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

/// A local speech engine: text (a sentence or a few) to mono samples with
/// one of its voices. Callers split long text and call once per piece, which
/// is what streams audio out sentence by sentence. The speech service
/// reaches it through a [`SpeechProvider`] that wraps it
/// (`maximin_speech::LocalSpeech`).
#[async_trait]
pub trait SpeechEngine: Send + Sync + 'static {
    fn voices(&self) -> Vec<EngineVoice>;
    async fn synthesize(&self, voice: &str, text: &str, prosody: Prosody) -> Result<SpeechAudio>;

    /// Speaks `text` and sends its audio in order, in pieces as they are
    /// ready, the first as soon as the engine can (a streamed response's
    /// first sentence: the first audio a listener hears). By default one
    /// piece, the whole text. A closed channel (the listener left) may stop
    /// the work early; that is not an error.
    async fn synthesize_streamed(
        &self,
        voice: &str,
        text: &str,
        prosody: Prosody,
        pieces: tokio::sync::mpsc::Sender<SpeechAudio>,
    ) -> Result<()> {
        let audio = self.synthesize(voice, text, prosody).await?;
        let _ = pieces.send(audio).await;
        Ok(())
    }

    /// Looks again for voices and libraries installed since the engine was
    /// built (a model pulled while the server runs). By default nothing.
    fn refresh(&self) {}

    /// How many texts [`SpeechEngine::synthesize_all`] speaks side by side
    /// (1: one after another).
    fn side_by_side(&self) -> usize {
        1
    }

    /// Several texts with one voice, results in order. Engines whose runs
    /// scale poorly over threads speak them side by side, one thread each;
    /// by default they are spoken one after another.
    async fn synthesize_all(
        &self,
        voice: &str,
        texts: &[String],
        prosody: Prosody,
    ) -> Vec<Result<SpeechAudio>> {
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            out.push(self.synthesize(voice, text, prosody).await);
        }
        out
    }
}

/// Engines built into this binary, by the name catalog entries use.
/// Speech is reached through providers ([`SpeechProvider`]): a local engine
/// wrapped, under its name, or an upstream, under `upstream:NAME`.
#[derive(Default, Clone)]
pub struct Engines {
    pub chat: HashMap<String, Arc<dyn ChatProvider>>,
    pub embed: HashMap<String, Arc<dyn EmbedProvider>>,
    pub speech: HashMap<String, Arc<dyn SpeechProvider>>,
    pub image: HashMap<String, Arc<dyn ImageProvider>>,
    pub video: HashMap<String, Arc<dyn VideoProvider>>,
    pub music: HashMap<String, Arc<dyn MusicProvider>>,
    /// Trainers, by the engine whose models they train (`llama.cpp`).
    pub fine_tune: HashMap<String, Arc<dyn crate::finetune::provider::FineTuner>>,
}

impl Engines {
    /// Lets every engine see models installed since it was built.
    pub fn refresh(&self) {
        for provider in self.speech.values() {
            provider.refresh();
        }
        for provider in self.image.values() {
            provider.refresh();
        }
        for provider in self.video.values() {
            provider.refresh();
        }
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.chat
            .keys()
            .chain(self.embed.keys())
            .chain(self.speech.keys())
            .chain(self.image.keys())
            .chain(self.video.keys())
            .chain(self.music.keys())
            .cloned()
            .collect()
    }
}
