//! Seconds of compute per second of music: compose, then render with a
//! synthetic voice standing in for the speech engine (the speech engine's
//! own time is not counted), at 44.1 kHz.
//!
//!     cargo run --release -p maximin-engine-music --example music_bench [SECONDS] [--midi DIR]
//!
//! Needs Debian's `fluid-soundfont-gm`. Prints one line per case, then one
//! `case=N ...` line of figures for scripts. `--midi DIR` also writes each
//! case's arrangement as `DIR/caseN.mid` (the sung line as a "Voice Oohs"
//! part), so another synthesiser can play the very same notes
//! (`bench/media.py` times FluidSynth's CLI on them).

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
    let mut seconds = 60.0f32;
    let mut midi_dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--midi" => midi_dir = args.next().map(PathBuf::from),
            s => match s.parse() {
                Ok(v) => seconds = v,
                Err(_) => {
                    eprintln!("usage: music_bench [SECONDS] [--midi DIR]");
                    std::process::exit(2);
                }
            },
        }
    }
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
    for (case, (prompt, lyrics, target)) in cases.into_iter().enumerate() {
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
        if let Some(dir) = &midi_dir {
            let path = dir.join(format!("case{case}.mid"));
            if let Err(e) = std::fs::write(&path, arr.to_midi()) {
                eprintln!("{}: {e}", path.display());
                std::process::exit(1);
            }
        }
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
        println!(
            "case={case} music_s={music_s:.3} compose_s={compose_s:.4} render_s={render_s:.3} sung_notes={}",
            arr.vocal.len()
        );
    }
}
