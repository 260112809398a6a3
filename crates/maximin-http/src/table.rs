//! The route table: every route the edge serves, once. Each entry declares
//! its method and path template, its surface (the error style), who may call
//! it (open, or a key with an [`EndpointSpec`]), its handler and the OpenAPI
//! operation its `#[utoipa::path]` generated. `mount` (lib.rs) mounts the
//! table, [`crate::openapi::document`] documents it, and the edge renders a
//! request's errors in the surface of the route it matched
//! ([`Surface::of_request`]).

use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use maximin_core::EndpointSpec;
use maximin_types::{Modality, RateClass};
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

use crate::error::Surface;
use crate::routes::{
    account, anthropic, billing, files, fine_tunes, inference, media, models, native_text, openai,
    openai_files, privacy, speech, speech_async, speech_ws, system, upstreams, voices,
};
use crate::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key: the operational routes and the signed download.
    Open,
    /// A key, checked by the shared request path against this spec.
    Key(EndpointSpec),
}

/// One route.
pub struct Route {
    pub method: Method,
    /// The path template, as axum matches it (`/v1/models/{id}`).
    pub path: &'static str,
    /// The shape its errors take.
    pub surface: Surface,
    pub access: Access,
    /// The handler on the route's method (`on(method, handler)`, plus any
    /// layer of its own).
    pub handler: fn(MethodFilter) -> MethodRouter<AppState>,
    /// The operation its `#[utoipa::path]` generated: [`doc`] of the
    /// handler's `__path_` type.
    pub doc: fn() -> Documented,
}

/// What a handler's `#[utoipa::path]` says of it.
pub struct Documented {
    /// The path and methods the attribute names; the table's must agree
    /// (checked by `tests/it/table.rs`).
    pub path: String,
    pub methods: Vec<HttpMethod>,
    /// The operation, with its tags.
    pub operation: Operation,
    /// The schemas its bodies refer to.
    pub schemas: Vec<(String, RefOr<Schema>)>,
}

/// The documentation of the handler whose `#[utoipa::path]` generated `P`.
/// (`SchemaReferences` and `Tags` are what `#[derive(OpenApi)]`'s
/// `paths(...)` reads too; utoipa keeps them in `__dev`.)
pub fn doc<P>() -> Documented
where
    P: utoipa::Path + utoipa::__dev::SchemaReferences + utoipa::__dev::Tags<'static>,
{
    let mut operation = P::operation();
    let tags = P::tags();
    if !tags.is_empty() {
        operation
            .tags
            .get_or_insert_with(Vec::new)
            .extend(tags.into_iter().map(str::to_owned));
    }
    let mut schemas = Vec::new();
    P::schemas(&mut schemas);
    Documented {
        path: P::path(),
        methods: P::methods(),
        operation,
        schemas,
    }
}

/// The OpenAPI method of an HTTP method the table uses.
pub fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        Method::PUT => HttpMethod::Put,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        _ => HttpMethod::Trace,
    }
}

const fn spec(
    class: RateClass,
    modality: Option<Modality>,
    read_only: bool,
    admin: bool,
) -> Access {
    Access::Key(EndpointSpec {
        class,
        modality,
        read_only,
        admin,
        spends: !read_only && !admin,
    })
}

/// The same access for a route that removes what it names: it costs
/// nothing, so an account out of credit may still call it.
const fn removing(access: Access) -> Access {
    match access {
        Access::Key(spec) => Access::Key(EndpointSpec {
            spends: false,
            ..spec
        }),
        Access::Open => Access::Open,
    }
}

const READ: Access = spec(RateClass::Read, None, true, false);
const ACCOUNT_READ: Access = spec(RateClass::Account, None, true, true);
const ACCOUNT_WRITE: Access = spec(RateClass::Account, None, false, true);
const CHAT: Access = spec(RateClass::Chat, Some(Modality::Text), false, false);
const EMBED: Access = spec(
    RateClass::Embeddings,
    Some(Modality::Embeddings),
    false,
    false,
);
const SPEECH: Access = spec(RateClass::Speech, Some(Modality::Speech), false, false);
const SPEECH_READ: Access = spec(RateClass::Read, Some(Modality::Speech), true, false);
const VIDEO_SUBMIT: Access = spec(RateClass::VideoSubmit, Some(Modality::Video), false, false);
const VIDEO_READ: Access = spec(RateClass::Read, Some(Modality::Video), true, false);
const IMAGE: Access = spec(RateClass::Media, Some(Modality::Image), false, false);
const MUSIC: Access = spec(RateClass::Media, Some(Modality::Music), false, false);
const LYRICS: Access = spec(RateClass::Chat, Some(Modality::Music), false, false);
const FILES_WRITE: Access = spec(RateClass::FileUpload, Some(Modality::Files), false, false);
const SPEECH_REMOVE: Access = removing(SPEECH);
const FILES_REMOVE: Access = removing(FILES_WRITE);
const FILES_READ: Access = spec(RateClass::Read, Some(Modality::Files), true, false);
const FINE_TUNE_CREATE: Access = spec(
    RateClass::FineTuneCreate,
    Some(Modality::FineTunes),
    false,
    false,
);
const FINE_TUNE_READ: Access = spec(RateClass::Read, Some(Modality::FineTunes), true, false);
const FINE_TUNE_REMOVE: Access = removing(spec(
    RateClass::Read,
    Some(Modality::FineTunes),
    false,
    false,
));

use self::Access::Open;
use crate::error::Surface::{Anthropic, Native, OpenAi, Platform};

/// A table entry: `route!(METHOD "path", Surface, access, handler, doc_type)`,
/// optionally `=> layer` for a layer of the handler's own.
macro_rules! route {
    ($method:ident $path:literal, $surface:expr, $access:expr, $handler:path, $doc:ty $(=> $layer:expr)?) => {
        Route {
            method: Method::$method,
            path: $path,
            surface: $surface,
            access: $access,
            handler: |m| on(m, $handler)$(.layer($layer))?,
            doc: doc::<$doc>,
        }
    };
}

/// Every route, in the order they are mounted.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    // Operational, no key.
    route!(GET "/healthz", Platform, Open, system::get_healthz, system::__path_get_healthz),
    route!(GET "/readyz", Platform, Open, system::get_readyz, system::__path_get_readyz),
    route!(GET "/metrics", Platform, Open, system::get_metrics, system::__path_get_metrics),
    route!(GET "/v1/openapi.json", Platform, Open, system::get_openapi, system::__path_get_openapi),
    // The platform (seed 002).
    route!(GET "/v1/models", Platform, READ, models::list_models, models::__path_list_models),
    route!(GET "/v1/models/{id}", Platform, READ, models::get_model, models::__path_get_model),
    route!(GET "/v1/account", Platform, ACCOUNT_READ, account::get_account, account::__path_get_account),
    route!(PATCH "/v1/account", Platform, ACCOUNT_WRITE, account::update_account, account::__path_update_account),
    route!(GET "/v1/account/webhook_secret", Platform, ACCOUNT_READ, account::get_webhook_secret, account::__path_get_webhook_secret),
    route!(GET "/v1/upstreams", Platform, ACCOUNT_READ, upstreams::list_upstreams, upstreams::__path_list_upstreams),
    route!(GET "/v1/account/keys", Platform, ACCOUNT_READ, account::list_keys, account::__path_list_keys),
    route!(POST "/v1/account/keys", Platform, ACCOUNT_WRITE, account::create_key, account::__path_create_key),
    route!(GET "/v1/account/keys/{id}", Platform, ACCOUNT_READ, account::get_key, account::__path_get_key),
    route!(DELETE "/v1/account/keys/{id}", Platform, ACCOUNT_WRITE, account::revoke_key, account::__path_revoke_key),
    route!(GET "/v1/account/keys/{id}/activity", Platform, ACCOUNT_READ, account::list_key_activity, account::__path_list_key_activity),
    route!(GET "/v1/account/usage", Platform, ACCOUNT_READ, account::get_usage, account::__path_get_usage),
    route!(GET "/v1/account/billing", Platform, ACCOUNT_READ, billing::get_billing, billing::__path_get_billing),
    route!(POST "/v1/account/credits", Platform, ACCOUNT_WRITE, billing::create_credits, billing::__path_create_credits),
    route!(GET "/v1/account/invoices", Platform, ACCOUNT_READ, billing::list_invoices, billing::__path_list_invoices),
    route!(GET "/v1/account/invoices/{id}", Platform, ACCOUNT_READ, billing::get_invoice, billing::__path_get_invoice),
    route!(GET "/v1/account/privacy/log", Platform, ACCOUNT_READ, privacy::get_privacy_log, privacy::__path_get_privacy_log),
    route!(GET "/v1/account/privacy/categories", Platform, ACCOUNT_READ, privacy::list_privacy_categories, privacy::__path_list_privacy_categories),
    route!(POST "/v1/account/privacy/export", Platform, ACCOUNT_WRITE, privacy::create_privacy_export, privacy::__path_create_privacy_export),
    route!(GET "/v1/account/privacy/export/{task_id}", Platform, ACCOUNT_READ, privacy::get_privacy_export, privacy::__path_get_privacy_export),
    route!(POST "/v1/account/privacy/delete", Platform, ACCOUNT_WRITE, privacy::create_privacy_deletion, privacy::__path_create_privacy_deletion),
    route!(GET "/v1/account/privacy/debug-logging", Platform, ACCOUNT_READ, privacy::get_debug_logging, privacy::__path_get_debug_logging),
    route!(POST "/v1/account/privacy/debug-logging", Platform, ACCOUNT_WRITE, privacy::set_debug_logging, privacy::__path_set_debug_logging),
    route!(POST "/v1/account/close", Platform, ACCOUNT_WRITE, privacy::close_account, privacy::__path_close_account),
    route!(GET "/v1/account/support", Platform, ACCOUNT_READ, privacy::list_tickets, privacy::__path_list_tickets),
    route!(POST "/v1/account/support", Platform, ACCOUNT_WRITE, privacy::create_ticket, privacy::__path_create_ticket),
    route!(GET "/v1/account/support/{id}", Platform, ACCOUNT_READ, privacy::get_ticket, privacy::__path_get_ticket),
    route!(POST "/v1/account/support/{id}/messages", Platform, ACCOUNT_WRITE, privacy::reply_ticket, privacy::__path_reply_ticket),
    route!(POST "/v1/account/support/{id}/close", Platform, ACCOUNT_WRITE, privacy::close_ticket, privacy::__path_close_ticket),
    route!(POST "/v1/video/generations", Platform, VIDEO_SUBMIT, media::create_video_generation, media::__path_create_video_generation),
    route!(GET "/v1/video/generations/{id}", Platform, VIDEO_READ, media::get_video_generation, media::__path_get_video_generation),
    route!(POST "/v1/files", Platform, FILES_WRITE, files::create_file, files::__path_create_file
        => axum::extract::DefaultBodyLimit::disable()),
    route!(GET "/v1/files/{id}", Platform, FILES_READ, files::get_file, files::__path_get_file),
    route!(POST "/v1/fine-tunes", Platform, FINE_TUNE_CREATE, fine_tunes::create_fine_tune, fine_tunes::__path_create_fine_tune),
    route!(GET "/v1/fine-tunes", Platform, FINE_TUNE_READ, fine_tunes::list_fine_tunes, fine_tunes::__path_list_fine_tunes),
    route!(GET "/v1/fine-tunes/{id}", Platform, FINE_TUNE_READ, fine_tunes::get_fine_tune, fine_tunes::__path_get_fine_tune),
    route!(POST "/v1/fine-tunes/{id}/cancel", Platform, FINE_TUNE_REMOVE, fine_tunes::cancel_fine_tune, fine_tunes::__path_cancel_fine_tune),
    route!(GET "/v1/fine-tunes/{id}/events", Platform, FINE_TUNE_READ, fine_tunes::list_fine_tune_events, fine_tunes::__path_list_fine_tune_events),
    route!(GET "/v1/fine-tunes/{id}/checkpoints", Platform, FINE_TUNE_READ, fine_tunes::list_fine_tune_checkpoints, fine_tunes::__path_list_fine_tune_checkpoints),
    route!(DELETE "/v1/models/{id}", Platform, FINE_TUNE_REMOVE, fine_tunes::delete_model, fine_tunes::__path_delete_model),
    route!(POST "/v1/chat/completions", Platform, CHAT, inference::create_chat_completion, inference::__path_create_chat_completion),
    // MiniMax-native: errors are HTTP 200 with `base_resp`.
    route!(POST "/v1/t2a_v2", Native, SPEECH, speech::t2a_v2, speech::__path_t2a_v2),
    route!(GET "/ws/v1/t2a_v2", Native, SPEECH, speech_ws::t2a_ws, speech_ws::__path_t2a_ws),
    route!(POST "/v1/t2a_async_v2", Native, SPEECH, speech_async::t2a_async_v2, speech_async::__path_t2a_async_v2),
    route!(GET "/v1/query/t2a_async_query_v2", Native, SPEECH_READ, speech_async::query_t2a_async, speech_async::__path_query_t2a_async),
    route!(POST "/v1/voice_design", Native, SPEECH, voices::voice_design, voices::__path_voice_design),
    route!(POST "/v1/voice_clone", Native, SPEECH, voices::voice_clone, voices::__path_voice_clone),
    route!(POST "/v1/delete_voice", Native, SPEECH_REMOVE, voices::delete_voice, voices::__path_delete_voice),
    route!(POST "/v1/get_voice", Native, SPEECH_READ, voices::get_voice, voices::__path_get_voice),
    route!(POST "/v1/image_generation", Native, IMAGE, media::image_generation, media::__path_image_generation),
    route!(POST "/v1/video_generation", Native, VIDEO_SUBMIT, media::video_generation, media::__path_video_generation),
    route!(GET "/v1/query/video_generation", Native, VIDEO_READ, media::query_video_generation, media::__path_query_video_generation),
    route!(POST "/v1/video_template_generation", Native, VIDEO_SUBMIT, media::video_template_generation, media::__path_video_template_generation),
    route!(GET "/v1/query/video_template_generation", Native, VIDEO_READ, media::query_video_template_generation, media::__path_query_video_template_generation),
    route!(POST "/v1/music_generation", Native, MUSIC, media::music_generation, media::__path_music_generation),
    route!(POST "/v1/lyrics_generation", Native, LYRICS, media::lyrics_generation, media::__path_lyrics_generation),
    route!(POST "/v1/files/upload", Native, FILES_WRITE, files::upload_file, files::__path_upload_file
        => axum::extract::DefaultBodyLimit::disable()),
    route!(GET "/v1/files/list", Native, FILES_READ, files::list_files, files::__path_list_files),
    route!(GET "/v1/files/retrieve", Native, FILES_READ, files::retrieve_file, files::__path_retrieve_file),
    route!(GET "/v1/files/retrieve_content", Native, FILES_READ, files::retrieve_file_content, files::__path_retrieve_file_content),
    route!(POST "/v1/files/delete", Native, FILES_REMOVE, files::delete_file, files::__path_delete_file),
    route!(GET "/v1/files/download/{file_id}", Native, Open, files::download_file, files::__path_download_file),
    // OpenAI-compatible.
    route!(POST "/openai/v1/chat/completions", OpenAi, CHAT, openai::chat_completions, openai::__path_chat_completions),
    route!(POST "/openai/v1/embeddings", OpenAi, EMBED, openai::embeddings, openai::__path_embeddings),
    route!(GET "/openai/v1/models", OpenAi, READ, openai::list_models, openai::__path_list_models),
    route!(DELETE "/openai/v1/models/{id}", OpenAi, FINE_TUNE_REMOVE, fine_tunes::openai_delete_model, fine_tunes::__path_openai_delete_model),
    route!(POST "/openai/v1/files", OpenAi, FILES_WRITE, openai_files::openai_create_file, openai_files::__path_openai_create_file
        => axum::extract::DefaultBodyLimit::disable()),
    route!(GET "/openai/v1/files", OpenAi, FILES_READ, openai_files::openai_list_files, openai_files::__path_openai_list_files),
    route!(GET "/openai/v1/files/{id}", OpenAi, FILES_READ, openai_files::openai_get_file, openai_files::__path_openai_get_file),
    route!(DELETE "/openai/v1/files/{id}", OpenAi, FILES_REMOVE, openai_files::openai_delete_file, openai_files::__path_openai_delete_file),
    route!(GET "/openai/v1/files/{id}/content", OpenAi, FILES_READ, openai_files::openai_file_content, openai_files::__path_openai_file_content),
    route!(POST "/openai/v1/fine_tuning/jobs", OpenAi, FINE_TUNE_CREATE, fine_tunes::openai_create_job, fine_tunes::__path_openai_create_job),
    route!(GET "/openai/v1/fine_tuning/jobs", OpenAi, FINE_TUNE_READ, fine_tunes::openai_list_jobs, fine_tunes::__path_openai_list_jobs),
    route!(GET "/openai/v1/fine_tuning/jobs/{id}", OpenAi, FINE_TUNE_READ, fine_tunes::openai_get_job, fine_tunes::__path_openai_get_job),
    route!(POST "/openai/v1/fine_tuning/jobs/{id}/cancel", OpenAi, FINE_TUNE_REMOVE, fine_tunes::openai_cancel_job, fine_tunes::__path_openai_cancel_job),
    route!(GET "/openai/v1/fine_tuning/jobs/{id}/events", OpenAi, FINE_TUNE_READ, fine_tunes::openai_list_events, fine_tunes::__path_openai_list_events),
    route!(GET "/openai/v1/fine_tuning/jobs/{id}/checkpoints", OpenAi, FINE_TUNE_READ, fine_tunes::openai_list_checkpoints, fine_tunes::__path_openai_list_checkpoints),
    route!(POST "/openai/v1/images/generations", OpenAi, IMAGE, media::openai_images_generations, media::__path_openai_images_generations),
    route!(POST "/openai/v1/images/edits", OpenAi, IMAGE, media::openai_images_edits, media::__path_openai_images_edits
        => axum::extract::DefaultBodyLimit::disable()),
    route!(POST "/openai/v1/audio/speech", OpenAi, SPEECH, openai::audio_speech, openai::__path_audio_speech),
    // Anthropic-compatible.
    route!(POST "/anthropic/v1/messages", Anthropic, CHAT, anthropic::messages, anthropic::__path_messages),
    // MiniMax-native text.
    route!(POST "/v1/text/chatcompletion_v2", Native, CHAT, native_text::chatcompletion_v2, native_text::__path_chatcompletion_v2),
    // Seed 002's embeddings; the native `texts` shape answers in the native
    // style through `SurfaceOverride`.
    route!(POST "/v1/embeddings", Platform, EMBED, inference::create_embeddings, inference::__path_create_embeddings),
];

/// The surface of a request no route matched (the fallbacks: an unknown
/// path, percent-encoded or with a trailing slash): the surface its prefix
/// names, else the platform's. Every route under one of these prefixes
/// declares the same surface (checked by `tests/it/table.rs`).
pub const UNMATCHED_PREFIXES: &[(&str, Surface)] = &[
    ("/openai/", OpenAi),
    ("/anthropic/", Anthropic),
    ("/ws/v1/", Native),
];

/// The route with this template and method.
pub fn find(method: &Method, template: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.path == template && r.method == method)
}

/// The surface of the routes at a template (all the methods of one template
/// declare the same; checked by `tests/it/table.rs`).
pub fn surface_of_template(template: &str) -> Option<Surface> {
    ROUTES
        .iter()
        .find(|r| r.path == template)
        .map(|r| r.surface)
}
