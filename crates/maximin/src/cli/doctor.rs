//! `maximin doctor`: checks each part an install on the defaults needs and
//! says, for what is wrong, the command that mends it. Starts no engine and
//! changes nothing (the data dir is not created, models are not fetched).

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use maximin_core::catalog::{Catalog, DEFAULT_PULLS};
use maximin_core::readiness::pull_command;
use serde::Serialize;

use super::{features, Failure, Out};
use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    /// Works, but worth mending.
    Warn,
    /// Something the defaults need is missing: `doctor` exits non-zero.
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    part: String,
    status: Status,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    fn ok(part: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            part: part.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn bad(
        status: Status,
        part: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            part: part.into(),
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    checks: &'a [Check],
}

pub(super) async fn doctor(config: &Config, out: &Out) -> Result<(), Failure> {
    let mut checks = vec![build()];
    if cfg!(feature = "espeak") {
        checks.push(espeak_data());
    }
    checks.extend(models(config).await);
    checks.push(data_dir(&config.data_dir));
    checks.push(port(&config.listen));
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    out.print(
        &Report {
            ok,
            checks: &checks,
        },
        || {
            let mut lines: Vec<String> = Vec::new();
            for c in &checks {
                let tag = match c.status {
                    Status::Ok => "ok  ",
                    Status::Warn => "warn",
                    Status::Fail => "FAIL",
                };
                lines.push(format!("{tag}  {:<28} {}", c.part, c.detail));
                if let Some(fix) = &c.fix {
                    lines.push(format!("      {:<28} fix: {fix}", ""));
                }
            }
            let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
            lines.push(if failed == 0 {
                "\nEverything the defaults need is in place.".to_owned()
            } else {
                format!("\n{failed} problem(s): run the fixes above, then `maximin doctor` again.")
            });
            lines.join("\n")
        },
    );
    if ok {
        Ok(())
    } else {
        Err(Failure::Reported)
    }
}

/// The cargo features: the default models need every default engine.
fn build() -> Check {
    let have = features();
    let missing: Vec<&str> = ["llama", "bert", "espeak", "piper"]
        .into_iter()
        .filter(|f| !have.contains(f))
        .collect();
    let detail = format!(
        "maximin {} with features: {}",
        env!("CARGO_PKG_VERSION"),
        if have.is_empty() {
            "none".to_owned()
        } else {
            have.join(", ")
        }
    );
    if missing.is_empty() {
        Check::ok("build", detail)
    } else {
        Check::bad(
            Status::Fail,
            "build",
            format!("{detail}; the default models need {}", missing.join(", ")),
            "build with the default features: scripts/serve (or cargo build --release)",
        )
    }
}

/// espeak-ng's data, which the linked library reads at start.
fn espeak_data() -> Check {
    let mut candidates: Vec<PathBuf> = std::env::var_os("ESPEAK_DATA_PATH")
        .map(|p| {
            let p = PathBuf::from(p);
            vec![p.join("espeak-ng-data"), p]
        })
        .unwrap_or_default();
    if let Ok(dirs) = std::fs::read_dir("/usr/lib") {
        candidates.extend(dirs.flatten().map(|d| d.path().join("espeak-ng-data")));
    }
    candidates.push(PathBuf::from("/usr/share/espeak-ng-data"));
    match candidates.iter().find(|d| d.join("phontab").is_file()) {
        Some(dir) => Check::ok("espeak-ng data", dir.display().to_string()),
        None => Check::bad(
            Status::Fail,
            "espeak-ng data",
            "not found: speech (espeak-ng voices, and phonemes for neural voices) cannot start",
            "apt-get install libespeak-ng1 espeak-ng-data",
        ),
    }
}

/// Each default model (and ONNX Runtime), verified against its checksums.
async fn models(config: &Config) -> Vec<Check> {
    let catalog = match Catalog::with_overrides(config.models.clone()) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::bad(
                Status::Fail,
                "catalog",
                e,
                "correct the [[models]] entries in maximin.toml",
            )]
        }
    };
    let models_dir = config.data_dir.join("models");
    let mut out = Vec::new();
    for name in DEFAULT_PULLS {
        let part = if name == "onnxruntime" {
            "ONNX Runtime".to_owned()
        } else {
            format!("model {name}")
        };
        let Some(spec) = catalog.resolve_pullable(name) else {
            out.push(Check::bad(
                Status::Warn,
                part,
                "not in the catalog (replaced in maximin.toml)",
                "none needed if that was meant",
            ));
            continue;
        };
        let weights = spec.weights_path(&models_dir);
        let check = match maximin_models::verify(spec, &models_dir).await {
            Ok(Some(p)) => Check::ok(
                part,
                format!(
                    "{} (sha256 {} verified)",
                    p.path.display(),
                    short(&p.sha256)
                ),
            ),
            Ok(None) if weights.as_deref().is_some_and(Path::is_file) => Check::bad(
                Status::Fail,
                part,
                "damaged: a file is missing or its checksum does not match",
                format!("{} --force", pull_command(&spec.id)),
            ),
            Ok(None) => Check::bad(
                Status::Fail,
                part,
                format!("not installed in {}", models_dir.display()),
                format!(
                    "{} (or start `maximin serve`, which fetches it)",
                    pull_command(&spec.id)
                ),
            ),
            Err(e) => Check::bad(
                Status::Fail,
                part,
                e.to_string(),
                "correct its entry in maximin.toml",
            ),
        };
        out.push(check);
    }
    out
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The data dir exists and takes a write, or can be created; and only its
/// owner can read it.
fn data_dir(dir: &Path) -> Check {
    use std::os::unix::fs::PermissionsExt;
    const PART: &str = "data dir";
    if !dir.exists() {
        let parent = dir
            .ancestors()
            .skip(1)
            .find(|p| p.exists())
            .unwrap_or(Path::new("."));
        return match probe_write(parent) {
            Ok(()) => Check::ok(
                PART,
                format!("{} will be created on first start", dir.display()),
            ),
            Err(e) => Check::bad(
                Status::Fail,
                PART,
                format!("{} cannot be created: {e}", dir.display()),
                "choose a writable place with --data-dir DIR (or MAXIMIN_DATA_DIR)",
            ),
        };
    }
    if let Err(e) = probe_write(dir) {
        return Check::bad(
            Status::Fail,
            PART,
            format!("{} is not writable: {e}", dir.display()),
            format!(
                "chown the directory to this user, or choose another with --data-dir (now {})",
                dir.display()
            ),
        );
    }
    match std::fs::metadata(dir).map(|m| m.permissions().mode() & 0o777) {
        Ok(mode) if mode & 0o077 != 0 => Check::bad(
            Status::Warn,
            PART,
            format!(
                "{} is writable but readable by others (mode {mode:o})",
                dir.display()
            ),
            format!("chmod 700 {}", dir.display()),
        ),
        _ => Check::ok(PART, format!("{} is writable", dir.display())),
    }
}

fn probe_write(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".maximin-doctor-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// The listen address is free, or held by a maximin that answers `/healthz`.
fn port(listen: &str) -> Check {
    const PART: &str = "listen address";
    match TcpListener::bind(listen) {
        Ok(_) => Check::ok(PART, format!("{listen} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if maximin_answers(listen) {
                Check::ok(PART, format!("{listen} is served by a running maximin"))
            } else {
                Check::bad(
                    Status::Fail,
                    PART,
                    format!("{listen} is in use by another program"),
                    "stop that program, or listen elsewhere: --listen 127.0.0.1:8081 (or MAXIMIN_LISTEN)",
                )
            }
        }
        Err(e) => Check::bad(
            Status::Fail,
            PART,
            format!("cannot listen on {listen}: {e}"),
            "give an address of this machine: --listen HOST:PORT (or MAXIMIN_LISTEN)",
        ),
    }
}

/// Whether a maximin answers `GET /healthz` at `addr`.
fn maximin_answers(addr: &str) -> bool {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    use std::time::Duration;
    let Some(sock) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.take(4096).read_to_string(&mut buf);
    buf.starts_with("HTTP/1.") && buf.contains("200") && buf.contains("\"status\":\"ok\"")
}
