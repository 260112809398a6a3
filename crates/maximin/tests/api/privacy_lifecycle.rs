//! An account over its whole life (issue 16): the privacy dashboard's
//! categories, export and deletion, debug logging, support tickets,
//! closure, and the retention sweeper on the moved clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::helpers::{Resp, Server};

/// `GET /v1/account/privacy/categories` by name.
async fn categories(s: &Server, key: &str) -> BTreeMap<String, Value> {
    let r = s.get("/v1/account/privacy/categories", key).await;
    r.assert_ok(200)
        .as_array()
        .expect("categories")
        .iter()
        .map(|c| (c["category"].as_str().expect("name").to_owned(), c.clone()))
        .collect()
}

fn count(cats: &BTreeMap<String, Value>, name: &str) -> u64 {
    cats[name]["count"].as_u64().expect("count")
}

fn oldest(cats: &BTreeMap<String, Value>, name: &str) -> Option<OffsetDateTime> {
    cats[name]["oldest"]
        .as_str()
        .map(|t| OffsetDateTime::parse(t, &Rfc3339).expect("RFC 3339"))
}

/// Queues an export and waits for it; returns its final view.
async fn export(s: &Server, key: &str, include_files: bool) -> Value {
    let r = s
        .post(
            "/v1/account/privacy/export",
            key,
            json!({"include_files": include_files}),
        )
        .await;
    let queued = r.assert_ok(202).clone();
    let id = queued["task_id"].as_str().expect("task_id").to_owned();
    let start = Instant::now();
    loop {
        let r = s
            .get(&format!("/v1/account/privacy/export/{id}"), key)
            .await;
        let v = r.assert_ok(200).clone();
        match v["status"].as_str() {
            Some("success") => return v,
            Some("failed") => panic!("export failed: {v}"),
            _ if start.elapsed() > Duration::from_secs(60) => panic!("export still {v}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Every file under `dir` (links not followed).
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let ft = e.file_type().expect("type");
        if ft.is_symlink() {
            continue;
        }
        if ft.is_dir() {
            out.extend(all_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// The sealed blobs of the file store.
fn blobs(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "mxf") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.join("files"), &mut out);
    out
}

fn file_id(up: &Resp) -> i64 {
    assert_eq!(up.body["base_resp"]["status_code"], 0, "{:?}", up.body);
    up.body["file"]["file_id"].as_i64().expect("file_id")
}

async fn open_ticket(s: &Server, key: &str, subject: &str, message: &str) -> Value {
    s.post(
        "/v1/account/support",
        key,
        json!({"subject": subject, "message": message}),
    )
    .await
    .assert_ok(201)
    .clone()
}

fn actions(log: &Value) -> Vec<String> {
    log.as_array()
        .expect("log")
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_owned())
        .collect()
}

/// Every category `categories` lists is in the export with the same count
/// (the export's own task record and the two dashboard requests it may
/// see being the only differences, each accounted for); nothing of a
/// second account is in it. With files, the zip carries their bytes.
#[tokio::test]
async fn the_export_holds_every_category_listed_with_its_count_and_nothing_of_another_account() {
    let s = Server::start().await;
    let (a, admin) = s.admin("payg");
    let (b, other) = s.admin("payg");
    // Records of every kind this server (no models) makes, for both.
    let a_file = file_id(
        &s.upload(
            &admin,
            "retrieval",
            "notes.txt",
            b"notes of account A".to_vec(),
        )
        .await,
    );
    let b_file = file_id(
        &s.upload(
            &other,
            "retrieval",
            "theirs.txt",
            b"notes of account B".to_vec(),
        )
        .await,
    );
    let a_ticket = open_ticket(&s, &admin, "Invoice question", "Why two lines?").await;
    let b_ticket = open_ticket(&s, &other, "Their subject", "Their message").await;
    s.post(
        &format!(
            "/v1/account/support/{}/messages",
            a_ticket["id"].as_str().expect("id")
        ),
        &admin,
        json!({"message": "A follow-up."}),
    )
    .await
    .assert_ok(200);
    for key in [&admin, &other] {
        s.post(
            "/v1/account/privacy/debug-logging",
            key,
            json!({"enabled": true, "duration_hours": 2}),
        )
        .await
        .assert_ok(200);
        // Kept while debug logging is on (this server has no models: a 503).
        s.post(
            "/v1/chat/completions",
            key,
            json!({"model": "minimax-chat-v2", "messages": [{"role": "user", "content": "hello"}]}),
        )
        .await;
    }
    s.key(&a, &[]);
    let listed = categories(&s, &admin).await;
    let names: Vec<&str> = listed.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "billing_records",
            "debug_logs",
            "files",
            "fine_tunes",
            "keys",
            "members",
            "privacy_log",
            "profile",
            "support_messages",
            "task_records",
            "usage_logs",
            "voices"
        ]
    );
    assert_eq!(count(&listed, "files"), 1);
    assert_eq!(listed["files"]["bytes"], 18);
    assert_eq!(count(&listed, "support_messages"), 2);
    assert_eq!(count(&listed, "keys"), 2);
    assert_eq!(count(&listed, "profile"), 1);
    assert_eq!(
        count(&listed, "debug_logs"),
        1,
        "the chat request: {listed:?}"
    );
    assert!(count(&listed, "billing_records") >= 1, "starting credits");
    assert_eq!(listed["billing_records"]["legally_required"], true);
    assert_eq!(listed["billing_records"]["deletable"], false);
    assert_eq!(listed["usage_logs"]["retention"], "12 months.");
    assert!(oldest(&listed, "profile").is_some());

    let done = export(&s, &admin, false).await;
    assert_eq!(done["format"], "json");
    assert_eq!(done["progress"], 100);
    let link = done["download_url"].as_str().expect("signed link");
    let (status, bytes) = s.get_bytes(link, None).await;
    assert_eq!(status, 200, "the signed link needs no key");
    let doc: Value = serde_json::from_slice(&bytes).expect("one JSON document");
    assert_eq!(doc["account_id"], a.as_str());
    let cats = doc["categories"].as_object().expect("categories");
    let mut exported: Vec<&String> = cats.keys().collect();
    exported.sort();
    assert_eq!(
        exported,
        listed.keys().collect::<Vec<_>>(),
        "the same categories"
    );
    for (name, c) in cats {
        let records = c["records"].as_array().expect("records");
        assert_eq!(c["count"], records.len(), "{name}");
        let mut want = count(&listed, name);
        match name.as_str() {
            // The export's own task, running while it is written.
            "task_records" => want += 1,
            // The dashboard's own requests since the list (the list itself,
            // the export and its polls) are metered and, debug logging
            // being on, kept; every other record is as listed.
            "usage_logs" | "debug_logs" => {
                let ours = [
                    "/v1/account/privacy/categories",
                    "/v1/account/privacy/export",
                    "/v1/account/privacy/export/{task_id}",
                ];
                let others = records
                    .iter()
                    .filter(|r| !ours.iter().any(|o| r["endpoint"] == *o))
                    .count() as u64;
                assert_eq!(others, count(&listed, name), "{name}: {records:?}");
                want = records.len() as u64;
            }
            // Exporting is logged when it is asked for.
            "privacy_log" => want += 1,
            _ => {}
        }
        assert_eq!(records.len() as u64, want, "{name}: {c}");
    }
    // The content it holds is the account's own, opened for its owner.
    let text = doc.to_string();
    assert!(text.contains("Why two lines?") && text.contains("Invoice question"));
    assert!(
        text.contains("hello"),
        "debug logs opened: {}",
        cats["debug_logs"]
    );
    assert!(text.contains(&a_file.to_string()));
    // Nothing of the other account.
    for theirs in [
        b.as_str(),
        &b_file.to_string(),
        b_ticket["id"].as_str().expect("id"),
        "Their message",
        "Their subject",
    ] {
        assert!(!text.contains(theirs), "{theirs} in A's export");
    }
    assert!(!text.contains(admin.as_str()), "no key secret");

    // With files: a zip of export.json and every file's bytes.
    let done = export(&s, &admin, true).await;
    assert_eq!(done["format"], "zip");
    let (status, bytes) = s
        .get_bytes(done["download_url"].as_str().expect("link"), None)
        .await;
    assert_eq!(status, 200);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    let doc: Value =
        serde_json::from_reader(zip.by_name("export.json").expect("export.json")).expect("JSON");
    let files = doc["categories"]["files"]["records"]
        .as_array()
        .expect("files");
    // The first export's file is one of them now.
    assert_eq!(files.len(), 2, "{files:?}");
    let notes = files
        .iter()
        .find(|f| f["filename"] == "notes.txt")
        .expect("notes.txt");
    let mut content = String::new();
    std::io::Read::read_to_string(
        &mut zip
            .by_name(notes["path"].as_str().expect("path"))
            .expect("the file in the zip"),
        &mut content,
    )
    .expect("read");
    assert_eq!(content, "notes of account A");

    // The CLI writes the same document to a file only its owner reads.
    let path = s.dir.path().join("cli-export.json");
    let cli = s
        .cli(&[
            "privacy",
            "export",
            "--account",
            &a,
            "--out",
            path.to_str().expect("utf-8 path"),
        ])
        .expect("privacy export");
    assert_eq!(cli["format"], "json");
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).expect("written")).expect("JSON");
    assert_eq!(doc["account_id"], a.as_str());
    // notes.txt and the two exports' files.
    assert_eq!(doc["categories"]["files"]["count"], 3);
    assert_eq!(cli["counts"]["files"], 3);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Another account cannot see this export.
    let id = done["task_id"].as_str().expect("id");
    s.get(&format!("/v1/account/privacy/export/{id}"), &other)
        .await
        .assert_error(404, "not_found");
    let log = s.get("/v1/account/privacy/log", &admin).await;
    let acts = actions(log.assert_ok(200));
    for a in ["debug_logging_on", "export_requested", "data_exported"] {
        assert!(acts.iter().any(|x| x == a), "{a} in {acts:?}");
    }
}

/// Deleting what is not legally required removes it (files from disk too);
/// billing records are refused with the reason, and then nothing goes.
#[tokio::test]
async fn deletion_removes_what_the_law_does_not_keep_and_refuses_billing_records() {
    let s = Server::start().await;
    let (_, admin) = s.admin("payg");
    let (_, other) = s.admin("payg");
    file_id(
        &s.upload(&admin, "retrieval", "a.txt", b"to be deleted".to_vec())
            .await,
    );
    file_id(
        &s.upload(&other, "retrieval", "b.txt", b"to be kept".to_vec())
            .await,
    );
    assert_eq!(blobs(s.dir.path()).len(), 2);

    let r = s
        .post(
            "/v1/account/privacy/delete",
            &admin,
            json!({"categories": ["files", "billing_records"]}),
        )
        .await;
    r.assert_error(403, "permission_denied");
    assert_eq!(r.detail("category"), "billing_records");
    assert_eq!(r.detail("legally_required"), true);
    assert!(r.body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("7 years"));
    assert_eq!(blobs(s.dir.path()).len(), 2, "nothing deleted");
    s.post(
        "/v1/account/privacy/delete",
        &admin,
        json!({"categories": ["nonsense"]}),
    )
    .await
    .assert_error(400, "invalid_request");
    s.post(
        "/v1/account/privacy/delete",
        &admin,
        json!({"categories": []}),
    )
    .await
    .assert_error(400, "invalid_request");

    let before = categories(&s, &admin).await;
    assert!(count(&before, "usage_logs") > 0);
    let r = s
        .post(
            "/v1/account/privacy/delete",
            &admin,
            json!({"categories": ["files", "usage_logs", "voices", "debug_logs", "task_records"]}),
        )
        .await;
    let d = r.assert_ok(200);
    assert_eq!(d["deleted"]["files"], 1);
    assert!(d["deleted"]["usage_logs"].as_u64().expect("n") >= count(&before, "usage_logs"));
    assert_eq!(
        blobs(s.dir.path()).len(),
        1,
        "the other account's file stays"
    );
    let after = categories(&s, &admin).await;
    assert_eq!(count(&after, "files"), 0);
    assert!(
        count(&after, "usage_logs") <= 2,
        "only requests since: {after:?}"
    );
    assert_eq!(
        count(&after, "billing_records"),
        count(&before, "billing_records")
    );
    let theirs = categories(&s, &other).await;
    assert_eq!(count(&theirs, "files"), 1);
    // The CLI does the same, and the log says what went.
    let (a, _) = s.admin("payg");
    let cli = s
        .cli(&[
            "privacy",
            "delete",
            "--account",
            &a,
            "--categories",
            "usage_logs,files",
        ])
        .expect("privacy delete");
    assert_eq!(cli["deleted"]["files"], 0);
    let log = s.get("/v1/account/privacy/log", &admin).await;
    let log = log.assert_ok(200).clone();
    let del = log
        .as_array()
        .expect("log")
        .iter()
        .find(|e| e["action"] == "data_deleted")
        .expect("data_deleted");
    assert_eq!(del["detail"]["deleted"]["files"], 1);
}

/// Debug logging: at most 7 days; only while on are bodies kept, sealed
/// (never in the clear on disk), and they are gone when the window ends.
#[tokio::test]
async fn debug_logging_keeps_bodies_sealed_only_inside_its_window() {
    let s = Server::start().await;
    let (account, admin) = s.admin("payg");
    let chat = |text: &str| json!({"model": "minimax-chat-v2", "messages": [{"role": "user", "content": text}]});
    let before = format!("CANARY-before-{}", crate::helpers::rand_suffix());
    let during = format!("CANARY-during-{}", crate::helpers::rand_suffix());
    s.post("/v1/chat/completions", &admin, chat(&before)).await;
    let r = s
        .post(
            "/v1/account/privacy/debug-logging",
            &admin,
            json!({"enabled": true, "duration_hours": 169}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "duration_hours");
    s.post(
        "/v1/account/privacy/debug-logging",
        &admin,
        json!({"enabled": true}),
    )
    .await
    .assert_error(400, "invalid_request");
    let on = s
        .post(
            "/v1/account/privacy/debug-logging",
            &admin,
            json!({"enabled": true, "duration_hours": 1}),
        )
        .await;
    let on = on.assert_ok(200).clone();
    assert_eq!(on["enabled"], true);
    assert!(on["until"].is_string());
    s.post("/v1/chat/completions", &admin, chat(&during)).await;
    let state = s.get("/v1/account/privacy/debug-logging", &admin).await;
    let n = state.assert_ok(200)["entries"].as_u64().expect("entries");
    assert_eq!(n, 1, "the chat (this read is kept after it answers)");
    // Kept for its owner (the export opens them) ...
    let done = export(&s, &admin, false).await;
    let (_, bytes) = s
        .get_bytes(done["download_url"].as_str().expect("link"), None)
        .await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains(&during), "the body kept");
    assert!(!text.contains(&before), "nothing from before the window");
    // ... but sealed: nowhere on disk in the clear.
    let out = s.output();
    assert!(
        !out.contains(&during) && !out.contains(&before),
        "not in the log"
    );
    for f in all_files(s.dir.path()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains(&during),
            "{} holds it in the clear",
            f.display()
        );
    }
    // The window ends (the clock moves 2 hours): swept, and off.
    let s = s
        .restart("", &[("MAXIMIN_CLOCK_OFFSET", &(2 * 3600).to_string())])
        .await;
    let state = s.get("/v1/account/privacy/debug-logging", &admin).await;
    let state = state.assert_ok(200).clone();
    assert_eq!(state["enabled"], false);
    assert_eq!(state["entries"], 0);
    // On and off again: off deletes at once; both are in the log.
    s.post(
        "/v1/account/privacy/debug-logging",
        &admin,
        json!({"enabled": true, "duration_hours": 168}),
    )
    .await
    .assert_ok(200);
    s.post("/v1/chat/completions", &admin, chat(&during)).await;
    let off = s
        .post(
            "/v1/account/privacy/debug-logging",
            &admin,
            json!({"enabled": false}),
        )
        .await;
    let off = off.assert_ok(200).clone();
    assert_eq!(off["enabled"], false);
    assert_eq!(off["entries"], 0);
    let log = s
        .cli(&["privacy", "log", "--account", &account])
        .expect("log");
    let acts = actions(&log);
    assert_eq!(
        acts.iter().filter(|a| *a == "debug_logging_on").count(),
        2,
        "{acts:?}"
    );
    assert!(acts.iter().any(|a| a == "debug_logging_off"));
}

/// Support tickets: open, list, reply (both sides), close; a closed
/// ticket takes no reply; another account's is not found.
#[tokio::test]
async fn support_tickets_open_list_reply_and_close() {
    let s = Server::start().await;
    let (_, admin) = s.admin("payg");
    let (_, other) = s.admin("payg");
    s.post(
        "/v1/account/support",
        &admin,
        json!({"subject": " ", "message": "x"}),
    )
    .await
    .assert_error(400, "invalid_request");
    s.post("/v1/account/support", &admin, json!({"subject": "x"}))
        .await
        .assert_error(400, "invalid_request");
    let t = open_ticket(
        &s,
        &admin,
        "Speech sounds robotic",
        "Voice male-qn-qingse clips.",
    )
    .await;
    let id = t["id"].as_str().expect("id").to_owned();
    assert_eq!(t["status"], "open");
    assert_eq!(t["messages"][0]["author"], "customer");
    let list = s.get("/v1/account/support", &admin).await;
    let list = list.assert_ok(200).clone();
    assert_eq!(list.as_array().expect("list").len(), 1);
    assert_eq!(list[0]["subject"], "Speech sounds robotic");
    assert!(list[0].get("messages").is_none());
    s.post(
        &format!("/v1/account/support/{id}/messages"),
        &admin,
        json!({"message": "It happens at speed 2."}),
    )
    .await
    .assert_ok(200);
    let op = s
        .cli(&[
            "support",
            "reply",
            "--ticket",
            &id,
            "--message",
            "Fixed in 1.2.",
        ])
        .expect("operator reply");
    assert_eq!(op["messages"][2]["author"], "operator");
    s.get(&format!("/v1/account/support/{id}"), &other)
        .await
        .assert_error(404, "not_found");
    let closed = s
        .post(
            &format!("/v1/account/support/{id}/close"),
            &admin,
            json!({}),
        )
        .await;
    let closed = closed.assert_ok(200).clone();
    assert_eq!(closed["status"], "closed");
    assert!(closed["closed_at"].is_string());
    assert_eq!(closed["messages"].as_array().expect("messages").len(), 3);
    s.post(
        &format!("/v1/account/support/{id}/messages"),
        &admin,
        json!({"message": "One more thing."}),
    )
    .await
    .assert_error(400, "invalid_request");
    // Sealed at rest: the subject is not in the database in the clear.
    let db = crate::backend::stored_bytes(s.dir.path());
    assert!(!String::from_utf8_lossy(&db).contains("Speech sounds robotic"));
}

/// Counts rows of a table for an account, straight from the database.
async fn rows(dir: &Path, table: &str, account: &str) -> i64 {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let url = crate::backend::database_url(dir);
    let pool = sqlx::AnyPool::connect(&url).await.expect("open db");
    let n: i64 = sqlx::query(&format!(
        "SELECT COUNT(*) FROM {table} WHERE account_id = $1"
    ))
    .bind(account)
    .fetch_one(&pool)
    .await
    .expect("count")
    .get(0);
    pool.close().await;
    n
}

/// Closure: every key refused at once, files gone from disk; 90 days later
/// the profile is gone too, and the billing records stay.
#[tokio::test]
async fn closing_refuses_every_key_deletes_files_and_purges_the_profile_90_days_later() {
    let s = Server::start().await;
    let (account, admin) = s.admin("payg");
    let (_, plain) = s.key(&account, &[]);
    let (_, other) = s.admin("payg");
    file_id(
        &s.upload(&admin, "retrieval", "mine.txt", b"mine".to_vec())
            .await,
    );
    file_id(
        &s.upload(&other, "retrieval", "theirs.txt", b"theirs".to_vec())
            .await,
    );
    assert_eq!(blobs(s.dir.path()).len(), 2);

    let r = s.post("/v1/account/close", &admin, json!({})).await;
    let c = r.assert_ok(200).clone();
    assert_eq!(c["keys_revoked"], 2);
    assert_eq!(c["files_deleted"], 1);
    assert!(c["purge_at"].is_string());
    for key in [&admin, &plain] {
        let r = s.get("/v1/models", key).await;
        r.assert_error(401, "authentication_failed");
        assert_eq!(r.detail("reason"), "account_closed");
    }
    assert_eq!(blobs(s.dir.path()).len(), 1, "the blob is gone from disk");
    s.get("/v1/models", &other).await.assert_ok(200);
    // The CLI closes an account the same way.
    let (third, third_key) = s.admin("free");
    let closed = s
        .cli(&["privacy", "close", "--account", &third])
        .expect("privacy close");
    assert_eq!(closed["keys_revoked"], 1);
    s.get("/v1/models", &third_key)
        .await
        .assert_error(401, "authentication_failed");
    let err = s
        .cli(&["keys", "create", "--account", &account, "--name", "again"])
        .expect_err("no new keys");
    assert_eq!(err["error"]["code"], "invalid_request");
    let log = s
        .cli(&["privacy", "log", "--account", &account])
        .expect("log");
    assert!(actions(&log).iter().any(|a| a == "account_closed"));
    let ledger = rows(s.dir.path(), "credit_ledger", &account).await;
    assert!(ledger >= 1);

    // 89 days on: still held.
    let s = s
        .restart("", &[("MAXIMIN_CLOCK_OFFSET", &(89 * 86_400).to_string())])
        .await;
    let cats = s
        .cli(&["privacy", "categories", "--account", &account])
        .expect("still held");
    assert_eq!(cats[0]["category"], "profile");
    assert_eq!(cats[0]["count"], 1);
    // 91 days on: the profile, keys and log are gone; billing records stay.
    let s = s
        .restart("", &[("MAXIMIN_CLOCK_OFFSET", &(91 * 86_400).to_string())])
        .await;
    let gone = s
        .cli(&["privacy", "categories", "--account", &account])
        .expect_err("purged");
    assert_eq!(gone["error"]["code"], "not_found");
    assert_eq!(rows(s.dir.path(), "api_keys", &account).await, 0);
    assert_eq!(rows(s.dir.path(), "privacy_log", &account).await, 0);
    assert_eq!(rows(s.dir.path(), "usage_events", &account).await, 0);
    assert_eq!(rows(s.dir.path(), "credit_ledger", &account).await, ledger);
    s.get("/v1/models", &other).await.assert_ok(200);
}

const DAY: i64 = 86_400;

/// The sweeper on seed 001's schedule, on the moved clock: one record of
/// every kind, the clock moved past each boundary in turn; a day before
/// each nothing goes, a day after exactly its records are gone. (Unused
/// voices, 7 days, are covered by `speech_voices`.)
#[tokio::test]
async fn the_retention_sweeper_removes_each_record_at_its_boundary_and_not_a_day_before() {
    let mut s = Server::start().await;
    let (account, admin) = s.admin("payg");
    let (_, keeper) = s.key(&account, &["--scope", "admin"]);
    let t0 = OffsetDateTime::now_utc();
    // Debug logs: a window of 1 day.
    s.post(
        "/v1/account/privacy/debug-logging",
        &admin,
        json!({"enabled": true, "duration_hours": 24}),
    )
    .await
    .assert_ok(200);
    s.post(
        "/v1/chat/completions",
        &admin,
        json!({"model": "minimax-chat-v2", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    // A task record and its output file (7 days).
    export(&s, &admin, false).await;
    // A support ticket closed now (2 years).
    let t = open_ticket(&s, &admin, "subject", "message").await;
    s.post(
        &format!(
            "/v1/account/support/{}/close",
            t["id"].as_str().expect("id")
        ),
        &admin,
        json!({}),
    )
    .await
    .assert_ok(200);
    let start = categories(&s, &keeper).await;
    assert!(count(&start, "debug_logs") >= 1);
    assert_eq!(count(&start, "files"), 1);
    assert_eq!(count(&start, "task_records"), 1);
    assert_eq!(count(&start, "support_messages"), 1);
    let ledger = rows(s.dir.path(), "credit_ledger", &account).await;
    assert_eq!(ledger, 1, "the starting credits");

    // Each boundary: (seconds, what must hold after a restart there).
    let at = |days: i64, hours: i64| days * DAY + hours * 3600;
    let steps: Vec<(i64, &str)> = vec![
        (at(0, 23), "debug kept"),
        (at(1, 1), "debug gone"),
        (at(6, 0), "file kept"),
        (at(8, 0), "file gone"),
        (at(364, 0), "usage kept"),
        (at(366, 0), "usage gone"),
        (at(729, 0), "support kept"),
        (at(731, 0), "support gone"),
        (at(7 * 365 + 1, 0), "ledger kept"),
        (at(7 * 365 + 3, 0), "ledger gone"),
    ];
    for (offset, expect) in steps {
        s = s
            .restart("", &[("MAXIMIN_CLOCK_OFFSET", &offset.to_string())])
            .await;
        let c = categories(&s, &keeper).await;
        match expect {
            "debug kept" => assert!(count(&c, "debug_logs") >= 1, "{offset}: {c:?}"),
            "debug gone" => {
                assert_eq!(count(&c, "debug_logs"), 0, "{offset}");
                assert_eq!(count(&c, "files"), 1, "{offset}: the rest intact");
            }
            "file kept" => assert_eq!(count(&c, "files"), 1, "{offset}"),
            "file gone" => {
                assert_eq!(count(&c, "files"), 0, "{offset}");
                assert_eq!(count(&c, "task_records"), 1, "{offset}: its task stays");
            }
            "usage kept" => {
                let first = oldest(&c, "usage_logs").expect("usage logs");
                assert!(
                    first < t0 + time::Duration::hours(1),
                    "{offset}: t0's requests stay"
                );
                assert_eq!(count(&c, "task_records"), 1, "{offset}");
            }
            "usage gone" => {
                let first = oldest(&c, "usage_logs").expect("usage logs");
                assert!(
                    first > t0 + time::Duration::hours(1),
                    "{offset}: t0's requests are gone"
                );
                assert_eq!(
                    count(&c, "task_records"),
                    0,
                    "{offset}: so is the ended task"
                );
                assert_eq!(count(&c, "support_messages"), 1, "{offset}");
            }
            "support kept" => assert_eq!(count(&c, "support_messages"), 1, "{offset}"),
            "support gone" => {
                assert_eq!(count(&c, "support_messages"), 0, "{offset}");
                assert_eq!(rows(s.dir.path(), "credit_ledger", &account).await, 1);
            }
            "ledger kept" => {
                assert_eq!(rows(s.dir.path(), "credit_ledger", &account).await, 1)
            }
            "ledger gone" => {
                assert_eq!(rows(s.dir.path(), "credit_ledger", &account).await, 0);
                assert_eq!(count(&c, "profile"), 1, "the open account stays");
                assert_eq!(count(&c, "keys"), 2);
            }
            _ => unreachable!(),
        }
    }
    // Every sweep is logged as counts only.
    let out = s.stop();
    let sweep = out
        .lines()
        .find(|l| l.contains("retention sweep"))
        .expect("a sweep line");
    assert!(
        sweep.contains("usage=") && !sweep.contains("message"),
        "{sweep}"
    );
}

/// A streamed answer is kept as it passed (the model's events), written
/// when the stream ends.
#[tokio::test]
async fn debug_logging_keeps_a_streamed_answer_as_it_passed() {
    let s = Server::with_models("").await;
    let (_, admin) = s.admin("payg");
    s.post(
        "/v1/account/privacy/debug-logging",
        &admin,
        json!({"enabled": true, "duration_hours": 1}),
    )
    .await
    .assert_ok(200);
    let r = s
        .http
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(&admin)
        .json(
            &json!({"model": "minimax-chat-v2", "stream": true, "max_tokens": 8,
                      "messages": [{"role": "user", "content": "Say hi."}]}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let streamed = r.text().await.expect("stream");
    assert!(streamed.contains("[DONE]"), "{streamed}");
    // Written from the stream's end, off the request path.
    let start = Instant::now();
    let entry = loop {
        let done = export(&s, &admin, false).await;
        let (_, bytes) = s
            .get_bytes(done["download_url"].as_str().expect("link"), None)
            .await;
        let doc: Value = serde_json::from_slice(&bytes).expect("JSON");
        let found = doc["categories"]["debug_logs"]["records"]
            .as_array()
            .expect("records")
            .iter()
            .find(|e| e["endpoint"] == "/v1/chat/completions")
            .cloned();
        match found {
            Some(e) => break e,
            None if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            None => panic!("no debug entry for the stream: {doc}"),
        }
    };
    assert!(entry["request"]["text"]
        .as_str()
        .expect("request text")
        .contains("Say hi."));
    let response = &entry["response"];
    assert!(response["content_type"]
        .as_str()
        .expect("type")
        .starts_with("text/event-stream"));
    assert_eq!(
        response["text"],
        streamed.as_str(),
        "the stream as it passed"
    );
    assert_eq!(response["bytes"], streamed.len());
}

/// Fine-tunes are a category of their own: a job and the model it made
/// are counted and exported (the job's fields and events, the adapter
/// named as a derived file, never its bytes nor the examples), and
/// deleting the category takes the model, its adapter and the job, and
/// leaves the training file.
#[tokio::test]
async fn a_fine_tune_is_listed_exported_and_deleted_as_its_own_category() {
    use crate::fine_tunes::{code_word_jsonl, upload, wait_for, CONFIG};
    let s = Server::with_models(CONFIG).await;
    let (_, key) = s.admin("payg");
    let (_, other) = s.admin("payg");
    let file = upload(&s, &key, code_word_jsonl()).await;
    let r = s
        .post(
            "/v1/fine-tunes",
            &key,
            json!({"model": "gemma-3-270m", "training_file": file, "suffix": "privacy",
                   "hyperparameters": {"n_epochs": 1, "batch_size": 6}}),
        )
        .await;
    let id = r.assert_ok(202)["id"].as_str().expect("id").to_owned();
    let done = wait_for(&s, &key, &id, Duration::from_secs(300), |j| {
        ["succeeded", "failed", "cancelled"].contains(&j["status"].as_str().unwrap_or(""))
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let model = done["fine_tuned_model"].as_str().expect("model").to_owned();

    let listed = categories(&s, &key).await;
    let ft = &listed["fine_tunes"];
    assert_eq!(ft["count"], 2, "the job and its model: {ft}");
    assert!(ft["bytes"].as_u64().expect("bytes") > 0);
    assert!(oldest(&listed, "fine_tunes").is_some());
    assert_eq!(ft["deletable"], true);
    assert_eq!(ft["legally_required"], false);
    assert!(ft["retention"]
        .as_str()
        .is_some_and(|r| r.contains("deletes the model")));
    // The training file and the adapter; no checkpoint is left behind.
    assert_eq!(count(&listed, "files"), 2, "{:?}", listed["files"]);
    assert_eq!(count(&categories(&s, &other).await, "fine_tunes"), 0);

    let done = export(&s, &key, false).await;
    let (_, bytes) = s
        .get_bytes(done["download_url"].as_str().expect("link"), None)
        .await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(!text.contains("Zanzibrolt"), "no example in the export");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let records = doc["categories"]["fine_tunes"]["records"]
        .as_array()
        .expect("records")
        .clone();
    assert_eq!(records.len(), 2, "{records:?}");
    let job = records
        .iter()
        .find(|r| r["kind"] == "job")
        .expect("the job");
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["base_model"], "gemma-3-270m");
    assert_eq!(job["training_file"], file.to_string());
    assert_eq!(job["hyperparameters"]["n_epochs"], 1);
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["fine_tuned_model"], model.as_str());
    assert_eq!(job["adapter"]["derived"], true);
    assert!(job["adapter"]["note"]
        .as_str()
        .is_some_and(|n| n.contains("derived")));
    let events = job["events"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["data"]["train_loss"].is_number()),
        "{events:?}"
    );
    let m = records
        .iter()
        .find(|r| r["kind"] == "model")
        .expect("the model");
    assert_eq!(m["id"], model.as_str());
    assert_eq!(m["adapter"]["file_id"], job["adapter"]["file_id"]);

    let files_before = count(&categories(&s, &key).await, "files");
    let r = s
        .post(
            "/v1/account/privacy/delete",
            &key,
            json!({"categories": ["fine_tunes"]}),
        )
        .await;
    assert_eq!(r.assert_ok(200)["deleted"]["fine_tunes"], 2);
    let after = categories(&s, &key).await;
    assert_eq!(count(&after, "fine_tunes"), 0);
    assert_eq!(
        count(&after, "files"),
        files_before - 1,
        "the adapter went, the training file stayed"
    );
    s.get(&format!("/v1/files/{file}"), &key)
        .await
        .assert_ok(200);
    s.get(&format!("/v1/fine-tunes/{id}"), &key)
        .await
        .assert_error(404, "not_found");
    s.post(
        "/v1/chat/completions",
        &key,
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .assert_error(404, "model_not_found");
}
