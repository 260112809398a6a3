//! [`Mp4Encoder`]: RGB frames → H.264 (OpenH264) → one MP4 in memory.

use std::io::Write;

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::formats::{RgbSliceU8, YUVBuffer};
use openh264::{OpenH264API, Timestamp};

use crate::h264::{annex_b_units, nal_type, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS};
use crate::mp4::{write_file, Track};
use crate::{Frame, VideoError};

/// The smallest width or height accepted.
pub const MIN_DIMENSION: u32 = 16;
/// The largest width or height accepted (OpenH264's limit is 3840×2160 or
/// 2160×3840: the shorter side may be at most 2160).
pub const MAX_DIMENSION: u32 = 3840;
const MAX_SHORT_SIDE: u32 = 2160;
/// The highest frame rate accepted.
pub const MAX_FPS: u32 = 120;
const MIN_BITRATE: u32 = 16_000;
const MAX_BITRATE: u32 = 200_000_000;
/// Media time units per frame; the timescale is `fps × TICKS_PER_FRAME`.
const TICKS_PER_FRAME: u32 = 1000;

/// A bitrate for a size and frame rate: 0.1 bit a pixel a frame (1366×768
/// at 25 fps → about 2.6 Mbit/s, 1920×1080 at 25 → about 5.2 Mbit/s).
pub fn suggested_bitrate(width: u32, height: u32, fps: u32) -> u32 {
    let bits = u64::from(width) * u64::from(height) * u64::from(fps.max(1)) / 10;
    bits.clamp(u64::from(MIN_BITRATE), u64::from(MAX_BITRATE)) as u32
}

pub(crate) fn check_size(width: u32, height: u32) -> Result<(), VideoError> {
    let bad = |reason| {
        Err(VideoError::InvalidSize {
            width,
            height,
            reason,
        })
    };
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return bad("width and height must be even (4:2:0 chroma)");
    }
    if width < MIN_DIMENSION || height < MIN_DIMENSION {
        return bad("width and height must be at least 16");
    }
    if width.max(height) > MAX_DIMENSION || width.min(height) > MAX_SHORT_SIDE {
        return bad("at most 3840x2160 (or 2160x3840)");
    }
    Ok(())
}

pub(crate) fn check_fps(fps: u32) -> Result<(), VideoError> {
    if fps == 0 || fps > MAX_FPS {
        return Err(VideoError::InvalidParameter(format!(
            "fps must be 1 to {MAX_FPS}, got {fps}"
        )));
    }
    Ok(())
}

/// H.264 in MP4 from RGB frames, in memory.
///
/// Every pushed frame becomes one sample of `1/fps` seconds (frame skipping
/// is off), so the file lasts exactly `frames / fps`. A key frame (IDR)
/// starts every two seconds, and wherever the encoder sees a scene change.
/// The samples are kept in memory (compressed) until [`finish`](Self::finish)
/// writes the file with its index first (faststart).
pub struct Mp4Encoder {
    width: u32,
    height: u32,
    fps: u32,
    encoder: Encoder,
    yuv: YUVBuffer,
    frames: u64,
    samples: Samples,
}

/// The coded samples of a track, kept until the file is written.
#[derive(Default)]
pub(crate) struct Samples {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    data: Vec<u8>,
    sizes: Vec<u32>,
    durations: Vec<u32>,
    sync: Vec<u32>,
    /// Time of frames the encoder dropped before the first sample.
    pending_ticks: u32,
}

impl Samples {
    /// Appends another encoder's samples (made with the same settings and
    /// starting with a key frame) after these.
    pub(crate) fn append(&mut self, other: Samples) -> Result<(), VideoError> {
        if self.sizes.is_empty() {
            *self = other;
            return Ok(());
        }
        if other.sizes.is_empty() {
            return Ok(());
        }
        if other.sps != self.sps || other.pps != self.pps {
            return Err(VideoError::Encode(
                "parts of the clip were coded with different parameter sets".to_string(),
            ));
        }
        if other.sync.first() != Some(&1) {
            return Err(VideoError::Encode(
                "a part does not start with a key frame".to_string(),
            ));
        }
        let base = self.sizes.len() as u32;
        self.data.extend_from_slice(&other.data);
        self.sizes.extend_from_slice(&other.sizes);
        self.durations.extend_from_slice(&other.durations);
        self.sync.extend(other.sync.iter().map(|s| s + base));
        Ok(())
    }
}

impl std::fmt::Debug for Mp4Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp4Encoder")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("fps", &self.fps)
            .field("frames", &self.frames)
            .field("bytes", &self.samples.data.len())
            .finish()
    }
}

impl Mp4Encoder {
    /// An encoder for `width × height` (both even, 16 to 3840, the shorter
    /// side at most 2160) at `fps` frames a second (1–120), aiming at
    /// `bitrate_bps` bits a second ([`suggested_bitrate`] gives a default).
    pub fn new(width: u32, height: u32, fps: u32, bitrate_bps: u32) -> Result<Self, VideoError> {
        check_size(width, height)?;
        check_fps(fps)?;
        if !(MIN_BITRATE..=MAX_BITRATE).contains(&bitrate_bps) {
            return Err(VideoError::InvalidParameter(format!(
                "bitrate must be {MIN_BITRATE} to {MAX_BITRATE} bit/s, got {bitrate_bps}"
            )));
        }
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .complexity(Complexity::Medium)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .intra_frame_period(IntraFramePeriod::from_num_frames(fps * 2))
            .num_threads(1)
            // OpenH264's RGB→YUV is BT.601 limited range: say so, or players
            // would assume BT.709 for HD sizes and shift the colours.
            .vui(VuiConfig::bt601());
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| VideoError::Encode(e.to_string()))?;
        Ok(Mp4Encoder {
            width,
            height,
            fps,
            encoder,
            yuv: YUVBuffer::new(width as usize, height as usize),
            frames: 0,
            samples: Samples::default(),
        })
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Encodes one frame; it must be the encoder's size.
    pub fn push(&mut self, frame: &Frame) -> Result<(), VideoError> {
        frame.check()?;
        if frame.width != self.width || frame.height != self.height {
            return Err(VideoError::InvalidFrame(format!(
                "frame is {}x{}, the video is {}x{}",
                frame.width, frame.height, self.width, self.height
            )));
        }
        let source = RgbSliceU8::new(&frame.rgb, (self.width as usize, self.height as usize));
        self.yuv.read_rgb8(source);
        let millis = self.frames * 1000 / u64::from(self.fps);
        let stream = self
            .encoder
            .encode_at(&self.yuv, Timestamp::from_millis(millis))
            .map_err(|e| VideoError::Encode(e.to_string()))?;
        let frame_type = stream.frame_type();
        let mut bitstream = Vec::new();
        stream.write_vec(&mut bitstream);
        self.frames += 1;

        let s = &mut self.samples;
        let mut sample = Vec::with_capacity(bitstream.len() + 16);
        let mut idr = false;
        for nal in annex_b_units(&bitstream) {
            match nal_type(nal) {
                NAL_SPS => remember(&mut s.sps, nal, "SPS")?,
                NAL_PPS => remember(&mut s.pps, nal, "PPS")?,
                NAL_AUD => {}
                t => {
                    idr |= t == NAL_IDR;
                    sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    sample.extend_from_slice(nal);
                }
            }
        }
        if sample.is_empty() || frame_type == FrameType::Skip {
            // A frame the encoder dropped: the previous one shows longer.
            match s.durations.last_mut() {
                Some(d) => *d += TICKS_PER_FRAME,
                None => s.pending_ticks += TICKS_PER_FRAME,
            }
            return Ok(());
        }
        if s.sizes.is_empty() && !idr {
            return Err(VideoError::Encode(
                "the first coded frame is not a key frame".to_string(),
            ));
        }
        let size = u32::try_from(sample.len())
            .map_err(|_| VideoError::Encode("a coded frame over 4 GiB".to_string()))?;
        s.data.extend_from_slice(&sample);
        s.sizes.push(size);
        s.durations
            .push(TICKS_PER_FRAME + std::mem::take(&mut s.pending_ticks));
        if idr {
            s.sync.push(s.sizes.len() as u32);
        }
        Ok(())
    }

    /// The samples coded so far (for joining parts coded side by side).
    pub(crate) fn into_samples(self) -> Samples {
        self.samples
    }

    /// The finished MP4 file.
    pub fn finish(self) -> Result<Vec<u8>, VideoError> {
        let (w, h, fps) = (self.width, self.height, self.fps);
        self.samples.into_mp4(w, h, fps)
    }

    /// Writes the finished MP4 file to `out`; returns the bytes written.
    pub fn finish_to<W: Write>(self, out: &mut W) -> Result<u64, VideoError> {
        let (w, h, fps) = (self.width, self.height, self.fps);
        self.samples.write_mp4(w, h, fps, out)
    }
}

impl Samples {
    pub(crate) fn into_mp4(self, width: u32, height: u32, fps: u32) -> Result<Vec<u8>, VideoError> {
        let mut out = Vec::with_capacity(self.data.len() + 4096 + self.sizes.len() * 8);
        self.write_mp4(width, height, fps, &mut out)?;
        Ok(out)
    }

    pub(crate) fn write_mp4<W: Write>(
        self,
        width: u32,
        height: u32,
        fps: u32,
        out: &mut W,
    ) -> Result<u64, VideoError> {
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            return Err(VideoError::NoFrames);
        };
        if self.sizes.is_empty() {
            return Err(VideoError::NoFrames);
        }
        let track = Track {
            width,
            height,
            timescale: fps * TICKS_PER_FRAME,
            durations: &self.durations,
            sizes: &self.sizes,
            sync: &self.sync,
            sps,
            pps,
            data: &self.data,
        };
        Ok(write_file(&track, out)?)
    }
}

/// Encodes a clip of `frames` frames that `draw(i)` makes on demand, in two
/// halves coded side by side on two threads (each half drawing its own
/// frames), joined into one track: about twice as fast as [`Mp4Encoder`] on
/// two cores. The halves split at a key-frame boundary (every two seconds),
/// so the file is laid out as a sequential encoding would be; the split does
/// not depend on the machine, so the same frames give the same bytes
/// everywhere. Clips shorter than four seconds are coded in one piece.
pub fn encode_clip<F>(
    width: u32,
    height: u32,
    fps: u32,
    bitrate_bps: u32,
    frames: u32,
    draw: F,
) -> Result<Vec<u8>, VideoError>
where
    F: Fn(u32) -> Frame + Sync,
{
    // Settings are checked here, before any thread starts.
    let first = Mp4Encoder::new(width, height, fps, bitrate_bps)?;
    if frames == 0 {
        return Err(VideoError::NoFrames);
    }
    let gop = fps * 2;
    let split = if frames >= 2 * gop {
        (frames / 2).div_ceil(gop) * gop
    } else {
        frames
    };
    let code = |mut enc: Mp4Encoder, range: std::ops::Range<u32>| -> Result<Samples, VideoError> {
        for i in range {
            enc.push(&draw(i))?;
        }
        Ok(enc.into_samples())
    };
    let (head, tail) = std::thread::scope(|scope| {
        let tail = if split < frames {
            let second = Mp4Encoder::new(width, height, fps, bitrate_bps)?;
            let code = &code;
            Some(scope.spawn(move || code(second, split..frames)))
        } else {
            None
        };
        let head = code(first, 0..split);
        let tail = match tail {
            Some(handle) => Some(handle.join().map_err(|_| {
                VideoError::Encode("the thread coding the second half panicked".to_string())
            })?),
            None => None,
        };
        Ok::<_, VideoError>((head, tail))
    })?;
    let mut samples = head?;
    if let Some(tail) = tail {
        samples.append(tail?)?;
    }
    samples.into_mp4(width, height, fps)
}

/// Keeps the first parameter set; a different one later would need a second
/// sample description, which this writer does not do.
fn remember(slot: &mut Option<Vec<u8>>, nal: &[u8], what: &str) -> Result<(), VideoError> {
    match slot {
        None => {
            *slot = Some(nal.to_vec());
            Ok(())
        }
        Some(first) if first.as_slice() == nal => Ok(()),
        Some(_) => Err(VideoError::Encode(format!(
            "the encoder changed its {what} mid-stream"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_all;

    fn picture(w: u32, h: u32, t: u32) -> Frame {
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&[
                    (x * 4 + t * 3) as u8,
                    (y * 5) as u8,
                    ((x + y + t) % 64 * 4) as u8,
                ]);
            }
        }
        Frame {
            width: w,
            height: h,
            rgb,
        }
    }

    #[test]
    fn halves_join_into_one_decodable_track() {
        // 10 fps: a key frame every 20 frames; 50 frames split at 40.
        let mp4 = encode_clip(64, 48, 10, 300_000, 50, |i| picture(64, 48, i)).expect("valid");
        let again = encode_clip(64, 48, 10, 300_000, 50, |i| picture(64, 48, i)).expect("valid");
        assert_eq!(mp4, again);
        let info = crate::probe(&mp4).expect("valid");
        assert_eq!((info.frames, info.duration_s), (50, 5.0));
        assert!(info.key_frames >= 3);
        let track = crate::probe::video_track(&mp4).expect("valid");
        assert_eq!(track.sizes.len(), 50);
        let pictures = decode_all(&mp4).expect("valid");
        assert_eq!(pictures.len(), 50);
        assert!(pictures.iter().all(|&d| d == (64, 48)));
    }

    #[test]
    fn sequential_encoding_decodes_whole() {
        let mut enc = Mp4Encoder::new(200, 120, 25, 500_000).expect("valid");
        for t in 0..30 {
            enc.push(&picture(200, 120, t)).expect("valid");
        }
        let mp4 = enc.finish().expect("valid");
        let pictures = decode_all(&mp4).expect("valid");
        assert_eq!(pictures.len(), 30);
        assert!(pictures.iter().all(|&d| d == (200, 120)));
    }
}
