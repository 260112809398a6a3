//! Keys, scales, chords and the chord progressions each genre draws from.

use serde::Serialize;
use std::fmt;

/// Pitch-class names, flats for the black keys a song is usually written in.
pub(crate) const NOTE_NAMES: [&str; 12] = [
    "C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Major,
    /// Natural minor, with the raised seventh where a dominant chord needs it.
    Minor,
}

/// A key: tonic pitch class (0 = C … 11 = B) and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Key {
    pub tonic: u8,
    pub mode: Mode,
}

impl Key {
    /// Semitones above the tonic of the seven scale degrees.
    pub fn intervals(&self) -> [u8; 7] {
        match self.mode {
            Mode::Major => [0, 2, 4, 5, 7, 9, 11],
            Mode::Minor => [0, 2, 3, 5, 7, 8, 10],
        }
    }

    /// Pitch classes of the scale.
    pub fn scale(&self) -> [u8; 7] {
        self.intervals().map(|i| (self.tonic + i) % 12)
    }

    /// "A minor", "Eb major".
    pub fn name(&self) -> String {
        format!(
            "{} {}",
            NOTE_NAMES[usize::from(self.tonic % 12)],
            match self.mode {
                Mode::Major => "major",
                Mode::Minor => "minor",
            }
        )
    }

    pub(crate) fn in_scale(&self, pitch: i32) -> bool {
        let pc = pitch.rem_euclid(12) as u8;
        self.scale().contains(&pc)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Major,
    Minor,
    Diminished,
    Dominant7,
    Major7,
    Minor7,
    HalfDiminished7,
    Sus4,
    /// Root and fifth (rock and metal guitars).
    Power,
}

impl Quality {
    pub fn intervals(&self) -> &'static [u8] {
        match self {
            Quality::Major => &[0, 4, 7],
            Quality::Minor => &[0, 3, 7],
            Quality::Diminished => &[0, 3, 6],
            Quality::Dominant7 => &[0, 4, 7, 10],
            Quality::Major7 => &[0, 4, 7, 11],
            Quality::Minor7 => &[0, 3, 7, 10],
            Quality::HalfDiminished7 => &[0, 3, 6, 10],
            Quality::Sus4 => &[0, 5, 7],
            Quality::Power => &[0, 7],
        }
    }

    fn suffix(&self) -> &'static str {
        match self {
            Quality::Major => "",
            Quality::Minor => "m",
            Quality::Diminished => "dim",
            Quality::Dominant7 => "7",
            Quality::Major7 => "maj7",
            Quality::Minor7 => "m7",
            Quality::HalfDiminished7 => "m7b5",
            Quality::Sus4 => "sus4",
            Quality::Power => "5",
        }
    }
}

/// A chord: root pitch class and quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Chord {
    pub root: u8,
    pub quality: Quality,
}

impl Chord {
    /// Pitch classes of the chord's tones, root first.
    pub fn tones(&self) -> Vec<u8> {
        self.quality
            .intervals()
            .iter()
            .map(|i| (self.root + i) % 12)
            .collect()
    }

    /// "Am", "G7", "Fmaj7".
    pub fn symbol(&self) -> String {
        format!(
            "{}{}",
            NOTE_NAMES[usize::from(self.root % 12)],
            self.quality.suffix()
        )
    }

    pub(crate) fn contains(&self, pitch: i32) -> bool {
        let pc = pitch.rem_euclid(12) as u8;
        self.tones().contains(&pc)
    }

    pub(crate) fn fifth(&self) -> u8 {
        let iv = self.quality.intervals();
        let fifth = iv.iter().copied().find(|&i| i == 7 || i == 6).unwrap_or(7);
        (self.root + fifth) % 12
    }
}

impl fmt::Display for Chord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.symbol())
    }
}

/// A chord as semitones above the tonic and a quality.
pub(crate) type Step = (u8, Quality);
pub(crate) type Progression = &'static [Step];

use Quality::{
    Diminished as Dim, Dominant7 as D7, HalfDiminished7 as Hd7, Major as Maj, Major7 as M7,
    Minor as Min, Minor7 as m7, Power as P5,
};

// Major-key degrees.
const I: Step = (0, Maj);
const II: Step = (2, Min);
const III: Step = (4, Min);
const IV: Step = (5, Maj);
const V: Step = (7, Maj);
const VI: Step = (9, Min);
const BVII: Step = (10, Maj);
const VIIDIM: Step = (11, Dim);
const I7: Step = (0, D7);
const IV7: Step = (5, D7);
const V7: Step = (7, D7);
const IMAJ7: Step = (0, M7);
const IVMAJ7: Step = (5, M7);
const II7: Step = (2, m7);
const III7: Step = (4, m7);
const VI7: Step = (9, m7);
// Minor-key degrees.
const MI: Step = (0, Min);
const MII: Step = (2, Dim);
const MIII: Step = (3, Maj);
const MIV: Step = (5, Min);
const MV: Step = (7, Min);
const MVMAJ: Step = (7, Maj);
const MVI: Step = (8, Maj);
const MVII: Step = (10, Maj);
const MI7: Step = (0, m7);
const MII7: Step = (2, Hd7);
const MIV7: Step = (5, m7);
const MVIMAJ7: Step = (8, M7);
const MIIIMAJ7: Step = (3, M7);
// Power chords.
const PI: Step = (0, P5);
const PBII: Step = (1, P5);
const PIII: Step = (3, P5);
const PIV: Step = (5, P5);
const PV: Step = (7, P5);
const PVI: Step = (8, P5);
const PVII: Step = (10, P5);

/// The progressions a style picks from, per mode.
pub(crate) struct Progressions {
    pub major: &'static [Progression],
    pub minor: &'static [Progression],
}

pub(crate) const POP: Progressions = Progressions {
    major: &[
        &[I, V, VI, IV],
        &[VI, IV, I, V],
        &[I, VI, IV, V],
        &[I, IV, VI, V],
        &[IV, I, V, VI],
    ],
    minor: &[
        &[MI, MVI, MIII, MVII],
        &[MI, MIV, MVI, MVMAJ],
        &[MI, MVII, MVI, MVII],
        &[MVI, MVII, MI, MI],
    ],
};

pub(crate) const ROCK: Progressions = Progressions {
    major: &[
        &[I, IV, V, IV],
        &[I, BVII, IV, I],
        &[I, V, IV, IV],
        &[VI, IV, I, V],
    ],
    minor: &[
        &[MI, MVII, MVI, MVII],
        &[MI, MVI, MVII, MI],
        &[MI, MIV, MVII, MI],
    ],
};

pub(crate) const METAL: Progressions = Progressions {
    major: &[&[PI, PV, PVI, PIV], &[PI, PVII, PIV, PI]],
    minor: &[
        &[PI, PVI, PVII, PI],
        &[PI, PBII, PI, PVII],
        &[PI, PIV, PVI, PV],
        &[PI, PIII, PVII, PVI],
    ],
};

pub(crate) const JAZZ: Progressions = Progressions {
    major: &[
        &[II7, V7, IMAJ7, IMAJ7],
        &[IMAJ7, VI7, II7, V7],
        &[III7, VI7, II7, V7],
        &[IMAJ7, IVMAJ7, III7, VI7],
    ],
    minor: &[
        &[MII7, V7, MI7, MI7],
        &[MI7, MIV7, V7, MI7],
        &[MI7, MVIMAJ7, MII7, V7],
    ],
};

pub(crate) const BLUES: Progressions = Progressions {
    major: &[&[I7, I7, I7, I7, IV7, IV7, I7, I7, V7, IV7, I7, V7]],
    minor: &[&[
        MI7, MI7, MI7, MI7, MIV7, MIV7, MI7, MI7, MVIMAJ7, V7, MI7, V7,
    ]],
};

pub(crate) const FOLK: Progressions = Progressions {
    major: &[
        &[I, IV, I, V],
        &[I, V, IV, I],
        &[I, VI, IV, V],
        &[I, IV, V, I],
    ],
    minor: &[
        &[MI, MVII, MVI, MVII],
        &[MI, MIV, MI, MVMAJ],
        &[MI, MIII, MVII, MI],
    ],
};

pub(crate) const COUNTRY: Progressions = Progressions {
    major: &[
        &[I, IV, V, I],
        &[I, I, IV, V],
        &[I, V, VI, IV],
        &[IV, I, V, I],
    ],
    minor: &[&[MI, MVI, MIII, MVII], &[MI, MIV, MVII, MIII]],
};

pub(crate) const ELECTRONIC: Progressions = Progressions {
    major: &[
        &[VI, IV, I, V],
        &[I, V, VI, IV],
        &[IV, V, VI, VI],
        &[IV, VI, V, V],
    ],
    minor: &[
        &[MI, MVI, MIII, MVII],
        &[MI, MVI, MIV, MVII],
        &[MVI, MIII, MVII, MI],
    ],
};

pub(crate) const HIPHOP: Progressions = Progressions {
    major: &[&[IMAJ7, VI7, II7, V7], &[IV, III, VI, VI]],
    minor: &[
        &[MI, MI, MVI, MVI],
        &[MI7, MIV7, MI7, MIV7],
        &[MI, MVI, MIII, MVII],
        &[MI7, MIV7, MVIMAJ7, MVMAJ],
    ],
};

pub(crate) const RNB: Progressions = Progressions {
    major: &[
        &[IMAJ7, VI7, II7, V7],
        &[IVMAJ7, III7, VI7, II7],
        &[II7, V7, III7, VI7],
    ],
    minor: &[
        &[MI7, MIV7, MVIMAJ7, MVMAJ],
        &[MI7, MIIIMAJ7, MVIMAJ7, MII7],
    ],
};

pub(crate) const LOFI: Progressions = Progressions {
    major: &[
        &[II7, V7, IMAJ7, VI7],
        &[IVMAJ7, III7, II7, IMAJ7],
        &[IMAJ7, IVMAJ7, III7, VI7],
    ],
    minor: &[&[MI7, MIV7, MVIMAJ7, V7], &[MIV7, MI7, MVIMAJ7, MIIIMAJ7]],
};

pub(crate) const CLASSICAL: Progressions = Progressions {
    major: &[
        &[I, IV, V, I],
        &[I, VI, II, V],
        &[I, V, VI, III, IV, I, IV, V],
        &[I, IV, VIIDIM, III, VI, II, V, I],
    ],
    minor: &[
        &[MI, MIV, MVMAJ, MI],
        &[MI, MVI, MIV, MVMAJ],
        &[MI, MIV, MVII, MIII, MVI, MII, MVMAJ, MI],
    ],
};

pub(crate) const AMBIENT: Progressions = Progressions {
    major: &[
        &[IMAJ7, IVMAJ7],
        &[I, V, VI, IV],
        &[IMAJ7, VI7, IVMAJ7, IVMAJ7],
    ],
    minor: &[
        &[MI7, MVIMAJ7],
        &[MI, MVI, MIII, MVII],
        &[MI7, MIV7, MVIMAJ7, MIIIMAJ7],
    ],
};

pub(crate) const REGGAE: Progressions = Progressions {
    major: &[&[I, IV, I, V], &[I, VI, IV, V], &[I, IV, V, IV]],
    minor: &[&[MI, MIV, MI, MIV], &[MI, MVII, MVI, MVII]],
};

pub(crate) const FUNK: Progressions = Progressions {
    major: &[&[I7, I7, IV7, IV7], &[I7, IV7, I7, V7]],
    minor: &[&[MI7, MI7, MIV7, MIV7], &[MI7, MIV7, MI7, MV]],
};

impl Key {
    /// The chord a progression step stands for in this key.
    pub(crate) fn chord(&self, step: Step) -> Chord {
        Chord {
            root: (self.tonic + step.0) % 12,
            quality: step.1,
        }
    }

    /// The tonic chord in the style's flavour of `like` (a chord of the style).
    pub(crate) fn tonic_chord(&self, like: Quality) -> Chord {
        let quality = match (self.mode, like) {
            (_, Quality::Power) => Quality::Power,
            (Mode::Major, Quality::Major7 | Quality::Minor7) => Quality::Major7,
            (Mode::Minor, Quality::Major7 | Quality::Minor7) => Quality::Minor7,
            (Mode::Major, _) => Quality::Major,
            (Mode::Minor, _) => Quality::Minor,
        };
        Chord {
            root: self.tonic,
            quality,
        }
    }

    /// The dominant (V, major even in minor) in the style's flavour.
    pub(crate) fn dominant(&self, like: Quality) -> Chord {
        let quality = match like {
            Quality::Power => Quality::Power,
            Quality::Major7 | Quality::Minor7 | Quality::Dominant7 => Quality::Dominant7,
            _ => Quality::Major,
        };
        Chord {
            root: (self.tonic + 7) % 12,
            quality,
        }
    }
}

/// Frequency of a MIDI note (A4 = 69 = 440 Hz).
pub(crate) fn midi_to_hz(pitch: f32) -> f32 {
    440.0 * 2f32.powf((pitch - 69.0) / 12.0)
}

pub(crate) fn hz_to_midi(hz: f32) -> f32 {
    69.0 + 12.0 * (hz / 440.0).log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tones() {
        let k = Key {
            tonic: 9,
            mode: Mode::Minor,
        };
        assert_eq!(k.name(), "A minor");
        assert_eq!(k.scale(), [9, 11, 0, 2, 4, 5, 7]);
        let c = k.chord(MVI);
        assert_eq!(c.symbol(), "F");
        assert_eq!(c.tones(), vec![5, 9, 0]);
        assert_eq!(k.dominant(Quality::Minor7).symbol(), "E7");
        assert!((midi_to_hz(69.0) - 440.0).abs() < 1e-3);
        assert!((hz_to_midi(220.0) - 57.0).abs() < 1e-3);
    }
}
