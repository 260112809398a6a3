//! An account's usage by UTC day for the hub's charts: requests, tokens,
//! characters and spend per day over the last days, and the same period
//! split by model and by key. Metadata only, from the usage events.

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::{Platform, Result};

/// Totals of one model or one key over the period.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    pub name: String,
    pub requests: u64,
    pub tokens: u64,
    pub characters: u64,
    pub cost_micro: i64,
}

/// One figure per day, oldest first, with its days' dates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DailySeries {
    /// `2026-12-07`, one per day, the last one today.
    pub days: Vec<String>,
    pub requests: Vec<u64>,
    pub tokens: Vec<u64>,
    pub characters: Vec<u64>,
    pub cost_micro: Vec<i64>,
    /// Most spent first, then most requests.
    pub by_model: Vec<Totals>,
    pub by_key: Vec<Totals>,
}

fn add(t: &mut Totals, r: &crate::store::DailyUsage) {
    t.requests += r.requests;
    t.tokens += r.tokens;
    t.characters += r.characters;
    t.cost_micro += r.cost_micro;
}

fn ranked(map: std::collections::BTreeMap<String, Totals>) -> Vec<Totals> {
    let mut v: Vec<Totals> = map.into_values().collect();
    v.sort_by(|a, b| {
        b.cost_micro
            .cmp(&a.cost_micro)
            .then(b.requests.cmp(&a.requests))
            .then(a.name.cmp(&b.name))
    });
    v
}

impl Platform {
    /// The last `days` days (today included) of the account's usage.
    pub async fn usage_by_day(&self, account_id: &str, days: u32) -> Result<DailySeries> {
        let days = i64::from(days.clamp(1, 366));
        self.meter.flush().await;
        let now = self.clock.now();
        let today = now.unix_timestamp().div_euclid(86_400);
        let first = today - days + 1;
        let since = OffsetDateTime::UNIX_EPOCH + Duration::days(first);
        let rows = self.store.usage_daily(account_id, since).await?;
        let n = days as usize;
        let mut out = DailySeries {
            days: (first..=today)
                .map(|d| {
                    let t = OffsetDateTime::UNIX_EPOCH + Duration::days(d);
                    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
                })
                .collect(),
            requests: vec![0; n],
            tokens: vec![0; n],
            characters: vec![0; n],
            cost_micro: vec![0; n],
            ..Default::default()
        };
        let mut models = std::collections::BTreeMap::<String, Totals>::new();
        let mut keys = std::collections::BTreeMap::<String, Totals>::new();
        for r in rows.iter().filter(|r| (first..=today).contains(&r.day)) {
            let i = (r.day - first) as usize;
            out.requests[i] += r.requests;
            out.tokens[i] += r.tokens;
            out.characters[i] += r.characters;
            out.cost_micro[i] += r.cost_micro;
            let model = if r.model.is_empty() {
                "(none)"
            } else {
                &r.model
            };
            add(
                models.entry(model.to_owned()).or_insert_with(|| Totals {
                    name: model.to_owned(),
                    ..Default::default()
                }),
                r,
            );
            add(
                keys.entry(r.key_id.clone()).or_insert_with(|| Totals {
                    name: r.key_id.clone(),
                    ..Default::default()
                }),
                r,
            );
        }
        out.by_model = ranked(models);
        out.by_key = ranked(keys);
        Ok(out)
    }
}
