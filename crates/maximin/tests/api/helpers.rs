use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_maximin");

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub dir: tempfile::TempDir,
    output: Arc<Mutex<String>>,
    pub http: reqwest::Client,
    /// Environment the server was started with, which the CLI gets too
    /// (a cluster's shared database and Redis).
    env: Vec<(String, String)>,
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            into.lock().expect("lock").push_str(&line);
            line.clear();
        }
    });
}

impl Server {
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Server::start_in(dir, &[]).await
    }

    /// A server whose data dir sees the provisioned default models
    /// (`MAXIMIN_TEST_MODELS`, a data dir filled by `scripts/provision-models`).
    pub async fn with_models(config: &str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(models_dir(), dir.path().join("models")).expect("link models");
        if !config.is_empty() {
            std::fs::write(dir.path().join("maximin.toml"), config).expect("config");
        }
        Server::start_in(dir, &[]).await
    }

    pub async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        Server::start_with_env(dir, extra, &[]).await
    }

    /// Stops this server and starts another on the same data dir (and
    /// `maximin.toml`, which `config` replaces when not empty), with `env`.
    pub async fn restart(mut self, config: &str, env: &[(&str, &str)]) -> Server {
        self.stop();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        if !config.is_empty() {
            std::fs::write(dir.path().join("maximin.toml"), config).expect("config");
        }
        Server::start_with_env(dir, &[], env).await
    }

    pub async fn start_with_env(
        dir: tempfile::TempDir,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .env("RUST_LOG", "debug")
            // Tests bring their own models and accounts; `first_start`
            // turns these back on.
            .env("MAXIMIN_NO_PULL", "true")
            .env("MAXIMIN_BOOTSTRAP", "off")
            .env_remove("MAXIMIN_LISTEN")
            .env_remove("MAXIMIN_DATA_DIR")
            .env_remove("MAXIMIN_CONFIG")
            .env_remove("MAXIMIN_CLOCK_OFFSET")
            .env_remove("MAXIMIN_DATABASE_URL")
            .env_remove("MAXIMIN_REDIS_URL")
            .envs(crate::backend::database_env(dir.path()))
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn maximin serve");
        let output = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().expect("stderr"), output.clone());
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read stdout");
        let base = line
            .trim()
            .strip_prefix("maximin listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log: {}",
                    output.lock().expect("lock")
                )
            })
            .to_owned();
        output.lock().expect("lock").push_str(&line);
        collect(stdout.into_inner(), output.clone());
        Server {
            child: Some(child),
            base,
            dir,
            output,
            http: reqwest::Client::new(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs the CLI against this server's data dir and returns its JSON output.
    pub fn cli(&self, args: &[&str]) -> Result<Value, Value> {
        cli_with(self.dir.path(), &self.env, args)
    }

    pub fn account(&self, plan: &str) -> String {
        let email = format!("{}@example.com", rand_suffix());
        let a = self
            .cli(&["accounts", "create", "--email", &email, "--plan", plan])
            .expect("create account");
        a["id"].as_str().expect("id").to_owned()
    }

    /// Creates a key with the CLI; returns (id, secret).
    pub fn key(&self, account: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec!["keys", "create", "--account", account, "--name", "test key"];
        args.extend_from_slice(extra);
        let k = self.cli(&args).expect("create key");
        (
            k["id"].as_str().expect("id").to_owned(),
            k["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// An admin key on a fresh account of `plan`: (account id, secret).
    pub fn admin(&self, plan: &str) -> (String, String) {
        let a = self.account(plan);
        let (_, s) = self.key(&a, &["--scope", "admin"]);
        (a, s)
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        Resp::from(
            self.http
                .get(self.url(path))
                .bearer_auth(key)
                .send()
                .await
                .expect("send"),
        )
        .await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Resp {
        Resp::from(
            self.http
                .post(self.url(path))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .expect("send"),
        )
        .await
    }

    /// `POST /v1/files/upload` with `purpose` and a file part.
    pub async fn upload(&self, key: &str, purpose: &str, name: &str, bytes: Vec<u8>) -> Resp {
        let form = reqwest::multipart::Form::new()
            .text("purpose", purpose.to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
            );
        Resp::from(
            self.http
                .post(self.url("/v1/files/upload"))
                .bearer_auth(key)
                .multipart(form)
                .send()
                .await
                .expect("send"),
        )
        .await
    }

    /// Raw bytes of a GET (with a key, or none).
    pub async fn get_bytes(&self, url: &str, key: Option<&str>) -> (u16, Vec<u8>) {
        let mut r = self.http.get(url);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        let resp = r.send().await.expect("send");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("body").to_vec())
    }

    /// SIGKILL, as a crash: nothing is flushed or cleaned up. Returns the
    /// data dir, for a restart on what the crash left.
    pub fn crash(mut self) -> tempfile::TempDir {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Whether the server's output shows `needle` within `within` (its
    /// lines are read by a thread of their own, a moment after they are
    /// written).
    pub async fn output_shows(&self, needle: &str, within: Duration) -> bool {
        let until = std::time::Instant::now() + within;
        loop {
            if self.output().contains(needle) {
                return true;
            }
            if std::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().expect("lock").clone()
    }

    /// SIGTERM, wait for a clean exit, and return everything the server printed.
    pub fn stop(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait().expect("wait") {
                    Some(status) => {
                        assert!(status.success(), "server exited with {status}");
                        break;
                    }
                    None if std::time::Instant::now() > deadline => {
                        let _ = child.kill();
                        panic!("server did not stop on SIGTERM");
                    }
                    None => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.output()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the CLI on data dir `dir` with more environment (which wins over
/// the data dir's own) and returns its JSON output.
pub fn cli_with(dir: &Path, env: &[(String, String)], args: &[&str]) -> Result<Value, Value> {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .arg("--json")
        .env_remove("MAXIMIN_DATA_DIR")
        .env_remove("MAXIMIN_CONFIG")
        .env_remove("MAXIMIN_DATABASE_URL")
        .env_remove("MAXIMIN_REDIS_URL")
        .envs(crate::backend::database_env(dir))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(dir)
        .output()
        .expect("run maximin");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "CLI printed no JSON ({e}): {stdout} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    if out.status.success() {
        Ok(v)
    } else {
        Err(v)
    }
}

/// `$MAXIMIN_TEST_MODELS/models`: where the provisioned models are.
pub fn models_dir() -> std::path::PathBuf {
    let root = std::env::var_os("MAXIMIN_TEST_MODELS").unwrap_or_else(|| {
        panic!("MAXIMIN_TEST_MODELS is not set: run `scripts/provision-models` and point it at that data dir (scripts/check does both)")
    });
    let dir = std::path::PathBuf::from(root).join("models");
    assert!(
        dir.join("gemma-3-270m").is_dir(),
        "{} has no gemma-3-270m: run scripts/provision-models",
        dir.display()
    );
    dir
}

pub fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("u{}x{}", t, N.fetch_add(1, Ordering::Relaxed))
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the seed 002 error envelope with this status and code, and that
    /// `meta.request_id` matches the X-Request-Id header.
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status, status, "status of {:?}", self.body);
        assert_eq!(self.body["error"]["code"], code, "code of {:?}", self.body);
        let msg = self.body["error"]["message"].as_str().unwrap_or("");
        assert!(!msg.is_empty(), "message of {:?}", self.body);
        assert!(
            self.body["error"]["details"].is_object(),
            "details of {:?}",
            self.body
        );
        let rid = self.header("x-request-id").expect("x-request-id");
        assert!(rid.starts_with("req_"));
        assert_eq!(self.body["meta"]["request_id"], rid);
        self
    }

    pub fn detail(&self, key: &str) -> &Value {
        &self.body["error"]["details"][key]
    }

    pub fn assert_ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "status of {:?}", self.body);
        assert_eq!(
            self.body["meta"]["request_id"],
            self.header("x-request-id").expect("x-request-id")
        );
        &self.body["data"]
    }
}
