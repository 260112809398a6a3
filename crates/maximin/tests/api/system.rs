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
