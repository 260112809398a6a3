//! Local-disk blobs and the master key file.
//!
//! Blobs are files under `DATA_DIR/files/`, written to a temporary name,
//! synced and renamed into place, so a crash never leaves a partial blob
//! under a final name. They hold only sealed bytes (see `maximin_core::crypto`).
//! Blob files are created 0600 in directories made 0700.
//!
//! A temporary name is `.tmp-PID-N` (the writing process, a random number).
//! A crash leaves it behind; `sweep_orphans` removes those no
//! write will finish: this process's own that no sink holds any more (a
//! process before us had our PID: PID 1 in a container), and other
//! processes' once their process is gone (or a day has passed).
//!
//! The master keys are `DATA_DIR/master.key`: one `id:hex` line per key,
//! oldest first, the last the current one; created (mode 0600) on first
//! start. `maximin files rotate-key` appends a key and rewraps every data key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use maximin_core::crypto::MasterKeys;
use maximin_core::files::{BlobSink, BlobStore};
use maximin_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncWriteExt};

pub struct DiskBlobs {
    root: PathBuf,
}

/// Temporary files this process is writing (held by a live [`DiskSink`]).
static LIVE: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);

fn live() -> std::sync::MutexGuard<'static, HashSet<PathBuf>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long another process's temporary file must sit untouched before it
/// is judged by whether that process still runs: a process in another PID
/// namespace sharing the data dir is invisible here, but its writes keep
/// touching the file.
const DEAD_WRITER_GRACE: Duration = Duration::from_secs(10 * 60);
/// A temporary file untouched this long is an orphan whoever wrote it (its
/// PID may belong to an unrelated process by now).
const STALE_TEMP: Duration = Duration::from_secs(24 * 3600);

/// Whether process `pid` runs, where the system says (`/proc`); `None`
/// where it cannot tell.
fn process_runs(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(proc.join(pid.to_string()).exists())
}

/// Whether a temporary file is an orphan: see the module documentation.
fn is_orphan(path: &Path, pid: u32, untouched: Duration) -> bool {
    if pid == std::process::id() {
        return !live().contains(path);
    }
    untouched >= STALE_TEMP || (untouched >= DEAD_WRITER_GRACE && process_runs(pid) == Some(false))
}

/// The PID in a temporary file's name (`.tmp-PID-N`).
fn temp_pid(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix(".tmp-")?.split_once('-')?;
    n.parse::<i64>().ok()?;
    pid.parse().ok()
}

impl DiskBlobs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DiskBlobs { root: root.into() }
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        if name
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(Error::internal(format!("bad blob name {name:?}")));
        }
        Ok(self.root.join(name))
    }
}

impl DiskBlobs {
    /// Every committed blob's name (`DIR/FILE`), to copy them elsewhere.
    pub fn names(&self) -> Result<Vec<String>> {
        let dirs = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading", &self.root, e)),
        };
        let mut names = Vec::new();
        for dir in dirs.flatten() {
            if !dir.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let entries =
                std::fs::read_dir(dir.path()).map_err(|e| io("reading", &dir.path(), e))?;
            for entry in entries.flatten() {
                let (Some(d), Some(f)) = (
                    dir.file_name().to_str().map(str::to_owned),
                    entry.file_name().to_str().map(str::to_owned),
                ) else {
                    continue;
                };
                if !f.starts_with(".tmp-") && entry.file_type().is_ok_and(|t| t.is_file()) {
                    names.push(format!("{d}/{f}"));
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

fn sweep_temp_files(root: &Path) -> Result<u64> {
    let dirs = match std::fs::read_dir(root) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("reading", root, e)),
    };
    let now = SystemTime::now();
    let mut n = 0;
    for dir in dirs.flatten() {
        if !dir.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(temp_pid) else {
                continue;
            };
            let path = entry.path();
            let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            let untouched = now.duration_since(modified).unwrap_or_default();
            if !is_orphan(&path, pid, untouched) {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("deleting", &path, e)),
            }
        }
    }
    Ok(n)
}

/// Creates `dir` and its missing parents, 0700 (owner only).
async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = tokio::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(0o700);
    b.create(dir).await
}

/// Creates `dir` (and its parents) if missing and makes it 0700, whatever
/// the umask and whatever mode it had: the data dir holds the database,
/// the master key and the sealed files.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| io("creating", dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("restricting", dir, e))?;
    }
    Ok(())
}

/// Creates a new file 0600 (owner only) for writing, truncating any old one.
pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("{what} {}: {e}", path.display()))
}

#[async_trait]
impl BlobStore for DiskBlobs {
    async fn create(&self, name: &str) -> Result<Box<dyn BlobSink>> {
        let path = self.path(name)?;
        let dir = path
            .parent()
            .ok_or_else(|| Error::internal("blob without directory"))?
            .to_path_buf();
        create_private_dir(&dir)
            .await
            .map_err(|e| io("creating", &dir, e))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            maximin_core::files::new_id()
        ));
        // Live before it exists, so that a sweep never takes it for an orphan.
        live().insert(tmp.clone());
        let opened = {
            let tmp = tmp.clone();
            tokio::task::spawn_blocking(move || private_file(&tmp)).await
        };
        let file = match opened {
            Ok(Ok(f)) => tokio::fs::File::from_std(f),
            Ok(Err(e)) => {
                live().remove(&tmp);
                return Err(io("creating", &tmp, e));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                live().remove(&tmp);
                return Err(Error::internal(format!("creating a blob: {e}")));
            }
        };
        Ok(Box::new(DiskSink {
            file: Some(tokio::io::BufWriter::with_capacity(256 * 1024, file)),
            tmp,
            path,
        }))
    }

    async fn open(&self, name: &str) -> Result<Option<Box<dyn AsyncRead + Send + Unpin>>> {
        let path = self.path(name)?;
        match tokio::fs::File::open(&path).await {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("opening", &path, e)),
        }
    }

    /// Removes the temporary files that no write will finish (crashes leave
    /// them); returns how many.
    async fn sweep_orphans(&self) -> Result<u64> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || sweep_temp_files(&root))
            .await
            .map_err(|e| Error::internal(format!("sweeping temporary files: {e}")))?
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("deleting", &path, e)),
        }
    }
}

struct DiskSink {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    tmp: PathBuf,
    path: PathBuf,
}

#[async_trait]
impl BlobSink for DiskSink {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| Error::internal("blob already committed"))?;
        f.write_all(data)
            .await
            .map_err(|e| io("writing", &self.tmp, e))
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        let mut f = self
            .file
            .take()
            .ok_or_else(|| Error::internal("blob already committed"))?;
        f.flush().await.map_err(|e| io("writing", &self.tmp, e))?;
        f.get_mut()
            .sync_all()
            .await
            .map_err(|e| io("syncing", &self.tmp, e))?;
        drop(f);
        tokio::fs::rename(&self.tmp, &self.path)
            .await
            .map_err(|e| io("moving into place", &self.path, e))
    }
}

impl Drop for DiskSink {
    /// Uncommitted, or a commit that failed part way: the temporary file
    /// goes (after a commit it is already under its final name).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
        live().remove(&self.tmp);
    }
}

/// Reads the master keys, creating the file with one new key when missing.
pub fn load_master_keys(path: &Path) -> Result<MasterKeys> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_keys(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (id, key) = MasterKeys::generate();
            write_keys(path, &[(id.clone(), key)])?;
            MasterKeys::new(vec![(id, key)])
        }
        Err(e) => Err(io("reading", path, e)),
    }
}

fn parse_keys(text: &str, path: &Path) -> Result<MasterKeys> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            Error::internal(format!(
                "{} line {}: expected 'id:64 hex digits'",
                path.display(),
                n + 1
            ))
        };
        let (id, hex_key) = line.split_once(':').ok_or_else(bad)?;
        let bytes = hex::decode(hex_key).map_err(|_| bad())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        keys.push((id.to_owned(), key));
    }
    MasterKeys::new(keys)
}

fn write_keys(path: &Path, keys: &[(String, [u8; 32])]) -> Result<()> {
    use std::io::Write;
    let mut text = String::from(
        "# maximin master keys (oldest first; the last wraps new data keys). Keep secret; back up with the database.\n",
    );
    for (id, k) in keys {
        text.push_str(&format!("{id}:{}\n", hex::encode(k)));
    }
    let tmp = path.with_extension("key.tmp");
    let mut f = private_file(&tmp).map_err(|e| io("creating", &tmp, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("moving into place", path, e))
}

/// Appends a new master key to the file; returns the keys with it current.
pub fn add_master_key(path: &Path) -> Result<MasterKeys> {
    let text = std::fs::read_to_string(path).map_err(|e| io("reading", path, e))?;
    let mut keys: Vec<(String, [u8; 32])> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some((id, h)) = line.split_once(':').filter(|_| !line.starts_with('#')) {
            if let Ok(k) = hex::decode(h)
                .map_err(|_| ())
                .and_then(|b| b.try_into().map_err(|_| ()))
            {
                keys.push((id.to_owned(), k));
            }
        }
    }
    keys.push(MasterKeys::generate());
    write_keys(path, &keys)?;
    MasterKeys::new(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_appear_only_when_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = DiskBlobs::new(dir.path());
        let mut s = blobs.create("ab/1.mxf").await.expect("create");
        s.write(b"hello").await.expect("write");
        assert!(blobs.open("ab/1.mxf").await.expect("open").is_none());
        s.commit().await.expect("commit");
        let mut r = blobs.open("ab/1.mxf").await.expect("open").expect("some");
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut out)
            .await
            .expect("read");
        assert_eq!(out, b"hello");

        let mut s = blobs.create("ab/2.mxf").await.expect("create");
        s.write(b"partial").await.expect("write");
        drop(s);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("ab"))
            .expect("dir")
            .collect();
        assert_eq!(left.len(), 1, "an uncommitted blob leaves nothing");
        assert!(blobs.create("../x").await.is_err());
    }

    /// A temporary file named for `pid`, last written `age` ago.
    #[cfg(target_os = "linux")]
    fn temp(dir: &Path, pid: u32, age: Duration) -> PathBuf {
        let p = dir.join(format!(".tmp-{pid}-{}", maximin_core::files::new_id()));
        let f = std::fs::File::create(&p).expect("create");
        f.set_modified(SystemTime::now() - age).expect("mtime");
        p
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_sweep_takes_orphaned_temp_files_and_never_a_live_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = DiskBlobs::new(dir.path());
        let mut writing = blobs.create("ab/1.mxf").await.expect("create");
        writing.write(b"still coming").await.expect("write");
        let sub = dir.path().join("ab");
        let me = std::process::id();
        // A PID no process has (above Linux's largest), and one that runs.
        let (dead, alive) = (999_999_999, std::os::unix::process::parent_id());
        let minute = Duration::from_secs(60);
        let own_old = temp(&sub, me, Duration::ZERO);
        let dead_fresh = temp(&sub, dead, minute);
        let dead_idle = temp(&sub, dead, 11 * minute);
        let alive_idle = temp(&sub, alive, 60 * minute);
        let alive_stale = temp(&sub, alive, 25 * 60 * minute);
        let blob = sub.join("7.mxf");
        std::fs::write(&blob, b"sealed").expect("blob");
        let other = sub.join(".tmp-notes");
        std::fs::write(&other, b"x").expect("other");

        assert_eq!(blobs.sweep_orphans().await.expect("sweep"), 3);
        // Our PID but no sink holds it: a process before us had our PID.
        assert!(!own_old.exists());
        // Another PID: kept while it may still be written.
        assert!(dead_fresh.exists(), "a dead writer's fresh file waits");
        assert!(!dead_idle.exists(), "a dead writer's idle file goes");
        assert!(alive_idle.exists(), "a running writer's file stays");
        assert!(
            !alive_stale.exists(),
            "a day untouched: gone whoever wrote it"
        );
        assert!(blob.exists() && other.exists(), "only temporary names");

        // The live write was never touched and still commits.
        writing.write(b"!").await.expect("write");
        writing.commit().await.expect("commit");
        assert!(sub.join("1.mxf").exists());
        assert_eq!(blobs.sweep_orphans().await.expect("sweep"), 0);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn blobs_and_their_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("files");
        let blobs = DiskBlobs::new(&root);
        let mut s = blobs.create("ab/1.mxf").await.expect("create");
        s.write(b"sealed").await.expect("write");
        s.commit().await.expect("commit");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("ab")), 0o700);
        assert_eq!(mode(&root.join("ab/1.mxf")), 0o600);

        let data = dir.path().join("data/dir");
        ensure_private_dir(&data).expect("create");
        assert_eq!(mode(&data), 0o700);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&data).expect("again");
        assert_eq!(mode(&data), 0o700, "an existing data dir is made private");
    }

    #[test]
    fn the_key_file_is_made_once_and_grows_on_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("master.key");
        let a = load_master_keys(&p).expect("create");
        let b = load_master_keys(&p).expect("load");
        assert_eq!(a.current_id(), b.current_id());
        let dek = [7u8; 32];
        let (kid, wrapped) = a.wrap(&dek, b"x").expect("wrap");
        let c = add_master_key(&p).expect("rotate");
        assert_ne!(c.current_id(), a.current_id());
        assert_eq!(
            c.unwrap(&kid, &wrapped, b"x").expect("old key still opens"),
            dek
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
