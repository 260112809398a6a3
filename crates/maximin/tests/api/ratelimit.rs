use std::time::Duration;

use crate::helpers::Server;

/// Waits, if needed, so that the next few seconds fall inside one clock minute:
/// limits count in fixed one-minute windows.
pub async fn away_from_a_window_edge() {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let into = secs % 60.0;
    if into > 45.0 {
        tokio::time::sleep(Duration::from_secs_f64(60.0 - into + 0.2)).await;
    }
}

#[tokio::test]
async fn free_plan_gets_60_requests_a_minute_across_endpoints_then_429() {
    let s = Server::start().await;
    let (account, key) = s.admin("free");
    away_from_a_window_edge().await;
    let mut reset = None;
    for i in 0..60u32 {
        // Alternate endpoints: the free plan shares one counter.
        let path = if i % 2 == 0 {
            "/v1/models"
        } else {
            "/v1/account"
        };
        let r = s.get(path, &key).await;
        r.assert_ok(200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("60"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((59 - i).to_string().as_str())
        );
        let this_reset: u64 = r
            .header("x-ratelimit-reset")
            .expect("reset")
            .parse()
            .expect("number");
        assert_eq!(*reset.get_or_insert(this_reset), this_reset, "one window");
    }
    let r = s.get("/v1/models", &key).await;
    r.assert_error(429, "rate_limit_exceeded");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    let retry: u64 = r
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(r.detail("limit"), 60);

    // The account is at its ceiling too: a new key of it gets nothing more.
    let (_, other) = s.key(&account, &[]);
    let r = s.get("/v1/models", &other).await;
    r.assert_error(429, "rate_limit_exceeded");
    assert_eq!(r.detail("applies_to"), "account");
}

#[tokio::test]
async fn keys_of_a_free_account_share_its_60_requests_a_minute() {
    let s = Server::start().await;
    let account = s.account("free");
    let (_, first) = s.key(&account, &[]);
    let (_, second) = s.key(&account, &[]);
    away_from_a_window_edge().await;
    for i in 0..60u32 {
        // Two keys taking turns: one count for the account, reported as the
        // tighter of the key's and the account's counters.
        let key = if i % 2 == 0 { &first } else { &second };
        let r = s.get("/v1/models", key).await;
        r.assert_ok(200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("60"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((59 - i).to_string().as_str()),
            "request {i}"
        );
    }
    for key in [&first, &second] {
        let r = s.get("/v1/models", key).await;
        r.assert_error(429, "rate_limit_exceeded");
        assert_eq!(r.detail("applies_to"), "account");
        assert_eq!(r.detail("limit"), 60);
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
        assert!(r.header("retry-after").is_some());
    }
    // A key made now is held to the same ceiling.
    let (_, third) = s.key(&account, &[]);
    s.get("/v1/models", &third)
        .await
        .assert_error(429, "rate_limit_exceeded");
    // Another free account is not.
    let (_, stranger) = s.admin("free");
    let r = s.get("/v1/models", &stranger).await;
    r.assert_ok(200);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("59"));
}

#[tokio::test]
async fn payg_limits_are_per_endpoint_class_and_enterprise_is_configurable() {
    let s = Server::start().await;
    let (_, payg) = s.admin("payg");
    let r = s.get("/v1/models", &payg).await;
    assert_eq!(r.header("x-ratelimit-limit"), Some("300"));
    let r = s
        .post("/v1/chat/completions", &payg, serde_json::json!({"model": "MiniMax-M2", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(
        r.header("x-ratelimit-limit"),
        Some("600"),
        "errors after auth carry the headers too"
    );
    // Its own counter: still one request into the chat class.
    assert_eq!(r.header("x-ratelimit-remaining"), Some("599"));

    let ent = s
        .cli(&[
            "accounts",
            "create",
            "--email",
            "big@example.com",
            "--plan",
            "enterprise",
            "--rpm",
            "5",
            "--burst",
            "2",
        ])
        .expect("enterprise");
    let ent_id = ent["id"].as_str().expect("id");
    assert_eq!(ent["limits"]["rpm"], 5);
    let (_, ek) = s.key(ent_id, &[]);
    away_from_a_window_edge().await;
    for _ in 0..7 {
        let r = s.get("/v1/models", &ek).await;
        r.assert_ok(200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("7"));
    }
    s.get("/v1/models", &ek)
        .await
        .assert_error(429, "rate_limit_exceeded");

    // Custom limits belong to enterprise accounts only.
    let err = s
        .cli(&[
            "accounts",
            "create",
            "--email",
            "small@example.com",
            "--plan",
            "payg",
            "--rpm",
            "5",
        ])
        .expect_err("refused");
    assert_eq!(err["error"]["details"]["field"], "limits");
}
