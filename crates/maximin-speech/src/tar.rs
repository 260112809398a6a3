//! An async task's output: a ustar archive of its parts, streamed into the
//! task's reserved file.

use maximin_core::files::{Files, Output};
use maximin_core::store::{FileRecord, TaskRecord};
use maximin_core::{Error, Result};

pub(crate) enum Part {
    /// A sealed file written while synthesising (not recorded), and the head
    /// with exact sizes that replaces its first bytes in the tar (the part
    /// was written as a stream, before its length was known).
    Stored(FileRecord, Vec<u8>),
    Bytes(Vec<u8>),
}

/// A ustar header for a regular file.
fn tar_header(name: &str, size: u64, mtime: i64) -> Result<[u8; 512]> {
    let mut h = [0u8; 512];
    let name = name.as_bytes();
    if name.len() > 100 {
        return Err(Error::internal("tar member name too long"));
    }
    h[..name.len()].copy_from_slice(name);
    let mut field = |at: usize, len: usize, value: u64| {
        let s = format!("{value:0width$o}", width = len - 1);
        h[at..at + len - 1].copy_from_slice(s.as_bytes());
    };
    field(100, 8, 0o644);
    field(108, 8, 0);
    field(116, 8, 0);
    if size >= 1 << 33 {
        return Err(Error::internal("tar member too large"));
    }
    field(124, 12, size);
    field(136, 12, u64::try_from(mtime).unwrap_or(0));
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// The output: a tar of every part, streamed into the task's reserved file.
pub(crate) async fn write_tar(
    files: &Files,
    task: &TaskRecord,
    parts: &[(String, Part)],
) -> Result<FileRecord> {
    let name = format!("{}.tar", task.id);
    let mut w = files
        .output_writer(&Output {
            account_id: &task.account_id,
            purpose: "t2a_async",
            filename: &name,
            kind: "tar",
            id: task.file_id,
            expires_at: None,
        })
        .await?;
    let mtime = task.created_at.unix_timestamp();
    for (name, part) in parts {
        match part {
            Part::Bytes(b) => {
                w.write(&tar_header(name, b.len() as u64, mtime)?).await?;
                w.write(b).await?;
                w.write(&vec![0u8; padding(b.len() as u64)]).await?;
            }
            Part::Stored(f, head) => {
                if head.len() as u64 > f.bytes {
                    return Err(Error::internal("an audio part is shorter than its head"));
                }
                w.write(&tar_header(name, f.bytes, mtime)?).await?;
                w.write(head).await?;
                let mut r = files.read(f).await?;
                let mut n = 0u64;
                while let Some(c) = r.next().await? {
                    // The stored bytes the head replaces are skipped.
                    let skip = (head.len() as u64).saturating_sub(n).min(c.len() as u64);
                    n += c.len() as u64;
                    w.write(&c[skip as usize..]).await?;
                }
                if n != f.bytes {
                    return Err(Error::internal("an audio part changed size"));
                }
                w.write(&vec![0u8; padding(n)]).await?;
            }
        }
    }
    w.write(&[0u8; 1024]).await?;
    w.finish().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_are_valid_ustar() {
        let h = tar_header("speech.mp3", 1234, 1_700_000_000).expect("header");
        assert_eq!(&h[..10], b"speech.mp3");
        assert_eq!(&h[124..135], b"00000002322");
        assert_eq!(&h[257..262], b"ustar");
        let stored = std::str::from_utf8(&h[148..154]).expect("utf8");
        let mut sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        sum = sum - h[148..156].iter().map(|b| u64::from(*b)).sum::<u64>() + 8 * 32;
        assert_eq!(u64::from_str_radix(stored, 8).expect("octal"), sum);
        assert_eq!(padding(1234), 302);
        assert_eq!(padding(1024), 0);
    }
}
