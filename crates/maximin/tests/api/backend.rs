//! Which store the servers of this run use. `MAXIMIN_TEST_STORE=postgres`
//! gives every data dir its own fresh PostgreSQL database on the server
//! `MAXIMIN_TEST_POSTGRES_URL` names, passed to the server and the CLI as
//! `MAXIMIN_DATABASE_URL`; otherwise each data dir has its SQLite file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once};

/// The PostgreSQL server of this run, when the suite runs on PostgreSQL.
pub fn postgres_server() -> Option<String> {
    if std::env::var("MAXIMIN_TEST_STORE").as_deref() != Ok("postgres") {
        return None;
    }
    Some(
        std::env::var("MAXIMIN_TEST_POSTGRES_URL")
            .expect("MAXIMIN_TEST_STORE=postgres needs MAXIMIN_TEST_POSTGRES_URL"),
    )
}

/// The environment a process on data dir `dir` gets: the database URL of
/// the dir on PostgreSQL, nothing on SQLite (which is then the default).
pub fn database_env(dir: &Path) -> Vec<(&'static str, String)> {
    match postgres_server() {
        Some(server) => vec![("MAXIMIN_DATABASE_URL", database_for(&server, dir))],
        None => Vec::new(),
    }
}

/// The URL of data dir `dir`'s database, to read it as a test.
pub fn database_url(dir: &Path) -> String {
    match postgres_server() {
        Some(server) => database_for(&server, dir),
        None => format!("sqlite://{}?mode=ro", dir.join("maximin.db").display()),
    }
}

/// The database of data dir `dir` (made on first use).
fn database_for(server: &str, dir: &Path) -> String {
    static MADE: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);
    static CLEAN: Once = Once::new();
    CLEAN.call_once(|| drop_leftovers(server));
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let made = made.get_or_insert_with(HashMap::new);
    if let Some(url) = made.get(dir) {
        return url.clone();
    }
    let name = format!("maximin_api_{}_{}", std::process::id(), made.len());
    psql(server, &format!("CREATE DATABASE {name}"));
    let url = with_database(server, &name);
    made.insert(dir.to_path_buf(), url.clone());
    url
}

/// Drops the databases earlier runs left whose process is gone.
fn drop_leftovers(server: &str) {
    let out = psql(
        server,
        "SELECT datname FROM pg_database WHERE datname LIKE 'maximin_api_%'",
    );
    for name in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            psql(
                server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// Runs one statement with psql on `url`; its output, unaligned.
pub fn psql(server: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(server)
        .args(["-qtAX", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `server` with its database replaced by `name`.
pub fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..host_end])
}

/// Everything the store of data dir `dir` holds, as bytes to search for
/// what must not be there in the clear: the SQLite file, or a plain-text
/// dump of the PostgreSQL database.
pub fn stored_bytes(dir: &Path) -> Vec<u8> {
    match postgres_server() {
        Some(server) => {
            let url = database_for(&server, dir);
            let out = Command::new("pg_dump")
                .args(["--data-only", "--inserts", &url])
                .output()
                .expect("run pg_dump");
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
        None => std::fs::read(dir.join("maximin.db")).unwrap_or_default(),
    }
}
