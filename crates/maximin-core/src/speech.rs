//! Engine-neutral text-to-speech logic: splitting text into the pieces that
//! are synthesised (and streamed) one at a time, pause markup, the
//! illegal-character rule, emotions as prosody, and resolving the voice ids
//! clients send (MiniMax's system ids among them) onto installed voices.

use crate::engines::{EngineVoice, Gender, Prosody};

/// One piece of the text to speak, or a pause (`<#0.5#>` markup).
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// A sentence, or a clause of an over-long one.
    Text(String),
    /// Silence, in seconds.
    Pause(f32),
}

/// Longest piece handed to an engine at once, in characters; longer sentences
/// are cut at clause punctuation, then at spaces.
pub const MAX_PIECE_CHARS: usize = 300;

fn is_sentence_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '…' | '\n')
}

fn is_clause_end(c: char) -> bool {
    matches!(c, ',' | ';' | ':' | '，' | '；' | '：' | '、')
}

/// Splits text into sentences and pauses. Pause markup `<#x#>` (x in seconds,
/// 0.01–99.99) becomes a [`Piece::Pause`]; malformed markup is read as text.
pub fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(start) = rest.find("<#") {
            if let Some(len) = rest[start + 2..].find("#>") {
                let inner = &rest[start + 2..start + 2 + len];
                if let Ok(secs) = inner.trim().parse::<f32>() {
                    if (0.01..=99.99).contains(&secs) {
                        sentences(&rest[..start], &mut out);
                        out.push(Piece::Pause(secs));
                        rest = &rest[start + 2 + len + 2..];
                        continue;
                    }
                }
            }
            // Not a pause: keep it as text up to and including "<#".
            sentences(&rest[..start + 2], &mut out);
            rest = &rest[start + 2..];
            continue;
        }
        sentences(rest, &mut out);
        break;
    }
    out
}

fn sentences(text: &str, out: &mut Vec<Piece>) {
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        let end = c == '\n'
            || is_sentence_end(c)
                && chars
                    .peek()
                    .is_none_or(|n| n.is_whitespace() || !n.is_ascii() || *n == '"' || *n == '\'');
        if end {
            // Keep closing quotes and brackets with their sentence.
            while let Some(&n) = chars.peek() {
                if matches!(n, '"' | '\'' | ')' | '”' | '’' | '」' | '）') {
                    current.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            flush(&mut current, out);
        }
    }
    flush(&mut current, out);
}

fn flush(current: &mut String, out: &mut Vec<Piece>) {
    let s = current.trim();
    if s.chars().any(char::is_alphanumeric) {
        for part in cut_long(s) {
            out.push(Piece::Text(part));
        }
    } else if let (Some(Piece::Text(last)), false) = (out.last_mut(), s.is_empty()) {
        // Stray punctuation belongs to the sentence before it.
        last.push_str(s);
    }
    current.clear();
}

/// Cuts a sentence longer than [`MAX_PIECE_CHARS`] at clause punctuation,
/// else at the last space before the limit, else hard.
fn cut_long(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest: Vec<char> = s.chars().collect();
    while rest.len() > MAX_PIECE_CHARS {
        let window = &rest[..MAX_PIECE_CHARS];
        let cut = window
            .iter()
            .rposition(|c| is_clause_end(*c))
            .or_else(|| window.iter().rposition(|c| c.is_whitespace()))
            .map_or(MAX_PIECE_CHARS, |i| i + 1);
        let head: String = rest[..cut].iter().collect();
        if !head.trim().is_empty() {
            out.push(head.trim().to_owned());
        }
        rest.drain(..cut);
    }
    let tail: String = rest.iter().collect();
    if !tail.trim().is_empty() {
        out.push(tail.trim().to_owned());
    }
    out
}

/// Characters the illegal-character rule counts: control characters other
/// than tab, line feed and carriage return.
pub fn is_illegal(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// The share of illegal characters in `text` (0 for empty text).
pub fn illegal_ratio(text: &str) -> f64 {
    let (mut total, mut bad) = (0usize, 0usize);
    for c in text.chars() {
        total += 1;
        if is_illegal(c) {
            bad += 1;
        }
    }
    if total == 0 {
        0.0
    } else {
        bad as f64 / total as f64
    }
}

/// Above this share of illegal characters a request fails (seed 003).
pub const MAX_ILLEGAL_RATIO: f64 = 0.10;

/// Text with illegal characters removed, as it is spoken.
pub fn clean(text: &str) -> String {
    text.chars().filter(|c| !is_illegal(*c)).collect()
}

/// Characters billed and counted: everything but whitespace and illegal characters.
pub fn usage_characters(text: &str) -> u64 {
    text.chars()
        .filter(|c| !c.is_whitespace() && !is_illegal(*c))
        .count() as u64
}

/// Words (or, for scripts without spaces, characters) in the text.
pub fn word_count(text: &str) -> u64 {
    let mut count = 0u64;
    let mut in_word = false;
    for c in text.chars() {
        if is_cjk(c) {
            count += 1;
            in_word = false;
        } else if c.is_alphanumeric() {
            if !in_word {
                count += 1;
            }
            in_word = true;
        } else {
            in_word = false;
        }
    }
    count
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff)
}

/// The emotions seed 003 lists (`neutral` is accepted as `calm`).
pub const EMOTIONS: &[&str] = &[
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
    "calm",
    "fluent",
    "whisper",
    "neutral",
];

/// An emotion rendered as far as rate, pitch, range and energy go; the last
/// value is a gain factor.
pub fn emotion_prosody(emotion: &str) -> Option<(Prosody, f32)> {
    let p =
        |rate: f32, pitch: f32, range: f32, gain: f32| Some((Prosody { rate, pitch, range }, gain));
    match emotion {
        "happy" => p(1.08, 2.0, 1.35, 1.1),
        "sad" => p(0.85, -2.0, 0.6, 0.8),
        "angry" => p(1.08, 1.0, 1.5, 1.35),
        "fearful" => p(1.15, 2.5, 1.2, 0.9),
        "disgusted" => p(0.92, -1.5, 1.1, 1.0),
        "surprised" => p(1.05, 3.0, 1.6, 1.15),
        "calm" | "neutral" => p(0.95, 0.0, 0.85, 0.95),
        "fluent" => p(1.05, 0.0, 1.0, 1.0),
        "whisper" => p(0.9, -1.0, 0.5, 0.45),
        _ => None,
    }
}

/// What a MiniMax system voice id stands for: a language and a gender, so a
/// local voice of the same kind can speak for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceKind {
    pub language: &'static str,
    pub gender: Gender,
}

/// MiniMax's documented system voice ids that clients use by default, with
/// their language and gender. Ids not listed resolve through their language
/// prefix (`English_…`, `Japanese_…`) and name.
const MINIMAX_VOICES: &[(&str, &str, Gender)] = &[
    ("male-qn-qingse", "cmn", Gender::Male),
    ("male-qn-jingying", "cmn", Gender::Male),
    ("male-qn-badao", "cmn", Gender::Male),
    ("male-qn-daxuesheng", "cmn", Gender::Male),
    ("female-shaonv", "cmn", Gender::Female),
    ("female-yujie", "cmn", Gender::Female),
    ("female-chengshu", "cmn", Gender::Female),
    ("female-tianmei", "cmn", Gender::Female),
    ("presenter_male", "cmn", Gender::Male),
    ("presenter_female", "cmn", Gender::Female),
    ("audiobook_male_1", "cmn", Gender::Male),
    ("audiobook_male_2", "cmn", Gender::Male),
    ("audiobook_female_1", "cmn", Gender::Female),
    ("audiobook_female_2", "cmn", Gender::Female),
    ("Wise_Woman", "en-us", Gender::Female),
    ("Friendly_Person", "en-us", Gender::Male),
    ("Inspirational_girl", "en-us", Gender::Female),
    ("Deep_Voice_Man", "en-us", Gender::Male),
    ("Calm_Woman", "en-us", Gender::Female),
    ("Casual_Guy", "en-us", Gender::Male),
    ("Lively_Girl", "en-us", Gender::Female),
    ("Patient_Man", "en-us", Gender::Male),
    ("Young_Knight", "en-us", Gender::Male),
    ("Determined_Man", "en-us", Gender::Male),
    ("Lovely_Girl", "en-us", Gender::Female),
    ("Decent_Boy", "en-us", Gender::Male),
    ("Imposing_Manner", "en-us", Gender::Male),
    ("Elegant_Man", "en-us", Gender::Male),
    ("Abbess", "en-us", Gender::Female),
    ("Sweet_Girl_2", "en-us", Gender::Female),
    ("Exuberant_Girl", "en-us", Gender::Female),
];

/// Language prefixes of MiniMax voice ids (`English_expressive_narrator`,
/// `Japanese_KindLady`, …) and their language tags.
const PREFIXES: &[(&str, &str)] = &[
    ("Chinese (Mandarin)_", "cmn"),
    ("Cantonese_", "yue"),
    ("English_", "en-us"),
    ("Japanese_", "ja"),
    ("Korean_", "ko"),
    ("Spanish_", "es"),
    ("Portuguese_", "pt-br"),
    ("French_", "fr"),
    ("German_", "de"),
    ("Russian_", "ru"),
    ("Italian_", "it"),
    ("Arabic_", "ar"),
    ("Turkish_", "tr"),
    ("Ukrainian_", "uk"),
    ("Dutch_", "nl"),
    ("Vietnamese_", "vi"),
    ("Indonesian_", "id"),
    ("Thai_", "th"),
    ("Polish_", "pl"),
    ("Romanian_", "ro"),
    ("Greek_", "el"),
    ("Czech_", "cs"),
    ("Finnish_", "fi"),
    ("Hindi_", "hi"),
];

fn gender_from_name(name: &str) -> Gender {
    let n = name.to_ascii_lowercase();
    const FEMALE: &[&str] = &[
        "female", "woman", "women", "girl", "lady", "queen", "mother", "grandma", "sister", "wife",
        "princess", "abbess", "madam", "her", "mom",
    ];
    if FEMALE.iter().any(|w| n.contains(w)) && !n.contains("male_") {
        Gender::Female
    } else {
        Gender::Male
    }
}

/// MiniMax's documented system voice ids that this server knows by name,
/// with what they stand for (ids with a language prefix resolve too).
pub fn minimax_voices() -> impl Iterator<Item = (&'static str, VoiceKind)> {
    MINIMAX_VOICES
        .iter()
        .map(|&(id, language, gender)| (id, VoiceKind { language, gender }))
}

/// The language and gender a MiniMax system voice id stands for, when it is
/// one (listed, or with a known language prefix).
pub fn minimax_voice_kind(voice_id: &str) -> Option<VoiceKind> {
    if let Some((_, language, gender)) = MINIMAX_VOICES
        .iter()
        .find(|(id, _, _)| id.eq_ignore_ascii_case(voice_id))
    {
        return Some(VoiceKind {
            language,
            gender: *gender,
        });
    }
    PREFIXES
        .iter()
        .find(|(p, _)| voice_id.starts_with(p))
        .map(|(p, language)| VoiceKind {
            language,
            gender: gender_from_name(&voice_id[p.len()..]),
        })
}

/// MiniMax's `language_boost` names as language tags.
pub fn language_boost_tag(boost: &str) -> Option<&'static str> {
    Some(match boost {
        "Chinese" => "cmn",
        "Chinese,Yue" => "yue",
        "English" => "en-us",
        "Arabic" => "ar",
        "Russian" => "ru",
        "Spanish" => "es",
        "French" => "fr",
        "Portuguese" => "pt-br",
        "German" => "de",
        "Turkish" => "tr",
        "Dutch" => "nl",
        "Ukrainian" => "uk",
        "Vietnamese" => "vi",
        "Indonesian" => "id",
        "Japanese" => "ja",
        "Italian" => "it",
        "Korean" => "ko",
        "Thai" => "th",
        "Polish" => "pl",
        "Romanian" => "ro",
        "Greek" => "el",
        "Czech" => "cs",
        "Finnish" => "fi",
        "Hindi" => "hi",
        "Bulgarian" => "bg",
        "Danish" => "da",
        "Hebrew" => "he",
        "Malay" => "ms",
        "Persian" => "fa",
        "Slovak" => "sk",
        "Swedish" => "sv",
        "Croatian" => "hr",
        "Filipino" => "fil",
        "Hungarian" => "hu",
        "Norwegian" => "nb",
        "Slovenian" => "sl",
        "Catalan" => "ca",
        "Nynorsk" => "nn",
        "Tamil" => "ta",
        "Afrikaans" => "af",
        _ => return None,
    })
}

/// `en` of `en-us`.
fn base_language(tag: &str) -> &str {
    tag.split('-').next().unwrap_or(tag)
}

/// Whether two language tags name the same language (`en-us` and `en-gb` do).
pub fn same_language(a: &str, b: &str) -> bool {
    base_language(a) == base_language(b)
}

/// The best voice among `voices` for a language and gender: exact language
/// (`en-us`), then the same base language (`en`, `en-gb`), preferring the
/// gender asked for.
pub fn best_voice<'a>(
    voices: &'a [EngineVoice],
    language: &str,
    gender: Option<Gender>,
) -> Option<&'a EngineVoice> {
    let score = |v: &EngineVoice| {
        let lang = if v.language == language {
            4
        } else if same_language(&v.language, language) {
            2
        } else {
            return 0;
        };
        let g = match (gender, v.gender) {
            (Some(a), Some(b)) if a == b => 1,
            _ => 0,
        };
        lang + g
    };
    voices
        .iter()
        .filter(|v| score(v) > 0)
        .max_by_key(|v| (score(v), std::cmp::Reverse(v.id.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(p: &[Piece]) -> Vec<String> {
        p.iter()
            .filter_map(|p| match p {
                Piece::Text(t) => Some(t.clone()),
                Piece::Pause(_) => None,
            })
            .collect()
    }

    #[test]
    fn sentences_split_on_terminal_punctuation_and_keep_decimals() {
        let p = pieces("Hello there. It costs 3.50 dollars! Really? Yes\nNew line");
        assert_eq!(
            texts(&p),
            vec![
                "Hello there.",
                "It costs 3.50 dollars!",
                "Really?",
                "Yes",
                "New line"
            ]
        );
        let p = pieces("你好。今天天气很好！");
        assert_eq!(texts(&p), vec!["你好。", "今天天气很好！"]);
    }

    #[test]
    fn pauses_become_pieces_and_bad_markup_stays_text() {
        let p = pieces("One.<#0.5#>Two.");
        assert_eq!(
            p,
            vec![
                Piece::Text("One.".into()),
                Piece::Pause(0.5),
                Piece::Text("Two.".into())
            ]
        );
        let p = pieces("A <#x#> b");
        assert_eq!(texts(&p).join(" "), "A <# x#> b");
    }

    #[test]
    fn long_sentences_are_cut_at_clauses() {
        let long = format!("{}, {}", "a".repeat(200), "b ".repeat(100));
        let p = texts(&pieces(&long));
        assert!(p.len() >= 2, "{p:?}");
        assert!(p.iter().all(|s| s.chars().count() <= MAX_PIECE_CHARS));
    }

    #[test]
    fn illegal_characters_are_counted_and_removed() {
        assert_eq!(illegal_ratio("abc\ndef\t"), 0.0);
        let t = "ab\u{1}\u{2}cdefghij";
        assert!((illegal_ratio(t) - 2.0 / 12.0).abs() < 1e-9);
        assert_eq!(clean(t), "abcdefghij");
        assert_eq!(usage_characters("a b\u{1}c"), 3);
        assert_eq!(word_count("Hello, world! 你好"), 4);
    }

    #[test]
    fn minimax_ids_resolve_to_language_and_gender() {
        assert_eq!(
            minimax_voice_kind("female-shaonv"),
            Some(VoiceKind {
                language: "cmn",
                gender: Gender::Female
            })
        );
        assert_eq!(
            minimax_voice_kind("English_expressive_narrator").map(|k| k.language),
            Some("en-us")
        );
        assert_eq!(
            minimax_voice_kind("English_Graceful_Lady").map(|k| k.gender),
            Some(Gender::Female)
        );
        assert_eq!(minimax_voice_kind("my-own-voice"), None);
    }

    #[test]
    fn best_voice_prefers_language_then_gender() {
        let v = |id: &str, lang: &str, g: Option<Gender>| EngineVoice {
            id: id.into(),
            name: id.into(),
            language: lang.into(),
            gender: g,
        };
        let voices = vec![
            v("en-gb", "en-gb", Some(Gender::Male)),
            v("en-us", "en-us", Some(Gender::Male)),
            v("fr", "fr", None),
        ];
        assert_eq!(
            best_voice(&voices, "en-us", None).map(|v| v.id.as_str()),
            Some("en-us")
        );
        assert_eq!(
            best_voice(&voices, "en-au", None).map(|v| &v.language[..2]),
            Some("en")
        );
        assert!(best_voice(&voices, "de", None).is_none());
        assert!(same_language("en-us", "en-gb") && !same_language("en-us", "es"));
    }
}
