//! Long text to speech as a durable task (spec §4): created with every
//! check made at once (the illegal-character rule over all inputs, model,
//! voice, audio settings), the task's input sealed in the store until it
//! ends (see `maximin_core::tasks`); run by [`task_handlers`]' handler,
//! which synthesises each input into a sealed part file and streams a tar
//! (audio, subtitles, extra info per input) into the task's reserved file.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use maximin_core::files::Output;
use maximin_core::providers::media::Work;
use maximin_core::speech;
use maximin_core::store::TaskRecord;
use maximin_core::tasks::{TaskHandler, TaskOutput};
use maximin_core::{Caller, Error, Platform, Result};
use maximin_types::speech::{T2aExtraInfo, T2aRequest};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::plan::{check_text_within, plan};
use crate::subtitles::Subtitle;
use crate::synth::Synth;
use crate::tar::{write_tar, Part};

/// The task kind.
pub const KIND: &str = "t2a_async";
/// Most characters of one task (all inputs together).
pub const MAX_ASYNC_CHARS: usize = 1_000_000;

/// What the task keeps (sealed): the request without its text, and the texts.
#[derive(Serialize, Deserialize)]
struct Params {
    request: Value,
    inputs: Vec<Input>,
}

/// One text of a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Input {
    /// Names the input's files in the output (`speech`, a zip entry's stem,
    /// `<stem>.title`).
    pub name: String,
    pub text: String,
}

/// The request as `/v1/t2a_v2` would see it, without text: the plan's checks
/// (model, voice, audio settings) are the same.
pub fn t2a_request(request: &Value) -> Result<T2aRequest> {
    let mut v = request.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("text".into(), Value::String(String::new()));
        o.remove("text_file_id");
        o.remove("stream");
        o.remove("output_format");
        o.remove("subtitle_enable");
    }
    serde_json::from_value(v)
        .map_err(|e| Error::invalid("body", format!("The request is not valid: {e}")))
}

/// A task created.
pub struct Created {
    pub task_id: i64,
    /// Signs the task id (MiniMax clients keep it).
    pub task_token: String,
    /// The output file, reserved.
    pub file_id: Option<i64>,
    pub usage_characters: u64,
    /// The catalog id of the model.
    pub model: String,
}

/// Queues `inputs` to be spoken as `request` (the body as sent; `req` read
/// from it with [`t2a_request`]) asks.
pub async fn create(
    p: &Platform,
    caller: &Caller,
    mut request: Value,
    req: &T2aRequest,
    inputs: Vec<Input>,
) -> Result<Created> {
    let all: String = inputs
        .iter()
        .map(|i| i.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    check_text_within(&all, MAX_ASYNC_CHARS, "")?;
    // Everything about the voice and the audio is checked now, not when the task runs.
    let planned = plan(p, caller, req, None).await?;
    // Charged at submission, for every character of every input.
    crate::plan::reserve(p, caller, &planned, &all).await?;
    let model = planned.model().to_owned();
    let usage_characters = speech::usage_characters(&all);
    if let Some(o) = request.as_object_mut() {
        o.remove("text");
    }
    let params = serde_json::to_vec(&Params { request, inputs }).map_err(Error::internal)?;
    let task = p
        .tasks
        .create(&caller.account.id, &caller.key.id, KIND, &params)
        .await?;
    let task_token = maximin_core::crypto::sign(
        &p.files.keys().derive("maximin/task-token"),
        &task.id.to_string(),
    );
    Ok(Created {
        task_id: task.id,
        task_token,
        file_id: task.file_id,
        usage_characters,
        model,
    })
}

/// The task handlers of speech, by kind.
pub fn task_handlers(platform: Arc<Platform>) -> HashMap<String, Arc<dyn TaskHandler>> {
    let mut m: HashMap<String, Arc<dyn TaskHandler>> = HashMap::new();
    m.insert(KIND.to_owned(), Arc::new(AsyncSpeech { platform }));
    m
}

struct AsyncSpeech {
    platform: Arc<Platform>,
}

#[async_trait]
impl TaskHandler for AsyncSpeech {
    async fn run(&self, task: &TaskRecord, params: Vec<u8>, work: &Work) -> Result<TaskOutput> {
        let p = &self.platform;
        let params: Params = serde_json::from_slice(&params).map_err(Error::internal)?;
        let req = t2a_request(&params.request)?;
        // The caller as it was: the key may have been revoked since, but
        // the task was accepted under it.
        let key = p
            .store
            .key(&task.key_id)
            .await?
            .ok_or_else(|| Error::internal("the task's key is gone"))?;
        let account = p
            .store
            .account(&task.account_id)
            .await?
            .ok_or_else(|| Error::internal("the task's account is gone"))?;
        let caller = Caller::new(account, key);
        let plan = plan(p, &caller, &req, None).await?;
        let ext = plan.settings().format.as_str().to_owned();

        // Parts an earlier attempt wrote before it was cut short (a crash)
        // are found by their ids and go.
        for attempt in 1..task.attempts {
            for i in 0..params.inputs.len() {
                let _ = p.files.discard_id(part_id(task.id, attempt, i)).await;
            }
        }
        let mut parts: Vec<(String, Part)> = Vec::new();
        let mut totals = Totals::default();
        let result = async {
            for (i, input) in params.inputs.iter().enumerate() {
                let ratio = speech::illegal_ratio(&input.text);
                let mut synth = Synth::whole(plan.clone().with_text(input.text.clone(), ratio));
                synth.start(p).await?;
                let mut w = p
                    .files
                    .output_writer(&Output {
                        account_id: &task.account_id,
                        purpose: "t2a_part",
                        filename: "part",
                        kind: &ext,
                        id: Some(part_id(task.id, task.attempts, i)),
                        expires_at: None,
                    })
                    .await?;
                while let Some(bytes) = synth.next().await {
                    w.write(&bytes?).await?;
                }
                let subs: Vec<Subtitle> = synth.subtitles().to_vec();
                let (end, info, chars) = synth.finish_whole()?;
                w.write(&end.tail).await?;
                let audio = w.finish().await?;
                totals.add(&info, chars);
                let info = serde_json::to_vec_pretty(&info).map_err(Error::internal)?;
                let subs = serde_json::to_vec_pretty(&subs).map_err(Error::internal)?;
                let part = Part::Stored(audio, end.head);
                parts.push((format!("{}.{ext}", input.name), part));
                parts.push((format!("{}.subtitle.json", input.name), Part::Bytes(subs)));
                parts.push((format!("{}.extra.json", input.name), Part::Bytes(info)));
                work.progress(i as u64 + 1, params.inputs.len() as u64 + 1);
            }
            write_tar(&p.files, task, &parts).await
        }
        .await;
        for (_, part) in &parts {
            if let Part::Stored(f, _) = part {
                let _ = p.files.discard(f).await;
            }
        }
        plan.used_voices().mark(p).await;
        let file = result?;
        Ok(TaskOutput {
            result: totals.json(&ext, plan.settings()),
            file: Some(file),
        })
    }
}

/// The file id of a task's part: fixed by the task, the attempt and the
/// input (FNV-1a into the range of [`maximin_core::files::new_id`]), so that
/// a later attempt can remove what one cut short left behind, and two
/// attempts never write the same part.
fn part_id(task_id: i64, attempt: u32, input: usize) -> i64 {
    const LOW: i64 = 100_000_000_000_000;
    const HIGH: i64 = 1 << 53;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = task_id
        .to_le_bytes()
        .into_iter()
        .chain(attempt.to_le_bytes())
        .chain((input as u64).to_le_bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    LOW + (h % (HIGH - LOW) as u64) as i64
}

#[derive(Default)]
struct Totals {
    audio_length: u64,
    audio_size: u64,
    word_count: u64,
    usage_characters: u64,
    ratio_weighted: f64,
}

impl Totals {
    fn add(&mut self, info: &T2aExtraInfo, chars: u64) {
        self.audio_length += info.audio_length;
        self.audio_size += info.audio_size;
        self.word_count += info.word_count;
        self.usage_characters += chars;
        self.ratio_weighted += info.invisible_character_ratio * chars as f64;
    }

    fn json(&self, ext: &str, s: &maximin_audio::AudioSettings) -> Value {
        json!({
            "audio_length": self.audio_length,
            "audio_sample_rate": s.sample_rate,
            "audio_size": self.audio_size,
            "bitrate": if ext == "mp3" { s.effective_bitrate() } else { 0 },
            "word_count": self.word_count,
            "invisible_character_ratio":
                ((self.ratio_weighted / self.usage_characters.max(1) as f64) * 1e4).round() / 1e4,
            "usage_characters": self.usage_characters,
            "audio_format": ext,
            "audio_channel": s.channels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_ids_are_fixed_distinct_and_in_the_id_range() {
        let a = part_id(123_456_789_012_345, 1, 0);
        assert_eq!(a, part_id(123_456_789_012_345, 1, 0));
        let mut seen = std::collections::HashSet::new();
        for attempt in 1..4 {
            for input in 0..50 {
                let id = part_id(123_456_789_012_345, attempt, input);
                assert!((100_000_000_000_000..1 << 53).contains(&id));
                assert!(seen.insert(id), "attempt {attempt} input {input}");
            }
        }
    }
}
