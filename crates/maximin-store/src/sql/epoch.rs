//! The auth epoch of a SQLite store: 8 bytes in a file beside the database,
//! rewritten with a fresh random value after every change that affects
//! authentication. Every process that opens the database opens this file too,
//! so the server sees the CLI's revocations on the next request at the cost of
//! one `pread`, not a query.

use std::path::{Path, PathBuf};

use maximin_core::{Error, Result};

pub(crate) struct AuthEpochFile {
    file: Option<std::fs::File>,
}

impl AuthEpochFile {
    pub(crate) fn open(db: &Path) -> Self {
        let mut name = db.as_os_str().to_owned();
        name.push(".auth-epoch");
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(PathBuf::from(name))
            .map_err(|e| tracing::warn!(error = %e, "auth epoch file unavailable: keys will not be cached"))
            .ok();
        let f = AuthEpochFile { file };
        if f.read().is_none() {
            f.bump();
        }
        f
    }

    #[cfg(unix)]
    pub(crate) fn read(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 8];
        match self.file.as_ref()?.read_at(&mut buf, 0) {
            Ok(8) => Some(u64::from_le_bytes(buf)),
            _ => None,
        }
    }

    #[cfg(unix)]
    pub(crate) fn bump(&self) {
        use std::os::unix::fs::FileExt;
        if let Some(f) = &self.file {
            if let Err(e) = f.write_all_at(&rand_u64().to_le_bytes(), 0) {
                tracing::error!(error = %e, "cannot change the auth epoch");
            }
        }
    }

    #[cfg(not(unix))]
    pub(crate) fn read(&self) -> Option<u64> {
        None
    }

    #[cfg(not(unix))]
    pub(crate) fn bump(&self) {}
}

pub(crate) fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS; mixing in the time makes each call differ.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Creates an empty file 0600 at `path` unless one is there.
pub(crate) fn create_private(path: &Path) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::internal(format!("creating {}: {e}", path.display()))),
    }
}
