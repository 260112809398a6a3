//! The file API (spec §10) over HTTP: uploads checked by content, listing,
//! signed download links, raw content, deletion; files sealed on disk and
//! private to their account.

use serde_json::{json, Value};

use crate::helpers::Server;

fn file_of(body: &Value) -> &Value {
    assert_eq!(body["base_resp"]["status_code"], 0, "{body}");
    &body["file"]
}

fn assert_native_error(body: &Value, code: i64, mentions: &str) {
    assert_eq!(body["base_resp"]["status_code"], code, "{body}");
    let msg = body["base_resp"]["status_msg"].as_str().unwrap_or("");
    assert!(
        msg.contains(mentions),
        "'{msg}' should mention '{mentions}'"
    );
}

/// Every file under `dir`, recursively.
fn all_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        let ft = e.file_type().expect("type");
        if ft.is_symlink() {
            continue;
        }
        if ft.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn files_upload_list_download_and_delete_sealed_and_private() {
    let s = Server::start().await;
    let (_, key) = s.admin("payg");
    let (_, other) = s.admin("payg");

    // A text for async speech, with a phrase to look for on disk.
    let secret = "The walrus keeps its plans in a silver teapot.";
    let text = format!("{secret}\n{}", "Another line of plain text.\n".repeat(5000));
    let up = s
        .upload(
            &key,
            "t2a_async_input",
            "../notes.txt",
            text.clone().into_bytes(),
        )
        .await;
    assert_eq!(up.status, 200);
    let f = file_of(&up.body).clone();
    let id = f["file_id"].as_i64().expect("integer file_id");
    assert!(id > 0 && id < (1 << 53));
    assert_eq!(f["bytes"], text.len());
    assert_eq!(f["filename"], "notes.txt", "paths are dropped from names");
    assert_eq!(f["purpose"], "t2a_async_input");
    assert!(f["created_at"].as_i64().expect("created_at") > 1_700_000_000);

    // Nothing under the data dir holds the text: the blob is sealed.
    let needle = secret.as_bytes();
    for path in all_files(s.dir.path()) {
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} holds the uploaded text in the clear",
            path.display()
        );
    }

    // Listing, by purpose.
    let list = s.get("/v1/files/list?purpose=t2a_async_input", &key).await;
    assert_eq!(list.body["files"].as_array().expect("files").len(), 1);
    assert_eq!(list.body["files"][0]["file_id"], id);
    let none = s.get("/v1/files/list?purpose=voice_clone", &key).await;
    assert_eq!(none.body["files"], json!([]));

    // Raw content and the signed link give the same bytes.
    let (status, bytes) = s
        .get_bytes(
            &s.url(&format!("/v1/files/retrieve_content?file_id={id}")),
            Some(&key),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(bytes, text.as_bytes());
    let r = s
        .get(&format!("/v1/files/retrieve?file_id={id}"), &key)
        .await;
    let link = file_of(&r.body)["download_url"]
        .as_str()
        .expect("download_url")
        .to_owned();
    assert!(link.starts_with(&s.base), "{link}");
    let (status, bytes) = s.get_bytes(&link, None).await;
    assert_eq!(status, 200, "a link works without a key");
    assert_eq!(bytes, text.as_bytes());
    // A changed link does not.
    let forged = link.replace(
        &format!("/download/{id}?"),
        &format!("/download/{}?", id + 1),
    );
    let (status, body) = s.get_bytes(&forged, None).await;
    assert_eq!(status, 200, "native errors are HTTP 200");
    let body: Value = serde_json::from_slice(&body).expect("json error");
    assert_ne!(body["base_resp"]["status_code"], 0, "{body}");
    // The signature's last character changed (to one it is not).
    let last = if link.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &link[..link.len() - 1]);
    let (_, body) = s.get_bytes(&tampered, None).await;
    let body: Value = serde_json::from_slice(&body).expect("json error");
    assert_ne!(body["base_resp"]["status_code"], 0, "{body}");

    // Another account sees nothing.
    let r = s
        .get(&format!("/v1/files/retrieve?file_id={id}"), &other)
        .await;
    assert_native_error(&r.body, 2013, &id.to_string());
    let r = s
        .get("/v1/files/list?purpose=t2a_async_input", &other)
        .await;
    assert_eq!(r.body["files"], json!([]));
    let r = s
        .post(
            "/v1/files/delete",
            &other,
            json!({"file_id": id, "purpose": "t2a_async_input"}),
        )
        .await;
    assert_native_error(&r.body, 2013, &id.to_string());

    // Content decides: a text is no voice clip, noise is no text.
    let r = s
        .upload(&key, "voice_clone", "clip.wav", b"just words".to_vec())
        .await;
    assert_native_error(&r.body, 2013, "voice_clone files must be");
    let r = s
        .upload(
            &key,
            "t2a_async_input",
            "a.txt",
            vec![0u8, 159, 146, 150, 1, 2, 3],
        )
        .await;
    assert_native_error(&r.body, 2013, "file");
    let r = s.upload(&key, "nonsense", "a.txt", b"hello".to_vec()).await;
    assert_native_error(&r.body, 2013, "purpose");

    // Delete (the id may come as a string), then it is gone.
    let r = s
        .post(
            "/v1/files/delete",
            &key,
            json!({"file_id": id.to_string(), "purpose": "t2a_async_input"}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{:?}", r.body);
    assert_eq!(r.body["file_id"], id);
    let r = s
        .get(&format!("/v1/files/retrieve?file_id={id}"), &key)
        .await;
    assert_native_error(&r.body, 2013, &id.to_string());
    let (_, body) = s.get_bytes(&link, None).await;
    let body: Value = serde_json::from_slice(&body).expect("json error");
    assert_ne!(
        body["base_resp"]["status_code"], 0,
        "a deleted file's link is dead"
    );
}

#[tokio::test]
async fn files_survive_a_master_key_rotation() {
    let s = Server::start().await;
    let (_, key) = s.admin("payg");
    let up = s
        .upload(
            &key,
            "t2a_async_input",
            "a.txt",
            b"Rotate me, please.".to_vec(),
        )
        .await;
    let id = file_of(&up.body)["file_id"].as_i64().expect("id");
    let out = s.cli(&["files", "rotate-key"]).expect("rotate");
    assert_eq!(out["files_rewrapped"], 1, "{out}");
    let path = s.dir.path().join("master.key");
    let keys = std::fs::read_to_string(&path).expect("key file");
    let lines: Vec<&str> = keys.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 2);
    // Only the new key is left: the file opens because its key was rewrapped.
    std::fs::write(&path, format!("{}\n", lines[1])).expect("drop the old key");
    let s = s.restart("", &[]).await;
    let (status, bytes) = s
        .get_bytes(
            &s.url(&format!("/v1/files/retrieve_content?file_id={id}")),
            Some(&key),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(bytes, b"Rotate me, please.");
}
