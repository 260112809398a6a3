//! Rendering with FluidLite and Debian's soundfont. These tests need the
//! package `fluid-soundfont-gm` and fail (never skip) without it.

use maximin_engine_music::{
    compose, render, Arrangement, MusicError, Song, SongRequest, SpokenWord, Synth,
    DEBIAN_SOUNDFONT, SOUNDFONT_PACKAGE,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

fn synth() -> &'static Synth {
    static SYNTH: OnceLock<Synth> = OnceLock::new();
    SYNTH.get_or_init(|| {
        let path = Synth::default_soundfont().unwrap_or_else(|| PathBuf::from(DEBIAN_SOUNDFONT));
        Synth::load(&path).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// A voiced vowel as a speech engine might say a word: a 150 Hz pulse train
/// through two formant resonators (about /a/), 0.35 s at 22.05 kHz.
fn vowel(_word: &str) -> Option<SpokenWord> {
    let sr = 22050u32;
    let n = (0.35 * sr as f32) as usize;
    let period = sr as f32 / 150.0;
    let mut x = vec![0.0f32; n];
    let mut next = 0.0f32;
    while (next as usize) < n {
        x[next as usize] = 1.0;
        next += period;
    }
    for (fc, bw) in [(700.0f32, 110.0f32), (1200.0, 130.0)] {
        let r = (-std::f32::consts::PI * bw / sr as f32).exp();
        let c = 2.0 * r * (2.0 * std::f32::consts::PI * fc / sr as f32).cos();
        let (mut y1, mut y2) = (0.0f32, 0.0f32);
        for v in x.iter_mut() {
            let y = *v + c * y1 - r * r * y2;
            y2 = y1;
            y1 = y;
            *v = y;
        }
    }
    let peak = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let ramp = (0.02 * sr as f32) as usize;
    for (i, v) in x.iter_mut().enumerate() {
        let g = (i.min(n - 1 - i) as f32 / ramp as f32).min(1.0);
        *v = *v / peak * 0.4 * g;
    }
    Some((x, sr))
}

const LYRICS: &str = "[Verse]\nHello my friend\nSing along\n[Chorus]\nLa la love\nOh oh oh\n";

fn short_song() -> Arrangement {
    compose(&SongRequest {
        prompt: "happy pop song, 150 bpm, piano and bass and drums".into(),
        lyrics: Some(LYRICS.into()),
        seed: 3,
        ..SongRequest::default()
    })
}

fn run(arr: &Arrangement, rate: u32, sing: &mut dyn FnMut(&str) -> Option<SpokenWord>) -> Song {
    let cancel = AtomicBool::new(false);
    render(synth(), arr, rate, sing, &mut |_| {}, &cancel).unwrap_or_else(|e| panic!("{e}"))
}

/// Energy of `x` (mono) between 300 and 3400 Hz over its total energy.
fn vocal_band_share(x: &[f32], rate: u32) -> f64 {
    // RBJ biquads: high-pass 300 Hz then low-pass 3400 Hz, Q = 0.707.
    fn biquad(x: &[f32], rate: u32, fc: f32, high: bool) -> Vec<f32> {
        let w = 2.0 * std::f32::consts::PI * fc / rate as f32;
        let alpha = w.sin() / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
        let cw = w.cos();
        let (b0, b1, b2) = if high {
            ((1.0 + cw) / 2.0, -(1.0 + cw), (1.0 + cw) / 2.0)
        } else {
            ((1.0 - cw) / 2.0, 1.0 - cw, (1.0 - cw) / 2.0)
        };
        let (a0, a1, a2) = (1.0 + alpha, -2.0 * cw, 1.0 - alpha);
        let (mut x1, mut x2, mut y1, mut y2) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        x.iter()
            .map(|&v| {
                let y = (b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2) / a0;
                x2 = x1;
                x1 = v;
                y2 = y1;
                y1 = y;
                y
            })
            .collect()
    }
    let band = biquad(&biquad(x, rate, 300.0, true), rate, 3400.0, false);
    let e = |s: &[f32]| s.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>();
    e(&band) / e(x).max(1e-12)
}

/// The mono mix inside `spans`.
fn in_spans(song: &Song, spans: &[(f32, f32)]) -> Vec<f32> {
    let sr = song.sample_rate as f32;
    let mut out = Vec::new();
    for (s, e) in spans {
        let a = (s * sr) as usize;
        let b = ((e * sr) as usize).min(song.samples.len() / 2);
        out.extend((a..b).map(|i| 0.5 * (song.samples[2 * i] + song.samples[2 * i + 1])));
    }
    out
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

#[test]
fn missing_soundfont_names_the_package() {
    let err = Synth::load(Path::new("/nonexistent/FluidR3_GM.sf2")).expect_err("no file");
    assert!(matches!(err, MusicError::SoundfontMissing { .. }));
    let msg = err.to_string();
    assert!(msg.contains(SOUNDFONT_PACKAGE), "{msg}");
    assert!(msg.contains("fluid-soundfont-gm"), "{msg}");
    assert!(msg.contains("/nonexistent/FluidR3_GM.sf2"), "{msg}");
}

#[test]
fn a_file_that_is_no_soundfont_is_refused() {
    let not_sf2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let err = Synth::load(&not_sf2).expect_err("not a soundfont");
    assert!(matches!(err, MusicError::SoundfontLoad { .. }), "{err}");
}

#[test]
fn soundfont_is_installed() {
    // CI installs fluid-soundfont-gm; without it this fails with the message.
    let found = Synth::default_soundfont();
    assert!(
        found.is_some(),
        "{}",
        MusicError::SoundfontMissing {
            path: PathBuf::from(DEBIAN_SOUNDFONT)
        }
    );
}

#[test]
fn sings_over_the_band() {
    let arr = short_song();
    assert!(!arr.vocal.is_empty());
    let mut asked: Vec<String> = Vec::new();
    let mut sing = |w: &str| {
        asked.push(w.to_string());
        vowel(w)
    };
    let mut progress: Vec<f32> = Vec::new();
    let cancel = AtomicBool::new(false);
    let song = render(
        synth(),
        &arr,
        44_100,
        &mut sing,
        &mut |p| progress.push(p),
        &cancel,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Each distinct word asked once, in order of use.
    assert_eq!(asked, arr.words());
    assert!(asked.contains(&"Hello".to_string()));

    assert_eq!(song.channels, 2);
    assert_eq!(song.sample_rate, 44_100);
    assert_eq!(song.samples.len() % 2, 0);
    assert!(
        (song.duration_s() - arr.duration_s).abs() <= 0.1,
        "{} vs {}",
        song.duration_s(),
        arr.duration_s
    );
    let peak = song.samples.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    assert!(peak < 0.95, "peak {peak}");
    assert!(song.samples.iter().all(|v| v.is_finite()));
    assert!(rms(&song.samples) > 0.02, "rms {}", rms(&song.samples));
    // Both channels carry sound, and not the same.
    let (l, r): (Vec<f32>, Vec<f32>) = song.samples.chunks_exact(2).map(|f| (f[0], f[1])).unzip();
    assert!(rms(&l) > 0.01 && rms(&r) > 0.01);
    assert!(l != r);

    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress goes back"
    );
    assert_eq!(progress.last().copied(), Some(1.0));
    assert!(
        progress.len() > 20 && progress.len() <= 202,
        "{} reports",
        progress.len()
    );

    // The voice: sung where the lyrics are, loud in the vocal band.
    assert!(!song.vocal_spans.is_empty());
    for (s, e) in &song.vocal_spans {
        assert!(s < e && *e <= arr.duration_s);
    }
    let spans = song.vocal_spans.clone();
    let inst = run(&arr, 44_100, &mut |_| None);
    assert!(inst.vocal_spans.is_empty());
    let with_voice = vocal_band_share(&in_spans(&song, &spans), 44_100);
    let without = vocal_band_share(&in_spans(&inst, &spans), 44_100);
    eprintln!("vocal band share in vocal spans: sung {with_voice:.3}, instrumental {without:.3}");
    assert!(
        with_voice > without * 1.5,
        "sung {with_voice:.3} vs instrumental {without:.3}"
    );
    // Outside the spans the two mixes are the same band (up to normalisation).
    let gaps: Vec<(f32, f32)> = spans
        .windows(2)
        .map(|w| (w[0].1 + 0.3, w[1].0 - 0.1))
        .filter(|(a, b)| b - a > 0.5)
        .collect();
    if !gaps.is_empty() {
        let a = vocal_band_share(&in_spans(&song, &gaps), 44_100);
        let b = vocal_band_share(&in_spans(&inst, &gaps), 44_100);
        assert!((a - b).abs() < 0.15 * b.max(0.05), "gaps {a:.3} vs {b:.3}");
    }
}

#[test]
fn other_rates_and_instrumentals() {
    let arr = compose(&SongRequest {
        prompt: "lo-fi hip hop with electric piano".into(),
        seed: 5,
        target_seconds: Some(8.0),
        ..SongRequest::default()
    });
    assert!((arr.duration_s - 8.0).abs() < 0.01);
    let song = run(&arr, 48_000, &mut |_| None);
    assert_eq!(song.sample_rate, 48_000);
    assert!((song.duration_s() - 8.0).abs() <= 0.1);
    assert!(rms(&song.samples) > 0.02);
    let peak = song.samples.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    assert!(peak <= 0.9, "peak {peak}");
    let low = run(&arr, 16_000, &mut |_| None);
    assert!((low.duration_s() - 8.0).abs() <= 0.1);

    let cancel = AtomicBool::new(false);
    let err = render(synth(), &arr, 1000, &mut |_| None, &mut |_| {}, &cancel).expect_err("rate");
    assert!(matches!(err, MusicError::InvalidSampleRate(1000)));
}

#[test]
fn cancel_stops_the_render() {
    let arr = short_song();
    let cancel = AtomicBool::new(true);
    let err =
        render(synth(), &arr, 44_100, &mut vowel, &mut |_| {}, &cancel).expect_err("cancelled");
    assert!(matches!(err, MusicError::Cancelled));
    // The synthesiser is fine afterwards.
    let short = compose(&SongRequest {
        prompt: "rock".into(),
        seed: 1,
        target_seconds: Some(6.0),
        ..SongRequest::default()
    });
    let song = run(&short, 44_100, &mut |_| None);
    assert!(rms(&song.samples) > 0.02);
}

#[test]
fn synth_is_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Synth>();
    send_sync::<Arrangement>();
}
