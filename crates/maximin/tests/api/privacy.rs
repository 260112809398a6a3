use serde_json::json;

use crate::helpers::Server;

const CANARY: &str = "CANARY-7f3a9c-do-not-store";

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// After requests that carry a canary in bodies, headers, query and path, neither
/// the canary nor any full API key is anywhere under the data dir or in what the
/// server printed (debug logging on).
#[tokio::test]
async fn no_content_and_no_key_reaches_disk_or_logs() {
    let mut s = Server::start().await;
    let (_, admin) = s.admin("payg");
    let account = s.account("payg");
    let (_, plain) = s.key(&account, &[]);

    let with_canary = |req: reqwest::RequestBuilder, idem: &str| {
        req.header("x-canary", CANARY)
            .header("user-agent", CANARY)
            .header("x-request-id", CANARY)
            .header("idempotency-key", format!("{idem}-{CANARY}"))
    };
    let chat =
        json!({"model": "minimax-chat-v2", "messages": [{"role": "user", "content": CANARY}]});
    let responses = vec![
        with_canary(s.http.post(s.url("/v1/chat/completions")).bearer_auth(&plain).json(&chat), "a"),
        with_canary(
            s.http
                .post(s.url("/v1/embeddings"))
                .bearer_auth(&plain)
                .json(&json!({"model": "minimax-embed-v1", "input": [CANARY, CANARY]})),
            "b",
        ),
        // A 400 whose message quotes the canary: stored for replay, sealed.
        with_canary(
            s.http
                .post(s.url("/v1/chat/completions"))
                .bearer_auth(&plain)
                .json(&json!({"model": "minimax-chat-v2", "messages": [{"role": CANARY, "content": "x"}]})),
            "c",
        ),
        // A 201 whose body is a secret: stored for replay, sealed.
        with_canary(
            s.http
                .post(s.url("/v1/account/keys"))
                .bearer_auth(&admin)
                .json(&json!({"name": "replayable"})),
            "d",
        ),
        with_canary(s.http.get(s.url(&format!("/v1/models/{CANARY}?q={CANARY}"))).bearer_auth(&plain), "e"),
        with_canary(s.http.get(s.url(&format!("/v1/{CANARY}"))).bearer_auth(&plain), "f"),
        // An invalid key that carries the canary.
        with_canary(s.http.get(s.url("/v1/models")).bearer_auth(format!("mmx_live_{CANARY}")), "g"),
    ];
    let mut secrets = vec![admin.clone(), plain.clone()];
    for req in responses {
        let r = req.send().await.expect("send");
        assert!(
            r.status().as_u16() < 500 || r.status() == 503,
            "{}",
            r.status()
        );
        let body = r.text().await.expect("body");
        if let Some(secret) = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["data"]["secret"].as_str().map(str::to_owned))
        {
            secrets.push(secret);
        }
    }
    assert_eq!(secrets.len(), 3, "the key created over HTTP was seen");
    // Replaying the sealed response proves it was stored.
    let replay = with_canary(
        s.http
            .post(s.url("/v1/account/keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "replayable"})),
        "d",
    )
    .send()
    .await
    .expect("send");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");

    let log = s.stop();
    assert!(log.contains("request"), "the server did log requests");
    assert!(!log.contains(CANARY), "canary in the server's output");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a key in the server's output"
        );
    }

    // The database (the SQLite file, or a dump of the PostgreSQL one).
    let stored = String::from_utf8_lossy(&crate::backend::stored_bytes(s.dir.path())).into_owned();
    assert!(
        !stored.is_empty(),
        "the database holds the requests' records"
    );
    assert!(!stored.contains(CANARY), "canary in the database");
    for secret in &secrets {
        assert!(!stored.contains(secret.as_str()), "a key in the database");
    }
    let mut files = Vec::new();
    files_under(s.dir.path(), &mut files);
    if crate::backend::postgres_server().is_none() {
        assert!(files.iter().any(|f| f.ends_with("maximin.db")));
    }
    for f in files {
        let bytes = std::fs::read(&f).expect("read");
        let hay = String::from_utf8_lossy(&bytes);
        assert!(!hay.contains(CANARY), "canary in {}", f.display());
        for secret in &secrets {
            assert!(
                !hay.contains(secret.as_str()),
                "a full key in {}",
                f.display()
            );
        }
    }
}
