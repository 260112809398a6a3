use crate::helpers::Server;

#[tokio::test]
async fn health_readiness_metrics_and_openapi_need_no_key() {
    let mut s = Server::start().await;
    let r = s.http.get(s.url("/healthz")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    let r = s.http.get(s.url("/readyz")).send().await.expect("send");
    assert_eq!(r.status(), 200);

    let account = s.account("payg");
    let (_, key) = s.key(&account, &[]);
    s.get("/v1/models/gemma-3-270m", &key).await.assert_ok(200);
    s.get("/v1/models/nope", &key)
        .await
        .assert_error(404, "model_not_found");

    let text = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains(
            r#"maximin_http_requests_total{route="/v1/models/{id}",method="GET",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="/v1/models/{id}",method="GET",status="404"} 1"#));
    assert!(text.contains("maximin_http_request_duration_seconds_bucket"));
    assert!(
        !text.contains("nope"),
        "labels are route templates, not paths"
    );
    assert!(!text.contains(&key));

    let doc: serde_json::Value = s
        .http
        .get(s.url("/v1/openapi.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    assert!(doc["paths"]["/v1/account/keys"]["post"].is_object());

    // SIGTERM: a clean exit that writes pending usage first.
    s.stop();
    let keys = s
        .cli(&["keys", "list", "--account", &account])
        .expect("list");
    assert_eq!(keys[0]["usage"]["requests"], 2);
    assert_eq!(keys[0]["usage"]["errors"], 1);
}

/// A request in flight when SIGTERM arrives still gets its answer.
#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    use std::io::{Read, Write};

    let mut s = Server::start().await;
    let account = s.account("payg");
    let (_, key) = s.key(&account, &[]);
    let body = serde_json::json!({"model": "minimax-embed-v1", "input": ["x"]}).to_string();
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).expect("connect");
    let head = format!(
        "POST /v1/embeddings HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).expect("head");
    let (first, rest) = body.split_at(10);
    conn.write_all(first.as_bytes()).expect("first half");
    std::thread::sleep(std::time::Duration::from_millis(200));

    // Signal while the body is still arriving; the server must wait for it.
    let pid = s.pid();
    let killer = std::thread::spawn(move || {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    });
    killer.join().expect("kill");
    std::thread::sleep(std::time::Duration::from_millis(300));
    conn.write_all(rest.as_bytes()).expect("second half");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 "), "{reply}");
    assert!(reply.contains("\"request_id\""), "a full answer: {reply}");
    let log = s.stop();
    assert!(log.contains("shutting down"), "{log}");
}
