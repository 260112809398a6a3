//! In-process video for maximin: H.264 in MP4 from RGB frames, and motion
//! between key frames. No external programs, and video content never touches
//! the disk: everything is encoded to memory or to a writer the caller gives.
//!
//! - [`Frame`]: an RGB8 picture (row-major, 3 bytes a pixel).
//! - [`Mp4Encoder`]: frames in, one MP4 file out ([`Mp4Encoder::finish`] to a
//!   `Vec<u8>`, [`Mp4Encoder::finish_to`] to any `std::io::Write`). H.264
//!   (Constrained Baseline) through Cisco's OpenH264, built from the `openh264`
//!   crate's bundled source; the container is written here: `ftyp`, then `moov`
//!   (faststart: the index before the data), then `mdat`. Any even size up to
//!   3840×2160 is accepted: sizes that are not a multiple of 16 are coded in
//!   whole macroblocks and cropped by the SPS, so the container and every
//!   decoder report exactly the requested size. The duration is exactly
//!   `frames / fps` (the timescale is `fps × 1000`).
//! - [`probe`]: reads an MP4's first video track back (size, duration, frame
//!   rate, frame count, codec), checking the H.264 SPS agrees with the
//!   container; [`decode_first_frame`] decodes its first picture (checks and
//!   tests).
//! - [`Camera`], [`camera_commands`], [`camera_groups`]: MiniMax's bracketed
//!   camera commands (`[Pan left]`, `[Push in, Zoom out]`) read from a prompt.
//! - [`motion`], [`motion_grouped`], [`Motion`]: the frames between key frames:
//!   an eased cross-dissolve from the first key frame to the last, seen through
//!   a virtual camera that pans, trucks, tilts, zooms and shakes by cropping and
//!   scaling (bilinear), so the output size never changes. [`Motion::frame`]
//!   renders one frame at a time, so a long clip need not sit in memory whole;
//!   [`render_clip`] streams them into the encoder on a second thread.
//! - [`resize`]: cover-crop resize (keeps the aspect, crops the excess).
//! - [`sandbox_clip`]: a deterministic, obviously synthetic clip for sandbox
//!   keys (a moving colour gradient with a geometric, text-free pattern).
//!
//! The camera is a 2-D approximation: a pan and a truck both slide the framing
//! (no parallax), a push-in and a zoom both narrow it. Moves never reveal
//! anything outside the key frame: the framing path is fitted inside the
//! picture before the first frame is drawn (so a clip that pans or zooms out
//! starts slightly zoomed in).
//!
//! ```
//! use maximin_video::{camera_groups, probe, render_clip, resize, Frame, Motion};
//!
//! # fn main() -> Result<(), maximin_video::VideoError> {
//! // Key frames from the image engine, brought to the video's size.
//! let first = resize(&Frame::filled(64, 64, [200, 40, 40]), 96, 64);
//! let last = resize(&Frame::filled(64, 64, [40, 40, 200]), 96, 64);
//! let groups = camera_groups("a red sky turns blue [Push in] then [Pan left, Shake]");
//! let motion = Motion::new(&first, Some(&last), 24, &groups, 7);
//! let mp4 = render_clip(&motion, 24, 500_000)?; // one second
//! let info = probe(&mp4)?;
//! assert_eq!((info.width, info.height, info.frames), (96, 64, 24));
//! assert_eq!(info.duration_s, 1.0);
//! # Ok(())
//! # }
//! ```

mod camera;
mod decode;
mod encode;
mod h264;
mod motion;
mod mp4;
mod probe;
mod sample;
mod sandbox;

pub use camera::{camera_commands, camera_groups, Camera};
pub use decode::decode_first_frame;
pub use encode::{
    encode_clip, suggested_bitrate, Mp4Encoder, MAX_DIMENSION, MAX_FPS, MIN_DIMENSION,
};
pub use motion::{motion, motion_grouped, render_clip, Motion};
pub use probe::{probe, VideoInfo};
pub use sample::resize;
pub use sandbox::sandbox_clip;

/// One RGB8 picture: `width × height` pixels, row-major, 3 bytes a pixel
/// (`rgb.len() == width * height * 3`).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Frame {
    /// A frame of one colour.
    pub fn filled(width: u32, height: u32, rgb: [u8; 3]) -> Frame {
        let pixels = width as usize * height as usize;
        let mut data = Vec::with_capacity(pixels * 3);
        for _ in 0..pixels {
            data.extend_from_slice(&rgb);
        }
        Frame {
            width,
            height,
            rgb: data,
        }
    }

    /// The byte length the size asks for.
    pub fn expected_len(&self) -> usize {
        self.width as usize * self.height as usize * 3
    }

    /// Whether the buffer holds exactly `width × height` RGB pixels (and the
    /// frame is not empty).
    pub fn check(&self) -> Result<(), VideoError> {
        if self.width == 0 || self.height == 0 {
            return Err(VideoError::InvalidFrame(format!(
                "frame is empty ({}x{})",
                self.width, self.height
            )));
        }
        if self.rgb.len() != self.expected_len() {
            return Err(VideoError::InvalidFrame(format!(
                "a {}x{} RGB frame needs {} bytes, got {}",
                self.width,
                self.height,
                self.expected_len(),
                self.rgb.len()
            )));
        }
        Ok(())
    }

    /// Mean absolute difference per channel value (0–255) between two
    /// frames of the same size; `None` when the sizes differ.
    pub fn mean_abs_diff(&self, other: &Frame) -> Option<f64> {
        if self.width != other.width
            || self.height != other.height
            || self.rgb.len() != other.rgb.len()
            || self.rgb.is_empty()
        {
            return None;
        }
        let sum: u64 = self
            .rgb
            .iter()
            .zip(&other.rgb)
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        Some(sum as f64 / self.rgb.len() as f64)
    }
}

impl std::fmt::Debug for Frame {
    // Never the pixels: a frame is content.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &self.rgb.len())
            .finish()
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// A requested size the encoder cannot make (odd, too small, too large).
    #[error("invalid video size {width}x{height}: {reason}")]
    InvalidSize {
        width: u32,
        height: u32,
        reason: &'static str,
    },
    /// A frame rate, bitrate or other parameter outside what is supported.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A frame whose size or buffer does not fit.
    #[error("invalid frame: {0}")]
    InvalidFrame(String),
    /// `finish` before any frame was pushed.
    #[error("no frames were pushed")]
    NoFrames,
    /// The H.264 encoder failed.
    #[error("H.264 encoder: {0}")]
    Encode(String),
    /// The H.264 decoder failed.
    #[error("H.264 decoder: {0}")]
    Decode(String),
    /// Bytes that are not an MP4 this crate can read.
    #[error("invalid MP4: {0}")]
    Container(String),
    /// The caller's writer failed.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
}
