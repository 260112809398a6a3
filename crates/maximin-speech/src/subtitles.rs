//! Subtitles: each sentence cut into segments of at most
//! [`SUBTITLE_CHARS`] characters, timed in milliseconds.

/// One subtitle segment: at most [`SUBTITLE_CHARS`] characters of a
/// sentence and when they are spoken, in milliseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Subtitle {
    pub text: String,
    pub time_begin: f64,
    pub time_end: f64,
}

/// Longest subtitle segment (MiniMax: sentence aligned, at most 50 characters).
pub const SUBTITLE_CHARS: usize = 50;

/// A sentence's segments: cut at word boundaries into pieces of at most
/// [`SUBTITLE_CHARS`], its time shared by characters.
pub fn subtitle_segments(text: &str, begin_ms: f64, end_ms: f64) -> Vec<Subtitle> {
    let text = text.trim();
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split_inclusive(char::is_whitespace) {
        let wlen = word.chars().count();
        if !cur.is_empty() && cur.chars().count() + wlen > SUBTITLE_CHARS {
            parts.push(std::mem::take(&mut cur));
        }
        if wlen > SUBTITLE_CHARS {
            // A "word" longer than a segment (text without spaces, e.g. Chinese).
            let chars: Vec<char> = word.chars().collect();
            for c in chars.chunks(SUBTITLE_CHARS) {
                parts.push(c.iter().collect());
            }
            continue;
        }
        cur.push_str(word);
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    let total: usize = parts
        .iter()
        .map(|p| p.chars().count())
        .sum::<usize>()
        .max(1);
    let span = (end_ms - begin_ms).max(0.0);
    let mut at = begin_ms;
    let mut done = 0usize;
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            done += p.chars().count();
            let end = begin_ms + span * done as f64 / total as f64;
            let s = Subtitle {
                text: p.trim().to_owned(),
                time_begin: (at * 10.0).round() / 10.0,
                time_end: (end * 10.0).round() / 10.0,
            };
            at = end;
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_sentence_is_cut_at_words_and_its_time_shared_by_characters() {
        let text = "This is the fifth sentence, and it is a little longer than the others.";
        let subs = subtitle_segments(text, 1000.0, 2000.0);
        assert_eq!(subs.len(), 2, "{subs:?}");
        assert!(subs
            .iter()
            .all(|s| s.text.chars().count() <= SUBTITLE_CHARS));
        assert_eq!(subs[0].time_begin, 1000.0);
        assert_eq!(subs[0].time_end, subs[1].time_begin);
        assert_eq!(subs[1].time_end, 2000.0);
        let joined = format!("{} {}", subs[0].text, subs[1].text);
        assert_eq!(joined, text);
    }

    #[test]
    fn text_without_spaces_is_cut_hard() {
        let text = "长".repeat(120);
        let subs = subtitle_segments(&text, 0.0, 1200.0);
        let lens: Vec<usize> = subs.iter().map(|s| s.text.chars().count()).collect();
        assert_eq!(lens, [50, 50, 20]);
        assert_eq!(subs[2].time_end, 1200.0);
    }
}
