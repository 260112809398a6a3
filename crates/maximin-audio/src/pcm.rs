//! Decoded audio in memory.

use std::time::Duration;

use crate::resample::Resampler;

/// Interleaved `f32` samples, nominally in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    pub channels: u16,
}

impl Pcm {
    pub fn new(samples: Vec<f32>, sample_rate: u32, channels: u16) -> Self {
        Pcm {
            samples,
            sample_rate,
            channels,
        }
    }

    /// One channel.
    pub fn mono(samples: Vec<f32>, sample_rate: u32) -> Self {
        Pcm::new(samples, sample_rate, 1)
    }

    /// Samples per channel.
    pub fn frames(&self) -> usize {
        if self.channels == 0 {
            0
        } else {
            self.samples.len() / usize::from(self.channels)
        }
    }

    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.frames() as f64 / f64::from(self.sample_rate)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs())
    }

    /// The average of the channels (a copy when already mono).
    pub fn to_mono(&self) -> Pcm {
        let channels = usize::from(self.channels.max(1));
        if channels == 1 {
            return self.clone();
        }
        let samples = self
            .samples
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect();
        Pcm::mono(samples, self.sample_rate)
    }

    /// One channel's samples.
    pub fn channel(&self, index: usize) -> Vec<f32> {
        let channels = usize::from(self.channels.max(1));
        self.samples
            .iter()
            .skip(index)
            .step_by(channels)
            .copied()
            .collect()
    }

    /// The same audio at `to_rate` Hz, band-limited (windowed sinc, see
    /// [`crate::resample`]); each channel on its own. Output length is
    /// `ceil(frames · to_rate / sample_rate)`.
    pub fn resample(&self, to_rate: u32) -> Pcm {
        if to_rate == self.sample_rate || self.sample_rate == 0 {
            return Pcm::new(self.samples.clone(), to_rate, self.channels);
        }
        let channels = usize::from(self.channels.max(1));
        let per_channel: Vec<Vec<f32>> = (0..channels)
            .map(|c| Resampler::new(self.sample_rate, to_rate).process_all(&self.channel(c)))
            .collect();
        let frames = per_channel.first().map_or(0, Vec::len);
        let mut samples = Vec::with_capacity(frames * channels);
        for i in 0..frames {
            for channel in &per_channel {
                samples.push(channel[i]);
            }
        }
        Pcm::new(samples, to_rate, self.channels)
    }

    /// Multiplies every sample by `factor`, clipping to [-1, 1]. Returns how many
    /// samples were clipped.
    pub fn gain(&mut self, factor: f32) -> usize {
        let mut clipped = 0;
        for s in &mut self.samples {
            let v = *s * factor;
            if v.abs() > 1.0 {
                clipped += 1;
            }
            *s = v.clamp(-1.0, 1.0);
        }
        clipped
    }

    /// Root-mean-square level in dB relative to full scale (a full-scale sine is
    /// −3.01 dBFS). Silence and empty audio give `f32::NEG_INFINITY`.
    pub fn rms_dbfs(&self) -> f32 {
        rms_dbfs(&self.samples)
    }

    /// Largest absolute sample.
    pub fn peak(&self) -> f32 {
        self.samples.iter().fold(0.0f32, |m, s| m.max(s.abs()))
    }

    /// Samples as signed 16-bit (clipped to [-1, 1], scaled by 32767, rounded).
    pub fn to_i16(&self) -> Vec<i16> {
        self.samples.iter().map(|&s| f32_to_i16(s)).collect()
    }
}

/// RMS level of samples in dBFS (`NEG_INFINITY` for silence).
pub(crate) fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    let mean_square = samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64;
    if mean_square <= 0.0 {
        return f32::NEG_INFINITY;
    }
    (10.0 * mean_square.log10()) as f32
}

pub(crate) fn f32_to_i16(s: f32) -> i16 {
    let s = if s.is_nan() { 0.0 } else { s.clamp(-1.0, 1.0) };
    (s * 32767.0).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_and_mono_mix() {
        let stereo = Pcm::new(vec![0.5, -0.5, 1.0, 0.0, 0.2, 0.2], 3, 2);
        assert_eq!(stereo.frames(), 3);
        assert!((stereo.duration_secs() - 1.0).abs() < 1e-9);
        let mono = stereo.to_mono();
        assert_eq!(mono.channels, 1);
        assert_eq!(mono.samples, vec![0.0, 0.5, 0.2]);
        assert_eq!(stereo.channel(1), vec![-0.5, 0.0, 0.2]);
    }

    #[test]
    fn gain_clips_and_levels_are_measured() {
        let mut pcm = Pcm::mono(vec![0.5, -0.25, 0.9], 8000);
        let clipped = pcm.gain(2.0);
        assert_eq!(clipped, 1);
        assert_eq!(pcm.samples, vec![1.0, -0.5, 1.0]);
        assert_eq!(pcm.peak(), 1.0);

        let n = 8000;
        let sine = Pcm::mono(
            (0..n)
                .map(|i| (2.0 * std::f32::consts::PI * 100.0 * i as f32 / n as f32).sin())
                .collect(),
            n as u32,
        );
        assert!(
            (sine.rms_dbfs() + 3.0103).abs() < 0.01,
            "{}",
            sine.rms_dbfs()
        );
        assert_eq!(Pcm::mono(vec![0.0; 10], 8000).rms_dbfs(), f32::NEG_INFINITY);
    }

    #[test]
    fn stereo_resampling_keeps_channels_apart() {
        let rate = 16000;
        let frames = 1600;
        let mut samples = Vec::new();
        for i in 0..frames {
            let t = i as f32 / rate as f32;
            samples.push(0.5 * (2.0 * std::f32::consts::PI * 300.0 * t).sin());
            samples.push(0.0);
        }
        let out = Pcm::new(samples, rate, 2).resample(24000);
        assert_eq!(out.channels, 2);
        assert_eq!(out.frames(), 2400);
        assert!(rms_dbfs(&out.channel(0)) > -10.0);
        assert_eq!(rms_dbfs(&out.channel(1)), f32::NEG_INFINITY);
    }
}
