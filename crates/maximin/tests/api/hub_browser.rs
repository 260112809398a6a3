//! The hub in a real browser: `tests/browser/hub.py` drives Debian's
//! Chromium through Playwright against a running server with the default
//! models: sign-up, TOTP, log-in with the code, a key used with curl and
//! revoked, the playground's chat and speech, usage, a ticket, the
//! operator's view, every page at desktop and phone width, the privacy
//! export and closing the account. `scripts/check`
//! installs both and sets `MAXIMIN_BROWSER_PYTHON`; in CI a missing browser
//! fails the test rather than skipping it.

use crate::helpers::Server;

fn browser_python() -> Option<String> {
    match std::env::var("MAXIMIN_BROWSER_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("MAXIMIN_BROWSER_PYTHON is not set: scripts/check installs Playwright")
        }
        _ => None,
    }
}

#[tokio::test]
async fn an_owner_signs_up_enrols_totp_and_manages_keys_in_chromium() {
    let Some(python) = browser_python() else {
        eprintln!("no MAXIMIN_BROWSER_PYTHON: browser test skipped");
        return;
    };
    let s = Server::with_models("").await;
    let shots = std::env::var("MAXIMIN_HUB_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| s.dir.path().join("screenshots"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/hub.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(&s.base)
        .arg(&shots)
        .env("MAXIMIN_CLI", crate::helpers::BIN)
        .env("MAXIMIN_CLI_DATA_DIR", s.dir.path())
        .envs(crate::backend::database_env(s.dir.path()))
        .output()
        .await
        .expect("run the browser test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser test failed:\n{text}");
    assert!(text.contains("hub browser test: OK"), "{text}");
    let shots_taken = std::fs::read_dir(&shots).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        shots_taken, 37,
        "every page at both widths, and in the dark theme"
    );
}
