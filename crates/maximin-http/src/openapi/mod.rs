//! The OpenAPI document (`GET /v1/openapi.json`), generated from the
//! handlers' `#[utoipa::path]` attributes and the wire types, then completed
//! by [`errors::Errors`] with what the shared request path does to every
//! route: the statuses it answers (401, 403, 409, 413, 429, …) in the error
//! shape of the route's surface, its headers, and `Idempotency-Key`.
//!
//! A handler's attribute lists its successes and the errors only it gives
//! (404, 503, …) without a body; the body is filled per surface. On the
//! MiniMax-native paths every error is HTTP 200 with `base_resp`, so there
//! the errors join the 200 response.
//!
//! The types below exist for the document: handlers build the same shapes
//! through `Ctx` or as JSON. `/v1/openapi.json` is checked against the
//! running server by schemathesis (`tests/api/openapi_conformance.rs`).

mod compat;
mod errors;
mod native;
mod platform;

pub use compat::*;
pub use native::*;
pub use platform::*;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use self::errors::Errors;
use crate::routes;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("mmx_live_… / mmx_test_…")
                    .description(Some(
                        "`Authorization: Bearer <key>`; `x-api-key: <key>` is read the same.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "maximin", description = "Self-hosted MiniMax platform API.\n\nEvery response carries `X-Request-Id`; every response to an authenticated request carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix seconds). POST and DELETE accept `Idempotency-Key`.\n\nErrors take the shape of the surface: the seed 002 routes `{\"error\":{code,message,details},\"meta\"}` with the code's HTTP status; the MiniMax-native routes (`/v1/t2a_v2`, `/v1/files/…`, `/v1/text/chatcompletion_v2`, …) HTTP 200 with a non-zero `base_resp.status_code`; `/openai/v1` OpenAI's error object and `/anthropic/v1` Anthropic's, with real statuses."),
    paths(
        routes::system::get_healthz,
        routes::system::get_readyz,
        routes::system::get_metrics,
        routes::system::get_openapi,
        routes::models::list_models,
        routes::models::get_model,
        routes::account::get_account,
        routes::account::update_account,
        routes::upstreams::list_upstreams,
        routes::account::list_keys,
        routes::account::create_key,
        routes::account::get_key,
        routes::account::revoke_key,
        routes::account::list_key_activity,
        routes::account::get_usage,
        routes::inference::create_chat_completion,
        routes::inference::create_embeddings,
        routes::speech::t2a_v2,
        routes::speech_ws::t2a_ws,
        routes::voices::get_voice,
        routes::voices::voice_design,
        routes::voices::voice_clone,
        routes::voices::delete_voice,
        routes::speech_async::t2a_async_v2,
        routes::speech_async::query_t2a_async,
        routes::anthropic::messages,
        routes::native_text::chatcompletion_v2,
        routes::openai::chat_completions,
        routes::openai::embeddings,
        routes::openai::list_models,
        routes::openai::audio_speech,
        routes::files::upload_file,
        routes::files::list_files,
        routes::files::retrieve_file,
        routes::files::retrieve_file_content,
        routes::files::delete_file,
        routes::files::download_file,
    ),
    components(schemas(
        ErrorResponse,
        NativeErrorResponse,
        OpenAiErrorResponse,
        AnthropicErrorResponse,
        SubtitleLine,
    )),
    modifiers(&BearerAuth, &Errors)
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
