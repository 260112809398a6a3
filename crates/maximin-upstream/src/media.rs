//! The MiniMax cloud's media API as providers (spec §6–§9): images
//! (`/v1/image_generation`, asked as base64 so nothing is left on the
//! cloud's CDN to fetch), video and the video agent (created, polled with
//! growing pauses, the file fetched from its download URL), music
//! (`/v1/music_generation`, hex). What comes back is bytes: the media
//! service keeps them in maximin's own file store, sealed, so callers
//! never need the cloud's URLs.
//!
//! Download URLs are fetched with a client that carries no key: they point
//! at the cloud's storage, not its API.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use maximin_core::catalog::ModelSpec;
use maximin_core::providers::media::{
    Image, ImageFormat, ImageInput, ImageJob, ImageProvider, Music, MusicJob, MusicProvider, Video,
    VideoJob, VideoMode, VideoProvider, Work,
};
use maximin_core::{Error, Result};
use maximin_types::ErrorCode;
use serde_json::{json, Value};

use crate::Client;

/// Largest video fetched from a download URL.
const MAX_VIDEO: usize = 512 << 20;
/// How long a cloud video may take before the task gives up.
const VIDEO_DEADLINE: Duration = Duration::from_secs(3600);

/// MiniMax's media endpoints behind one upstream.
pub struct MiniMaxMedia {
    client: Arc<Client>,
    /// For download URLs: no key, no redirects to elsewhere than asked.
    plain: reqwest::Client,
    /// The first pause between polls (then doubled up to 30 s).
    first_poll: Duration,
}

impl MiniMaxMedia {
    pub fn new(client: Arc<Client>) -> Self {
        let first_poll = std::env::var("MAXIMIN_MEDIA_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(2));
        MiniMaxMedia {
            client,
            plain: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()
                .unwrap_or_default(),
            first_poll,
        }
    }

    /// POSTs and reads a native answer: a `base_resp` error becomes ours.
    async fn call(&self, path: &str, body: &Value) -> Result<Value> {
        let res = self.client.post(path, body).await?;
        let v: Value = res.json().await.map_err(|e| self.client.transport(e))?;
        self.checked(v)
    }

    async fn get(&self, path_and_query: &str) -> Result<Value> {
        let url = self.client.wire_url(path_and_query)?;
        let res = self
            .client
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.client.transport(e))?;
        let status = res.status().as_u16();
        if !(200..300).contains(&status) {
            let text = res.text().await.unwrap_or_default();
            return Err(self
                .client
                .status_error(status, None, &crate::provider_message(&text)));
        }
        let v: Value = res.json().await.map_err(|e| self.client.transport(e))?;
        self.checked(v)
    }

    fn checked(&self, v: Value) -> Result<Value> {
        let code = v["base_resp"]["status_code"].as_i64().unwrap_or(0);
        if code != 0 {
            let msg = v["base_resp"]["status_msg"].as_str().unwrap_or("");
            return Err(self.client.base_resp_error(code, msg));
        }
        Ok(v)
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>> {
        let failed = |why: &str| {
            Error::new(
                ErrorCode::UpstreamError,
                format!(
                    "The upstream '{}' made the video, but fetching it failed: {why}.",
                    self.client.name
                ),
            )
            .with("upstream", self.client.name.as_str())
            .with("reason", "download")
        };
        let mut res = self
            .plain
            .get(url)
            .send()
            .await
            .map_err(|_| failed("the download URL did not answer"))?;
        if !res.status().is_success() {
            return Err(failed(&format!("HTTP {}", res.status())));
        }
        let mut out = Vec::new();
        while let Some(c) = res
            .chunk()
            .await
            .map_err(|_| failed("the transfer broke"))?
        {
            if out.len() + c.len() > MAX_VIDEO {
                return Err(failed("it is larger than 512 MB"));
            }
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    /// Polls a task's query until it ends; returns the last answer.
    async fn poll(&self, path: &str, task_id: &str, work: &Work) -> Result<Value> {
        let started = tokio::time::Instant::now();
        let mut pause = self.first_poll;
        let mut polls = 0u64;
        loop {
            if work.is_cancelled() {
                return Err(Error::internal("the task was cancelled"));
            }
            tokio::time::sleep(pause).await;
            polls += 1;
            let v = self.get(&format!("{path}?task_id={task_id}")).await?;
            match v["status"].as_str().unwrap_or("") {
                "Success" => return Ok(v),
                "Fail" | "Failed" | "Unknown" => {
                    return Err(Error::new(
                        ErrorCode::UpstreamError,
                        format!(
                            "The upstream '{}' could not make the video.",
                            self.client.name
                        ),
                    )
                    .with("upstream", self.client.name.as_str())
                    .with("reason", "task_failed"))
                }
                _ => {}
            }
            // No progress figure from the cloud: a curve that nears 90 %.
            work.progress(polls.min(18) * 5, 100);
            if started.elapsed() > VIDEO_DEADLINE {
                return Err(Error::new(
                    ErrorCode::UpstreamError,
                    format!(
                        "The upstream '{}' did not finish the video within an hour.",
                        self.client.name
                    ),
                )
                .with("reason", "timeout"));
            }
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    }
}

/// An image as the cloud takes it: its public URL as sent, else a data URL.
fn image_ref(i: &ImageInput) -> String {
    if i.source.starts_with("http://") || i.source.starts_with("https://") {
        return i.source.clone();
    }
    let mime = if i.bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else if i.bytes.starts_with(b"RIFF") {
        "image/webp"
    } else {
        "image/jpeg"
    };
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&i.bytes)
    )
}

fn model_name(spec: &ModelSpec) -> &str {
    spec.upstream_model.as_deref().unwrap_or(&spec.id)
}

/// The body of `/v1/image_generation` for a job.
pub fn image_body(model: &str, job: &ImageJob) -> Value {
    let mut b = json!({
        "model": model,
        "prompt": job.prompt,
        "n": job.n,
        "seed": job.seed,
        "response_format": "base64",
        "prompt_optimizer": job.prompt_optimizer,
    });
    match &job.aspect_ratio {
        Some(a) => b["aspect_ratio"] = json!(a),
        None => {
            b["width"] = json!(job.width);
            b["height"] = json!(job.height);
        }
    }
    if let Some(r) = &job.reference {
        b["subject_reference"] = json!([{"type": "character", "image_file": image_ref(r)}]);
    }
    b
}

/// The body of `/v1/video_generation` or `/v1/video_template_generation`.
pub fn video_body(model: &str, job: &VideoJob) -> (&'static str, Value) {
    if let VideoMode::Template { template_id, texts } = &job.mode {
        let mut b = json!({"template_id": template_id});
        if let Some(f) = &job.first_frame {
            b["media_inputs"] = json!([{"value": image_ref(f)}]);
        }
        if !texts.is_empty() {
            b["text_inputs"] = Value::Array(texts.iter().map(|t| json!({"value": t})).collect());
        }
        return ("/v1/video_template_generation", b);
    }
    let mut b = json!({
        "model": model,
        "prompt": job.prompt,
        "prompt_optimizer": job.prompt_optimizer,
        "duration": job.duration,
        "resolution": job.resolution,
    });
    if let Some(f) = &job.first_frame {
        b["first_frame_image"] = json!(image_ref(f));
    }
    if let Some(f) = &job.last_frame {
        b["last_frame_image"] = json!(image_ref(f));
    }
    if let Some(s) = &job.subject {
        b["subject_reference"] = json!([{"type": "character", "image": [image_ref(s)]}]);
    }
    ("/v1/video_generation", b)
}

#[async_trait]
impl ImageProvider for MiniMaxMedia {
    async fn generate(
        &self,
        model: &ModelSpec,
        job: &ImageJob,
        _work: &Work,
    ) -> Result<Vec<Image>> {
        let v = self
            .call("/v1/image_generation", &image_body(model_name(model), job))
            .await?;
        let list = v["data"]["image_base64"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::with_capacity(list.len());
        for item in list {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(item.as_str().unwrap_or(""))
                .map_err(|_| {
                    Error::new(
                        ErrorCode::UpstreamError,
                        format!(
                            "The upstream '{}' sent an image that does not decode.",
                            self.client.name
                        ),
                    )
                })?;
            let format = if bytes.starts_with(b"\x89PNG") {
                ImageFormat::Png
            } else {
                ImageFormat::Jpeg
            };
            out.push(Image {
                bytes,
                format,
                width: job.width,
                height: job.height,
            });
        }
        if out.is_empty() {
            return Err(Error::new(
                ErrorCode::UpstreamError,
                format!(
                    "The upstream '{}' made no image (moderation, or an empty answer).",
                    self.client.name
                ),
            ));
        }
        Ok(out)
    }
}

#[async_trait]
impl VideoProvider for MiniMaxMedia {
    async fn generate(&self, model: &ModelSpec, job: &VideoJob, work: &Work) -> Result<Video> {
        let (path, body) = video_body(model_name(model), job);
        let created = self.call(path, &body).await?;
        let task_id = match &created["task_id"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(Error::new(
                    ErrorCode::UpstreamError,
                    format!("The upstream '{}' gave no task_id.", self.client.name),
                ))
            }
        };
        let template = matches!(job.mode, VideoMode::Template { .. });
        let query = if template {
            "/v1/query/video_template_generation"
        } else {
            "/v1/query/video_generation"
        };
        let done = self.poll(query, &task_id, work).await?;
        let url = if template {
            done["video_url"].as_str().unwrap_or("").to_owned()
        } else {
            let file_id = match &done["file_id"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            let f = self
                .get(&format!("/v1/files/retrieve?file_id={file_id}"))
                .await?;
            f["file"]["download_url"].as_str().unwrap_or("").to_owned()
        };
        let bytes = self.download(&url).await?;
        work.progress(1, 1);
        let width = done["video_width"].as_u64().map_or(job.width, |w| w as u32);
        let height = done["video_height"]
            .as_u64()
            .map_or(job.height, |h| h as u32);
        Ok(Video {
            bytes,
            width,
            height,
            duration: f64::from(job.duration),
        })
    }
}

#[async_trait]
impl MusicProvider for MiniMaxMedia {
    async fn generate(&self, model: &ModelSpec, job: &MusicJob, _work: &Work) -> Result<Music> {
        let mut body = json!({
            "model": model_name(model),
            "prompt": job.prompt,
            "output_format": "hex",
            "audio_setting": {
                "sample_rate": job.output.sample_rate,
                "bitrate": job.output.bitrate,
                "format": job.output.format,
            },
        });
        match &job.lyrics {
            Some(l) => body["lyrics"] = json!(l),
            None => body["is_instrumental"] = json!(true),
        }
        let v = self.call("/v1/music_generation", &body).await?;
        let bytes = hex::decode(v["data"]["audio"].as_str().unwrap_or("")).map_err(|_| {
            Error::new(
                ErrorCode::UpstreamError,
                format!(
                    "The upstream '{}' sent audio that is not hex.",
                    self.client.name
                ),
            )
        })?;
        let info = &v["extra_info"];
        Ok(Music {
            format: job.output.format.clone(),
            duration_ms: info["music_duration"].as_u64().unwrap_or(0),
            sample_rate: info["music_sample_rate"]
                .as_u64()
                .map_or(job.output.sample_rate, |r| r as u32),
            channels: info["music_channel"].as_u64().map_or(2, |c| c as u16),
            bitrate: info["bitrate"]
                .as_u64()
                .map_or(job.output.bitrate, |b| b as u32),
            bytes,
        })
    }
}
