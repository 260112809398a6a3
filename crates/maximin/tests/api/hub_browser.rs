//! The hub in a real browser: `tests/browser/hub.py` drives Debian's
//! Chromium through Playwright against a running server. `scripts/check`
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
    let s = Server::start().await;
    let shots = std::env::var("MAXIMIN_HUB_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| s.dir.path().join("screenshots"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/hub.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(&s.base)
        .arg(&shots)
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
    assert_eq!(shots_taken, 12, "every page at both widths");
}
