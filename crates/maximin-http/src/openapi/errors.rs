//! Completes each route's operation with what the shared request path and
//! the edge do to it (see `pipeline.rs` and `lib.rs`): the error statuses, each in
//! the shape of the route's surface (`error::Surface`), the headers, and the
//! `Idempotency-Key` parameter.

use std::collections::BTreeMap;

use axum::http::Method;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Content, Header, Ref, RefOr, Required, Response};

use crate::error::Surface;

/// What each error status means, as the request path and handlers give it.
fn meaning(status: &str) -> &'static str {
    match status {
        "400" => "`invalid_request`: a malformed or invalid body, query, header or value; the field at fault is named",
        "401" => "`authentication_failed`: no key, a malformed `Authorization` header, or an unknown, revoked or expired key",
        "402" => "`insufficient_credits`: the account cannot pay for this request",
        "403" => "`permission_denied`: the key's scopes or models, or the account's plan, do not allow this",
        "404" => "`not_found` / `model_not_found`",
        "409" => "`idempotency_conflict`: this `Idempotency-Key` came with another request, or its first request is still running",
        "413" => "`payload_too_large`: the body is over the limit (16 MiB of JSON)",
        "429" => "`rate_limit_exceeded`: the key's requests per minute are used up, or the engine's queue is full; `Retry-After` says when to retry",
        "500" => "`server_error`: an internal failure; the body carries the request id",
        "502" => "`upstream_error`",
        "503" => "`model_unavailable`: the model is not installed or its engine is not built in",
        _ => "an error",
    }
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Integer)
}

fn header(schema: ObjectBuilder, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(schema)
        .description(Some(description))
        .build()
}

fn is_error(status: &str) -> bool {
    status.starts_with('4') || status.starts_with('5')
}

/// Completes the operation of a route of `surface` served at `method`;
/// `spends`: its requests may cost money (402, `X-Maximin-Max-Cost-Usd`).
pub(super) fn complete(surface: Surface, method: &Method, spends: bool, op: &mut Operation) {
    let method = method.as_str();
    let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let writes = method != "GET";
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = op.request_body.is_some();

    let mut statuses: Vec<&str> = Vec::new();
    if authenticated {
        statuses.extend(["401", "403", "429", "500"]);
        if writes || has_params || has_body {
            statuses.push("400");
        }
        if writes {
            statuses.push("413");
        }
        if method == "POST" || method == "DELETE" {
            // The request path reads the body of every POST and DELETE with
            // an Idempotency-Key, and stores the first response.
            statuses.push("409");
            add_idempotency_key(op);
        }
        if spends {
            statuses.push("402");
            add_max_cost(op);
        }
    }
    let responses = &mut op.responses.responses;
    for status in statuses {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(Response::new("")));
    }

    let error_schema = surface.error_schema();
    for (status, resp) in responses.iter_mut() {
        let RefOr::T(resp) = resp else { continue };
        // An error the handler lists without a body gets the surface's.
        if is_error(status) && resp.content.is_empty() {
            if resp.description.is_empty() {
                resp.description = meaning(status).to_owned();
            } else if !resp.description.starts_with('`') {
                resp.description = format!("{}: {}", meaning(status), resp.description);
            }
            resp.content.insert(
                "application/json".to_owned(),
                ContentBuilder::new()
                    .schema(Some(schema_ref(error_schema)))
                    .build(),
            );
        }
        add_headers(status, resp, authenticated, writes);
    }

    // (`/v1/embeddings` also serves the native shape, whose errors are HTTP
    // 200: its 200 response, `EmbeddingsReply`, documents them.)
    if surface == Surface::Native {
        fold_native(op);
    }
}

fn add_max_cost(op: &mut Operation) {
    let params = op.parameters.get_or_insert_with(Vec::new);
    if params
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case("x-maximin-max-cost-usd"))
    {
        return;
    }
    params.push(
        ParameterBuilder::new()
            .name("X-Maximin-Max-Cost-Usd")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "The most this request may cost, in US dollars (such as 0.05): refused with `insufficient_credits` when its estimate is more; a stream is cut where its cost reaches it",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^[0-9]{1,9}(\.[0-9]{1,6})?$")),
            ))
            .build(),
    );
}

fn add_idempotency_key(op: &mut Operation) {
    let params = op.parameters.get_or_insert_with(Vec::new);
    if params
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case("idempotency-key"))
    {
        return;
    }
    params.push(
        ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Makes a retry with the same body return the first response (kept 24 hours) instead of running again",
            ))
            .schema(Some(string_schema()))
            .build(),
    );
}

fn add_headers(status: &str, resp: &mut Response, authenticated: bool, writes: bool) {
    let h = &mut resp.headers;
    h.insert(
        "x-request-id".to_owned(),
        header(string_schema(), "The request's id, also in the log"),
    );
    if authenticated && status != "401" {
        for (name, what) in [
            (
                "x-ratelimit-limit",
                "Requests per minute of this key's endpoint class",
            ),
            (
                "x-ratelimit-remaining",
                "Requests left in the current window",
            ),
            ("x-ratelimit-reset", "When the window ends, in Unix seconds"),
        ] {
            h.insert(name.to_owned(), header(integer_schema(), what));
        }
    }
    if status == "429" {
        h.insert(
            "retry-after".to_owned(),
            header(
                integer_schema(),
                "Seconds until a rate-limited request may be retried",
            ),
        );
    }
    if authenticated && writes && status.starts_with('2') {
        h.insert(
            "idempotent-replayed".to_owned(),
            header(
                string_schema(),
                "`true` on a response replayed for an `Idempotency-Key`",
            ),
        );
    }
}

/// The native surface answers every error with HTTP 200 and `base_resp`:
/// the error statuses become part of the 200 response.
fn fold_native(op: &mut Operation) {
    let responses = &mut op.responses.responses;
    let errors: Vec<String> = responses.keys().filter(|s| is_error(s)).cloned().collect();
    let mut folded: BTreeMap<String, String> = BTreeMap::new();
    let mut headers: BTreeMap<String, Header> = BTreeMap::new();
    for status in errors {
        if let Some(RefOr::T(r)) = responses.remove(&status) {
            folded.insert(status, r.description);
            headers.extend(r.headers);
        }
    }
    if folded.is_empty() {
        return;
    }
    let ok = responses
        .entry("200".to_owned())
        .or_insert_with(|| RefOr::T(Response::new("")));
    let RefOr::T(ok) = ok else { return };
    let codes: Vec<String> = folded.keys().cloned().collect();
    let sep = if ok.description.is_empty() { "" } else { " " };
    ok.description = format!(
        "{}{sep}Errors are HTTP 200 with a non-zero `base_resp.status_code` (`NativeErrorResponse`); what other surfaces answer with {}.",
        ok.description,
        codes.join(", ")
    );
    for (name, h) in headers {
        ok.headers.entry(name).or_insert(h);
    }
    ok.headers.insert(
        "retry-after".to_owned(),
        header(
            integer_schema(),
            "With a rate-limit error: seconds until a retry may pass",
        ),
    );
    let json = ok
        .content
        .entry("application/json".to_owned())
        .or_insert_with(|| Content::new(None::<RefOr<Schema>>));
    json.schema = Some(match json.schema.take() {
        None => schema_ref("NativeErrorResponse"),
        Some(success) => AnyOfBuilder::new()
            .item(success)
            .item(schema_ref("NativeErrorResponse"))
            .into(),
    });
}
