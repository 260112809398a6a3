//! An [`Arrangement`] as a Standard MIDI File (format 0, one track), so any
//! General MIDI synthesiser (FluidSynth's own CLI, a DAW) can play the same
//! notes [`crate::render`] plays: programs, volume, pan and reverb per
//! channel, the tempo, and the sung line as a voice ("Voice Oohs") on a
//! channel of its own, since a MIDI file cannot carry the words' sound.

use crate::compose::{Arrangement, DRUM_CHANNEL};

/// Ticks per quarter note.
const PPQ: u16 = 480;
/// General MIDI "Voice Oohs" (0-based), for the sung line.
const VOICE_PROGRAM: u8 = 53;

impl Arrangement {
    /// The arrangement as a Standard MIDI File.
    pub fn to_midi(&self) -> Vec<u8> {
        let ticks_per_s = f64::from(self.tempo_bpm.max(1.0)) / 60.0 * f64::from(PPQ);
        let tick = |s: f32| (f64::from(s.max(0.0)) * ticks_per_s).round() as u64;
        // (tick, order, bytes): at the same tick, set-up first, then note-offs
        // before note-ons (a repeated note is not cut by its own release).
        let mut events: Vec<(u64, u8, Vec<u8>)> = Vec::new();
        let used: Vec<u8> = self.tracks.iter().map(|t| t.channel).collect();
        let voice = (0..16u8).find(|c| *c != DRUM_CHANNEL && !used.contains(c));
        for t in &self.tracks {
            let ch = t.channel & 0x0f;
            if ch != DRUM_CHANNEL {
                events.push((0, 0, vec![0xc0 | ch, t.instrument.program & 0x7f]));
            }
            events.push((0, 0, vec![0xb0 | ch, 7, t.volume.min(127)]));
            events.push((0, 0, vec![0xb0 | ch, 10, t.pan.min(127)]));
            events.push((0, 0, vec![0xb0 | ch, 91, t.reverb.min(127)]));
            for n in &t.notes {
                let (on, off) = (tick(n.start_s), tick(n.start_s + n.dur_s));
                events.push((
                    on,
                    2,
                    vec![0x90 | ch, n.pitch & 0x7f, n.velocity.clamp(1, 127)],
                ));
                events.push((off.max(on + 1), 1, vec![0x80 | ch, n.pitch & 0x7f, 0]));
            }
        }
        if let (Some(ch), false) = (voice, self.vocal.is_empty()) {
            events.push((0, 0, vec![0xc0 | ch, VOICE_PROGRAM]));
            events.push((0, 0, vec![0xb0 | ch, 7, 110]));
            for n in &self.vocal {
                let (on, off) = (tick(n.start_s), tick(n.start_s + n.dur_s));
                events.push((on, 2, vec![0x90 | ch, n.pitch & 0x7f, 96]));
                events.push((off.max(on + 1), 1, vec![0x80 | ch, n.pitch & 0x7f, 0]));
            }
        }
        events.sort_by_key(|(t, order, _)| (*t, *order));

        let mut track = Vec::new();
        // Tempo (microseconds per quarter note) and the time signature.
        let us = (60_000_000.0 / f64::from(self.tempo_bpm.max(1.0))).round() as u32;
        track.extend([0x00, 0xff, 0x51, 0x03]);
        track.extend(&us.to_be_bytes()[1..]);
        track.extend([0x00, 0xff, 0x58, 0x04, self.beats_per_bar.max(1), 2, 24, 8]);
        let mut now = 0u64;
        for (t, _, bytes) in events {
            write_varlen(&mut track, t - now);
            track.extend(bytes);
            now = t;
        }
        // The end, after the instruments' release.
        write_varlen(&mut track, tick(self.duration_s).saturating_sub(now));
        track.extend([0xff, 0x2f, 0x00]);

        let mut out = Vec::with_capacity(track.len() + 22);
        out.extend(b"MThd");
        out.extend(6u32.to_be_bytes());
        out.extend(0u16.to_be_bytes()); // format 0
        out.extend(1u16.to_be_bytes()); // one track
        out.extend(PPQ.to_be_bytes());
        out.extend(b"MTrk");
        out.extend((track.len() as u32).to_be_bytes());
        out.extend(track);
        out
    }
}

/// A MIDI variable-length quantity (7 bits a byte, high bit = more).
fn write_varlen(out: &mut Vec<u8>, mut v: u64) {
    let mut bytes = vec![(v & 0x7f) as u8];
    v >>= 7;
    while v > 0 {
        bytes.push(((v & 0x7f) as u8) | 0x80);
        v >>= 7;
    }
    out.extend(bytes.iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compose, SongRequest};

    fn read_varlen(b: &[u8], i: &mut usize) -> u64 {
        let mut v = 0u64;
        loop {
            let c = b[*i];
            *i += 1;
            v = (v << 7) | u64::from(c & 0x7f);
            if c & 0x80 == 0 {
                return v;
            }
        }
    }

    #[test]
    fn varlen_matches_the_standard_examples() {
        for (v, bytes) in [
            (0u64, vec![0x00u8]),
            (0x7f, vec![0x7f]),
            (0x80, vec![0x81, 0x00]),
            (0x2000, vec![0xc0, 0x00]),
            (0x0fff_ffff, vec![0xff, 0xff, 0xff, 0x7f]),
        ] {
            let mut out = Vec::new();
            write_varlen(&mut out, v);
            assert_eq!(out, bytes, "{v:#x}");
        }
    }

    #[test]
    fn the_file_carries_every_note_and_lasts_as_long_as_the_song() {
        let arr = compose(&SongRequest {
            prompt: "upbeat pop song with piano, bass and drums, 120 bpm".into(),
            lyrics: Some("[Verse]\nWalking down the street tonight\n[Chorus]\nSing it loud".into()),
            seed: 3,
            ..SongRequest::default()
        });
        let midi = arr.to_midi();
        assert_eq!(&midi[..4], b"MThd");
        assert_eq!(u16::from_be_bytes([midi[12], midi[13]]), PPQ);
        assert_eq!(&midi[14..18], b"MTrk");
        let len = u32::from_be_bytes([midi[18], midi[19], midi[20], midi[21]]) as usize;
        assert_eq!(midi.len(), 22 + len);

        // Walk the track: count note-ons, sum the delta times.
        let b = &midi[22..];
        let (mut i, mut ticks, mut ons, mut offs, mut tempo) = (0usize, 0u64, 0usize, 0usize, 0u32);
        let mut ended = false;
        while i < b.len() {
            ticks += read_varlen(b, &mut i);
            let status = b[i];
            i += 1;
            match status {
                0xff => {
                    let kind = b[i];
                    i += 1;
                    let n = read_varlen(b, &mut i) as usize;
                    if kind == 0x51 {
                        tempo = u32::from_be_bytes([0, b[i], b[i + 1], b[i + 2]]);
                    }
                    ended |= kind == 0x2f;
                    i += n;
                }
                s if s & 0xf0 == 0x90 => {
                    ons += 1;
                    i += 2;
                }
                s if s & 0xf0 == 0x80 => {
                    offs += 1;
                    i += 2;
                }
                s if s & 0xf0 == 0xb0 => i += 2,
                s if s & 0xf0 == 0xc0 => i += 1,
                s => panic!("unexpected status {s:#x} at {i}"),
            }
        }
        assert!(ended, "no end-of-track event");
        let notes: usize =
            arr.tracks.iter().map(|t| t.notes.len()).sum::<usize>() + arr.vocal.len();
        assert!(!arr.vocal.is_empty());
        assert_eq!((ons, offs), (notes, notes));
        assert_eq!(
            tempo,
            (60_000_000.0 / f64::from(arr.tempo_bpm)).round() as u32
        );
        let seconds = ticks as f64 * 60.0 / (f64::from(PPQ) * f64::from(arr.tempo_bpm));
        assert!(
            (seconds - f64::from(arr.duration_s)).abs() < 0.05,
            "{seconds} vs {}",
            arr.duration_s
        );
    }
}
