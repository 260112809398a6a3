//! Encryption at rest (DESIGN.md §8): every file and every sealed task input
//! has its own random data key (AES-256-GCM); the data key is stored wrapped
//! by a master key, named by id, so that rotating the master key rewraps a
//! few bytes per file instead of re-encrypting the files.
//!
//! File contents are sealed in 64 KiB segments (the STREAM construction): a
//! segment's nonce is a random 7-byte prefix, the segment's index and a
//! last-segment flag, so segments cannot be reordered, dropped or cut off
//! unnoticed, and a file is written and read without holding it whole.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Plaintext bytes per sealed segment.
pub const SEGMENT: usize = 64 * 1024;
/// Bytes a segment grows by when sealed (the GCM tag).
pub const TAG: usize = 16;
/// Magic and version at the start of a sealed file.
const MAGIC: &[u8; 4] = b"MXF1";
/// A sealed file's header: magic and the nonce prefix.
pub const HEADER: usize = 4 + 7;

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// The master keys by id; the newest wraps new data keys, the others still
/// unwrap what they wrapped until a rotation rewraps it.
#[derive(Clone)]
pub struct MasterKeys {
    keys: BTreeMap<String, [u8; 32]>,
    current: String,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish()
    }
}

impl MasterKeys {
    /// Keys in the order they were made; the last is the current one.
    pub fn new(keys: Vec<(String, [u8; 32])>) -> Result<Self> {
        let current = keys
            .last()
            .map(|(id, _)| id.clone())
            .ok_or_else(|| Error::internal("no master key"))?;
        Ok(MasterKeys {
            keys: keys.into_iter().collect(),
            current,
        })
    }

    /// A fresh key with a new id.
    pub fn generate() -> (String, [u8; 32]) {
        (hex::encode(random::<6>()), random::<32>())
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// Seals a data key under the current master key; `aad` binds it to its owner.
    pub fn wrap(&self, dek: &[u8; 32], aad: &[u8]) -> Result<(String, Vec<u8>)> {
        let master = self
            .keys
            .get(&self.current)
            .ok_or_else(|| Error::internal("current master key missing"))?;
        Ok((self.current.clone(), seal(master, dek, aad)?))
    }

    pub fn unwrap(&self, key_id: &str, wrapped: &[u8], aad: &[u8]) -> Result<[u8; 32]> {
        let master = self
            .keys
            .get(key_id)
            .ok_or_else(|| Error::internal(format!("master key '{key_id}' is not loaded")))?;
        let dek = open(master, wrapped, aad)?;
        dek.try_into()
            .map_err(|_| Error::internal("a wrapped data key has the wrong length"))
    }

    /// A key for another purpose (signing download links), derived from the
    /// current master key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let master = self.keys.get(&self.current).copied().unwrap_or([0; 32]);
        let hk = Hkdf::<Sha256>::new(Some(b"maximin/derive"), &master);
        let mut out = [0u8; 32];
        let _ = hk.expand(purpose.as_bytes(), &mut out);
        out
    }

    /// A small value sealed under a fresh data key, self-describing:
    /// `key id length, key id, wrapped key length, wrapped key, sealed value`.
    pub fn seal_value(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let dek = random::<32>();
        let (kid, wrapped) = self.wrap(&dek, aad)?;
        join_value(&kid, &wrapped, &seal(&dek, plaintext, aad)?)
    }

    pub fn open_value(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let (kid, wrapped, body) = split_value(sealed)?;
        let dek = self.unwrap(kid, wrapped, aad)?;
        open(&dek, body, aad)
    }

    /// The same value with its data key rewrapped under the current master key.
    pub fn rewrap_value(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let (kid, wrapped, body) = split_value(sealed)?;
        let dek = self.unwrap(kid, wrapped, aad)?;
        let (kid, wrapped) = self.wrap(&dek, aad)?;
        join_value(&kid, &wrapped, body)
    }
}

/// A sealed value's layout: key id length, key id, wrapped key length,
/// wrapped key, sealed body.
fn join_value(kid: &str, wrapped: &[u8], body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(2 + kid.len() + wrapped.len() + body.len());
    out.push(u8::try_from(kid.len()).map_err(Error::internal)?);
    out.extend_from_slice(kid.as_bytes());
    out.push(u8::try_from(wrapped.len()).map_err(Error::internal)?);
    out.extend_from_slice(wrapped);
    out.extend_from_slice(body);
    Ok(out)
}

fn split_value(sealed: &[u8]) -> Result<(&str, &[u8], &[u8])> {
    let bad = || Error::internal("a sealed value is malformed");
    let (&klen, rest) = sealed.split_first().ok_or_else(bad)?;
    let (kid, rest) = rest.split_at_checked(usize::from(klen)).ok_or_else(bad)?;
    let (&wlen, rest) = rest.split_first().ok_or_else(bad)?;
    let (wrapped, body) = rest.split_at_checked(usize::from(wlen)).ok_or_else(bad)?;
    Ok((std::str::from_utf8(kid).map_err(|_| bad())?, wrapped, body))
}

/// AES-256-GCM with a random nonce in front.
fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(Error::internal)?;
    let nonce = random::<12>();
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::internal("sealing failed"))?;
    let mut out = Vec::with_capacity(12 + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < 12 + TAG {
        return Err(Error::internal("a sealed value is truncated"));
    }
    let cipher = Aes256Gcm::new_from_slice(key).map_err(Error::internal)?;
    let (nonce, ct) = sealed.split_at(12);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| Error::internal("a sealed value does not open (wrong key or tampered)"))
}

/// A new data key.
pub fn data_key() -> [u8; 32] {
    random::<32>()
}

fn segment_nonce(prefix: &[u8; 7], index: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Seals a file segment by segment. Feed plaintext with [`SealWriter::push`]
/// (returns the sealed bytes ready now) and end with [`SealWriter::finish`].
pub struct SealWriter {
    cipher: Aes256Gcm,
    prefix: [u8; 7],
    index: u32,
    pending: Vec<u8>,
    header_sent: bool,
    aad: Vec<u8>,
}

impl SealWriter {
    pub fn new(dek: &[u8; 32], aad: &[u8]) -> Result<Self> {
        Ok(SealWriter {
            cipher: Aes256Gcm::new_from_slice(dek).map_err(Error::internal)?,
            prefix: random::<7>(),
            index: 0,
            pending: Vec::with_capacity(SEGMENT),
            header_sent: false,
            aad: aad.to_vec(),
        })
    }

    fn header(&mut self, out: &mut Vec<u8>) {
        if !self.header_sent {
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&self.prefix);
            self.header_sent = true;
        }
    }

    fn segment(&mut self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let nonce = segment_nonce(&self.prefix, self.index, last);
        let len = self.pending.len().min(SEGMENT);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &self.pending[..len],
                    aad: &self.aad,
                },
            )
            .map_err(|_| Error::internal("sealing a file segment failed"))?;
        self.pending.drain(..len);
        out.extend_from_slice(&ct);
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| Error::internal("file too long to seal"))?;
        Ok(())
    }

    pub fn push(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.header(&mut out);
        self.pending.extend_from_slice(data);
        // Keep at least one byte back: the last segment is sealed by `finish`.
        while self.pending.len() > SEGMENT {
            self.segment(false, &mut out)?;
        }
        Ok(out)
    }

    pub fn finish(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.header(&mut out);
        self.segment(true, &mut out)?;
        Ok(out)
    }
}

/// Opens a sealed file fed in pieces of any size; `push` returns the
/// plaintext ready now; `finish` checks that the last segment came.
pub struct OpenReader {
    cipher: Aes256Gcm,
    prefix: Option<[u8; 7]>,
    index: u32,
    pending: Vec<u8>,
    aad: Vec<u8>,
    done: bool,
}

impl OpenReader {
    pub fn new(dek: &[u8; 32], aad: &[u8]) -> Result<Self> {
        Ok(OpenReader {
            cipher: Aes256Gcm::new_from_slice(dek).map_err(Error::internal)?,
            prefix: None,
            index: 0,
            pending: Vec::new(),
            aad: aad.to_vec(),
            done: false,
        })
    }

    fn open_segment(&mut self, len: usize, last: bool) -> Result<Vec<u8>> {
        let prefix = self
            .prefix
            .ok_or_else(|| Error::internal("sealed file without header"))?;
        let nonce = segment_nonce(&prefix, self.index, last);
        let pt = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &self.pending[..len],
                    aad: &self.aad,
                },
            )
            .map_err(|_| Error::internal("a stored file does not open (wrong key or tampered)"))?;
        self.pending.drain(..len);
        self.index += 1;
        Ok(pt)
    }

    pub fn push(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.done && !data.is_empty() {
            return Err(Error::internal(
                "bytes after the last segment of a stored file",
            ));
        }
        self.pending.extend_from_slice(data);
        if self.prefix.is_none() {
            if self.pending.len() < HEADER {
                return Ok(Vec::new());
            }
            if &self.pending[..4] != MAGIC {
                return Err(Error::internal("a stored file has an unknown format"));
            }
            let mut p = [0u8; 7];
            p.copy_from_slice(&self.pending[4..HEADER]);
            self.prefix = Some(p);
            self.pending.drain(..HEADER);
        }
        let mut out = Vec::new();
        // A full segment followed by more bytes is not the last one.
        while self.pending.len() > SEGMENT + TAG {
            out.extend(self.open_segment(SEGMENT + TAG, false)?);
        }
        Ok(out)
    }

    pub fn finish(mut self) -> Result<Vec<u8>> {
        if self.prefix.is_none() || self.pending.len() < TAG {
            return Err(Error::internal("a stored file is truncated"));
        }
        let len = self.pending.len();
        let out = self.open_segment(len, true)?;
        self.done = true;
        Ok(out)
    }
}

/// Size of the sealed form of `n` plaintext bytes.
pub fn sealed_len(n: u64) -> u64 {
    let segments = if n == 0 {
        1
    } else {
        n.div_ceil(SEGMENT as u64)
    };
    HEADER as u64 + n + segments * TAG as u64
}

/// HMAC-SHA256 (hex) of a message under a key, for signed links.
pub fn sign(key: &[u8; 32], message: &str) -> String {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, b) in key.iter().enumerate() {
        ipad[i] ^= b;
        opad[i] ^= b;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(message.as_bytes())
        .finalize();
    hex::encode(
        Sha256::new()
            .chain_update(opad)
            .chain_update(inner)
            .finalize(),
    )
}

/// Constant-time check of a signature made by [`sign`].
pub fn verify(key: &[u8; 32], message: &str, signature: &str) -> bool {
    use subtle::ConstantTimeEq;
    let want = sign(key, message);
    want.len() == signature.len() && bool::from(want.as_bytes().ct_eq(signature.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> MasterKeys {
        MasterKeys::new(vec![MasterKeys::generate()]).expect("keys")
    }

    fn roundtrip(data: &[u8], piece: usize) -> Vec<u8> {
        let dek = data_key();
        let mut w = SealWriter::new(&dek, b"file-1").expect("writer");
        let mut sealed = Vec::new();
        for c in data.chunks(piece.max(1)) {
            sealed.extend(w.push(c).expect("push"));
        }
        sealed.extend(w.finish().expect("finish"));
        assert_eq!(sealed.len() as u64, sealed_len(data.len() as u64));
        let mut r = OpenReader::new(&dek, b"file-1").expect("reader");
        let mut out = Vec::new();
        for c in sealed.chunks(7919) {
            out.extend(r.push(c).expect("open"));
        }
        out.extend(r.finish().expect("finish"));
        out
    }

    #[test]
    fn files_of_any_length_come_back() {
        for n in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            200_001,
        ] {
            let data: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            assert_eq!(roundtrip(&data, 1000), data, "length {n}");
            assert_eq!(roundtrip(&data, SEGMENT * 2), data, "length {n}");
        }
    }

    #[test]
    fn a_cut_reordered_or_foreign_file_does_not_open() {
        let dek = data_key();
        let data = vec![7u8; 3 * SEGMENT];
        let mut w = SealWriter::new(&dek, b"a").expect("writer");
        let mut sealed = w.push(&data).expect("push");
        sealed.extend(w.finish().expect("finish"));

        // Cut after the first segment: the reader never sees a last segment.
        let cut = &sealed[..HEADER + SEGMENT + TAG];
        let mut r = OpenReader::new(&dek, b"a").expect("reader");
        let _ = r.push(cut).expect("push");
        assert!(r.finish().is_err(), "a truncated file must not open");

        // Another owner's file (different aad).
        let mut r = OpenReader::new(&dek, b"b").expect("reader");
        let res = r.push(&sealed).and_then(|_| r.finish());
        assert!(res.is_err());

        // A flipped byte.
        let mut bad = sealed.clone();
        bad[HEADER + 10] ^= 1;
        let mut r = OpenReader::new(&dek, b"a").expect("reader");
        assert!(r.push(&bad).and_then(|_| r.finish()).is_err());
    }

    #[test]
    fn values_rewrap_under_a_new_master_key() {
        let first = MasterKeys::generate();
        let old = MasterKeys::new(vec![first.clone()]).expect("keys");
        let sealed = old.seal_value(b"hello", b"task-1").expect("seal");
        assert_eq!(old.open_value(&sealed, b"task-1").expect("open"), b"hello");
        assert!(old.open_value(&sealed, b"task-2").is_err());

        let second = MasterKeys::generate();
        let both = MasterKeys::new(vec![first, second.clone()]).expect("keys");
        let rewrapped = both.rewrap_value(&sealed, b"task-1").expect("rewrap");
        let only_new = MasterKeys::new(vec![second]).expect("keys");
        assert_eq!(
            only_new.open_value(&rewrapped, b"task-1").expect("open"),
            b"hello"
        );
        assert!(only_new.open_value(&sealed, b"task-1").is_err());
    }

    #[test]
    fn signatures_check() {
        let k = keys().derive("links");
        let s = sign(&k, "1/2");
        assert!(verify(&k, "1/2", &s));
        assert!(!verify(&k, "1/3", &s));
        assert!(!verify(&k, "1/2", &s[1..]));
        // RFC 4231 test case 1: a 20-byte key is zero-padded, as HMAC pads it.
        let mut key = [0u8; 32];
        key[..20].fill(0x0b);
        assert_eq!(
            sign(&key, "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }
}
