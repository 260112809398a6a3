//! The privacy dashboard's views (issue 16).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One entry of an account's privacy action log (append-only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PrivacyLogEntry {
    pub id: i64,
    pub at: String,
    /// `key_created`, `key_revoked`, `routing_changed` (regions or PII).
    pub action: String,
    /// What it was done to: a key id, or the account id.
    pub subject: String,
    /// Metadata of the action (never content, never a secret).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}
