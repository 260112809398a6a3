//! Local-disk blobs and the master key file.
//!
//! Blobs are files under `DATA_DIR/files/`, written to a temporary name,
//! synced and renamed into place, so a crash never leaves a partial blob
//! under a final name. They hold only sealed bytes (see `maximin_core::crypto`).
//!
//! The master keys are `DATA_DIR/master.key`: one `id:hex` line per key,
//! oldest first, the last the current one; created (mode 0600) on first
//! start. `maximin files rotate-key` appends a key and rewraps every data key.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use maximin_core::crypto::MasterKeys;
use maximin_core::files::{BlobSink, BlobStore};
use maximin_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncWriteExt};

pub struct DiskBlobs {
    root: PathBuf,
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
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io("creating", &dir, e))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            maximin_core::files::new_id()
        ));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io("creating", &tmp, e))?;
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
            .map_err(|e| io("moving into place", &self.path, e))?;
        Ok(())
    }
}

impl Drop for DiskSink {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
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
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(|e| io("creating", &tmp, e))?;
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
