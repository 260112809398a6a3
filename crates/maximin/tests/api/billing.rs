//! Billing (issue 16): prices, starting credits, charges from usage,
//! credit holds under concurrency, refusals in each surface's shape,
//! grants by the operator, key budgets and per-request caps.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{Resp, Server};

/// Prices large enough to see: a gemma token in costs 1,000 micro-USD, one
/// out 2,000; a billed character of espeak speech 100.
const PRICED: &str = r#"
[billing]
starting_credits_usd = 1

[billing.prices."gemma-3-270m"]
input = 1000
output = 2000

[billing.prices."speech-2.8-turbo"]
per_10k_characters = 1
"#;

fn speech(text: &str) -> Value {
    json!({"model": "speech-2.8-turbo", "text": text,
           "voice_setting": {"voice_id": "English_expressive_narrator"},
           "audio_setting": {"format": "mp3"}})
}

fn micro(usd: &Value) -> i64 {
    (usd.as_f64()
        .unwrap_or_else(|| panic!("not a number: {usd}"))
        * 1e6)
        .round() as i64
}

async fn post_with(
    s: &Server,
    path: &str,
    key: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = s.http.post(s.url(path)).bearer_auth(key).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Resp::from(req.send().await.expect("send")).await
}

/// The billing view once `requests` live and `sandbox` sandbox requests of
/// this month are in it (usage is written off the request path).
async fn billing_after(s: &Server, admin: &str, requests: u64, sandbox: u64) -> Value {
    for _ in 0..100 {
        let b = s.get("/v1/account/billing", admin).await;
        let d = b.assert_ok(200).clone();
        if d["this_month"]["requests"] == requests && d["sandbox"]["requests"] == sandbox {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("billing never showed {requests} live and {sandbox} sandbox requests");
}

fn line<'a>(lines: &'a Value, name: &str) -> &'a Value {
    lines
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no line {name} in {lines}"))
}

#[tokio::test]
async fn requests_are_charged_from_their_usage_shown_by_model_and_key_and_capped() {
    let s = Server::with_models(PRICED).await;
    let (account, admin) = s.admin("payg");
    let (live_id, live) = s.key(&account, &[]);
    let (_, sandbox) = s.key(&account, &["--test"]);

    // The prices in force are the operator's.
    let m = s.get("/v1/models/gemma-3-270m", &live).await;
    assert_eq!(m.assert_ok(200)["price"]["input_per_million"], 1000.0);
    let m = s.get("/v1/models/speech-2.8-turbo", &live).await;
    assert_eq!(m.assert_ok(200)["price"]["per_10k_characters"], 1.0);

    let chat = json!({"model": "gemma-3-270m", "max_tokens": 4, "seed": 1,
                      "messages": [{"role": "user", "content": "Say hello."}]});
    let r = s.post("/v1/chat/completions", &live, chat.clone()).await;
    let usage = r.assert_ok(200)["usage"].clone();
    let chat_cost = usage["prompt_tokens"].as_i64().expect("prompt") * 1000
        + usage["completion_tokens"].as_i64().expect("completion") * 2000;
    // "hello world": 10 billed characters, 1,000 micro-USD.
    let r = s.post("/v1/t2a_v2", &live, speech("hello world")).await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
    assert_eq!(r.body["extra_info"]["usage_characters"], 10);
    // A sandbox key is never charged, and its usage is shown apart.
    let r = s.post("/v1/t2a_v2", &sandbox, speech("hello world")).await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);

    let b = billing_after(&s, &admin, 2, 1).await;
    assert_eq!(b["plan"], "payg");
    assert_eq!(b["invoiced"], false);
    let spent = chat_cost + 1000;
    assert_eq!(micro(&b["balance_usd"]), 1_000_000 - spent, "{b}");
    assert_eq!(
        micro(&b["held_usd"]),
        0,
        "holds are released once charged: {b}"
    );
    assert_eq!(micro(&b["this_month"]["cost_usd"]), spent);
    let gemma = line(&b["this_month"]["by_model"], "gemma-3-270m");
    assert_eq!(micro(&gemma["cost_usd"]), chat_cost);
    assert_eq!(gemma["prompt_tokens"], usage["prompt_tokens"]);
    assert_eq!(
        micro(&line(&b["this_month"]["by_model"], "speech-2.8-turbo")["cost_usd"]),
        1000
    );
    assert_eq!(
        micro(&line(&b["this_month"]["by_key"], &live_id)["cost_usd"]),
        spent
    );
    assert_eq!(b["sandbox"]["requests"], 1);
    assert_eq!(micro(&b["sandbox"]["cost_usd"]), 0);
    assert_eq!(b["months"].as_array().expect("months").len(), 12);
    assert_eq!(micro(&b["months"][11]["cost_usd"]), spent);
    assert_eq!(b["months"][11]["sandbox_requests"], 1);
    assert_eq!(b["credits"][0]["kind"], "starting");
    assert_eq!(micro(&b["credits"][0]["amount_usd"]), 1_000_000);
    // Each request's cost is in the key's activity log.
    let act = s
        .get(&format!("/v1/account/keys/{live_id}/activity"), &admin)
        .await;
    let costs: Vec<i64> = act
        .assert_ok(200)
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| micro(&e["cost_usd"]))
        .collect();
    assert!(
        costs.contains(&chat_cost) && costs.contains(&1000),
        "{costs:?}"
    );
    // The CLI shows the same.
    let cli = s
        .cli(&["billing", "show", "--account", &account])
        .expect("billing show");
    assert_eq!(cli["balance_usd"], b["balance_usd"]);

    // This month's statement: open, its lines the live key's, sandbox apart.
    let list = s.get("/v1/account/invoices", &admin).await;
    let first = list.assert_ok(200)[0].clone();
    assert_eq!(first["month"], b["month"]);
    assert_eq!(
        first["id"],
        format!("inv_{}", b["month"].as_str().expect("month"))
    );
    assert_eq!(first["status"], "open");
    assert_eq!(micro(&first["total_usd"]), spent);
    assert_eq!(micro(&first["credits_usd"]), 1_000_000);
    assert_eq!(
        micro(&first["amount_due_usd"]),
        0,
        "prepaid: paid from the balance"
    );
    let id = first["id"].as_str().expect("id");
    let inv = s.get(&format!("/v1/account/invoices/{id}"), &admin).await;
    let inv = inv.assert_ok(200).clone();
    assert_eq!(inv["sandbox_requests"], 1);
    let lines = inv["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 2, "{inv}");
    assert!(lines.iter().all(|l| l["key_id"] == live_id.as_str()));
    assert_eq!(
        lines.iter().map(|l| micro(&l["cost_usd"])).sum::<i64>(),
        spent
    );
    let page = s
        .http
        .get(s.url(&format!("/v1/account/invoices/{id}?format=html")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("html");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/html"));
    let page = page.text().await.expect("page");
    assert!(
        page.contains("gemma-3-270m") && page.contains(&live_id),
        "{page}"
    );
    s.get(&format!("/v1/account/invoices/{id}?format=xml"), &admin)
        .await
        .assert_error(400, "invalid_request");
    s.get("/v1/account/invoices/inv_1999-01", &admin)
        .await
        .assert_error(404, "not_found");
    s.get("/v1/account/invoices/nope", &admin)
        .await
        .assert_error(404, "not_found");

    // A request whose estimate is over its cap is refused before it runs.
    let r = post_with(
        &s,
        "/v1/chat/completions",
        &live,
        chat.clone(),
        &[("X-Maximin-Max-Cost-Usd", "0.01")],
    )
    .await;
    r.assert_error(402, "insufficient_credits");
    assert_eq!(*r.detail("reason"), "max_cost");
    let r = post_with(
        &s,
        "/v1/chat/completions",
        &live,
        chat,
        &[("X-Maximin-Max-Cost-Usd", "lots")],
    )
    .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(*r.detail("field"), "X-Maximin-Max-Cost-Usd");
    // Under the cap it runs.
    let r = post_with(
        &s,
        "/v1/t2a_v2",
        &live,
        speech("hello world"),
        &[("X-Maximin-Max-Cost-Usd", "0.001")],
    )
    .await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);

    // A stream is cut where its cost reaches its cap, ending with the
    // surface's error event, and metered for what it delivered: "Say
    // hello." counts 3 prompt tokens ($0.003), each delta $0.002, so a cap
    // of $0.009 lets 3 deltas through. (Invoiced, so no hold for an
    // answer of unbounded length.)
    let (ent, ent_admin) = s.admin("enterprise");
    let (_, ent_key) = s.key(&ent, &[]);
    let stream = json!({"model": "gemma-3-270m", "stream": true, "seed": 1,
                        "messages": [{"role": "user", "content": "Say hello."}]});
    let body = s
        .http
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(&ent_key)
        .header("X-Maximin-Max-Cost-Usd", "0.009")
        .json(&stream)
        .send()
        .await
        .expect("stream")
        .text()
        .await
        .expect("body");
    let frames: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("frame"))
        .collect();
    let last = frames.last().expect("frames");
    assert_eq!(last["error"]["code"], "insufficient_credits", "{body}");
    assert_eq!(last["error"]["details"]["reason"], "max_cost");
    let deltas = frames
        .iter()
        .filter(|f| f["choices"][0]["delta"]["content"].is_string())
        .count();
    assert_eq!(deltas, 3, "{body}");
    let eb = billing_after(&s, &ent_admin, 1, 0).await;
    assert_eq!(
        micro(&eb["this_month"]["cost_usd"]),
        9000,
        "metered for what it delivered: {eb}"
    );
    assert_eq!(eb["invoiced"], true);
    let inv = s.get("/v1/account/invoices", &ent_admin).await;
    assert_eq!(
        micro(&inv.assert_ok(200)[0]["amount_due_usd"]),
        9000,
        "invoiced plans owe their spend"
    );

    // A key's monthly budget: $0.0015 pays for one 10-character speech
    // request ($0.001), not two.
    let k = s
        .post(
            "/v1/account/keys",
            &admin,
            json!({"name": "budgeted", "budget_usd": 0.0015}),
        )
        .await;
    let k = k.assert_ok(201).clone();
    assert_eq!(k["budget_usd"], 0.0015);
    let budgeted = k["secret"].as_str().expect("secret");
    let r = s.post("/v1/t2a_v2", budgeted, speech("hello world")).await;
    assert_eq!(r.body["base_resp"]["status_code"], 0, "{}", r.body);
    let r = s.post("/v1/t2a_v2", budgeted, speech("hello world")).await;
    assert_eq!(r.body["base_resp"]["status_code"], 1008, "{}", r.body);
    assert!(
        r.body["base_resp"]["status_msg"]
            .as_str()
            .expect("msg")
            .contains("budget"),
        "{}",
        r.body
    );
    // The CLI sets budgets too.
    let k = s
        .cli(&[
            "keys",
            "create",
            "--account",
            &account,
            "--name",
            "cli",
            "--budget-usd",
            "20",
        ])
        .expect("key");
    assert_eq!(k["budget_usd"], 20.0);
}

#[tokio::test]
async fn tokens_per_minute_count_the_prompt_at_admission_and_settle_the_answer() {
    let s = Server::with_models("").await;
    let email = format!("{}@example.com", crate::helpers::rand_suffix());
    let a = s
        .cli(&[
            "accounts",
            "create",
            "--email",
            &email,
            "--plan",
            "enterprise",
            "--tpm",
            "300",
        ])
        .expect("account");
    assert_eq!(a["limits"]["tpm"], 300);
    let (_, key) = s.key(a["id"].as_str().expect("id"), &[]);
    // Both requests and their settling in one window: an answer settled
    // after the minute turned counts in the next window, not the first's.
    crate::ratelimit::away_from_a_window_edge().await;
    // "Say hello." is 10 bytes: 3 tokens counted at admission.
    let chat = json!({"model": "gemma-3-270m", "max_tokens": 8, "seed": 1,
                      "messages": [{"role": "user", "content": "Say hello."}]});
    let first = s.post("/v1/chat/completions", &key, chat.clone()).await;
    let usage = first.assert_ok(200)["usage"].clone();
    let used = usage["prompt_tokens"].as_u64().expect("p")
        + usage["completion_tokens"].as_u64().expect("c");
    assert_eq!(first.header("x-ratelimit-limit-tokens"), Some("300"));
    assert_eq!(first.header("x-ratelimit-remaining-tokens"), Some("297"));
    let reset: u64 = first
        .header("x-ratelimit-reset-tokens")
        .expect("reset")
        .parse()
        .expect("unix seconds");
    assert_eq!(reset % 60, 0, "the end of a one-minute window");
    assert!(
        first.header("x-ratelimit-limit").is_some(),
        "requests per minute still reported"
    );
    // The first answer was settled at what it used: the second request
    // sees 300 less those, less its own 3.
    let second = s.post("/v1/chat/completions", &key, chat.clone()).await;
    second.assert_ok(200);
    let left = 300 - used - 3;
    assert_eq!(
        second.header("x-ratelimit-remaining-tokens"),
        Some(left.to_string().as_str())
    );
    // A prompt that does not fit is refused before it runs, with the headers.
    let long = "word ".repeat(400);
    let big = json!({"model": "gemma-3-270m", "max_tokens": 8,
                     "messages": [{"role": "user", "content": long}]});
    let r = s.post("/v1/chat/completions", &key, big.clone()).await;
    r.assert_error(429, "rate_limit_exceeded");
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("300"));
    assert_eq!(*r.detail("limit_tokens"), 300);
    // In the OpenAI surface's own shape too.
    let r = s.post("/openai/v1/chat/completions", &key, big).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["error"]["type"], "rate_limit_error");
    // Speech counts characters, not tokens: no token headers.
    let r = s.post("/v1/t2a_v2", &key, speech("hello")).await;
    assert_eq!(r.header("x-ratelimit-limit-tokens"), None);
}

#[tokio::test]
async fn sixty_four_concurrent_requests_cannot_overdraw_a_balance_that_covers_ten() {
    // Ten requests of 100 billed characters at $1 per 10,000: $0.10.
    let config = PRICED.replace("starting_credits_usd = 1", "starting_credits_usd = 0.1");
    let s = Server::with_models(&config).await;
    let (account, admin) = s.admin("payg");
    let (_, key) = s.key(&account, &[]);
    let text = "hello ".repeat(20);
    let results = join_all((0..64).map(|_| s.post("/v1/t2a_v2", &key, speech(&text)))).await;
    let codes: Vec<i64> = results
        .iter()
        .map(|r| r.body["base_resp"]["status_code"].as_i64().expect("code"))
        .collect();
    let ok = codes.iter().filter(|c| **c == 0).count();
    let refused = codes.iter().filter(|c| **c == 1008).count();
    assert_eq!(ok + refused, 64, "only successes and refusals: {codes:?}");
    assert!((1..=10).contains(&ok), "{ok} ran");
    let b = billing_after(&s, &admin, ok as u64, 0).await;
    let balance = micro(&b["balance_usd"]);
    assert_eq!(balance, 100_000 - 10_000 * ok as i64, "{b}");
    assert!(balance >= 0, "overdrawn: {b}");
    assert_eq!(micro(&b["held_usd"]), 0);
    if ok == 10 {
        // Nothing left: refused at admission, before any work.
        let r = s.post("/v1/t2a_v2", &key, speech("hi")).await;
        assert_eq!(r.body["base_resp"]["status_code"], 1008, "{}", r.body);
    }
}

#[tokio::test]
async fn no_credit_is_refused_in_each_surfaces_shape_and_grants_restore_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("maximin.toml"),
        "[billing]\nstarting_credits_usd = 0\n",
    )
    .expect("config");
    let s = Server::start_in(dir, &[]).await;
    let (account, admin) = s.admin("payg");
    let (_, key) = s.key(&account, &[]);
    let chat = json!({"model": "gemma-3-270m", "max_tokens": 4,
                      "messages": [{"role": "user", "content": "hi"}]});

    let r = s.post("/v1/chat/completions", &key, chat.clone()).await;
    r.assert_error(402, "insufficient_credits");
    assert_eq!(*r.detail("reason"), "balance");
    let r = s
        .post("/openai/v1/chat/completions", &key, chat.clone())
        .await;
    assert_eq!(r.status, 402, "{}", r.body);
    assert_eq!(r.body["error"]["type"], "insufficient_quota");
    assert_eq!(r.body["error"]["code"], "insufficient_credits");
    let r = s.post("/anthropic/v1/messages", &key, chat.clone()).await;
    assert_eq!(r.status, 402, "{}", r.body);
    assert_eq!(r.body["error"]["type"], "billing_error");
    let r = s.post("/v1/t2a_v2", &key, speech("hello")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["base_resp"]["status_code"], 1008, "{}", r.body);
    // The WebSocket gets no socket either: the native 1008 on its upgrade.
    match crate::speech_ws::connect(&s, &key).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                .expect("a JSON error body");
            assert_eq!(body["base_resp"]["status_code"], 1008, "{body}");
        }
        Err(e) => panic!("the upgrade was refused without a native error: {e}"),
        Ok(_) => panic!("an account with no credit got a socket"),
    }
    // Uploads spend storage: refused too. Reading and deleting are not.
    let r = s
        .upload(&key, "t2a_async_input", "a.txt", b"hello".to_vec())
        .await;
    assert_eq!(r.body["base_resp"]["status_code"], 1008, "{}", r.body);
    s.get("/v1/models", &key).await.assert_ok(200);
    s.get("/v1/account/billing", &admin).await.assert_ok(200);

    // Sandbox keys and invoiced plans are not held to a balance: these get
    // as far as the model, which this server does not have.
    let (_, sandbox) = s.key(&account, &["--test"]);
    let r = s.post("/v1/chat/completions", &sandbox, chat.clone()).await;
    assert_ne!(r.status, 402, "{}", r.body);
    let (_, enterprise) = s.admin("enterprise");
    let r = s
        .post("/v1/chat/completions", &enterprise, chat.clone())
        .await;
    assert_ne!(r.status, 402, "{}", r.body);

    // Only the operator's account grants credit.
    let grant = json!({"account_id": account, "usd": 2.5, "note": "top-up"});
    s.post("/v1/account/credits", &admin, grant.clone())
        .await
        .assert_error(403, "permission_denied");
    let email = format!("{}@example.com", crate::helpers::rand_suffix());
    let op = s
        .cli(&[
            "accounts",
            "create",
            "--email",
            &email,
            "--plan",
            "enterprise",
            "--operator",
        ])
        .expect("operator account");
    assert_eq!(op["operator"], true);
    let (_, operator) = s.key(op["id"].as_str().expect("id"), &["--scope", "admin"]);
    let g = s.post("/v1/account/credits", &operator, grant).await;
    let g = g.assert_ok(201);
    assert_eq!(g["balance_usd"], 2.5);
    assert_eq!(g["note"], "top-up");
    let bad = s
        .post(
            "/v1/account/credits",
            &operator,
            json!({"account_id": account, "usd": -1}),
        )
        .await;
    bad.assert_error(400, "invalid_request");
    assert_eq!(*bad.detail("field"), "usd");
    s.post(
        "/v1/account/credits",
        &operator,
        json!({"account_id": "acct_nobody", "usd": 1}),
    )
    .await
    .assert_error(404, "not_found");
    let cli = s
        .cli(&[
            "billing",
            "grant",
            "--account",
            &account,
            "--usd",
            "1",
            "--note",
            "by hand",
        ])
        .expect("grant");
    assert_eq!(cli["balance_usd"], 3.5);

    // With credit, the request passes admission (and meets the missing model).
    let r = s.post("/v1/chat/completions", &key, chat).await;
    r.assert_error(503, "model_unavailable");
    let b = s.get("/v1/account/billing", &admin).await;
    let b = b.assert_ok(200);
    assert_eq!(b["balance_usd"], 3.5);
    let notes: Vec<&str> = b["credits"]
        .as_array()
        .expect("credits")
        .iter()
        .map(|c| c["note"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        notes,
        ["top-up", "by hand"],
        "no starting credits configured: {b}"
    );
}
