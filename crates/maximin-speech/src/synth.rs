//! [`Synth`]: one plan's audio, piece by piece, from its provider. Samples
//! are brought to the request's volume and encoded in the asked format
//! (the encoder is made with the first audio, at the provider's rate, led
//! by the pauses met before); encoded bytes from a provider pass through as
//! they are. Sentences are timed for subtitles; the end gives the
//! `extra_info` and the characters billed.

use maximin_audio::{Encoder, Format, WholeEnd};
use maximin_core::engines::SpeechAudio;
use maximin_core::providers::speech::{SpeechDone, SpeechEvent, SpeechJob};
use std::sync::Arc;

use maximin_core::pii::PiiMode;
use maximin_core::routing::{Lease, Target};
use maximin_core::{pii, speech, Caller, Error, Platform, Result};
use maximin_types::speech::{T2aExtraInfo, T2aRequest};
use maximin_types::ErrorCode;
use tokio::sync::mpsc::Receiver;

use crate::plan::{self, Plan};
use crate::subtitles::{subtitle_segments, Subtitle};

/// Synthesises piece by piece: each [`Synth::next`] gives the next encoded
/// bytes, [`Synth::finish`] (or [`Synth::finish_whole`]) the rest and the
/// totals.
pub struct Synth {
    plan: Plan,
    /// Whether the audio leaves whole (its head is rewritten with exact
    /// sizes at the end) rather than streamed.
    whole: bool,
    /// The provider's events, once started; `None` again at the end.
    events: Option<Receiver<SpeechEvent>>,
    /// The provider's first event, read to know the job started.
    first: Option<SpeechEvent>,
    started: bool,
    /// The routed target that speaks, held until the end (in flight,
    /// breaker); `None` for a plan's own local engine.
    lease: Option<Lease>,
    /// Which deployment speaks (`X-Maximin-Upstream`), once started.
    deployment: Option<String>,
    done: Option<SpeechDone>,
    encoder: Option<Encoder>,
    /// Whether the provider sends encoded bytes, passed through.
    passthrough: bool,
    /// Pause seconds met before the first audio (the encoder's input rate is
    /// known only then).
    pending_silence: f32,
    samples_in: u64,
    input_rate: u32,
    bytes: u64,
    /// Sentence timings so far (for subtitles).
    subtitles: Vec<Subtitle>,
    /// Where the sentence being spoken starts, in samples (known with its
    /// first audio).
    sentence_begin: Option<u64>,
}

/// A whole synthesis (see [`Synth::whole_audio`]).
pub struct Whole {
    pub audio: Vec<u8>,
    pub subtitles: Vec<Subtitle>,
    pub info: T2aExtraInfo,
    pub chars: u64,
}

impl Synth {
    /// A synthesiser whose first sentence comes out first, on its own
    /// (streamed responses: the first audio as soon as possible).
    pub fn new(plan: Plan) -> Self {
        Synth::with_whole(plan, false)
    }

    /// A synthesiser for a whole response: no audio leaves before the
    /// end, so the first sentence joins the others side by side.
    pub fn whole(plan: Plan) -> Self {
        Synth::with_whole(plan, true)
    }

    fn with_whole(plan: Plan, whole: bool) -> Self {
        Synth {
            plan,
            whole,
            events: None,
            first: None,
            started: false,
            lease: None,
            deployment: None,
            done: None,
            encoder: None,
            passthrough: false,
            pending_silence: 0.0,
            samples_in: 0,
            input_rate: 0,
            bytes: 0,
            subtitles: Vec::new(),
            sentence_begin: None,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Every piece at once: the whole file, its subtitles, extra_info and
    /// billed characters.
    pub async fn whole_audio(mut self, p: &Platform) -> Result<Whole> {
        self.start(p).await?;
        let mut audio = Vec::new();
        while let Some(bytes) = self.next().await {
            audio.extend(bytes?);
        }
        let subtitles = std::mem::take(&mut self.subtitles);
        let (end, info, chars) = self.finish_whole()?;
        end.apply(&mut audio);
        Ok(Whole {
            audio,
            subtitles,
            info,
            chars,
        })
    }

    /// Sentence timings of what has been synthesised so far.
    pub fn subtitles(&self) -> &[Subtitle] {
        &self.subtitles
    }

    /// Starts the synthesis: the plan's local engine, or for a routed model
    /// the deployment the router picks, retried and failed over (another
    /// deployment, a fallback model) until one has started speaking (its
    /// first event), as chat is. Errors here come before any audio.
    pub async fn start(&mut self, p: &Platform) -> Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        let job = SpeechJob {
            whole: self.whole,
            ..self.plan.job.clone()
        };
        let Some((spec, policy)) = self.plan.routed.clone() else {
            let mut job = job;
            // Redaction fails closed: an error refuses the job.
            pii::protect_text(&mut job.text, "text", self.plan.pii)?;
            let events = self.plan.provider.start(&self.plan.model, job).await?;
            self.events = Some(events);
            self.deployment = Some(format!("local:{}", self.plan.model.engine));
            return Ok(());
        };
        let ((events, first), lease) = p
            .router
            .route(&p.catalog, &spec, &policy, |target: Arc<Target>| {
                let (job, policy) = (&job, &policy);
                async move {
                    let provider = p
                        .engines
                        .speech
                        .get(&target.provider)
                        .ok_or_else(|| crate::voice::no_speech_provider(&target))?;
                    let mut job = job.clone();
                    let mode = if !target.is_local() || policy.pii_local {
                        policy.pii
                    } else {
                        PiiMode::Off
                    };
                    pii::protect_text(&mut job.text, "text", mode)?;
                    let mut events = provider.start(&target.spec, job).await?;
                    match events.recv().await {
                        Some(SpeechEvent::Failed(e)) => Err(e),
                        None => Err(Error::new(
                            ErrorCode::UpstreamError,
                            "The speech provider closed the answer before it started.",
                        )
                        .with("reason", "closed")),
                        Some(first) => Ok((events, first)),
                    }
                }
            })
            .await?;
        self.deployment = Some(lease.target().label.clone());
        self.lease = Some(lease);
        self.events = Some(events);
        self.first = Some(first);
        Ok(())
    }

    /// The deployment that speaks (`NAME:MODEL` or `local:ENGINE`), once
    /// started.
    pub fn deployment(&self) -> Option<&str> {
        self.deployment.as_deref()
    }

    /// The next bytes of the audio; `None` when the provider is done. After
    /// an error there is nothing more. [`Synth::start`] comes first.
    pub async fn next(&mut self) -> Option<Result<Vec<u8>>> {
        if !self.started {
            self.started = true;
            return Some(Err(Error::internal(
                "a synthesis was read before it started",
            )));
        }
        loop {
            let event = match self.first.take() {
                Some(first) => Some(first),
                None => self.events.as_mut()?.recv().await,
            };
            let out = match event {
                None => Err(Error::internal(
                    "the speech provider stopped before its end",
                )),
                Some(SpeechEvent::Audio(audio)) => self.play(audio),
                Some(SpeechEvent::Pause(secs)) => match self.pause(secs) {
                    Ok(bytes) if bytes.is_empty() => continue,
                    other => other,
                },
                Some(SpeechEvent::Sentence(text)) => {
                    self.note(&text);
                    continue;
                }
                Some(SpeechEvent::Encoded(bytes)) => self.pass(bytes),
                Some(SpeechEvent::Done(done)) => {
                    self.done = Some(done);
                    self.events = None;
                    return None;
                }
                Some(SpeechEvent::Failed(e)) => {
                    if let Some(lease) = &self.lease {
                        lease.broke();
                    }
                    Err(e)
                }
            };
            if out.is_err() {
                self.events = None;
            }
            return Some(out);
        }
    }

    /// Encoded bytes from the provider, as they are.
    fn pass(&mut self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        if self.encoder.is_some() || self.pending_silence > 0.0 {
            return Err(mixed());
        }
        self.passthrough = true;
        self.bytes += bytes.len() as u64;
        Ok(bytes)
    }

    fn pause(&mut self, secs: f32) -> Result<Vec<u8>> {
        if self.passthrough {
            return Err(mixed());
        }
        self.sentence_begin = None;
        if self.encoder.is_none() {
            self.pending_silence += secs;
            return Ok(Vec::new());
        }
        let n = (secs * self.input_rate as f32) as usize;
        self.feed(self.input_rate, &vec![0.0; n])
    }

    /// Samples at the request's volume, encoded; the sentence's start noted.
    fn play(&mut self, mut audio: SpeechAudio) -> Result<Vec<u8>> {
        if self.passthrough {
            return Err(mixed());
        }
        if self.plan.gain != 1.0 {
            for s in &mut audio.samples {
                *s = (*s * self.plan.gain).clamp(-1.0, 1.0);
            }
        }
        let out = self.feed(audio.sample_rate, &audio.samples)?;
        let begin = self.samples_in - audio.samples.len() as u64;
        self.sentence_begin.get_or_insert(begin);
        Ok(out)
    }

    /// The subtitles of `text`, spoken from its first audio to what has been fed.
    fn note(&mut self, text: &str) {
        let begin = self.sentence_begin.take().unwrap_or(self.samples_in);
        if self.passthrough {
            return;
        }
        let rate = f64::from(self.input_rate.max(1));
        let end = self.samples_in as f64 * 1000.0 / rate;
        let begin = begin as f64 * 1000.0 / rate;
        self.subtitles.extend(subtitle_segments(text, begin, end));
    }

    /// Encodes samples at `rate`. The encoder is made on first use (a
    /// provider's rate is known only then), led by the pauses met before.
    fn feed(&mut self, rate: u32, samples: &[f32]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        match self.encoder.as_mut() {
            None => {
                let enc = match self.whole {
                    true => Encoder::whole(self.plan.settings, rate),
                    false => Encoder::new(self.plan.settings, rate),
                };
                let mut enc = enc.map_err(audio_error)?;
                let n = (self.pending_silence * rate as f32) as usize;
                out = enc.push(&vec![0.0; n]).map_err(audio_error)?;
                self.samples_in += n as u64;
                self.input_rate = rate;
                self.encoder = Some(enc);
            }
            // One voice and one prosody per request: a provider keeps its rate.
            Some(_) if rate != self.input_rate => {
                return Err(Error::internal(format!(
                    "speech provider changed its sample rate mid-request ({} → {rate})",
                    self.input_rate
                )))
            }
            Some(_) => {}
        }
        if let Some(enc) = self.encoder.as_mut() {
            out.extend(enc.push(samples).map_err(audio_error)?);
        }
        self.samples_in += samples.len() as u64;
        self.bytes += out.len() as u64;
        Ok(out)
    }

    /// The encoder's tail and the extra_info of the whole audio, for a
    /// streamed synthesis (its WAV or FLAC header keeps the length open),
    /// and the characters billed.
    pub fn finish(self) -> Result<(Vec<u8>, T2aExtraInfo, u64)> {
        debug_assert!(!self.whole, "a whole synthesis ends with finish_whole");
        let (end, info, chars) = self.finish_whole()?;
        Ok((end.tail, info, chars))
    }

    /// The end of a whole synthesis ([`Synth::whole`]): the tail, and the head
    /// with exact sizes (WAV sizes, FLAC sample count, MP3 Info frame) that
    /// replaces the start of the audio; with the extra_info and the
    /// characters billed. Encoded audio from the provider came whole: no
    /// tail, no head.
    pub fn finish_whole(mut self) -> Result<(WholeEnd, T2aExtraInfo, u64)> {
        let done = self
            .done
            .ok_or_else(|| Error::internal("a synthesis finished before its end"))?;
        let mut end = WholeEnd {
            tail: Vec::new(),
            head: Vec::new(),
        };
        if !self.passthrough {
            // Nothing spoken (only pauses): the silence at the output rate.
            if self.encoder.is_none() {
                end.tail = self.feed(self.plan.settings.sample_rate, &[])?;
            }
            if let Some(enc) = self.encoder.take() {
                let last = enc.finish_whole().map_err(audio_error)?;
                self.bytes += last.tail.len() as u64;
                end.tail.extend(last.tail);
                end.head = last.head;
            }
        }
        let info = self.info(&done);
        Ok((end, info, done.characters))
    }

    fn info(&self, done: &SpeechDone) -> T2aExtraInfo {
        let s = &self.plan.settings;
        let ms = if self.passthrough {
            done.audio_ms.unwrap_or_else(|| match s.format {
                // Raw 16-bit samples: the length follows from the size.
                Format::Pcm => {
                    self.bytes * 1000
                        / (2 * u64::from(s.channels.max(1)) * u64::from(s.sample_rate))
                }
                _ => 0,
            })
        } else if self.input_rate == 0 {
            0
        } else {
            self.samples_in * 1000 / u64::from(self.input_rate)
        };
        let text = &self.plan.job.text;
        T2aExtraInfo {
            audio_length: ms,
            audio_sample_rate: s.sample_rate,
            audio_size: self.bytes,
            bitrate: if s.format == Format::Mp3 {
                s.effective_bitrate()
            } else {
                0
            },
            word_count: speech::word_count(text),
            invisible_character_ratio: (self.plan.illegal_ratio * 1e4).round() / 1e4,
            usage_characters: done.characters,
            audio_format: s.format.as_str().to_owned(),
            audio_channel: s.channels,
        }
    }
}

fn mixed() -> Error {
    Error::internal("the speech provider sent both samples and encoded audio")
}

fn audio_error(e: maximin_audio::AudioError) -> Error {
    match e.field() {
        Some(f) => Error::invalid(f, e.to_string()),
        None => Error::internal(format!("audio encoding: {e}")),
    }
}

/// A whole request's audio, for responses that carry it whole (`t2a_v2`
/// without streaming, OpenAI's `audio/speech`): the plan (the caller's own
/// voices loaded), the synthesis, the voices marked used.
pub async fn speak_whole(p: &Platform, caller: &Caller, req: &T2aRequest) -> Result<Spoken> {
    let plan = plan::plan(p, caller, req, Some(&req.text)).await?;
    plan::reserve(p, caller, &plan, &req.text).await?;
    let (model, format, used) = (
        plan.model().to_owned(),
        plan.settings().format,
        plan.used_voices(),
    );
    let mut synth = Synth::whole(plan);
    synth.start(p).await?;
    let deployment = synth.deployment().unwrap_or_default().to_owned();
    let whole = synth.whole_audio(p).await?;
    used.mark(p).await;
    Ok(Spoken {
        whole,
        model,
        format,
        deployment,
    })
}

/// What [`speak_whole`] spoke.
pub struct Spoken {
    pub whole: Whole,
    /// The catalog id of the model.
    pub model: String,
    pub format: Format,
    /// The deployment that spoke (`X-Maximin-Upstream`).
    pub deployment: String,
}
