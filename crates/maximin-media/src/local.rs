//! The local media engines behind the core's provider traits (feature
//! `diffusion`): Stable Diffusion on candle for images
//! (`maximin-engine-diffusion`, weights the operator brings under
//! `DATA_DIR/models/ID/`), and video drawn with the same weights: key frames
//! (from the prompt, or the given first/last frames), motion between them
//! and the prompt's camera moves, encoded as H.264 MP4 (`maximin-video`).
//!
//! Inference runs on the blocking pool, one generation at a time per
//! engine (a bounded queue: more waiting than `QUEUE` is refused), reports
//! its steps as progress and stops between steps when cancelled.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use maximin_core::catalog::ModelSpec;
use maximin_core::providers::media::{
    Image, ImageFormat, ImageJob, ImageProvider, Video, VideoJob, VideoMode, VideoProvider, Work,
};
use maximin_core::{Error, Result};
use maximin_engine_diffusion::{DiffusionError, DiffusionModel, ImageRequest, RgbImage};
use maximin_types::ErrorCode;
use maximin_video::Frame;
use tokio::sync::Semaphore;

/// The image engine's catalog name.
pub const IMAGE_ENGINE: &str = "diffusion";
/// The video engine's catalog name.
pub const VIDEO_ENGINE: &str = "diffusion-video";
/// Generations waiting beyond the one running.
const QUEUE: usize = 8;
/// Video frames per second, and the bitrate per pixel per frame.
const FPS: u32 = crate::video::FPS;
/// Key frames are drawn at most this large on their long side, then scaled.
const KEY_SIDE: u32 = 512;

fn engine_error(e: DiffusionError) -> Error {
    match e {
        DiffusionError::InvalidRequest(m) => Error::invalid("prompt", m),
        DiffusionError::Image(m) => Error::invalid("image", format!("The image cannot be read: {m}")),
        DiffusionError::Cancelled => Error::internal("the generation was cancelled"),
        DiffusionError::MissingFile(p) => Error::new(
            ErrorCode::ModelUnavailable,
            format!(
                "The image model's files are incomplete: {} is missing. Pull the model again with `maximin models pull ID --from PATH_OR_URL`.",
                p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
            ),
        ),
        other => Error::internal(other.to_string()),
    }
}

/// Stable Diffusion models, loaded on first use and kept.
pub struct LocalImages {
    models_dir: PathBuf,
    threads: usize,
    loaded: Mutex<HashMap<String, Arc<DiffusionModel>>>,
    /// One generation at a time; the permits are the queue.
    running: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
}

impl LocalImages {
    pub fn new(models_dir: PathBuf, threads: usize) -> Self {
        LocalImages {
            models_dir,
            threads,
            loaded: Mutex::default(),
            running: Arc::new(Semaphore::new(1)),
            waiting: Arc::new(Semaphore::new(QUEUE + 1)),
        }
    }

    async fn model(&self, spec: &ModelSpec) -> Result<Arc<DiffusionModel>> {
        if let Some(m) = self.loaded.lock().map_err(Error::internal)?.get(&spec.id) {
            return Ok(m.clone());
        }
        let dir = self.models_dir.join(&spec.id);
        let threads = self.threads;
        let model = tokio::task::spawn_blocking(move || DiffusionModel::load(&dir, threads))
            .await
            .map_err(Error::internal)?
            .map_err(engine_error)?;
        tracing::info!(model = %spec.id, "{}", model.description());
        let model = Arc::new(model);
        self.loaded
            .lock()
            .map_err(Error::internal)?
            .insert(spec.id.clone(), model.clone());
        Ok(model)
    }

    /// Runs `f` with the model on the blocking pool, in the queue.
    async fn run<T, F>(&self, spec: &ModelSpec, work: &Work, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&DiffusionModel, &Work) -> Result<T> + Send + 'static,
    {
        let _waiting = self.waiting.clone().try_acquire_owned().map_err(|_| {
            Error::new(
                ErrorCode::RateLimitExceeded,
                "The local image engine's queue is full; try again shortly.",
            )
            .with("reason", "engine_queue_full")
        })?;
        let _running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(Error::internal)?;
        let model = self.model(spec).await?;
        let work = work.clone();
        tokio::task::spawn_blocking(move || f(&model, &work))
            .await
            .map_err(Error::internal)?
    }
}

fn to_frame(i: RgbImage) -> Frame {
    Frame {
        width: i.width,
        height: i.height,
        rgb: i.pixels,
    }
}

/// One image: text-to-image, or image-to-image from `init`.
fn draw(
    model: &DiffusionModel,
    work: &Work,
    prompt: &str,
    (width, height): (u32, u32),
    seed: u64,
    init: Option<(RgbImage, f32)>,
    (done, total): (u64, u64),
) -> Result<RgbImage> {
    let mut req = ImageRequest::new(prompt, width, height, seed);
    if let Some((image, strength)) = init {
        req.init_image = Some(image);
        req.strength = strength;
    }
    let flag = work.cancel_flag();
    let mut progress = |step: u32, steps: u32| {
        work.progress(
            done * u64::from(steps) + u64::from(step),
            total * u64::from(steps.max(1)),
        );
    };
    model
        .generate(&req, &mut progress, &flag)
        .map_err(engine_error)
}

#[async_trait]
impl ImageProvider for LocalImages {
    async fn generate(&self, model: &ModelSpec, job: &ImageJob, work: &Work) -> Result<Vec<Image>> {
        let job = job.clone();
        let reference = match &job.reference {
            Some(r) => Some(
                maximin_engine_diffusion::decode_image(&r.bytes).map_err(|e| {
                    Error::invalid("subject_reference[0].image_file", e.to_string())
                })?,
            ),
            None => None,
        };
        self.run(model, work, move |m, work| {
            let mut out = Vec::new();
            let multiple = m.size_multiple().max(1);
            if !job.width.is_multiple_of(multiple) || !job.height.is_multiple_of(multiple) {
                return Err(Error::invalid(
                    "width",
                    format!("This model draws sizes in multiples of {multiple}."),
                ));
            }
            for i in 0..job.n {
                let init = reference.clone().map(|r| (r, 0.6));
                let img = draw(
                    m,
                    work,
                    &job.prompt,
                    (job.width, job.height),
                    job.seed.wrapping_add(u64::from(i)),
                    init,
                    (u64::from(i), u64::from(job.n)),
                )?;
                let bytes = match job.format {
                    ImageFormat::Png => maximin_engine_diffusion::encode_png(&img),
                    ImageFormat::Jpeg => maximin_engine_diffusion::encode_jpeg(&img, 90),
                };
                out.push(Image {
                    bytes,
                    format: job.format,
                    width: img.width,
                    height: img.height,
                });
            }
            Ok(out)
        })
        .await
    }
}

/// Video from the image engine's weights.
pub struct LocalVideo {
    images: Arc<LocalImages>,
}

impl LocalVideo {
    pub fn new(images: Arc<LocalImages>) -> Self {
        LocalVideo { images }
    }
}

/// The key frames' drawing size: the output's aspect, the long side at
/// most [`KEY_SIDE`], multiples of `m`.
fn key_size(width: u32, height: u32, m: u32) -> (u32, u32) {
    let scale = f64::from(KEY_SIDE) / f64::from(width.max(height));
    let fit = |v: u32| {
        let s = (f64::from(v) * scale.min(1.0) / f64::from(m))
            .round()
            .max(1.0) as u32;
        s * m
    };
    (fit(width), fit(height))
}

#[async_trait]
impl VideoProvider for LocalVideo {
    async fn generate(&self, model: &ModelSpec, job: &VideoJob, work: &Work) -> Result<Video> {
        let decode = |i: &Option<maximin_core::providers::media::ImageInput>, field: &str| {
            i.as_ref()
                .map(|i| {
                    maximin_engine_diffusion::decode_image(&i.bytes)
                        .map_err(|e| Error::invalid(field, e.to_string()))
                })
                .transpose()
        };
        let first_field = match job.mode {
            VideoMode::Template { .. } => "media_inputs[0].value",
            _ => "first_frame_image",
        };
        let first = decode(&job.first_frame, first_field)?;
        let last = decode(&job.last_frame, "last_frame_image")?;
        let subject = decode(&job.subject, "subject_reference[0].image")?;
        let job = job.clone();
        self.images
            .run(model, work, move |m, work| {
                let (w, h) = (job.width, job.height);
                let key = key_size(w, h, m.size_multiple().max(1));
                let prompt = job.prompt.as_str();
                // Key frames: given ones are kept; the rest are drawn (from
                // the subject, or moving on from the first).
                let first = match (first, subject) {
                    (Some(f), _) => f,
                    (None, Some(s)) => {
                        draw(m, work, prompt, key, job.seed, Some((s, 0.7)), (0, 3))?
                    }
                    (None, None) => draw(m, work, prompt, key, job.seed, None, (0, 3))?,
                };
                let last = match last {
                    Some(l) => l,
                    None => draw(
                        m,
                        work,
                        prompt,
                        key,
                        job.seed.wrapping_add(1),
                        Some((first.clone(), 0.45)),
                        (1, 3),
                    )?,
                };
                let first = maximin_video::resize(&to_frame(first), w, h);
                let last = maximin_video::resize(&to_frame(last), w, h);
                let groups = maximin_video::camera_groups(prompt);
                let frames = job.duration * FPS;
                let motion =
                    maximin_video::Motion::new(&first, Some(&last), frames, &groups, job.seed);
                // About 0.1 bit per pixel per frame.
                let bitrate = ((u64::from(w) * u64::from(h) * u64::from(FPS)) / 10)
                    .clamp(200_000, 20_000_000) as u32;
                let bytes = maximin_video::render_clip(&motion, FPS, bitrate)
                    .map_err(|e| Error::internal(e.to_string()))?;
                work.progress(1, 1);
                let info =
                    maximin_video::probe(&bytes).map_err(|e| Error::internal(e.to_string()))?;
                Ok(Video {
                    bytes,
                    width: info.width,
                    height: info.height,
                    duration: info.duration_s,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_frames_keep_the_aspect_within_the_drawing_size() {
        assert_eq!(key_size(1366, 768, 8), (512, 288));
        assert_eq!(key_size(1920, 1080, 8), (512, 288));
        assert_eq!(key_size(720, 1280, 8), (288, 512));
        assert_eq!(key_size(64, 48, 8), (64, 48));
    }
}
