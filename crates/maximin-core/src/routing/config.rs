//! `[upstreams.NAME]` and `[routing]` in `maximin.toml`: what an operator
//! writes to put maximin in front of other servers. Provider keys are never
//! here: `api_key_env` names the environment variable that holds one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The wire a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    /// Any OpenAI-compatible server: vLLM, SGLang, TGI, llama.cpp server,
    /// Ollama, OpenAI itself (`/chat/completions` under `base_url`).
    Openai,
    /// Anthropic's Messages API (`/v1/messages` under `base_url`).
    Anthropic,
    /// The MiniMax cloud's native API (`/v1/text/chatcompletion_v2`, `/v1/t2a_v2`).
    Minimax,
}

impl UpstreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Openai => "openai",
            UpstreamKind::Anthropic => "anthropic",
            UpstreamKind::Minimax => "minimax",
        }
    }
}

/// One `[upstreams.NAME]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub kind: UpstreamKind,
    /// e.g. `http://10.0.0.5:8000/v1` (OpenAI-compatible: the part before
    /// `/chat/completions`), `https://api.anthropic.com`, `https://api.minimax.io`.
    pub base_url: String,
    /// The environment variable holding the provider key (never the key).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Where the provider runs (free text such as `eu-west`), for accounts
    /// pinned to regions.
    #[serde(default)]
    pub region: Option<String>,
    /// Seconds one attempt may wait for the provider's answer (for a stream:
    /// for its first event, and then between events). Default 60.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Seconds to open a connection. Default 5.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_s: f64,
    /// Requests in flight to this upstream at once; more wait (default: no limit).
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Extra headers sent with every request (not for keys: use `api_key_env`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Attempts after the first, for models that do not set their own. Default 2.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Whether using it costs money; sandbox keys (`mmx_test_`) never reach a
    /// paid upstream. Default true.
    #[serde(default = "yes")]
    pub paid: bool,
    /// A path probed with GET every `health_check_interval_s` seconds (e.g.
    /// `/models`); a failing probe takes the upstream out of rotation until
    /// one succeeds. Default: no active check (the circuit breaker still acts).
    #[serde(default)]
    pub health_check_path: Option<String>,
    #[serde(default = "default_health_interval")]
    pub health_check_interval_s: f64,
    /// Consecutive failures that open a deployment's circuit breaker. Default 5.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Seconds an open breaker waits before letting one probe request through. Default 30.
    #[serde(default = "default_breaker_cooldown")]
    pub breaker_cooldown_s: f64,
}

fn default_timeout() -> f64 {
    60.0
}
fn default_connect_timeout() -> f64 {
    5.0
}
fn default_retries() -> u32 {
    2
}
fn yes() -> bool {
    true
}
fn default_health_interval() -> f64 {
    15.0
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_cooldown() -> f64 {
    30.0
}

fn seconds(what: &str, v: f64) -> Result<Duration, String> {
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!(
            "`{what}` must be a number of seconds above 0 (got {v})"
        ))
    }
}

impl UpstreamConfig {
    /// Checks the table; `name` is its key in `[upstreams]`.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let at = |e: String| format!("[upstreams.{name}]: {e}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(format!(
                "upstream name '{name}' may hold letters, digits, '-', '_' and '.' only"
            ));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(at(format!(
                "`base_url` must start with http:// or https:// (got '{}')",
                self.base_url
            )));
        }
        if let Some(var) = &self.api_key_env {
            if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(at(format!(
                    "`api_key_env` names an environment variable (letters, digits, '_'), not a key; got {} characters",
                    var.len()
                )));
            }
        }
        seconds("timeout_s", self.timeout_s).map_err(at)?;
        seconds("connect_timeout_s", self.connect_timeout_s).map_err(at)?;
        seconds("health_check_interval_s", self.health_check_interval_s).map_err(at)?;
        seconds("breaker_cooldown_s", self.breaker_cooldown_s).map_err(at)?;
        if self.max_concurrency == Some(0) {
            return Err(at("`max_concurrency` must be at least 1".into()));
        }
        if self.breaker_failures == 0 {
            return Err(at("`breaker_failures` must be at least 1".into()));
        }
        for name in self.headers.keys() {
            let lower = name.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "authorization" | "x-api-key" | "content-length" | "host"
            ) {
                return Err(at(format!(
                    "header '{name}' is set by maximin (keys come from `api_key_env`)"
                )));
            }
        }
        if let Some(path) = &self.health_check_path {
            if !path.starts_with('/') {
                return Err(at("`health_check_path` must start with '/'".into()));
            }
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_s)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout_s)
    }

    pub fn breaker_cooldown(&self) -> Duration {
        Duration::from_secs_f64(self.breaker_cooldown_s)
    }

    /// The provider key from the environment, if the upstream takes one.
    /// An `api_key_env` naming an unset variable is an error at start, so
    /// the operator learns it then, not from the first request.
    pub fn api_key(&self, name: &str) -> Result<Option<String>, String> {
        match &self.api_key_env {
            None => Ok(None),
            Some(var) => match std::env::var(var) {
                Ok(key) if !key.trim().is_empty() => Ok(Some(key.trim().to_owned())),
                _ => Err(format!(
                    "[upstreams.{name}]: the environment variable {var} (api_key_env) is not set"
                )),
            },
        }
    }
}

/// `[routing]`: how requests are routed across deployments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Seconds a request may spend across all its attempts, retries and
    /// fallbacks before the answer starts. Default 300.
    #[serde(default = "default_deadline")]
    pub deadline_s: f64,
}

fn default_deadline() -> f64 {
    300.0
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            deadline_s: default_deadline(),
        }
    }
}

impl RoutingConfig {
    pub fn validate(&self) -> Result<(), String> {
        seconds("deadline_s", self.deadline_s)
            .map(|_| ())
            .map_err(|e| format!("[routing]: {e}"))
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_secs_f64(self.deadline_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<UpstreamConfig, String> {
        let c: UpstreamConfig = toml::from_str(s).map_err(|e| e.to_string())?;
        c.validate("up")?;
        Ok(c)
    }

    #[test]
    fn a_minimal_upstream_takes_defaults() {
        let c = parse("kind = \"openai\"\nbase_url = \"http://127.0.0.1:8000/v1\"").expect("ok");
        assert_eq!(c.kind, UpstreamKind::Openai);
        assert_eq!(c.timeout(), Duration::from_secs(60));
        assert_eq!(c.retries, 2);
        assert!(c.paid);
        assert_eq!(c.api_key("up").expect("no key needed"), None);
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse("kind = \"openai\"\nbase_url = \"ftp://x\"").expect_err("scheme");
        assert!(e.contains("base_url"), "{e}");
        let e = parse("kind = \"grpc\"\nbase_url = \"http://x\"").expect_err("kind");
        assert!(e.contains("grpc"), "{e}");
        let e = parse("kind = \"openai\"\nbase_url = \"http://x\"\napi_key_env = \"sk-live-123\"")
            .expect_err("a key where a variable name goes");
        assert!(
            e.contains("api_key_env") && !e.contains("sk-live-123"),
            "{e}"
        );
        let e = parse("kind = \"openai\"\nbase_url = \"http://x\"\ntimeout_s = 0").expect_err("0");
        assert!(e.contains("timeout_s"), "{e}");
        let e =
            parse("kind = \"openai\"\nbase_url = \"http://x\"\n[headers]\nAuthorization = \"x\"")
                .expect_err("auth header");
        assert!(e.contains("Authorization"), "{e}");
        let e = parse("kind = \"openai\"\nbase_url = \"http://x\"\napi_key = \"k\"")
            .expect_err("unknown key");
        assert!(e.contains("api_key"), "{e}");
    }

    #[test]
    fn an_unset_key_variable_is_reported_by_name() {
        let c = parse(
            "kind = \"anthropic\"\nbase_url = \"http://x\"\napi_key_env = \"MAXIMIN_TEST_SURELY_UNSET_VAR\"",
        )
        .expect("ok");
        let e = c.api_key("up").expect_err("unset");
        assert!(e.contains("MAXIMIN_TEST_SURELY_UNSET_VAR"), "{e}");
    }
}
