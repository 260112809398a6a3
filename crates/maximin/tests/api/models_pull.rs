//! `maximin models pull` and `models list` through the real binary, offline:
//! the weights come from a local path named by a catalog recipe.

use std::path::Path;
use std::process::{Command, Output};

fn maximin(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maximin"))
        .current_dir(dir)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env_remove("MAXIMIN_CONFIG")
        .env_remove("MAXIMIN_DATA_DIR")
        .output()
        .expect("run maximin")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn pull_installs_verifies_and_shows_in_the_list() {
    let dir = tempfile::tempdir().expect("tmp");
    let weights = dir.path().join("tiny-download.gguf");
    std::fs::write(&weights, b"GGUF tiny").expect("weights");
    // A checksum that the weights above do not have.
    let wrong_sha = "ab".repeat(32);
    std::fs::write(
        dir.path().join("maximin.toml"),
        format!(
            r#"
[[models]]
id = "tiny"
aliases = ["tiny-chat"]
modality = "text"
context_window = 8
engine = "llama.cpp"
weights = "tiny-Q4.gguf"
[models.source]
path = "{}"

[[models]]
id = "pinned"
modality = "text"
context_window = 8
engine = "llama.cpp"
weights = "pinned.gguf"
[models.source]
path = "{}"
sha256 = "{wrong_sha}"
"#,
            weights.display(),
            weights.display()
        ),
    )
    .expect("config");

    let out = maximin(dir.path(), &["--json", "models", "pull", "tiny-chat"]);
    assert!(out.status.success(), "{out:?}");
    let pulled = json(&out);
    assert_eq!(pulled["model"], "tiny");
    assert_eq!(pulled["already_present"], false);
    assert_eq!(pulled["files"], serde_json::json!(["tiny-Q4.gguf"]));
    assert_eq!(
        std::fs::read(dir.path().join("data/models/tiny/tiny-Q4.gguf")).expect("installed"),
        b"GGUF tiny"
    );

    let again = json(&maximin(dir.path(), &["--json", "models", "pull", "tiny"]));
    assert_eq!(again["already_present"], true);
    assert_eq!(again["sha256"], pulled["sha256"]);
    let text = maximin(dir.path(), &["models", "pull", "tiny"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("already present and verified"),
        "{text:?}"
    );

    let list = maximin(dir.path(), &["models", "list"]);
    let list = String::from_utf8_lossy(&list.stdout);
    let row = |id: &str| {
        list.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("{id} in {list}"))
            .to_owned()
    };
    assert!(row("tiny").contains(" pulled "), "{list}");
    assert!(row("pinned").contains("not pulled"), "{list}");
    assert!(row("gemma-3-270m").contains("not pulled"), "{list}");

    // A checksum mismatch fails with the error envelope and installs nothing.
    let out = maximin(dir.path(), &["--json", "models", "pull", "pinned"]);
    assert!(!out.status.success());
    let err = json(&out);
    assert_eq!(err["error"]["code"], "upstream_error", "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("checksum mismatch")));
    assert!(!dir.path().join("data/models/pinned/pinned.gguf").exists());

    let out = maximin(dir.path(), &["--json", "models", "pull", "gpt-17"]);
    assert!(!out.status.success());
    assert_eq!(json(&out)["error"]["code"], "model_not_found");
}
