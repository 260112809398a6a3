//! The playground: pick an endpoint, fill its parameters, send it with the
//! session's own short-lived key (derived from the cookie, never in the
//! page), see the answer (text as it streams, audio to play, images), and
//! copy the same request as a `curl` command.
//!
//! The request goes to the API in-process, through the whole request path
//! (auth, limits, credit, metering), marked as a playground call so that
//! its content is kept nowhere, not even under debug logging. Without
//! script the form posts here and the page shows the answer; with it,
//! `hub.js` sends to `/hub/playground/send` and reads the answer as it comes.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use maximin_core::people::{Permission, PlaygroundCall};
use maximin_core::Error;
use maximin_types::Modality;
use minijinja::{context, Value};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use tower::ServiceExt;

use crate::page_or_return;
use crate::web::{form_error, status_of, Form, Hub, Post, Visitor};

/// The endpoints the playground speaks to, with the modality of their models.
const ENDPOINTS: &[(&str, &str, Modality)] = &[
    ("chat", "Chat completion", Modality::Text),
    ("embeddings", "Embeddings", Modality::Embeddings),
    ("speech", "Speech (text to audio)", Modality::Speech),
    ("image", "Image generation", Modality::Image),
    ("music", "Music generation", Modality::Music),
    ("video", "Video generation (a task)", Modality::Video),
];

/// The API request a filled form stands for: path and JSON body.
pub fn request_of(form: &Form) -> Result<(&'static str, Json), Error> {
    let model = form.get("model").trim();
    if model.is_empty() {
        return Err(Error::invalid("model", "Choose a model."));
    }
    let text = |name: &str, what: &str| -> Result<String, Error> {
        let v = form.get(name).trim();
        if v.is_empty() {
            Err(Error::invalid(name, format!("Write {what}.")))
        } else {
            Ok(v.to_owned())
        }
    };
    let number = |name: &str, min: f64, max: f64| -> Result<Option<f64>, Error> {
        let v = form.get(name).trim();
        if v.is_empty() {
            return Ok(None);
        }
        v.parse::<f64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| Error::invalid(name, format!("{name} is a number from {min} to {max}.")))
    };
    Ok(match form.get("endpoint") {
        "chat" => {
            let mut messages = Vec::new();
            let system = form.get("system").trim();
            if !system.is_empty() {
                messages.push(json!({"role": "system", "content": system}));
            }
            messages.push(json!({"role": "user", "content": text("message", "a message")?}));
            let mut body = json!({"model": model, "messages": messages});
            if let Some(t) = number("max_tokens", 1.0, 32768.0)? {
                body["max_tokens"] = json!(t as u64);
            }
            if let Some(t) = number("temperature", 0.0, 2.0)? {
                body["temperature"] = json!(t);
            }
            if form.get("stream") == "yes" {
                body["stream"] = json!(true);
            }
            ("/v1/chat/completions", body)
        }
        "embeddings" => {
            let input: Vec<String> = text("input", "the texts, one per line")?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            ("/v1/embeddings", json!({"model": model, "input": input}))
        }
        "speech" => {
            let voice = form.get("voice_id").trim();
            let voice = if voice.is_empty() {
                "English_expressive_narrator"
            } else {
                voice
            };
            (
                "/v1/t2a_v2",
                json!({
                    "model": model,
                    "text": text("text", "the text to speak")?,
                    "voice_setting": {"voice_id": voice},
                    "audio_setting": {"format": "mp3"},
                }),
            )
        }
        "image" => (
            "/v1/image_generation",
            json!({"model": model, "prompt": text("prompt", "a prompt")?, "response_format": "base64"}),
        ),
        "music" => (
            "/v1/music_generation",
            json!({
                "model": model,
                "prompt": text("prompt", "a prompt")?,
                "lyrics": form.get("lyrics").trim(),
                "output_format": "hex",
            }),
        ),
        // A task: the answer is its id; the video lands in Files and tasks.
        "video" => (
            "/v1/video_generation",
            json!({"model": model, "prompt": text("prompt", "a prompt")?}),
        ),
        other => {
            return Err(Error::invalid(
                "endpoint",
                format!("No endpoint '{other}' in the playground."),
            ))
        }
    })
}

/// The same request as a shell command, with the key left to the reader's
/// environment (the page never holds a key).
pub fn curl(origin: &str, path: &str, body: &Json) -> String {
    let json = serde_json::to_string_pretty(body)
        .unwrap_or_default()
        .replace('\'', r"'\''");
    let stream = if body.get("stream") == Some(&json!(true)) {
        " -N"
    } else {
        ""
    };
    format!(
        "curl{stream} {origin}{path} \\\n  -H \"Authorization: Bearer $MAXIMIN_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{json}'"
    )
}

#[derive(Deserialize)]
pub struct Choice {
    endpoint: Option<String>,
}

fn models_for(hub: &Hub, modality: Modality) -> Vec<String> {
    hub.platform
        .catalog
        .models()
        .iter()
        .filter(|m| m.modality == modality && !m.deprecated)
        .map(|m| m.id.clone())
        .collect()
}

fn render(hub: &Hub, v: &Visitor, status: StatusCode, endpoint: &str, extra: Value) -> Response {
    let s = page_or_return!(v.member());
    if let Err(e) = s.require(Permission::UseApi) {
        return hub.error(v, &e);
    }
    let endpoint = ENDPOINTS
        .iter()
        .find(|(n, _, _)| *n == endpoint)
        .unwrap_or(&ENDPOINTS[0]);
    let endpoints: Vec<Value> = ENDPOINTS
        .iter()
        .map(|(n, label, _)| context! { name => n, label, current => *n == endpoint.0 })
        .collect();
    hub.page_status(
        v,
        status,
        "playground.html",
        context! {
            endpoint => endpoint.0, endpoints,
            models => models_for(hub, endpoint.2),
            ..extra
        },
    )
}

pub async fn show(State(hub): State<Hub>, v: Visitor, Query(q): Query<Choice>) -> Response {
    render(
        &hub,
        &v,
        StatusCode::OK,
        q.endpoint.as_deref().unwrap_or("chat"),
        context! {},
    )
}

/// Sends the form's request through the API with the session's key.
async fn call(hub: &Hub, post: &Post) -> Result<(&'static str, Json, Response), Error> {
    let v = &post.visitor;
    let s = v
        .session
        .as_ref()
        .filter(|s| s.complete())
        .ok_or_else(|| Error::authentication("Log in first."))?;
    let (path, body) = request_of(&post.form)?;
    let token = v.token.clone().unwrap_or_default();
    let key = hub.platform.playground_key(s, &token).await?;
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .extension(PlaygroundCall)
        .body(Body::from(body.to_string()))
        .map_err(Error::internal)?;
    let resp = hub
        .api
        .clone()
        .oneshot(req)
        .await
        .map_err(Error::internal)?;
    Ok((path, body, resp))
}

/// The form posted without script: the answer read whole and shown.
pub async fn send_form(State(hub): State<Hub>, post: Post) -> Response {
    let v = &post.visitor;
    let endpoint = post.form.get("endpoint").to_owned();
    let fields: Vec<Value> = [
        "model",
        "system",
        "message",
        "max_tokens",
        "temperature",
        "input",
        "text",
        "voice_id",
        "prompt",
        "lyrics",
    ]
    .iter()
    .map(|f| context! { name => f, value => post.form.get(f) })
    .collect();
    match call(&hub, &post).await {
        Ok((path, body, resp)) => {
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024)
                .await
                .unwrap_or_default();
            let answer: Json = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!({"text": String::from_utf8_lossy(&bytes)}));
            let shown = shown(&answer);
            render(
                &hub,
                v,
                StatusCode::OK,
                &endpoint,
                context! {
                    fields, status, curl => curl(&v.origin, path, &body),
                    answer_text => shown.0, audio_hex => shown.1, image_b64 => shown.2,
                    answer_json => serde_json::to_string_pretty(&answer).ok().map(|s| s.chars().take(20_000).collect::<String>()),
                },
            )
        }
        Err(e) => render(
            &hub,
            v,
            status_of(&e),
            &endpoint,
            context! {
                fields,
                ..form_error(&e)
            },
        ),
    }
}

/// What to show of an answer: its text, its audio (hex), its image (base64).
fn shown(a: &Json) -> (Option<String>, Option<String>, Option<String>) {
    // The seed 002 envelope (`data`) or a bare answer.
    let a = a
        .get("data")
        .filter(|d| d.get("choices").is_some())
        .unwrap_or(a);
    let text = a
        .pointer("/choices/0/message/content")
        .and_then(Json::as_str)
        .map(str::to_owned);
    let audio = a
        .pointer("/data/audio")
        .and_then(Json::as_str)
        .map(str::to_owned);
    let image = a
        .pointer("/data/image_base64/0")
        .and_then(Json::as_str)
        .map(str::to_owned);
    (text, audio, image)
}

/// The script's way: the API's answer as it comes (a stream stays one),
/// with the curl command in a header.
pub async fn send(State(hub): State<Hub>, post: Post) -> Response {
    match call(&hub, &post).await {
        Ok((path, body, mut resp)) => {
            let command = curl(&post.visitor.origin, path, &body);
            // Header-safe whatever the text: base64 of the command.
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(command);
            if let Ok(v) = header::HeaderValue::from_str(&encoded) {
                resp.headers_mut().insert("x-maximin-curl", v);
            }
            resp
        }
        Err(e) => (
            status_of(&e),
            axum::Json(json!({"error": {"code": e.code.as_str(), "message": e.message, "field": e.details.get("field")}})),
        )
            .into_response(),
    }
}
