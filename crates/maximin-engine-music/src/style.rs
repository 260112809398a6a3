//! Reading the prompt: genre, mood, tempo, key and the instruments named, and
//! each genre's defaults (tempo range, progressions, instruments, patterns).

use crate::rng::Rng;
use crate::theory::{self, Key, Mode, Progressions};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Genre {
    Pop,
    Rock,
    Metal,
    Jazz,
    Blues,
    Folk,
    Country,
    Electronic,
    HipHop,
    RnB,
    LoFi,
    Classical,
    Ambient,
    Reggae,
    Funk,
}

impl Genre {
    pub fn name(&self) -> &'static str {
        match self {
            Genre::Pop => "pop",
            Genre::Rock => "rock",
            Genre::Metal => "metal",
            Genre::Jazz => "jazz",
            Genre::Blues => "blues",
            Genre::Folk => "folk",
            Genre::Country => "country",
            Genre::Electronic => "electronic",
            Genre::HipHop => "hip hop",
            Genre::RnB => "r&b",
            Genre::LoFi => "lo-fi",
            Genre::Classical => "classical",
            Genre::Ambient => "ambient",
            Genre::Reggae => "reggae",
            Genre::Funk => "funk",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mood {
    Neutral,
    Happy,
    Sad,
    Calm,
    Energetic,
    Dark,
    Romantic,
}

impl Mood {
    pub fn name(&self) -> &'static str {
        match self {
            Mood::Neutral => "neutral",
            Mood::Happy => "happy",
            Mood::Sad => "sad",
            Mood::Calm => "calm",
            Mood::Energetic => "energetic",
            Mood::Dark => "dark",
            Mood::Romantic => "romantic",
        }
    }
}

/// Keywords per genre, searched as whole words in the normalised prompt; the
/// genre named first wins.
const GENRE_WORDS: &[(Genre, &[&str])] = &[
    (Genre::LoFi, &["lo fi", "lofi", "chillhop", "chill hop"]),
    (
        Genre::HipHop,
        &["hip hop", "hiphop", "rap", "trap", "boom bap", "drill"],
    ),
    (
        Genre::RnB,
        &["r&b", "rnb", "r and b", "soul", "neo soul", "motown"],
    ),
    (
        Genre::Metal,
        &["metal", "heavy metal", "thrash", "metalcore", "djent"],
    ),
    (
        Genre::Rock,
        &["rock", "punk", "grunge", "indie", "alternative", "garage"],
    ),
    (
        Genre::Electronic,
        &[
            "electronic",
            "edm",
            "house",
            "techno",
            "trance",
            "dance",
            "synthwave",
            "electro",
            "dubstep",
            "drum and bass",
            "dnb",
            "club",
            "eurodance",
            "future bass",
        ],
    ),
    (
        Genre::Jazz,
        &[
            "jazz",
            "swing",
            "bebop",
            "bossa nova",
            "bossa",
            "big band",
            "smooth jazz",
        ],
    ),
    (Genre::Blues, &["blues", "bluesy", "shuffle"]),
    (
        Genre::Country,
        &["country", "bluegrass", "americana", "western"],
    ),
    (
        Genre::Folk,
        &[
            "folk",
            "acoustic",
            "singer songwriter",
            "celtic",
            "campfire",
        ],
    ),
    (
        Genre::Classical,
        &[
            "classical",
            "orchestral",
            "orchestra",
            "symphonic",
            "symphony",
            "baroque",
            "cinematic",
            "film score",
            "soundtrack",
            "chamber",
            "sonata",
            "waltz",
        ],
    ),
    (
        Genre::Ambient,
        &[
            "ambient",
            "drone",
            "meditation",
            "new age",
            "atmospheric",
            "soundscape",
        ],
    ),
    (Genre::Reggae, &["reggae", "ska", "dub", "dancehall"]),
    (Genre::Funk, &["funk", "funky", "disco", "groove"]),
    (
        Genre::Pop,
        &[
            "pop",
            "k pop",
            "kpop",
            "j pop",
            "synthpop",
            "ballad",
            "power pop",
        ],
    ),
];

const MOOD_WORDS: &[(Mood, &[&str])] = &[
    (
        Mood::Sad,
        &[
            "sad",
            "melancholy",
            "melancholic",
            "sorrow",
            "sorrowful",
            "heartbreak",
            "heartbroken",
            "lonely",
            "tearful",
            "tears",
            "grief",
            "nostalgic",
            "bittersweet",
            "somber",
            "sombre",
            "mournful",
            "gloomy",
            "longing",
        ],
    ),
    (
        Mood::Dark,
        &[
            "dark",
            "ominous",
            "mysterious",
            "eerie",
            "haunting",
            "spooky",
            "sinister",
            "tense",
            "angry",
            "menacing",
            "evil",
            "horror",
            "brooding",
        ],
    ),
    (
        Mood::Happy,
        &[
            "happy",
            "joyful",
            "joyous",
            "cheerful",
            "bright",
            "fun",
            "uplifting",
            "sunny",
            "playful",
            "feel good",
            "optimistic",
            "summer",
            "celebration",
            "party",
        ],
    ),
    (
        Mood::Energetic,
        &[
            "energetic",
            "powerful",
            "intense",
            "driving",
            "aggressive",
            "hype",
            "exciting",
            "epic",
            "anthemic",
            "anthem",
            "bold",
            "fierce",
            "heroic",
            "triumphant",
        ],
    ),
    (
        Mood::Calm,
        &[
            "calm", "relaxing", "relaxed", "peaceful", "chill", "mellow", "gentle", "soothing",
            "dreamy", "serene", "quiet", "tranquil", "lullaby", "sleepy", "soft",
        ],
    ),
    (
        Mood::Romantic,
        &[
            "romantic",
            "love",
            "tender",
            "sensual",
            "sweet",
            "intimate",
            "passionate",
            "warm",
        ],
    ),
];

/// What a track does in the arrangement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The tune: plays the melody in instrumental passages (and everywhere in
    /// an instrumental song).
    Melody,
    /// Chords, in the genre's comping pattern.
    Harmony,
    /// Sustained chords under the rest.
    Pad,
    Bass,
    Drums,
}

/// An instrument as a General MIDI program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Instrument {
    pub name: &'static str,
    /// General MIDI program, 0-based (for drums: the kit in bank 128).
    pub program: u8,
}

const fn inst(name: &'static str, program: u8) -> Instrument {
    Instrument { name, program }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Can play chords (and the melody when it is the only one named).
    Chordal,
    /// A single line.
    Lead,
    Bass,
    Drums,
}

/// Named instruments: keywords (whole words, normalised), instrument, class.
/// Longer phrases come first so "electric guitar" is not read as "guitar".
const INSTRUMENT_WORDS: &[(&[&str], Instrument, Class)] = &[
    (
        &["no drums", "without drums", "drumless", "no percussion"],
        inst("none", 0),
        Class::Drums,
    ),
    (
        &["electric piano", "rhodes", "e piano", "epiano", "wurlitzer"],
        inst("electric piano", 4),
        Class::Chordal,
    ),
    (
        &["grand piano", "piano", "keys", "keyboard"],
        inst("piano", 0),
        Class::Chordal,
    ),
    (&["hammond", "organ"], inst("organ", 16), Class::Chordal),
    (&["harpsichord"], inst("harpsichord", 6), Class::Chordal),
    (&["clavinet", "clav"], inst("clavinet", 7), Class::Chordal),
    (
        &[
            "nylon guitar",
            "classical guitar",
            "spanish guitar",
            "flamenco guitar",
        ],
        inst("nylon guitar", 24),
        Class::Chordal,
    ),
    (
        &[
            "distorted guitar",
            "distortion guitar",
            "heavy guitar",
            "guitar riffs",
            "power chords",
        ],
        inst("distortion guitar", 30),
        Class::Chordal,
    ),
    (
        &["electric guitar"],
        inst("electric guitar", 27),
        Class::Chordal,
    ),
    (&["jazz guitar"], inst("jazz guitar", 26), Class::Chordal),
    (
        &["acoustic guitar", "guitar", "guitars"],
        inst("acoustic guitar", 25),
        Class::Chordal,
    ),
    (
        &["ukulele", "uke"],
        inst("nylon guitar", 24),
        Class::Chordal,
    ),
    (&["mandolin"], inst("acoustic guitar", 25), Class::Chordal),
    (&["banjo"], inst("banjo", 105), Class::Chordal),
    (&["harp"], inst("harp", 46), Class::Chordal),
    (&["accordion"], inst("accordion", 21), Class::Chordal),
    (
        &[
            "strings",
            "string section",
            "string quartet",
            "orchestra",
            "orchestral",
        ],
        inst("strings", 48),
        Class::Chordal,
    ),
    (
        &["synth pad", "pad", "pads"],
        inst("synth pad", 89),
        Class::Chordal,
    ),
    (
        &["choir", "chorus voices", "aahs"],
        inst("choir", 52),
        Class::Chordal,
    ),
    (
        &["upright bass", "double bass", "acoustic bass", "contrabass"],
        inst("acoustic bass", 32),
        Class::Bass,
    ),
    (
        &[
            "808 bass",
            "synth bass",
            "808",
            "sub bass",
            "bass synth",
            "synth bassline",
        ],
        inst("synth bass", 38),
        Class::Bass,
    ),
    (&["slap bass"], inst("slap bass", 36), Class::Bass),
    (&["fretless"], inst("fretless bass", 35), Class::Bass),
    (
        &["bass", "bass guitar", "electric bass", "bassline"],
        inst("electric bass", 33),
        Class::Bass,
    ),
    (&["violin", "fiddle"], inst("violin", 40), Class::Lead),
    (&["viola"], inst("viola", 41), Class::Lead),
    (&["cello"], inst("cello", 42), Class::Lead),
    (&["trumpet", "trumpets"], inst("trumpet", 56), Class::Lead),
    (&["trombone"], inst("trombone", 57), Class::Lead),
    (
        &["french horn", "horn", "horns"],
        inst("french horn", 60),
        Class::Lead,
    ),
    (
        &["brass", "brass section"],
        inst("brass section", 61),
        Class::Lead,
    ),
    (
        &["tenor sax", "tenor saxophone"],
        inst("tenor sax", 66),
        Class::Lead,
    ),
    (
        &["sax", "saxophone", "alto sax", "alto saxophone"],
        inst("alto sax", 65),
        Class::Lead,
    ),
    (&["flute", "flutes"], inst("flute", 73), Class::Lead),
    (&["piccolo"], inst("piccolo", 72), Class::Lead),
    (&["clarinet"], inst("clarinet", 71), Class::Lead),
    (&["oboe"], inst("oboe", 68), Class::Lead),
    (&["bassoon"], inst("bassoon", 70), Class::Lead),
    (&["recorder"], inst("recorder", 74), Class::Lead),
    (
        &["pan flute", "panpipes"],
        inst("pan flute", 75),
        Class::Lead,
    ),
    (
        &["whistle", "tin whistle"],
        inst("whistle", 78),
        Class::Lead,
    ),
    (&["harmonica"], inst("harmonica", 22), Class::Lead),
    (&["bagpipe", "bagpipes"], inst("bagpipe", 109), Class::Lead),
    (&["sitar"], inst("sitar", 104), Class::Lead),
    (&["koto"], inst("koto", 107), Class::Lead),
    (&["shamisen"], inst("shamisen", 106), Class::Lead),
    (&["kalimba"], inst("kalimba", 108), Class::Lead),
    (
        &["steel drums", "steel drum", "steelpan"],
        inst("steel drums", 114),
        Class::Lead,
    ),
    (&["marimba"], inst("marimba", 12), Class::Lead),
    (
        &["vibraphone", "vibes"],
        inst("vibraphone", 11),
        Class::Lead,
    ),
    (&["xylophone"], inst("xylophone", 13), Class::Lead),
    (&["glockenspiel"], inst("glockenspiel", 9), Class::Lead),
    (&["celesta"], inst("celesta", 8), Class::Lead),
    (&["music box"], inst("music box", 10), Class::Lead),
    (
        &["bells", "tubular bells", "chimes"],
        inst("tubular bells", 14),
        Class::Lead,
    ),
    (
        &["square lead", "chiptune", "8 bit", "8bit"],
        inst("square lead", 80),
        Class::Lead,
    ),
    (
        &[
            "synth lead",
            "lead synth",
            "synth",
            "synths",
            "synthesizer",
            "synthesizers",
        ],
        inst("saw lead", 81),
        Class::Lead,
    ),
    (
        &["drums", "drum kit", "drum", "percussion", "beat", "beats"],
        inst("drums", 0),
        Class::Drums,
    ),
];

/// A genre's sound: tempo range, swing, progressions, default instruments and
/// patterns.
pub(crate) struct Profile {
    pub tempo: (f32, f32),
    /// Eighth-note swing: 0.5 straight, about 0.64 swung.
    pub swing: f32,
    pub progressions: Progressions,
    pub melody: Instrument,
    pub harmony: Instrument,
    pub pad: Option<Instrument>,
    pub bass: Instrument,
    /// Drum kit (bank 128 program), or none.
    pub kit: Option<u8>,
    pub comp: Comp,
    pub bass_pattern: BassPattern,
    pub groove: Groove,
    /// Minor unless the mood says otherwise.
    pub minor_default: bool,
    /// Keys the style likes (pitch classes).
    pub keys: &'static [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comp {
    /// Chords on beats 1 and 3.
    Block,
    /// Broken chords in eighths.
    Arpeggio,
    /// Strummed eighths with accents.
    Strum,
    /// Power chords in driving eighths.
    Power,
    /// Whole-bar chords.
    Sustain,
    /// Off-beat chops.
    Skank,
    /// Jazz comping (Charleston rhythm).
    Charleston,
    /// Syncopated stabs.
    Stabs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BassPattern {
    Whole,
    RootFifth,
    Eighths,
    Walking,
    Syncopated,
    Octaves,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Groove {
    None,
    Backbeat,
    Rock,
    Metal,
    FourOnFloor,
    BoomBap,
    JazzRide,
    Shuffle,
    Train,
    OneDrop,
    Funk,
    Ballad,
}

const ALL_KEYS: &[u8] = &[0, 2, 4, 5, 7, 9, 10, 3];
const GUITAR_KEYS: &[u8] = &[4, 9, 2, 7, 0];
const FLAT_KEYS: &[u8] = &[5, 10, 3, 0, 8];

pub(crate) fn profile(genre: Genre) -> Profile {
    use BassPattern as B;
    use Comp as C;
    use Groove as G;
    match genre {
        Genre::Pop => Profile {
            tempo: (92.0, 124.0),
            swing: 0.5,
            progressions: theory::POP,
            melody: inst("saw lead", 81),
            harmony: inst("piano", 0),
            pad: Some(inst("strings", 48)),
            bass: inst("electric bass", 33),
            kit: Some(0),
            comp: C::Block,
            bass_pattern: B::Eighths,
            groove: G::Backbeat,
            minor_default: false,
            keys: ALL_KEYS,
        },
        Genre::Rock => Profile {
            tempo: (108.0, 144.0),
            swing: 0.5,
            progressions: theory::ROCK,
            melody: inst("distortion guitar", 30),
            harmony: inst("overdriven guitar", 29),
            pad: None,
            bass: inst("picked bass", 34),
            kit: Some(0),
            comp: C::Power,
            bass_pattern: B::Eighths,
            groove: G::Rock,
            minor_default: false,
            keys: GUITAR_KEYS,
        },
        Genre::Metal => Profile {
            tempo: (128.0, 176.0),
            swing: 0.5,
            progressions: theory::METAL,
            melody: inst("distortion guitar", 30),
            harmony: inst("distortion guitar", 30),
            pad: None,
            bass: inst("picked bass", 34),
            kit: Some(16),
            comp: C::Power,
            bass_pattern: B::Eighths,
            groove: G::Metal,
            minor_default: true,
            keys: &[4, 2, 9, 7],
        },
        Genre::Jazz => Profile {
            tempo: (96.0, 160.0),
            swing: 0.64,
            progressions: theory::JAZZ,
            melody: inst("alto sax", 65),
            harmony: inst("piano", 0),
            pad: None,
            bass: inst("acoustic bass", 32),
            kit: Some(32),
            comp: C::Charleston,
            bass_pattern: B::Walking,
            groove: G::JazzRide,
            minor_default: false,
            keys: FLAT_KEYS,
        },
        Genre::Blues => Profile {
            tempo: (72.0, 112.0),
            swing: 0.66,
            progressions: theory::BLUES,
            melody: inst("clean electric guitar", 27),
            harmony: inst("piano", 0),
            pad: Some(inst("organ", 16)),
            bass: inst("electric bass", 33),
            kit: Some(0),
            comp: C::Block,
            bass_pattern: B::Walking,
            groove: G::Shuffle,
            minor_default: false,
            keys: &[4, 9, 7, 0, 10],
        },
        Genre::Folk => Profile {
            tempo: (84.0, 120.0),
            swing: 0.5,
            progressions: theory::FOLK,
            melody: inst("flute", 73),
            harmony: inst("acoustic guitar", 25),
            pad: None,
            bass: inst("acoustic bass", 32),
            kit: Some(40),
            comp: C::Arpeggio,
            bass_pattern: B::RootFifth,
            groove: G::Ballad,
            minor_default: false,
            keys: GUITAR_KEYS,
        },
        Genre::Country => Profile {
            tempo: (92.0, 132.0),
            swing: 0.5,
            progressions: theory::COUNTRY,
            melody: inst("fiddle", 110),
            harmony: inst("acoustic guitar", 25),
            pad: None,
            bass: inst("electric bass", 33),
            kit: Some(0),
            comp: C::Strum,
            bass_pattern: B::RootFifth,
            groove: G::Train,
            minor_default: false,
            keys: GUITAR_KEYS,
        },
        Genre::Electronic => Profile {
            tempo: (118.0, 132.0),
            swing: 0.5,
            progressions: theory::ELECTRONIC,
            melody: inst("saw lead", 81),
            harmony: inst("synth pad", 89),
            pad: Some(inst("polysynth", 90)),
            bass: inst("synth bass", 38),
            kit: Some(25),
            comp: C::Stabs,
            bass_pattern: B::Octaves,
            groove: G::FourOnFloor,
            minor_default: true,
            keys: ALL_KEYS,
        },
        Genre::HipHop => Profile {
            tempo: (78.0, 98.0),
            swing: 0.56,
            progressions: theory::HIPHOP,
            melody: inst("electric piano", 4),
            harmony: inst("electric piano", 4),
            pad: Some(inst("warm pad", 89)),
            bass: inst("synth bass", 38),
            kit: Some(25),
            comp: C::Sustain,
            bass_pattern: B::Syncopated,
            groove: G::BoomBap,
            minor_default: true,
            keys: ALL_KEYS,
        },
        Genre::RnB => Profile {
            tempo: (64.0, 96.0),
            swing: 0.56,
            progressions: theory::RNB,
            melody: inst("electric piano", 4),
            harmony: inst("electric piano", 4),
            pad: Some(inst("strings", 48)),
            bass: inst("fretless bass", 35),
            kit: Some(25),
            comp: C::Stabs,
            bass_pattern: B::Syncopated,
            groove: G::BoomBap,
            minor_default: false,
            keys: FLAT_KEYS,
        },
        Genre::LoFi => Profile {
            tempo: (70.0, 90.0),
            swing: 0.6,
            progressions: theory::LOFI,
            melody: inst("vibraphone", 11),
            harmony: inst("electric piano", 4),
            pad: None,
            bass: inst("electric bass", 33),
            kit: Some(0),
            comp: C::Sustain,
            bass_pattern: B::Syncopated,
            groove: G::BoomBap,
            minor_default: false,
            keys: FLAT_KEYS,
        },
        Genre::Classical => Profile {
            tempo: (66.0, 116.0),
            swing: 0.5,
            progressions: theory::CLASSICAL,
            melody: inst("violin", 40),
            harmony: inst("piano", 0),
            pad: Some(inst("strings", 48)),
            bass: inst("cello", 42),
            kit: None,
            comp: C::Arpeggio,
            bass_pattern: B::Whole,
            groove: G::None,
            minor_default: false,
            keys: ALL_KEYS,
        },
        Genre::Ambient => Profile {
            tempo: (60.0, 80.0),
            swing: 0.5,
            progressions: theory::AMBIENT,
            melody: inst("vibraphone", 11),
            harmony: inst("warm pad", 89),
            pad: Some(inst("new age pad", 88)),
            bass: inst("synth bass", 39),
            kit: None,
            comp: C::Sustain,
            bass_pattern: B::Whole,
            groove: G::None,
            minor_default: false,
            keys: ALL_KEYS,
        },
        Genre::Reggae => Profile {
            tempo: (68.0, 92.0),
            swing: 0.54,
            progressions: theory::REGGAE,
            melody: inst("trumpet", 56),
            harmony: inst("clean electric guitar", 27),
            pad: Some(inst("organ", 16)),
            bass: inst("electric bass", 33),
            kit: Some(0),
            comp: C::Skank,
            bass_pattern: B::Syncopated,
            groove: G::OneDrop,
            minor_default: false,
            keys: &[7, 9, 2, 0, 5],
        },
        Genre::Funk => Profile {
            tempo: (98.0, 118.0),
            swing: 0.52,
            progressions: theory::FUNK,
            melody: inst("brass section", 61),
            harmony: inst("clavinet", 7),
            pad: None,
            bass: inst("slap bass", 36),
            kit: Some(0),
            comp: C::Stabs,
            bass_pattern: B::Syncopated,
            groove: G::Funk,
            minor_default: false,
            keys: &[4, 9, 2, 7],
        },
    }
}

/// What the prompt asked for, resolved against the genre's defaults.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub genre: Genre,
    pub mood: Mood,
    pub tempo_bpm: f32,
    pub key: Key,
    pub melody: Instrument,
    pub harmony: Instrument,
    pub pad: Option<Instrument>,
    pub bass: Instrument,
    pub kit: Option<u8>,
    pub swing: f32,
}

/// The prompt lowercased, every run of characters other than letters, digits,
/// `&` and `#` one space, with a space at each end (so `" word "` finds
/// whole words).
pub(crate) fn normalise(prompt: &str) -> String {
    let mut out = String::with_capacity(prompt.len() + 2);
    out.push(' ');
    let mut space = true;
    for c in prompt.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '&' || c == '#' {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if !space {
        out.push(' ');
    }
    out
}

/// Byte position of the first whole-word occurrence of any of `words`.
fn first_of(text: &str, words: &[&str]) -> Option<usize> {
    words
        .iter()
        .filter_map(|w| text.find(&format!(" {w} ")))
        .min()
}

fn tempo_in(text: &str) -> Option<f32> {
    let words: Vec<&str> = text.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        // "120 bpm", "120bpm", "bpm 120", "tempo 120"
        let number = if let Some(n) = w.strip_suffix("bpm") {
            if n.is_empty() {
                i.checked_sub(1)
                    .and_then(|j| words.get(j))
                    .and_then(|p| p.parse::<f32>().ok())
                    .or_else(|| words.get(i + 1).and_then(|p| p.parse::<f32>().ok()))
            } else {
                n.parse::<f32>().ok()
            }
        } else if *w == "tempo" {
            words.get(i + 1).and_then(|p| p.parse::<f32>().ok())
        } else {
            None
        };
        if let Some(n) = number {
            if n.is_finite() && n > 0.0 {
                return Some(n.clamp(40.0, 240.0));
            }
        }
    }
    None
}

fn pitch_class(name: &str) -> Option<u8> {
    let mut chars = name.chars();
    let base = match chars.next()? {
        'c' => 0,
        'd' => 2,
        'e' => 4,
        'f' => 5,
        'g' => 7,
        'a' => 9,
        'b' => 11,
        _ => return None,
    };
    let rest: String = chars.collect();
    let shift: i32 = match rest.as_str() {
        "" => 0,
        "#" | "sharp" => 1,
        "b" | "flat" => -1,
        _ => return None,
    };
    Some((base + shift).rem_euclid(12) as u8)
}

/// "in A minor", "D major", "key of F#", "Bb minor", "F sharp minor".
fn key_in(text: &str) -> (Option<u8>, Option<Mode>) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mode_at = |i: usize| match words.get(i).copied() {
        Some("major" | "maj") => Some(Mode::Major),
        Some("minor" | "min") => Some(Mode::Minor),
        _ => None,
    };
    for (i, word) in words.iter().enumerate() {
        let Some(pc) = pitch_class(word) else {
            continue;
        };
        let (pc, next) = match words.get(i + 1).copied() {
            Some("sharp") => ((pc + 1) % 12, i + 2),
            Some("flat") => ((pc + 11) % 12, i + 2),
            _ => (pc, i + 1),
        };
        let mode = mode_at(next);
        // A lone "a" is an article: only with a mode word after it.
        let introduced = i >= 1 && matches!(words[i - 1], "of" | "in") && *word != "a";
        if mode.is_some() || introduced {
            return (Some(pc), mode);
        }
    }
    let mode = if first_of(text, &["minor"]).is_some() {
        Some(Mode::Minor)
    } else if first_of(text, &["major"]).is_some() {
        Some(Mode::Major)
    } else {
        None
    };
    (None, mode)
}

/// Reads the prompt. `seed` settles what the prompt leaves open.
pub(crate) fn plan(prompt: &str, seed: u64) -> Plan {
    let text = normalise(prompt);
    let mut rng = Rng::derive(seed, "style");

    let genre = GENRE_WORDS
        .iter()
        .filter_map(|(g, words)| first_of(&text, words).map(|pos| (pos, *g)))
        .min_by_key(|(pos, _)| *pos)
        .map(|(_, g)| g)
        .unwrap_or(Genre::Pop);
    let mood = MOOD_WORDS
        .iter()
        .filter_map(|(m, words)| first_of(&text, words).map(|pos| (pos, *m)))
        .min_by_key(|(pos, _)| *pos)
        .map(|(_, m)| m)
        .unwrap_or(Mood::Neutral);
    let prof = profile(genre);

    // Tempo: explicit, else tempo words, else the genre's range by mood.
    let (lo, hi) = prof.tempo;
    let explicit = tempo_in(&text);
    let tempo_bpm = match explicit {
        Some(bpm) => bpm,
        None => {
            let very_slow = first_of(&text, &["very slow", "extremely slow"]).is_some();
            let slow = first_of(
                &text,
                &["slow", "slowly", "ballad", "downtempo", "laid back"],
            )
            .is_some();
            let fast = first_of(
                &text,
                &[
                    "fast",
                    "uptempo",
                    "up tempo",
                    "quick",
                    "rapid",
                    "high energy",
                ],
            )
            .is_some();
            let very_fast = first_of(&text, &["very fast", "extremely fast", "frantic"]).is_some();
            let mid = first_of(
                &text,
                &["mid tempo", "midtempo", "moderate", "medium tempo"],
            )
            .is_some();
            let base: f32 = if very_slow {
                (lo * 0.8).max(50.0)
            } else if very_fast {
                (hi * 1.15).min(200.0)
            } else if slow {
                lo
            } else if fast {
                hi
            } else if mid {
                (lo + hi) / 2.0
            } else {
                let pos = match mood {
                    Mood::Sad | Mood::Calm | Mood::Romantic => 0.25,
                    Mood::Dark | Mood::Neutral => 0.5,
                    Mood::Happy => 0.7,
                    Mood::Energetic => 0.85,
                };
                lo + (hi - lo) * pos
            };
            let jitter = (rng.unit() - 0.5) * 0.12 * (hi - lo);
            (base + jitter).round().clamp(40.0, 240.0)
        }
    };

    let (named_key, named_mode) = key_in(&text);
    let mode = named_mode.unwrap_or(match mood {
        Mood::Sad | Mood::Dark => Mode::Minor,
        Mood::Happy => Mode::Major,
        _ if prof.minor_default => Mode::Minor,
        _ => Mode::Major,
    });
    let tonic = named_key.unwrap_or_else(|| rng.pick(prof.keys, 0));
    let key = Key { tonic, mode };

    // Instruments named, in prompt order ("drum and bass" is a genre).
    let text_i = text.replace(" drum and bass ", " dnb ");
    let text = text_i.as_str();
    let mut named: Vec<(usize, Instrument, Class)> = Vec::new();
    let mut taken: Vec<(usize, usize)> = Vec::new();
    for (words, instrument, class) in INSTRUMENT_WORDS {
        for w in *words {
            let pat = format!(" {w} ");
            let mut from = 0;
            while let Some(off) = text[from..].find(&pat) {
                let start = from + off;
                let end = start + pat.len();
                from = start + 1;
                // Skip words inside a longer phrase already matched
                // ("bass" in "synth bass", "drum" in "drum and bass").
                if taken
                    .iter()
                    .any(|&(s, e)| start + 1 < e - 1 && s + 1 < end - 1)
                {
                    continue;
                }
                if *w == "bass" && text[end..].starts_with("drum") {
                    continue;
                }
                taken.push((start, end));
                named.push((start, *instrument, *class));
            }
        }
    }
    named.sort_by_key(|(pos, _, _)| *pos);

    let mut melody = prof.melody;
    let mut harmony = prof.harmony;
    let mut pad = prof.pad;
    let mut bass = prof.bass;
    let mut kit = prof.kit;
    let mut melodic: Vec<(Instrument, Class)> = Vec::new();
    for (_, instrument, class) in &named {
        match class {
            Class::Bass => bass = *instrument,
            Class::Drums => {
                if instrument.name == "none" {
                    kit = None;
                } else if kit.is_none() {
                    kit = Some(if genre == Genre::Classical { 48 } else { 0 });
                }
            }
            Class::Chordal | Class::Lead => {
                if !melodic.iter().any(|(i, _)| i.program == instrument.program) {
                    melodic.push((*instrument, *class));
                }
            }
        }
    }
    // Guitars follow the genre ("guitar" in a rock prompt is an electric one).
    for (instrument, _) in melodic.iter_mut() {
        if instrument.name == "acoustic guitar" {
            match genre {
                Genre::Rock | Genre::Metal | Genre::Funk if !text.contains(" acoustic ") => {
                    *instrument = if genre == Genre::Metal {
                        inst("distortion guitar", 30)
                    } else {
                        inst("overdriven guitar", 29)
                    }
                }
                Genre::Jazz | Genre::Blues if !text.contains(" acoustic ") => {
                    *instrument = inst("jazz guitar", 26)
                }
                _ => {}
            }
        }
    }
    match melodic.as_slice() {
        [] => {}
        [(only, Class::Chordal)] => {
            melody = *only;
            harmony = *only;
            pad = None;
        }
        [(only, _)] => melody = *only,
        [(first, c1), (second, c2), rest @ ..] => {
            // The chordal one comps when only one of the two can.
            if *c1 == Class::Chordal && *c2 == Class::Lead {
                melody = *second;
                harmony = *first;
            } else {
                melody = *first;
                harmony = *second;
            }
            pad = rest.first().map(|(i, _)| *i);
        }
    }

    Plan {
        genre,
        mood,
        tempo_bpm,
        key,
        melody,
        harmony,
        pad,
        bass,
        kit,
        swing: prof.swing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genre_mood_tempo() {
        let p = plan("A sad jazz ballad with piano and sax, 80 bpm", 1);
        assert_eq!(p.genre, Genre::Jazz);
        assert_eq!(p.mood, Mood::Sad);
        assert_eq!(p.tempo_bpm, 80.0);
        assert_eq!(p.key.mode, Mode::Minor);
        assert_eq!(p.melody.name, "alto sax");
        assert_eq!(p.harmony.name, "piano");

        let p = plan("energetic EDM track at 128BPM", 1);
        assert_eq!(p.genre, Genre::Electronic);
        assert_eq!(p.tempo_bpm, 128.0);

        let p = plan("Hip-hop beat, dark, with 808 bass", 3);
        assert_eq!(p.genre, Genre::HipHop);
        assert_eq!(p.mood, Mood::Dark);
        assert_eq!(p.bass.name, "synth bass");

        let p = plan("lo-fi chill study music", 3);
        assert_eq!(p.genre, Genre::LoFi);
        assert_eq!(p.mood, Mood::Calm);

        let p = plan("R&B slow jam", 3);
        assert_eq!(p.genre, Genre::RnB);
        assert!((p.tempo_bpm - profile(Genre::RnB).tempo.0).abs() <= 3.0);

        let p = plan("drum and bass", 3);
        assert_eq!(p.genre, Genre::Electronic);
    }

    #[test]
    fn keys_and_instruments() {
        let p = plan("folk song in D minor with violin and acoustic guitar", 9);
        assert_eq!(
            p.key,
            Key {
                tonic: 2,
                mode: Mode::Minor
            }
        );
        assert_eq!(p.melody.name, "violin");
        assert_eq!(p.harmony.name, "acoustic guitar");

        let p = plan("rock anthem in the key of E, electric guitar, no drums", 9);
        assert_eq!(p.key.tonic, 4);
        assert_eq!(p.kit, None);
        assert_eq!(p.melody.name, "electric guitar");

        let p = plan("classical piece for solo piano", 2);
        assert_eq!(p.genre, Genre::Classical);
        assert_eq!(p.melody.name, "piano");
        assert_eq!(p.harmony.name, "piano");
        assert_eq!(p.kit, None);

        let p = plan("a happy song", 5);
        assert_eq!(p.genre, Genre::Pop);
        assert_eq!(p.key.mode, Mode::Major);
        assert_eq!(p.key.tonic, plan("a happy song", 5).key.tonic);

        let p = plan("Bb major waltz", 5);
        assert_eq!(
            p.key,
            Key {
                tonic: 10,
                mode: Mode::Major
            }
        );
    }
}
