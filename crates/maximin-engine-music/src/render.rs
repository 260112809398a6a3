//! Rendering: the sung line from the caller's speech engine, the instruments
//! from FluidLite, mixed in memory.

use crate::compose::Arrangement;
use crate::synth::{Synth, SYNTH_RATE};
use crate::theory::{hz_to_midi, midi_to_hz};
use crate::vocal::Clip;
use crate::MusicError;
use maximin_audio::resample::resample_mono;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// Output rates accepted.
pub const MIN_RATE: u32 = 8_000;
pub const MAX_RATE: u32 = 192_000;
/// The mix's peak after normalisation (−1 dBFS).
const PEAK: f32 = 0.891;
/// Instruments under the voice are lowered to this.
const DUCK: f32 = 0.75;
/// The voice's RMS over the instruments' where it sings.
const VOCAL_OVER: f32 = 1.6;
/// Level of the voice's reverb against the dry voice.
const VOCAL_WET: f32 = 0.22;
/// Share of the progress each stage reports.
const VOCAL_SHARE: f32 = 0.3;
const SYNTH_SHARE: f32 = 0.6;

/// A word as the speech engine said it: mono samples and their rate.
pub type SpokenWord = (Vec<f32>, u32);

/// The sung line (mono) and the spans where it sings.
type VocalTrack = (Vec<f32>, Vec<(f32, f32)>);

/// A rendered song.
#[derive(Debug, Clone, PartialEq)]
pub struct Song {
    /// Interleaved stereo.
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    pub channels: u16,
    /// Seconds (start, end) where lyrics are sung.
    pub vocal_spans: Vec<(f32, f32)>,
}

impl Song {
    pub fn duration_s(&self) -> f32 {
        self.samples.len() as f32 / f32::from(self.channels.max(1)) / self.sample_rate.max(1) as f32
    }
}

/// Renders `arr` at `sample_rate`: the instruments through `synth`, and each
/// word of the sung line spoken by `sing` (mono samples and their rate, or
/// `None` to leave the word out; asked once per distinct word), moved to the
/// melody's pitches and lengths. The vocal line is moved by whole octaves to
/// sit a little above the voice's speaking pitch. `progress` gets the
/// fraction done (0 to 1); `cancel` stops the render between blocks with
/// [`MusicError::Cancelled`]. Nothing is written to disk.
pub fn render(
    synth: &Synth,
    arr: &Arrangement,
    sample_rate: u32,
    sing: &mut dyn FnMut(&str) -> Option<SpokenWord>,
    progress: &mut dyn FnMut(f32),
    cancel: &AtomicBool,
) -> Result<Song, MusicError> {
    if !(MIN_RATE..=MAX_RATE).contains(&sample_rate) {
        return Err(MusicError::InvalidSampleRate(sample_rate));
    }
    let duration = arr.duration_s.max(0.0);
    let frames = (duration * sample_rate as f32).round() as usize;
    // Reported in steps of half a percent at most.
    let mut last = f32::NEG_INFINITY;
    let mut progress = |f: f32| {
        if f >= 1.0 || f - last >= 0.005 {
            last = f;
            progress(f.clamp(0.0, 1.0));
        }
    };
    progress(0.0);

    let (vocal, spans) = vocal_track(arr, sample_rate, frames, sing, &mut progress, cancel)?;

    let synth_frames = (duration * SYNTH_RATE as f32).round() as usize;
    let mut synth_progress = |f: f32| progress(VOCAL_SHARE + SYNTH_SHARE * f);
    let inst = synth.render_instruments(arr, synth_frames, &mut synth_progress, cancel)?;
    let mut inst = if sample_rate == SYNTH_RATE {
        inst
    } else {
        let (l, r): (Vec<f32>, Vec<f32>) = inst.chunks_exact(2).map(|f| (f[0], f[1])).unzip();
        let l = resample_mono(&l, SYNTH_RATE, sample_rate);
        let r = resample_mono(&r, SYNTH_RATE, sample_rate);
        l.iter().zip(&r).flat_map(|(a, b)| [*a, *b]).collect()
    };
    inst.resize(frames * 2, 0.0);
    if cancel.load(Ordering::Relaxed) {
        return Err(MusicError::Cancelled);
    }

    let samples = mix(inst, &vocal, &spans, sample_rate);
    progress(1.0);
    Ok(Song {
        samples,
        sample_rate,
        channels: 2,
        vocal_spans: spans,
    })
}

/// The sung line, mono at `rate`, `frames` long, and where it sings.
fn vocal_track(
    arr: &Arrangement,
    rate: u32,
    frames: usize,
    sing: &mut dyn FnMut(&str) -> Option<SpokenWord>,
    progress: &mut dyn FnMut(f32),
    cancel: &AtomicBool,
) -> Result<VocalTrack, MusicError> {
    let mut out = vec![0.0f32; frames];
    if arr.vocal.is_empty() {
        progress(VOCAL_SHARE);
        return Ok((out, Vec::new()));
    }
    // Words in order of first use, each spoken once.
    let mut order: Vec<&str> = Vec::new();
    let mut clips: HashMap<&str, Option<Clip>> = HashMap::new();
    for n in &arr.vocal {
        if !clips.contains_key(n.word.as_str()) {
            clips.insert(n.word.as_str(), None);
            order.push(n.word.as_str());
        }
    }
    for (i, word) in order.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(MusicError::Cancelled);
        }
        let clip = sing(word).and_then(|(s, r)| Clip::prepare(&s, r, rate));
        clips.insert(word, clip);
        progress(VOCAL_SHARE * 0.8 * (i + 1) as f32 / order.len() as f32);
    }

    // Octaves that bring the tune to a little above the speaking voice.
    let mut f0s: Vec<f32> = clips.values().flatten().filter_map(|c| c.f0).collect();
    let mut pitches: Vec<f32> = arr.vocal.iter().map(|n| f32::from(n.pitch)).collect();
    let shift = match (median(&mut f0s), median(&mut pitches)) {
        (Some(f0), Some(tune)) => 12.0 * ((hz_to_midi(f0) + 4.0 - tune) / 12.0).round(),
        _ => 0.0,
    };

    let sr = rate as f32;
    let mut spans: Vec<(f32, f32)> = Vec::new();
    let mut i = 0;
    while i < arr.vocal.len() {
        if cancel.load(Ordering::Relaxed) {
            return Err(MusicError::Cancelled);
        }
        // One word: its syllables' notes in a row.
        let first = &arr.vocal[i];
        let mut k = 1;
        if first.syllable == 0 {
            while k < usize::from(first.syllables)
                && arr
                    .vocal
                    .get(i + k)
                    .is_some_and(|n| n.word == first.word && usize::from(n.syllable) == k)
            {
                k += 1;
            }
        }
        let notes = &arr.vocal[i..i + k];
        i += k;
        let Some(Some(clip)) = clips.get(first.word.as_str()) else {
            continue;
        };
        let segs = if notes.len() == usize::from(first.syllables) {
            clip.split(notes.len())
        } else {
            // A word cut short: its sung part evenly.
            let n = clip.len();
            let total = usize::from(first.syllables.max(1));
            let from = usize::from(first.syllable);
            (from..from + notes.len())
                .map(|j| (j * n / total, (j + 1) * n / total))
                .collect()
        };
        for (note, seg) in notes.iter().zip(segs) {
            let start = (note.start_s * sr).round() as usize;
            if start >= frames {
                continue;
            }
            let len = ((note.dur_s * sr).round() as usize).min(frames - start);
            let hz = midi_to_hz(f32::from(note.pitch) + shift);
            let y = clip.sing(seg, hz, len, rate);
            for (o, v) in out[start..start + len].iter_mut().zip(&y) {
                *o += v;
            }
            let (s, e) = (note.start_s, note.start_s + len as f32 / sr);
            match spans.last_mut() {
                Some(last) if s - last.1 < 0.3 => last.1 = last.1.max(e),
                _ => spans.push((s, e)),
            }
        }
    }
    progress(VOCAL_SHARE);
    Ok((out, spans))
}

fn median(xs: &mut [f32]) -> Option<f32> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f32::total_cmp);
    Some(xs[xs.len() / 2])
}

/// Instruments (ducked under the voice) plus the voice, normalised to
/// [`PEAK`], with a fade over the last half second.
fn mix(mut inst: Vec<f32>, vocal: &[f32], spans: &[(f32, f32)], rate: u32) -> Vec<f32> {
    let frames = inst.len() / 2;
    let sr = rate as f32;
    if !spans.is_empty() {
        // Ducking gain per frame, ramps of 50 ms.
        let mut target = vec![1.0f32; frames];
        for (s, e) in spans {
            let a = ((s - 0.05).max(0.0) * sr) as usize;
            let b = (((e + 0.1) * sr) as usize).min(frames);
            for g in target.iter_mut().take(b).skip(a) {
                *g = DUCK;
            }
        }
        let w = ((0.05 * sr) as usize).max(1);
        let mut prefix = vec![0.0f64; frames + 1];
        for (i, g) in target.iter().enumerate() {
            prefix[i + 1] = prefix[i] + f64::from(*g);
        }
        for i in 0..frames {
            let lo = i.saturating_sub(w / 2);
            let hi = (i + w / 2 + 1).min(frames);
            let g = ((prefix[hi] - prefix[lo]) / (hi - lo) as f64) as f32;
            inst[2 * i] *= g;
            inst[2 * i + 1] *= g;
        }
        // The voice's level against the instruments where it sings.
        let (mut ei, mut ev, mut n) = (0.0f64, 0.0f64, 0usize);
        for (s, e) in spans {
            let a = (s * sr) as usize;
            let b = ((e * sr) as usize).min(frames);
            for i in a..b {
                let m = 0.5 * (inst[2 * i] + inst[2 * i + 1]);
                ei += f64::from(m * m);
                let v = vocal.get(i).copied().unwrap_or(0.0);
                ev += f64::from(v * v);
                n += 1;
            }
        }
        let gain = if n > 0 && ev > 0.0 && ei > 0.0 {
            (f64::from(VOCAL_OVER) * (ei / ev).sqrt()).clamp(0.1, 20.0) as f32
        } else {
            1.0
        };
        // A little room on the voice, so it sits with the instruments'
        // reverb rather than on top of it.
        let (wet_l, wet_r) = room(vocal, rate);
        for (i, v) in vocal.iter().enumerate().take(frames) {
            inst[2 * i] += (v + VOCAL_WET * wet_l[i]) * gain;
            inst[2 * i + 1] += (v + VOCAL_WET * wet_r[i]) * gain;
        }
    }
    let peak = inst.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    if peak > 1e-6 {
        let g = (PEAK / peak).min(8.0);
        for v in &mut inst {
            *v *= g;
        }
    }
    let fade = ((0.5 * sr) as usize).min(frames / 4);
    for i in 0..fade {
        let g = i as f32 / fade as f32;
        let f = frames - 1 - i;
        inst[2 * f] *= g;
        inst[2 * f + 1] *= g;
    }
    inst
}

/// A small stereo room (Schroeder: four damped combs and two all-passes per
/// side, the right side's delays slightly longer), same length as `x`.
fn room(x: &[f32], rate: u32) -> (Vec<f32>, Vec<f32>) {
    let sr = rate as f32;
    let side = |spread_ms: f32| -> Vec<f32> {
        let mut out = vec![0.0f32; x.len()];
        for ms in [29.7f32, 37.1, 41.1, 43.7] {
            let d = (((ms + spread_ms) * 0.001 * sr) as usize).max(1);
            let mut buf = vec![0.0f32; d];
            let mut idx = 0;
            let mut lp = 0.0f32;
            for (o, v) in out.iter_mut().zip(x) {
                let y = buf[idx];
                lp = y * 0.7 + lp * 0.3;
                buf[idx] = v + lp * 0.78;
                idx = (idx + 1) % d;
                *o += y * 0.25;
            }
        }
        for ms in [5.0f32, 1.7] {
            let d = (((ms + spread_ms * 0.3) * 0.001 * sr) as usize).max(1);
            let mut buf = vec![0.0f32; d];
            let mut idx = 0;
            for o in out.iter_mut() {
                let delayed = buf[idx];
                let input = *o;
                let y = delayed - 0.5 * input;
                buf[idx] = input + 0.5 * y;
                idx = (idx + 1) % d;
                *o = y;
            }
        }
        out
    };
    (side(0.0), side(1.3))
}
