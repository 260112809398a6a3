//! The synthesiser: FluidLite with a General MIDI soundfont, fed the
//! arrangement's note events in time order and rendered in blocks, in memory.

use crate::compose::{Arrangement, DRUM_CHANNEL};
use crate::style::Role;
use crate::MusicError;
use fluidlite::IsSettings;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// The rate FluidLite renders at; other output rates are resampled from it.
pub const SYNTH_RATE: u32 = 44_100;
/// Debian's General MIDI soundfont (package `fluid-soundfont-gm`).
pub const DEBIAN_SOUNDFONT: &str = "/usr/share/sounds/sf2/FluidR3_GM.sf2";
/// The Debian package that provides [`DEBIAN_SOUNDFONT`].
pub const SOUNDFONT_PACKAGE: &str = "fluid-soundfont-gm";

/// Where General MIDI soundfonts are looked for, in order.
const SOUNDFONT_CANDIDATES: &[&str] = &[
    DEBIAN_SOUNDFONT,
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
];

/// Frames rendered between two looks at the cancel flag.
const BLOCK: usize = 1024;

/// Level (RMS) of one note at velocity 100 and full channel volume that each
/// role is brought to (General MIDI programs differ by up to 20 dB).
fn role_level(role: Role) -> f32 {
    match role {
        Role::Melody => 0.035,
        Role::Harmony => 0.024,
        Role::Pad => 0.010,
        Role::Bass => 0.036,
        // Kick, snare and hat struck together.
        Role::Drums => 0.06,
    }
}

/// FluidLite with the soundfont loaded once (about 150 MB in memory for
/// FluidR3_GM). Shareable: renders take turns on it (each render resets it
/// first), so one `Synth` serves the whole process.
pub struct Synth {
    inner: Mutex<Inner>,
    soundfont: PathBuf,
}

struct Inner {
    synth: fluidlite::Synth,
    /// Measured loudness per (drum kit?, program, key).
    loudness: HashMap<(bool, u8, u8), f32>,
}

impl Inner {
    /// RMS of a note (for kits: kick, snare and hat) at velocity 100, full
    /// volume, no reverb, over a second (pads swell slowly); measured once
    /// per program.
    fn loudness(&mut self, drums: bool, program: u8, key: u8) -> f32 {
        if let Some(l) = self.loudness.get(&(drums, program, key)) {
            return *l;
        }
        let s = &self.synth;
        let _ = s.system_reset();
        let ch = if drums { u32::from(DRUM_CHANNEL) } else { 0 };
        let _ = s.bank_select(ch, if drums { 128 } else { 0 });
        if s.program_change(ch, u32::from(program)).is_err() && drums {
            let _ = s.program_change(ch, 0);
        }
        let _ = s.cc(ch, 7, 127);
        let _ = s.cc(ch, 91, 0);
        let _ = s.cc(ch, 93, 0);
        let keys: &[u32] = if drums { &[36, 38, 42] } else { &[0] };
        for k in keys {
            let k = if drums { *k } else { u32::from(key) };
            let _ = s.note_on(ch, k, 100);
        }
        let mut buf = vec![0.0f32; 2 * SYNTH_RATE as usize];
        let level = match s.write(buf.as_mut_slice()) {
            Ok(()) => (buf.iter().map(|v| v * v).sum::<f32>() / buf.len() as f32).sqrt(),
            Err(_) => 0.0,
        };
        let _ = s.system_reset();
        self.loudness.insert((drums, program, key), level);
        level
    }
}

impl std::fmt::Debug for Synth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synth")
            .field("soundfont", &self.soundfont)
            .finish_non_exhaustive()
    }
}

fn synth_err(what: &str, e: fluidlite::Error) -> MusicError {
    MusicError::Synth(format!("{what}: {e}"))
}

impl Synth {
    /// Loads the soundfont at `soundfont`. A missing file is
    /// [`MusicError::SoundfontMissing`], whose message names the Debian
    /// package to install.
    pub fn load(soundfont: &Path) -> Result<Self, MusicError> {
        if !soundfont.is_file() {
            return Err(MusicError::SoundfontMissing {
                path: soundfont.to_path_buf(),
            });
        }
        let settings = fluidlite::Settings::new().map_err(|e| synth_err("settings", e))?;
        if let Some(s) = settings.num("synth.sample-rate") {
            s.set(f64::from(SYNTH_RATE));
        }
        if let Some(s) = settings.num("synth.gain") {
            s.set(0.4);
        }
        if let Some(s) = settings.int("synth.polyphony") {
            s.set(256);
        }
        let synth = fluidlite::Synth::new(settings).map_err(|e| synth_err("new synth", e))?;
        synth
            .sfload(soundfont, true)
            .map_err(|e| MusicError::SoundfontLoad {
                path: soundfont.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            inner: Mutex::new(Inner {
                synth,
                loudness: HashMap::new(),
            }),
            soundfont: soundfont.to_path_buf(),
        })
    }

    /// The first General MIDI soundfont installed in the usual places
    /// (Debian's `fluid-soundfont-gm` first).
    pub fn default_soundfont() -> Option<PathBuf> {
        SOUNDFONT_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }

    /// The soundfont this synthesiser loaded.
    pub fn soundfont(&self) -> &Path {
        &self.soundfont
    }

    /// The instruments of `arr`, interleaved stereo at [`SYNTH_RATE`],
    /// exactly `frames` frames. `progress` gets the fraction done.
    pub(crate) fn render_instruments(
        &self,
        arr: &Arrangement,
        frames: usize,
        progress: &mut dyn FnMut(f32),
        cancel: &AtomicBool,
    ) -> Result<Vec<f32>, MusicError> {
        let events = events(arr, frames);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Channel volumes that bring each program to its role's level
        // (amplitude goes with the square of the volume).
        let volumes: Vec<u32> = arr
            .tracks
            .iter()
            .map(|t| {
                let drums = t.channel == DRUM_CHANNEL;
                let key = match t.role {
                    Role::Bass => 40,
                    _ => 60,
                };
                let measured = inner.loudness(drums, t.instrument.program, key);
                let want = role_level(t.role) * (f32::from(t.volume.min(127)) / 100.0).powi(2);
                let gain = if measured > 1e-6 {
                    (want / measured).min(1.0)
                } else {
                    1.0
                };
                (127.0 * gain.sqrt()).round().clamp(8.0, 127.0) as u32
            })
            .collect();
        let synth = &inner.synth;
        synth.system_reset().map_err(|e| synth_err("reset", e))?;
        for (t, volume) in arr.tracks.iter().zip(volumes) {
            let ch = u32::from(t.channel);
            if t.channel == DRUM_CHANNEL {
                // Kits live in bank 128; a kit the soundfont lacks falls back
                // to the standard one.
                let _ = synth.bank_select(ch, 128);
                if synth
                    .program_change(ch, u32::from(t.instrument.program))
                    .is_err()
                {
                    let _ = synth.program_change(ch, 0);
                }
            } else {
                let _ = synth.bank_select(ch, 0);
                synth
                    .program_change(ch, u32::from(t.instrument.program))
                    .map_err(|e| synth_err("program change", e))?;
            }
            let _ = synth.cc(ch, 7, volume);
            let _ = synth.cc(ch, 10, u32::from(t.pan.min(127)));
            let _ = synth.cc(ch, 91, u32::from(t.reverb.min(127)));
            let _ = synth.cc(ch, 93, 0);
        }
        let mut out = vec![0.0f32; frames * 2];
        let mut done = 0usize;
        let mut ev = events.iter().peekable();
        while done < frames {
            if cancel.load(Ordering::Relaxed) {
                let _ = synth.system_reset();
                return Err(MusicError::Cancelled);
            }
            // Events due now.
            while let Some(e) = ev.next_if(|e| e.frame <= done) {
                match e.kind {
                    Kind::Off => {
                        let _ = synth.note_off(e.channel, e.key);
                    }
                    Kind::On(vel) => {
                        let _ = synth.note_on(e.channel, e.key, vel);
                    }
                }
            }
            let until = ev.peek().map(|e| e.frame).unwrap_or(frames).min(frames);
            let n = (until.max(done + 1) - done).min(BLOCK).min(frames - done);
            synth
                .write(&mut out[done * 2..(done + n) * 2])
                .map_err(|e| synth_err("write", e))?;
            done += n;
            progress(done as f32 / frames.max(1) as f32);
        }
        let _ = synth.system_reset();
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Off,
    On(u32),
}

#[derive(Debug, Clone, Copy)]
struct Event {
    frame: usize,
    channel: u32,
    key: u32,
    kind: Kind,
}

/// Note-on and note-off events in time order (offs first at the same frame).
/// A note is cut where the same key starts again on its channel, so a late
/// note-off never silences the newer note.
fn events(arr: &Arrangement, frames: usize) -> Vec<Event> {
    let sr = SYNTH_RATE as f32;
    let at = |s: f32| ((s.max(0.0) * sr).round() as usize).min(frames);
    let mut out = Vec::new();
    for t in &arr.tracks {
        let mut notes = t.notes.clone();
        notes.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        let mut last_start: [Option<usize>; 128] = [None; 128];
        // Walk backwards: each note ends no later than the next same key.
        let mut ends = vec![0usize; notes.len()];
        for (i, n) in notes.iter().enumerate().rev() {
            let k = usize::from(n.pitch.min(127));
            let start = at(n.start_s);
            let mut end = at(n.start_s + n.dur_s).max(start + 1);
            if let Some(next) = last_start[k] {
                end = end.min(next);
            }
            // The same key struck twice at once sounds once.
            ends[i] = if end <= start { usize::MAX } else { end };
            last_start[k] = Some(start);
        }
        for (n, end) in notes.iter().zip(ends) {
            let start = at(n.start_s);
            if start >= frames || end == usize::MAX {
                continue;
            }
            let channel = u32::from(t.channel);
            let key = u32::from(n.pitch.min(127));
            out.push(Event {
                frame: start,
                channel,
                key,
                kind: Kind::On(u32::from(n.velocity.clamp(1, 127))),
            });
            if end < frames {
                out.push(Event {
                    frame: end,
                    channel,
                    key,
                    kind: Kind::Off,
                });
            }
        }
    }
    out.sort_by_key(|e| (e.frame, matches!(e.kind, Kind::On(_))));
    out
}
