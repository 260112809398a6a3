//! [`LocalSpeech`]: the speech provider over a local engine
//! ([`SpeechEngine`]), which speaks a sentence or a few at a time. The text
//! is cut into sentences and pauses; a streamed job's first sentence is
//! spoken on its own and sent in pieces as the engine finishes them (it is
//! the first audio a listener hears); after it, runs of sentences go to the
//! engine together, which speaks as many side by side as it can
//! ([`SpeechEngine::side_by_side`]), and come out one by one, in order.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use maximin_core::catalog::ModelSpec;
use maximin_core::engines::{EngineVoice, Prosody, SpeechEngine};
use maximin_core::providers::speech::{self, SpeechDone, SpeechEvent, SpeechJob, SpeechProvider};
use maximin_core::speech::{pieces, Piece};
use maximin_core::{Error, Result};
use tokio::sync::mpsc::Sender;

/// A local speech engine as a provider.
pub struct LocalSpeech {
    engine: Arc<dyn SpeechEngine>,
}

impl LocalSpeech {
    pub fn new(engine: Arc<dyn SpeechEngine>) -> Self {
        LocalSpeech { engine }
    }
}

#[async_trait]
impl SpeechProvider for LocalSpeech {
    fn voices(&self) -> Vec<EngineVoice> {
        self.engine.voices()
    }

    fn refresh(&self) {
        self.engine.refresh();
    }

    async fn start(
        &self,
        _model: &ModelSpec,
        job: SpeechJob,
    ) -> Result<tokio::sync::mpsc::Receiver<SpeechEvent>> {
        let (tx, rx) = speech::events();
        let engine = self.engine.clone();
        tokio::spawn(async move {
            let last = match speak(&engine, &job, &tx).await {
                Ok(Heard::Yes) => SpeechEvent::Done(SpeechDone {
                    characters: job.billed_characters(),
                    audio_ms: None,
                }),
                Ok(Heard::Gone) => return,
                Err(e) => SpeechEvent::Failed(e),
            };
            let _ = tx.send(last).await;
        });
        Ok(rx)
    }
}

/// Whether the listener is still there.
enum Heard {
    Yes,
    Gone,
}

async fn send(out: &Sender<SpeechEvent>, event: SpeechEvent) -> Heard {
    match out.send(event).await {
        Ok(()) => Heard::Yes,
        Err(_) => Heard::Gone,
    }
}

/// Speaks the job's text piece by piece onto `out`.
async fn speak(
    engine: &Arc<dyn SpeechEngine>,
    job: &SpeechJob,
    out: &Sender<SpeechEvent>,
) -> Result<Heard> {
    let mut pieces: VecDeque<Piece> = pieces(&job.spoken_text()).into();
    let (voice, prosody) = (job.voice.id.as_str(), job.prosody);
    let mut first_alone = !job.whole;
    while let Some(piece) = pieces.pop_front() {
        let text = match piece {
            Piece::Pause(secs) => {
                if let Heard::Gone = send(out, SpeechEvent::Pause(secs)).await {
                    return Ok(Heard::Gone);
                }
                continue;
            }
            Piece::Text(text) => text,
        };
        if first_alone {
            first_alone = false;
            if let Heard::Gone = stream_one(engine, voice, text, prosody, out).await? {
                return Ok(Heard::Gone);
            }
            continue;
        }
        // Up to four texts per engine thread at a time: enough that the
        // threads stay busy, few enough that streamed chunks keep coming
        // well ahead of playback (runs are ~20x real time).
        let width = engine.side_by_side();
        let batch = if width > 1 { width * 4 } else { 1 };
        let mut texts = vec![text];
        while texts.len() < batch {
            let Some(Piece::Text(_)) = pieces.front() else {
                break;
            };
            if let Some(Piece::Text(t)) = pieces.pop_front() {
                texts.push(t);
            }
        }
        let results = if texts.len() == 1 {
            vec![engine.synthesize(voice, &texts[0], prosody).await]
        } else {
            engine.synthesize_all(voice, &texts, prosody).await
        };
        if results.len() != texts.len() {
            return Err(Error::internal(
                "the speech engine returned audio for fewer texts than it was given",
            ));
        }
        for (text, audio) in texts.into_iter().zip(results) {
            if let Heard::Gone = send(out, SpeechEvent::Audio(audio?)).await {
                return Ok(Heard::Gone);
            }
            if let Heard::Gone = send(out, SpeechEvent::Sentence(text)).await {
                return Ok(Heard::Gone);
            }
        }
    }
    Ok(Heard::Yes)
}

/// One sentence spoken with [`SpeechEngine::synthesize_streamed`], its
/// pieces passed on as they come.
async fn stream_one(
    engine: &Arc<dyn SpeechEngine>,
    voice: &str,
    text: String,
    prosody: Prosody,
    out: &Sender<SpeechEvent>,
) -> Result<Heard> {
    let (tx, mut pieces) = tokio::sync::mpsc::channel(4);
    let task = {
        let (engine, voice, said) = (engine.clone(), voice.to_owned(), text.clone());
        tokio::spawn(async move { engine.synthesize_streamed(&voice, &said, prosody, tx).await })
    };
    while let Some(audio) = pieces.recv().await {
        // Gone: dropping `pieces` tells the engine to stop.
        if let Heard::Gone = send(out, SpeechEvent::Audio(audio)).await {
            return Ok(Heard::Gone);
        }
    }
    task.await
        .map_err(|e| Error::internal(format!("speech task: {e}")))??;
    Ok(send(out, SpeechEvent::Sentence(text)).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use maximin_core::engines::SpeechAudio;

    /// Speaks one sample per character at 1 kHz; counts calls.
    #[derive(Default)]
    struct Counting {
        calls: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl SpeechEngine for Counting {
        fn voices(&self) -> Vec<EngineVoice> {
            Vec::new()
        }
        async fn synthesize(&self, _: &str, text: &str, _: Prosody) -> Result<SpeechAudio> {
            self.calls.lock().expect("lock").push(text.to_owned());
            Ok(SpeechAudio {
                samples: vec![0.5; text.chars().count()],
                sample_rate: 1000,
            })
        }
        fn side_by_side(&self) -> usize {
            2
        }
    }

    fn job(text: &str, whole: bool) -> SpeechJob {
        SpeechJob {
            text: text.into(),
            pronunciation: vec![("two".into(), "2".into())],
            whole,
            ..SpeechJob::default()
        }
    }

    fn spec() -> ModelSpec {
        maximin_core::catalog::Catalog::with_overrides(vec![])
            .expect("catalog")
            .resolve("speech-2.8-turbo")
            .expect("model")
            .clone()
    }

    async fn events(engine: Arc<Counting>, job: SpeechJob) -> Vec<SpeechEvent> {
        let provider = LocalSpeech::new(engine);
        let mut rx = provider.start(&spec(), job).await.expect("start");
        let mut out = Vec::new();
        while let Some(e) = rx.recv().await {
            out.push(e);
        }
        out
    }

    fn shape(events: &[SpeechEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                SpeechEvent::Audio(a) => format!("audio {}", a.samples.len()),
                SpeechEvent::Pause(s) => format!("pause {s}"),
                SpeechEvent::Sentence(t) => format!("sentence {t}"),
                SpeechEvent::Encoded(b) => format!("encoded {}", b.len()),
                SpeechEvent::Done(d) => format!("done {}", d.characters),
                SpeechEvent::Failed(e) => format!("failed {e}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn sentences_and_pauses_come_in_order_then_the_billed_characters() {
        let engine = Arc::new(Counting::default());
        let text = "One. <#0.5#> Say two. Three! Four?";
        let got = shape(&events(engine.clone(), job(text, false)).await);
        assert_eq!(
            got,
            [
                "audio 4",
                "sentence One.",
                "pause 0.5",
                "audio 6",
                "sentence Say 2.",
                "audio 6",
                "sentence Three!",
                "audio 5",
                "sentence Four?",
                "done 29",
            ]
        );
        // Streamed: the first sentence alone, then the rest side by side
        // (2 threads × 4 texts a batch).
        let calls = engine.calls.lock().expect("lock").clone();
        assert_eq!(calls, ["One.", "Say 2.", "Three!", "Four?"]);
    }

    #[tokio::test]
    async fn a_listener_that_leaves_stops_the_work() {
        let engine = Arc::new(Counting::default());
        let text = "A. ".repeat(200);
        let provider = LocalSpeech::new(engine.clone());
        let mut rx = provider
            .start(&spec(), job(&text, true))
            .await
            .expect("start");
        assert!(matches!(rx.recv().await, Some(SpeechEvent::Audio(_))));
        drop(rx);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let spoken = engine.calls.lock().expect("lock").len();
        assert!(spoken < 200, "{spoken} of 200 sentences spoken for nobody");
    }
}
