//! Schemas of the seed 002 surface: the `{data, meta}` envelope around the
//! wire types, its error envelope, and the operational routes' bodies.
//! Handlers build the same shapes through `Ctx`.

use maximin_types::inference::{ChatCompletion, EmbeddingsResponse};
use maximin_types::{
    AccountUsage, AccountView, ActivityEntry, KeyCreated, KeyView, ModelView, TokenUsage,
};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Meta {
    pub request_id: String,
    pub model: Option<String>,
    pub usage: Option<TokenUsage>,
    /// The deployment that answered (`NAME:MODEL` or `local:ENGINE`), also
    /// in the `X-Maximin-Upstream` header.
    pub upstream: Option<String>,
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

/// The seed 002 error envelope.
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
envelope!(BillingResponse, maximin_types::billing::BillingView);
envelope!(CreditGrantedResponse, maximin_types::billing::CreditGranted);
envelope!(
    InvoiceListResponse,
    Vec<maximin_types::billing::InvoiceSummary>
);
envelope!(InvoiceResponse, maximin_types::billing::Invoice);
envelope!(
    PrivacyLogResponse,
    Vec<maximin_types::privacy::PrivacyLogEntry>
);
envelope!(
    CategoryListResponse,
    Vec<maximin_types::privacy::CategoryView>
);
envelope!(ExportResponse, maximin_types::privacy::ExportView);
envelope!(DeleteResponse, maximin_types::privacy::DeleteView);
envelope!(
    DebugLoggingResponse,
    maximin_types::privacy::DebugLoggingView
);
envelope!(ClosureResponse, maximin_types::privacy::ClosureView);
envelope!(TicketResponse, maximin_types::privacy::TicketView);
envelope!(TicketListResponse, Vec<maximin_types::privacy::TicketView>);
envelope!(
    UpstreamListResponse,
    Vec<crate::routes::upstreams::UpstreamView>
);
envelope!(ChatCompletionResponse, ChatCompletion);
envelope!(EmbeddingsResponseEnvelope, EmbeddingsResponse);

/// One server-sent event as a client reads it: `data` is a JSON text (or
/// `[DONE]` where the surface ends its streams so).
#[derive(Serialize, ToSchema)]
pub struct ServerSentEvent {
    /// The event name where the surface names events (Anthropic's
    /// `message_start`, …); unnamed events read as `message`.
    pub event: Option<String>,
    pub data: String,
}

/// `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct StatusResponse {
    /// `ok`, `ready`, `draining`, `storage unavailable`, `fetching models`
    /// or `models missing`.
    pub status: String,
    /// `/readyz` on a first start: default models whose pull is running.
    #[schema(nullable = false)]
    pub fetching: Option<Vec<PendingModel>>,
    /// `/readyz`: default models whose pull failed and that are not in place.
    #[schema(nullable = false)]
    pub missing: Option<Vec<PendingModel>>,
}

/// A default model a starting server does not have yet.
#[derive(Serialize, ToSchema)]
pub struct PendingModel {
    pub model: String,
    /// Why its pull failed (absent while it is fetching).
    #[schema(nullable = false)]
    pub error: Option<String>,
    /// The command that fetches it, e.g. `maximin models pull gemma-3-270m`.
    pub command: String,
}
