//! Long text to speech as a durable task (spec §4): `POST /v1/t2a_async_v2`
//! queues it, `GET /v1/query/t2a_async_query_v2` reports it, and the output
//! is a file (a tar of the audio, a subtitle file with sentence timestamps
//! and an extra-info file per input) fetched through the file API.
//!
//! The text (from `text`, or a `t2a_async_input` file: plain text, or a zip
//! of text and JSON files) is checked when the task is created: the
//! illegal-character rule applies to the whole of it. The task's input is
//! sealed in the store until it ends (see `maximin_core::tasks`).

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maximin_core::files::{Files, Output};
use maximin_core::speech;
use maximin_core::store::{TaskRecord, TaskStatus};
use maximin_core::tasks::{TaskHandler, TaskOutput};
use maximin_core::{Caller, Error, Platform};
use maximin_types::speech::T2aRequest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ctx::{ApiQuery, Ctx, Param, QueryParams, UsageReport};
use crate::error::ApiError;
use crate::routes::files::opt_id_from_json;
use crate::routes::speech::{
    check_text_within, own_voices, plan_voice, voice_ids, Subtitle, Synth,
};
use crate::AppState;

/// The task kind.
pub const KIND: &str = "t2a_async";
/// Most characters of one task (all inputs together).
pub const MAX_ASYNC_CHARS: usize = 1_000_000;
/// Largest text input file read (a million characters of UTF-8).
const MAX_INPUT_BYTES: u64 = 8 * 1024 * 1024;

/// What the task keeps (sealed): the request without its text, and the texts.
#[derive(Serialize, Deserialize)]
struct Params {
    request: Value,
    inputs: Vec<Input>,
}

#[derive(Serialize, Deserialize)]
struct Input {
    /// Names the input's files in the output (`speech`, a zip entry's stem,
    /// `<stem>.title`).
    name: String,
    text: String,
}

#[derive(Deserialize)]
struct Ids {
    #[serde(default, deserialize_with = "opt_id_from_json")]
    text_file_id: Option<i64>,
}

fn invalid(field: &str, msg: impl Into<String>) -> ApiError {
    Error::invalid(field, msg).into()
}

/// The request as `/v1/t2a_v2` would see it, without text: the plan's checks
/// (model, voice, audio settings) are the same.
fn t2a_request(request: &Value) -> Result<T2aRequest, ApiError> {
    let mut v = request.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("text".into(), Value::String(String::new()));
        o.remove("text_file_id");
        o.remove("stream");
        o.remove("output_format");
        o.remove("subtitle_enable");
    }
    serde_json::from_value(v).map_err(|e| invalid("body", format!("The request is not valid: {e}")))
}

/// The texts of a `t2a_async_input` file: a text file, or a zip of text
/// files and JSON files (`title`, `content`, `extra`: each non-empty key is
/// its own input).
fn inputs_of(kind: &str, bytes: Vec<u8>) -> Result<Vec<Input>, ApiError> {
    let text_of = |b: Vec<u8>, what: &str| {
        String::from_utf8(b)
            .map_err(|_| invalid("text_file_id", format!("{what} is not UTF-8 text.")))
    };
    match kind {
        "txt" => Ok(vec![Input {
            name: "speech".into(),
            text: text_of(bytes, "The file")?,
        }]),
        "zip" => {
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
                .map_err(|e| invalid("text_file_id", format!("The zip cannot be read: {e}")))?;
            let mut inputs = Vec::new();
            let mut total = 0u64;
            for i in 0..zip.len() {
                let mut entry = zip
                    .by_index(i)
                    .map_err(|e| invalid("text_file_id", format!("The zip cannot be read: {e}")))?;
                if entry.is_dir() {
                    continue;
                }
                let name = entry.name().to_owned();
                total += entry.size();
                if total > MAX_INPUT_BYTES {
                    return Err(invalid("text_file_id", "The zip's files are too large."));
                }
                let mut data = Vec::new();
                entry
                    .by_ref()
                    .take(MAX_INPUT_BYTES)
                    .read_to_end(&mut data)
                    .map_err(|e| invalid("text_file_id", format!("The zip cannot be read: {e}")))?;
                let stem = name
                    .rsplit('/')
                    .next()
                    .unwrap_or(&name)
                    .rsplit_once('.')
                    .map(|(s, _)| s.to_owned())
                    .unwrap_or_else(|| name.clone());
                let stem: String = stem
                    .chars()
                    .map(|c| {
                        if c.is_alphanumeric() || c == '-' || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                if name.ends_with(".json") {
                    let v: Value = serde_json::from_slice(&data).map_err(|e| {
                        invalid(
                            "text_file_id",
                            format!("{name} in the zip is not JSON: {e}"),
                        )
                    })?;
                    for key in ["title", "content", "extra"] {
                        if let Some(t) = v
                            .get(key)
                            .and_then(Value::as_str)
                            .filter(|t| !t.trim().is_empty())
                        {
                            inputs.push(Input {
                                name: format!("{stem}.{key}"),
                                text: t.to_owned(),
                            });
                        }
                    }
                } else if name.ends_with(".txt") {
                    inputs.push(Input {
                        name: stem,
                        text: text_of(data, &name)?,
                    });
                } else {
                    return Err(invalid(
                        "text_file_id",
                        format!("{name}: a zip may hold only .txt or .json files."),
                    ));
                }
            }
            let kinds: std::collections::HashSet<bool> = (0..zip.len())
                .filter_map(|i| zip.name_for_index(i).map(|n| n.ends_with(".json")))
                .collect();
            if kinds.len() > 1 {
                return Err(invalid(
                    "text_file_id",
                    "A zip must hold files of one type: all .txt or all .json.",
                ));
            }
            Ok(inputs)
        }
        other => Err(invalid(
            "text_file_id",
            format!("The file is '{other}'; async speech reads txt or zip files."),
        )),
    }
}

#[utoipa::path(post, path = "/v1/t2a_async_v2", tag = "speech", security(("bearer" = [])),
    request_body = crate::openapi::T2aAsyncRequest,
    responses((status = 200, description = "The task, queued; its output file is reserved. A `base_resp.status_code` of 1042: more than 10% illegal characters.", body = crate::openapi::T2aAsyncResponse),
              (status = 402), (status = 404, description = "`not_found` / `model_not_found`: no such `text_file_id` or model"), (status = 503)))]
pub async fn t2a_async_v2(
    State(app): State<AppState>,
    ctx: Ctx,
    crate::ctx::ApiJson(body): crate::ctx::ApiJson<Value>,
) -> Result<Response, ApiError> {
    let p = &app.platform;
    let account = &ctx.caller.account.id;
    let ids: Ids = serde_json::from_value(body.clone()).map_err(|e| {
        invalid(
            "text_file_id",
            format!("'text_file_id' must be an integer id: {e}"),
        )
    })?;
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let req = t2a_request(&body)?;
    let inputs = match (text, ids.text_file_id) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "text_file_id",
                "Send 'text' or 'text_file_id', not both.",
            ))
        }
        (None, None) => return Err(invalid("text", "'text' or 'text_file_id' is required.")),
        (Some(t), None) => vec![Input {
            name: "speech".into(),
            text: t.to_owned(),
        }],
        (None, Some(id)) => {
            let f = p.files.get(account, id).await?;
            if f.purpose != "t2a_async_input" {
                return Err(invalid(
                    "text_file_id",
                    format!(
                        "File {id} has purpose '{}'; upload text with purpose 't2a_async_input'.",
                        f.purpose
                    ),
                ));
            }
            let bytes = p.files.read_all(&f, MAX_INPUT_BYTES).await?;
            inputs_of(&f.kind, bytes)?
        }
    };
    let all: String = inputs
        .iter()
        .map(|i| i.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    check_text_within(&all, MAX_ASYNC_CHARS, "")?;
    // Everything about the voice and the audio is checked now, not when the task runs.
    let own = own_voices(p, account, voice_ids(&req)).await?;
    let (_, model) = plan_voice(p, &ctx.caller, &own, &req, None).await?;
    let usage_characters = speech::usage_characters(&all);

    let mut request = body;
    if let Some(o) = request.as_object_mut() {
        o.remove("text");
    }
    let params = serde_json::to_vec(&Params { request, inputs }).map_err(Error::internal)?;
    let task = p
        .tasks
        .create(account, &ctx.caller.key.id, KIND, &params)
        .await?;
    let token = maximin_core::crypto::sign(
        &p.files.keys().derive("maximin/task-token"),
        &task.id.to_string(),
    );
    let body = json!({
        "task_id": task.id,
        "task_token": token,
        "file_id": task.file_id,
        "usage_characters": usage_characters,
        "base_resp": {"status_code": 0, "status_msg": "success"},
    });
    let mut resp = axum::Json(body).into_response();
    resp.extensions_mut()
        .insert(UsageReport::characters(model, usage_characters));
    Ok(resp)
}

/// `?task_id=` of the query.
#[derive(Deserialize)]
pub struct TaskQuery {
    task_id: i64,
}

impl QueryParams for TaskQuery {
    const PARAMS: &'static [Param] = &[Param::id("task_id")];
}

#[utoipa::path(get, path = "/v1/query/t2a_async_query_v2", tag = "speech", security(("bearer" = [])),
    params(("task_id" = i64, Query, description = "From t2a_async_v2")),
    responses((status = 200, description = "The task's status; `extra_info` on success, `error` on failure", body = crate::openapi::T2aAsyncQueryResponse),
              (status = 404, description = "`not_found`: no such task on this account")))]
pub async fn query_t2a_async(
    State(app): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> Result<Response, ApiError> {
    let id = q.task_id;
    let p = &app.platform;
    let task = p.tasks.get(&ctx.caller.account.id, id).await?;
    let mut body = json!({
        "task_id": task.id,
        "file_id": task.file_id,
        "base_resp": {"status_code": 0, "status_msg": "success"},
    });
    body["status"] = json!(match task.status {
        TaskStatus::Queued | TaskStatus::Processing => "Processing",
        TaskStatus::Failed => "Failed",
        TaskStatus::Success => {
            let present = match task.file_id {
                Some(f) => p.files.get(&ctx.caller.account.id, f).await.is_ok(),
                None => false,
            };
            if present {
                "Success"
            } else {
                "Expired"
            }
        }
    });
    match task.status {
        TaskStatus::Success => {
            if let Some(r) = task
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
            {
                body["extra_info"] = r;
            }
        }
        TaskStatus::Failed => {
            body["error"] = json!({
                "code": task.error_code,
                "message": task.error_message,
            });
        }
        _ => {}
    }
    Ok(axum::Json(body).into_response())
}

/// The task handlers this surface provides, by kind.
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
    async fn run(&self, task: &TaskRecord, params: Vec<u8>) -> Result<TaskOutput, Error> {
        let p = &self.platform;
        let params: Params = serde_json::from_slice(&params).map_err(Error::internal)?;
        let req = t2a_request(&params.request).map_err(|e| e.0)?;
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
        let caller = Caller { account, key };
        let own = own_voices(p, &task.account_id, voice_ids(&req))
            .await
            .map_err(|e| e.0)?;
        let (plan, _) = plan_voice(p, &caller, &own, &req, None)
            .await
            .map_err(|e| e.0)?;
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
            }
            write_tar(&p.files, task, &parts).await
        }
        .await;
        for (_, part) in &parts {
            if let Part::Stored(f, _) = part {
                let _ = p.files.discard(f).await;
            }
        }
        crate::routes::speech::mark_used(p, &task.account_id, &own).await;
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
    fn add(&mut self, info: &maximin_types::speech::T2aExtraInfo, chars: u64) {
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

enum Part {
    /// A sealed file written while synthesising (not recorded), and the head
    /// with exact sizes that replaces its first bytes in the tar (the part
    /// was written as a stream, before its length was known).
    Stored(maximin_core::store::FileRecord, Vec<u8>),
    Bytes(Vec<u8>),
}

/// A ustar header for a regular file.
fn tar_header(name: &str, size: u64, mtime: i64) -> Result<[u8; 512], Error> {
    let mut h = [0u8; 512];
    let name = name.as_bytes();
    if name.len() > 100 {
        return Err(Error::internal("tar member name too long"));
    }
    h[..name.len()].copy_from_slice(name);
    let mut field = |at: usize, len: usize, value: u64| {
        let s = format!("{value:0width$o}", width = len - 1);
        h[at..at + len - 1].copy_from_slice(s.as_bytes());
    };
    field(100, 8, 0o644);
    field(108, 8, 0);
    field(116, 8, 0);
    if size >= 1 << 33 {
        return Err(Error::internal("tar member too large"));
    }
    field(124, 12, size);
    field(136, 12, u64::try_from(mtime).unwrap_or(0));
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// The output: a tar of every part, streamed into the task's reserved file.
async fn write_tar(
    files: &Files,
    task: &TaskRecord,
    parts: &[(String, Part)],
) -> Result<maximin_core::store::FileRecord, Error> {
    let name = format!("{}.tar", task.id);
    let mut w = files
        .output_writer(&Output {
            account_id: &task.account_id,
            purpose: "t2a_async",
            filename: &name,
            kind: "tar",
            id: task.file_id,
            expires_at: None,
        })
        .await?;
    let mtime = task.created_at.unix_timestamp();
    for (name, part) in parts {
        match part {
            Part::Bytes(b) => {
                w.write(&tar_header(name, b.len() as u64, mtime)?).await?;
                w.write(b).await?;
                w.write(&vec![0u8; padding(b.len() as u64)]).await?;
            }
            Part::Stored(f, head) => {
                if head.len() as u64 > f.bytes {
                    return Err(Error::internal("an audio part is shorter than its head"));
                }
                w.write(&tar_header(name, f.bytes, mtime)?).await?;
                w.write(head).await?;
                let mut r = files.read(f).await?;
                let mut n = 0u64;
                while let Some(c) = r.next().await? {
                    // The stored bytes the head replaces are skipped.
                    let skip = (head.len() as u64).saturating_sub(n).min(c.len() as u64);
                    n += c.len() as u64;
                    w.write(&c[skip as usize..]).await?;
                }
                if n != f.bytes {
                    return Err(Error::internal("an audio part changed size"));
                }
                w.write(&vec![0u8; padding(n)]).await?;
            }
        }
    }
    w.write(&[0u8; 1024]).await?;
    w.finish().await
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

    #[test]
    fn tar_headers_are_valid_ustar() {
        let h = tar_header("speech.mp3", 1234, 1_700_000_000).expect("header");
        assert_eq!(&h[..10], b"speech.mp3");
        assert_eq!(&h[124..135], b"00000002322");
        assert_eq!(&h[257..262], b"ustar");
        let stored = std::str::from_utf8(&h[148..154]).expect("utf8");
        let mut sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        sum = sum - h[148..156].iter().map(|b| u64::from(*b)).sum::<u64>() + 8 * 32;
        assert_eq!(u64::from_str_radix(stored, 8).expect("octal"), sum);
        assert_eq!(padding(1234), 302);
        assert_eq!(padding(1024), 0);
    }
}
