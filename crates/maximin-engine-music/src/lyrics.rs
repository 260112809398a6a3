//! Lyrics: section tags, lines, words and syllables.
//!
//! The syllabifier is a plain rule set for Latin-script words (vowel groups
//! are nuclei; a single consonant between two starts the next syllable; of a
//! cluster, a known onset such as "str" or "pl" goes with the next one; a
//! silent final "e" joins the syllable before). CJK text is one syllable per
//! character (Han, kana with small kana and the long mark joined to the one
//! before, Hangul blocks).

use serde::Serialize;

/// A section's kind, from its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    Intro,
    Verse,
    PreChorus,
    Chorus,
    PostChorus,
    Hook,
    Bridge,
    Interlude,
    Solo,
    Break,
    BuildUp,
    Outro,
}

impl SectionKind {
    pub fn name(&self) -> &'static str {
        match self {
            SectionKind::Intro => "Intro",
            SectionKind::Verse => "Verse",
            SectionKind::PreChorus => "Pre Chorus",
            SectionKind::Chorus => "Chorus",
            SectionKind::PostChorus => "Post Chorus",
            SectionKind::Hook => "Hook",
            SectionKind::Bridge => "Bridge",
            SectionKind::Interlude => "Interlude",
            SectionKind::Solo => "Solo",
            SectionKind::Break => "Break",
            SectionKind::BuildUp => "Build Up",
            SectionKind::Outro => "Outro",
        }
    }

    /// Choruses and hooks: fuller, higher.
    pub(crate) fn is_chorus_like(&self) -> bool {
        matches!(
            self,
            SectionKind::Chorus | SectionKind::Hook | SectionKind::PostChorus
        )
    }

    /// Bars a section without lyrics lasts.
    pub(crate) fn instrumental_bars(&self) -> u32 {
        match self {
            SectionKind::Intro | SectionKind::Outro | SectionKind::Break | SectionKind::BuildUp => {
                4
            }
            _ => 8,
        }
    }
}

/// The kind a tag names (`[Verse 2]`, `[Pre-Chorus]`, `[Inst]`…); unknown
/// tags are verses.
pub(crate) fn kind_of_tag(tag: &str) -> SectionKind {
    let t: String = tag
        .chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect();
    match t.as_str() {
        "intro" | "opening" => SectionKind::Intro,
        "prechorus" | "prerefrain" | "lift" => SectionKind::PreChorus,
        "chorus" | "refrain" | "finalchorus" => SectionKind::Chorus,
        "postchorus" => SectionKind::PostChorus,
        "hook" => SectionKind::Hook,
        "bridge" | "middleeight" => SectionKind::Bridge,
        "interlude" | "transition" | "inst" | "instrumental" => SectionKind::Interlude,
        "solo" | "guitarsolo" | "pianosolo" | "saxsolo" => SectionKind::Solo,
        "break" | "breakdown" | "drop" => SectionKind::Break,
        "buildup" | "build" => SectionKind::BuildUp,
        "outro" | "ending" | "end" | "coda" | "fadeout" => SectionKind::Outro,
        _ => SectionKind::Verse,
    }
}

/// One tagged block of the lyrics.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Block {
    pub kind: SectionKind,
    /// The tag as written, without brackets ("Verse 1"); the kind's name for
    /// untagged text.
    pub label: String,
    pub lines: Vec<String>,
}

/// Splits lyrics into tagged blocks. Lines before the first tag are a verse;
/// with no tags at all, blank-line stanzas are verses and a stanza that
/// repeats an earlier one is a chorus (both times).
pub(crate) fn blocks(lyrics: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut tagged = false;
    let mut untagged_break = false;
    for raw in lyrics.lines() {
        let line = raw.trim();
        if let Some(tag) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            tagged = true;
            out.push(Block {
                kind: kind_of_tag(tag),
                label: tag.trim().to_string(),
                lines: Vec::new(),
            });
            continue;
        }
        if line.is_empty() {
            untagged_break = true;
            continue;
        }
        // A text line needs words to sing.
        if words(line).is_empty() {
            continue;
        }
        let start_new = match out.last() {
            None => true,
            Some(_) => !tagged && untagged_break,
        };
        if start_new {
            out.push(Block {
                kind: SectionKind::Verse,
                label: SectionKind::Verse.name().to_string(),
                lines: Vec::new(),
            });
        }
        untagged_break = false;
        if let Some(b) = out.last_mut() {
            b.lines.push(line.to_string());
        }
    }
    if !tagged {
        // Repeated stanzas are choruses.
        let texts: Vec<String> = out
            .iter()
            .map(|b| b.lines.join("\n").to_lowercase())
            .collect();
        for i in 0..out.len() {
            if texts
                .iter()
                .enumerate()
                .any(|(j, t)| j != i && *t == texts[i])
            {
                out[i].kind = SectionKind::Chorus;
                out[i].label = SectionKind::Chorus.name().to_string();
            }
        }
    }
    out
}

/// A sung syllable: its text and the word it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Syllable {
    pub text: String,
    pub word: String,
    pub index: u16,
    pub count: u16,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF   // kana
        | 0x3400..=0x4DBF // CJK ext A
        | 0x4E00..=0x9FFF // CJK unified
        | 0xF900..=0xFAFF // compatibility
        | 0xAC00..=0xD7AF // Hangul syllables
        | 0x1100..=0x11FF // Hangul jamo
        | 0x3130..=0x318F // Hangul compatibility jamo
        | 0x20000..=0x2FA1F)
}

/// Kana that join the character before (small kana, the long-vowel mark).
fn joins_previous(c: char) -> bool {
    matches!(
        c,
        'ゃ' | 'ゅ'
            | 'ょ'
            | 'ぁ'
            | 'ぃ'
            | 'ぅ'
            | 'ぇ'
            | 'ぉ'
            | 'ゎ'
            | 'っ'
            | 'ャ'
            | 'ュ'
            | 'ョ'
            | 'ァ'
            | 'ィ'
            | 'ゥ'
            | 'ェ'
            | 'ォ'
            | 'ヮ'
            | 'ッ'
            | 'ー'
    )
}

/// The words of a line: runs of letters, digits and inner apostrophes; each
/// CJK character (with its joined kana) is a word of its own.
pub(crate) fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = line.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if is_cjk(c) {
            if joins_previous(c) {
                if let Some(last) = out.last_mut().filter(|_| cur.is_empty()) {
                    let last: &mut String = last;
                    last.push(c);
                    continue;
                }
            }
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(c.to_string());
        } else if c.is_alphanumeric()
            || ((c == '\'' || c == '’')
                && !cur.is_empty()
                && chars
                    .get(i + 1)
                    .is_some_and(|n| n.is_alphabetic() && !is_cjk(*n)))
        {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_vowel(c: char) -> bool {
    matches!(
        c,
        'a' | 'e'
            | 'i'
            | 'o'
            | 'u'
            | 'y'
            | 'à'
            | 'á'
            | 'â'
            | 'ä'
            | 'ã'
            | 'å'
            | 'æ'
            | 'è'
            | 'é'
            | 'ê'
            | 'ë'
            | 'ì'
            | 'í'
            | 'î'
            | 'ï'
            | 'ò'
            | 'ó'
            | 'ô'
            | 'ö'
            | 'õ'
            | 'ø'
            | 'œ'
            | 'ù'
            | 'ú'
            | 'û'
            | 'ü'
            | 'ý'
            | 'ÿ'
            | 'ą'
            | 'ę'
            | 'ő'
            | 'ű'
            | 'а'
            | 'е'
            | 'ё'
            | 'и'
            | 'о'
            | 'у'
            | 'ы'
            | 'э'
            | 'ю'
            | 'я'
            | 'і'
            | 'ї'
            | 'є'
            | 'α'
            | 'ε'
            | 'η'
            | 'ι'
            | 'ο'
            | 'υ'
            | 'ω'
            | 'ά'
            | 'έ'
            | 'ή'
            | 'ί'
            | 'ό'
            | 'ύ'
            | 'ώ'
    )
}

/// Consonant pairs that can begin an English syllable.
const ONSETS: &[&str] = &[
    "bl", "br", "ch", "cl", "cr", "dr", "dw", "fl", "fr", "gl", "gr", "kn", "ph", "pl", "pr", "qu",
    "sc", "sh", "sk", "sl", "sm", "sn", "sp", "st", "sw", "th", "tr", "tw", "wh", "wr",
];

/// Syllables of one word; they concatenate back to the word.
pub(crate) fn syllabify(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    if chars.iter().any(|c| is_cjk(*c)) {
        let mut out: Vec<String> = Vec::new();
        for c in chars {
            match out.last_mut() {
                Some(last) if joins_previous(c) => last.push(c),
                _ => out.push(c.to_string()),
            }
        }
        return out;
    }
    let lower: Vec<char> = chars
        .iter()
        .map(|c| c.to_lowercase().next().unwrap_or(*c))
        .collect();
    let n = lower.len();
    // 'y' is a consonant first in a word before a vowel ("yes") and between
    // vowels ("beyond"); elsewhere a vowel ("my", "day", "crying").
    let plain_vowel = |c: char| is_vowel(c) && c != 'y';
    let vowel_at = |i: usize| -> bool {
        let c = lower[i];
        if c != 'y' {
            return is_vowel(c);
        }
        let prev_v = i > 0 && plain_vowel(lower[i - 1]);
        let next_v = i + 1 < n && plain_vowel(lower[i + 1]);
        !next_v || (i != 0 && !prev_v)
    };
    // Vowel groups [start, end); a 'y' nucleus after a consonant stands
    // alone ("cry-ing").
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < n {
        if vowel_at(i) {
            let s = i;
            i += 1;
            let y_alone = lower[s] == 'y' && s > 0;
            while i < n && vowel_at(i) && !y_alone {
                i += 1;
            }
            groups.push((s, i));
        } else {
            i += 1;
        }
    }
    if groups.len() <= 1 {
        return vec![word.to_string()];
    }
    // Silent endings: "-e" after a consonant (not "-le" after a consonant),
    // "-es"/"-ed" where they add no syllable.
    if let Some(&(s, e)) = groups.last() {
        let before = |k: usize| if k > 0 { Some(lower[k - 1]) } else { None };
        let prev_consonant = before(s).is_some_and(|c| !is_vowel(c));
        let single_e = e - s == 1 && lower[s] == 'e';
        let silent = single_e
            && prev_consonant
            && ((e == n && !(lower[s - 1] == 'l' && s >= 2 && !is_vowel(lower[s - 2])))
                || (e + 1 == n
                    && ((lower[e] == 's'
                        && !matches!(lower[s - 1], 's' | 'x' | 'z' | 'c' | 'g' | 'h'))
                        || (lower[e] == 'd' && !matches!(lower[s - 1], 't' | 'd')))));
        if silent {
            groups.pop();
        }
    }
    if groups.len() <= 1 {
        return vec![word.to_string()];
    }
    // Boundaries between consecutive nuclei.
    let mut cuts = Vec::new();
    for w in groups.windows(2) {
        let (a_end, b_start) = (w[0].1, w[1].0);
        let cluster = b_start - a_end;
        let cut = match cluster {
            0 => b_start,
            1 => {
                if lower[a_end] == 'x' {
                    b_start
                } else {
                    a_end
                }
            }
            _ => {
                let pair: String = lower[b_start - 2..b_start].iter().collect();
                // "st", "sp"… between two vowels split (sis-ter); after
                // another consonant they begin the syllable (mon-ster).
                let s_pair = pair.starts_with('s') && pair != "sh";
                if ONSETS.contains(&pair.as_str()) && (cluster >= 3 || !s_pair) {
                    if cluster >= 3
                        && lower[b_start - 3] == 's'
                        && matches!(pair.as_str(), "tr" | "pr" | "kr" | "pl" | "cr")
                    {
                        b_start - 3
                    } else {
                        b_start - 2
                    }
                } else if pair == "ck" || (pair == "ng" && cluster == 2) {
                    b_start
                } else {
                    b_start - 1
                }
            }
        };
        cuts.push(cut);
    }
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts {
        if cut > from {
            out.push(chars[from..cut].iter().collect());
            from = cut;
        }
    }
    out.push(chars[from..].iter().collect());
    out
}

/// The syllables of a line, in order.
pub(crate) fn line_syllables(line: &str) -> Vec<Syllable> {
    let mut out = Vec::new();
    for word in words(line) {
        let parts = syllabify(&word);
        let count = parts.len().min(usize::from(u16::MAX)) as u16;
        for (i, text) in parts.into_iter().enumerate() {
            out.push(Syllable {
                text,
                word: word.clone(),
                index: i as u16,
                count,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syl(w: &str) -> Vec<String> {
        syllabify(w)
    }

    #[test]
    fn english_syllables() {
        assert_eq!(syl("hello"), ["hel", "lo"]);
        assert_eq!(syl("love"), ["love"]);
        assert_eq!(syl("happy"), ["hap", "py"]);
        assert_eq!(syl("together"), ["to", "ge", "ther"]);
        assert_eq!(syl("table"), ["ta", "ble"]);
        assert_eq!(syl("night"), ["night"]);
        assert_eq!(syl("yesterday"), ["yes", "ter", "day"]);
        assert_eq!(syl("monster"), ["mon", "ster"]);
        assert_eq!(syl("loved"), ["loved"]);
        assert_eq!(syl("wanted"), ["wan", "ted"]);
        assert_eq!(syl("dancing"), ["dan", "cing"]);
        assert_eq!(syl("Forever"), ["Fo", "re", "ver"]);
        assert_eq!(syl("I"), ["I"]);
        assert_eq!(syl("crying"), ["cry", "ing"]);
        assert_eq!(syl("day"), ["day"]);
        assert_eq!(syl("beyond"), ["be", "yond"]);
        assert_eq!(syl("don't"), ["don't"]);
        for w in [
            "extraordinary",
            "strength",
            "beautiful",
            "música",
            "corazón",
        ] {
            assert_eq!(syl(w).concat(), w);
        }
        assert_eq!(syl("corazón").len(), 3);
    }

    #[test]
    fn cjk_per_character() {
        assert_eq!(syl("你好"), ["你", "好"]);
        assert_eq!(words("我爱你 hello"), ["我", "爱", "你", "hello"]);
        assert_eq!(words("きょうは"), ["きょ", "う", "は"]);
        assert_eq!(words("사랑해"), ["사", "랑", "해"]);
    }

    #[test]
    fn tags_and_blocks() {
        let b = blocks("[Intro]\n\n[Verse 1]\nHello there\nGeneral one\n[Pre-Chorus]\nUp we go\n[Chorus]\nSing it loud\n[Outro]\n");
        let kinds: Vec<SectionKind> = b.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            [
                SectionKind::Intro,
                SectionKind::Verse,
                SectionKind::PreChorus,
                SectionKind::Chorus,
                SectionKind::Outro
            ]
        );
        assert_eq!(b[1].label, "Verse 1");
        assert_eq!(b[1].lines, ["Hello there", "General one"]);
        assert!(b[0].lines.is_empty());

        let b = blocks("one two\nthree\n\nla la la\n\nfour five\n\nla la la\n");
        let kinds: Vec<SectionKind> = b.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            [
                SectionKind::Verse,
                SectionKind::Chorus,
                SectionKind::Verse,
                SectionKind::Chorus
            ]
        );
    }

    #[test]
    fn line_to_syllables() {
        let s = line_syllables("Hello, my friend!");
        let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["Hel", "lo", "my", "friend"]);
        assert_eq!(s[1].word, "Hello");
        assert_eq!((s[1].index, s[1].count), (1, 2));
    }
}
