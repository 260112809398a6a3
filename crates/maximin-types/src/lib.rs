//! Wire-level vocabulary shared by every maximin crate: error codes and their HTTP
//! statuses, plans, modalities, scopes, endpoint classes, and the JSON views the
//! account API and the CLI print.
//!
//! Nothing here does I/O; everything here is `Serialize` so that one definition
//! serves the HTTP surfaces, the CLI's `--json` output and the OpenAPI document.

pub mod billing;
pub mod inference;
pub mod privacy;
pub mod speech;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The one table of error codes (DESIGN.md §1). The code decides the HTTP status;
/// every surface renders the same code in its own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    AuthenticationFailed,
    PermissionDenied,
    RateLimitExceeded,
    ModelNotFound,
    InsufficientCredits,
    IdempotencyConflict,
    NotFound,
    PayloadTooLarge,
    ServerError,
    UpstreamError,
    ModelUnavailable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::InvalidRequest,
        ErrorCode::AuthenticationFailed,
        ErrorCode::PermissionDenied,
        ErrorCode::RateLimitExceeded,
        ErrorCode::ModelNotFound,
        ErrorCode::InsufficientCredits,
        ErrorCode::IdempotencyConflict,
        ErrorCode::NotFound,
        ErrorCode::PayloadTooLarge,
        ErrorCode::ServerError,
        ErrorCode::UpstreamError,
        ErrorCode::ModelUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::AuthenticationFailed => "authentication_failed",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::RateLimitExceeded => "rate_limit_exceeded",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::InsufficientCredits => "insufficient_credits",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::NotFound => "not_found",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::ServerError => "server_error",
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::ModelUnavailable => "model_unavailable",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::AuthenticationFailed => 401,
            ErrorCode::InsufficientCredits => 402,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::ModelNotFound | ErrorCode::NotFound => 404,
            ErrorCode::IdempotencyConflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimitExceeded => 429,
            ErrorCode::ServerError => 500,
            ErrorCode::UpstreamError => 502,
            ErrorCode::ModelUnavailable => 503,
        }
    }

    /// The `base_resp.status_code` the MiniMax-native surface uses for this code
    /// (spec §0.5).
    pub fn native_status_code(self) -> i64 {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::PayloadTooLarge => 2013,
            ErrorCode::AuthenticationFailed => 1004,
            ErrorCode::PermissionDenied => 2061,
            ErrorCode::RateLimitExceeded => 1002,
            ErrorCode::ModelNotFound | ErrorCode::ModelUnavailable => 2061,
            ErrorCode::InsufficientCredits => 1008,
            ErrorCode::IdempotencyConflict => 2013,
            ErrorCode::NotFound => 2013,
            ErrorCode::ServerError => 1000,
            ErrorCode::UpstreamError => 1033,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string could not be parsed into one of the enums below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
    pub allowed: &'static [&'static str],
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} '{}': expected one of {}",
            self.kind,
            self.value,
            self.allowed.join(", ")
        )
    }
}

impl std::error::Error for UnknownValue {}

// `$text` is a `tt`, not a `literal`: a `literal` fragment reaches derive
// macros wrapped in an invisible group, which utoipa does not read as the
// variant's `rename`, so the schema would list `Free` where the wire says
// `free`. (`enum_schemas_match_serde` below keeps them equal.)
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($variant:ident => $text:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: $kind, value: s.to_owned(), allowed: Self::NAMES }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// An account's plan (DESIGN.md §2).
    Plan, "plan", {
        Free => "free",
        Payg => "payg",
        Coding => "coding",
        Enterprise => "enterprise",
    }
);

string_enum!(
    /// What kind of service an endpoint or model provides. Plans entitle
    /// modalities; scopes narrow a key to some of them.
    Modality, "modality", {
        Text => "text",
        Embeddings => "embeddings",
        Speech => "speech",
        Video => "video",
        Image => "image",
        Music => "music",
        Files => "files",
        FineTunes => "fine-tunes",
    }
);

string_enum!(
    /// Endpoint classes that share one rate-limit counter (DESIGN.md §3).
    RateClass, "endpoint class", {
        Chat => "chat",
        Embeddings => "embeddings",
        Speech => "speech",
        VideoSubmit => "video_submit",
        Media => "media",
        Read => "read",
        FileUpload => "file_upload",
        FineTuneCreate => "fine_tune_create",
        Account => "account",
    }
);

string_enum!(
    /// A category of data held for an account (seed 001): what the privacy
    /// dashboard lists, exports and deletes.
    DataCategory, "data category", {
        Profile => "profile",
        Keys => "keys",
        UsageLogs => "usage_logs",
        BillingRecords => "billing_records",
        Files => "files",
        TaskRecords => "task_records",
        Voices => "voices",
        SupportMessages => "support_messages",
        PrivacyLog => "privacy_log",
        DebugLogs => "debug_logs",
        Members => "members",
        FineTunes => "fine_tunes",
    }
);

impl Plan {
    /// Modalities this plan may use at all; a key's scopes can only narrow this.
    pub fn entitles(self, modality: Modality) -> bool {
        match self {
            Plan::Coding => modality == Modality::Text,
            Plan::Free | Plan::Payg | Plan::Enterprise => true,
        }
    }
}

/// A key scope. A key without scopes may use every endpoint its plan allows except
/// the account API; `read` restricts it to read-only calls; modality scopes restrict
/// it to those modalities; `admin` adds the account API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Admin,
    Modality(Modality),
}

impl Scope {
    pub fn names() -> Vec<&'static str> {
        let mut names = vec!["read", "admin"];
        names.extend_from_slice(Modality::NAMES);
        names
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
            Scope::Modality(m) => m.as_str(),
        }
    }
}

const SCOPE_NAMES: &[&str] = &[
    "read",
    "admin",
    "text",
    "embeddings",
    "speech",
    "video",
    "image",
    "music",
    "files",
    "fine-tunes",
];

impl FromStr for Scope {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            other => other
                .parse::<Modality>()
                .map(Scope::Modality)
                .map_err(|_| UnknownValue {
                    kind: "scope",
                    value: s.to_owned(),
                    allowed: SCOPE_NAMES,
                }),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Scopes are serialized by hand, so their schema is written by hand too,
/// from the same names.
impl utoipa::PartialSchema for Scope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A key scope: `read` (read-only calls), `admin` (adds the account API), or a modality the key is limited to.",
            ))
            .enum_values(Some(SCOPE_NAMES.iter().copied()))
            .into()
    }
}

impl ToSchema for Scope {}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Per-account limits of an enterprise plan (requests per minute for every
/// endpoint class, plus a burst allowance on top within a window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CustomLimits {
    pub rpm: u32,
    pub burst: u32,
    /// Tokens per minute (default 20,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u32>,
}

/// An account as the account API and the CLI show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub email: String,
    pub plan: Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<CustomLimits>,
    /// Modalities the plan entitles.
    pub entitlements: Vec<Modality>,
    /// Regions its requests may be served in; absent: anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// PII protection before upstreams.
    #[serde(default)]
    pub pii: PiiMode,
    /// Whether PII protection applies to local engines too.
    #[serde(default)]
    pub pii_local: bool,
    /// The install's own account (it may grant credit to others).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operator: bool,
    pub created_at: String,
}

/// What happens to personal data (e-mail addresses, phone and card numbers,
/// IBANs, SSNs, IP addresses, keys) in a request bound for an upstream:
/// sent as is, replaced by typed placeholders (restored in the answer), or
/// the request refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PiiMode {
    #[default]
    Off,
    Redact,
    Block,
}

impl PiiMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiMode::Off => "off",
            PiiMode::Redact => "redact",
            PiiMode::Block => "block",
        }
    }
}

impl PiiMode {
    pub const NAMES: &'static [&'static str] = &["off", "redact", "block"];
}

impl std::str::FromStr for PiiMode {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(PiiMode::Off),
            "redact" => Ok(PiiMode::Redact),
            "block" => Ok(PiiMode::Block),
            _ => Err(UnknownValue {
                kind: "PII mode",
                value: s.to_owned(),
                allowed: Self::NAMES,
            }),
        }
    }
}

impl fmt::Display for PiiMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Usage figures of one key (metadata only, never content).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageFigures {
    pub requests: u64,
    pub errors: u64,
    /// Tokens read by text models (chat, embeddings).
    pub prompt_tokens: u64,
    /// Tokens written by chat models.
    pub completion_tokens: u64,
    /// Characters billed by speech models (MiniMax's rule: every character
    /// but whitespace and control characters).
    #[serde(default)]
    pub characters: u64,
    /// Images made by image models.
    #[serde(default)]
    pub images: u64,
    /// Milliseconds of video or music made.
    #[serde(default)]
    pub media_ms: u64,
}

/// An API key as listed; the secret is never part of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub account_id: String,
    pub name: String,
    /// The first characters of the secret, for recognising a key in a list.
    pub prefix: String,
    /// `live` or `test`.
    pub mode: String,
    pub scopes: Vec<Scope>,
    pub models: Vec<String>,
    /// Regions within the account's that this key's requests may be served in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// PII protection for this key, over the account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<PiiMode>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    pub usage: UsageFigures,
    /// What the key may spend in a calendar month (UTC), USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
}

/// A freshly created key: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyCreated {
    #[serde(flatten)]
    pub key: KeyView,
    pub secret: String,
}

/// One entry of a key's activity log: metadata of one request, never content.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActivityEntry {
    pub at: String,
    pub request_id: String,
    pub method: String,
    pub endpoint: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Characters billed (speech requests).
    #[serde(default)]
    pub characters: u64,
    /// Images made (image requests).
    #[serde(default)]
    pub images: u64,
    /// Milliseconds of video or music made.
    #[serde(default)]
    pub media_ms: u64,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// What it cost, USD (0 for sandbox keys).
    #[serde(default)]
    pub cost_usd: f64,
}

/// Usage of an account over a period, in total, by key and by model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountUsage {
    pub since: String,
    pub until: String,
    pub total: UsageFigures,
    pub by_key: Vec<KeyUsage>,
    pub by_model: Vec<ModelUsage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyUsage {
    pub key_id: String,
    #[serde(flatten)]
    pub usage: UsageFigures,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelUsage {
    pub model: String,
    #[serde(flatten)]
    pub usage: UsageFigures,
}

/// Token counts of one request, reported in `meta.usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Prices of a model in US dollars (the catalog's, or the operator's
/// `[billing.prices.MODEL]`): per million tokens, per 10,000 characters of
/// speech, per image, per second of video or music.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
    #[serde(default)]
    pub per_10k_characters: f64,
    #[serde(default)]
    pub per_image: f64,
    #[serde(default)]
    pub per_second: f64,
}

/// A catalog model as `GET /v1/models` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    pub id: String,
    pub object: &'static str,
    pub aliases: Vec<String>,
    pub modality: Modality,
    pub context_window: u32,
    pub price: Price,
    pub capabilities: Vec<String>,
    pub deprecated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecation_date: Option<String>,
    pub engine: String,
    /// True when this install can serve the model now (weights present or an
    /// upstream configured).
    pub available: bool,
    /// What to do to make it available, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_hint: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_round_trips_through_its_name() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn scopes_parse_and_reject() {
        assert_eq!("admin".parse::<Scope>(), Ok(Scope::Admin));
        assert_eq!(
            "fine-tunes".parse::<Scope>(),
            Ok(Scope::Modality(Modality::FineTunes))
        );
        let err = "root".parse::<Scope>().expect_err("unknown scope");
        assert!(err.to_string().contains("read, admin, text"));
        assert_eq!(Scope::names(), SCOPE_NAMES);
    }

    /// The values a type's schema lists.
    fn schema_values<T: utoipa::PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).expect("schema");
        schema["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("no enum in {schema}"))
            .iter()
            .map(|v| v.as_str().expect("string value").to_owned())
            .collect()
    }

    /// What serde writes for each value.
    fn wire_values<T: Serialize>(all: &[T]) -> Vec<String> {
        all.iter()
            .map(|v| match serde_json::to_value(v).expect("serialize") {
                serde_json::Value::String(s) => s,
                other => panic!("{other} is not a string"),
            })
            .collect()
    }

    /// A generated client reads the schema: its enums must list exactly what
    /// the wire carries (`free`, not `Free`).
    #[test]
    fn enum_schemas_match_serde() {
        assert_eq!(schema_values::<Plan>(), wire_values(Plan::ALL));
        assert_eq!(schema_values::<Modality>(), wire_values(Modality::ALL));
        assert_eq!(schema_values::<RateClass>(), wire_values(RateClass::ALL));
        assert_eq!(schema_values::<ErrorCode>(), wire_values(&ErrorCode::ALL));
        let mut scopes = vec![Scope::Read, Scope::Admin];
        scopes.extend(Modality::ALL.iter().copied().map(Scope::Modality));
        assert_eq!(schema_values::<Scope>(), wire_values(&scopes));
        use crate::inference::Role;
        assert_eq!(
            schema_values::<Role>(),
            wire_values(&[Role::System, Role::User, Role::Assistant, Role::Tool])
        );
        // And the names each enum parses are the names it writes.
        assert_eq!(wire_values(Plan::ALL), Plan::NAMES);
        assert_eq!(wire_values(Modality::ALL), Modality::NAMES);
    }

    #[test]
    fn coding_plan_is_text_only() {
        assert!(Plan::Coding.entitles(Modality::Text));
        assert!(!Plan::Coding.entitles(Modality::Embeddings));
        assert!(Plan::Free.entitles(Modality::Video));
    }
}
