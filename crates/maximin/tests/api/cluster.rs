//! Replicas sharing one PostgreSQL database, Redis and the file store
//! (issue 17): limits exact across them, one execution per idempotency key,
//! revocation everywhere at once, tasks finished by a survivor, files
//! served by any replica.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{models_dir, Resp, Server};
use crate::ratelimit::away_from_a_window_edge;

/// The shared services (PostgreSQL, Redis, an S3-compatible server), or
/// `None` (skipped, never under `CI=true`).
fn services() -> Option<(String, String, String)> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    match (
        var("MAXIMIN_TEST_POSTGRES_URL"),
        var("MAXIMIN_TEST_REDIS_URL"),
        var("MAXIMIN_TEST_S3_ENDPOINT"),
    ) {
        (Some(pg), Some(redis), Some(s3)) => Some((pg, redis, s3)),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI runs the cluster tests: set MAXIMIN_TEST_POSTGRES_URL, MAXIMIN_TEST_REDIS_URL and MAXIMIN_TEST_S3_ENDPOINT"
            );
            eprintln!("no PostgreSQL, Redis and S3 server: cluster tests skipped");
            None
        }
    }
}

/// Replicas on loopback ports, sharing a fresh database, Redis, a fresh
/// bucket and the master key (the first replica's, linked into the others'
/// data dirs), each with its own `maximin.toml`.
struct Cluster {
    replicas: Vec<Option<Server>>,
    env: Vec<(String, String)>,
    s3: String,
    bucket: String,
    first_dir: std::path::PathBuf,
    models: bool,
    /// Data dirs of crashed replicas, kept: the others link to the first's.
    kept: Vec<tempfile::TempDir>,
}

impl Cluster {
    async fn start(configs: &[&str], models: bool) -> Option<Cluster> {
        let (pg, redis, s3) = services()?;
        let name = format!(
            "maximin_cluster_{}_{}",
            std::process::id(),
            crate::helpers::rand_suffix()
        );
        crate::backend::psql(&pg, &format!("CREATE DATABASE {name}"));
        let env = vec![
            (
                "MAXIMIN_DATABASE_URL".to_owned(),
                crate::backend::with_database(&pg, &name),
            ),
            ("MAXIMIN_REDIS_URL".to_owned(), redis),
            ("AWS_ACCESS_KEY_ID".to_owned(), "maximin-tests".to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                "maximin-tests".to_owned(),
            ),
        ];
        let mut c = Cluster {
            replicas: Vec::new(),
            env,
            s3,
            bucket: name.replace('_', "-"),
            first_dir: std::path::PathBuf::new(),
            models,
            kept: Vec::new(),
        };
        for config in configs {
            let s = c.spawn(config).await;
            if c.replicas.is_empty() {
                c.first_dir = s.dir.path().to_path_buf();
            }
            c.replicas.push(Some(s));
        }
        Some(c)
    }

    /// A new replica with `config`, on the cluster's shared parts.
    async fn spawn(&self, config: &str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        if self.models {
            std::os::unix::fs::symlink(models_dir(), dir.path().join("models"))
                .expect("link models");
        }
        if !self.replicas.is_empty() {
            std::os::unix::fs::symlink(
                self.first_dir.join("master.key"),
                dir.path().join("master.key"),
            )
            .expect("link the master key");
        }
        let storage = format!(
            "[storage]\ns3_endpoint = \"{}\"\nbucket = \"{}\"\n",
            self.s3, self.bucket
        );
        std::fs::write(
            dir.path().join("maximin.toml"),
            format!("{config}\n{storage}"),
        )
        .expect("config");
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Server::start_with_env(dir, &[], &env).await
    }

    /// One value from the shared database, as text.
    fn sql(&self, query: &str) -> String {
        crate::backend::psql(&self.env[0].1, query)
            .trim()
            .to_owned()
    }

    fn at(&self, i: usize) -> &Server {
        self.replicas[i].as_ref().expect("running replica")
    }
}

async fn get(s: &Server, path: &str, key: &str) -> Resp {
    s.get(path, key).await
}

#[tokio::test]
async fn three_replicas_share_limits_idempotency_revocation_and_files() {
    let Some(c) = Cluster::start(&["", "", ""], false).await else {
        return;
    };
    let (a, b, cc) = (c.at(0), c.at(1), c.at(2));

    // A free account (60 a minute) hit by 64 clients spread over the three.
    let (_, key) = a.admin("free");
    away_from_a_window_edge().await;
    let sends = (0..64).map(|i| {
        let s = c.at(i % 3);
        let key = key.clone();
        async move { get(s, "/v1/models", &key).await }
    });
    let all = futures::future::join_all(sends).await;
    let ok = all.iter().filter(|r| r.status == 200).count();
    let limited = all.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        (ok, limited),
        (60, 4),
        "exactly 60 admitted over 3 replicas"
    );
    // Every replica tells the same state.
    let mut seen = Vec::new();
    for s in [a, b, cc] {
        let r = get(s, "/v1/models", &key).await;
        r.assert_error(429, "rate_limit_exceeded");
        seen.push((
            r.header("x-ratelimit-limit").map(str::to_owned),
            r.header("x-ratelimit-remaining").map(str::to_owned),
            r.header("x-ratelimit-reset").map(str::to_owned),
        ));
    }
    assert_eq!(seen[0].0.as_deref(), Some("60"));
    assert_eq!(seen[0].1.as_deref(), Some("0"));
    assert!(seen.iter().all(|h| *h == seen[0]), "{seen:?}");

    // The same Idempotency-Key sent to all three at once runs once.
    let (_, admin) = a.admin("payg");
    let sends = [a, b, cc].map(|s| {
        s.http
            .post(s.url("/v1/account/keys"))
            .bearer_auth(&admin)
            .header("idempotency-key", "cluster-once")
            .json(&json!({"name": "raced"}))
            .send()
    });
    let mut ids = Vec::new();
    let mut replays = 0;
    for r in futures::future::join_all(sends).await {
        let r = Resp::from(r.expect("send")).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        replays += usize::from(r.header("idempotent-replayed") == Some("true"));
        ids.push(r.body["data"]["id"].as_str().expect("id").to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one key for all three: {ids:?}");
    assert_eq!(replays, 2, "one execution, two replays");
    let keys = get(b, "/v1/account/keys", &admin).await;
    let raced = keys
        .assert_ok(200)
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["name"] == "raced")
        .count();
    assert_eq!(raced, 1, "executed once");

    // A key revoked on A is refused on B and C at their very next request
    // (each had just let it in, so had it cached).
    let owner = a.account("payg");
    let (id, victim) = a.key(&owner, &[]);
    let (_, owner_admin) = a.key(&owner, &["--scope", "admin"]);
    for s in [b, cc] {
        get(s, "/v1/models", &victim).await.assert_ok(200);
    }
    let r = Resp::from(
        a.http
            .delete(a.url(&format!("/v1/account/keys/{id}")))
            .bearer_auth(&owner_admin)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for s in [b, cc] {
        get(s, "/v1/models", &victim)
            .await
            .assert_error(401, "authentication_failed");
    }

    // A file uploaded through A downloads through B by its signed link.
    let text = format!("cluster secret {}", crate::helpers::rand_suffix());
    let up = a
        .upload(&admin, "retrieval", "notes.txt", text.clone().into_bytes())
        .await;
    assert_eq!(up.body["base_resp"]["status_code"], 0, "{:?}", up.body);
    let file_id = up.body["file"]["file_id"].as_i64().expect("file_id");
    let r = get(b, &format!("/v1/files/retrieve?file_id={file_id}"), &admin).await;
    let link = r.body["file"]["download_url"]
        .as_str()
        .unwrap_or_else(|| panic!("download_url: {:?}", r.body))
        .to_owned();
    let via_c = link.replacen(&b.base, &cc.base, 1);
    for url in [link, via_c] {
        let (status, bytes) = b.get_bytes(&url, None).await;
        assert_eq!(status, 200, "{url}");
        assert_eq!(bytes, text.as_bytes());
    }
    // The bucket holds it, sealed only; no replica's disk holds it.
    let objects = c.objects().await;
    assert!(!objects.is_empty(), "the bucket holds the file");
    for (key, bytes) in &objects {
        assert!(
            !bytes.windows(text.len()).any(|w| w == text.as_bytes()),
            "{key} holds the plaintext"
        );
    }
    for s in [a, b, cc] {
        assert!(!holds(s.dir.path(), text.as_bytes()));
    }
}

impl Cluster {
    /// Every object in the cluster's bucket: (key, bytes). Read straight
    /// from the S3 server, as anyone with access to it could.
    async fn objects(&self) -> Vec<(String, Vec<u8>)> {
        let http = reqwest::Client::new();
        let list = http
            .get(format!("{}/{}?list-type=2", self.s3, self.bucket))
            .send()
            .await
            .expect("list")
            .text()
            .await
            .expect("list body");
        let mut out = Vec::new();
        for part in list.split("<Key>").skip(1) {
            let key = part.split("</Key>").next().unwrap_or_default().to_owned();
            let bytes = http
                .get(format!("{}/{}/{key}", self.s3, self.bucket))
                .send()
                .await
                .expect("get")
                .bytes()
                .await
                .expect("object");
            out.push((key, bytes.to_vec()));
        }
        out
    }
}

/// Whether any file under `dir` contains `needle`.
fn holds(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let p = e.path();
            if p.is_dir() {
                holds(&p, needle)
            } else {
                std::fs::read(&p)
                    .map(|b| b.windows(needle.len()).any(|w| w == needle))
                    .unwrap_or(false)
            }
        })
}

#[tokio::test]
async fn a_task_whose_replica_is_killed_mid_way_finishes_once_on_another() {
    // Only A runs tasks at first, so A is the one that takes it.
    let Some(mut c) = Cluster::start(
        &["", "[tasks]\nworkers = 0\n", "[tasks]\nworkers = 0\n"],
        true,
    )
    .await
    else {
        return;
    };
    let (_, key) = c.at(1).admin("payg");
    let long = "Replicas share the queue, so a task outlives the one that ran it. ".repeat(30);
    let created = crate::speech_async::create(
        c.at(1),
        &key,
        json!({
            "model": "speech-2.8-turbo", "text": long,
            "voice_setting": {"voice_id": "English_expressive_narrator"},
        }),
    )
    .await;
    assert_eq!(created["base_resp"]["status_code"], 0, "{created}");
    let task_id = created["task_id"].as_i64().expect("task_id");
    // A took it (the only runner) and is speaking: kill it mid-way.
    let started = std::time::Instant::now();
    let claimed = format!("SELECT status || ' ' || attempts FROM tasks WHERE id = {task_id}");
    while c.sql(&claimed) != "processing 1" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never claimed: {}",
            c.sql(&claimed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(c.sql(&claimed), "processing 1", "finished before the kill");
    let a_dir = c.replicas[0].take().expect("A").crash();
    c.kept.push(a_dir);
    // B takes over once A's lease lapses.
    c.replicas[1].take().expect("B").stop();
    let b = c.spawn("[tasks]\nworkers = 1\n").await;
    let done = crate::speech_async::wait(&b, &key, task_id, Duration::from_secs(150)).await;
    assert_eq!(done["status"], "Success", "{done}; B's log: {}", b.output());
    let file_id = done["file_id"].as_i64().expect("file_id");
    // Whole, and recorded once: through C, which ran nothing.
    let members = crate::speech_async::output(c.at(2), &key, file_id).await;
    let pcm = maximin_audio::decode(crate::speech_async::member(&members, "speech.mp3"))
        .expect("the output decodes");
    assert!(pcm.duration_secs() > 10.0, "{}", pcm.duration_secs());
    let list = get(c.at(2), "/v1/files/list", &key).await;
    let outputs: Vec<&Value> = list.body["files"]
        .as_array()
        .expect("files")
        .iter()
        .collect();
    assert_eq!(outputs.len(), 1, "one output file: {:?}", list.body);
    // A's attempt was fenced out; B's, the second, ended it.
    assert_eq!(
        c.sql(&format!(
            "SELECT status || ' ' || attempts FROM tasks WHERE id = {task_id}"
        )),
        "success 2"
    );
}

/// `maximin migrate`: a single machine's install (SQLite, files on disk)
/// moves into the shared database and bucket, resumably, and a replica
/// there serves its keys and files.
#[tokio::test]
async fn a_single_machine_install_migrates_into_the_shared_database_and_bucket() {
    let Some((pg, _redis, s3)) = services() else {
        return;
    };
    // The single machine, on SQLite whatever this run's store.
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}", dir.path().join("maximin.db").display());
    let single =
        Server::start_with_env(dir, &[], &[("MAXIMIN_DATABASE_URL", sqlite.as_str())]).await;
    let (_, key) = single.admin("payg");
    let text = format!("migrated notes {}", crate::helpers::rand_suffix());
    let up = single
        .upload(&key, "retrieval", "notes.txt", text.clone().into_bytes())
        .await;
    let file_id = up.body["file"]["file_id"].as_i64().expect("file_id");
    get(&single, "/v1/models", &key).await.assert_ok(200);
    let mut single = single;
    single.stop();

    let name = format!("maximin_migrate_{}", std::process::id());
    let bucket = format!("maximin-migrate-{}", std::process::id());
    crate::backend::psql(&pg, &format!("DROP DATABASE IF EXISTS {name}"));
    crate::backend::psql(&pg, &format!("CREATE DATABASE {name}"));
    let target = crate::backend::with_database(&pg, &name);
    let migrate = || {
        let out = std::process::Command::new(crate::helpers::BIN)
            .args(["migrate", "--from", &sqlite, "--to", &target])
            .args([
                "--blobs-to",
                &format!("s3://{bucket}"),
                "--json",
                "--data-dir",
            ])
            .arg(single.dir.path())
            .env("AWS_ENDPOINT_URL", &s3)
            .env("AWS_ACCESS_KEY_ID", "maximin-tests")
            .env("AWS_SECRET_ACCESS_KEY", "maximin-tests")
            .env_remove("MAXIMIN_DATABASE_URL")
            .env_remove("MAXIMIN_CONFIG")
            .current_dir(single.dir.path())
            .output()
            .expect("run migrate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let progress = String::from_utf8_lossy(&out.stderr).into_owned();
        let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
        (report, progress)
    };
    let (first, progress) = migrate();
    assert!(progress.contains("api_keys: "), "progress: {progress}");
    let copied = |r: &Value, table: &str| {
        r["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["table"] == table)
            .map(|t| {
                (
                    t["rows"].as_u64().expect("rows"),
                    t["copied"].as_u64().expect("copied"),
                )
            })
            .expect("table")
    };
    assert_eq!(copied(&first, "accounts"), (1, 1));
    assert_eq!(copied(&first, "files"), (1, 1));
    let events = copied(&first, "usage_events");
    assert!(events.0 >= 2 && events.0 == events.1, "{events:?}");
    assert_eq!(
        (&first["blobs_copied"], &first["blobs_present"]),
        (&json!(1), &json!(0))
    );
    // Again (as after an interruption): everything is there already.
    let (again, _) = migrate();
    assert!(
        again["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .all(|t| t["copied"] == 0),
        "{again}"
    );
    assert_eq!(
        (&again["blobs_copied"], &again["blobs_present"]),
        (&json!(0), &json!(1))
    );

    // A replica on the shared database and bucket, with the install's
    // master key, serves the old key and the old file.
    let replica_dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        single.dir.path().join("master.key"),
        replica_dir.path().join("master.key"),
    )
    .expect("master key");
    std::fs::write(
        replica_dir.path().join("maximin.toml"),
        format!("[storage]\ns3_endpoint = \"{s3}\"\nbucket = \"{bucket}\"\n"),
    )
    .expect("config");
    let replica = Server::start_with_env(
        replica_dir,
        &[],
        &[
            ("MAXIMIN_DATABASE_URL", target.as_str()),
            ("AWS_ACCESS_KEY_ID", "maximin-tests"),
            ("AWS_SECRET_ACCESS_KEY", "maximin-tests"),
        ],
    )
    .await;
    let (status, bytes) = replica
        .get_bytes(
            &replica.url(&format!("/v1/files/retrieve_content?file_id={file_id}")),
            Some(&key),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(bytes, text.as_bytes());
    // New rows get new ids past the copied ones (the identities moved on).
    get(&replica, "/v1/models", &key).await.assert_ok(200);
    let keys = get(&replica, "/v1/account/keys", &key).await;
    assert!(keys
        .assert_ok(200)
        .as_array()
        .is_some_and(|k| !k.is_empty()));
}

/// Redis out of reach with `fail_open = false` (the default): requests are
/// refused with 503 `server_error` and `Retry-After`, never admitted
/// uncounted; with `fail_open = true` they are admitted.
#[tokio::test]
async fn an_unreachable_redis_refuses_requests_with_503_unless_failing_open() {
    // Nothing listens on port 9 of loopback.
    let env = [("MAXIMIN_REDIS_URL", "redis://127.0.0.1:9/")];
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start_with_env(dir, &[], &env).await;
    let (_, key) = s.admin("payg");
    let r = get(&s, "/v1/models", &key).await;
    r.assert_error(503, "server_error");
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = s
        .post(
            "/openai/v1/chat/completions",
            &key,
            json!({"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "server_error", "{:?}", r.body);
    assert!(
        s.output_shows("Redis unreachable", Duration::from_secs(5))
            .await,
        "the outage is logged"
    );
    let ready = s.http.get(s.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "rate limiter unavailable");

    let open = s.restart("[ratelimit]\nfail_open = true\n", &env).await;
    get(&open, "/v1/models", &key).await.assert_ok(200);
    let body: Value = open
        .http
        .get(open.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_ne!(body["status"], "rate limiter unavailable", "{body}");
}
