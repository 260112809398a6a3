//! The detectors: hand-written scanners over the text's bytes, each linear in
//! the length of the text. Every pattern is ASCII, so a match starts and ends
//! on ASCII bytes and its offsets are always `char` boundaries.
//!
//! Each detector proposes candidates; [`detect`] keeps the longest where they
//! overlap (on equal length, the more specific: a known key format, then
//! e-mail, IBAN, card, SSN, IP, phone, and last a token that only looks random).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use super::{Category, Finding};

mod secrets;
use secrets::secrets;

#[derive(Debug, Clone, Copy)]
struct Cand {
    start: usize,
    end: usize,
    category: Category,
    /// Lower is more specific; breaks ties between candidates of equal length.
    rank: u8,
}

/// All findings in `text`, sorted by offset and not overlapping.
pub fn detect(text: &str) -> Vec<Finding> {
    let b = text.as_bytes();
    let mut c = Vec::new();
    secrets(b, &mut c);
    emails(text, &mut c);
    ibans(b, &mut c);
    cards(b, &mut c);
    ssns(b, &mut c);
    ipv4(b, &mut c);
    ipv6(text, &mut c);
    phones(b, &mut c);
    resolve(c)
}

fn resolve(mut c: Vec<Cand>) -> Vec<Finding> {
    c.sort_by(|x, y| {
        (y.end - y.start)
            .cmp(&(x.end - x.start))
            .then(x.rank.cmp(&y.rank))
            .then(x.start.cmp(&y.start))
    });
    // Accepted spans, start → end. They never overlap, so the one with the
    // greatest start before a candidate's end is the only one that can overlap it.
    let mut taken: BTreeMap<usize, (usize, Category)> = BTreeMap::new();
    for k in c {
        let free = taken
            .range(..k.end)
            .next_back()
            .is_none_or(|(_, &(end, _))| end <= k.start);
        if free && k.start < k.end {
            taken.insert(k.start, (k.end, k.category));
        }
    }
    taken
        .into_iter()
        .map(|(start, (end, category))| Finding {
            category,
            start,
            end,
        })
        .collect()
}

// ---- byte helpers ---------------------------------------------------------

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn digit(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

/// Whether a number may start at `i`: not inside a word, and not the tail of
/// a longer number joined by one of `joiners` (`3.14…`, `1-800-…`).
fn num_start(b: &[u8], i: usize, joiners: &[u8]) -> bool {
    match i.checked_sub(1).map(|j| b[j]) {
        None => true,
        Some(p) if is_word(p) => false,
        Some(p) if joiners.contains(&p) => !(i >= 2 && b[i - 2].is_ascii_digit()),
        Some(_) => true,
    }
}

/// Whether a number may end at `e` (exclusive): the mirror of [`num_start`].
fn num_end(b: &[u8], e: usize, joiners: &[u8]) -> bool {
    match b.get(e) {
        None => true,
        Some(&n) if is_word(n) => false,
        Some(n) if joiners.contains(n) => !digit(b, e + 1),
        Some(_) => true,
    }
}

fn digits_from(b: &[u8], mut i: usize) -> usize {
    while digit(b, i) {
        i += 1;
    }
    i
}

// ---- payment cards --------------------------------------------------------

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// 13–19 digits, ungrouped or in groups of 3–6 split by one kind of
/// separator (space or hyphen), not starting with 0, Luhn-valid. A longer
/// run of groups is searched for such a card, group-aligned.
fn cards(b: &[u8], out: &mut Vec<Cand>) {
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        if !num_start(b, i, b".,") {
            i = digits_from(b, i);
            continue;
        }
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut sep = None;
        let mut j = i;
        loop {
            let s = j;
            j = digits_from(b, j);
            groups.push((s, j));
            match b.get(j) {
                Some(&c @ (b' ' | b'-')) if digit(b, j + 1) && sep.is_none_or(|x| x == c) => {
                    sep = Some(c);
                    j += 1;
                }
                _ => break,
            }
        }
        let mut g = 0;
        while g < groups.len() {
            let mut n = 0;
            let mut last = None;
            for (h, &(s, e)) in groups.iter().enumerate().skip(g) {
                n += e - s;
                if n > 19 {
                    break;
                }
                if card_ok(b, &groups[g..=h]) && num_end(b, e, b".,") {
                    last = Some(h);
                }
            }
            match last {
                Some(h) => {
                    out.push(Cand {
                        start: groups[g].0,
                        end: groups[h].1,
                        category: Category::Card,
                        rank: 3,
                    });
                    g = h + 1;
                }
                None => g += 1,
            }
        }
        i = j;
    }
}

fn card_ok(b: &[u8], groups: &[(usize, usize)]) -> bool {
    let mut d = [0u8; 19];
    let mut n = 0;
    for &(s, e) in groups {
        if groups.len() > 1 && !(3..=6).contains(&(e - s)) {
            return false;
        }
        for &c in &b[s..e] {
            if n == d.len() {
                return false;
            }
            d[n] = c;
            n += 1;
        }
    }
    (13..=19).contains(&n) && d[0] != b'0' && luhn(&d[..n])
}

// ---- IBAN -----------------------------------------------------------------

/// The mod-97 check of ISO 13616 over the IBAN's characters (spaces skipped):
/// the first four moved to the end, letters as 10–35.
fn iban_valid(chars: &[u8]) -> bool {
    let mut rem = 0u32;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            b'a'..=b'z' => u32::from(c - b'a') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Two letters, two check digits, then alphanumerics up to 34 characters in
/// all (at least 15), compact or in groups of four split by single spaces; the
/// mod-97 check must hold.
fn ibans(b: &[u8], out: &mut Vec<Cand>) {
    let mut i = 0;
    while i + 4 <= b.len() {
        let head = b[i].is_ascii_alphabetic()
            && b[i + 1].is_ascii_alphabetic()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && num_start(b, i, b"");
        if !head {
            i += 1;
            continue;
        }
        let mut chars: Vec<u8> = b[i..i + 4].to_vec();
        if b.get(i + 4).is_some_and(u8::is_ascii_alphanumeric) {
            let mut e = i + 4;
            while b.get(e).is_some_and(u8::is_ascii_alphanumeric) {
                e += 1;
            }
            chars.extend_from_slice(&b[i + 4..e]);
            if (15..=34).contains(&chars.len()) && num_end(b, e, b"") && iban_valid(&chars) {
                out.push(Cand {
                    start: i,
                    end: e,
                    category: Category::Iban,
                    rank: 2,
                });
            }
            i = e;
            continue;
        }
        // Grouped: " XXXX" repeated, the last group may be shorter.
        let mut ends = Vec::new();
        let mut e = i + 4;
        while b.get(e) == Some(&b' ') && chars.len() < 34 {
            let s = e + 1;
            let mut k = s;
            while k < s + 4 && b.get(k).is_some_and(u8::is_ascii_alphanumeric) {
                k += 1;
            }
            if k == s {
                break;
            }
            chars.extend_from_slice(&b[s..k]);
            e = k;
            ends.push((e, chars.len()));
            if k - s < 4 {
                break;
            }
        }
        let found = ends.iter().rev().find(|&&(e, n)| {
            (15..=34).contains(&n) && num_end(b, e, b"") && iban_valid(&chars[..n])
        });
        if let Some(&(e, _)) = found {
            out.push(Cand {
                start: i,
                end: e,
                category: Category::Iban,
                rank: 2,
            });
            i = e;
        } else {
            i += 4;
        }
    }
}

// ---- US social security numbers --------------------------------------------

/// `ddd-dd-dddd`, without the numbers never issued: area 000, 666 or 9xx,
/// group 00, serial 0000.
fn ssns(b: &[u8], out: &mut Vec<Cand>) {
    let shape = b"ddd-dd-dddd";
    let mut i = 0;
    while i + shape.len() <= b.len() {
        let w = &b[i..i + shape.len()];
        let fits = w.iter().zip(shape).all(|(&c, &s)| match s {
            b'd' => c.is_ascii_digit(),
            _ => c == s,
        });
        if fits
            && num_start(b, i, b".,-")
            && num_end(b, i + shape.len(), b".,-")
            && &w[..3] != b"000"
            && &w[..3] != b"666"
            && w[0] != b'9'
            && &w[4..6] != b"00"
            && &w[7..] != b"0000"
        {
            out.push(Cand {
                start: i,
                end: i + shape.len(),
                category: Category::Ssn,
                rank: 4,
            });
            i += shape.len();
        } else {
            i += 1;
        }
    }
}

// ---- IP addresses -----------------------------------------------------------

/// Four dotted decimal parts, each at most three digits and 255; a dotted
/// run of any other length (versions like 1.2.3.4.5) is not an address.
fn ipv4(b: &[u8], out: &mut Vec<Cand>) {
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start_ok = num_start(b, i, b".,");
        let mut parts = 0;
        let mut valid = true;
        let mut j = i;
        loop {
            let s = j;
            j = digits_from(b, j);
            parts += 1;
            let v = std::str::from_utf8(&b[s..j])
                .ok()
                .and_then(|t| t.parse::<u32>().ok());
            if j - s > 3 || v.is_none_or(|v| v > 255) {
                valid = false;
            }
            if b.get(j) == Some(&b'.') && digit(b, j + 1) {
                j += 1;
            } else {
                break;
            }
        }
        if start_ok && valid && parts == 4 && num_end(b, j, b".,") {
            out.push(Cand {
                start: i,
                end: j,
                category: Category::IpAddress,
                rank: 5,
            });
        }
        i = j;
    }
}

/// A run of hex digits, colons and dots that std parses as an IPv6 address
/// (full or `::`-compressed, an IPv4 tail allowed), with at least two colons
/// and one decimal digit (so `12:30`, `a::b` and `dead::beef` are not).
fn ipv6(text: &str, out: &mut Vec<Cand>) {
    let b = text.as_bytes();
    let ch = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut i = 0;
    while i < b.len() {
        if !(b[i].is_ascii_hexdigit() || b[i] == b':') {
            i += 1;
            continue;
        }
        let start_ok = i == 0 || !(is_word(b[i - 1]) || b[i - 1] == b':' || b[i - 1] == b'.');
        let mut j = i;
        while j < b.len() && ch(b[j]) {
            j += 1;
        }
        if start_ok && j - i <= 47 && !b.get(j).is_some_and(|&c| is_word(c)) {
            let mut e = j;
            while e > i && b[e - 1] == b'.' {
                e -= 1;
            }
            if e >= i + 2 && b[e - 1] == b':' && b[e - 2] != b':' {
                e -= 1;
            }
            let cand = &text[i..e];
            if cand.bytes().filter(|&c| c == b':').count() >= 2
                && cand.bytes().any(|c| c.is_ascii_digit())
                && cand.parse::<Ipv6Addr>().is_ok()
            {
                out.push(Cand {
                    start: i,
                    end: e,
                    category: Category::IpAddress,
                    rank: 5,
                });
            }
        }
        i = j.max(i + 1);
    }
}

// ---- phone numbers ----------------------------------------------------------

/// International numbers (`+` and 8–15 digits, separated by spaces, hyphens,
/// dots or parentheses) and North American ones: `(415) 555-0132`,
/// `415-555-0132`, `415.555.0132`, `415 555 0132`, optionally after `1-`,
/// with the area code and exchange starting with 2–9 as NANP numbers do.
fn phones(b: &[u8], out: &mut Vec<Cand>) {
    for i in 0..b.len() {
        let c = b[i];
        if c == b'+' {
            let start_ok = i == 0 || !(is_word(b[i - 1]) || b[i - 1] == b'+');
            if let Some(e) = start_ok.then(|| intl_phone(b, i)).flatten() {
                out.push(phone(i, e));
            }
        } else if (c == b'(' || c.is_ascii_digit())
            && num_start(b, i, b".,-")
            && !(i > 0 && b[i - 1] == b'+')
        {
            if let Some(e) = nanp_phone(b, i) {
                out.push(phone(i, e));
            } else if c == b'1' && matches!(b.get(i + 1), Some(b'-' | b'.' | b' ')) {
                if let Some(e) = nanp_phone(b, i + 2) {
                    out.push(phone(i, e));
                }
            }
        }
    }
}

fn phone(start: usize, end: usize) -> Cand {
    Cand {
        start,
        end,
        category: Category::Phone,
        rank: 6,
    }
}

fn intl_phone(b: &[u8], plus: usize) -> Option<usize> {
    let mut j = plus + 1;
    if !digit(b, j) {
        return None;
    }
    let (mut digits, mut seps, mut end) = (0, 0, j);
    while let Some(&c) = b.get(j) {
        if c.is_ascii_digit() {
            digits += 1;
            if digits > 15 {
                return None;
            }
            seps = 0;
            j += 1;
            end = j;
        } else if matches!(c, b' ' | b'-' | b'.' | b'(' | b')') && seps < 2 {
            seps += 1;
            j += 1;
        } else {
            break;
        }
    }
    (digits >= 8 && num_end(b, end, b".,")).then_some(end)
}

fn nanp_phone(b: &[u8], i: usize) -> Option<usize> {
    let three = |k: usize| (0..3).all(|d| digit(b, k + d));
    let four = |k: usize| (0..4).all(|d| digit(b, k + d));
    let (area, exchange, line);
    if b.get(i) == Some(&b'(') {
        if !three(i + 1) || b.get(i + 4) != Some(&b')') {
            return None;
        }
        area = i + 1;
        let mut k = i + 5;
        if b.get(k) == Some(&b' ') {
            k += 1;
        }
        if !three(k) {
            return None;
        }
        exchange = k;
        k += 3;
        if matches!(b.get(k), Some(b'-' | b'.' | b' ')) {
            k += 1;
        }
        line = k;
    } else {
        let sep = *b.get(i + 3)?;
        if !three(i) || !matches!(sep, b'-' | b'.' | b' ') || !three(i + 4) {
            return None;
        }
        if b.get(i + 7) != Some(&sep) {
            return None;
        }
        area = i;
        exchange = i + 4;
        line = i + 8;
    }
    let nanp = |k: usize| (b'2'..=b'9').contains(&b[k]);
    (four(line) && nanp(area) && nanp(exchange) && num_end(b, line + 4, b".,-")).then_some(line + 4)
}

// ---- e-mail addresses -------------------------------------------------------

fn local_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '.' | '_' | '%' | '+' | '-' | '\'')
        // Latin, Greek and Cyrillic letters (jörg@…), not CJK, where a
        // letter run carries the words next to the address.
        || (c.is_alphabetic() && (c as u32) < 0x0530)
}

/// `local@domain.tld`: a local part of letters, digits and `._%+-'`, not
/// starting with a dot or quote nor ending with a dot; a domain of at least
/// two labels of letters, digits and hyphens, the last alphabetic and at
/// least two letters long.
fn emails(text: &str, out: &mut Vec<Cand>) {
    let b = text.as_bytes();
    for (at, _) in text.match_indices('@') {
        let mut s = at;
        for (k, c) in text[..at].char_indices().rev() {
            if !local_char(c) {
                break;
            }
            s = k;
        }
        while s < at && matches!(b[s], b'.' | b'\'') {
            s += 1;
        }
        if s == at || b[at - 1] == b'.' {
            continue;
        }
        let mut e = at + 1;
        while b
            .get(e)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
        {
            e += 1;
        }
        while e > at + 1 && matches!(b[e - 1], b'.' | b'-') {
            e -= 1;
        }
        if domain_ok(&text[at + 1..e]) {
            out.push(Cand {
                start: s,
                end: e,
                category: Category::Email,
                rank: 1,
            });
        }
    }
}

fn domain_ok(d: &str) -> bool {
    let labels: Vec<&str> = d.split('.').collect();
    let Some(tld) = labels.last() else {
        return false;
    };
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'))
        && tld.len() >= 2
        && tld.bytes().all(|c| c.is_ascii_alphabetic())
}
