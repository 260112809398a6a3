//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! attributes and the wire types. The envelope types below exist for the
//! document: handlers build the same shape through `Ctx`.

use maximin_types::inference::{ChatCompletion, EmbeddingsResponse};
use maximin_types::{
    AccountUsage, AccountView, ActivityEntry, KeyCreated, KeyView, ModelView, TokenUsage,
};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes;

#[derive(Serialize, ToSchema)]
pub struct Meta {
    pub request_id: String,
    pub model: Option<String>,
    pub usage: Option<TokenUsage>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// One of the codes of the error table.
    pub code: maximin_types::ErrorCode,
    pub message: String,
    /// Structured details, e.g. `field` for the field at fault.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
    pub meta: Meta,
}

macro_rules! envelope {
    ($name:ident, $t:ty) => {
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            pub data: $t,
            pub meta: Meta,
        }
    };
}

envelope!(ModelListResponse, Vec<ModelView>);
envelope!(ModelResponse, ModelView);
envelope!(AccountResponse, AccountView);
envelope!(KeyListResponse, Vec<KeyView>);
envelope!(KeyResponse, KeyView);
envelope!(KeyCreatedResponse, KeyCreated);
envelope!(ActivityResponse, Vec<ActivityEntry>);
envelope!(UsageResponse, AccountUsage);
envelope!(ChatCompletionResponse, ChatCompletion);
envelope!(EmbeddingsResponseEnvelope, EmbeddingsResponse);

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
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "maximin", description = "Self-hosted MiniMax platform API. Every authenticated response carries X-Request-Id and X-RateLimit-Limit/Remaining/Reset (Reset in Unix seconds); errors use {\"error\":{code,message,details}}."),
    paths(
        routes::system::get_healthz,
        routes::system::get_readyz,
        routes::system::get_metrics,
        routes::system::get_openapi,
        routes::models::list_models,
        routes::models::get_model,
        routes::account::get_account,
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
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
