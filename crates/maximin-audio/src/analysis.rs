//! Voice analysis for cloning uploads: a pitch track and the statistics a voice
//! profile is made from (pitch, range, speaking rate, level).

use crate::pcm::rms_dbfs;
use crate::resample::Resampler;
use crate::Pcm;

/// Pitch frames are this far apart.
pub const HOP_SECS: f32 = 0.010;
/// Lowest and highest fundamental searched for.
pub const F0_MIN_HZ: f32 = 50.0;
pub const F0_MAX_HZ: f32 = 1000.0;

/// Audio above this rate is analysed at it (pitch needs no more).
const ANALYSIS_RATE: u32 = 16000;
/// YIN integration window.
const WINDOW_SECS: f32 = 0.025;
/// YIN: a lag is periodic when its cumulative-mean-normalised difference falls
/// below this (0 = perfectly periodic, about 1 = noise).
const YIN_THRESHOLD: f32 = 0.15;
/// Frames quieter than this, or this far below the loudest frame, are silence.
const SILENCE_DBFS: f32 = -55.0;
const SILENCE_BELOW_MAX_DB: f32 = 40.0;
/// A syllable is an energy peak with a dip of at least this much before the next.
const SYLLABLE_DIP_DB: f32 = 3.0;
/// Syllable nuclei closer than this are one syllable.
const SYLLABLE_MIN_GAP_SECS: f32 = 0.08;
/// Pauses longer than this do not count towards speaking time.
const PAUSE_SECS: f32 = 0.3;

/// Fundamental frequency every [`HOP_SECS`] (frame `i` centred on `i × 10 ms`),
/// `None` where the frame is silent or not periodic (unvoiced).
///
/// YIN (de Cheveigné & Kawahara 2002): the cumulative-mean-normalised
/// difference function over a 25 ms window, the first lag under the threshold
/// (then its local minimum) between 1 and 20 ms, refined by parabolic
/// interpolation. Multi-channel audio is mixed to mono; audio above 16 kHz is
/// resampled to 16 kHz first.
pub fn pitch_track(pcm: &Pcm) -> Vec<Option<f32>> {
    let (signal, rate) = analysis_signal(pcm);
    pitch_track_mono(&signal, rate)
}

fn analysis_signal(pcm: &Pcm) -> (Vec<f32>, u32) {
    let mono = pcm.to_mono();
    if mono.sample_rate > ANALYSIS_RATE {
        let resampled = Resampler::new(mono.sample_rate, ANALYSIS_RATE).process_all(&mono.samples);
        (resampled, ANALYSIS_RATE)
    } else {
        (mono.samples, mono.sample_rate)
    }
}

fn pitch_track_mono(x: &[f32], rate: u32) -> Vec<Option<f32>> {
    if rate == 0 || x.is_empty() {
        return Vec::new();
    }
    let sr = rate as f32;
    let hop = ((sr * HOP_SECS).round() as usize).max(1);
    let window = ((sr * WINDOW_SECS).round() as usize).max(2);
    let tau_min = ((sr / F0_MAX_HZ).floor() as usize).max(2);
    let tau_max = (sr / F0_MIN_HZ).ceil() as usize;
    let span = window + tau_max + 1;
    let frames = x.len().div_ceil(hop);

    // Each frame's segment starts span/2 before its centre; zeros outside.
    let pad = span / 2;
    let mut padded = vec![0.0f32; pad];
    padded.extend_from_slice(x);
    padded.resize(padded.len() + span, 0.0);

    let levels: Vec<f32> = (0..frames)
        .map(|i| rms_dbfs(&padded[i * hop..i * hop + window + tau_max]))
        .collect();
    let loudest = levels.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let floor = SILENCE_DBFS.max(loudest - SILENCE_BELOW_MAX_DB);

    let mut diff = vec![0.0f32; tau_max + 2];
    (0..frames)
        .map(|i| {
            if levels[i] < floor {
                return None;
            }
            let seg = &padded[i * hop..i * hop + span];
            yin(seg, window, tau_min, tau_max, &mut diff).map(|tau| sr / tau)
        })
        .collect()
}

/// The period in samples (fractional) of `seg`, or `None` when aperiodic.
fn yin(seg: &[f32], window: usize, tau_min: usize, tau_max: usize, d: &mut [f32]) -> Option<f32> {
    let head = &seg[..window];
    let energy0: f32 = head.iter().map(|v| v * v).sum();
    let mut energy_tau: f32 = seg[1..=window].iter().map(|v| v * v).sum();
    d[0] = 0.0;
    for tau in 1..=tau_max + 1 {
        if tau > 1 {
            let out = seg[tau - 1];
            let inn = seg[tau + window - 1];
            energy_tau += inn * inn - out * out;
        }
        let cross: f32 = head
            .iter()
            .zip(&seg[tau..tau + window])
            .map(|(a, b)| a * b)
            .sum();
        d[tau] = (energy0 + energy_tau - 2.0 * cross).max(0.0);
    }
    // Cumulative mean normalisation, in place.
    let mut running = 0.0f32;
    for (tau, value) in d.iter_mut().enumerate().take(tau_max + 2).skip(1) {
        running += *value;
        *value = if running > 0.0 {
            *value * tau as f32 / running
        } else {
            1.0
        };
    }
    let mut tau = tau_min;
    while tau <= tau_max {
        if d[tau] < YIN_THRESHOLD {
            while tau < tau_max && d[tau + 1] < d[tau] {
                tau += 1;
            }
            let (a, b, c) = (d[tau - 1], d[tau], d[tau + 1]);
            let denom = a - 2.0 * b + c;
            let shift = if denom.abs() > 1e-12 {
                (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
            } else {
                0.0
            };
            return Some(tau as f32 + shift);
        }
        tau += 1;
    }
    None
}

/// The numbers a voice profile is made from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiceStats {
    /// Median fundamental over voiced frames (`None`: nothing voiced).
    pub f0_median_hz: Option<f32>,
    /// 10th and 90th percentiles of the fundamental: the voice's usual range.
    pub f0_p10_hz: Option<f32>,
    pub f0_p90_hz: Option<f32>,
    /// Voiced frames over non-silent frames (0 when all is silent).
    pub voiced_ratio: f32,
    /// Syllable nuclei (energy-envelope peaks with a dip between them) per
    /// second of speaking time: non-silent time plus pauses under 0.3 s.
    pub syllable_rate_per_s: f32,
    /// RMS level of the whole clip, dBFS.
    pub rms_dbfs: f32,
    pub duration_secs: f32,
}

/// Pitch, range, voicing, speaking rate and level of a clip.
pub fn voice_stats(pcm: &Pcm) -> VoiceStats {
    let (signal, rate) = analysis_signal(pcm);
    let track = pitch_track_mono(&signal, rate);
    let envelope = energy_envelope(&signal, rate);
    let active = active_frames(&envelope);

    let mut voiced: Vec<f32> = track.iter().flatten().copied().collect();
    voiced.sort_by(f32::total_cmp);
    let active_count = active.iter().filter(|a| **a).count();
    let voiced_in_active = track
        .iter()
        .zip(&active)
        .filter(|(f0, a)| f0.is_some() && **a)
        .count();
    let voiced_ratio = if active_count == 0 {
        0.0
    } else {
        voiced_in_active as f32 / active_count as f32
    };

    let syllables = count_syllables(&envelope, &active);
    let speaking_secs = speaking_frames(&active) as f32 * HOP_SECS;
    let syllable_rate_per_s = if speaking_secs > 0.0 {
        syllables as f32 / speaking_secs
    } else {
        0.0
    };

    VoiceStats {
        f0_median_hz: percentile(&voiced, 0.5),
        f0_p10_hz: percentile(&voiced, 0.1),
        f0_p90_hz: percentile(&voiced, 0.9),
        voiced_ratio,
        syllable_rate_per_s,
        rms_dbfs: pcm.rms_dbfs(),
        duration_secs: pcm.duration_secs() as f32,
    }
}

/// Linear-interpolated percentile of sorted values.
fn percentile(sorted: &[f32], q: f32) -> Option<f32> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f32;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let t = pos - lo as f32;
    Some(sorted[lo] * (1.0 - t) + sorted[hi] * t)
}

/// Level in dB every 10 ms over 30 ms windows, smoothed over 50 ms.
fn energy_envelope(x: &[f32], rate: u32) -> Vec<f32> {
    let sr = rate as f32;
    let hop = ((sr * HOP_SECS).round() as usize).max(1);
    let half = ((sr * 0.015).round() as usize).max(1);
    let frames = x.len().div_ceil(hop);
    let raw: Vec<f32> = (0..frames)
        .map(|i| {
            let centre = i * hop;
            let lo = centre.saturating_sub(half);
            let hi = (centre + half).min(x.len());
            rms_dbfs(&x[lo..hi]).max(-120.0)
        })
        .collect();
    let k = 2; // ±2 frames
    (0..raw.len())
        .map(|i| {
            let lo = i.saturating_sub(k);
            let hi = (i + k + 1).min(raw.len());
            raw[lo..hi].iter().sum::<f32>() / (hi - lo) as f32
        })
        .collect()
}

fn active_frames(envelope: &[f32]) -> Vec<bool> {
    let loudest = envelope.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let floor = SILENCE_DBFS.max(loudest - SILENCE_BELOW_MAX_DB);
    envelope.iter().map(|&e| e >= floor).collect()
}

/// Active frames plus the silent gaps between them shorter than a pause.
fn speaking_frames(active: &[bool]) -> usize {
    let max_gap = (PAUSE_SECS / HOP_SECS).round() as usize;
    let mut total = 0;
    let mut gap = 0;
    let mut seen_active = false;
    for &a in active {
        if a {
            if seen_active && gap <= max_gap {
                total += gap;
            }
            total += 1;
            gap = 0;
            seen_active = true;
        } else {
            gap += 1;
        }
    }
    total
}

/// Envelope peaks in active frames, merged unless a dip of
/// [`SYLLABLE_DIP_DB`] below the lower of two neighbours separates them.
fn count_syllables(envelope: &[f32], active: &[bool]) -> usize {
    let min_gap = (SYLLABLE_MIN_GAP_SECS / HOP_SECS).round() as usize;
    let mut peaks: Vec<usize> = Vec::new();
    for i in 1..envelope.len().saturating_sub(1) {
        let is_max = envelope[i] > envelope[i - 1] && envelope[i] >= envelope[i + 1];
        if !is_max || !active[i] {
            continue;
        }
        let Some(&last) = peaks.last() else {
            peaks.push(i);
            continue;
        };
        let dip = envelope[last..=i]
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min);
        let lower = envelope[last].min(envelope[i]);
        let separated = lower - dip >= SYLLABLE_DIP_DB || active[last..=i].iter().any(|a| !a);
        if separated && i - last >= min_gap {
            peaks.push(i);
        } else if envelope[i] > envelope[last] {
            // Same syllable: keep its higher point.
            if let Some(p) = peaks.last_mut() {
                *p = i;
            }
        }
    }
    peaks.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::PI;

    fn sine(freq: f32, rate: u32, secs: f32) -> Pcm {
        let n = (rate as f32 * secs) as usize;
        Pcm::mono(
            (0..n)
                .map(|i| 0.5 * (2.0 * PI * freq * i as f32 / rate as f32).sin())
                .collect(),
            rate,
        )
    }

    /// Harmonics of `f0` shaped by two formants (roughly /a/ at 700 and 1200 Hz).
    fn vowel(f0: f32, rate: u32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        let nyquist = rate as f32 / 2.0;
        let harmonics: Vec<(f32, f32)> = (1..)
            .map(|k| k as f32 * f0)
            .take_while(|f| *f < nyquist * 0.9)
            .map(|f| {
                let formant =
                    |centre: f32, width: f32| 1.0 / (1.0 + ((f - centre) / width).powi(2));
                (
                    f,
                    0.3 + formant(700.0, 150.0) + 0.7 * formant(1200.0, 200.0),
                )
            })
            .collect();
        let norm: f32 = harmonics.iter().map(|(_, a)| a).sum();
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                0.8 * harmonics
                    .iter()
                    .map(|(f, a)| a * (2.0 * PI * f * t).sin())
                    .sum::<f32>()
                    / norm
            })
            .collect()
    }

    fn noise(n: usize) -> Vec<f32> {
        // xorshift: deterministic white noise in [-0.5, 0.5).
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn assert_near(track: &[Option<f32>], expected: f32, what: &str) {
        let voiced: Vec<f32> = track.iter().flatten().copied().collect();
        assert!(
            voiced.len() as f32 >= 0.9 * track.len() as f32,
            "{what}: only {} of {} frames voiced",
            voiced.len(),
            track.len()
        );
        let within = voiced
            .iter()
            .filter(|f| (*f - expected).abs() <= 0.02 * expected)
            .count();
        assert!(
            within as f32 >= 0.95 * voiced.len() as f32,
            "{what}: {within} of {} voiced frames within 2% of {expected} Hz ({:?})",
            voiced.len(),
            &voiced[..voiced.len().min(10)]
        );
    }

    #[test]
    fn sine_pitch_is_found_within_two_percent() {
        for rate in [8000, 16000, 22050, 44100] {
            let track = pitch_track(&sine(220.0, rate, 1.5));
            assert_eq!(track.len(), 150, "one frame per 10 ms at {rate} Hz");
            assert_near(&track, 220.0, &format!("sine at {rate} Hz"));
        }
        assert_near(&pitch_track(&sine(110.0, 16000, 1.0)), 110.0, "110 Hz sine");
    }

    #[test]
    fn harmonic_vowel_pitch_is_the_fundamental() {
        for rate in [16000, 24000] {
            let track = pitch_track(&Pcm::mono(vowel(220.0, rate, 1.5), rate));
            assert_near(&track, 220.0, &format!("vowel at {rate} Hz"));
        }
        // A missing-octave trap: low fundamental with strong upper harmonics.
        let track = pitch_track(&Pcm::mono(vowel(110.0, 16000, 1.0), 16000));
        assert_near(&track, 110.0, "110 Hz vowel");
    }

    #[test]
    fn white_noise_and_silence_are_unvoiced() {
        let track = pitch_track(&Pcm::mono(noise(16000), 16000));
        let voiced = track.iter().filter(|f| f.is_some()).count();
        assert!(
            voiced * 20 < track.len(),
            "{voiced} of {} noise frames voiced",
            track.len()
        );

        let silent = pitch_track(&Pcm::mono(vec![0.0; 8000], 16000));
        assert!(silent.iter().all(Option::is_none));
    }

    #[test]
    fn voice_stats_of_a_syllabic_vowel() {
        // 3 s of a 180 Hz vowel, amplitude-modulated into 4 syllables a second,
        // with 0.5 s of silence on each side (pauses do not count).
        let rate = 16000;
        let body = vowel(180.0, rate, 3.0);
        let mut samples = vec![0.0; rate as usize / 2];
        for (i, s) in body.iter().enumerate() {
            let t = i as f32 / rate as f32;
            let envelope = (PI * 4.0 * t).sin().powi(2);
            samples.push(s * envelope);
        }
        samples.extend(vec![0.0; rate as usize / 2]);
        let stats = voice_stats(&Pcm::mono(samples, rate));
        let median = stats.f0_median_hz.unwrap_or(0.0);
        assert!((median - 180.0).abs() < 3.6, "median {median}");
        let (p10, p90) = (
            stats.f0_p10_hz.unwrap_or(0.0),
            stats.f0_p90_hz.unwrap_or(0.0),
        );
        assert!(
            p10 <= median && median <= p90 && p90 - p10 < 10.0,
            "{p10}..{p90}"
        );
        assert!(
            (3.4..=4.6).contains(&stats.syllable_rate_per_s),
            "syllable rate {}",
            stats.syllable_rate_per_s
        );
        assert!(
            stats.voiced_ratio > 0.7,
            "voiced ratio {}",
            stats.voiced_ratio
        );
        assert!((stats.duration_secs - 4.0).abs() < 0.01);
        assert!(
            stats.rms_dbfs < -6.0 && stats.rms_dbfs > -30.0,
            "{}",
            stats.rms_dbfs
        );
    }

    #[test]
    fn voice_stats_of_noise_and_silence() {
        let stats = voice_stats(&Pcm::mono(noise(32000), 16000));
        assert!(stats.voiced_ratio < 0.05, "{}", stats.voiced_ratio);
        let silent = voice_stats(&Pcm::mono(vec![0.0; 16000], 16000));
        assert_eq!(silent.f0_median_hz, None);
        assert_eq!(silent.voiced_ratio, 0.0);
        assert_eq!(silent.syllable_rate_per_s, 0.0);
    }
}
