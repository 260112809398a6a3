//! The OpenAPI document (`GET /v1/openapi.json`): an operation for every
//! route of the route table (`table::ROUTES`), from its handler's
//! `#[utoipa::path]` attribute and the wire types, then completed by
//! [`errors::complete`] with what the shared request path does to every
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

use crate::table;

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
    components(schemas(
        ErrorResponse,
        NativeErrorResponse,
        OpenAiErrorResponse,
        AnthropicErrorResponse,
        SubtitleLine,
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The document: [`ApiDoc`] (info, shared schemas, the bearer scheme) and
/// an operation for every route of [`table::ROUTES`], from its handler's
/// `#[utoipa::path]` at the table's path and method, completed with the
/// errors of the route's surface ([`errors::complete`]).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let mut schemas = Vec::new();
    for route in table::ROUTES {
        let documented = (route.doc)();
        let mut operation = documented.operation;
        let spends = matches!(route.access, table::Access::Key(spec) if spec.spends);
        errors::complete(route.surface, &route.method, spends, &mut operation);
        doc.paths.add_path_operation(
            route.path,
            vec![table::http_method(&route.method)],
            operation,
        );
        schemas.extend(documented.schemas);
    }
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
    doc
}
