//! The retention schedule of seed 001, enforced on the platform's clock
//! (so `MAXIMIN_CLOCK_OFFSET` moves it): each sweep removes what has
//! outlived its period and reports counts only.

use time::OffsetDateTime;

use crate::{billing, Platform, Result};

/// What one sweep removed, by rule. Counts only, never content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Usage events (12 months), ended task records (12 months) and
    /// expired idempotency records.
    pub usage: u64,
    /// Credit ledger entries and billing lines past 7 years, lapsed holds.
    pub billing: u64,
    /// Files past their own expiry (bytes and records).
    pub files: u64,
    /// Temporary files a crashed writer left.
    pub orphans: u64,
    /// Designed and cloned voices never used in 7 days.
    pub voices: u64,
    /// Debug logs whose window ended.
    pub debug_logs: u64,
    /// Support tickets and messages 2 years after closing.
    pub support: u64,
    /// Profiles of accounts closed 90 days ago.
    pub profiles: u64,
    /// Hub sessions that expired or went idle (their playground keys revoked).
    pub sessions: u64,
}

impl SweepReport {
    pub fn total(&self) -> u64 {
        self.usage
            + self.billing
            + self.files
            + self.orphans
            + self.voices
            + self.debug_logs
            + self.support
            + self.profiles
            + self.sessions
    }
}

impl Platform {
    /// Runs every retention rule once at `now`. A rule that fails is
    /// logged (its count stays 0) and the others still run.
    pub async fn sweep_retention(&self, now: OffsetDateTime) -> SweepReport {
        let mut report = SweepReport::default();
        let note = |rule: &str, r: Result<u64>, into: &mut u64| match r {
            Ok(n) => *into = n,
            Err(e) => tracing::warn!(rule, code = %e.code, "retention sweep failed"),
        };
        note(
            "usage",
            self.store.sweep(now, crate::USAGE_RETENTION).await,
            &mut report.usage,
        );
        note(
            "billing",
            self.store
                .sweep_billing(
                    now,
                    now - billing::BILLING_RETENTION,
                    &billing::months_back(now, 7 * 12),
                )
                .await,
            &mut report.billing,
        );
        note("files", self.files.sweep_expired().await, &mut report.files);
        note(
            "orphans",
            self.files.sweep_orphans().await,
            &mut report.orphans,
        );
        note(
            "voices",
            self.store
                .expire_voices(now - crate::voices::UNUSED_TTL, now)
                .await,
            &mut report.voices,
        );
        note(
            "debug_logs",
            self.store.sweep_debug_logs(now).await,
            &mut report.debug_logs,
        );
        note(
            "support",
            self.store
                .sweep_tickets(now - crate::support::SUPPORT_RETENTION)
                .await,
            &mut report.support,
        );
        note(
            "profiles",
            self.purge_closed(now).await,
            &mut report.profiles,
        );
        note(
            "sessions",
            self.sweep_sessions(now).await,
            &mut report.sessions,
        );
        report
    }
}
