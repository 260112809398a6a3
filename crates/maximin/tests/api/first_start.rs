//! A first start on an empty data dir: the default models fetched while the
//! server answers (`/readyz` 503 with what is fetching or missing, 200 once
//! they are in place), the owner's first key made once, `maximin doctor`,
//! and administration commands that start no engine.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{models_dir, Server, BIN};

const DEFAULTS: [&str; 4] = [
    "gemma-3-270m",
    "all-minilm-l6-v2",
    "onnxruntime",
    "speech-2.8-hd",
];

async fn readyz(s: &Server) -> (u16, Value) {
    let r = s.http.get(s.url("/readyz")).send().await.expect("readyz");
    let status = r.status().as_u16();
    (status, r.json().await.expect("readyz json"))
}

/// Polls `/readyz` until `done` holds for its answer (at most 60 s).
async fn readyz_until(s: &Server, done: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = readyz(s).await;
        if done(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "readyz stayed {status} {body}; log: {}",
            s.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn listed(body: &Value, list: &str) -> Vec<String> {
    body[list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["model"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A package index that accepts connections and never answers while
/// `hold` is alive, then refuses: a pull that hangs, then fails.
fn silent_index() -> (String, std::sync::mpsc::Sender<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/simple/", listener.local_addr().expect("addr"));
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        loop {
            if let Ok((sock, _)) = listener.accept() {
                held.push(sock);
            }
            if stopped.try_recv().is_ok() {
                return; // drops the sockets and the listener: refused from now on
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (url, stop)
}

#[tokio::test]
async fn readyz_says_what_is_fetching_then_what_is_missing_and_turns_ready_once_it_is_there() {
    let (index, stop) = silent_index();
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start_with_env(
        dir,
        &[],
        &[
            ("MAXIMIN_NO_PULL", "false"),
            ("MAXIMIN_PYPI_INDEX_URL", index.as_str()),
        ],
    )
    .await;
    // Liveness answers at once; readiness waits for the models.
    let r = s.http.get(s.url("/healthz")).send().await.expect("healthz");
    assert_eq!(r.status(), 200);
    let (status, body) = readyz(&s).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "fetching models", "{body}");
    assert_eq!(listed(&body, "fetching"), DEFAULTS, "{body}");

    // The index goes away: every pull fails, the server stays up and says
    // which models are missing and the command that fetches each.
    stop.send(()).expect("stop index");
    let (status, body) = readyz_until(&s, |_, b| b["status"] == "models missing").await;
    assert_eq!(status, 503);
    assert_eq!(listed(&body, "missing"), DEFAULTS, "{body}");
    for p in body["missing"].as_array().expect("missing") {
        let model = p["model"].as_str().expect("model");
        assert_eq!(p["command"], format!("maximin models pull {model}"));
        assert!(p["error"].as_str().is_some_and(|e| !e.is_empty()), "{p}");
    }
    let log = s.output();
    for model in DEFAULTS {
        assert!(
            log.contains(&format!("run `maximin models pull {model}`")),
            "the log names the command for {model}: {log}"
        );
    }
    // Nothing half-written under a final name.
    let models = s.dir.path().join("models");
    for model in DEFAULTS {
        assert!(!models.join(model).exists(), "{model} left behind");
    }

    // The operator puts the models in place by hand: ready without a
    // restart, and the neural voice the runtime brings speaks.
    for model in DEFAULTS {
        std::os::unix::fs::symlink(models_dir().join(model), models.join(model)).expect("link");
    }
    let (status, body) = readyz_until(&s, |status, _| status == 200).await;
    assert_eq!(body["status"], "ready", "{status} {body}");
    let (_, key) = s.admin("payg");
    let r = s
        .post(
            "/v1/t2a_v2",
            &key,
            json!({"model": "speech-2.8-hd", "text": "Ready now.",
                   "voice_setting": {"voice_id": "en_US-joe-medium"}}),
        )
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
}

#[tokio::test]
async fn a_start_with_the_models_in_place_is_ready_and_verifies_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    std::fs::create_dir(&models).expect("models dir");
    for model in DEFAULTS {
        std::os::unix::fs::symlink(models_dir().join(model), models.join(model)).expect("link");
    }
    // An index that cannot be reached: nothing may need fetching.
    let s = Server::start_with_env(
        dir,
        &[],
        &[
            ("MAXIMIN_NO_PULL", "false"),
            ("MAXIMIN_PYPI_INDEX_URL", "http://127.0.0.1:9/simple/"),
        ],
    )
    .await;
    let (_, body) = readyz_until(&s, |status, _| status == 200).await;
    assert_eq!(body["status"], "ready");
    let log = s.output();
    assert!(!log.contains("fetched"), "{log}");
    // Each one was checked: against its checksums, or by the stamp (size
    // and time) its last verification left (crates/maximin-models' tests).
    for model in DEFAULTS {
        assert!(
            log.lines()
                .any(|l| l.contains("present and verified") && l.contains(model)),
            "{model} not verified: {log}"
        );
    }
}

fn first_key_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("first-key"))
        .expect("first-key")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn the_first_start_makes_one_admin_key_and_shows_it_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start_with_env(dir, &[], &[("MAXIMIN_BOOTSTRAP", "on")]).await;
    let path = s.dir.path().join("first-key");
    let mode = std::fs::metadata(&path)
        .expect("first-key")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "first-key mode {mode:o}");
    let key = first_key_of(s.dir.path());
    assert!(key.starts_with("mmx_live_"), "{key}");
    // An admin key of the owner account: the account API and inference.
    let keys = s.get("/v1/account/keys", &key).await;
    assert_eq!(keys.status, 200, "{:?}", keys.body);
    let models = s.get("/v1/models", &key).await;
    assert_eq!(models.status, 200);
    let log = s.output();
    assert!(!log.contains(&key), "the secret is in the output: {log}");
    assert!(
        log.contains("first-key"),
        "the log says where the key is: {log}"
    );
    assert!(log.contains("/v1/chat/completions"), "a curl line: {log}");
    // Only the hash is stored.
    let db = crate::backend::stored_bytes(s.dir.path());
    assert!(!db.is_empty(), "the database");
    assert!(!db.windows(key.len()).any(|w| w == key.as_bytes()));

    // A second start: no new account, no new key, the file untouched.
    let before = std::fs::metadata(&path)
        .expect("meta")
        .modified()
        .expect("mtime");
    let s = s.restart("", &[("MAXIMIN_BOOTSTRAP", "on")]).await;
    let accounts = s.cli(&["accounts", "list"]).expect("list");
    assert_eq!(accounts.as_array().map(Vec::len), Some(1), "{accounts}");
    let after = std::fs::metadata(&path)
        .expect("meta")
        .modified()
        .expect("mtime");
    assert_eq!(before, after, "first-key rewritten");
    assert!(!s.output().contains("first start"), "{}", s.output());
    assert_eq!(s.get("/v1/models", &key).await.status, 200);
}

#[tokio::test]
async fn bootstrap_off_makes_no_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start_with_env(dir, &[], &[("MAXIMIN_BOOTSTRAP", "off")]).await;
    assert!(!s.dir.path().join("first-key").exists());
    let accounts = s.cli(&["accounts", "list"]).expect("list");
    assert_eq!(accounts, json!([]));
}

fn maximin(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("MAXIMIN_CONFIG")
        .env_remove("MAXIMIN_DATA_DIR")
        .env_remove("MAXIMIN_LISTEN")
        .env_remove("RUST_LOG")
        .output()
        .expect("run maximin")
}

#[test]
fn doctor_passes_on_a_complete_install_and_fails_when_a_model_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let models = data.join("models");
    std::fs::create_dir_all(&models).expect("models dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for model in DEFAULTS {
        std::os::unix::fs::symlink(models_dir().join(model), models.join(model)).expect("link");
    }
    let doctor = |data: &Path| {
        let out = maximin(data, &["--json", "doctor", "--listen", "127.0.0.1:0"]);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        (
            out.status.success(),
            report,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, report, stderr) = doctor(&data);
    assert!(ok && report["ok"] == true, "{report:#}");
    assert!(stderr.is_empty(), "doctor starts no engine: {stderr}");
    let parts: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["part"].as_str().expect("part"))
        .collect();
    for part in [
        "build",
        "espeak-ng data",
        "model gemma-3-270m",
        "ONNX Runtime",
        "data dir",
        "listen address",
    ] {
        assert!(parts.contains(&part), "{part} checked: {parts:?}");
    }

    std::fs::remove_file(models.join("gemma-3-270m")).expect("remove model");
    let (ok, report, _) = doctor(&data);
    assert!(!ok && report["ok"] == false, "{report:#}");
    let gemma = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["part"] == "model gemma-3-270m")
        .expect("gemma check")
        .clone();
    assert_eq!(gemma["status"], "fail");
    assert!(
        gemma["fix"]
            .as_str()
            .is_some_and(|f| f.starts_with("maximin models pull gemma-3-270m")),
        "{gemma}"
    );

    // A port in use by something that is not maximin fails too.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    std::os::unix::fs::symlink(
        models_dir().join("gemma-3-270m"),
        models.join("gemma-3-270m"),
    )
    .expect("link");
    let out = maximin(&data, &["--json", "doctor", "--listen", &addr]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let port = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["part"] == "listen address")
        .expect("port check")
        .clone();
    assert_eq!(port["status"], "fail", "{port}");
}

#[test]
fn administration_commands_start_no_engine_and_print_no_engine_warnings() {
    // No models, no runtime: an engine built here would warn about both.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let created = maximin(
        &data,
        &[
            "--json",
            "accounts",
            "create",
            "--email",
            "a@example.com",
            "--plan",
            "payg",
        ],
    );
    assert!(created.status.success());
    assert!(
        created.stderr.is_empty(),
        "accounts create printed: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let account: Value = serde_json::from_slice(&created.stdout).expect("json");
    let id = account["id"].as_str().expect("id");
    for args in [
        vec!["--json", "keys", "create", "--account", id, "--name", "k"],
        vec!["--json", "keys", "list", "--account", id],
        vec!["--json", "accounts", "list"],
        vec!["--json", "models", "list"],
    ] {
        let out = maximin(&data, &args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            out.stderr.is_empty(),
            "{args:?} printed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The catalog still knows what this binary's engines can serve.
    let list: Value = serde_json::from_slice(&maximin(&data, &["--json", "models", "list"]).stdout)
        .expect("json");
    let gemma = list
        .as_array()
        .expect("list")
        .iter()
        .find(|m| m["id"] == "gemma-3-270m")
        .expect("gemma")
        .clone();
    assert!(
        gemma["setup_hint"].as_str().is_some_and(|h| h
            .contains("maximin models pull gemma-3-270m")
            && !h.contains("not built")),
        "{gemma}"
    );
}

/// On a terminal (a pseudo-terminal from `script`, as a person would see
/// it) the secret is printed once with a curl line, and no file is written.
#[test]
fn on_a_terminal_the_first_key_is_printed_and_not_written_down() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cmd = format!(
        "{BIN} serve --listen 127.0.0.1:0 --no-pull --data-dir {}",
        data.display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("MAXIMIN_BOOTSTRAP", "on")
        .env_remove("MAXIMIN_DATA_DIR")
        .env_remove("MAXIMIN_CONFIG")
        .env_remove("MAXIMIN_LISTEN")
        .env_remove("MAXIMIN_LOG_FORMAT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script(1) from bsdutils");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let secret = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no secret: {seen:#?}"));
        let found = line
            .split_whitespace()
            .find(|w| w.starts_with("mmx_live_"))
            .map(str::to_owned);
        seen.push(line);
        if let Some(s) = found {
            break s;
        }
    };
    // The curl line follows, with the same secret.
    let curl = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no curl line: {seen:#?}"));
        if line.contains("curl ") {
            break line;
        }
        seen.push(line);
    };
    assert!(
        curl.contains("/v1/chat/completions") && curl.contains(&secret),
        "{curl}"
    );
    let _ = Command::new("pkill")
        .args(["-f", &data.display().to_string()])
        .status();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !data.join("first-key").exists(),
        "written down although shown"
    );
    let out = maximin(&data, &["--json", "accounts", "list"]);
    let accounts: Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = accounts[0]["id"].as_str().expect("owner account");
    let out = maximin(&data, &["--json", "keys", "list", "--account", id]);
    let keys: Value = serde_json::from_slice(&out.stdout).expect("json");
    let prefix = keys[0]["prefix"].as_str().expect("prefix");
    assert!(secret.starts_with(prefix), "{secret} is not {prefix}…");
}
