//! Speech from upstreams behind the core's `SpeechProvider`: the MiniMax
//! cloud's `t2a_v2` (hex audio already in the asked format, streamed or
//! whole, passed through as `Encoded` bytes), and OpenAI's
//! `/audio/speech` (asked for raw 24 kHz PCM, handed on as samples, which
//! the speech service encodes into whatever the client asked for).

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use maximin_core::catalog::ModelSpec;
use maximin_core::engines::SpeechAudio;
use maximin_core::providers::speech::{events, SpeechDone, SpeechEvent, SpeechJob, SpeechProvider};
use maximin_core::{Error, Result};
use maximin_types::ErrorCode;
use serde_json::{json, Value};
use tokio::sync::mpsc::Receiver;

use crate::sse::SseParser;
use crate::Client;

/// The rate of OpenAI's `pcm` output.
const OPENAI_PCM_RATE: u32 = 24_000;

pub struct MiniMaxSpeech {
    client: Arc<Client>,
}

pub struct OpenAiSpeech {
    client: Arc<Client>,
}

impl MiniMaxSpeech {
    pub fn new(client: Arc<Client>) -> Self {
        MiniMaxSpeech { client }
    }
}

impl OpenAiSpeech {
    pub fn new(client: Arc<Client>) -> Self {
        OpenAiSpeech { client }
    }
}

fn model_name(model: &ModelSpec) -> &str {
    model.upstream_model.as_deref().unwrap_or(&model.id)
}

/// The `t2a_v2` request for a job.
pub fn t2a_body(model: &str, job: &SpeechJob) -> Value {
    let s = &job.settings;
    let mut voice = json!({
        "voice_id": job.voice.id,
        "speed": s.speed,
        "vol": s.volume,
        "pitch": s.pitch.round() as i32,
    });
    if let Some(e) = &s.emotion {
        voice["emotion"] = json!(e);
    }
    let mut body = json!({
        "model": model,
        "text": job.text,
        "stream": !job.whole,
        "voice_setting": voice,
        "audio_setting": {
            "sample_rate": job.output.sample_rate,
            "bitrate": job.output.bitrate,
            "format": job.output.format,
            "channel": job.output.channels,
        },
        "output_format": "hex",
    });
    if !job.whole {
        body["stream_options"] = json!({"exclude_aggregated_audio": true});
    }
    if let Some(boost) = &job.language_boost {
        body["language_boost"] = json!(boost);
    }
    if !job.pronunciation.is_empty() {
        let tone: Vec<String> = job
            .pronunciation
            .iter()
            .map(|(from, to)| format!("{from}/{to}"))
            .collect();
        body["pronunciation_dict"] = json!({"tone": tone});
    }
    if !job.voice.mix.is_empty() {
        body["voice_setting"]["voice_id"] = json!("");
        body["timbre_weights"] = json!(job
            .voice
            .mix
            .iter()
            .map(|(id, w)| json!({"voice_id": id, "weight": w}))
            .collect::<Vec<_>>());
    }
    body
}

fn malformed(client: &Client, what: &str) -> Error {
    Error::new(
        ErrorCode::UpstreamError,
        format!("The upstream '{}' answered speech {what}.", client.name),
    )
    .with("upstream", client.name.as_str())
    .with("reason", "malformed")
}

impl MiniMaxSpeech {
    fn check(&self, v: &Value) -> Result<()> {
        match v["base_resp"]["status_code"].as_i64() {
            None | Some(0) => Ok(()),
            Some(code) => Err(self
                .client
                .base_resp_error(code, v["base_resp"]["status_msg"].as_str().unwrap_or(""))),
        }
    }

    fn done(&self, v: &Value, job_chars: u64) -> SpeechDone {
        let info = &v["extra_info"];
        SpeechDone {
            characters: info["usage_characters"].as_u64().unwrap_or(job_chars),
            audio_ms: info["audio_length"].as_u64(),
        }
    }
}

#[async_trait]
impl SpeechProvider for MiniMaxSpeech {
    async fn start(&self, model: &ModelSpec, job: SpeechJob) -> Result<Receiver<SpeechEvent>> {
        let body = t2a_body(model_name(model), &job);
        let res = self.client.post("/v1/t2a_v2", &body).await?;
        let chars = job.billed_characters();
        let (tx, rx) = events();
        if job.whole {
            let v: Value = res.json().await.map_err(|e| self.client.transport(e))?;
            self.check(&v)?;
            let audio = v["data"]["audio"]
                .as_str()
                .and_then(hex_decode)
                .ok_or_else(|| malformed(&self.client, "without hex audio"))?;
            let done = self.done(&v, chars);
            tokio::spawn(async move {
                if tx.send(SpeechEvent::Encoded(audio)).await.is_ok() {
                    let _ = tx.send(SpeechEvent::Done(done)).await;
                }
            });
            return Ok(rx);
        }
        // A refusal comes as one JSON body even when a stream was asked for.
        let is_json = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        if is_json {
            let v: Value = res.json().await.map_err(|e| self.client.transport(e))?;
            self.check(&v)?;
            return Err(malformed(
                &self.client,
                "as JSON where a stream was asked for",
            ));
        }
        let me = MiniMaxSpeech {
            client: self.client.clone(),
        };
        tokio::spawn(async move {
            let mut body = res.bytes_stream();
            let mut parser = SseParser::default();
            let fail = |why: &str| {
                SpeechEvent::Failed(
                    Error::new(
                        ErrorCode::UpstreamError,
                        format!(
                            "The upstream '{}' broke off the speech: {why}.",
                            me.client.name
                        ),
                    )
                    .with("reason", "broken"),
                )
            };
            loop {
                let events = match body.next().await {
                    Some(Ok(bytes)) => parser.push(&bytes),
                    Some(Err(_)) => {
                        let _ = tx.send(fail("the connection failed")).await;
                        return;
                    }
                    None => match parser.finish() {
                        Some(e) => vec![e],
                        None => {
                            let _ = tx.send(fail("the stream ended early")).await;
                            return;
                        }
                    },
                };
                for e in events {
                    let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
                        continue;
                    };
                    if let Err(err) = me.check(&v) {
                        let _ = tx.send(SpeechEvent::Failed(err)).await;
                        return;
                    }
                    let last = v["data"]["status"].as_i64() == Some(2);
                    // The last event may repeat the whole audio; it was asked
                    // not to, and is skipped if it does.
                    if !last {
                        if let Some(audio) = v["data"]["audio"].as_str().and_then(hex_decode) {
                            if !audio.is_empty()
                                && tx.send(SpeechEvent::Encoded(audio)).await.is_err()
                            {
                                return;
                            }
                        }
                    }
                    if last {
                        let _ = tx.send(SpeechEvent::Done(me.done(&v, chars))).await;
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}

fn hex_decode(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

#[async_trait]
impl SpeechProvider for OpenAiSpeech {
    async fn start(&self, model: &ModelSpec, job: SpeechJob) -> Result<Receiver<SpeechEvent>> {
        let text = job.spoken_text();
        let body = json!({
            "model": model_name(model),
            "input": text,
            "voice": job.voice.id,
            "response_format": "pcm",
            "speed": job.settings.speed,
        });
        let res = self.client.post("/audio/speech", &body).await?;
        let chars = job.billed_characters();
        let name = self.client.name.clone();
        let (tx, rx) = events();
        tokio::spawn(async move {
            let mut body = res.bytes_stream();
            let mut odd: Option<u8> = None;
            while let Some(chunk) = body.next().await {
                let Ok(bytes) = chunk else {
                    let e = Error::new(
                        ErrorCode::UpstreamError,
                        format!("The upstream '{name}' broke off the speech."),
                    )
                    .with("reason", "broken");
                    let _ = tx.send(SpeechEvent::Failed(e)).await;
                    return;
                };
                let mut data: Vec<u8> = odd.take().into_iter().collect();
                data.extend_from_slice(&bytes);
                if !data.len().is_multiple_of(2) {
                    odd = data.pop();
                }
                let samples: Vec<f32> = data
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                    .collect();
                if samples.is_empty() {
                    continue;
                }
                let audio = SpeechAudio {
                    samples,
                    sample_rate: OPENAI_PCM_RATE,
                };
                if tx.send(SpeechEvent::Audio(audio)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(SpeechEvent::Sentence(text)).await;
            let done = SpeechDone {
                characters: chars,
                audio_ms: None,
            };
            let _ = tx.send(SpeechEvent::Done(done)).await;
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maximin_core::providers::speech::{SpeechVoice, VoiceSettings};

    #[test]
    fn t2a_bodies_carry_voice_audio_and_rules() {
        let job = SpeechJob {
            text: "Hello <#0.5#> world".into(),
            pronunciation: vec![("world".into(), "wurld".into())],
            voice: SpeechVoice {
                id: "male-qn-qingse".into(),
                ..SpeechVoice::default()
            },
            settings: VoiceSettings {
                pitch: 2.0,
                emotion: Some("happy".into()),
                ..VoiceSettings::default()
            },
            whole: false,
            ..SpeechJob::default()
        };
        let b = t2a_body("speech-2.8-hd", &job);
        assert_eq!(b["text"], "Hello <#0.5#> world", "pauses go as sent");
        assert_eq!(b["stream"], true);
        assert_eq!(b["voice_setting"]["voice_id"], "male-qn-qingse");
        assert_eq!(b["voice_setting"]["pitch"], 2);
        assert_eq!(b["voice_setting"]["emotion"], "happy");
        assert_eq!(b["audio_setting"]["format"], "mp3");
        assert_eq!(b["pronunciation_dict"]["tone"][0], "world/wurld");
        assert_eq!(b["stream_options"]["exclude_aggregated_audio"], true);
        assert_eq!(hex_decode("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(hex_decode("0"), None);
    }
}
