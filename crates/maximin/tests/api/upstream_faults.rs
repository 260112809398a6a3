//! Routing against mock providers (`upstream_mock`): the MiniMax-native
//! wire through both SDKs, and the faults a gateway must survive: 429 with
//! `Retry-After`, 5xx until the breaker opens (and a probe closes it), a
//! provider that hangs, one that dies mid-stream, failover to another
//! deployment and to a fallback model, region pinning, PII placeholders and
//! sandbox keys. What the providers received is asserted at the providers.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::Server;
use crate::sdk::sdk;
use crate::upstream_mock::{Behaviour, MockKind, MockUpstream};

struct Rig {
    gw: Server,
    eu: MockUpstream,
    us: MockUpstream,
    mm: MockUpstream,
}

/// A gateway over three mocks: `eu` (OpenAI-compatible, eu-west), `us`
/// (OpenAI-compatible, us-east), `mm` (MiniMax native, eu-west).
/// Models: `pair` on eu and us; `solo` on eu with `backup` (on us) as its
/// fallback; `mm-chat` and `mm-embed` on the MiniMax mock.
async fn rig() -> Rig {
    let eu = MockUpstream::start(MockKind::OpenAi).await;
    let us = MockUpstream::start(MockKind::OpenAi).await;
    let mm = MockUpstream::start(MockKind::MiniMax).await;
    mm.expect_key("mm-provider-key-123");
    let upstream = |name: &str, kind: &str, url: &str, region: &str| {
        format!(
            "[upstreams.{name}]\nkind = \"{kind}\"\nbase_url = \"{url}\"\nregion = \"{region}\"\ntimeout_s = 1.5\nbreaker_failures = 3\nbreaker_cooldown_s = 1\nretries = 2\n"
        )
    };
    let model = |id: &str, modality: &str, body: &str| {
        format!(
            "[[models]]\nid = \"{id}\"\nmodality = \"{modality}\"\ncontext_window = 4096\n{body}\n"
        )
    };
    let config = [
        upstream("eu", "openai", &format!("{}/v1", eu.url), "eu-west"),
        upstream("us", "openai", &format!("{}/v1", us.url), "us-east"),
        upstream("mm", "minimax", &mm.url, "eu-west") + "api_key_env = \"MM_KEY\"\n",
        model(
            "pair",
            "text",
            "[[models.deployments]]\nupstream = \"eu\"\nmodel = \"p-eu\"\n[[models.deployments]]\nupstream = \"us\"\nmodel = \"p-us\"",
        ),
        model("solo", "text", "engine = \"upstream:eu\"\nupstream_model = \"s-eu\"\nfallbacks = [\"backup\"]"),
        model("backup", "text", "engine = \"upstream:us\"\nupstream_model = \"b-us\""),
        model("mm-chat", "text", "engine = \"upstream:mm\"\nupstream_model = \"MiniMax-M2\""),
        model("mm-embed", "embeddings", "engine = \"upstream:mm\"\nupstream_model = \"embo-01\""),
        model("mm-speech", "speech", "engine = \"upstream:mm\"\nupstream_model = \"speech-2.8-hd\""),
        model("oa-speech", "speech", "engine = \"upstream:eu\"\nupstream_model = \"tts-1\""),
    ]
    .join("\n");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("maximin.toml"), config).expect("config");
    let gw = Server::start_with_env(dir, &[], &[("MM_KEY", "mm-provider-key-123")]).await;
    Rig { gw, eu, us, mm }
}

/// The key's usage of one model (`by_model` of `/v1/account/usage`).
async fn usage_row(gw: &Server, key: &str, model: &str) -> Value {
    let u = gw.get("/v1/account/usage", key).await;
    u.assert_ok(200)["by_model"]
        .as_array()
        .expect("by_model")
        .iter()
        .find(|m| m["model"] == model)
        .cloned()
        .unwrap_or_else(|| panic!("{model} metered: {}", u.body))
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": text}]})
}

async fn stream_text(gw: &Server, path: &str, key: &str, body: Value) -> (u16, String) {
    let r = gw
        .http
        .post(gw.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn both_sdks_reach_the_minimax_cloud_wire() {
    let r = rig().await;
    let (_, key) = r.gw.admin("payg");
    let env = [("MAXIMIN_CHAT", "mm-chat")];
    let o = sdk(&r.gw, &key, "openai_sdk.py", "gateway", &env);
    assert_eq!(o["text"], "echo: Hello there", "{o}");
    assert_eq!(o["stream_text"], "echo: Hello there", "{o}");
    assert_eq!(o["usage"]["completion_tokens"], 3);
    assert_eq!(o["stream_usage"]["completion_tokens"], 3);
    assert_eq!(o["finish"], "tool_calls");
    assert_eq!(o["tool"], "lookup");
    assert_eq!(o["args"]["echo"], "please call_tool now");
    assert_eq!(o["stream_args"]["echo"], "please call_tool now", "{o}");
    let a = sdk(&r.gw, &key, "anthropic_sdk.py", "gateway", &env);
    assert_eq!(a["text"], "echo: Hello there", "{a}");
    assert_eq!(a["stream_text"], "echo: Hello there", "{a}");
    assert_eq!(a["stop"], "tool_use");
    assert_eq!(a["args"]["echo"], "please call_tool now");
    assert_eq!(a["stream_args"]["echo"], "please call_tool now", "{a}");

    // What the provider received: its own wire, the provider's model name
    // and the key from the environment.
    let got = r.mm.received();
    let first = got
        .iter()
        .find(|g| g.path == "/v1/text/chatcompletion_v2")
        .expect("native chat");
    assert_eq!(first.body["model"], "MiniMax-M2");
    assert_eq!(
        first.header("authorization"),
        Some("Bearer mm-provider-key-123")
    );
    assert!(!r.gw.output().contains("mm-provider-key-123"));

    let e =
        r.gw.post(
            "/v1/embeddings",
            &key,
            json!({"model": "mm-embed", "input": ["one two", "three"]}),
        )
        .await;
    assert_eq!(
        e.assert_ok(200)["embeddings"].as_array().map(Vec::len),
        Some(2)
    );
    let emb =
        r.mm.received()
            .into_iter()
            .rfind(|g| g.path == "/v1/embeddings")
            .expect("embeddings");
    assert_eq!(emb.body["texts"], json!(["one two", "three"]));
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_5xx_opens_then_closes_the_breaker() {
    let r = rig().await;
    let (_, key) = r.gw.admin("enterprise");

    r.eu.behave(Behaviour::Fail {
        status: 429,
        retry_after: Some(1),
        times: 1,
    });
    let started = Instant::now();
    let ok =
        r.gw.post("/v1/chat/completions", &key, chat("solo", "hi"))
            .await;
    assert_eq!(
        ok.assert_ok(200)["choices"][0]["message"]["content"],
        "echo: hi"
    );
    assert_eq!(
        ok.header("x-maximin-upstream"),
        Some("eu:s-eu"),
        "the same deployment, after waiting"
    );
    let tries: Vec<_> =
        r.eu.received()
            .into_iter()
            .filter(|g| g.path == "/v1/chat/completions")
            .collect();
    assert_eq!(tries.len(), 2);
    assert!(
        tries[1].at.duration_since(tries[0].at) >= Duration::from_millis(950),
        "Retry-After honoured"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // 500s: each request fails over to the fallback model, until the breaker
    // opens and the failing deployment is not tried at all.
    r.eu.behave(Behaviour::Fail {
        status: 500,
        retry_after: None,
        times: 1000,
    });
    for _ in 0..3 {
        let ok =
            r.gw.post("/v1/chat/completions", &key, chat("solo", "hi"))
                .await;
        ok.assert_ok(200);
        assert_eq!(
            ok.header("x-maximin-upstream"),
            Some("us:b-us"),
            "the fallback answered"
        );
    }
    let breaker = |list: &Value| {
        list["data"]
            .as_array()
            .expect("list")
            .iter()
            .flat_map(|u| u["deployments"].as_array().cloned().unwrap_or_default())
            .find(|d| d["model"] == "solo")
            .map(|d| d["breaker"].as_str().unwrap_or("").to_owned())
    };
    let list = r.gw.get("/v1/upstreams", &key).await;
    assert_eq!(
        breaker(&list.body).as_deref(),
        Some("open"),
        "{}",
        list.body
    );
    let before = r.eu.hits_on("/v1/chat/completions");
    let ok =
        r.gw.post("/v1/chat/completions", &key, chat("solo", "hi"))
            .await;
    assert_eq!(ok.header("x-maximin-upstream"), Some("us:b-us"));
    assert_eq!(
        r.eu.hits_on("/v1/chat/completions"),
        before,
        "an open breaker is not tried"
    );
    let metrics =
        r.gw.http
            .get(r.gw.url("/metrics"))
            .send()
            .await
            .expect("m")
            .text()
            .await
            .expect("t");
    assert!(metrics.contains("maximin_upstream_breaker_state{upstream=\"eu\",model=\"solo\",deployment=\"eu:s-eu\"} 2"), "{metrics}");
    assert!(metrics.contains("class=\"server_error\""), "{metrics}");

    // Recovered: after the cool-down one probe goes through and closes it.
    r.eu.behave(Behaviour::Normal);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ok =
        r.gw.post("/v1/chat/completions", &key, chat("solo", "hi"))
            .await;
    assert_eq!(ok.header("x-maximin-upstream"), Some("eu:s-eu"));
    let list = r.gw.get("/v1/upstreams", &key).await;
    assert_eq!(breaker(&list.body).as_deref(), Some("closed"));
}

#[tokio::test]
async fn a_hanging_deployment_times_out_and_the_other_answers() {
    let r = rig().await;
    let (_, key) = r.gw.admin("enterprise");
    r.eu.behave(Behaviour::Hang);
    r.us.behave(Behaviour::Normal);
    for _ in 0..3 {
        let started = Instant::now();
        let ok =
            r.gw.post("/v1/chat/completions", &key, chat("pair", "hi"))
                .await;
        assert_eq!(
            ok.assert_ok(200)["choices"][0]["message"]["content"],
            "echo: hi"
        );
        assert_eq!(ok.header("x-maximin-upstream"), Some("us:p-us"));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
    // Both hanging: the answer is an upstream error, within the bounds.
    r.us.behave(Behaviour::Hang);
    let started = Instant::now();
    let e =
        r.gw.post("/v1/chat/completions", &key, chat("pair", "hi"))
            .await;
    e.assert_error(502, "upstream_error");
    assert_eq!(e.detail("reason"), "timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_stream_broken_mid_way_ends_with_the_surfaces_error_and_is_not_retried() {
    let r = rig().await;
    let (_, key) = r.gw.admin("enterprise");
    r.eu.behave(Behaviour::DieMidStream { chunks: 3 });
    let body = json!({"model": "solo", "stream": true, "max_tokens": 32,
                      "messages": [{"role": "user", "content": "a fairly long sentence to echo back"}]});
    let (status, text) =
        stream_text(&r.gw, "/openai/v1/chat/completions", &key, body.clone()).await;
    assert_eq!(status, 200);
    assert!(text.contains("\"delta\""), "some text arrived: {text}");
    assert!(
        text.contains("\"error\""),
        "the OpenAI error object ends it: {text}"
    );
    let (_, text) = stream_text(&r.gw, "/anthropic/v1/messages", &key, body.clone()).await;
    assert!(text.contains("event: error"), "{text}");
    let (_, text) = stream_text(&r.gw, "/v1/text/chatcompletion_v2", &key, body.clone()).await;
    assert!(
        text.contains("\"status_code\":1013") || text.contains("\"base_resp\""),
        "{text}"
    );
    assert_eq!(
        r.eu.hits_on("/v1/chat/completions"),
        3,
        "one try each, never retried after the first byte"
    );
    assert_eq!(
        r.us.hits_on("/v1/chat/completions"),
        0,
        "no failover after the first byte"
    );
    // Metered for what was delivered.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let solo = usage_row(&r.gw, &key, "solo").await;
    assert_eq!(solo["requests"], 3);
    assert!(
        solo["completion_tokens"].as_u64().unwrap_or(0) >= 3,
        "{solo}"
    );
}

#[tokio::test]
async fn a_region_pinned_account_never_reaches_another_region() {
    let r = rig().await;
    let (account, key) = r.gw.admin("enterprise");
    r.gw.cli(&["accounts", "update", &account, "--regions", "eu-west"])
        .expect("pin");
    for _ in 0..6 {
        let ok =
            r.gw.post("/v1/chat/completions", &key, chat("pair", "hi"))
                .await;
        assert_eq!(ok.header("x-maximin-upstream"), Some("eu:p-eu"));
    }
    r.eu.behave(Behaviour::Fail {
        status: 503,
        retry_after: None,
        times: 1000,
    });
    let e =
        r.gw.post("/v1/chat/completions", &key, chat("pair", "hi"))
            .await;
    e.assert_error(502, "upstream_error");
    assert_eq!(r.us.hits(), 0, "the us-east deployment received nothing");
    // A fallback outside the regions is not a way out either.
    let e =
        r.gw.post("/v1/chat/completions", &key, chat("solo", "hi"))
            .await;
    assert!(e.status >= 500, "{}", e.body);
    assert_eq!(r.us.hits(), 0);

    r.gw.cli(&["accounts", "update", &account, "--regions", "ap-south"])
        .expect("pin");
    let e =
        r.gw.post("/v1/chat/completions", &key, chat("pair", "hi"))
            .await;
    e.assert_error(503, "model_unavailable");
    assert!(
        e.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("ap-south"),
        "{}",
        e.body
    );
    assert_eq!(r.us.hits(), 0);
}

#[tokio::test]
async fn pii_leaves_only_as_placeholders_and_comes_back_restored() {
    let r = rig().await;
    let (account, key) = r.gw.admin("enterprise");
    r.gw.cli(&["accounts", "update", &account, "--pii", "redact"])
        .expect("redact");
    let canary = "mail jane.doe@example.com card 4111 1111 1111 1111 thanks";
    let ok =
        r.gw.post("/v1/chat/completions", &key, chat("solo", canary))
            .await;
    assert_eq!(
        ok.assert_ok(200)["choices"][0]["message"]["content"],
        format!("echo: {canary}")
    );
    let (_, streamed) = stream_text(
        &r.gw,
        "/openai/v1/chat/completions",
        &key,
        json!({"model": "solo", "stream": true, "max_tokens": 64, "messages": [{"role": "user", "content": canary}]}),
    )
    .await;
    let text: String = streamed
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        text,
        format!("echo: {canary}"),
        "restored across chunk boundaries"
    );
    for got in r.eu.received() {
        let sent = got.body.to_string();
        assert!(
            !sent.contains("jane.doe@example.com") && !sent.contains("4111"),
            "{sent}"
        );
        assert!(
            sent.contains("[EMAIL_1]") && sent.contains("[CARD_1]"),
            "{sent}"
        );
    }

    r.gw.cli(&["accounts", "update", &account, "--pii", "block"])
        .expect("block");
    let before = r.eu.hits();
    let e =
        r.gw.post("/v1/chat/completions", &key, chat("solo", canary))
            .await;
    e.assert_error(400, "invalid_request");
    assert_eq!(e.detail("field"), "messages[0].content");
    assert_eq!(e.detail("category"), "email");
    assert_eq!(r.eu.hits(), before, "nothing left for the upstream");
}

#[tokio::test]
async fn sandbox_keys_never_reach_a_paid_upstream() {
    let r = rig().await;
    let account = r.gw.account("payg");
    let (_, test_key) = r.gw.key(&account, &["--test"]);
    let e =
        r.gw.post("/v1/chat/completions", &test_key, chat("solo", "hi"))
            .await;
    e.assert_error(503, "model_unavailable");
    assert_eq!(e.detail("reason"), "sandbox");
    assert_eq!(r.eu.hits() + r.us.hits(), 0);
}

/// A gateway over `eu` and `us` with `extra` added to eu's table; `pair`
/// runs on both, `eu-only` on eu alone without retries.
async fn pair_gateway(eu: &MockUpstream, us: &MockUpstream, extra: &str) -> Server {
    let config = format!(
        "[upstreams.eu]\nkind = \"openai\"\nbase_url = \"{}/v1\"\ntimeout_s = 1\n{extra}\n\
         [upstreams.us]\nkind = \"openai\"\nbase_url = \"{}/v1\"\ntimeout_s = 1\n\
         [[models]]\nid = \"pair\"\nmodality = \"text\"\ncontext_window = 4096\n\
         [[models.deployments]]\nupstream = \"eu\"\n[[models.deployments]]\nupstream = \"us\"\n\
         [[models]]\nid = \"eu-only\"\nmodality = \"text\"\ncontext_window = 4096\nengine = \"upstream:eu\"\nretries = 0\n",
        eu.url, us.url
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("maximin.toml"), config).expect("config");
    Server::start_with_env(dir, &[], &[]).await
}

async fn healthy(gw: &Server, key: &str, name: &str) -> bool {
    let list = gw.get("/v1/upstreams", key).await;
    list.assert_ok(200)
        .as_array()
        .expect("list")
        .iter()
        .find(|u| u["name"] == name)
        .map(|u| u["healthy"] == true)
        .expect("listed")
}

#[tokio::test]
async fn an_active_health_check_takes_a_failing_upstream_out_of_rotation() {
    let eu = MockUpstream::start(MockKind::OpenAi).await;
    let us = MockUpstream::start(MockKind::OpenAi).await;
    let gw = pair_gateway(
        &eu,
        &us,
        "health_check_path = \"/models\"\nhealth_check_interval_s = 0.2",
    )
    .await;
    let (_, key) = gw.admin("enterprise");
    assert!(healthy(&gw, &key, "eu").await);
    eu.behave(Behaviour::Fail {
        status: 500,
        retry_after: None,
        times: 1000,
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!healthy(&gw, &key, "eu").await, "the probe failed");
    for _ in 0..5 {
        let ok = gw
            .post("/v1/chat/completions", &key, chat("pair", "hi"))
            .await;
        assert_eq!(ok.header("x-maximin-upstream"), Some("us:pair"));
    }
    assert_eq!(
        eu.hits_on("/v1/chat/completions"),
        0,
        "out of rotation: not even tried"
    );
    eu.behave(Behaviour::Normal);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(healthy(&gw, &key, "eu").await, "back once a probe passes");
}

#[tokio::test]
async fn max_concurrency_makes_requests_wait_for_a_free_place() {
    let eu = MockUpstream::start(MockKind::OpenAi).await;
    let us = MockUpstream::start(MockKind::OpenAi).await;
    let gw = pair_gateway(&eu, &us, "max_concurrency = 1").await;
    let (_, key) = gw.admin("enterprise");
    eu.behave(Behaviour::Hang);
    let (a, b) = tokio::join!(
        gw.post("/v1/chat/completions", &key, chat("eu-only", "one")),
        gw.post("/v1/chat/completions", &key, chat("eu-only", "two")),
    );
    a.assert_error(502, "upstream_error");
    b.assert_error(502, "upstream_error");
    let got: Vec<_> = eu
        .received()
        .into_iter()
        .filter(|g| g.path == "/v1/chat/completions")
        .collect();
    assert_eq!(got.len(), 2);
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_millis(900),
        "the second waited until the first gave its place back"
    );
}

#[tokio::test]
async fn speech_reaches_the_minimax_cloud_and_an_openai_compatible_server() {
    let r = rig().await;
    let (account, key) = r.gw.admin("enterprise");
    let text = "Hello from the cloud.";
    // MiniMax t2a_v2, whole: the provider's bytes as hex, its character count.
    let v =
        r.gw.post(
            "/v1/t2a_v2",
            &key,
            json!({"model": "mm-speech", "text": text,
                   "voice_setting": {"voice_id": "male-qn-qingse", "speed": 1.2, "pitch": 2},
                   "audio_setting": {"format": "mp3", "sample_rate": 32000}}),
        )
        .await;
    assert_eq!(v.body["base_resp"]["status_code"], 0, "{}", v.body);
    // Which deployment spoke, as for chat.
    assert_eq!(
        v.headers
            .get("x-maximin-upstream")
            .and_then(|h| h.to_str().ok()),
        Some("mm:speech-2.8-hd")
    );
    let audio = hex::decode(v.body["data"]["audio"].as_str().expect("hex")).expect("hex");
    assert!(audio.len() > 500, "{} bytes", audio.len());
    let sent =
        r.mm.received()
            .into_iter()
            .rfind(|g| g.path == "/v1/t2a_v2")
            .expect("t2a");
    assert_eq!(sent.body["model"], "speech-2.8-hd");
    assert_eq!(sent.body["voice_setting"]["voice_id"], "male-qn-qingse");
    assert_eq!(sent.body["voice_setting"]["pitch"], 2);
    assert_eq!(sent.body["audio_setting"]["format"], "mp3");
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer mm-provider-key-123")
    );

    // Streamed: hex chunks as SSE, as they came.
    let (status, stream) = stream_text(
        &r.gw,
        "/v1/t2a_v2",
        &key,
        json!({"model": "mm-speech", "text": text, "stream": true,
               "voice_setting": {"voice_id": "male-qn-qingse"}, "audio_setting": {"format": "mp3"}}),
    )
    .await;
    assert_eq!(status, 200);
    let chunks = stream
        .lines()
        .filter(|l| l.starts_with("data:") && l.contains("\"audio\""))
        .count();
    assert!(chunks >= 2, "{stream}");

    // OpenAI-compatible /audio/speech: raw PCM from the provider, encoded
    // here into the WAV the client asked for.
    let resp = r
        .gw
        .http
        .post(r.gw.url("/openai/v1/audio/speech"))
        .bearer_auth(&key)
        .json(&json!({"model": "oa-speech", "input": text, "voice": "alloy", "response_format": "wav"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("x-maximin-upstream")
            .and_then(|h| h.to_str().ok()),
        Some("eu:tts-1")
    );
    let wav = resp.bytes().await.expect("body");
    assert_eq!(&wav[..4], b"RIFF");
    assert!(wav.len() > 10_000, "{} bytes", wav.len());
    let sent =
        r.eu.received()
            .into_iter()
            .rfind(|g| g.path == "/v1/audio/speech")
            .expect("speech");
    assert_eq!(sent.body["model"], "tts-1");
    assert_eq!(sent.body["input"], text);
    assert_eq!(sent.body["response_format"], "pcm");

    // Metered in characters.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mm = usage_row(&r.gw, &key, "mm-speech").await;
    assert!(mm["characters"].as_u64().unwrap_or(0) > 0, "{mm}");

    // The account's PII and region rules hold for speech too.
    r.gw.cli(&["accounts", "update", &account, "--pii", "block"])
        .expect("block");
    let before = r.mm.hits();
    let v =
        r.gw.post(
            "/v1/t2a_v2",
            &key,
            json!({"model": "mm-speech", "text": "Write to jane.doe@example.com today.",
                                          "voice_setting": {"voice_id": "male-qn-qingse"}}),
        )
        .await;
    assert_eq!(v.body["base_resp"]["status_code"], 2013, "{}", v.body);
    assert_eq!(r.mm.hits(), before, "nothing left for the upstream");
    r.gw.cli(&[
        "accounts",
        "update",
        &account,
        "--pii",
        "off",
        "--regions",
        "us-east",
    ])
    .expect("pin");
    let v =
        r.gw.post(
            "/v1/t2a_v2",
            &key,
            json!({"model": "mm-speech", "text": text,
                                          "voice_setting": {"voice_id": "male-qn-qingse"}}),
        )
        .await;
    assert_ne!(v.body["base_resp"]["status_code"], 0, "{}", v.body);
    assert_eq!(r.mm.hits(), before, "eu-west is outside us-east");
}
