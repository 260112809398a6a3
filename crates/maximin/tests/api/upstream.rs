//! maximin as a gateway (issue 14): a second maximin, with the local
//! models, is the OpenAI-compatible and the Anthropic upstream of a first
//! one that has no local chat model at all; the official SDKs talk to the
//! gateway. Faults, failover, region pinning and PII redaction run against
//! the mock providers in `upstream_mock`.

use serde_json::{json, Value};

use crate::helpers::Server;
use crate::sdk::{sdk, sum_spent, usage_of};

/// The upstream: a plain maximin with the local models and a key for the gateway.
pub async fn upstream_maximin() -> (Server, String) {
    let up = Server::with_models("").await;
    let (_, key) = up.admin("enterprise");
    (up, key)
}

/// A gateway in front of `up`: `via-openai` through its `/openai/v1`,
/// `via-anthropic` through its `/anthropic`, `embed-via-openai` for
/// embeddings; the key comes from the environment.
pub async fn gateway(up: &Server, up_key: &str, extra: &str) -> Server {
    let config = format!(
        r#"
[upstreams.a]
kind = "openai"
base_url = "{base}/openai/v1"
api_key_env = "UPSTREAM_A_KEY"
region = "eu-west"
timeout_s = 60

[upstreams.a-anthropic]
kind = "anthropic"
base_url = "{base}/anthropic"
api_key_env = "UPSTREAM_A_KEY"
region = "eu-west"
timeout_s = 60

[[models]]
id = "via-openai"
modality = "text"
context_window = 2048
engine = "upstream:a"
upstream_model = "gemma-3-270m"
capabilities = ["chat", "tools", "json"]

[[models]]
id = "via-anthropic"
modality = "text"
context_window = 2048
engine = "upstream:a-anthropic"
upstream_model = "gemma-3-270m"
capabilities = ["chat", "tools"]

[[models]]
id = "embed-via-openai"
modality = "embeddings"
context_window = 256
engine = "upstream:a"
upstream_model = "all-minilm-l6-v2"
{extra}
"#,
        base = up.base
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("maximin.toml"), config).expect("config");
    Server::start_with_env(dir, &[], &[("UPSTREAM_A_KEY", up_key)]).await
}

#[tokio::test]
async fn the_openai_sdk_reaches_an_anthropic_upstream_and_the_anthropic_sdk_an_openai_one() {
    let (up, up_key) = upstream_maximin().await;
    let gw = gateway(&up, &up_key, "").await;
    let (_, key) = gw.admin("payg");
    assert!(
        !gw.output().contains(&up_key),
        "the provider key is never logged"
    );

    // OpenAI SDK → gateway → Anthropic surface of the upstream.
    let env = [("MAXIMIN_CHAT", "via-anthropic")];
    let chat = sdk(&gw, &key, "openai_sdk.py", "chat", &env);
    assert!(
        chat["text"].as_str().is_some_and(|t| !t.is_empty()),
        "{chat}"
    );
    assert_eq!(chat["model"], "via-anthropic");
    assert_eq!(
        chat["stream_text"], chat["text"],
        "greedy: the stream says the same"
    );
    assert_eq!(
        chat["stream_usage"], chat["usage"],
        "usage from the provider, streamed too"
    );
    let tools = sdk(&gw, &key, "openai_sdk.py", "tools", &env);
    assert_eq!(tools["finish_reason"], "tool_calls", "{tools}");
    assert_eq!(tools["name"], "get_weather");
    assert!(tools["args"]["city"].is_string(), "{tools}");
    assert!(
        tools["answer"].as_str().is_some_and(|a| !a.is_empty()),
        "{tools}"
    );

    // Anthropic SDK → gateway → OpenAI surface of the upstream.
    let env = [("MAXIMIN_CHAT", "via-openai")];
    let achat = sdk(&gw, &key, "anthropic_sdk.py", "chat", &env);
    assert!(
        achat["text"].as_str().is_some_and(|t| !t.is_empty()),
        "{achat}"
    );
    assert_eq!(achat["stream_text"], achat["text"], "{achat}");
    let atools = sdk(&gw, &key, "anthropic_sdk.py", "tools", &env);
    assert_eq!(atools["stop_reason"], "tool_use", "{atools}");
    assert_eq!(atools["name"], "get_weather");
    assert!(atools["input"]["city"].is_string(), "{atools}");
    assert!(atools["stream_input"]["city"].is_string(), "{atools}");

    // JSON mode passes through to an OpenAI-compatible upstream.
    let j = sdk(&gw, &key, "openai_sdk.py", "json_mode", &env);
    assert!(
        j["person"]["name"].is_string() && j["person"]["age"].is_i64(),
        "{j}"
    );

    // Metered on the gateway per key, from the provider's own usage.
    let (requests, prompt, completion) = usage_of(&gw, &key, "via-anthropic").await;
    assert_eq!(
        requests, 4,
        "two chats and two tool turns (n=2 is refused before routing)"
    );
    assert_eq!((prompt, completion), sum_spent(&[&chat, &tools]));
    let (_, prompt, completion) = usage_of(&gw, &key, "via-openai").await;
    assert_eq!((prompt, completion), sum_spent(&[&achat, &atools, &j]));
}

#[tokio::test]
async fn every_surface_names_the_deployment_and_embeddings_route_too() {
    let (up, up_key) = upstream_maximin().await;
    let gw = gateway(&up, &up_key, "").await;
    let (_, key) = gw.admin("payg");

    let r = gw
        .post(
            "/v1/chat/completions",
            &key,
            json!({"model": "via-openai", "max_tokens": 8, "temperature": 0,
                   "messages": [{"role": "user", "content": "Say hi."}]}),
        )
        .await;
    let data = r.assert_ok(200);
    assert_eq!(data["model"], "via-openai");
    assert_eq!(r.header("x-maximin-upstream"), Some("a:gemma-3-270m"));
    assert_eq!(r.body["meta"]["upstream"], "a:gemma-3-270m");
    assert!(data["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0);

    // The native API over the Anthropic upstream, streamed.
    let resp = gw
        .http
        .post(gw.url("/v1/text/chatcompletion_v2"))
        .bearer_auth(&key)
        .json(
            &json!({"model": "via-anthropic", "stream": true, "max_tokens": 8,
                      "messages": [{"role": "user", "content": "Say hi."}]}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.headers()["x-maximin-upstream"].to_str().ok(),
        Some("a-anthropic:gemma-3-270m")
    );
    let text = resp.text().await.expect("body");
    assert!(text.contains("\"base_resp\""), "{text}");
    assert!(text.contains("chat.completion.chunk"), "{text}");

    let r = gw
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "embed-via-openai", "input": ["a cat", "a dog"]}),
        )
        .await;
    let data = r.assert_ok(200);
    assert_eq!(data["embeddings"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        data["embeddings"][0]["embedding"].as_array().map(Vec::len),
        Some(384)
    );
    assert_eq!(r.header("x-maximin-upstream"), Some("a:all-minilm-l6-v2"));

    // The upstream list: health and breakers, never the key.
    let list = gw.get("/v1/upstreams", &key).await;
    let ups = list.assert_ok(200).as_array().expect("list").clone();
    assert_eq!(ups.len(), 2);
    assert!(ups.iter().all(|u| u["healthy"] == true));
    assert!(!list.body.to_string().contains(&up_key));
    let a = ups.iter().find(|u| u["name"] == "a").expect("a");
    assert_eq!(a["region"], "eu-west");
    assert!(a["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .any(|d| d["deployment"] == "a:gemma-3-270m" && d["breaker"] == "closed"));
    // Prometheus figures per deployment.
    let metrics = gw
        .http
        .get(gw.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("maximin_upstream_requests_total{upstream=\"a\",model=\"via-openai\",deployment=\"a:gemma-3-270m\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("maximin_upstream_first_byte_seconds_count"));
    assert!(!metrics.contains(&up_key));
}

#[tokio::test]
async fn a_configured_minimax_upstream_starts_and_its_models_become_available() {
    // Following the setup hint works: the loader takes [upstreams.minimax].
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("maximin.toml"),
        "[upstreams.minimax]\nkind = \"minimax\"\nbase_url = \"http://127.0.0.1:9\"\napi_key_env = \"MINIMAX_TEST_KEY\"\n",
    )
    .expect("config");
    let s = Server::start_with_env(dir, &[], &[("MINIMAX_TEST_KEY", "mm-secret-123")]).await;
    let (_, key) = s.admin("enterprise");
    let m = s.get("/v1/models/MiniMax-M2", &key).await;
    let view = m.assert_ok(200);
    assert_eq!(view["available"], true, "{view}");
    assert!(!s.output().contains("mm-secret-123"));

    // Without it, the hint names what to add, in words that work.
    let bare = Server::start().await;
    let (_, key) = bare.admin("enterprise");
    let m = bare.get("/v1/models/MiniMax-M2", &key).await;
    let hint = m.assert_ok(200)["setup_hint"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        hint.contains("[upstreams.minimax]") && hint.contains("api_key_env"),
        "{hint}"
    );
}

#[tokio::test]
async fn an_unset_key_variable_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("maximin.toml"),
        "[upstreams.x]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key_env = \"MAXIMIN_SURELY_UNSET_KEY\"\n",
    )
    .expect("config");
    let out = std::process::Command::new(crate::helpers::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("MAXIMIN_NO_PULL", "true")
        .env("MAXIMIN_BOOTSTRAP", "off")
        .env_remove("MAXIMIN_CONFIG")
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MAXIMIN_SURELY_UNSET_KEY"), "{err}");
}

/// Region and PII settings through the CLI and the account API.
#[tokio::test]
async fn accounts_and_keys_take_regions_and_pii_modes() {
    let s = Server::start().await;
    let (account, key) = s.admin("enterprise");
    let a = s
        .cli(&[
            "accounts",
            "update",
            &account,
            "--regions",
            "eu-west,eu-central",
            "--pii",
            "redact",
        ])
        .expect("update");
    assert_eq!(a["regions"], json!(["eu-west", "eu-central"]));
    assert_eq!(a["pii"], "redact");
    let out = std::process::Command::new(crate::helpers::BIN)
        .args([
            "accounts",
            "update",
            &account,
            "--pii",
            "maybe",
            "--data-dir",
        ])
        .arg(s.dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("maybe") && err.contains("off, redact, block"),
        "{err}"
    );

    let r = s
        .http
        .patch(s.url("/v1/account"))
        .bearer_auth(&key)
        .json(&json!({"pii": "block", "pii_local": true, "regions": []}))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["data"]["pii"], "block");
    assert_eq!(v["data"]["pii_local"], true);
    assert!(v["data"].get("regions").is_none());

    let r = s
        .http
        .patch(s.url("/v1/account"))
        .bearer_auth(&key)
        .json(&json!({"regions": ["eu west"]}))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["details"]["field"], "regions");

    let k = s
        .cli(&[
            "keys",
            "create",
            "--account",
            &account,
            "--name",
            "eu",
            "--regions",
            "eu-west",
            "--pii",
            "off",
        ])
        .expect("key");
    assert_eq!(k["regions"], json!(["eu-west"]));
    assert_eq!(k["pii"], "off");
}

/// Local engines are outside PII protection unless the account asks
/// (`--pii-local`): then a blocked category never reaches the local model.
#[tokio::test]
async fn pii_protection_reaches_local_engines_only_when_asked() {
    let s = Server::with_models("").await;
    let (account, key) = s.admin("enterprise");
    s.cli(&["accounts", "update", &account, "--pii", "block"])
        .expect("block");
    let body = json!({"model": "gemma-3-270m", "max_tokens": 4,
                      "messages": [{"role": "user", "content": "Mail jane.doe@example.com please."}]});
    let r = s.post("/v1/chat/completions", &key, body.clone()).await;
    r.assert_ok(200);
    assert_eq!(r.header("x-maximin-upstream"), Some("local:llama.cpp"));
    s.cli(&["accounts", "update", &account, "--pii-local", "true"])
        .expect("local too");
    let r = s.post("/v1/chat/completions", &key, body).await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.detail("field"), "messages[0].content");
    assert_eq!(r.detail("category"), "email");
}
