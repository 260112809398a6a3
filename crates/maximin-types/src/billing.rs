//! The billing views: balance, spend and credits, as the account API and
//! the CLI show them (issue 16). Amounts are US dollars; the store keeps
//! integer micro-USD, so every figure here is exact to six decimals.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Plan;

/// `GET /v1/account/billing`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BillingView {
    pub account_id: String,
    pub plan: Plan,
    /// `true` for plans billed monthly by invoice (`enterprise`, `coding`):
    /// no balance is checked, the month's spend is what is due.
    pub invoiced: bool,
    /// Credit added less what was spent.
    pub balance_usd: f64,
    /// Set aside for requests still running.
    pub held_usd: f64,
    /// What new requests may spend: balance less holds.
    pub available_usd: f64,
    /// The current month (UTC), `2026-12`.
    pub month: String,
    /// This month's spend of live keys.
    pub this_month: Spend,
    /// This month's requests of sandbox keys (`mmx_test_`): never charged.
    pub sandbox: Spend,
    /// The last 12 months, oldest first (the current one last).
    pub months: Vec<MonthSpend>,
    /// Credit added: starting credits and grants, oldest first.
    pub credits: Vec<CreditEntry>,
}

/// Spend over a period, in total, by model and by key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Spend {
    pub cost_usd: f64,
    pub requests: u64,
    pub by_model: Vec<SpendLine>,
    pub by_key: Vec<SpendLine>,
}

/// One model's or one key's share of a period's spend.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SpendLine {
    /// The model's catalog id, or the key's id.
    pub name: String,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub characters: u64,
    pub images: u64,
    pub media_ms: u64,
    pub cost_usd: f64,
}

/// One month's spend.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MonthSpend {
    pub month: String,
    pub cost_usd: f64,
    pub requests: u64,
    /// Requests of sandbox keys, not charged.
    pub sandbox_requests: u64,
}

/// Credit added to an account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreditEntry {
    pub at: String,
    pub amount_usd: f64,
    /// `starting` or `grant`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// `POST /v1/account/credits`: what was added and the balance after it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreditGranted {
    pub account_id: String,
    pub amount_usd: f64,
    pub balance_usd: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// A monthly statement in the list (`GET /v1/account/invoices`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvoiceSummary {
    /// `inv_2026-11`: one per account and month.
    pub id: String,
    pub month: String,
    /// `open` for the current month, `closed` from the 1st of the next.
    pub status: String,
    /// When it closes or closed: the 1st of the next month, 00:00 UTC.
    pub closes_at: String,
    /// What live keys spent in the month.
    pub total_usd: f64,
    /// Credit added in the month.
    pub credits_usd: f64,
    /// For invoiced plans, what is owed for the month; 0 for prepaid ones
    /// (their spend came off the balance).
    pub amount_due_usd: f64,
}

/// A monthly statement with its lines (`GET /v1/account/invoices/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Invoice {
    #[serde(flatten)]
    pub summary: InvoiceSummary,
    pub account_id: String,
    pub email: String,
    pub plan: crate::Plan,
    /// Spend by key and model (live keys).
    pub lines: Vec<InvoiceLine>,
    /// Requests of sandbox keys in the month, not charged.
    pub sandbox_requests: u64,
    /// Credit added in the month.
    pub credits: Vec<CreditEntry>,
}

/// One key's use of one model in the month.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvoiceLine {
    pub key_id: String,
    pub model: String,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub characters: u64,
    pub images: u64,
    pub media_ms: u64,
    pub cost_usd: f64,
}
