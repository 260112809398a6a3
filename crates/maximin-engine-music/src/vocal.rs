//! The sung line from spoken words: each word the speech engine says is
//! trimmed, its pitch tracked (YIN, `maximin_audio::analysis`), cut into its
//! syllables at the energy valleys between vowel nuclei, and each syllable
//! moved to its note's pitch and stretched to its length by TD-PSOLA (grains
//! two pitch periods long, cut at pitch marks on the waveform's peaks and laid
//! at the note's period; consonants keep their own timing and are not
//! pitched).

use maximin_audio::analysis::pitch_track;
use maximin_audio::resample::resample_mono;
use maximin_audio::Pcm;

/// Envelope and pitch frames are this long.
const HOP_S: f32 = 0.010;
/// Longest word taken from the speech engine.
const MAX_WORD_S: f32 = 5.0;
/// Spoken pitch searched within this range.
const F0_LO: f32 = 60.0;
const F0_HI: f32 = 500.0;
/// Pseudo-period of grains in unvoiced sound.
const UNVOICED_HZ: f32 = 100.0;
/// Level every word is brought to before mixing (RMS of its voiced part).
const WORD_RMS: f32 = 0.1;

#[derive(Debug, Clone, Copy)]
struct Mark {
    pos: usize,
    period: usize,
    voiced: bool,
}

/// A spoken word ready to sing, at the output rate.
#[derive(Debug, Clone)]
pub(crate) struct Clip {
    samples: Vec<f32>,
    marks: Vec<Mark>,
    /// RMS per 10 ms frame.
    env: Vec<f32>,
    hop: usize,
    /// Median spoken pitch, when any of it is voiced.
    pub f0: Option<f32>,
}

fn frame_rms(x: &[f32], hop: usize) -> Vec<f32> {
    x.chunks(hop.max(1))
        .map(|c| (c.iter().map(|v| v * v).sum::<f32>() / c.len().max(1) as f32).sqrt())
        .collect()
}

/// Per 10 ms frame, the fundamental where the frame repeats itself at a
/// period within a factor 1.45 of the voice's (`f0`), normalised
/// correlation over 0.55; `None` elsewhere. Gaps of up to three frames
/// between voiced frames are bridged, and the values smoothed (median of 3).
fn voicing(x: &[f32], sr: f32, f0: f32, hop: usize, floor: f32) -> Vec<Option<f32>> {
    let t0 = sr / f0;
    let tmin = ((t0 / 1.45).floor() as usize).max(2);
    let tmax = (t0 * 1.45).ceil() as usize;
    let w = ((2.0 * t0).ceil() as usize).max(8);
    let frames = x.len().div_ceil(hop.max(1));
    let mut out: Vec<Option<f32>> = vec![None; frames];
    let mut loud = vec![false; frames];
    for (i, slot) in out.iter_mut().enumerate() {
        let centre = i * hop + hop / 2;
        let a = centre.saturating_sub((w + tmax) / 2);
        if a + w + tmax > x.len() {
            continue;
        }
        let head = &x[a..a + w];
        let e0: f32 = head.iter().map(|v| v * v).sum();
        if (e0 / w as f32).sqrt() < floor {
            continue;
        }
        loud[i] = true;
        let mut best = (0.0f32, 0usize);
        for tau in tmin..=tmax {
            let tail = &x[a + tau..a + tau + w];
            let et: f32 = tail.iter().map(|v| v * v).sum();
            let cross: f32 = head.iter().zip(tail).map(|(p, q)| p * q).sum();
            let r = cross / (e0 * et).sqrt().max(1e-12);
            if r > best.0 {
                best = (r, tau);
            }
        }
        if best.0 > 0.55 && best.1 > 0 {
            *slot = Some(sr / best.1 as f32);
        }
    }
    // Bridge short gaps inside loud voiced stretches.
    let mut i = 0;
    while i < frames {
        if out[i].is_some() {
            i += 1;
            continue;
        }
        let start = i;
        while i < frames && out[i].is_none() {
            i += 1;
        }
        let gap = i - start;
        if start > 0 && i < frames && gap <= 3 && loud[start..i].iter().all(|l| *l) {
            if let (Some(a), Some(b)) = (out[start - 1], out[i]) {
                for slot in &mut out[start..i] {
                    *slot = Some((a + b) / 2.0);
                }
            }
        }
    }
    (0..frames)
        .map(|i| {
            out[i]?;
            let mut around: Vec<f32> = out[i.saturating_sub(1)..(i + 2).min(frames)]
                .iter()
                .flatten()
                .copied()
                .collect();
            median(&mut around)
        })
        .collect()
}

fn median(xs: &mut [f32]) -> Option<f32> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f32::total_cmp);
    Some(xs[xs.len() / 2])
}

impl Clip {
    /// The word `samples` at `rate`, for singing at `out_rate`; `None` when it
    /// is empty or silent.
    pub(crate) fn prepare(samples: &[f32], rate: u32, out_rate: u32) -> Option<Clip> {
        if samples.is_empty() || rate == 0 || out_rate == 0 {
            return None;
        }
        let max_in = (MAX_WORD_S * rate as f32) as usize;
        let clean: Vec<f32> = samples
            .iter()
            .take(max_in)
            .map(|v| {
                if v.is_finite() {
                    v.clamp(-4.0, 4.0)
                } else {
                    0.0
                }
            })
            .collect();
        let x = if rate == out_rate {
            clean
        } else {
            resample_mono(&clean, rate, out_rate)
        };
        let sr = out_rate as f32;
        let hop = ((sr * HOP_S).round() as usize).max(1);
        // Trim silence at both ends (30 dB under the loudest frame).
        let env = frame_rms(&x, hop);
        let peak = env.iter().copied().fold(0.0f32, f32::max);
        if peak < 1e-5 {
            return None;
        }
        let floor = peak * 0.03;
        let first = env.iter().position(|e| *e > floor)?;
        let last = env.iter().rposition(|e| *e > floor)?;
        let start = first.saturating_sub(1) * hop;
        let end = ((last + 2) * hop).min(x.len());
        if end <= start {
            return None;
        }
        let mut samples = x[start..end].to_vec();

        // The voice's pitch (YIN), then each frame's periodicity near it:
        // YIN alone drops frames of synthetic speech in the middle of vowels.
        let mut yin: Vec<f32> = pitch_track(&Pcm::mono(samples.clone(), out_rate))
            .into_iter()
            .flatten()
            .filter(|f| (F0_LO..=F0_HI).contains(f))
            .collect();
        let f0s: Vec<Option<f32>> = match median(&mut yin) {
            Some(f0) => voicing(&samples, sr, f0, hop, floor),
            None => Vec::new(),
        };
        let mut voiced_f0: Vec<f32> = f0s.iter().flatten().copied().collect();
        let f0 = median(&mut voiced_f0);

        // Level: the voiced frames (or all) to WORD_RMS.
        let env = frame_rms(&samples, hop);
        let mut voiced_energy = 0.0f32;
        let mut voiced_frames = 0usize;
        for (i, e) in env.iter().enumerate() {
            if f0s.get(i).copied().flatten().is_some() {
                voiced_energy += e * e;
                voiced_frames += 1;
            }
        }
        let rms = if voiced_frames > 0 {
            (voiced_energy / voiced_frames as f32).sqrt()
        } else {
            let loud: Vec<f32> = env.iter().copied().filter(|e| *e > floor).collect();
            (loud.iter().map(|e| e * e).sum::<f32>() / loud.len().max(1) as f32).sqrt()
        };
        let gain = if rms > 1e-6 {
            (WORD_RMS / rms).min(30.0)
        } else {
            1.0
        };
        for v in &mut samples {
            *v *= gain;
        }
        let env: Vec<f32> = env.iter().map(|e| e * gain).collect();

        // Pitch marks: on the waveform's peaks one period apart where voiced,
        // every 10 ms elsewhere.
        let unvoiced_period = (sr / UNVOICED_HZ).round() as usize;
        let mut marks: Vec<Mark> = Vec::new();
        let n = samples.len();
        let mut pos = 0usize;
        let mut last_voiced = false;
        while pos < n {
            let frame = (pos + hop / 2) / hop;
            match f0s.get(frame).copied().flatten() {
                Some(f) => {
                    let period = ((sr / f).round() as usize).max(2);
                    let (lo, hi) = if last_voiced {
                        let r = period / 4;
                        (pos.saturating_sub(r), (pos + r + 1).min(n))
                    } else {
                        (pos, (pos + period).min(n))
                    };
                    let peak = (lo..hi)
                        .max_by(|a, b| samples[*a].total_cmp(&samples[*b]))
                        .unwrap_or(pos);
                    let min_next = marks.last().map(|m| m.pos + period / 2).unwrap_or(0);
                    let at = peak.max(min_next);
                    if at >= n {
                        break;
                    }
                    marks.push(Mark {
                        pos: at,
                        period,
                        voiced: true,
                    });
                    pos = at + period;
                    last_voiced = true;
                }
                None => {
                    marks.push(Mark {
                        pos,
                        period: unvoiced_period,
                        voiced: false,
                    });
                    pos += unvoiced_period;
                    last_voiced = false;
                }
            }
        }
        if marks.is_empty() {
            return None;
        }
        Some(Clip {
            samples,
            marks,
            env,
            hop,
            f0,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    /// The clip cut into `k` syllables: at the lowest energy between the `k`
    /// strongest nuclei (60 ms apart at least), or in equal parts when the
    /// word does not show `k` of them.
    pub(crate) fn split(&self, k: usize) -> Vec<(usize, usize)> {
        let n = self.samples.len();
        if k <= 1 || n == 0 {
            return vec![(0, n)];
        }
        let env: Vec<f32> = (0..self.env.len())
            .map(|i| {
                let lo = i.saturating_sub(1);
                let hi = (i + 2).min(self.env.len());
                self.env[lo..hi].iter().sum::<f32>() / (hi - lo) as f32
            })
            .collect();
        let top = env.iter().copied().fold(0.0f32, f32::max);
        let mut peaks: Vec<usize> = (1..env.len().saturating_sub(1))
            .filter(|&i| env[i] >= env[i - 1] && env[i] > env[i + 1] && env[i] > 0.25 * top)
            .collect();
        peaks.sort_by(|a, b| env[*b].total_cmp(&env[*a]));
        let mut chosen: Vec<usize> = Vec::new();
        for p in peaks {
            if chosen.iter().all(|c| c.abs_diff(p) >= 6) {
                chosen.push(p);
                if chosen.len() == k {
                    break;
                }
            }
        }
        let equal =
            || -> Vec<(usize, usize)> { (0..k).map(|i| (i * n / k, (i + 1) * n / k)).collect() };
        if chosen.len() < k {
            return equal();
        }
        chosen.sort_unstable();
        let mut cuts = vec![0usize];
        for w in chosen.windows(2) {
            let valley = (w[0] + 1..w[1])
                .min_by(|a, b| env[*a].total_cmp(&env[*b]))
                .unwrap_or((w[0] + w[1]) / 2);
            cuts.push(((valley * self.hop) + self.hop / 2).min(n));
        }
        cuts.push(n);
        let segs: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
        if segs.iter().any(|(a, b)| b <= a) {
            return equal();
        }
        segs
    }

    /// The segment `seg` sung at `hz` for `out_len` samples (at `sr`), with
    /// a light vibrato on long notes and short fades at both ends.
    pub(crate) fn sing(&self, seg: (usize, usize), hz: f32, out_len: usize, sr: u32) -> Vec<f32> {
        let mut y = vec![0.0f32; out_len];
        let (s0, s1) = (seg.0.min(self.len()), seg.1.min(self.len()));
        if out_len == 0 || s1 <= s0 || hz.is_nan() || hz <= 0.0 {
            return y;
        }
        let srf = sr as f32;
        let in_len = (s1 - s0) as f32;
        let out_f = out_len as f32;
        // The vowel (first to last voiced mark) is stretched or squeezed to
        // fit; the consonants before and after keep their speed, unless they
        // would take more than about a third of the note.
        let voiced: Vec<&Mark> = self
            .marks
            .iter()
            .filter(|m| m.voiced && m.pos >= s0 && m.pos < s1)
            .collect();
        let (pre, post) = match (voiced.first(), voiced.last()) {
            (Some(a), Some(b)) if b.pos + b.period > a.pos + a.period => (
                (a.pos - s0) as f32,
                (s1 as f32 - (b.pos + b.period).min(s1) as f32).max(0.0),
            ),
            _ => (
                (0.05 * srf).min(in_len * 0.3),
                (0.06 * srf).min(in_len * 0.3),
            ),
        };
        let nucleus = (in_len - pre - post).max(1.0);
        let pre_out = pre.min(out_f * 0.35);
        let post_out = post.min(out_f * 0.25);
        let nucleus_out = (out_f - pre_out - post_out).max(1.0);
        let map = |t: f32| -> f32 {
            if t < pre_out {
                t * pre / pre_out.max(1.0)
            } else if t < pre_out + nucleus_out {
                pre + (t - pre_out) * nucleus / nucleus_out
            } else {
                pre + nucleus + (t - pre_out - nucleus_out) * post / post_out.max(1.0)
            }
        };
        let vibrato = out_f / srf > 0.35;
        let mut wsum = vec![0.0f32; out_len];
        let mut t = 0.0f32;
        let mut jitter: u64 = 0x2545_f491_4f6c_dd1d;
        while (t as usize) < out_len {
            let ti = s0 as f32 + map(t);
            let m = self.nearest_mark(ti);
            let p = m.period as isize;
            let centre = t.round() as isize;
            for j in -p..=p {
                let src = m.pos as isize + j;
                let dst = centre + j;
                if src < 0
                    || src as usize >= self.samples.len()
                    || dst < 0
                    || dst as usize >= out_len
                {
                    continue;
                }
                let w = 0.5 * (1.0 + (std::f32::consts::PI * j as f32 / p as f32).cos());
                y[dst as usize] += self.samples[src as usize] * w;
                wsum[dst as usize] += w;
            }
            let step = if m.voiced {
                let secs = t / srf;
                let depth = if vibrato {
                    ((secs - 0.15) / 0.25).clamp(0.0, 1.0) * 0.3
                } else {
                    0.0
                };
                let f =
                    hz * 2f32.powf(depth / 12.0 * (2.0 * std::f32::consts::PI * 5.5 * secs).sin());
                srf / f
            } else {
                // Noise grains at irregular spacing, so stretched consonants
                // do not buzz at the grain rate.
                jitter = jitter
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (jitter >> 40) as f32 / (1u64 << 24) as f32;
                m.period as f32 * (0.7 + 0.6 * u)
            };
            t += step.max(1.0);
        }
        for (v, w) in y.iter_mut().zip(&wsum) {
            if *w > 1.0 {
                *v /= w;
            }
        }
        let fade_in = ((0.008 * srf) as usize).min(out_len / 4);
        let fade_out = ((0.025 * srf) as usize).min(out_len / 4);
        for (i, v) in y.iter_mut().take(fade_in).enumerate() {
            *v *= i as f32 / fade_in as f32;
        }
        for (i, v) in y.iter_mut().rev().take(fade_out).enumerate() {
            *v *= i as f32 / fade_out as f32;
        }
        y
    }

    fn nearest_mark(&self, pos: f32) -> Mark {
        let p = pos.max(0.0) as usize;
        let i = self.marks.partition_point(|m| m.pos < p);
        let cands = [i.checked_sub(1), Some(i)];
        cands
            .iter()
            .flatten()
            .filter_map(|&i| self.marks.get(i))
            .min_by_key(|m| m.pos.abs_diff(p))
            .copied()
            .unwrap_or(Mark {
                pos: p,
                period: 2,
                voiced: false,
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::theory::hz_to_midi;

    /// A voiced vowel: a pulse train at `f0` through two resonators (about
    /// /a/), with a short attack and release.
    pub(crate) fn vowel(f0: f32, secs: f32, sr: u32) -> Vec<f32> {
        let n = (secs * sr as f32) as usize;
        let period = sr as f32 / f0;
        let mut src = vec![0.0f32; n];
        let mut next = 0.0f32;
        while (next as usize) < n {
            src[next as usize] = 1.0;
            next += period;
        }
        let mut out = src;
        for (fc, bw) in [(700.0f32, 110.0f32), (1200.0, 130.0)] {
            let r = (-std::f32::consts::PI * bw / sr as f32).exp();
            let c = 2.0 * r * (2.0 * std::f32::consts::PI * fc / sr as f32).cos();
            let (mut y1, mut y2) = (0.0f32, 0.0f32);
            for v in out.iter_mut() {
                let y = *v + c * y1 - r * r * y2;
                y2 = y1;
                y1 = y;
                *v = y;
            }
        }
        let peak = out.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1e-9);
        let ramp = (0.02 * sr as f32) as usize;
        for (i, v) in out.iter_mut().enumerate() {
            let g = (i.min(n - 1 - i) as f32 / ramp as f32).min(1.0);
            *v = *v / peak * 0.5 * g;
        }
        out
    }

    /// Pitch (Hz) of a mono signal by autocorrelation, for checks.
    pub(crate) fn measured_f0(x: &[f32], sr: u32) -> Option<f32> {
        let track: Vec<f32> = pitch_track(&Pcm::mono(x.to_vec(), sr))
            .into_iter()
            .flatten()
            .collect();
        let mut t = track;
        median(&mut t)
    }

    #[test]
    fn shifts_pitch_and_fits_length() {
        let sr = 22050;
        let word = vowel(150.0, 0.4, sr);
        let clip = Clip::prepare(&word, sr, sr).expect("voiced");
        let f0 = clip.f0.expect("pitch");
        assert!((f0 - 150.0).abs() < 5.0, "spoken pitch {f0}");
        for (target, secs) in [(220.0f32, 0.6f32), (130.8, 0.25), (196.0, 1.2)] {
            let out_len = (secs * sr as f32) as usize;
            let y = clip.sing((0, clip.len()), target, out_len, sr);
            assert_eq!(y.len(), out_len);
            let got = measured_f0(&y, sr).expect("sung pitch");
            let cents = (hz_to_midi(got) - hz_to_midi(target)).abs() * 100.0;
            assert!(cents < 40.0, "target {target} got {got}");
            let peak = y.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            assert!(peak > 0.05 && peak < 1.0, "peak {peak}");
        }
    }

    #[test]
    fn splits_syllables_at_valleys() {
        let sr = 16000;
        let mut word = vowel(140.0, 0.25, sr);
        word.extend(std::iter::repeat_n(0.0, (0.06 * sr as f32) as usize));
        let second_start = word.len();
        word.extend(vowel(140.0, 0.3, sr));
        let clip = Clip::prepare(&word, sr, sr).expect("voiced");
        let segs = clip.split(2);
        assert_eq!(segs.len(), 2);
        // The cut lies in the gap (clip trimmed by at most a frame or two).
        let cut = segs[0].1 as i64;
        let gap_mid = second_start as i64 - (0.03 * sr as f32) as i64;
        assert!(
            (cut - gap_mid).abs() < (0.05 * sr as f32) as i64,
            "cut {cut} gap {gap_mid}"
        );
        assert_eq!(clip.split(3).len(), 3);
        assert!(Clip::prepare(&vec![0.0; 1000], sr, sr).is_none());
    }
}
