//! SHA-256 while copying, so a file is hashed in the same pass that writes it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::progress::Meter;

/// A file's SHA-256 and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest {
    pub sha256: [u8; 32],
    pub size: u64,
}

impl Digest {
    pub(crate) fn hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

const BUF: usize = 256 * 1024;

/// Copies `from` into `to`, hashing what passes and reporting to `meter`.
pub(crate) fn copy_hashed(
    from: &mut impl Read,
    to: &mut impl Write,
    meter: &mut Meter,
) -> io::Result<Digest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        size += n as u64;
        meter.inc(n as u64);
    }
    Ok(Digest {
        sha256: hasher.finalize().into(),
        size,
    })
}

/// Hashes a file on disk.
pub(crate) fn hash_file(path: &Path) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    copy_hashed(
        &mut file,
        &mut io::sink(),
        &mut crate::Progress::Quiet.meter("", None),
    )
}

/// A 64-digit hex SHA-256 (either case).
pub(crate) fn parse_sha256(hex_digest: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut out).ok()?;
    Some(out)
}
