//! PII redaction before content leaves for an upstream (issue 14, point 5).
//!
//! An account or key chooses a [`PiiMode`]: `off`, `redact` or `block`.
//!
//! # Categories
//!
//! [`detect`] finds, with hand-written linear scanners (`detect.rs`,
//! `detect/secrets.rs`):
//!
//! - **e-mail** addresses (`local@domain.tld`; `a@b` and `@handle` are not);
//! - **phone** numbers: `+` with 8–15 digits (spaces, hyphens, dots,
//!   parentheses between), and North American numbers (`(415) 555-0132`,
//!   `415-555-0132`, `415.555.0132`, `415 555 0132`, `1-800-…`) whose area
//!   code and exchange start with 2–9. Other national formats without `+`
//!   are too close to ordinary numbers and are not detected;
//! - payment **card** numbers: 13–19 digits, ungrouped or grouped by spaces
//!   or hyphens, not starting with 0, Luhn-valid;
//! - **IBAN**s: two letters, two check digits, up to 30 alphanumerics,
//!   compact or in groups of four, the mod-97 check holding;
//! - US **SSN**s: `ddd-dd-dddd` outside the ranges never issued (area 000,
//!   666, 9xx; group 00; serial 0000);
//! - **IP addresses**: dotted IPv4 with octets up to 255 (not a five-part
//!   version string), IPv6 full or `::`-compressed (not `12:30`);
//! - **secrets**: the token after `Bearer`/`Basic`, known key formats
//!   (`sk-…`, `sk-ant-…`, `mmx_live_…`, `ghp_…`, `github_pat_…`, `xoxb-…`,
//!   `AKIA…`, `AIza…`, Stripe, GitLab, Hugging Face, npm), JWTs (`eyJ…` with
//!   two dots), and any token of 32 or more `[A-Za-z0-9_+/-]` that looks
//!   random (letters and digits that alternate often) or is hex, so
//!   **UUIDs and hex digests count as secrets** (some services use them as
//!   keys; the placeholder is restored in the answer anyway).
//!
//! Where matches overlap, the longest wins, and on equal length the more
//! specific category.
//!
//! # Placeholders
//!
//! In `redact` mode each value is replaced by a typed placeholder numbered
//! per category, `[EMAIL_1]`, `[CARD_1]`, `[EMAIL_2]`; one [`Redactor`]
//! serves one request, so the same value always gets the same placeholder
//! across its messages. Text that already looks like a placeholder in the
//! request is never issued as one (the numbers skip it), and restoring maps
//! only the placeholders the redactor issued (the tag case-insensitively, so
//! `[email_1]` echoed by a model is restored too); any other bracketed text
//! is left alone. Streamed answers go through a [`StreamRestorer`], which
//! holds back at most one placeholder's length of text that could be a
//! placeholder split across deltas. No detected value contains `"`, `\` or
//! control characters, so restoring inside JSON text (tool call arguments)
//! keeps it valid JSON.
//!
//! In `block` mode a request with any finding is refused with
//! `invalid_request`, naming the field (`messages[2].content`) and the
//! category (`details.category`), never the value.
//!
//! # Fails closed
//!
//! Every function here is total: it never panics, whatever the input, and
//! never returns content that was not scanned. Callers **must refuse the
//! request when `protect_*` returns `Err`** (or if it could not run at
//! all), and never send the original content upstream instead.

mod detect;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use maximin_types::inference::{ChatCompletionRequest, ChatMessage};

pub use detect::detect;

pub use maximin_types::PiiMode;

/// What a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Email,
    Phone,
    Card,
    Iban,
    Ssn,
    IpAddress,
    Secret,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Email,
        Category::Phone,
        Category::Card,
        Category::Iban,
        Category::Ssn,
        Category::IpAddress,
        Category::Secret,
    ];

    /// The placeholder's tag: `EMAIL` in `[EMAIL_1]`.
    pub fn tag(self) -> &'static str {
        match self {
            Category::Email => "EMAIL",
            Category::Phone => "PHONE",
            Category::Card => "CARD",
            Category::Iban => "IBAN",
            Category::Ssn => "SSN",
            Category::IpAddress => "IP",
            Category::Secret => "SECRET",
        }
    }

    /// The wire name (`details.category` of a refusal).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Email => "email",
            Category::Phone => "phone",
            Category::Card => "card",
            Category::Iban => "iban",
            Category::Ssn => "ssn",
            Category::IpAddress => "ip_address",
            Category::Secret => "secret",
        }
    }

    /// In words, for messages: "an e-mail address".
    pub fn describe(self) -> &'static str {
        match self {
            Category::Email => "an e-mail address",
            Category::Phone => "a phone number",
            Category::Card => "a payment card number",
            Category::Iban => "an IBAN",
            Category::Ssn => "a US social security number",
            Category::IpAddress => "an IP address",
            Category::Secret => "an API key or token",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One match: `text[start..end]` (byte offsets, on `char` boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub category: Category,
    pub start: usize,
    pub end: usize,
}

/// One request's mapping: the same original value gets the same placeholder.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Original value → placeholder.
    issued: HashMap<String, String>,
    /// Placeholder (tag upper-cased) → original value.
    originals: HashMap<String, String>,
    /// Placeholder-shaped text found in the input, never issued.
    reserved: HashSet<String>,
    counters: [u64; 7],
    /// Length of the longest placeholder issued.
    longest: usize,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces every finding in `text` by its placeholder.
    pub fn redact(&mut self, text: &str) -> String {
        self.reserve(text);
        self.redact_reserved(text)
    }

    fn redact_reserved(&mut self, text: &str) -> String {
        let findings = detect(text);
        if findings.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for f in findings {
            out.push_str(&text[last..f.start]);
            out.push_str(&self.placeholder(f.category, &text[f.start..f.end]));
            last = f.end;
        }
        out.push_str(&text[last..]);
        out
    }

    /// Nothing was replaced.
    pub fn is_empty(&self) -> bool {
        self.originals.is_empty()
    }

    /// Puts back the originals of the placeholders this redactor issued.
    pub fn restore(&self, text: &str) -> String {
        restore_with(&self.originals, text)
    }

    /// A restorer for the deltas of a streamed answer.
    pub fn restorer(&self) -> StreamRestorer {
        StreamRestorer {
            originals: self.originals.clone(),
            longest: self.longest,
            pending: String::new(),
        }
    }

    /// The placeholder for `value`, issued on first sight.
    fn placeholder(&mut self, category: Category, value: &str) -> String {
        if let Some(p) = self.issued.get(value) {
            return p.clone();
        }
        let p = loop {
            let n = &mut self.counters[category.index()];
            *n += 1;
            let p = format!("[{}_{}]", category.tag(), n);
            if !self.reserved.contains(&p) {
                break p;
            }
        };
        self.longest = self.longest.max(p.len());
        self.issued.insert(value.to_owned(), p.clone());
        self.originals.insert(p.clone(), value.to_owned());
        p
    }

    /// Notes the placeholder-shaped text in `text`, so that none is issued.
    fn reserve(&mut self, text: &str) {
        let b = text.as_bytes();
        for (i, _) in text.match_indices('[') {
            if let Some((_, key)) = parse_placeholder(b, i) {
                self.reserved.insert(key);
            }
        }
    }

    /// [`Self::reserve`] for a JSON text: its raw text and its decoded
    /// strings (`\u005bEMAIL_1]` is `[EMAIL_1]` once decoded).
    fn reserve_json(&mut self, json: &str) {
        self.reserve(json);
        for p in json_pieces(json).into_iter().flatten() {
            if let Some(s) = &p.value {
                self.reserve(s);
            }
        }
    }

    /// Redacts the strings (and numbers) of a JSON text, keeping it valid JSON
    /// and leaving everything else byte for byte; text that is not JSON is
    /// redacted as plain text.
    fn redact_json(&mut self, json: &str) -> String {
        let Some(pieces) = json_pieces(json) else {
            return self.redact_reserved(json);
        };
        let mut out = String::with_capacity(json.len());
        let mut last = 0;
        for p in pieces {
            let replacement = match &p.value {
                Some(s) if !detect(s).is_empty() => json_quote(&self.redact_reserved(s)),
                Some(_) => continue,
                None => {
                    let Some(f) = detect(&json[p.start..p.end]).first().copied() else {
                        continue;
                    };
                    json_quote(&self.placeholder(f.category, &json[p.start..p.end]))
                }
            };
            out.push_str(&json[last..p.start]);
            out.push_str(&replacement);
            last = p.end;
        }
        out.push_str(&json[last..]);
        out
    }
}

/// Restores placeholders in a stream of text deltas, holding back a suffix
/// that could be the start of a placeholder split across chunks. Together,
/// the outputs of `push` and `finish` equal [`Redactor::restore`] of the
/// whole text, however it was cut.
#[derive(Debug, Clone)]
pub struct StreamRestorer {
    originals: HashMap<String, String>,
    longest: usize,
    pending: String,
}

impl StreamRestorer {
    /// The text that is safe to emit now, restored.
    pub fn push(&mut self, delta: &str) -> String {
        self.pending.push_str(delta);
        let cut = self.hold_from();
        let out = restore_with(&self.originals, &self.pending[..cut]);
        self.pending.drain(..cut);
        out
    }

    /// Whatever is held back, restored.
    pub fn finish(&mut self) -> String {
        let out = restore_with(&self.originals, &self.pending);
        self.pending.clear();
        out
    }

    /// Where the held-back suffix starts: at the last `[` when what follows
    /// it could still grow into a placeholder (a category's tag, `_`,
    /// digits) no longer than the longest issued. A placeholder holds no
    /// `[`, so no earlier one can be open.
    fn hold_from(&self) -> usize {
        let len = self.pending.len();
        if self.originals.is_empty() {
            return len;
        }
        match self.pending.rfind('[') {
            Some(i) if len - i < self.longest && could_open(&self.pending.as_bytes()[i..]) => i,
            _ => len,
        }
    }
}

/// Whether `s` (starting with `[`, no `]` yet) is a prefix of `[TAG_123]`
/// for one of the categories' tags (in any case).
fn could_open(s: &[u8]) -> bool {
    let mut k = 1;
    while s.get(k).is_some_and(u8::is_ascii_alphabetic) {
        k += 1;
    }
    let letters = &s[1..k];
    let tag_prefix = |full: bool| {
        Category::ALL.iter().any(|c| {
            let tag = c.tag().as_bytes();
            tag.len() >= letters.len()
                && tag[..letters.len()].eq_ignore_ascii_case(letters)
                && (!full || tag.len() == letters.len())
        })
    };
    if k == s.len() {
        return tag_prefix(false);
    }
    s[k] == b'_' && tag_prefix(true) && s[k + 1..].iter().all(u8::is_ascii_digit)
}

/// A placeholder-shaped `[TAG_N]` at `i`: its end and its key (tag upper-cased).
fn parse_placeholder(b: &[u8], i: usize) -> Option<(usize, String)> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let mut k = i + 1;
    while b.get(k).is_some_and(u8::is_ascii_alphabetic) && k - i <= 8 {
        k += 1;
    }
    if k == i + 1 || b.get(k) != Some(&b'_') {
        return None;
    }
    let d = k + 1;
    k = d;
    while b.get(k).is_some_and(u8::is_ascii_digit) && k - d < 10 {
        k += 1;
    }
    if k == d || b.get(k) != Some(&b']') {
        return None;
    }
    let key = String::from_utf8(b[i..=k].to_ascii_uppercase()).ok()?;
    Some((k + 1, key))
}

fn restore_with(originals: &HashMap<String, String>, text: &str) -> String {
    if originals.is_empty() {
        return text.to_owned();
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(off) = text[from..].find('[') {
        let i = from + off;
        from = i + 1;
        if let Some((end, key)) = parse_placeholder(b, i) {
            if let Some(orig) = originals.get(&key) {
                out.push_str(&text[last..i]);
                out.push_str(orig);
                last = end;
                from = end;
            }
        }
    }
    out.push_str(&text[last..]);
    out
}

/// A string or number token of a JSON text: its span and, for a string, its
/// decoded value.
struct JsonPiece {
    start: usize,
    end: usize,
    value: Option<String>,
}

/// The string and number tokens of `json`, or `None` when it is not JSON.
fn json_pieces(json: &str) -> Option<Vec<JsonPiece>> {
    serde_json::from_str::<serde::de::IgnoredAny>(json).ok()?;
    let b = json.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let mut e = i + 1;
                while e < b.len() && b[e] != b'"' {
                    e += if b[e] == b'\\' { 2 } else { 1 };
                }
                let end = (e + 1).min(b.len());
                let value = serde_json::from_str::<String>(json.get(i..end)?).ok()?;
                out.push(JsonPiece {
                    start: i,
                    end,
                    value: Some(value),
                });
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let mut e = i + 1;
                while b.get(e).is_some_and(|&c| {
                    c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')
                }) {
                    e += 1;
                }
                out.push(JsonPiece {
                    start: i,
                    end: e,
                    value: None,
                });
                i = e;
            }
            _ => i += 1,
        }
    }
    Some(out)
}

/// `s` as a JSON string literal.
fn json_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The first category found in a JSON text (strings decoded first), or in
/// the raw text when it is not JSON.
fn first_in_json(json: &str) -> Option<Category> {
    let Some(pieces) = json_pieces(json) else {
        return first_in(json);
    };
    pieces.iter().find_map(|p| match &p.value {
        Some(s) => first_in(s),
        None => first_in(&json[p.start..p.end]),
    })
}

fn first_in(text: &str) -> Option<Category> {
    detect(text).first().map(|f| f.category)
}

fn refuse(field: &str, category: Category) -> crate::Error {
    crate::Error::invalid(
        field,
        format!(
            "{field} contains {}; this account or key blocks personal data and secrets \
             from leaving for a model. Remove it and send the request again.",
            category.describe()
        ),
    )
    .with("category", category.as_str())
}

/// Protects a chat request in place according to `mode`: every message's
/// content (tool messages' included) and every tool call's arguments (the
/// strings and numbers of the JSON, which stays valid JSON; as plain text
/// when it is not JSON). Names, tool definitions and ids are not scanned.
///
/// - `Off`: `Ok(None)`, the request untouched.
/// - `Redact`: `Ok(Some(redactor))` when something was replaced, `Ok(None)`
///   when nothing was (there is nothing to restore).
/// - `Block`: `Ok(None)` when nothing was found, otherwise
///   `Err(invalid_request)` naming the first field in wire order
///   (`messages[2].content`, `messages[1].tool_calls[0].function.arguments`)
///   and the category; the request untouched.
///
/// On `Err` the caller must refuse the request.
pub fn protect_chat(
    req: &mut ChatCompletionRequest,
    mode: PiiMode,
) -> crate::Result<Option<Redactor>> {
    match mode {
        PiiMode::Off => Ok(None),
        PiiMode::Block => {
            for (i, m) in req.messages.iter().enumerate() {
                if let Some(cat) = m.content.as_deref().and_then(first_in) {
                    return Err(refuse(&format!("messages[{i}].content"), cat));
                }
                for (j, call) in m.tool_calls.iter().flatten().enumerate() {
                    if let Some(cat) = first_in_json(&call.function.arguments) {
                        let field = format!("messages[{i}].tool_calls[{j}].function.arguments");
                        return Err(refuse(&field, cat));
                    }
                }
            }
            Ok(None)
        }
        PiiMode::Redact => {
            let mut r = Redactor::new();
            for m in &req.messages {
                r.reserve(m.content.as_deref().unwrap_or(""));
                for call in m.tool_calls.iter().flatten() {
                    r.reserve_json(&call.function.arguments);
                }
            }
            for m in &mut req.messages {
                if let Some(c) = &mut m.content {
                    *c = r.redact_reserved(c);
                }
                for call in m.tool_calls.iter_mut().flatten() {
                    call.function.arguments = r.redact_json(&call.function.arguments);
                }
            }
            Ok((!r.is_empty()).then_some(r))
        }
    }
}

/// Protects a list of plain texts (embeddings inputs, speech text) the same
/// way; `field` is the wire name, and a refusal names `field[i]`
/// (`input[3]`; a wire value that was one string, not a list, is item 0, so
/// a caller that wants `input` there renames the field). The same `Ok`
/// values as [`protect_chat`].
pub fn protect_texts(
    texts: &mut [String],
    field: &str,
    mode: PiiMode,
) -> crate::Result<Option<Redactor>> {
    match mode {
        PiiMode::Off => Ok(None),
        PiiMode::Block => {
            for (i, t) in texts.iter().enumerate() {
                if let Some(cat) = first_in(t) {
                    return Err(refuse(&format!("{field}[{i}]"), cat));
                }
            }
            Ok(None)
        }
        PiiMode::Redact => {
            let mut r = Redactor::new();
            for t in texts.iter() {
                r.reserve(t);
            }
            for t in texts.iter_mut() {
                *t = r.redact_reserved(t);
            }
            Ok((!r.is_empty()).then_some(r))
        }
    }
}

/// [`protect_texts`] for one text that is the whole of wire field `field`
/// (a speech request's `text`): a refusal names `field` itself.
pub fn protect_text(
    text: &mut String,
    field: &str,
    mode: PiiMode,
) -> crate::Result<Option<Redactor>> {
    if mode == PiiMode::Block {
        return match first_in(text) {
            Some(cat) => Err(refuse(field, cat)),
            None => Ok(None),
        };
    }
    protect_texts(std::slice::from_mut(text), field, mode)
}

/// Restores placeholders in a finished assistant message: its content and
/// its tool calls' arguments.
pub fn restore_message(r: &Redactor, msg: &mut ChatMessage) {
    if let Some(c) = &mut msg.content {
        *c = r.restore(c);
    }
    for call in msg.tool_calls.iter_mut().flatten() {
        call.function.arguments = r.restore(&call.function.arguments);
    }
}
