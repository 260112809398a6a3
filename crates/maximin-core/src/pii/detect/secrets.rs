//! Secrets: the credential after `Bearer`/`Basic`, known key formats, JWTs,
//! and long tokens that look random.

use super::{is_word, Cand};
use crate::pii::Category;

#[derive(Clone, Copy)]
enum Body {
    /// `[A-Za-z0-9]`
    Alnum,
    /// `[A-Za-z0-9_]`
    Word,
    /// `[A-Za-z0-9_-]`
    WordDash,
    /// `[A-Za-z0-9-]`
    AlnumDash,
    /// `[A-Z0-9]`
    UpperDigit,
}

impl Body {
    fn has(self, c: u8) -> bool {
        match self {
            Body::Alnum => c.is_ascii_alphanumeric(),
            Body::Word => is_word(c),
            Body::WordDash => is_word(c) || c == b'-',
            Body::AlnumDash => c.is_ascii_alphanumeric() || c == b'-',
            Body::UpperDigit => c.is_ascii_uppercase() || c.is_ascii_digit(),
        }
    }
}

/// Known key formats: prefix, body, shortest and longest body.
const PREFIXES: &[(&str, Body, usize, usize)] = &[
    ("sk-", Body::WordDash, 20, usize::MAX), // OpenAI, Anthropic (sk-ant-…), DeepSeek…
    ("sk_live_", Body::Alnum, 16, usize::MAX), // Stripe
    ("sk_test_", Body::Alnum, 16, usize::MAX),
    ("rk_live_", Body::Alnum, 16, usize::MAX),
    ("rk_test_", Body::Alnum, 16, usize::MAX),
    ("mmx_live_", Body::Alnum, 20, usize::MAX), // maximin's own keys
    ("mmx_test_", Body::Alnum, 20, usize::MAX),
    ("ghp_", Body::Alnum, 30, usize::MAX), // GitHub
    ("gho_", Body::Alnum, 30, usize::MAX),
    ("ghu_", Body::Alnum, 30, usize::MAX),
    ("ghs_", Body::Alnum, 30, usize::MAX),
    ("ghr_", Body::Alnum, 30, usize::MAX),
    ("github_pat_", Body::Word, 30, usize::MAX),
    ("glpat-", Body::WordDash, 20, usize::MAX), // GitLab
    ("xoxb-", Body::AlnumDash, 10, usize::MAX), // Slack
    ("xoxp-", Body::AlnumDash, 10, usize::MAX),
    ("xoxa-", Body::AlnumDash, 10, usize::MAX),
    ("xoxr-", Body::AlnumDash, 10, usize::MAX),
    ("xoxs-", Body::AlnumDash, 10, usize::MAX),
    ("AKIA", Body::UpperDigit, 16, 16), // AWS access key ids
    ("ASIA", Body::UpperDigit, 16, 16),
    ("AIza", Body::WordDash, 30, 40),     // Google API keys
    ("hf_", Body::Alnum, 30, usize::MAX), // Hugging Face
    ("npm_", Body::Alnum, 30, usize::MAX),
];

pub(super) fn secrets(b: &[u8], out: &mut Vec<Cand>) {
    known_secrets(b, out);
    generic_secrets(b, out);
}

fn secret(start: usize, end: usize, rank: u8) -> Cand {
    Cand {
        start,
        end,
        category: Category::Secret,
        rank,
    }
}

fn run(b: &[u8], mut i: usize, body: Body) -> usize {
    while b.get(i).is_some_and(|&c| body.has(c)) {
        i += 1;
    }
    i
}

/// Known prefixes, JWTs (`eyJ…` with two dots) and the credentials after
/// `Bearer` or `Basic`.
fn known_secrets(b: &[u8], out: &mut Vec<Cand>) {
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !(is_word(b[i - 1]) || b[i - 1] == b'-');
        if !boundary || !b[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let rest = &b[i..];
        let mut end = None;
        for &(prefix, body, min, max) in PREFIXES {
            if rest.starts_with(prefix.as_bytes()) {
                let s = i + prefix.len();
                let e = run(b, s, body);
                let tail = &b[s..e];
                let shaped = tail
                    .iter()
                    .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
                if (min..=max).contains(&(e - s))
                    && shaped
                    && !b.get(e).is_some_and(|&c| is_word(c))
                {
                    end = Some(e);
                    break;
                }
            }
        }
        if end.is_none() && rest.starts_with(b"eyJ") {
            end = jwt(b, i);
        }
        if let Some(e) = end {
            out.push(secret(i, e, 0));
            i = e;
            continue;
        }
        for scheme in [&b"bearer"[..], b"basic"] {
            if rest.len() > scheme.len() && rest[..scheme.len()].eq_ignore_ascii_case(scheme) {
                if let Some((s, e)) = credential(b, i + scheme.len()) {
                    out.push(secret(s, e, 0));
                }
            }
        }
        i += 1;
    }
}

fn jwt(b: &[u8], i: usize) -> Option<usize> {
    let e1 = run(b, i, Body::WordDash);
    if e1 - i < 10 || b.get(e1) != Some(&b'.') {
        return None;
    }
    let e2 = run(b, e1 + 1, Body::WordDash);
    if e2 - e1 - 1 < 2 || b.get(e2) != Some(&b'.') {
        return None;
    }
    Some(run(b, e2 + 1, Body::WordDash))
}

/// The token after an authorization scheme word at `i`: spaces, then
/// RFC 6750's token68 characters. Words of prose (`Bearer tokens`) are not
/// tokens: one needs a digit, or 24 characters mixing cases.
fn credential(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut s = i;
    while matches!(b.get(s), Some(b' ' | b'\t')) {
        s += 1;
    }
    if s == i {
        return None;
    }
    let tok =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
    let mut e = s;
    while b.get(e).is_some_and(|&c| tok(c)) {
        e += 1;
    }
    while e > s && b[e - 1] == b'.' {
        e -= 1;
    }
    while b.get(e) == Some(&b'=') {
        e += 1;
    }
    let t = &b[s..e];
    let digits = t.iter().any(u8::is_ascii_digit);
    let mixed = t.iter().any(u8::is_ascii_uppercase) && t.iter().any(u8::is_ascii_lowercase);
    (t.len() >= 8 && (digits || (t.len() >= 24 && mixed))).then_some((s, e))
}

/// Long tokens that look random: runs of `[A-Za-z0-9_+/-]` (and `=`
/// padding), checked whole and, when `/` or `+` split them, piece by piece.
fn generic_secrets(b: &[u8], out: &mut Vec<Cand>) {
    let ch = |c: u8| is_word(c) || matches!(c, b'-' | b'+' | b'/');
    let mut i = 0;
    while i < b.len() {
        if !ch(b[i]) {
            i += 1;
            continue;
        }
        let s0 = i;
        while i < b.len() && ch(b[i]) {
            i += 1;
        }
        let (mut s, mut e) = (s0, i);
        while s < e && matches!(b[s], b'/' | b'+' | b'-' | b'_') {
            s += 1;
        }
        while e > s && matches!(b[e - 1], b'/' | b'+' | b'-' | b'_') {
            e -= 1;
        }
        if e - s < 32 {
            continue;
        }
        if looks_random(&b[s..e]) {
            let mut end = e;
            if end == i {
                while b.get(end) == Some(&b'=') {
                    end += 1;
                }
            }
            out.push(secret(s, end, 7));
        } else if b[s..e].iter().any(|&c| c == b'/' || c == b'+') {
            let mut k = s;
            for piece in b[s..e].split(|&c| c == b'/' || c == b'+') {
                if piece.len() >= 32 && looks_random(piece) {
                    out.push(secret(k, k + piece.len(), 7));
                }
                k += piece.len() + 1;
            }
        }
    }
}

/// At least 32 characters with letters and digits, and either hex (with
/// `-`/`_`, so UUIDs count) of 32 hex digits or more, or a letter/digit/case
/// change on at least 40 % of neighbouring alphanumerics (random base62
/// changes on about 60 %, identifiers and words far less).
fn looks_random(t: &[u8]) -> bool {
    let letters = t.iter().filter(|c| c.is_ascii_alphabetic()).count();
    let digits = t.iter().filter(|c| c.is_ascii_digit()).count();
    if t.len() < 32 || letters == 0 || digits == 0 {
        return false;
    }
    let hex = t
        .iter()
        .all(|&c| c.is_ascii_hexdigit() || c == b'-' || c == b'_');
    if hex && letters + digits >= 32 {
        return true;
    }
    let slashed = t.iter().any(|&c| c == b'/' || c == b'+');
    let upper = t.iter().any(u8::is_ascii_uppercase);
    let lower = t.iter().any(u8::is_ascii_lowercase);
    if slashed && !(upper && lower) {
        return false;
    }
    let class = |c: u8| match c {
        b'a'..=b'z' => 0,
        b'A'..=b'Z' => 1,
        _ => 2,
    };
    let alnum: Vec<u8> = t
        .iter()
        .copied()
        .filter(u8::is_ascii_alphanumeric)
        .map(class)
        .collect();
    let changes = alnum.windows(2).filter(|w| w[0] != w[1]).count();
    changes * 10 >= (alnum.len() - 1) * 4
}
