//! Media providers (issue 15): one trait per capability, image, video and
//! music, implemented alike by the local engines (diffusion, frames from the
//! image engine encoded as H.264, the FluidSynth composer), the MiniMax
//! cloud upstream and the sandbox for `mmx_test_` keys. The use-cases
//! (`maximin-media`) check a request, pick a provider through the catalog
//! and the router, and keep what comes back in the file store; a surface
//! only translates shapes.
//!
//! Jobs carry what the caller asked, already checked: sizes in pixels,
//! durations in seconds, images as bytes (a data URL decoded, a public URL
//! fetched) together with the reference as sent, which an upstream may pass
//! on unchanged.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::catalog::ModelSpec;
use crate::providers::speech::AudioOutput;
use crate::Result;

/// An image a caller gave (a first frame, a subject reference): as sent (a
/// URL or a data URL) and its bytes.
#[derive(Clone, Default)]
pub struct ImageInput {
    /// The reference as the caller sent it; an upstream gets it unchanged
    /// when it is a public URL.
    pub source: String,
    /// The image's bytes (PNG, JPEG or WebP).
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for ImageInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the content: a data URL is the image itself.
        f.debug_struct("ImageInput")
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Image file formats the engines write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    pub fn kind(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpeg",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
        }
    }
}

/// What an image provider is asked for.
#[derive(Debug, Clone)]
pub struct ImageJob {
    pub prompt: String,
    /// Pixels; the aspect ratio asked, resolved.
    pub width: u32,
    pub height: u32,
    /// The aspect ratio as asked (`16:9`), for providers that take it.
    pub aspect_ratio: Option<String>,
    /// How many images, 1–9.
    pub n: u32,
    /// The seed of the first image; image `i` uses `seed + i`. Same seed,
    /// same parameters: same image.
    pub seed: u64,
    pub prompt_optimizer: bool,
    /// Image-to-image: the subject reference.
    pub reference: Option<ImageInput>,
    pub format: ImageFormat,
}

/// One image made.
#[derive(Clone)]
pub struct Image {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// The four modes of `/v1/video_generation` and the agent's templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoMode {
    Text,
    FirstFrame,
    FirstLast,
    Subject,
    /// A video agent template (`template_id`) with its inputs.
    Template {
        template_id: String,
        texts: Vec<String>,
    },
}

/// What a video provider is asked for.
#[derive(Debug, Clone)]
pub struct VideoJob {
    pub mode: VideoMode,
    pub prompt: String,
    pub first_frame: Option<ImageInput>,
    pub last_frame: Option<ImageInput>,
    pub subject: Option<ImageInput>,
    /// Seconds.
    pub duration: u32,
    /// As asked (`768P`), and in pixels.
    pub resolution: String,
    pub width: u32,
    pub height: u32,
    pub prompt_optimizer: bool,
    pub seed: u64,
}

/// A video made: an MP4 (H.264).
pub struct Video {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Seconds, as the container says.
    pub duration: f64,
}

/// What a music provider is asked for.
#[derive(Debug, Clone)]
pub struct MusicJob {
    /// Style, mood, scene.
    pub prompt: String,
    /// Lines with section tags (`[Verse]`, `[Chorus]`); none for an
    /// instrumental.
    pub lyrics: Option<String>,
    pub instrumental: bool,
    pub seed: u64,
    pub output: AudioOutput,
}

/// A song made, encoded as asked.
pub struct Music {
    pub bytes: Vec<u8>,
    pub format: String,
    pub duration_ms: u64,
    pub sample_rate: u32,
    pub channels: u16,
    pub bitrate: u32,
}

/// A job's progress and cancellation, shared between the work (often on a
/// thread of its own) and whoever waits for it: the task runner reports the
/// progress in the task, and cancels by dropping the wait.
#[derive(Clone, Default)]
pub struct Work {
    permille: Arc<AtomicU32>,
    cancelled: Arc<AtomicBool>,
}

impl Work {
    pub fn new() -> Self {
        Work::default()
    }

    /// Reports progress, `done` of `total`.
    pub fn progress(&self, done: u64, total: u64) {
        let p = (done.min(total) * 1000).checked_div(total).unwrap_or(0) as u32;
        self.permille.fetch_max(p, Ordering::Relaxed);
    }

    /// Progress so far, 0–100 %.
    pub fn percent(&self) -> u32 {
        self.permille.load(Ordering::Relaxed) / 10
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The flag an engine thread polls between steps.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    /// A guard that cancels the work when dropped (the waiting future went
    /// away), unless disarmed.
    pub fn cancel_on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(Some(self.clone()))
    }
}

/// Cancels its work when dropped.
pub struct CancelOnDrop(Option<Work>);

impl CancelOnDrop {
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.cancel();
        }
    }
}

/// Makes images.
#[async_trait]
pub trait ImageProvider: Send + Sync + 'static {
    /// Makes `job.n` images with `model`; an error refuses the whole job.
    async fn generate(&self, model: &ModelSpec, job: &ImageJob, work: &Work) -> Result<Vec<Image>>;

    /// Whether it can start from a reference image (image-to-image).
    fn takes_reference(&self) -> bool {
        true
    }

    /// Looks again for weights installed since it was built.
    fn refresh(&self) {}
}

/// Makes videos; slow, so always run as a task.
#[async_trait]
pub trait VideoProvider: Send + Sync + 'static {
    async fn generate(&self, model: &ModelSpec, job: &VideoJob, work: &Work) -> Result<Video>;

    fn refresh(&self) {}
}

/// Makes songs.
#[async_trait]
pub trait MusicProvider: Send + Sync + 'static {
    async fn generate(&self, model: &ModelSpec, job: &MusicJob, work: &Work) -> Result<Music>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_grows_and_dropping_the_wait_cancels() {
        let w = Work::new();
        w.progress(3, 4);
        w.progress(1, 4);
        assert_eq!(w.percent(), 75);
        w.progress(9, 4);
        assert_eq!(w.percent(), 100);
        let guard = w.cancel_on_drop();
        assert!(!w.is_cancelled());
        drop(guard);
        assert!(w.is_cancelled());
        let w2 = Work::new();
        w2.cancel_on_drop().disarm();
        assert!(!w2.is_cancelled());
    }

    #[test]
    fn image_inputs_never_print_their_content() {
        let i = ImageInput {
            source: "data:image/png;base64,SECRET".into(),
            bytes: vec![1, 2, 3],
        };
        assert!(!format!("{i:?}").contains("SECRET"));
    }
}
