//! Seconds of compute per second of music: compose, then render with a
//! synthetic voice standing in for the speech engine (the speech engine's
//! own time is not counted), at 44.1 kHz.
//!
//!     cargo run --release -p maximin-engine-music --example music_bench [SECONDS]
//!
//! Needs Debian's `fluid-soundfont-gm`. Prints one line per case; writes
//! nothing to disk.

use maximin_engine_music::{compose, render, SongRequest, SpokenWord, Synth, DEBIAN_SOUNDFONT};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// A 0.35 s voiced vowel at 150 Hz (pulse train through two formants).
fn vowel(_: &str) -> Option<SpokenWord> {
    let sr = 22050u32;
    let n = (0.35 * sr as f32) as usize;
    let mut x = vec![0.0f32; n];
    let mut t = 0.0f32;
    while (t as usize) < n {
        x[t as usize] = 1.0;
        t += sr as f32 / 150.0;
    }
    for (fc, bw) in [(700.0f32, 110.0f32), (1200.0, 130.0)] {
        let r = (-std::f32::consts::PI * bw / sr as f32).exp();
        let c = 2.0 * r * (2.0 * std::f32::consts::PI * fc / sr as f32).cos();
        let (mut y1, mut y2) = (0.0f32, 0.0f32);
        for v in x.iter_mut() {
            let y = *v + c * y1 - r * r * y2;
            y2 = y1;
            y1 = y;
            *v = y * 0.05;
        }
    }
    Some((x, sr))
}

const LYRICS: &str = "[Intro]\n\n[Verse]\nWalking down the empty street tonight\nEvery window holds a little light\nI can hear the city breathing slow\nTelling me the things I used to know\n\n[Pre Chorus]\nAnd I know, I know\n\n[Chorus]\nSing it loud, sing it clear\nEverybody gather here\nSing it loud until the morning comes\nWe are young and we are free\n\n[Verse]\nShadows dancing on the station wall\nEchoes of the ones who heard the call\n\n[Chorus]\nSing it loud, sing it clear\nEverybody gather here\nSing it loud until the morning comes\nWe are young and we are free\n\n[Outro]\n";

fn main() {
    let seconds: f32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60.0);
    let path = Synth::default_soundfont().unwrap_or_else(|| PathBuf::from(DEBIAN_SOUNDFONT));
    let t = Instant::now();
    let synth = match Synth::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!(
        "soundfont load: {:.2} s ({})",
        t.elapsed().as_secs_f32(),
        path.display()
    );
    let cases: [(&str, Option<&str>, Option<f32>); 4] = [
        (
            "upbeat pop song with piano, bass and drums",
            Some(LYRICS),
            None,
        ),
        ("energetic EDM track, 128 bpm", None, Some(seconds)),
        ("slow jazz ballad with sax and piano", None, Some(seconds)),
        ("dark orchestral piece with strings", None, Some(seconds)),
    ];
    for (prompt, lyrics, target) in cases {
        let req = SongRequest {
            prompt: prompt.to_string(),
            lyrics: lyrics.map(str::to_string),
            seed: 1,
            target_seconds: target,
            ..SongRequest::default()
        };
        let t = Instant::now();
        let arr = compose(&req);
        let compose_s = t.elapsed().as_secs_f32();
        let cancel = AtomicBool::new(false);
        let t = Instant::now();
        let song = match render(&synth, &arr, 44_100, &mut vowel, &mut |_| {}, &cancel) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{prompt}: {e}");
                std::process::exit(1);
            }
        };
        let render_s = t.elapsed().as_secs_f32();
        let music_s = song.duration_s();
        println!(
            "{prompt:45} {music_s:6.1} s of music ({} sung notes): compose {:.1} ms, render {render_s:.2} s = {:.3} s per s of music",
            arr.vocal.len(),
            compose_s * 1000.0,
            (compose_s + render_s) / music_s
        );
    }
}
