//! The composer: a prompt and lyrics to an [`Arrangement`] (sections, chords,
//! melody, harmony, bass, drums and the sung line), deterministic for a seed.

use crate::lyrics::{self, SectionKind, Syllable};
use crate::rng::{hash_str, Rng};
use crate::style::{self, BassPattern, Comp, Genre, Groove, Instrument, Mood, Plan, Profile, Role};
use crate::theory::{Chord, Key, Mode, Quality};
use crate::SongRequest;
use serde::Serialize;

/// Seconds after the last chord's end for the instruments to ring out.
pub const TAIL_S: f32 = 1.5;
/// Length of a song with neither lyrics nor `target_seconds`.
pub const DEFAULT_INSTRUMENTAL_S: f32 = 60.0;
/// Shortest and longest songs composed.
pub const MIN_SECONDS: f32 = 5.0;
pub const MAX_SECONDS: f32 = 600.0;
/// General MIDI's percussion channel (channel 10, 0-based 9).
pub const DRUM_CHANNEL: u8 = 9;

/// One note of an instrument.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Note {
    pub start_s: f32,
    pub dur_s: f32,
    /// MIDI key (for drums: the General MIDI percussion key).
    pub pitch: u8,
    pub velocity: u8,
}

/// One instrument's part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Track {
    pub role: Role,
    pub instrument: Instrument,
    /// MIDI channel, 0-based (drums on 9).
    pub channel: u8,
    /// Level relative to the role's usual level (100 = as usual; amplitude
    /// goes with its square); the renderer evens out General MIDI programs'
    /// loudness first.
    pub volume: u8,
    /// Pan and reverb send (MIDI CC 10 and 91).
    pub pan: u8,
    pub reverb: u8,
    /// In time order.
    pub notes: Vec<Note>,
}

/// One sung syllable, on one melody note.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SungNote {
    /// The syllable as written ("hap" of "happy").
    pub text: String,
    /// The word it is part of; the render asks the speech engine for words
    /// and cuts them into syllables.
    pub word: String,
    /// Index of the syllable in the word, and the word's syllable count.
    pub syllable: u16,
    pub syllables: u16,
    pub start_s: f32,
    pub dur_s: f32,
    /// MIDI pitch as composed (the render may move the whole line by octaves
    /// to suit the voice).
    pub pitch: u8,
}

/// One section of the form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub kind: SectionKind,
    /// The tag as written ("Verse 1"), or the kind's name.
    pub label: String,
    pub start_s: f32,
    pub end_s: f32,
    pub bars: u32,
    /// One chord per bar.
    pub chords: Vec<Chord>,
    /// The lyric lines sung in it (empty when instrumental).
    pub lines: Vec<String>,
}

/// What the prompt was read as.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Style {
    pub genre: Genre,
    pub mood: Mood,
    /// The instrument of each role (drums: the kit).
    pub instruments: Vec<(Role, Instrument)>,
    /// Eighth-note swing ratio (0.5 = straight).
    pub swing: f32,
}

/// A composed song, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arrangement {
    pub tempo_bpm: f32,
    pub key: Key,
    pub beats_per_bar: u8,
    pub sections: Vec<Section>,
    pub tracks: Vec<Track>,
    /// The sung line (empty for instrumentals), in time order.
    pub vocal: Vec<SungNote>,
    /// Whole length, the instruments' release included.
    pub duration_s: f32,
    pub style: Style,
}

impl Arrangement {
    /// The distinct words of the sung line, in order of first use: what
    /// [`crate::render`] asks its `sing` callback for, so a caller can have
    /// its speech engine say them all beforehand (side by side) and answer
    /// the callback from memory.
    pub fn words(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in &self.vocal {
            if !out.contains(&n.word) {
                out.push(n.word.clone());
            }
        }
        out
    }

    /// Spans (start, end) in seconds where lyrics are sung: each line's notes,
    /// gaps under 0.3 s closed.
    pub fn vocal_spans(&self) -> Vec<(f32, f32)> {
        let mut spans: Vec<(f32, f32)> = Vec::new();
        for n in &self.vocal {
            let (s, e) = (n.start_s, n.start_s + n.dur_s);
            match spans.last_mut() {
                Some(last) if s - last.1 < 0.3 => last.1 = last.1.max(e),
                _ => spans.push((s, e)),
            }
        }
        spans
    }
}

/// Time of a grid position, with swing.
#[derive(Debug, Clone, Copy)]
struct Grid {
    bar_s: f32,
    beat_s: f32,
    swing: f32,
}

impl Grid {
    /// Seconds at `bar` (global) plus `step` sixteenths (0..16 within the bar).
    fn at(&self, bar: u32, step: u32) -> f32 {
        let bar_t = bar as f32 * self.bar_s + (step / 16) as f32 * self.bar_s;
        let step = step % 16;
        let beat = (step / 4) as f32;
        let frac = (step % 4) as f32 / 4.0;
        // Warp within the beat: the off-beat eighth falls at `swing`.
        let s = self.swing;
        let warped = if frac <= 0.5 {
            frac / 0.5 * s
        } else {
            s + (frac - 0.5) / 0.5 * (1.0 - s)
        };
        bar_t + (beat + warped) * self.beat_s
    }
}

/// A section before timing.
struct SecPlan {
    kind: SectionKind,
    label: String,
    bars: u32,
    /// Lines with the bar (relative to the section) each starts at and spans.
    lines: Vec<LinePlan>,
}

struct LinePlan {
    text: String,
    syllables: Vec<Syllable>,
    bar: u32,
    bars: u32,
}

fn line_bars(syllables: usize) -> u32 {
    match syllables {
        0..=12 => 2,
        13..=26 => 4,
        n => 2 * n.div_ceil(13) as u32,
    }
}

fn lyric_plan(blocks: &[lyrics::Block]) -> Vec<SecPlan> {
    let mut out = Vec::new();
    for b in blocks {
        let mut lines = Vec::new();
        let mut bar = 0;
        for text in &b.lines {
            let syllables = lyrics::line_syllables(text);
            if syllables.is_empty() {
                continue;
            }
            let bars = line_bars(syllables.len());
            lines.push(LinePlan {
                text: text.clone(),
                syllables,
                bar,
                bars,
            });
            bar += bars;
        }
        let bars = if lines.is_empty() {
            b.kind.instrumental_bars()
        } else if bar % 4 != 0 {
            bar + (4 - bar % 4)
        } else {
            bar
        };
        out.push(SecPlan {
            kind: b.kind,
            label: b.label.clone(),
            bars,
            lines,
        });
    }
    out
}

fn instrumental_section(kind: SectionKind, bars: u32) -> SecPlan {
    SecPlan {
        kind,
        label: kind.name().to_string(),
        bars,
        lines: Vec::new(),
    }
}

/// The default form for `total` bars: intro, verses and choruses (a bridge
/// when there is room), outro.
fn default_form(total: u32) -> Vec<SecPlan> {
    use SectionKind as K;
    if total < 8 {
        return vec![instrumental_section(K::Verse, total.max(1))];
    }
    let edge = if total >= 24 { 4 } else { 2 };
    let mut middle = total - 2 * edge;
    let mut out = vec![instrumental_section(K::Intro, edge)];
    let cycle = [
        K::Verse,
        K::Chorus,
        K::Verse,
        K::Chorus,
        K::Bridge,
        K::Chorus,
        K::Chorus,
    ];
    let mut i = 0;
    while middle >= 4 {
        let bars = if middle >= 8 { 8 } else { 4 };
        out.push(instrumental_section(cycle[i % cycle.len()], bars));
        middle -= bars;
        i += 1;
    }
    out.push(instrumental_section(K::Outro, edge + middle));
    out
}

/// Bars of `secs` in order, and the total.
fn total_bars(secs: &[SecPlan]) -> u32 {
    secs.iter().map(|s| s.bars).sum()
}

/// Fits a lyric form into `cap` bars: lines (then sections) dropped from the
/// end when it is longer, instrumental bars added when shorter.
fn fit_lyric_form(mut secs: Vec<SecPlan>, cap: u32) -> Vec<SecPlan> {
    use SectionKind as K;
    while total_bars(&secs) > cap && secs.len() > 1 {
        let Some(last) = secs.last_mut() else { break };
        if last.lines.len() > 1 {
            last.lines.pop();
            let used: u32 = last.lines.iter().map(|l| l.bars).sum();
            last.bars = used.div_ceil(4) * 4;
        } else {
            secs.pop();
        }
    }
    if total_bars(&secs) > cap {
        if let Some(only) = secs.first_mut() {
            while only.lines.len() > 1 && only.bars > cap {
                only.lines.pop();
                let used: u32 = only.lines.iter().map(|l| l.bars).sum();
                only.bars = used.max(1);
            }
        }
        return secs;
    }
    let mut spare = cap - total_bars(&secs);
    // An instrumental break before the last chorus when there is room.
    if spare >= 12 {
        let bars = ((spare - 4) / 4 * 4).min(16);
        let at = secs
            .iter()
            .rposition(|s| s.kind.is_chorus_like())
            .unwrap_or(secs.len());
        secs.insert(at, instrumental_section(K::Solo, bars));
        spare -= bars;
    }
    if spare >= 2 {
        match secs.last_mut() {
            Some(last) if last.kind == K::Outro && last.lines.is_empty() => last.bars += spare,
            _ => secs.push(instrumental_section(K::Outro, spare)),
        }
    }
    secs
}

/// How full a section is (0 = only bass and drums … 3 = everything).
fn energy(kind: SectionKind) -> u8 {
    use SectionKind as K;
    match kind {
        K::Break => 0,
        K::Intro | K::Outro | K::Bridge => 1,
        K::Verse | K::PreChorus | K::Interlude | K::Solo | K::BuildUp => 2,
        K::Chorus | K::Hook | K::PostChorus => 3,
    }
}

/// Composes the song `req` describes. The same request gives the same
/// arrangement.
pub fn compose(req: &SongRequest) -> Arrangement {
    let plan = style::plan(&req.prompt, req.seed);
    let prof = style::profile(plan.genre);
    let seed = req.seed;
    let bpm = plan.tempo_bpm;
    let beat_s = 60.0 / bpm;
    let bar_s = 4.0 * beat_s;
    let grid = Grid {
        bar_s,
        beat_s,
        swing: plan.swing,
    };
    let target = req
        .target_seconds
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(|t| t.clamp(MIN_SECONDS, MAX_SECONDS));

    // The form.
    let blocks = req
        .lyrics
        .as_deref()
        .map(lyrics::blocks)
        .unwrap_or_default();
    let has_lines = blocks.iter().any(|b| !b.lines.is_empty());
    let cap_for =
        |seconds: f32| -> u32 { (((seconds - TAIL_S - bar_s) / bar_s).floor().max(1.0)) as u32 };
    let mut secs = if has_lines {
        let mut secs = lyric_plan(&blocks);
        // A short lead-in when the lyrics start singing at once.
        if secs.first().is_some_and(|s| !s.lines.is_empty()) {
            secs.insert(0, instrumental_section(SectionKind::Intro, 2));
        }
        match target {
            Some(t) => fit_lyric_form(secs, cap_for(t)),
            None => secs,
        }
    } else if !blocks.is_empty() && target.is_none() {
        // Tags without lines: the tagged form, instrumental.
        lyric_plan(&blocks)
    } else {
        default_form(cap_for(target.unwrap_or(DEFAULT_INSTRUMENTAL_S)))
    };
    if secs.is_empty() {
        secs = default_form(cap_for(DEFAULT_INSTRUMENTAL_S));
    }
    let bars_total = total_bars(&secs);
    let hold_s = match target {
        Some(t) => (t - TAIL_S - bars_total as f32 * bar_s).max(bar_s),
        None => bar_s,
    };
    let duration_s = bars_total as f32 * bar_s + hold_s + TAIL_S;

    // Chords: a progression per kind of section.
    let progs = match plan.key.mode {
        Mode::Major => prof.progressions.major,
        Mode::Minor => prof.progressions.minor,
    };
    let mut rng = Rng::derive(seed, "form");
    let n = progs.len().max(1);
    let verse_i = rng.below(n);
    let chorus_i = if n > 1 {
        (verse_i + 1 + rng.below(n - 1)) % n
    } else {
        verse_i
    };
    let bridge_i = if n > 2 {
        (0..n)
            .find(|i| *i != verse_i && *i != chorus_i)
            .unwrap_or(verse_i)
    } else {
        (verse_i + 1) % n
    };
    let prog_for = |kind: SectionKind| -> usize {
        use SectionKind as K;
        match kind {
            K::Chorus | K::Hook | K::PostChorus | K::Intro | K::Outro => chorus_i,
            K::Bridge | K::PreChorus | K::BuildUp => bridge_i,
            _ => verse_i,
        }
    };
    let flavour = progs
        .first()
        .and_then(|p| p.first())
        .map(|s| s.1)
        .unwrap_or(Quality::Major);
    let mut bar_chords: Vec<Chord> = Vec::with_capacity(bars_total as usize + 1);
    let mut sections = Vec::with_capacity(secs.len());
    let mut bar0 = 0u32;
    for (si, sec) in secs.iter().enumerate() {
        let prog = progs.get(prog_for(sec.kind)).copied().unwrap_or(&[]);
        let mut chords: Vec<Chord> = (0..sec.bars)
            .map(|b| match prog.get(b as usize % prog.len().max(1)) {
                Some(step) => plan.key.chord(*step),
                None => plan.key.tonic_chord(flavour),
            })
            .collect();
        // A dominant into a chorus, and into the final chord.
        let next_kind = secs.get(si + 1).map(|s| s.kind);
        let into_chorus =
            next_kind.is_some_and(|k| k.is_chorus_like()) && !sec.kind.is_chorus_like();
        if (into_chorus || next_kind.is_none()) && sec.bars >= 2 {
            if let Some(last) = chords.last_mut() {
                if last.root != plan.key.tonic || next_kind.is_some() {
                    *last = plan.key.dominant(flavour);
                }
            }
        }
        bar_chords.extend(chords.iter().copied());
        let lines = sec.lines.iter().map(|l| l.text.clone()).collect();
        sections.push(Section {
            kind: sec.kind,
            label: sec.label.clone(),
            start_s: bar0 as f32 * bar_s,
            end_s: (bar0 + sec.bars) as f32 * bar_s,
            bars: sec.bars,
            chords,
            lines,
        });
        bar0 += sec.bars;
    }
    let final_chord = plan.key.tonic_chord(flavour);
    bar_chords.push(final_chord);

    let mut c = Composer {
        plan: &plan,
        prof: &prof,
        grid,
        chords: bar_chords,
        seed,
        melody: Vec::new(),
        harmony: Vec::new(),
        pad: Vec::new(),
        bass: Vec::new(),
        drums: Vec::new(),
        vocal: Vec::new(),
        voicing_prev: 60.0,
    };
    let sing = !req.instrumental;
    let mut bar0 = 0u32;
    let n_secs = secs.len();
    for (si, sec) in secs.iter().enumerate() {
        c.section(sec, si, n_secs, bar0, sing);
        bar0 += sec.bars;
    }
    c.ending(bars_total, hold_s);

    let mut tracks = Vec::new();
    let mut instruments = Vec::new();
    let mut push = |role: Role,
                    instrument: Instrument,
                    channel: u8,
                    volume: u8,
                    pan: u8,
                    reverb: u8,
                    mut notes: Vec<Note>| {
        instruments.push((role, instrument));
        notes.sort_by(|a, b| a.start_s.total_cmp(&b.start_s).then(a.pitch.cmp(&b.pitch)));
        tracks.push(Track {
            role,
            instrument,
            channel,
            volume,
            pan,
            reverb,
            notes,
        });
    };
    let Composer {
        melody,
        harmony,
        pad,
        bass,
        drums,
        mut vocal,
        ..
    } = c;
    push(Role::Melody, plan.melody, 0, 100, 52, 50, melody);
    push(Role::Harmony, plan.harmony, 1, 100, 80, 45, harmony);
    if let Some(p) = plan.pad {
        push(Role::Pad, p, 2, 100, 40, 70, pad);
    }
    push(Role::Bass, plan.bass, 3, 100, 64, 20, bass);
    if let Some(kit) = plan.kit {
        push(
            Role::Drums,
            Instrument {
                name: kit_name(kit),
                program: kit,
            },
            DRUM_CHANNEL,
            100,
            64,
            30,
            drums,
        );
    }
    vocal.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));

    Arrangement {
        tempo_bpm: bpm,
        key: plan.key,
        beats_per_bar: 4,
        sections,
        tracks,
        vocal,
        duration_s,
        style: Style {
            genre: plan.genre,
            mood: plan.mood,
            instruments,
            swing: plan.swing,
        },
    }
}

fn kit_name(kit: u8) -> &'static str {
    match kit {
        8 => "room kit",
        16 => "power kit",
        24 => "electronic kit",
        25 => "TR-808 kit",
        32 => "jazz kit",
        40 => "brush kit",
        48 => "orchestral percussion",
        _ => "standard kit",
    }
}

// General MIDI percussion keys.
const KICK: u8 = 36;
const SIDE_STICK: u8 = 37;
const SNARE: u8 = 38;
const CLAP: u8 = 39;
const HAT: u8 = 42;
const PEDAL_HAT: u8 = 44;
const OPEN_HAT: u8 = 46;
const LOW_TOM: u8 = 45;
const MID_TOM: u8 = 47;
const HIGH_TOM: u8 = 50;
const CRASH: u8 = 49;
const RIDE: u8 = 51;

struct Composer<'a> {
    plan: &'a Plan,
    prof: &'a Profile,
    grid: Grid,
    /// One chord per bar, the final chord last.
    chords: Vec<Chord>,
    seed: u64,
    melody: Vec<Note>,
    harmony: Vec<Note>,
    pad: Vec<Note>,
    bass: Vec<Note>,
    drums: Vec<Note>,
    vocal: Vec<SungNote>,
    /// Centre of the last chord voicing (voice leading).
    voicing_prev: f32,
}

/// Onset (in grid units), length (units) and pitch of a phrase's notes.
struct PhraseNote {
    start_s: f32,
    end_s: f32,
    pitch: u8,
}

impl Composer<'_> {
    fn chord(&self, bar: u32) -> Chord {
        self.chords
            .get(bar as usize)
            .or(self.chords.last())
            .copied()
            .unwrap_or(Chord {
                root: self.plan.key.tonic,
                quality: Quality::Major,
            })
    }

    fn note(&self, bar: u32, step: u32, len_steps: u32, pitch: i32, velocity: f32) -> Note {
        let start_s = self.grid.at(bar, step);
        let end_s = self.grid.at(bar, step + len_steps);
        Note {
            start_s,
            dur_s: (end_s - start_s).max(0.03),
            pitch: pitch.clamp(0, 127) as u8,
            velocity: velocity.round().clamp(1.0, 127.0) as u8,
        }
    }

    /// Where the tune sits: the tonic near E4, higher in choruses.
    fn centre(&self, kind: SectionKind) -> i32 {
        let mut tonic = 60 + i32::from(self.plan.key.tonic);
        if tonic > 66 {
            tonic -= 12;
        }
        tonic + if kind.is_chorus_like() { 7 } else { 4 }
    }

    fn section(&mut self, sec: &SecPlan, index: usize, count: usize, bar0: u32, sing: bool) {
        let e = energy(sec.kind);
        let mut rng = Rng::derive(
            self.seed,
            &format!("section:{}:{}", sec.kind.name(), index.min(1)),
        );
        let last_section = index + 1 == count;
        for b in 0..sec.bars {
            let bar = bar0 + b;
            let last_bar = b + 1 == sec.bars;
            self.harmony_bar(bar, e, sec.kind);
            self.pad_bar(bar, e);
            self.bass_bar(bar, e, &mut rng);
            let fill = last_bar && !last_section && e >= 1;
            let crash = b == 0 && index > 0 && e >= 2;
            self.drum_bar(bar, e, fill, crash, b, sec.kind, &mut rng);
        }
        // The tune.
        let centre = self.centre(sec.kind);
        if sec.lines.is_empty() {
            // Instrumental: the melody instrument plays two-bar phrases
            // (repeated sections repeat their tune).
            let mut b = 0;
            let mut phrase_i = 0;
            while b < sec.bars {
                let bars = 2.min(sec.bars - b);
                let mut r =
                    Rng::derive(self.seed, &format!("inst:{}:{}", sec.kind.name(), phrase_i));
                let quiet_intro = sec.kind == SectionKind::Intro && sec.bars > 2 && b == 0;
                if !quiet_intro && sec.kind != SectionKind::Break {
                    let n = if bars == 1 {
                        r.range(2, 4)
                    } else {
                        r.range(4, 9)
                    } as usize;
                    let weights = vec![1.0; n];
                    let resolve = b + bars >= sec.bars;
                    let notes = self.phrase(&mut r, bar0 + b, bars, &weights, centre, resolve);
                    let vel = 70.0 + 10.0 * f32::from(e);
                    for pn in notes {
                        self.melody.push(Note {
                            start_s: pn.start_s,
                            dur_s: (pn.end_s - pn.start_s - 0.02).max(0.05),
                            pitch: pn.pitch,
                            velocity: (vel + r.range(-6, 6) as f32) as u8,
                        });
                    }
                }
                b += bars;
                phrase_i += 1;
            }
            return;
        }
        for (li, line) in sec.lines.iter().enumerate() {
            // The same words get the same tune wherever they recur.
            let mut r = Rng::derive(
                self.seed,
                &format!(
                    "line:{}:{}",
                    sec.kind.is_chorus_like(),
                    hash_str(&line.text.to_lowercase())
                ),
            );
            let weights: Vec<f32> = line
                .syllables
                .iter()
                .map(|s| if s.index + 1 == s.count { 2.0 } else { 0.6 })
                .collect();
            let resolve = li + 1 == sec.lines.len();
            let notes = self.phrase(
                &mut r,
                bar0 + line.bar,
                line.bars,
                &weights,
                centre,
                resolve,
            );
            for (pn, syl) in notes.into_iter().zip(&line.syllables) {
                let dur = (pn.end_s - pn.start_s - 0.03).max(0.06);
                if sing {
                    self.vocal.push(SungNote {
                        text: syl.text.clone(),
                        word: syl.word.clone(),
                        syllable: syl.index,
                        syllables: syl.count,
                        start_s: pn.start_s,
                        dur_s: dur,
                        pitch: pn.pitch,
                    });
                } else {
                    self.melody.push(Note {
                        start_s: pn.start_s,
                        dur_s: dur,
                        pitch: pn.pitch,
                        velocity: 84 + 8 * u8::from(sec.kind.is_chorus_like()),
                    });
                }
            }
        }
    }

    /// A phrase of `weights.len()` notes over `bars` bars from `bar0`:
    /// rhythm on an eighth (or sixteenth) grid with a breath at the end,
    /// chord tones on strong beats and steps between, shaped as an arch or a
    /// line, ending on a stable tone.
    fn phrase(
        &self,
        rng: &mut Rng,
        bar0: u32,
        bars: u32,
        weights: &[f32],
        centre: i32,
        resolve: bool,
    ) -> Vec<PhraseNote> {
        let n = weights.len();
        if n == 0 || bars == 0 {
            return Vec::new();
        }
        let mut per_bar: u32 = 8;
        let mut rest: u32 = if bars <= 2 { 2 } else { 4 };
        if bars == 1 {
            rest = 1;
        }
        let mut total = bars * per_bar - rest;
        if n as u32 > total {
            per_bar = 16;
            total = bars * per_bar - rest * 2;
        }
        let mut onsets: Vec<u32> = Vec::with_capacity(n);
        let mut lens: Vec<u32> = Vec::with_capacity(n);
        let squeeze = n as u32 > total;
        if !squeeze {
            let mut durs = vec![1u32; n];
            let mut extra = total - n as u32;
            let mut offset = 0;
            if extra >= 6 && rng.chance(0.35) {
                offset = (per_bar / 4).min(extra / 3);
                extra -= offset;
            }
            let last_add = extra.min(per_bar / 2 - 1);
            durs[n - 1] += last_add;
            extra -= last_add;
            let cap = per_bar / 2;
            while extra > 0 {
                let mut pos = offset;
                let mut cands: Vec<(usize, f32)> = Vec::new();
                for i in 0..n - 1 {
                    if durs[i] < cap {
                        let lands_on_beat = (pos + durs[i] + 1).is_multiple_of(per_bar / 4);
                        let w = weights[i] * if lands_on_beat { 1.8 } else { 1.0 };
                        cands.push((i, w));
                    }
                    pos += durs[i];
                }
                if cands.is_empty() {
                    break;
                }
                let sum: f32 = cands.iter().map(|c| c.1).sum();
                let mut x = rng.unit() * sum;
                let mut chosen = cands[cands.len() - 1].0;
                for (i, w) in &cands {
                    if x < *w {
                        chosen = *i;
                        break;
                    }
                    x -= w;
                }
                durs[chosen] += 1;
                extra -= 1;
            }
            let mut pos = offset;
            for d in durs {
                onsets.push(pos);
                lens.push(d);
                pos += d;
            }
        }
        let unit_steps = 16 / per_bar;
        let time_of = |unit: u32| -> f32 {
            let step = unit * unit_steps;
            self.grid.at(bar0 + step / 16, step % 16)
        };
        let phrase_start = self.grid.at(bar0, 0);
        let phrase_end =
            self.grid.at(bar0 + bars, 0) - rest as f32 * unit_steps as f32 * self.grid.beat_s / 4.0;
        let key = self.plan.key;
        let tonic_pc = i32::from(key.tonic);
        let lo = centre - 8;
        let hi = centre + 9;
        let shape = rng.below(3);
        let amp = rng.range(4, 7) as f32;
        let mut prev: Option<i32> = None;
        let mut repeats = 0;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let (start_s, end_s, strong) = if squeeze {
                let d = (phrase_end - phrase_start) / n as f32;
                let s = phrase_start + d * i as f32;
                (s, s + d, i % 2 == 0)
            } else {
                let u = onsets[i];
                // Beats one and three, and long notes, take chord tones.
                let strong = (u * unit_steps).is_multiple_of(8) || lens[i] * unit_steps >= 8;
                (time_of(u), time_of(u + lens[i]), strong)
            };
            let bar = ((start_s + 1e-4) / self.grid.bar_s).floor().max(0.0) as u32;
            let chord = self.chord(bar);
            let p = if n > 1 {
                i as f32 / (n - 1) as f32
            } else {
                0.5
            };
            let target = centre as f32
                + match shape {
                    0 => amp * (std::f32::consts::PI * p).sin() - amp * 0.3,
                    1 => amp * (0.5 - p),
                    _ => amp * (p - 0.5) * 0.8,
                };
            let last = i + 1 == n;
            let mut best = (f32::INFINITY, centre);
            for cand in lo..=hi {
                let chord_tone = chord.contains(cand);
                if !key.in_scale(cand) && !chord_tone {
                    continue;
                }
                if (strong || last) && !chord_tone {
                    continue;
                }
                let mut cost = (cand as f32 - target).abs();
                if let Some(pv) = prev {
                    let leap = (cand - pv).abs();
                    if !strong && leap > 4 {
                        cost += (leap - 4) as f32 * 1.5;
                    }
                    if leap > 7 {
                        cost += (leap - 7) as f32 * 2.0;
                    }
                    if leap == 0 {
                        cost += 0.8 + 1.2 * repeats as f32;
                    }
                }
                if last && resolve {
                    if cand.rem_euclid(12) == tonic_pc {
                        cost -= 3.0;
                    } else if cand.rem_euclid(12) == i32::from(chord.root) {
                        cost -= 1.5;
                    }
                }
                cost += rng.unit() * 1.5;
                if cost < best.0 {
                    best = (cost, cand);
                }
            }
            repeats = if prev == Some(best.1) { repeats + 1 } else { 0 };
            prev = Some(best.1);
            out.push(PhraseNote {
                start_s,
                end_s,
                pitch: best.1.clamp(0, 127) as u8,
            });
        }
        out
    }

    /// The chord's tones stacked closely near the last voicing.
    fn voicing(&mut self, chord: Chord, lo: i32) -> Vec<i32> {
        let tones = chord.tones();
        let mut best: Option<(f32, Vec<i32>)> = None;
        for k in 0..tones.len() {
            let mut v = Vec::with_capacity(tones.len());
            let first = i32::from(tones[k]);
            let mut p = lo + (first - lo).rem_euclid(12);
            v.push(p);
            for j in 1..tones.len() {
                let pc = i32::from(tones[(k + j) % tones.len()]);
                let mut q = p + 1;
                while q.rem_euclid(12) != pc {
                    q += 1;
                }
                v.push(q);
                p = q;
            }
            let centre = v.iter().sum::<i32>() as f32 / v.len() as f32;
            let cost = (centre - self.voicing_prev).abs() + (centre - 61.0).abs() * 0.5;
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, v));
            }
        }
        let v = best.map(|b| b.1).unwrap_or_default();
        if !v.is_empty() {
            self.voicing_prev = v.iter().sum::<i32>() as f32 / v.len() as f32;
        }
        v
    }

    fn harmony_bar(&mut self, bar: u32, e: u8, kind: SectionKind) {
        if e == 0 {
            return;
        }
        let chord = self.chord(bar);
        let comp = if e == 1 && !matches!(self.prof.comp, Comp::Arpeggio | Comp::Sustain) {
            Comp::Sustain
        } else {
            self.prof.comp
        };
        let base_vel = match e {
            1 => 62.0,
            2 => 74.0,
            _ => 86.0,
        };
        let _ = kind;
        let hits: Vec<(u32, u32, f32)> = match comp {
            Comp::Arpeggio => {
                let mut v = self.voicing(chord, 50);
                if let Some(&first) = v.first() {
                    v.push(first + 12);
                }
                let order = [0usize, 1, 2, 3, 2, 1, 2, 1];
                for (i, o) in order.iter().enumerate() {
                    let Some(&p) = v.get(o % v.len().max(1)) else {
                        continue;
                    };
                    let vel = base_vel - 6.0 + if i % 2 == 0 { 6.0 } else { 0.0 };
                    let note = self.note(bar, i as u32 * 2, 4, p, vel);
                    self.harmony.push(note);
                }
                return;
            }
            Comp::Power => {
                let root = 40 + (i32::from(chord.root) - 40).rem_euclid(12);
                let fifth = root + 7;
                let notes = [root, fifth, root + 12];
                let steps: &[u32] = if e >= 3 {
                    &[0, 2, 4, 6, 8, 10, 12, 14]
                } else {
                    &[0, 3, 6, 8, 11, 14]
                };
                for (i, s) in steps.iter().enumerate() {
                    let accent = if s % 4 == 0 { 10.0 } else { 0.0 };
                    let len = if i + 1 < steps.len() {
                        steps[i + 1] - s
                    } else {
                        16 - s
                    };
                    for p in notes {
                        let note = self.note(bar, *s, len.min(3), p, base_vel - 8.0 + accent);
                        self.harmony.push(note);
                    }
                }
                return;
            }
            Comp::Block => {
                if e >= 3 {
                    vec![(0, 6, 1.0), (6, 2, 0.8), (8, 8, 0.95)]
                } else {
                    vec![(0, 8, 1.0), (8, 8, 0.9)]
                }
            }
            Comp::Strum => vec![
                (0, 4, 1.0),
                (4, 2, 0.75),
                (6, 4, 0.8),
                (10, 2, 0.7),
                (12, 2, 0.85),
                (14, 2, 0.7),
            ],
            Comp::Sustain => vec![(0, 16, 0.9)],
            Comp::Skank => vec![(4, 2, 1.0), (12, 2, 1.0)],
            Comp::Charleston => {
                if bar.is_multiple_of(2) {
                    vec![(0, 3, 1.0), (6, 4, 0.9)]
                } else {
                    vec![(4, 3, 0.9), (10, 4, 0.85)]
                }
            }
            Comp::Stabs => vec![(0, 2, 1.0), (6, 2, 0.85), (10, 2, 0.9), (14, 2, 0.75)],
        };
        let v = self.voicing(chord, 52);
        for (step, len, scale) in hits {
            for (i, p) in v.iter().enumerate() {
                // Strummed: the strings a few milliseconds apart.
                let mut note = self.note(bar, step, len, *p, base_vel * scale);
                if comp == Comp::Strum {
                    note.start_s += i as f32 * 0.012;
                    note.dur_s = (note.dur_s - i as f32 * 0.012).max(0.03);
                }
                self.harmony.push(note);
            }
        }
    }

    fn pad_bar(&mut self, bar: u32, e: u8) {
        let Some(_) = self.plan.pad else { return };
        let always = matches!(
            self.plan.genre,
            Genre::Ambient | Genre::Classical | Genre::Electronic | Genre::HipHop | Genre::RnB
        );
        if e < 3 && !(always && e >= 1) {
            return;
        }
        let chord = self.chord(bar);
        let saved = self.voicing_prev;
        self.voicing_prev = 67.0;
        let v = self.voicing(chord, 60);
        self.voicing_prev = saved;
        for p in v {
            let note = self.note(bar, 0, 16, p, 58.0 + 6.0 * f32::from(e));
            self.pad.push(note);
        }
    }

    fn bass_root(chord: &Chord) -> i32 {
        28 + (i32::from(chord.root) - 28).rem_euclid(12)
    }

    fn bass_bar(&mut self, bar: u32, e: u8, rng: &mut Rng) {
        let chord = self.chord(bar);
        let next = self.chord(bar + 1);
        let root = Self::bass_root(&chord);
        let fifth = {
            let up = root + (i32::from(chord.fifth()) - root).rem_euclid(12);
            if up > 45 {
                up - 12
            } else {
                up
            }
        };
        let vel = 88.0 + 6.0 * f32::from(e.min(3));
        let pattern = if e <= 1 && !matches!(self.prof.bass_pattern, BassPattern::Whole) {
            BassPattern::RootFifth
        } else {
            self.prof.bass_pattern
        };
        let mut hits: Vec<(u32, u32, i32, f32)> = Vec::new();
        match pattern {
            BassPattern::Whole => hits.push((0, 16, root, 1.0)),
            BassPattern::RootFifth => {
                hits.push((0, 7, root, 1.0));
                hits.push((8, 7, fifth, 0.9));
            }
            BassPattern::Eighths => {
                for i in 0..8u32 {
                    let p = if i == 7 && rng.chance(0.4) {
                        // Lead into the next chord.
                        let nr = Self::bass_root(&next);
                        if nr > root {
                            nr - 1
                        } else {
                            nr + 1
                        }
                    } else {
                        root
                    };
                    hits.push((i * 2, 2, p, if i % 2 == 0 { 1.0 } else { 0.85 }));
                }
            }
            BassPattern::Walking => {
                let third = chord
                    .tones()
                    .get(1)
                    .map(|t| root + (i32::from(*t) - root).rem_euclid(12))
                    .unwrap_or(root + 4);
                let nr = Self::bass_root(&next);
                let approach = if rng.chance(0.5) { nr - 1 } else { nr + 1 };
                let walk = [
                    root,
                    if rng.chance(0.5) { third } else { root + 2 },
                    fifth,
                    approach,
                ];
                for (i, p) in walk.iter().enumerate() {
                    hits.push((i as u32 * 4, 4, *p, if i == 0 { 1.0 } else { 0.88 }));
                }
            }
            BassPattern::Syncopated => {
                hits.push((0, 5, root, 1.0));
                hits.push((6, 3, root, 0.85));
                hits.push((10, 2, if rng.chance(0.5) { root + 12 } else { fifth }, 0.8));
                hits.push((12, 3, root, 0.9));
            }
            BassPattern::Octaves => {
                for i in 0..8u32 {
                    let p = if i % 2 == 0 { root } else { root + 12 };
                    hits.push((i * 2, 2, p, if i % 2 == 0 { 1.0 } else { 0.8 }));
                }
            }
        }
        for (step, len, pitch, scale) in hits {
            let note = self.note(bar, step, len, pitch, vel * scale);
            self.bass.push(note);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn drum_bar(
        &mut self,
        bar: u32,
        e: u8,
        fill: bool,
        crash: bool,
        bar_in_section: u32,
        kind: SectionKind,
        rng: &mut Rng,
    ) {
        if self.plan.kit.is_none() {
            return;
        }
        let groove = if self.prof.groove == Groove::None {
            Groove::Ballad
        } else {
            self.prof.groove
        };
        let mut hits: Vec<(u32, u8, f32)> = Vec::new();
        let eighths = |key: u8, v_on: f32, v_off: f32| -> Vec<(u32, u8, f32)> {
            (0..8)
                .map(|i| (i * 2, key, if i % 2 == 0 { v_on } else { v_off }))
                .collect()
        };
        let sixteenths = |key: u8, v: f32| -> Vec<(u32, u8, f32)> {
            (0..16)
                .map(|i| {
                    (
                        i,
                        key,
                        if i % 4 == 0 {
                            v
                        } else if i % 2 == 0 {
                            v * 0.8
                        } else {
                            v * 0.6
                        },
                    )
                })
                .collect()
        };
        if e <= 1 && kind != SectionKind::Break {
            // Light: time on the hats or ride, a kick on the one.
            let key = if groove == Groove::JazzRide {
                RIDE
            } else {
                HAT
            };
            hits.extend((0..4).map(|i| (i * 4, key, 55.0)));
            hits.push((0, KICK, 80.0));
            if bar_in_section % 2 == 1 {
                hits.push((12, SIDE_STICK, 50.0));
            }
        } else {
            match groove {
                Groove::Backbeat | Groove::Ballad => {
                    hits.extend(eighths(HAT, 70.0, 52.0));
                    hits.extend([(0, KICK, 100.0), (8, KICK, 92.0)]);
                    if e >= 3 || rng.chance(0.3) {
                        hits.push((10, KICK, 80.0));
                    }
                    let snare = if groove == Groove::Ballad && e < 3 {
                        SIDE_STICK
                    } else {
                        SNARE
                    };
                    hits.extend([(4, snare, 96.0), (12, snare, 100.0)]);
                }
                Groove::Rock => {
                    let cym = if e >= 3 { RIDE } else { HAT };
                    hits.extend(eighths(cym, 82.0, 66.0));
                    hits.extend([(0, KICK, 108.0), (6, KICK, 90.0), (8, KICK, 104.0)]);
                    hits.extend([(4, SNARE, 110.0), (12, SNARE, 112.0)]);
                }
                Groove::Metal => {
                    hits.extend((0..8).map(|i| (i * 2, KICK, 100.0)));
                    if e >= 3 {
                        hits.extend((0..8).map(|i| (i * 2 + 1, KICK, 86.0)));
                    }
                    hits.extend((0..4).map(|i| (i * 4, RIDE, 90.0)));
                    hits.extend([(4, SNARE, 118.0), (12, SNARE, 118.0)]);
                }
                Groove::FourOnFloor => {
                    hits.extend((0..4).map(|i| (i * 4, KICK, 110.0)));
                    hits.extend([(4, CLAP, 96.0), (12, CLAP, 100.0)]);
                    hits.extend((0..4).map(|i| (i * 4 + 2, OPEN_HAT, 74.0)));
                    if e >= 3 {
                        hits.extend(sixteenths(HAT, 56.0).into_iter().filter(|h| h.0 % 4 != 2));
                    }
                }
                Groove::BoomBap => {
                    let soft = if self.plan.genre == Genre::LoFi {
                        0.8
                    } else {
                        1.0
                    };
                    hits.extend(eighths(HAT, 66.0 * soft, 48.0 * soft));
                    hits.extend([
                        (0, KICK, 104.0 * soft),
                        (7, KICK, 86.0 * soft),
                        (10, KICK, 96.0 * soft),
                    ]);
                    hits.extend([(4, SNARE, 100.0 * soft), (12, SNARE, 104.0 * soft)]);
                }
                Groove::JazzRide => {
                    hits.extend([
                        (0, RIDE, 80.0),
                        (4, RIDE, 88.0),
                        (6, RIDE, 64.0),
                        (8, RIDE, 80.0),
                        (12, RIDE, 88.0),
                        (14, RIDE, 64.0),
                    ]);
                    hits.extend([(4, PEDAL_HAT, 60.0), (12, PEDAL_HAT, 60.0)]);
                    hits.push((0, KICK, 50.0));
                    if rng.chance(0.4) {
                        hits.push((rng.pick(&[6u32, 10, 14], 10), SNARE, 45.0));
                    }
                }
                Groove::Shuffle => {
                    hits.extend(eighths(if e >= 3 { RIDE } else { HAT }, 78.0, 60.0));
                    hits.extend([(0, KICK, 100.0), (8, KICK, 94.0)]);
                    hits.extend([(4, SNARE, 100.0), (12, SNARE, 104.0)]);
                }
                Groove::Train => {
                    hits.extend(
                        (0..8).map(|i| (i * 2, SNARE, if i % 2 == 0 { 52.0 } else { 38.0 })),
                    );
                    hits.extend([(4, SNARE, 96.0), (12, SNARE, 98.0)]);
                    hits.extend([(0, KICK, 98.0), (8, KICK, 94.0)]);
                }
                Groove::OneDrop => {
                    hits.extend(eighths(HAT, 64.0, 50.0));
                    hits.extend([(8, KICK, 104.0), (8, SIDE_STICK, 96.0)]);
                    if e >= 3 {
                        hits.push((12, OPEN_HAT, 60.0));
                    }
                }
                Groove::Funk => {
                    hits.extend(sixteenths(HAT, 70.0));
                    hits.extend([(0, KICK, 108.0), (6, KICK, 92.0), (10, KICK, 98.0)]);
                    hits.extend([
                        (4, SNARE, 108.0),
                        (12, SNARE, 110.0),
                        (7, SNARE, 36.0),
                        (9, SNARE, 34.0),
                        (15, SNARE, 38.0),
                    ]);
                }
                Groove::None => {}
            }
            if kind == SectionKind::BuildUp {
                hits.extend((0..8).map(|i| (i * 2, SNARE, 50.0 + 6.0 * i as f32)));
            }
        }
        if fill {
            hits.retain(|h| h.0 < 12 || h.1 == KICK && h.0 == 12);
            let toms = [HIGH_TOM, HIGH_TOM, MID_TOM, LOW_TOM];
            let use_toms = rng.chance(0.5);
            for (i, t) in toms.iter().enumerate() {
                let key = if use_toms { *t } else { SNARE };
                hits.push((12 + i as u32, key, 84.0 + 6.0 * i as f32));
            }
        }
        if crash {
            hits.push((0, CRASH, 100.0));
        }
        let scale = match e {
            0 | 1 => 0.85,
            2 => 0.95,
            _ => 1.0,
        };
        for (step, key, vel) in hits {
            let v = (vel * scale + rng.range(-6, 6) as f32).clamp(20.0, 127.0);
            let note = self.note(bar, step, 1, i32::from(key), v);
            self.drums.push(note);
        }
    }

    /// The final chord, held for `hold_s`.
    fn ending(&mut self, bar: u32, hold_s: f32) {
        let chord = self.chord(bar);
        let start_s = self.grid.at(bar, 0);
        let v = self.voicing(chord, 52);
        for p in v {
            self.harmony.push(Note {
                start_s,
                dur_s: hold_s,
                pitch: p.clamp(0, 127) as u8,
                velocity: 80,
            });
        }
        if self.plan.pad.is_some() {
            let saved = self.voicing_prev;
            self.voicing_prev = 67.0;
            let v = self.voicing(chord, 60);
            self.voicing_prev = saved;
            for p in v {
                self.pad.push(Note {
                    start_s,
                    dur_s: hold_s,
                    pitch: p.clamp(0, 127) as u8,
                    velocity: 66,
                });
            }
        }
        self.bass.push(Note {
            start_s,
            dur_s: hold_s,
            pitch: Self::bass_root(&chord).clamp(0, 127) as u8,
            velocity: 96,
        });
        let tonic = self.centre(SectionKind::Verse) - 4;
        self.melody.push(Note {
            start_s,
            dur_s: hold_s,
            pitch: (tonic + 12 * i32::from(tonic < 60)).clamp(0, 127) as u8,
            velocity: 76,
        });
        if self.plan.kit.is_some() {
            for key in [CRASH, KICK] {
                self.drums.push(Note {
                    start_s,
                    dur_s: 0.1,
                    pitch: key,
                    velocity: 104,
                });
            }
        }
    }
}
