//! The privacy dashboard API (issue 16): the privacy action log.

use serde_json::{json, Value};

use crate::helpers::{Resp, Server};

fn actions(log: &Value) -> Vec<(String, String)> {
    log.as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().expect("action").to_owned(),
                e["subject"].as_str().expect("subject").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn key_and_routing_changes_are_logged_append_only_without_secrets() {
    let s = Server::start().await;
    let (account, admin) = s.admin("payg");
    let admin_id = s.get("/v1/account/keys", &admin).await.assert_ok(200)[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let made = s
        .post(
            "/v1/account/keys",
            &admin,
            json!({"name": "ci", "test": true}),
        )
        .await;
    let made = made.assert_ok(201).clone();
    let (id, secret) = (
        made["id"].as_str().expect("id"),
        made["secret"].as_str().expect("secret"),
    );
    let r = Resp::from(
        s.http
            .delete(s.url(&format!("/v1/account/keys/{id}")))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("revoke"),
    )
    .await;
    r.assert_ok(200);
    let r = Resp::from(
        s.http
            .patch(s.url("/v1/account"))
            .bearer_auth(&admin)
            .json(&json!({"regions": ["eu-west"], "pii": "redact"}))
            .send()
            .await
            .expect("patch"),
    )
    .await;
    r.assert_ok(200);

    let log = s.get("/v1/account/privacy/log", &admin).await;
    let log = log.assert_ok(200).clone();
    assert_eq!(
        actions(&log),
        [
            ("key_created".to_owned(), admin_id.clone()),
            ("key_created".to_owned(), id.to_owned()),
            ("key_revoked".to_owned(), id.to_owned()),
            ("routing_changed".to_owned(), account.clone()),
        ]
    );
    assert_eq!(log[1]["detail"]["mode"], "test");
    assert_eq!(log[3]["detail"]["regions"], json!(["eu-west"]));
    assert_eq!(log[3]["detail"]["pii"], "redact");
    let text = log.to_string();
    assert!(!text.contains(secret), "no secret in the log");
    // Revoking again changes nothing and logs nothing (the CLI's read
    // below is the same as the log read above).
    s.http
        .delete(s.url(&format!("/v1/account/keys/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    // The CLI reads the same log; another account's is its own.
    let cli = s
        .cli(&["privacy", "log", "--account", &account])
        .expect("privacy log");
    assert_eq!(actions(&cli), actions(&log));
    let (_, other) = s.admin("free");
    let theirs = s.get("/v1/account/privacy/log", &other).await;
    assert_eq!(actions(theirs.assert_ok(200)).len(), 1, "only its own key");
    // Admin scope only.
    let (_, plain) = s.key(&account, &[]);
    s.get("/v1/account/privacy/log", &plain)
        .await
        .assert_error(403, "permission_denied");
}
