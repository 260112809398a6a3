//! `POST /v1/t2a_v2`: MiniMax-native text to speech, whole (hex or a link)
//! or streamed as server-sent events as the audio is encoded. The request is
//! planned and spoken by `maximin_speech`; this module renders it.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maximin_speech::{Outputs, Synth, UsedVoices};
use maximin_types::speech::{BaseResp, T2aData, T2aRequest, T2aResponse};
use serde_json::json;

use crate::ctx::{mark_deployment, ApiJson, Ctx, StreamMeter, UsageReport};
use crate::error::{native_base_resp, ApiError};
use crate::AppState;

fn native(ctx: &Ctx, body: T2aResponse, report: UsageReport) -> Response {
    let mut resp = axum::Json(body).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert("trace-id", v);
    }
    resp.extensions_mut().insert(report);
    resp
}

#[utoipa::path(post, path = "/v1/t2a_v2", tag = "speech", security(("bearer" = [])),
    request_body = T2aRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first response")),
    responses((status = 200, description = "`data.audio` is hex of the audio (or a link, with `output_format: url`); with `stream: true`, server-sent events of the same shape (`status` 1 per piece, 2 at the end with `extra_info`).",
                   content((T2aResponse = "application/json"), (crate::openapi::ServerSentEvent = "text/event-stream"))),
              (status = 402), (status = 404, description = "`model_not_found`"), (status = 503)))]
pub async fn t2a_v2(
    State(app): State<AppState>,
    ctx: Ctx,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<T2aRequest>,
) -> Result<Response, ApiError> {
    let p = &app.platform;
    let outputs = Outputs::new(
        p.clone(),
        crate::routes::files::base_url(&app, &headers),
        ctx.caller.account.id.clone(),
    );
    if req.stream {
        let plan = maximin_speech::plan(p, &ctx.caller, &req, Some(&req.text)).await?;
        maximin_speech::reserve(p, &ctx.caller, &plan, &req.text).await?;
        let exclude = req
            .stream_options
            .as_ref()
            .is_some_and(|o| o.exclude_aggregated_audio);
        let model = plan.model().to_owned();
        let used = plan.used_voices();
        // Started before the response: a refusal or an upstream that fails
        // before any audio is an HTTP error, and the header names who speaks.
        let mut synth = Synth::new(plan);
        synth.start(p).await?;
        let deployment = synth.deployment().unwrap_or_default().to_owned();
        let mut resp = stream(
            ctx,
            synth,
            model,
            exclude,
            (outputs, req.subtitle_enable),
            used,
        );
        mark_deployment(&mut resp, &deployment);
        return Ok(resp);
    }
    let spoken = maximin_speech::speak_whole(p, &ctx.caller, &req).await?;
    let whole = spoken.whole;
    let subtitle_file = match req.subtitle_enable {
        true => Some(outputs.subtitles(&whole.subtitles).await?),
        false => None,
    };
    let (audio, audio_url) = if req.output_format.as_deref() == Some("url") {
        let url = outputs.audio(spoken.format, &whole.audio).await?;
        (url.clone(), Some(url))
    } else {
        (hex::encode(&whole.audio), None)
    };
    let body = T2aResponse {
        data: Some(T2aData {
            audio,
            status: 2,
            audio_url,
            subtitle_file,
        }),
        extra_info: Some(whole.info),
        trace_id: ctx.request_id.clone(),
        base_resp: BaseResp::success(),
    };
    let report = UsageReport::characters(spoken.model, whole.chars);
    let mut resp = native(&ctx, body, report);
    mark_deployment(&mut resp, &spoken.deployment);
    Ok(resp)
}

/// Most audio bytes in one streamed frame (a multiple of every sample size,
/// so PCM frames hold whole samples): ~0.25 s of 32 kHz PCM, ~1 s of mp3.
const STREAM_CHUNK: usize = 16 * 1024;

/// A frame of streamed audio (`status` 1).
fn audio_frame(trace: &str, audio: &[u8]) -> String {
    json!({
        "data": {"audio": hex::encode(audio), "status": 1},
        "trace_id": trace,
        "base_resp": {"status_code": 0, "status_msg": ""},
    })
    .to_string()
}

/// The frame that ends a stream with an error.
fn error_frame(trace: &str, e: &maximin_core::Error) -> String {
    json!({
        "data": null,
        "trace_id": trace,
        "base_resp": native_base_resp(e),
    })
    .to_string()
}

/// SSE: the audio as soon as it is encoded, in frames of at most
/// [`STREAM_CHUNK`] bytes (`status` 1), then a final frame (`status` 2) with
/// `extra_info` and, unless excluded, the whole audio. No `[DONE]`: MiniMax
/// clients parse every `data:` line as JSON.
fn stream(
    ctx: Ctx,
    synth: Synth,
    model: String,
    exclude_aggregated: bool,
    (outputs, subtitles): (Outputs, bool),
    used: UsedVoices,
) -> Response {
    let meter = StreamMeter::new();
    struct St {
        synth: Option<Synth>,
        all: Vec<u8>,
        trace: String,
        model: String,
        meter: Arc<StreamMeter>,
        exclude: bool,
        outputs: Outputs,
        subtitles: bool,
        used: UsedVoices,
    }
    let st = St {
        synth: Some(synth),
        all: Vec::new(),
        trace: ctx.request_id.clone(),
        model,
        meter: meter.clone(),
        exclude: exclude_aggregated,
        outputs,
        subtitles,
        used,
    };
    let frames = futures_util::stream::unfold(st, |mut st| async move {
        let synth = st.synth.as_mut()?;
        loop {
            match synth.next().await {
                Some(Ok(bytes)) if bytes.is_empty() => continue,
                Some(Ok(bytes)) => {
                    st.all.extend(&bytes);
                    // The audio in frames of at most STREAM_CHUNK bytes: a
                    // client holds playable audio once the first small frame
                    // is in, not the whole sentence's.
                    let frames = bytes
                        .chunks(STREAM_CHUNK)
                        .map(|c| audio_frame(&st.trace, c))
                        .collect();
                    return Some((frames, st));
                }
                Some(Err(e)) => {
                    st.synth = None;
                    return Some((vec![error_frame(&st.trace, &e)], st));
                }
                None => break,
            }
        }
        let synth = st.synth.take()?;
        let subs = synth.subtitles().to_vec();
        let (tail, info, chars) = match synth.finish() {
            Ok(end) => end,
            Err(e) => return Some((vec![error_frame(&st.trace, &e)], st)),
        };
        st.used.mark(st.outputs.platform()).await;
        let subtitle_file = match st.subtitles {
            true => match st.outputs.subtitles(&subs).await {
                Ok(url) => Some(url),
                Err(e) => return Some((vec![error_frame(&st.trace, &e)], st)),
            },
            false => None,
        };
        st.all.extend(&tail);
        st.meter
            .report(UsageReport::characters(st.model.clone(), chars));
        // The encoder's tail (the last MP3 frames, FLAC's end) is part of the
        // stream: sent as its own chunk before the summary.
        let mut frames = Vec::new();
        if !tail.is_empty() {
            frames.push(audio_frame(&st.trace, &tail));
        }
        let mut data = json!({
            "audio": if st.exclude { String::new() } else { hex::encode(&st.all) },
            "status": 2,
        });
        if let Some(url) = subtitle_file {
            data["subtitle_file"] = json!(url);
        }
        frames.push(
            json!({
                "data": data,
                "extra_info": info,
                "trace_id": st.trace,
                "base_resp": {"status_code": 0, "status_msg": "success"},
            })
            .to_string(),
        );
        Some((frames, st))
    });
    let frames = futures_util::StreamExt::map(frames, |fs: Vec<String>| {
        fs.into_iter().map(|f| (None, f)).collect()
    });
    let mut resp = crate::ctx::sse_response(frames, meter);
    if let Ok(v) = axum::http::HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert("trace-id", v);
    }
    resp
}
