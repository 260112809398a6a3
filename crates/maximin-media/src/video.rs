//! Video generation (spec §6) and the video agent's templates (spec §7) as
//! durable tasks: `create` checks the request (mode, model, duration and
//! resolution, the images' form, the webhook's handshake) and queues it
//! sealed; the [`VideoTasks`] handler reads the images, routes the job to a
//! provider (the sandbox for `mmx_test_` keys), keeps the MP4 as the task's
//! file and tells the webhook of each status.

use std::sync::Arc;

use async_trait::async_trait;
use maximin_core::catalog::ModelSpec;
use maximin_core::files::Output;
use maximin_core::providers::media::{ImageInput, Video, VideoJob, VideoMode, Work};
use maximin_core::routing::Target;
use maximin_core::store::{TaskEnd, TaskRecord, TaskStatus};
use maximin_core::tasks::{TaskHandler, TaskOutput};
use maximin_core::{Caller, Error, Platform, Result};
use maximin_types::Modality;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::image::{media_model, no_provider};
use crate::webhook::Webhooks;
use crate::{fields, inputs, sandbox, MediaConfig};

/// Task kinds.
pub const VIDEO_TASK: &str = "video_generation";
pub const TEMPLATE_TASK: &str = "video_template_generation";

/// The catalog model that runs the templates.
pub const AGENT_MODEL: &str = "video-agent";

/// Frames per second of the videos made here.
pub const FPS: u32 = 24;

/// A video agent template (seed 003's list): its inputs and what it shows.
pub struct Template {
    pub id: &'static str,
    pub name: &'static str,
    /// Whether it needs an image (`media_inputs`) and a text (`text_inputs`).
    pub media: bool,
    pub text: bool,
    /// The scene, with `{text}` for the text input.
    pub scene: &'static str,
    /// Camera moves, as prompt commands.
    pub camera: &'static str,
}

pub const TEMPLATES: [Template; 6] = [
    Template {
        id: "392747428568649728",
        name: "Diving",
        media: true,
        text: false,
        scene: "the subject completes a perfect dive from a high board into a pool",
        camera: "[Pedestal down, Tracking shot]",
    },
    Template {
        id: "393769180141805569",
        name: "Run for Life",
        media: true,
        text: true,
        scene: "the pet runs for its life across the wilderness, chased by a {text}",
        camera: "[Tracking shot, Shake]",
    },
    Template {
        id: "397087679467597833",
        name: "Transformers",
        media: true,
        text: false,
        scene: "the car transforms into a giant mecha robot",
        camera: "[Pull out, Tilt up]",
    },
    Template {
        id: "393881433990066176",
        name: "Still rings routine",
        media: true,
        text: false,
        scene: "the subject performs a perfect still rings routine in a gymnastics arena",
        camera: "[Push in, Static shot]",
    },
    Template {
        id: "393498001241890824",
        name: "Weightlifting",
        media: true,
        text: false,
        scene: "the pet performs a perfect weightlifting move on a competition stage",
        camera: "[Push in]",
    },
    Template {
        id: "393488336655310850",
        name: "Climbing",
        media: true,
        text: false,
        scene: "the subject completes a perfect sport climbing route up a wall",
        camera: "[Pedestal up, Tilt up]",
    },
];

/// Pixels of a resolution name (16:9 frames, even sizes).
pub fn resolution_size(resolution: &str) -> Option<(u32, u32)> {
    match resolution {
        "512P" => Some((912, 512)),
        "720P" => Some((1280, 720)),
        "768P" => Some((1366, 768)),
        "1080P" => Some((1920, 1080)),
        _ => None,
    }
}

/// The resolutions and durations a model takes (spec §6.1's matrix), and
/// its default resolution.
fn matrix(model: &str, mode: &VideoMode) -> (&'static str, Vec<(&'static str, &'static [u32])>) {
    const SIX: &[u32] = &[6];
    const SIX_TEN: &[u32] = &[6, 10];
    match model {
        "MiniMax-Hailuo-2.3" | "MiniMax-Hailuo-2.3-Fast" => {
            ("768P", vec![("768P", SIX_TEN), ("1080P", SIX)])
        }
        "MiniMax-Hailuo-02" => {
            let mut m = vec![("768P", SIX_TEN), ("1080P", SIX)];
            if *mode == VideoMode::FirstFrame {
                m.insert(0, ("512P", SIX_TEN));
            }
            ("768P", m)
        }
        "T2V-01" | "T2V-01-Director" | "I2V-01" | "I2V-01-Director" | "I2V-01-live" | "S2V-01" => {
            ("720P", vec![("720P", SIX)])
        }
        _ => (
            "768P",
            vec![
                ("512P", SIX_TEN),
                ("720P", SIX_TEN),
                ("768P", SIX_TEN),
                ("1080P", SIX),
            ],
        ),
    }
}

/// What a task keeps, sealed, until it ends.
#[derive(Serialize, Deserialize)]
struct Params {
    /// The catalog model.
    model: String,
    sandbox: bool,
    callback_url: Option<String>,
    mode: Mode,
    prompt: String,
    first_frame: Option<String>,
    last_frame: Option<String>,
    subject: Option<String>,
    duration: u32,
    resolution: String,
    prompt_optimizer: bool,
    seed: u64,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Mode {
    Text,
    FirstFrame,
    FirstLast,
    Subject,
    Template {
        template_id: String,
        texts: Vec<String>,
    },
}

impl From<&Mode> for VideoMode {
    fn from(m: &Mode) -> Self {
        match m {
            Mode::Text => VideoMode::Text,
            Mode::FirstFrame => VideoMode::FirstFrame,
            Mode::FirstLast => VideoMode::FirstLast,
            Mode::Subject => VideoMode::Subject,
            Mode::Template { template_id, texts } => VideoMode::Template {
                template_id: template_id.clone(),
                texts: texts.clone(),
            },
        }
    }
}

fn image_field<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>> {
    let v = fields::opt_str(body, field)?.filter(|s| !s.is_empty());
    if let Some(s) = v {
        inputs::check_reference(s, field)?;
    }
    Ok(v)
}

fn subject_of(body: &Value) -> Result<Option<String>> {
    match body.get("subject_reference") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if !items.is_empty() => {
            let field = "subject_reference[0].image";
            let image = items[0]
                .get("image")
                .and_then(|v| match v {
                    Value::Array(a) => a.first().and_then(Value::as_str),
                    Value::String(s) => Some(s.as_str()),
                    _ => None,
                })
                .ok_or_else(|| {
                    Error::invalid(
                        field,
                        "'subject_reference' needs [{\"type\": \"character\", \"image\": [URL]}].",
                    )
                })?;
            inputs::check_reference(image, field)?;
            Ok(Some(image.to_owned()))
        }
        Some(_) => Err(Error::invalid(
            "subject_reference",
            "'subject_reference' must be [{\"type\": \"character\", \"image\": [URL]}].",
        )),
    }
}

fn capability(mode: &Mode) -> &'static str {
    match mode {
        Mode::Text => "text-to-video",
        Mode::FirstFrame => "image-to-video",
        Mode::FirstLast => "first-last-frame",
        Mode::Subject => "subject-reference",
        Mode::Template { .. } => "video-templates",
    }
}

/// A task queued.
pub struct Created {
    pub task: TaskRecord,
    pub model: String,
    /// The video's length, metered when the task is accepted.
    pub media_ms: u64,
}

/// Checks a `/v1/video_generation` body and queues its task.
pub async fn create(
    p: &Platform,
    hooks: &Webhooks,
    caller: &Caller,
    body: &Value,
) -> Result<Created> {
    let model_name = fields::required_str(body, "model")?;
    let spec = media_model(p, caller, model_name, Modality::Video)?;
    let prompt = fields::opt_str(body, "prompt")?.unwrap_or("").to_owned();
    if prompt.chars().count() > 2000 {
        return Err(Error::invalid(
            "prompt",
            "'prompt' must be at most 2000 characters.",
        ));
    }
    let first = image_field(body, "first_frame_image")?;
    let last = image_field(body, "last_frame_image")?;
    let subject = subject_of(body)?;
    let mode =
        match (first, last, &subject) {
            (_, _, Some(_)) if first.is_some() || last.is_some() => return Err(Error::invalid(
                "subject_reference",
                "'subject_reference' does not go with 'first_frame_image' or 'last_frame_image'.",
            )),
            (_, _, Some(_)) => Mode::Subject,
            (Some(_), Some(_), None) => Mode::FirstLast,
            (None, Some(_), None) => {
                return Err(Error::invalid(
                    "first_frame_image",
                    "'last_frame_image' needs 'first_frame_image' too.",
                ))
            }
            (Some(_), None, None) => Mode::FirstFrame,
            (None, None, None) => Mode::Text,
        };
    if mode == Mode::Text && prompt.trim().is_empty() {
        return Err(Error::invalid(
            "prompt",
            "'prompt' is required for text-to-video.",
        ));
    }
    let cap = capability(&mode);
    if !spec.capabilities.iter().any(|c| c == cap) {
        let takes: Vec<&str> = p
            .catalog
            .models()
            .iter()
            .filter(|m| m.modality == Modality::Video && m.capabilities.iter().any(|c| c == cap))
            .map(|m| m.id.as_str())
            .collect();
        return Err(Error::invalid(
            "model",
            format!(
                "'{}' does not do {cap}; models that do: {}.",
                spec.id,
                takes.join(", ")
            ),
        ));
    }
    let (default_res, allowed) = matrix(&spec.id, &(&mode).into());
    let resolution = fields::opt_str(body, "resolution")?
        .unwrap_or(default_res)
        .to_uppercase();
    let duration = fields::opt_u64(body, "duration")?.unwrap_or(6);
    let Some((_, durations)) = allowed.iter().find(|(r, _)| *r == resolution) else {
        let all: Vec<&str> = allowed.iter().map(|(r, _)| *r).collect();
        return Err(Error::invalid(
            "resolution",
            format!(
                "'{}' does not take resolution '{resolution}' here; it takes {}.",
                spec.id,
                all.join(", ")
            ),
        ));
    };
    if !durations.contains(&(duration as u32)) {
        let all: Vec<String> = durations.iter().map(|d| format!("{d}s")).collect();
        return Err(Error::invalid(
            "duration",
            format!(
                "'{}' at {resolution} does not support duration {duration}s, supported: {}.",
                spec.id,
                all.join(", ")
            ),
        ));
    }
    let params = Params {
        model: spec.id.clone(),
        sandbox: caller.key.test,
        callback_url: callback(body)?,
        mode,
        prompt,
        first_frame: first.map(str::to_owned),
        last_frame: last.map(str::to_owned),
        subject,
        duration: duration as u32,
        resolution,
        prompt_optimizer: fields::opt_bool(body, "prompt_optimizer")?.unwrap_or(true),
        seed: fields::opt_u64(body, "seed")?.unwrap_or_else(|| rand::random::<u32>().into()),
    };
    queue(p, hooks, caller, VIDEO_TASK, &params).await
}

fn callback(body: &Value) -> Result<Option<String>> {
    Ok(fields::opt_str(body, "callback_url")?
        .filter(|s| !s.is_empty())
        .map(str::to_owned))
}

/// Checks a `/v1/video_template_generation` body and queues its task.
pub async fn create_template(
    p: &Platform,
    hooks: &Webhooks,
    caller: &Caller,
    body: &Value,
) -> Result<Created> {
    let template_id = match body.get("template_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => {
            return Err(Error::invalid("template_id", "'template_id' is required."))
        }
        Some(_) => {
            return Err(Error::invalid(
                "template_id",
                "'template_id' must be a string.",
            ))
        }
    };
    let template = TEMPLATES
        .iter()
        .find(|t| t.id == template_id)
        .ok_or_else(|| {
            let all: Vec<String> = TEMPLATES
                .iter()
                .map(|t| format!("{} ({})", t.id, t.name))
                .collect();
            Error::invalid(
                "template_id",
                format!(
                    "No template '{template_id}'; the templates are {}.",
                    all.join(", ")
                ),
            )
        })?;
    let values = |field: &str| -> Result<Vec<String>> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    item.get("value")
                        .and_then(Value::as_str)
                        .filter(|s| !s.trim().is_empty())
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            Error::invalid(
                                &format!("{field}[{i}].value"),
                                format!(
                                    "'{field}' items are {{\"value\": …}} with a non-empty string."
                                ),
                            )
                        })
                })
                .collect(),
            Some(_) => Err(Error::invalid(
                field,
                format!("'{field}' must be an array of {{\"value\": …}}."),
            )),
        }
    };
    let media = values("media_inputs")?;
    let texts = values("text_inputs")?;
    if template.media && media.is_empty() {
        return Err(Error::invalid(
            "media_inputs",
            format!(
                "Template '{}' ({}) needs an image in 'media_inputs': [{{\"value\": URL}}].",
                template.name, template.id
            ),
        ));
    }
    if template.text && texts.is_empty() {
        return Err(Error::invalid(
            "text_inputs",
            format!(
                "Template '{}' ({}) needs a text in 'text_inputs': [{{\"value\": …}}].",
                template.name, template.id
            ),
        ));
    }
    if !template.text && !texts.is_empty() {
        return Err(Error::invalid(
            "text_inputs",
            format!("Template '{}' takes no 'text_inputs'.", template.name),
        ));
    }
    if let Some(m) = media.first() {
        inputs::check_reference(m, "media_inputs[0].value")?;
    }
    let spec = media_model(p, caller, AGENT_MODEL, Modality::Video)?;
    let text = texts.first().cloned().unwrap_or_default();
    let prompt = format!(
        "{} {}",
        template.scene.replace("{text}", &text),
        template.camera
    );
    let params = Params {
        model: spec.id.clone(),
        sandbox: caller.key.test,
        callback_url: callback(body)?,
        mode: Mode::Template {
            template_id: template.id.to_owned(),
            texts,
        },
        prompt,
        first_frame: media.first().cloned(),
        last_frame: None,
        subject: None,
        duration: 6,
        resolution: "768P".into(),
        prompt_optimizer: false,
        seed: rand::random::<u32>().into(),
    };
    queue(p, hooks, caller, TEMPLATE_TASK, &params).await
}

async fn queue(
    p: &Platform,
    hooks: &Webhooks,
    caller: &Caller,
    kind: &str,
    params: &Params,
) -> Result<Created> {
    if let Some(spec) = p.catalog.resolve(&params.model) {
        // Charged at submission, for the seconds asked for.
        let estimate = maximin_core::billing::Quantities {
            media_ms: u64::from(params.duration) * 1000,
            ..Default::default()
        };
        p.reserve(caller, spec, estimate).await?;
    }
    if let Some(url) = &params.callback_url {
        hooks.verify(url).await?;
    }
    let bytes = serde_json::to_vec(params).map_err(Error::internal)?;
    let task = p
        .tasks
        .create(&caller.account.id, &caller.key.id, kind, &bytes)
        .await?;
    Ok(Created {
        task,
        model: params.model.clone(),
        media_ms: u64::from(params.duration) * 1000,
    })
}

/// The native query's status for a task (spec §6.2, §7.2).
pub fn status_word(kind: &str, status: TaskStatus) -> &'static str {
    match (status, kind) {
        (TaskStatus::Queued, TEMPLATE_TASK) => "Preparing",
        (TaskStatus::Queued, _) => "Queueing",
        (TaskStatus::Processing, _) => "Processing",
        (TaskStatus::Success, _) => "Success",
        (TaskStatus::Failed, _) => "Fail",
    }
}

/// The handler of both video task kinds.
pub struct VideoTasks {
    pub platform: Arc<Platform>,
    pub hooks: Arc<Webhooks>,
    pub config: MediaConfig,
}

impl VideoTasks {
    async fn job(&self, params: &Params) -> Result<VideoJob> {
        let allow = self.config.allow_private_urls;
        let read = |s: &Option<String>, field: &'static str| {
            let s = s.clone();
            async move {
                match s {
                    Some(s) => inputs::read(&s, field, allow).await.map(Some),
                    None => Ok::<Option<ImageInput>, Error>(None),
                }
            }
        };
        let first_field = match params.mode {
            Mode::Template { .. } => "media_inputs[0].value",
            _ => "first_frame_image",
        };
        let (width, height) = resolution_size(&params.resolution)
            .ok_or_else(|| Error::invalid("resolution", "unknown resolution"))?;
        Ok(VideoJob {
            mode: (&params.mode).into(),
            prompt: params.prompt.clone(),
            first_frame: read(&params.first_frame, first_field).await?,
            last_frame: read(&params.last_frame, "last_frame_image").await?,
            subject: read(&params.subject, "subject_reference[0].image").await?,
            duration: params.duration,
            resolution: params.resolution.clone(),
            width,
            height,
            prompt_optimizer: params.prompt_optimizer,
            seed: params.seed,
        })
    }

    async fn make(
        &self,
        task: &TaskRecord,
        params: &Params,
        work: &Work,
    ) -> Result<(Video, String)> {
        let p = &self.platform;
        let job = self.job(params).await?;
        if params.sandbox {
            let video = sandbox::video(&job, work).await?;
            return Ok((video, "sandbox".into()));
        }
        let spec: &ModelSpec = p
            .catalog
            .resolve(&params.model)
            .ok_or_else(|| Error::internal("the task's model left the catalog"))?;
        // The caller as it was: the task was accepted under its key.
        let account = p
            .store
            .account(&task.account_id)
            .await?
            .ok_or_else(|| Error::internal("the task's account is gone"))?;
        let key = p
            .store
            .key(&task.key_id)
            .await?
            .ok_or_else(|| Error::internal("the task's key is gone"))?;
        let policy = p.policy(&Caller::new(account, key));
        let job = &job;
        let (video, lease) = p
            .router
            .route(
                &p.catalog,
                spec,
                &policy,
                |target: Arc<Target>| async move {
                    let provider = p
                        .engines
                        .video
                        .get(&target.provider)
                        .ok_or_else(|| no_provider(&target, "video"))?;
                    provider.generate(&target.spec, job, work).await
                },
            )
            .await?;
        Ok((video, lease.target().label.clone()))
    }

    async fn notify(&self, task: &TaskRecord, params: &[u8], status: &str, extra: Value) {
        let Ok(params) = serde_json::from_slice::<Params>(params) else {
            return;
        };
        let Some(url) = params.callback_url else {
            return;
        };
        let mut body = json!({
            "task_id": task.id.to_string(),
            "status": status,
            "base_resp": {"status_code": 0, "status_msg": "success"},
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        self.hooks.deliver(&task.account_id, &url, body).await;
    }
}

#[async_trait]
impl TaskHandler for VideoTasks {
    async fn run(&self, task: &TaskRecord, params: Vec<u8>, work: &Work) -> Result<TaskOutput> {
        let params: Params = serde_json::from_slice(&params).map_err(Error::internal)?;
        let (video, deployment) = self.make(task, &params, work).await?;
        let file = self
            .platform
            .files
            .write_output(
                &Output {
                    account_id: &task.account_id,
                    purpose: "video_generation",
                    filename: "output_aigc.mp4",
                    kind: "mp4",
                    id: task.file_id,
                    expires_at: None,
                },
                &video.bytes,
            )
            .await?;
        Ok(TaskOutput {
            result: json!({
                "video_width": video.width,
                "video_height": video.height,
                "duration": video.duration,
                "model": params.model,
                "deployment": deployment,
                "sandbox": params.sandbox,
            }),
            file: Some(file),
        })
    }

    async fn started(&self, task: &TaskRecord, params: &[u8]) {
        // Once per status: a later attempt (after a runner died) is still
        // the same `processing`.
        if task.attempts <= 1 {
            self.notify(task, params, "processing", json!({})).await;
        }
    }

    async fn ended(&self, task: &TaskRecord, params: &[u8], end: &TaskEnd) {
        match end.status {
            TaskStatus::Success => {
                let r: Value = end
                    .result
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok())
                    .unwrap_or_default();
                let mut extra = json!({
                    "file_id": task.file_id.map(|f| f.to_string()).unwrap_or_default(),
                    "video_width": r["video_width"],
                    "video_height": r["video_height"],
                });
                if task.kind == TEMPLATE_TASK {
                    extra = json!({});
                }
                self.notify(task, params, "success", extra).await;
            }
            _ => {
                let mut body = json!({});
                body["base_resp"] = json!({
                    "status_code": 1000,
                    "status_msg": end.error_message.clone().unwrap_or_default(),
                });
                self.notify(task, params, "failed", body).await;
            }
        }
    }
}
