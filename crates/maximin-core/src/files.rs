//! The file store (DESIGN.md §7, spec §10), shared by every API that takes or
//! makes files: uploads for voice cloning and async speech, and task outputs.
//!
//! Metadata lives in the [`Store`]; bytes in a [`BlobStore`], sealed under
//! the file's own data key ([`crate::crypto`]) while they stream in, so no
//! plaintext touches the disk and no file is held whole in memory. The
//! content decides what a file is (never its name), and each purpose takes
//! only the kinds it can use. Downloads without a key go through short-lived
//! links signed with a key derived from the master key.

use std::sync::Arc;

use async_trait::async_trait;
use maximin_types::ErrorCode;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::clock::Clock;
use crate::crypto::{self, MasterKeys, OpenReader, SealWriter};
use crate::store::{FileRecord, Store};
use crate::{Error, Result};

/// Largest file (DESIGN.md §7).
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// Largest file the server makes (a million characters of speech is ~1 GB of mp3).
pub const MAX_OUTPUT_BYTES: u64 = 8 * 1024 * 1024 * 1024;
/// Most bytes of files one account may keep.
pub const ACCOUNT_QUOTA: u64 = 100 * 1_000_000_000;
/// How long a download link works: 9 hours, as MiniMax's `files/retrieve`.
pub const LINK_TTL: time::Duration = time::Duration::hours(9);
/// Bytes looked at to recognise a file.
const SNIFF: usize = 64 * 1024;

/// Where sealed bytes live (a directory on local disk by default).
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// A new blob; nothing is visible under `name` until [`BlobSink::commit`].
    async fn create(&self, name: &str) -> Result<Box<dyn BlobSink>>;
    /// The blob's bytes, or `None` when there is none.
    async fn open(&self, name: &str) -> Result<Option<Box<dyn AsyncRead + Send + Unpin>>>;
    async fn delete(&self, name: &str) -> Result<()>;
    /// Removes what interrupted writes left behind (a crash mid-write) and
    /// no write will finish; returns how many.
    async fn sweep_orphans(&self) -> Result<u64> {
        Ok(0)
    }
}

#[async_trait]
pub trait BlobSink: Send {
    async fn write(&mut self, data: &[u8]) -> Result<()>;
    /// Makes the blob durable and visible; a sink dropped uncommitted leaves nothing.
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// Upload purposes and the kinds of content each takes (spec §10).
pub const UPLOAD_PURPOSES: &[(&str, &[&str])] = &[
    ("voice_clone", AUDIO),
    ("prompt_audio", AUDIO),
    ("t2a_async_input", &["txt", "zip"]),
    ("retrieval", DOCUMENTS),
    ("assistants", DOCUMENTS),
    // Text that is not all JSON lines is taken too: a job's creation reads
    // it line by line and names every bad line, which a refused upload
    // could not.
    ("fine-tune", &["jsonl", "txt"]),
];
const AUDIO: &[&str] = &["mp3", "m4a", "wav", "flac", "ogg"];
const DOCUMENTS: &[&str] = &["pdf", "docx", "txt", "jsonl"];
/// Purposes of files the server makes; they can be listed, fetched and deleted.
pub const OUTPUT_PURPOSES: &[&str] = &[
    "t2a_async",
    "t2a_output",
    "video_generation",
    "image_generation",
    "music_generation",
    "privacy_export",
];

/// The kinds of content an upload purpose takes; an unknown purpose is an
/// error naming the ones there are.
pub fn upload_kinds(purpose: &str) -> Result<&'static [&'static str]> {
    UPLOAD_PURPOSES
        .iter()
        .find(|(p, _)| *p == purpose)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            let all: Vec<&str> = UPLOAD_PURPOSES.iter().map(|(p, _)| *p).collect();
            Error::invalid(
                "purpose",
                format!("'purpose' must be one of {}.", all.join(", ")),
            )
        })
}

/// What a file's first bytes say it is.
pub fn sniff(head: &[u8], complete: bool) -> Option<&'static str> {
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(b"%PDF-") {
        return Some("pdf");
    }
    if starts(b"PK\x03\x04") {
        let docx = head.windows(5).any(|w| w == b"word/");
        return Some(if docx { "docx" } else { "zip" });
    }
    if starts(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        return Some("wav");
    }
    if starts(b"fLaC") {
        return Some("flac");
    }
    if starts(b"OggS") {
        return Some("ogg");
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Some("png");
    }
    if starts(b"\xff\xd8\xff") {
        return Some("jpeg");
    }
    if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        return Some("webp");
    }
    if head.get(4..8) == Some(b"ftyp") {
        // ISO media: read as audio (m4a), what uploads take; the server
        // names the kind of the videos it makes itself.
        return Some("m4a");
    }
    if starts(b"ID3") || (head.len() > 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0) {
        return Some("mp3");
    }
    if head.get(257..262) == Some(b"ustar") {
        return Some("tar");
    }
    text_kind(head, complete)
}

fn text_kind(head: &[u8], complete: bool) -> Option<&'static str> {
    if head.is_empty() || head.contains(&0) {
        return None;
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A character cut at the end of the sniffed bytes is fine.
        Err(e) if !complete && e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if !complete {
        lines.pop(); // possibly cut
    }
    let jsonl = !lines.is_empty()
        && lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object()));
    Some(if jsonl { "jsonl" } else { "txt" })
}

/// The MIME type for a kind.
pub fn content_type(kind: &str) -> &'static str {
    match kind {
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "ogg" => "audio/ogg",
        "m4a" => "audio/mp4",
        "pcm" => "audio/L16",
        "pdf" => "application/pdf",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "zip" => "application/zip",
        "tar" => "application/x-tar",
        "json" => "application/json",
        "jsonl" => "application/jsonl",
        "txt" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// A new id for a file or task: random, positive, below 2^53 so that
/// JavaScript clients read it exactly.
pub fn new_id() -> i64 {
    use rand::Rng;
    rand::thread_rng().gen_range(100_000_000_000_000..(1_i64 << 53))
}

fn blob_name(id: i64) -> String {
    format!("{:02x}/{id}.mxf", id.rem_euclid(256))
}

fn aad(id: i64) -> Vec<u8> {
    format!("maximin/file/{id}").into_bytes()
}

/// Where the file store keeps bytes and the keys it seals them with.
pub struct Vault {
    pub blobs: Arc<dyn BlobStore>,
    pub keys: Arc<MasterKeys>,
}

/// A file the server makes: its owner, purpose, name, kind, a reserved id
/// (or a new one) and when it expires.
pub struct Output<'a> {
    pub account_id: &'a str,
    pub purpose: &'a str,
    pub filename: &'a str,
    pub kind: &'a str,
    pub id: Option<i64>,
    pub expires_at: Option<OffsetDateTime>,
}

pub struct Files {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    keys: Arc<MasterKeys>,
    clock: Arc<dyn Clock>,
    link_key: [u8; 32],
}

impl Files {
    pub fn new(store: Arc<dyn Store>, vault: Vault, clock: Arc<dyn Clock>) -> Self {
        let Vault { blobs, keys } = vault;
        let link_key = keys.derive("maximin/file-links");
        Files {
            store,
            blobs,
            keys,
            clock,
            link_key,
        }
    }

    pub fn keys(&self) -> &Arc<MasterKeys> {
        &self.keys
    }

    /// Starts an upload; the purpose may come later (multipart parts come
    /// in any order), and the content is checked against it at the end.
    pub async fn upload(&self, account_id: &str, filename: &str) -> Result<Upload> {
        let filename = clean_filename(filename);
        let w = self
            .writer(account_id, "", &filename, "", None, None)
            .await?;
        Ok(Upload {
            w,
            head: Vec::with_capacity(SNIFF),
        })
    }

    async fn writer(
        &self,
        account_id: &str,
        purpose: &str,
        filename: &str,
        kind: &str,
        id: Option<i64>,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Writer> {
        let id = id.unwrap_or_else(new_id);
        let dek = crypto::data_key();
        let (key_id, wrapped_key) = self.keys.wrap(&dek, &aad(id))?;
        Ok(Writer {
            record: FileRecord {
                id,
                account_id: account_id.to_owned(),
                purpose: purpose.to_owned(),
                filename: filename.to_owned(),
                kind: kind.to_owned(),
                bytes: 0,
                key_id,
                wrapped_key,
                created_at: self.clock.now(),
                expires_at,
            },
            seal: SealWriter::new(&dek, &aad(id))?,
            sink: self.blobs.create(&blob_name(id)).await?,
            limit: MAX_FILE_BYTES,
        })
    }

    /// Stores bytes the server made (a task's output, a synthesis for a
    /// link) and returns the record, not yet in the store: the caller
    /// records it ([`Files::record`] or with the task's end).
    pub async fn write_output(&self, out: &Output<'_>, data: &[u8]) -> Result<FileRecord> {
        let mut w = self.output_writer(out).await?;
        for c in data.chunks(1 << 20) {
            w.write(c).await?;
        }
        w.finish().await
    }

    /// A writer for a file the server makes piece by piece (long audio):
    /// [`OutputWriter::write`] as it comes, [`OutputWriter::finish`] for the
    /// record (not yet in the store).
    pub async fn output_writer(&self, out: &Output<'_>) -> Result<OutputWriter> {
        let mut w = self
            .writer(
                out.account_id,
                out.purpose,
                out.filename,
                out.kind,
                out.id,
                out.expires_at,
            )
            .await?;
        w.limit = MAX_OUTPUT_BYTES;
        Ok(OutputWriter(w))
    }

    /// Records a file written by [`Files::write_output`]; on failure the blob goes.
    pub async fn record(&self, file: &FileRecord) -> Result<()> {
        if let Err(e) = self.store.insert_file(file, ACCOUNT_QUOTA).await {
            let _ = self.blobs.delete(&blob_name(file.id)).await;
            return Err(e);
        }
        Ok(())
    }

    /// Removes the blob of a file that was written but is not to be recorded.
    pub async fn discard(&self, file: &FileRecord) -> Result<()> {
        self.discard_id(file.id).await
    }

    /// [`Files::discard`] by id (nothing there is fine): what an
    /// interrupted writer of a known id left.
    pub async fn discard_id(&self, id: i64) -> Result<()> {
        self.blobs.delete(&blob_name(id)).await
    }

    /// The caller's file; another account's file is as absent as a missing one.
    pub async fn get(&self, account_id: &str, id: i64) -> Result<FileRecord> {
        match self.store.file(id).await? {
            Some(f) if f.account_id == account_id && !self.expired(&f) => Ok(f),
            _ => Err(Error::not_found("file", &id.to_string()).with("field", "file_id")),
        }
    }

    fn expired(&self, f: &FileRecord) -> bool {
        f.expires_at.is_some_and(|e| e <= self.clock.now())
    }

    pub async fn list(&self, account_id: &str, purpose: Option<&str>) -> Result<Vec<FileRecord>> {
        let mut files = self.store.files_of(account_id, purpose).await?;
        files.retain(|f| !self.expired(f));
        Ok(files)
    }

    pub async fn delete(&self, account_id: &str, id: i64) -> Result<FileRecord> {
        let f = self.get(account_id, id).await?;
        self.store.delete_file(id).await?;
        self.blobs.delete(&blob_name(id)).await?;
        Ok(f)
    }

    /// Removes a file, record and bytes, expired or not (an account's data
    /// deleted on request, or at closure).
    pub async fn remove(&self, f: &FileRecord) -> Result<()> {
        self.store.delete_file(f.id).await?;
        self.blobs.delete(&blob_name(f.id)).await
    }

    /// [`Files::remove`] by id (nothing there is fine): a recorded file
    /// the server made and no longer keeps (a fine-tune's adapter or
    /// checkpoint). [`Files::discard_id`] would leave its record behind.
    pub async fn remove_id(&self, id: i64) -> Result<()> {
        self.store.delete_file(id).await?;
        self.blobs.delete(&blob_name(id)).await
    }

    /// The plaintext, piece by piece.
    pub async fn read(&self, file: &FileRecord) -> Result<FileReader> {
        let dek = self
            .keys
            .unwrap(&file.key_id, &file.wrapped_key, &aad(file.id))?;
        let blob = self
            .blobs
            .open(&blob_name(file.id))
            .await?
            .ok_or_else(|| Error::internal(format!("file {} has no stored bytes", file.id)))?;
        Ok(FileReader {
            blob,
            open: Some(OpenReader::new(&dek, &aad(file.id))?),
            buf: vec![0u8; 256 * 1024],
        })
    }

    /// The whole plaintext of a file of at most `max` bytes (audio to clone,
    /// text to speak).
    pub async fn read_all(&self, file: &FileRecord, max: u64) -> Result<Vec<u8>> {
        if file.bytes > max {
            return Err(Error::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "File {} has {} bytes; at most {max} can be used here.",
                    file.id, file.bytes
                ),
            )
            .with("field", "file_id"));
        }
        let mut r = self.read(file).await?;
        let mut out = Vec::with_capacity(usize::try_from(file.bytes).unwrap_or(0));
        while let Some(c) = r.next().await? {
            out.extend(c);
        }
        Ok(out)
    }

    /// A link that downloads the file without a key until `LINK_TTL` passes.
    pub fn link(&self, base: &str, file: &FileRecord, ttl: time::Duration) -> String {
        let expires = (self.clock.now() + ttl).unix_timestamp();
        let sig = crypto::sign(&self.link_key, &format!("{}:{expires}", file.id));
        format!(
            "{}/v1/files/download/{}?expires={expires}&signature={sig}",
            base.trim_end_matches('/'),
            file.id
        )
    }

    /// Checks a link's signature and time; the file it names.
    pub async fn by_link(&self, id: i64, expires: i64, signature: &str) -> Result<FileRecord> {
        let refused = || {
            Error::permission_denied("This download link is invalid or has expired; ask for a new one with /v1/files/retrieve.")
        };
        if !crypto::verify(&self.link_key, &format!("{id}:{expires}"), signature) {
            return Err(refused());
        }
        if expires < self.clock.now().unix_timestamp() {
            return Err(refused());
        }
        match self.store.file(id).await? {
            Some(f) if !self.expired(&f) => Ok(f),
            _ => Err(Error::not_found("file", &id.to_string())),
        }
    }

    /// Deletes expired files (records and bytes); returns how many.
    pub async fn sweep_expired(&self) -> Result<u64> {
        let mut n = 0;
        loop {
            let batch = self.store.expired_files(self.clock.now(), 500).await?;
            if batch.is_empty() {
                return Ok(n);
            }
            for f in batch {
                self.store.delete_file(f.id).await?;
                self.blobs.delete(&blob_name(f.id)).await?;
                n += 1;
            }
        }
    }

    /// Removes what writes cut short by a crash left in the blob store
    /// (never a write still going on); returns how many.
    pub async fn sweep_orphans(&self) -> Result<u64> {
        self.blobs.sweep_orphans().await
    }

    /// Rewraps every file's data key under the current master key; returns how many.
    pub async fn rewrap_all(&self) -> Result<u64> {
        let mut n = 0;
        for (id, kid, wrapped) in self.store.file_keys().await? {
            if kid == self.keys.current_id() {
                continue;
            }
            let dek = self.keys.unwrap(&kid, &wrapped, &aad(id))?;
            let (kid, wrapped) = self.keys.wrap(&dek, &aad(id))?;
            self.store.set_file_key(id, &kid, &wrapped).await?;
            n += 1;
        }
        Ok(n)
    }
}

fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let s: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    if s.trim().is_empty() {
        "file".to_owned()
    } else {
        s
    }
}

/// Seals bytes into a new blob as they come.
struct Writer {
    record: FileRecord,
    seal: SealWriter,
    sink: Box<dyn BlobSink>,
    /// Most bytes: 512 MB for uploads; outputs (hours of audio) may be larger.
    limit: u64,
}

impl Writer {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.record.bytes += data.len() as u64;
        if self.record.bytes > self.limit {
            return Err(Error::new(
                ErrorCode::PayloadTooLarge,
                format!("A file may have at most {MAX_FILE_BYTES} bytes (512 MB)."),
            )
            .with("field", "file")
            .with("limit", MAX_FILE_BYTES));
        }
        let sealed = self.seal.push(data)?;
        if !sealed.is_empty() {
            self.sink.write(&sealed).await?;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<FileRecord> {
        let tail = self.seal.finish()?;
        self.sink.write(&tail).await?;
        self.sink.commit().await?;
        Ok(self.record)
    }
}

/// A file the server writes piece by piece.
pub struct OutputWriter(Writer);

impl OutputWriter {
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.0.write(data).await
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.0.record.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.0.record.bytes == 0
    }

    pub async fn finish(self) -> Result<FileRecord> {
        self.0.finish().await
    }
}

/// An upload in progress: bytes are sealed to disk as they arrive; the first
/// 64 KiB decide the kind.
pub struct Upload {
    w: Writer,
    head: Vec<u8>,
}

impl Upload {
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        if self.head.len() < SNIFF {
            let take = (SNIFF - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
        }
        self.w.write(data).await
    }

    /// Checks the content against `purpose`, seals the last bytes, stores
    /// the blob and records the file. A refused upload leaves nothing.
    pub async fn finish(mut self, files: &Files, purpose: &str) -> Result<FileRecord> {
        let allowed = upload_kinds(purpose)?;
        let complete = self.w.record.bytes as usize == self.head.len();
        let kind = sniff(&self.head, complete);
        match kind {
            Some(k) if allowed.contains(&k) => {}
            _ => {
                return Err(Error::invalid(
                    "file",
                    format!(
                        "{purpose} files must be {}; this content is {}.",
                        allowed.join(", "),
                        match kind {
                            Some(k) => format!("'{k}'"),
                            None if self.head.is_empty() => "empty".to_owned(),
                            None => "not a recognised format".to_owned(),
                        }
                    ),
                )
                .with("purpose", purpose))
            }
        }
        self.w.record.kind = kind.unwrap_or_default().to_owned();
        self.w.record.purpose = purpose.to_owned();
        let rec = self.w.finish().await?;
        files.record(&rec).await?;
        Ok(rec)
    }
}

/// Plaintext of a stored file, piece by piece.
pub struct FileReader {
    blob: Box<dyn AsyncRead + Send + Unpin>,
    open: Option<OpenReader>,
    buf: Vec<u8>,
}

impl FileReader {
    /// The next piece; `None` at the end (after the last segment checked out).
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            let Some(open) = self.open.as_mut() else {
                return Ok(None);
            };
            let n = self
                .blob
                .read(&mut self.buf)
                .await
                .map_err(|e| Error::internal(format!("reading a stored file: {e}")))?;
            if n == 0 {
                let Some(open) = self.open.take() else {
                    return Ok(None);
                };
                let last = open.finish()?;
                return Ok(Some(last));
            }
            let out = open.push(&self.buf[..n])?;
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_the_kind() {
        assert_eq!(sniff(b"%PDF-1.7 ...", true), Some("pdf"));
        let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        wav.extend([0u8; 20]);
        assert_eq!(sniff(&wav, true), Some("wav"));
        assert_eq!(sniff(b"ID3\x04\0\0\0\0\0\0", true), Some("mp3"));
        assert_eq!(sniff(&[0xff, 0xfb, 0x90, 0x64], true), Some("mp3"));
        assert_eq!(sniff(b"\0\0\0\x20ftypM4A \0\0\0\0", true), Some("m4a"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0", true), Some("png"));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF", true), Some("jpeg"));
        assert_eq!(
            sniff(b"PK\x03\x04....word/document.xml", true),
            Some("docx")
        );
        assert_eq!(sniff(b"PK\x03\x04....a.txt", true), Some("zip"));
        assert_eq!(
            sniff("Hello, wörld.\nSecond line".as_bytes(), true),
            Some("txt")
        );
        assert_eq!(sniff(b"{\"a\":1}\n{\"b\":2}\n", true), Some("jsonl"));
        assert_eq!(sniff(b"\x00\x01\x02binary", true), None);
        assert_eq!(sniff(b"", true), None);
        // A multi-byte character cut by the sniff window is still text.
        let cut = &"ééé".as_bytes()[..5];
        assert_eq!(sniff(cut, false), Some("txt"));
        assert_eq!(sniff(cut, true), None);
    }

    #[test]
    fn ids_are_safe_for_javascript() {
        for _ in 0..1000 {
            let id = new_id();
            assert!(id > 0 && id < (1 << 53));
        }
    }

    #[test]
    fn filenames_lose_paths_and_control_characters() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\x\\a\nb.wav"), "ab.wav");
        assert_eq!(clean_filename(""), "file");
    }
}
