//! Sandbox media for `mmx_test_` keys (DESIGN.md §5): deterministic, valid
//! files made here and fast, never by a model and never upstream, and
//! labelled as sandbox output wherever they are described. The same request
//! gives the same bytes.

use maximin_audio::{AudioSettings, Format, Pcm};
use maximin_core::providers::media::{
    Image, ImageFormat, ImageJob, Music, MusicJob, Video, VideoJob, Work,
};
use maximin_core::{Error, Result};
use sha2::{Digest, Sha256};

/// A 64-bit seed from the parts of a request.
fn seed_of(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// SplitMix64: small, seeded, the same everywhere.
pub(crate) struct Mix(u64);

impl Mix {
    pub(crate) fn new(seed: u64) -> Self {
        Mix(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// RGB8 pixels: a diagonal gradient between two colours with soft discs,
/// all drawn from the seed.
pub fn pattern(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut r = Mix::new(seed);
    let a = [r.unit(), r.unit(), r.unit()];
    let b = [r.unit(), r.unit(), r.unit()];
    let discs: Vec<(f32, f32, f32, [f32; 3])> = (0..5)
        .map(|_| {
            (
                r.unit(),
                r.unit(),
                0.05 + 0.2 * r.unit(),
                [r.unit(), r.unit(), r.unit()],
            )
        })
        .collect();
    let (w, h) = (width as f32, height as f32);
    let mut px = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let (u, v) = (x as f32 / w, y as f32 / h);
            let t = (u + v) / 2.0;
            let mut c = [0f32; 3];
            for i in 0..3 {
                c[i] = a[i] * (1.0 - t) + b[i] * t;
            }
            for (cx, cy, rad, col) in &discs {
                let d = ((u - cx).powi(2) + (v - cy).powi(2)).sqrt();
                let k = (1.0 - d / rad).clamp(0.0, 1.0);
                for i in 0..3 {
                    c[i] = c[i] * (1.0 - k) + col[i] * k;
                }
            }
            px.extend(c.map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8));
        }
    }
    px
}

/// Encodes RGB8 pixels as a PNG.
pub fn png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.add_text_chunk("Software".into(), "maximin sandbox".into())
            .map_err(Error::internal)?;
        let mut w = enc.write_header().map_err(Error::internal)?;
        w.write_image_data(rgb).map_err(Error::internal)?;
    }
    Ok(out)
}

/// The sandbox's images for a job: image `i` from the prompt and `seed + i`.
pub async fn images(job: &ImageJob) -> Result<Vec<Image>> {
    let job = job.clone();
    tokio::task::spawn_blocking(move || {
        (0..job.n)
            .map(|i| {
                let seed = seed_of(&[
                    job.prompt.as_bytes(),
                    &job.seed.wrapping_add(u64::from(i)).to_le_bytes(),
                ]);
                let rgb = pattern(job.width, job.height, seed);
                Ok(Image {
                    bytes: png(job.width, job.height, &rgb)?,
                    format: ImageFormat::Png,
                    width: job.width,
                    height: job.height,
                })
            })
            .collect()
    })
    .await
    .map_err(Error::internal)?
}

/// Seconds of sandbox music: one bar of four beats per lyric line, at
/// least eight seconds.
pub fn music_seconds(job: &MusicJob) -> f32 {
    let lines = job
        .lyrics
        .as_deref()
        .map(|l| {
            l.lines()
                .filter(|l| !l.trim().is_empty() && !l.trim().starts_with('['))
                .count()
        })
        .unwrap_or(0);
    (lines as f32 * 2.0).clamp(8.0, 60.0)
}

/// The sandbox's song: a seeded arpeggio of sine tones, encoded as asked.
pub async fn music(job: &MusicJob) -> Result<Music> {
    let job = job.clone();
    tokio::task::spawn_blocking(move || {
        let rate = job.output.sample_rate;
        let seconds = music_seconds(&job);
        let mut r = Mix::new(seed_of(&[
            job.prompt.as_bytes(),
            job.lyrics.as_deref().unwrap_or("").as_bytes(),
            &job.seed.to_le_bytes(),
        ]));
        let root = 48 + (r.next() % 12) as i32;
        let scale = [0, 2, 4, 7, 9, 12];
        let beat = 0.25f32;
        let n = (seconds * rate as f32) as usize;
        let mut samples = vec![0f32; n];
        let per = (beat * rate as f32) as usize;
        for (k, chunk) in samples.chunks_mut(per).enumerate() {
            let step = scale[(r.next() % scale.len() as u64) as usize];
            let freq = 440.0 * 2f32.powf((root + step + 12 * (k as i32 % 2) - 69) as f32 / 12.0);
            let len = chunk.len() as f32;
            for (i, s) in chunk.iter_mut().enumerate() {
                let t = i as f32 / rate as f32;
                let env = (1.0 - i as f32 / len).powi(2);
                *s = 0.3 * env * (2.0 * std::f32::consts::PI * freq * t).sin();
            }
        }
        let format: Format = job
            .output
            .format
            .parse()
            .map_err(|_| Error::invalid("audio_setting.format", "unknown format"))?;
        let settings = AudioSettings {
            format,
            sample_rate: rate,
            bitrate: job.output.bitrate,
            channels: job.output.channels,
        };
        let bytes = maximin_audio::encode_whole(&settings, &Pcm::new(samples, rate, 1))
            .map_err(Error::internal)?;
        Ok(Music {
            bytes,
            format: job.output.format.clone(),
            duration_ms: (n as u64 * 1000) / u64::from(rate),
            sample_rate: rate,
            channels: job.output.channels,
            bitrate: settings.effective_bitrate(),
        })
    })
    .await
    .map_err(Error::internal)?
}

/// The sandbox's video: a seeded synthetic clip (H.264 MP4) at the asked
/// resolution and duration.
pub async fn video(job: &VideoJob, work: &Work) -> Result<Video> {
    let (w, h, secs) = (job.width, job.height, job.duration);
    let seed = seed_of(&[
        job.prompt.as_bytes(),
        &job.seed.to_le_bytes(),
        job.first_frame
            .as_ref()
            .map(|f| f.bytes.as_slice())
            .unwrap_or_default(),
    ]);
    let work = work.clone();
    tokio::task::spawn_blocking(move || {
        let bytes = maximin_video::sandbox_clip(w, h, secs, crate::video::FPS, seed)
            .map_err(|e| Error::internal(e.to_string()))?;
        work.progress(1, 1);
        let info = maximin_video::probe(&bytes).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Video {
            bytes,
            width: info.width,
            height: info.height,
            duration: info.duration_s,
        })
    })
    .await
    .map_err(Error::internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(seed: u64) -> ImageJob {
        ImageJob {
            prompt: "a lighthouse".into(),
            width: 64,
            height: 48,
            aspect_ratio: None,
            n: 2,
            seed,
            prompt_optimizer: false,
            reference: None,
            format: ImageFormat::Png,
        }
    }

    #[tokio::test]
    async fn sandbox_images_are_valid_pngs_the_same_for_the_same_seed() {
        let a = images(&job(7)).await.expect("made");
        let b = images(&job(7)).await.expect("made");
        let c = images(&job(8)).await.expect("made");
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].bytes, b[0].bytes);
        assert_ne!(a[0].bytes, a[1].bytes);
        assert_ne!(a[0].bytes, c[0].bytes);
        let decoder = png::Decoder::new(std::io::Cursor::new(&a[0].bytes));
        let reader = decoder.read_info().expect("a png");
        assert_eq!((reader.info().width, reader.info().height), (64, 48));
    }
}
