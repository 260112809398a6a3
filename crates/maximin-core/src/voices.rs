//! An account's own voices (spec §5.2–5.5): designed from a description or
//! cloned from a clip. A voice is a profile of engine parameters over a
//! language and gender (pitch offset, pitch range, speaking rate, energy);
//! no audio and no description is kept. Designed and cloned voices are
//! private to their account and expire 168 hours after creation unless used
//! in a real synthesis first (seed 003).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::engines::{Gender, Prosody};
use crate::speech;
use crate::store::VoiceRecord;
use crate::{Error, Result};

/// An unused designed or cloned voice is deleted this long after creation.
pub const UNUSED_TTL: time::Duration = time::Duration::hours(168);

pub const CLONED: &str = "voice_cloning";
pub const DESIGNED: &str = "voice_generation";

/// Engine parameters of an account's voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceProfile {
    /// Language tag (`en-us`, `fr`, `cmn`).
    pub language: String,
    /// `female` or `male`.
    pub gender: Option<String>,
    /// Semitones above (below) the engine voice.
    pub pitch: f32,
    /// Pitch range multiplier (1 = the engine voice's own).
    pub range: f32,
    /// Speaking rate multiplier.
    pub rate: f32,
    /// Loudness multiplier.
    pub energy: f32,
    /// The speaker's median pitch (cloned voices): the engine voice is
    /// shifted to it, measured, instead of by `pitch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f0_hz: Option<f32>,
}

impl VoiceProfile {
    pub fn gender(&self) -> Option<Gender> {
        match self.gender.as_deref() {
            Some("female") => Some(Gender::Female),
            Some("male") => Some(Gender::Male),
            _ => None,
        }
    }

    /// The profile applied to a request's prosody and volume.
    pub fn apply(&self, prosody: Prosody, gain: f32) -> (Prosody, f32) {
        (
            Prosody {
                rate: prosody.rate * self.rate,
                pitch: (prosody.pitch + self.pitch).clamp(-12.0, 12.0),
                range: prosody.range * self.range,
            },
            gain * self.energy,
        )
    }

    /// A system voice's profile: its language and gender, nothing changed.
    pub fn neutral(language: &str, gender: Option<Gender>) -> Self {
        VoiceProfile {
            language: language.to_owned(),
            gender: gender.map(|g| match g {
                Gender::Female => "female".to_owned(),
                Gender::Male => "male".to_owned(),
            }),
            pitch: 0.0,
            range: 1.0,
            rate: 1.0,
            energy: 1.0,
            f0_hz: None,
        }
    }

    /// Voices mixed by weight (`timbre_weights`): pitch, range, rate and
    /// energy are weighted means (rate and range geometric); language and
    /// gender come from the heaviest voice.
    pub fn mix(parts: &[(VoiceProfile, u32)]) -> Option<VoiceProfile> {
        let total: f32 = parts.iter().map(|(_, w)| *w as f32).sum();
        if total <= 0.0 {
            return None;
        }
        let heaviest = parts.iter().max_by_key(|(_, w)| *w)?.0.clone();
        let mean = |f: &dyn Fn(&VoiceProfile) -> f32| {
            parts.iter().map(|(p, w)| f(p) * *w as f32).sum::<f32>() / total
        };
        let f0_hz = if parts.iter().all(|(p, _)| p.f0_hz.is_some()) {
            Some(mean(&|p| p.f0_hz.unwrap_or(1.0).max(1.0).ln()).exp())
        } else {
            None
        };
        Some(VoiceProfile {
            f0_hz,
            pitch: mean(&|p| p.pitch),
            range: mean(&|p| p.range.max(1e-3).ln()).exp(),
            rate: mean(&|p| p.rate.max(1e-3).ln()).exp(),
            energy: mean(&|p| p.energy),
            ..heaviest
        })
    }
}

/// Whether a stored voice can be used at `now`.
pub fn is_live(v: &VoiceRecord, now: OffsetDateTime) -> bool {
    v.deleted_at.is_none() && (v.used_at.is_some() || v.created_at + UNUSED_TTL > now)
}

/// The rules of a user-chosen voice id (spec §5.2): 8–256 characters, a
/// letter first, letters, digits, `-` and `_`, not ending in `-` or `_`.
pub fn check_voice_id(id: &str) -> Result<()> {
    let ok = (8..=256).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !id.ends_with(['-', '_']);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "voice_id",
            "'voice_id' must be 8 to 256 characters: a letter first, then letters, digits, '-' or '_', not ending with '-' or '_'.",
        ))
    }
}

/// An id for a designed voice, as MiniMax makes them:
/// `ttv-voice-<yyyyMMddHHmmss><nn>-<8 characters>`.
pub fn designed_voice_id(now: OffsetDateTime) -> String {
    use rand::Rng;
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..8)
        .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
        .collect();
    format!(
        "ttv-voice-{:04}{:02}{:02}{:02}{:02}{:02}{:02}-{tail}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        rng.gen_range(0..100)
    )
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A profile from a description such as "a calm, deep older male voice,
/// slow": gender, age, pitch, pace, expressiveness, loudness and language
/// words move the parameters; what it does not mention stays neutral.
pub fn design(prompt: &str) -> Result<VoiceProfile> {
    let w = words(prompt);
    if w.is_empty() {
        return Err(Error::invalid("prompt", "'prompt' describes no voice."));
    }
    let has = |set: &[&str]| w.iter().filter(|x| set.contains(&x.as_str())).count() as f32;
    let female = has(&[
        "female",
        "woman",
        "women",
        "girl",
        "lady",
        "feminine",
        "mother",
        "grandmother",
        "she",
        "her",
        "actress",
        "queen",
        "princess",
        "sister",
        "daughter",
        "aunt",
    ]);
    let male = has(&[
        "male",
        "man",
        "men",
        "boy",
        "gentleman",
        "masculine",
        "father",
        "grandfather",
        "he",
        "his",
        "actor",
        "king",
        "prince",
        "brother",
        "son",
        "uncle",
        "guy",
    ]);
    let old = has(&[
        "old",
        "older",
        "elderly",
        "aged",
        "senior",
        "grandfather",
        "grandmother",
        "ancient",
        "wise",
        "mature",
    ]);
    let young = has(&[
        "young",
        "younger",
        "youthful",
        "teen",
        "teenage",
        "teenager",
        "child",
        "kid",
        "little",
        "childlike",
    ]);
    let low = has(&[
        "deep", "low", "bass", "baritone", "husky", "gravelly", "raspy", "dark", "rich",
    ]);
    let high = has(&[
        "high", "bright", "squeaky", "light", "thin", "soprano", "shrill", "sweet",
    ]);
    let slow = has(&[
        "slow",
        "slowly",
        "measured",
        "leisurely",
        "unhurried",
        "deliberate",
    ]);
    let fast = has(&[
        "fast",
        "quick",
        "quickly",
        "rapid",
        "brisk",
        "hurried",
        "energetic",
    ]);
    let flat = has(&[
        "calm", "soothing", "gentle", "monotone", "flat", "serious", "steady", "relaxed",
        "composed",
    ]);
    let lively = has(&[
        "excited",
        "lively",
        "cheerful",
        "dramatic",
        "expressive",
        "animated",
        "enthusiastic",
        "happy",
        "playful",
        "energetic",
    ]);
    let loud = has(&[
        "loud",
        "powerful",
        "strong",
        "booming",
        "commanding",
        "bold",
    ]);
    let soft = has(&[
        "soft",
        "quiet",
        "whisper",
        "whispering",
        "breathy",
        "hushed",
    ]);

    let gender = if female > male {
        Some("female")
    } else if male > female {
        Some("male")
    } else {
        None
    };
    let mut pitch =
        3.0 * (high.min(2.0) - low.min(2.0)) + 3.0 * young.min(1.0) - 2.0 * old.min(1.0);
    pitch = pitch.clamp(-8.0, 8.0);
    let mut rate: f32 = 1.0;
    if slow > fast {
        rate *= 0.85;
    } else if fast > slow {
        rate *= 1.15;
    }
    if old > 0.0 {
        rate *= 0.93;
    }
    let range = if flat > lively {
        0.7
    } else if lively > flat {
        1.4
    } else {
        1.0
    };
    let energy = if loud > soft {
        1.25
    } else if soft > loud {
        0.7
    } else {
        1.0
    };
    let language = language_in(&w).unwrap_or("en-us");
    Ok(VoiceProfile {
        language: language.to_owned(),
        gender: gender.map(str::to_owned),
        pitch,
        range,
        rate: rate.clamp(0.6, 1.6),
        energy,
        f0_hz: None,
    })
}

/// A language the description names ("a French woman", "British").
fn language_in(words: &[String]) -> Option<&'static str> {
    if words.iter().any(|w| w == "british") {
        return Some("en-gb");
    }
    words.iter().find_map(|w| match w.as_str() {
        "american" | "english" => Some("en-us"),
        "mandarin" | "chinese" => Some("cmn"),
        "cantonese" => Some("yue"),
        "brazilian" => Some("pt-br"),
        other => {
            // "french" → "French", as language_boost names languages.
            let mut c = other.chars();
            let first = c.next()?;
            let name: String = first.to_uppercase().chain(c).collect();
            speech::language_boost_tag(&name)
        }
    })
}

/// Measurements of a speaker's clip (from `maximin_audio::analysis`).
#[derive(Debug, Clone, Copy)]
pub struct SpeakerStats {
    pub f0_median_hz: f32,
    pub f0_p10_hz: f32,
    pub f0_p90_hz: f32,
    pub syllables_per_s: f32,
}

/// Usual median pitch of engine voices: the offset stored for a clone
/// before the engine voice it is spoken with is measured.
const MALE_HZ: f32 = 115.0;
const FEMALE_HZ: f32 = 200.0;
/// A usual spread between the 10th and 90th pitch percentiles, semitones.
const USUAL_RANGE_ST: f32 = 7.0;
/// A usual speaking rate, syllables per second.
const USUAL_SYLLABLES: f32 = 4.5;

/// A profile from a speaker's measurements: gender from the median pitch,
/// the pitch offset from the engine voice of that gender, range and rate
/// relative to usual speech.
pub fn clone_profile(stats: SpeakerStats, language: &str) -> VoiceProfile {
    let female = stats.f0_median_hz >= 165.0;
    let base = if female { FEMALE_HZ } else { MALE_HZ };
    let st = |a: f32, b: f32| 12.0 * (a / b).log2();
    let spread = st(stats.f0_p90_hz.max(1.0), stats.f0_p10_hz.max(1.0));
    VoiceProfile {
        language: language.to_owned(),
        gender: Some(if female { "female" } else { "male" }.to_owned()),
        pitch: st(stats.f0_median_hz, base).clamp(-8.0, 8.0),
        range: (spread / USUAL_RANGE_ST).clamp(0.5, 2.0),
        rate: (stats.syllables_per_s / USUAL_SYLLABLES).clamp(0.7, 1.4),
        energy: 1.0,
        f0_hz: Some(stats.f0_median_hz),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_move_the_parameters() {
        let p = design("a calm, deep older male voice, slow").expect("design");
        assert_eq!(p.gender.as_deref(), Some("male"));
        assert!(p.pitch <= -4.0, "{p:?}");
        assert!(p.rate < 0.85, "{p:?}");
        assert!(p.range < 1.0, "{p:?}");
        assert_eq!(p.language, "en-us");

        let p = design("A cheerful young French girl who speaks fast").expect("design");
        assert_eq!(p.gender.as_deref(), Some("female"));
        assert!(p.pitch > 0.0 && p.rate > 1.0 && p.range > 1.0, "{p:?}");
        assert_eq!(p.language, "fr");

        let p = design("British narrator").expect("design");
        assert_eq!(p.language, "en-gb");
        assert!(design("  ,, ").is_err());
    }

    #[test]
    fn clones_follow_the_speaker() {
        let low = clone_profile(
            SpeakerStats {
                f0_median_hz: 100.0,
                f0_p10_hz: 85.0,
                f0_p90_hz: 120.0,
                syllables_per_s: 3.5,
            },
            "en-us",
        );
        assert_eq!(low.gender.as_deref(), Some("male"));
        assert!(
            low.pitch < -2.0 && low.rate < 0.9 && low.range < 1.0,
            "{low:?}"
        );
        let high = clone_profile(
            SpeakerStats {
                f0_median_hz: 240.0,
                f0_p10_hz: 170.0,
                f0_p90_hz: 330.0,
                syllables_per_s: 5.5,
            },
            "en-us",
        );
        assert_eq!(high.gender.as_deref(), Some("female"));
        assert!(
            high.pitch > 2.0 && high.rate > 1.1 && high.range > 1.2,
            "{high:?}"
        );
    }

    #[test]
    fn mixing_weighs_the_parameters() {
        let a = VoiceProfile {
            pitch: 4.0,
            rate: 1.2,
            ..VoiceProfile::neutral("en-us", Some(Gender::Female))
        };
        let b = VoiceProfile::neutral("en-us", Some(Gender::Male));
        let m = VoiceProfile::mix(&[(a, 30), (b, 70)]).expect("mix");
        assert_eq!(m.gender.as_deref(), Some("male"));
        assert!((m.pitch - 1.2).abs() < 1e-4, "{m:?}");
        assert!(m.rate > 1.0 && m.rate < 1.1, "{m:?}");
    }

    #[test]
    fn voice_ids_follow_the_rules() {
        assert!(check_voice_id("MyVoice01").is_ok());
        assert!(check_voice_id("my-voice_2").is_ok());
        for bad in ["short", "1abcdefgh", "abcdefg-", "abc def gh", "abcdefgh_"] {
            assert!(check_voice_id(bad).is_err(), "{bad}");
        }
        let id = designed_voice_id(OffsetDateTime::UNIX_EPOCH);
        assert!(id.starts_with("ttv-voice-1970010100000"), "{id}");
        assert_eq!(id.len(), "ttv-voice-".len() + 16 + 1 + 8);
    }

    #[test]
    fn unused_voices_expire_after_168_hours() {
        let t0 = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1000);
        let mut v = VoiceRecord {
            account_id: "a".into(),
            voice_id: "v".into(),
            kind: DESIGNED.into(),
            profile: "{}".into(),
            created_at: t0,
            used_at: None,
            deleted_at: None,
        };
        assert!(is_live(&v, t0 + time::Duration::hours(167)));
        assert!(!is_live(&v, t0 + time::Duration::hours(168)));
        v.used_at = Some(t0 + time::Duration::hours(1));
        assert!(is_live(&v, t0 + time::Duration::hours(10_000)));
        v.deleted_at = Some(t0);
        assert!(!is_live(&v, t0));
    }
}
