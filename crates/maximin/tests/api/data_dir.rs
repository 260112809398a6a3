//! What the server leaves in its data dir: nothing readable by others
//! (the dir 0700, its files 0600), and no temporary file that a crash cut
//! short once it has restarted (issue 13, point 9).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::helpers::Server;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file and directory under `dir` (not following links).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        let t = e.file_type().expect("type");
        if t.is_dir() {
            walk(&p, out);
        }
        out.push(p);
    }
}

fn temp_files(data: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    if data.join("files").is_dir() {
        walk(&data.join("files"), &mut all);
    }
    all.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".tmp-"))
    });
    all
}

#[tokio::test]
async fn the_data_dir_and_everything_in_it_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A data dir someone made readable: the server closes it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let s = Server::start_in(dir, &[]).await;
    let (_, key) = s.admin("payg");
    let r = s
        .upload(&key, "retrieval", "notes.txt", b"private notes".to_vec())
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{:?}", r.body);
    let data = s.dir.path();
    assert_eq!(mode(data), 0o700, "the data dir");
    let mut all = Vec::new();
    walk(data, &mut all);
    let names: Vec<String> = all
        .iter()
        .map(|p| p.strip_prefix(data).expect("under").display().to_string())
        .collect();
    let sqlite: &[&str] = if crate::backend::postgres_server().is_none() {
        &[
            "maximin.db",
            "maximin.db-wal",
            "maximin.db-shm",
            "maximin.db.auth-epoch",
        ]
    } else {
        &[]
    };
    for &want in sqlite.iter().chain(&["master.key", "files"]) {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    assert!(
        names.iter().any(|n| n.ends_with(".mxf")),
        "no blob in {names:?}"
    );
    for p in &all {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(p), want, "{}: {:o}", p.display(), mode(p));
    }
}

#[tokio::test]
async fn a_temp_file_left_by_a_crash_is_swept_at_the_next_start() {
    let s = Server::start().await;
    let (_, key) = s.admin("payg");
    // An upload that never ends: its temporary file is being written.
    let boundary = "crashboundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nretrieval\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(head.into_bytes()), Ok(vec![b'a'; 2 << 20])];
    let body = futures::StreamExt::chain(futures::stream::iter(chunks), futures::stream::pending());
    let upload = s
        .http
        .post(s.url("/v1/files/upload"))
        .bearer_auth(&key)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let upload = tokio::spawn(upload);
    let data = s.dir.path().to_path_buf();
    let start = Instant::now();
    while temp_files(&data).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no temporary file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The crash.
    let dir = s.crash();
    upload.abort();
    let left = temp_files(dir.path());
    assert_eq!(left.len(), 1, "the crash leaves its temporary file");
    // A dead writer's file goes once it has sat untouched a while (a writer
    // in another PID namespace is invisible but keeps touching its file):
    // the restart comes an hour later.
    let f = std::fs::File::options()
        .write(true)
        .open(&left[0])
        .expect("open");
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .expect("mtime");
    drop(f);

    let s = Server::start_in(dir, &[]).await;
    let start = Instant::now();
    while !temp_files(s.dir.path()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the orphan is still there: {:?}",
            temp_files(s.dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The restarted server works on.
    let (_, key) = s.admin("payg");
    let r = s
        .upload(&key, "retrieval", "a.txt", b"after".to_vec())
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{:?}", r.body);
}
