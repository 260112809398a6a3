//! Upstream providers: maximin in front of other servers. Each configured
//! `[upstreams.NAME]` becomes providers behind the core's traits
//! ([`ChatProvider`], [`EmbedProvider`]), registered as `upstream:NAME`, so
//! the router treats a remote deployment exactly as a local engine.
//!
//! - `openai`: any OpenAI-compatible server (`/chat/completions`,
//!   `/embeddings` under `base_url`); streams ask for usage
//!   (`stream_options.include_usage`).
//! - `anthropic`: the Messages API (`/v1/messages`), translated both ways
//!   (system prompt, tool use and results, stop sequences, streaming).
//! - `minimax`: the MiniMax cloud's native API (`/v1/text/chatcompletion_v2`,
//!   `/v1/embeddings` with `texts`), errors from `base_resp`.
//!
//! One pooled `reqwest` client per upstream (keep-alive, HTTP/2 where the
//! server offers it over TLS). Keys come from the environment
//! (`api_key_env`) and are never logged: errors name the upstream, never
//! its key or the request's content.

mod anthropic;
pub mod guard;
pub mod media;
mod openai;
mod speech;
mod sse;

use std::sync::Arc;
use std::time::Duration;

use maximin_core::engines::{ChatEvent, ChatProvider, EmbedProvider};
use maximin_core::providers::media::{ImageProvider, MusicProvider, VideoProvider};
use maximin_core::providers::speech::SpeechProvider;
use maximin_core::routing::{UpstreamConfig, UpstreamKind};
use maximin_core::{Error, Result};
use maximin_types::ErrorCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

pub use sse::SseParser;

/// The providers of one upstream.
pub struct Providers {
    pub chat: Arc<dyn ChatProvider>,
    /// Embeddings, where the wire has them (not Anthropic).
    pub embed: Option<Arc<dyn EmbedProvider>>,
    /// Speech, where the wire has it: MiniMax `t2a_v2`, OpenAI `/audio/speech`.
    pub speech: Option<Arc<dyn SpeechProvider>>,
    /// Image, video and music, where the wire has them (MiniMax).
    pub image: Option<Arc<dyn ImageProvider>>,
    pub video: Option<Arc<dyn VideoProvider>>,
    pub music: Option<Arc<dyn MusicProvider>>,
    pub client: Arc<Client>,
}

/// A connection pool to one upstream, with its key and headers.
#[derive(Debug)]
pub struct Client {
    pub name: String,
    pub kind: UpstreamKind,
    base_url: String,
    /// The request URLs of the wire paths, parsed once: parsing one per
    /// request showed in the gateway's profile.
    urls: Vec<(&'static str, reqwest::Url)>,
    http: reqwest::Client,
    health_path: Option<String>,
}

/// Every path the providers post to, under `base_url`.
const WIRE_PATHS: &[&str] = &[
    "/chat/completions",
    "/v1/text/chatcompletion_v2",
    "/embeddings",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/t2a_v2",
    "/audio/speech",
];

/// Builds the providers of `[upstreams.NAME]`. Fails when the table is
/// invalid or its key variable is unset, so the operator learns at start.
pub fn build(name: &str, config: &UpstreamConfig) -> std::result::Result<Providers, String> {
    config.validate(name)?;
    let key = config.api_key(name)?;
    let mut headers = HeaderMap::new();
    for (k, v) in &config.headers {
        let hn = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("[upstreams.{name}]: '{k}' is not a valid header name"))?;
        let hv = HeaderValue::from_str(v)
            .map_err(|_| format!("[upstreams.{name}]: the value of header '{k}' is not valid"))?;
        headers.insert(hn, hv);
    }
    if let Some(key) = key {
        let (header, value) = match config.kind {
            UpstreamKind::Anthropic => ("x-api-key", key),
            _ => ("authorization", format!("Bearer {key}")),
        };
        let mut hv = HeaderValue::from_str(&value).map_err(|_| {
            format!("[upstreams.{name}]: the key in its api_key_env is not a valid header value")
        })?;
        hv.set_sensitive(true);
        headers.insert(header, hv);
    }
    if config.kind == UpstreamKind::Anthropic {
        headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(config.connect_timeout())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(config.max_concurrency.unwrap_or(256).min(1024))
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        .user_agent(concat!("maximin/", env!("CARGO_PKG_VERSION")))
        // An upstream API does not redirect; following one would send the
        // provider key to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("[upstreams.{name}]: cannot build its HTTP client: {e}"))?;
    let base_url = config.base_url.trim_end_matches('/').to_owned();
    let urls = WIRE_PATHS
        .iter()
        .filter_map(|p| Some((*p, reqwest::Url::parse(&format!("{base_url}{p}")).ok()?)))
        .collect();
    let client = Arc::new(Client {
        name: name.to_owned(),
        kind: config.kind,
        base_url,
        urls,
        http,
        health_path: config.health_check_path.clone(),
    });
    Ok(match config.kind {
        UpstreamKind::Openai | UpstreamKind::Minimax => {
            let (wire, speech): (openai::Wire, Arc<dyn SpeechProvider>) =
                if config.kind == UpstreamKind::Openai {
                    (
                        openai::Wire::OpenAi,
                        Arc::new(speech::OpenAiSpeech::new(client.clone())),
                    )
                } else {
                    (
                        openai::Wire::MiniMax,
                        Arc::new(speech::MiniMaxSpeech::new(client.clone())),
                    )
                };
            let p = Arc::new(openai::OpenAi::new(client.clone(), wire));
            let media = (config.kind == UpstreamKind::Minimax)
                .then(|| Arc::new(media::MiniMaxMedia::new(client.clone())));
            Providers {
                chat: p.clone(),
                embed: Some(p),
                speech: Some(speech),
                image: media.clone().map(|m| m as Arc<dyn ImageProvider>),
                video: media.clone().map(|m| m as Arc<dyn VideoProvider>),
                music: media.map(|m| m as Arc<dyn MusicProvider>),
                client,
            }
        }
        UpstreamKind::Anthropic => Providers {
            chat: Arc::new(anthropic::Anthropic::new(client.clone())),
            embed: None,
            speech: None,
            image: None,
            video: None,
            music: None,
            client,
        },
    })
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The parsed URL of a wire path (see [`WIRE_PATHS`]; another path is
    /// parsed as it comes).
    fn wire_url(&self, path: &str) -> Result<reqwest::Url> {
        match self.urls.iter().find(|(p, _)| *p == path) {
            Some((_, u)) => Ok(u.clone()),
            None => reqwest::Url::parse(&self.url(path))
                .map_err(|e| Error::internal(format!("upstream '{}': bad URL: {e}", self.name))),
        }
    }

    /// The active health check: GET `health_check_path`, 2xx is healthy.
    pub async fn probe(&self, timeout: Duration) -> Result<()> {
        let Some(path) = &self.health_path else {
            return Ok(());
        };
        let res = self
            .http
            .get(self.url(path))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(res.status().as_u16(), None, ""))
        }
    }

    /// POSTs JSON; a non-2xx answer becomes the matching error (with the
    /// upstream's `Retry-After`). Returns the response with its body unread.
    async fn post(&self, path: &str, body: &serde_json::Value) -> Result<reqwest::Response> {
        let res =
            self.http
                .post(self.wire_url(path).map_err(|e| {
                    Error::internal(format!("upstream '{}': bad URL: {e}", self.name))
                })?)
                .json(body)
                .send()
                .await
                .map_err(|e| self.transport(e))?;
        let status = res.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(res);
        }
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // The provider's own words, bounded; they describe the request, not
        // its content.
        let text = res.text().await.unwrap_or_default();
        let message = provider_message(&text);
        Err(self.status_error(status, retry_after, &message))
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        let (reason, what) = if e.is_timeout() {
            ("timeout", "did not answer in time")
        } else if e.is_connect() {
            ("connect", "could not be reached")
        } else {
            ("connect", "failed while sending the request")
        };
        tracing::info!(upstream = %self.name, reason, "upstream transport error");
        Error::new(
            ErrorCode::UpstreamError,
            format!("The upstream '{}' {what}.", self.name),
        )
        .with("upstream", self.name.as_str())
        .with("reason", reason)
    }

    fn status_error(&self, status: u16, retry_after: Option<u64>, message: &str) -> Error {
        let said = if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        };
        let e = match status {
            429 => Error::new(
                ErrorCode::RateLimitExceeded,
                format!("The upstream '{}' is rate limiting maximin{said}", self.name),
            ),
            400 | 404 | 413 | 422 => Error::new(
                ErrorCode::InvalidRequest,
                format!(
                    "The upstream '{}' refused the request (HTTP {status}){said}",
                    self.name
                ),
            ),
            401 | 403 => Error::new(
                ErrorCode::UpstreamError,
                format!(
                    "The upstream '{}' refused maximin's credentials (HTTP {status}); the operator should check its api_key_env.",
                    self.name
                ),
            ),
            _ => Error::new(
                ErrorCode::UpstreamError,
                format!("The upstream '{}' failed (HTTP {status}){said}", self.name),
            ),
        };
        let mut e = e
            .with("upstream", self.name.as_str())
            .with("reason", "status")
            .with("upstream_status", status);
        e.retry_after = retry_after;
        e
    }

    /// An error a MiniMax `base_resp` reported (HTTP 200).
    fn base_resp_error(&self, code: i64, message: &str) -> Error {
        let status = match code {
            1002 | 1039 | 1041 | 2045 | 2056 => 429,
            1004 | 2049 => 401,
            2013 | 1026 | 20132 | 2042 => 400,
            _ => 502,
        };
        let mut e = self.status_error(status, None, message);
        e.details
            .insert("upstream_code".into(), serde_json::Value::from(code));
        e
    }
}

/// The error message in a provider's error body (OpenAI's and Anthropic's
/// `error.message`, MiniMax's `base_resp.status_msg`), at most 300 characters.
fn provider_message(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let msg = v["error"]["message"]
        .as_str()
        .or_else(|| v["error"].as_str())
        .or_else(|| v["base_resp"]["status_msg"].as_str())
        .or_else(|| v["message"].as_str())
        .unwrap_or("");
    msg.chars().take(300).collect()
}

/// The reply of a stream that broke: the provider's error after the start.
fn broke(name: &str, why: &str) -> ChatEvent {
    ChatEvent::Failed(
        Error::new(
            ErrorCode::UpstreamError,
            format!("The upstream '{name}' broke off the answer: {why}."),
        )
        .with("upstream", name)
        .with("reason", "broken"),
    )
}

#[cfg(test)]
mod tests;
