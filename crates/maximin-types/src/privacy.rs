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

pub use crate::DataCategory;

/// One category of `GET /v1/account/privacy/categories`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CategoryView {
    pub category: DataCategory,
    /// What it holds, in words.
    pub description: String,
    /// Records held now.
    pub count: u64,
    /// Their size: the files' bytes, or the stored records' bytes.
    pub bytes: u64,
    /// When the oldest record was made (RFC 3339); absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest: Option<String>,
    /// How long it is kept, in words (seed 001's schedule).
    pub retention: String,
    /// Whether the law requires keeping it (then it cannot be deleted on
    /// request; `delete_refused` says why).
    pub legally_required: bool,
    /// Whether `POST /v1/account/privacy/delete` removes it now.
    pub deletable: bool,
    /// Why it cannot be deleted on request, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_refused: Option<String>,
}

/// `POST /v1/account/privacy/export`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ExportRequest {
    /// Put the files' contents in too: the export is then a zip holding
    /// `export.json` and `files/`.
    #[serde(default)]
    pub include_files: bool,
}

/// An export: its task, and once done, its file and a signed link.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportView {
    pub task_id: String,
    /// `queued`, `processing`, `success` or `failed`.
    pub status: String,
    /// Percent done.
    pub progress: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// Downloads the export without a key until it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    /// `json` or `zip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /v1/account/privacy/delete`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeleteRequest {
    pub categories: Vec<String>,
}

/// What a deletion removed, per category.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeleteView {
    pub deleted: std::collections::BTreeMap<String, u64>,
}

/// `POST /v1/account/privacy/debug-logging`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DebugLoggingRequest {
    /// Turn it on (with `duration_hours`) or off.
    pub enabled: bool,
    /// How long it stays on: 1 to 168 hours (7 days).
    #[serde(default)]
    pub duration_hours: Option<u32>,
}

/// Whether debug logging is on, and until when.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DebugLoggingView {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Request/response pairs kept now (sealed).
    pub entries: u64,
}

/// `POST /v1/account/close`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClosureView {
    pub account_id: String,
    pub closed_at: String,
    /// When the profile is purged (90 days after closure).
    pub purge_at: String,
    pub keys_revoked: u64,
    pub files_deleted: u64,
    pub voices_deleted: u64,
}

/// A support ticket (`/v1/account/support`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    pub id: String,
    pub subject: String,
    /// `open` or `closed`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    /// The conversation, oldest first (absent in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<TicketMessage>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TicketMessage {
    pub at: String,
    /// `customer` or `operator`.
    pub author: String,
    pub body: String,
}

/// `POST /v1/account/support`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewTicket {
    pub subject: String,
    pub message: String,
}

/// `POST /v1/account/support/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TicketReply {
    pub message: String,
}
