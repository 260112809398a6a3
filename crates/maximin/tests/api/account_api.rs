use serde_json::json;

use crate::helpers::{Resp, Server};

#[tokio::test]
async fn the_account_api_manages_keys_like_the_cli() {
    let s = Server::start().await;
    let (account, admin) = s.admin("payg");

    let r = s.get("/v1/account", &admin).await;
    let a = r.assert_ok(200);
    assert_eq!(a["id"], account.as_str());
    assert_eq!(a["plan"], "payg");
    assert!(a["entitlements"].as_array().expect("list").len() >= 8);

    // Create: the secret comes back once, in data.secret.
    let r = s
        .post(
            "/v1/account/keys",
            &admin,
            json!({"name": "deploy", "scopes": ["text", "read"], "models": ["minimax-chat-v2"]}),
        )
        .await;
    let created = r.assert_ok(201).clone();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("mmx_live_"));
    assert_eq!(
        created["models"][0], "gemma-3-270m",
        "aliases resolve to catalog ids"
    );
    assert_eq!(created["prefix"], secret[..13]);
    let id = created["id"].as_str().expect("id").to_owned();

    // The new key works, within its scopes.
    s.get("/v1/models", &secret).await.assert_ok(200);

    // Listing and getting never show a secret; the CLI sees the same keys.
    let r = s.get("/v1/account/keys", &admin).await;
    let list = r.assert_ok(200).as_array().expect("list").clone();
    assert_eq!(list.len(), 2);
    assert!(!r.body.to_string().contains(&secret));
    assert!(
        !r.body.to_string().contains(&admin),
        "not even the caller's own secret"
    );
    assert!(list.iter().all(|k| k.get("secret").is_none()));
    let cli = s
        .cli(&["keys", "list", "--account", &account])
        .expect("cli list");
    assert_eq!(cli.as_array().expect("list").len(), 2);
    let r = s.get(&format!("/v1/account/keys/{id}"), &admin).await;
    assert_eq!(r.assert_ok(200)["name"], "deploy");

    // Per-key usage and the activity log: metadata only.
    let r = s
        .get(&format!("/v1/account/keys/{id}/activity"), &admin)
        .await;
    let log = r.assert_ok(200).as_array().expect("log").clone();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["endpoint"], "/v1/models");
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[0]["client_ip"], "127.0.0.1");
    let r = s.get(&format!("/v1/account/keys/{id}"), &admin).await;
    assert_eq!(r.assert_ok(200)["usage"]["requests"], 1);

    let r = s.get("/v1/account/usage", &admin).await;
    let u = r.assert_ok(200);
    assert!(u["total"]["requests"].as_u64().expect("n") >= 4);
    assert!(u["by_key"]
        .as_array()
        .expect("keys")
        .iter()
        .any(|k| k["key_id"] == id.as_str()));
    s.get("/v1/account/usage?since=yesterday", &admin)
        .await
        .assert_error(400, "invalid_request");

    // Sandbox keys.
    let r = s
        .post(
            "/v1/account/keys",
            &admin,
            json!({"name": "sandbox", "test": true}),
        )
        .await;
    let t = r.assert_ok(201);
    assert!(t["secret"]
        .as_str()
        .expect("secret")
        .starts_with("mmx_test_"));
    assert_eq!(t["mode"], "test");
    let sandbox = t["secret"].as_str().expect("secret").to_owned();
    s.get("/v1/models", &sandbox).await.assert_ok(200);

    // Scopes and models are validated.
    let r = s
        .post(
            "/v1/account/keys",
            &admin,
            json!({"name": "x", "scopes": ["root"]}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "scopes[0]");
    let r = s
        .post(
            "/v1/account/keys",
            &admin,
            json!({"name": "x", "models": ["gpt-17"]}),
        )
        .await;
    r.assert_error(404, "model_not_found");
    let r = s
        .post("/v1/account/keys", &admin, json!({"name": ""}))
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "name");

    // Revoke: fails on its next request; other accounts' keys are invisible.
    let r = Resp::from(
        s.http
            .delete(s.url(&format!("/v1/account/keys/{id}")))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(r.assert_ok(200)["revoked_at"].is_string());
    s.get("/v1/models", &secret)
        .await
        .assert_error(401, "authentication_failed");
    let (_, stranger) = s.admin("payg");
    s.get(&format!("/v1/account/keys/{id}"), &stranger)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn an_account_holds_at_most_20_active_keys() {
    let s = Server::start().await;
    let (account, admin) = s.admin("enterprise");
    // The admin key is the first; 19 more through the API.
    let mut last = String::new();
    for i in 1..20 {
        let r = s
            .post("/v1/account/keys", &admin, json!({"name": format!("k{i}")}))
            .await;
        last = r.assert_ok(201)["id"].as_str().expect("id").to_owned();
    }
    let r = s
        .post("/v1/account/keys", &admin, json!({"name": "k20"}))
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("limit"), 20);
    let err = s
        .cli(&["keys", "create", "--account", &account, "--name", "cli"])
        .expect_err("the CLI obeys the same limit");
    assert_eq!(err["error"]["details"]["limit"], 20);
    // Revoking one frees a place.
    s.cli(&["keys", "revoke", &last]).expect("revoke");
    s.post("/v1/account/keys", &admin, json!({"name": "k20"}))
        .await
        .assert_ok(201);
}
