//! Prices, credits and charging (issue 16).
//!
//! Money is integer micro-USD. Every catalog model has prices (per million
//! tokens in and out, per 10,000 characters of speech, per image, per second
//! of video or music); `[billing.prices.MODEL]` overrides them. A request is
//! charged from its usage when it is metered ([`Billing::cost_micro`]), so
//! a stream cut short pays for what it delivered.
//!
//! Accounts on `free` and `payg` spend a balance; `enterprise` and `coding`
//! are invoiced monthly (no balance check). So that concurrent requests
//! cannot overdraw, a request first takes a *hold* of its estimated cost
//! ([`Platform::reserve`]): one store statement checks the balance less the
//! live holds and inserts it. Metering removes the hold in the transaction
//! that charges the real cost. Sandbox keys (`mmx_test_`) are never charged.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use maximin_types::billing::{BillingView, CreditEntry, MonthSpend, Spend, SpendLine};
use maximin_types::{ErrorCode, Plan};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::catalog::{Catalog, ModelSpec};
use crate::store::{
    Account, BillingLine, CreditHold, HoldLimits, HoldRefusal, LedgerEntry, UsageEvent,
};
use crate::{secrets, Caller, Error, Platform, Result};

/// Billing records (the ledger, monthly lines) are kept 7 years (seed 001).
pub const BILLING_RETENTION: time::Duration = time::Duration::days(7 * 365 + 2);

/// Micro-USD in one US dollar.
pub const MICRO: f64 = 1_000_000.0;
/// How long a hold counts when its request never ends (its process died).
const HOLD_TTL: time::Duration = time::Duration::hours(2);

/// `[billing]` in maximin.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// What a new `free` or `payg` account starts with, in USD (default 5).
    #[serde(default = "default_starting")]
    pub starting_credits_usd: f64,
    /// Prices by catalog id, over the catalog's.
    #[serde(default)]
    pub prices: BTreeMap<String, PriceOverride>,
}

fn default_starting() -> f64 {
    5.0
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            starting_credits_usd: default_starting(),
            prices: BTreeMap::new(),
        }
    }
}

/// `[billing.prices.MODEL]`: any of a model's prices, in USD.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceOverride {
    /// Per million input tokens.
    pub input: Option<f64>,
    /// Per million output tokens.
    pub output: Option<f64>,
    /// Per 10,000 characters of speech.
    pub per_10k_characters: Option<f64>,
    /// Per image.
    pub per_image: Option<f64>,
    /// Per second of video or music.
    pub per_second: Option<f64>,
}

impl BillingConfig {
    /// Refuses negative or non-finite figures and prices of unknown models.
    pub fn validate(&self, catalog: &Catalog) -> std::result::Result<(), String> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(self.starting_credits_usd) {
            return Err("[billing] starting_credits_usd must be 0 or more".into());
        }
        for (id, p) in &self.prices {
            if catalog.resolve(id).is_none() {
                return Err(format!(
                    "[billing.prices.\"{id}\"]: no model '{id}' in the catalog"
                ));
            }
            let all = [
                p.input,
                p.output,
                p.per_10k_characters,
                p.per_image,
                p.per_second,
            ];
            if all.into_iter().flatten().any(|v| !ok(v)) {
                return Err(format!(
                    "[billing.prices.\"{id}\"]: prices must be 0 or more (USD)"
                ));
            }
        }
        Ok(())
    }
}

/// A model's prices in force, USD.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prices {
    pub input_per_million: f64,
    pub output_per_million: f64,
    pub per_10k_characters: f64,
    pub per_image: f64,
    pub per_second: f64,
}

impl Prices {
    fn of(spec: &ModelSpec, over: Option<&PriceOverride>) -> Prices {
        let o = over.cloned().unwrap_or_default();
        Prices {
            input_per_million: o.input.unwrap_or(spec.price_input),
            output_per_million: o.output.unwrap_or(spec.price_output),
            per_10k_characters: o.per_10k_characters.unwrap_or(spec.price_per_10k_chars),
            per_image: o.per_image.unwrap_or(spec.price_per_image),
            per_second: o.per_second.unwrap_or(spec.price_per_second),
        }
    }

    /// What `usage` costs, micro-USD, rounded up.
    pub fn cost_micro(&self, usage: &Quantities) -> i64 {
        // USD per million tokens is micro-USD per token.
        let micro = usage.prompt_tokens as f64 * self.input_per_million
            + usage.completion_tokens as f64 * self.output_per_million
            + usage.characters as f64 * self.per_10k_characters * 100.0
            + usage.images as f64 * self.per_image * MICRO
            + usage.media_ms as f64 * self.per_second * 1000.0;
        // Within a thousandth of a micro-USD of a whole one is that one
        // (0.1 + 0.2 must not cost 1 more).
        let rounded = micro.round();
        let micro = if (micro - rounded).abs() < 1e-3 {
            rounded
        } else {
            micro.ceil()
        };
        if micro >= i64::MAX as f64 {
            i64::MAX
        } else {
            micro as i64
        }
    }
}

/// What a request used, or is estimated to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quantities {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub characters: u64,
    pub images: u64,
    pub media_ms: u64,
}

impl Quantities {
    fn of(e: &UsageEvent) -> Quantities {
        Quantities {
            prompt_tokens: e.prompt_tokens,
            completion_tokens: e.completion_tokens,
            characters: e.characters,
            images: e.images,
            media_ms: e.media_ms,
        }
    }
}

/// Prices and credits in force.
#[derive(Debug, Clone)]
pub struct Billing {
    starting_micro: i64,
    prices: HashMap<String, Prices>,
}

impl Billing {
    pub fn new(catalog: &Catalog, config: BillingConfig) -> Self {
        let prices = catalog
            .models()
            .iter()
            .map(|m| {
                let over = config.prices.get(&m.id).or_else(|| {
                    // An override may name the model by an alias.
                    config
                        .prices
                        .iter()
                        .find(|(k, _)| m.aliases.iter().any(|a| a == *k))
                        .map(|(_, v)| v)
                });
                (m.id.clone(), Prices::of(m, over))
            })
            .collect();
        Billing {
            starting_micro: usd_to_micro(config.starting_credits_usd),
            prices,
        }
    }

    /// The prices of a catalog model (by id or alias); none for a name the
    /// catalog does not hold.
    pub fn prices(&self, catalog: &Catalog, model: &str) -> Option<Prices> {
        let id = catalog.resolve(model).map_or(model, |m| m.id.as_str());
        self.prices.get(id).copied()
    }

    pub fn starting_credits_micro(&self) -> i64 {
        self.starting_micro
    }
}

/// Plans whose spend is invoiced monthly instead of taken from a balance.
pub fn invoiced(plan: Plan) -> bool {
    matches!(plan, Plan::Enterprise | Plan::Coding)
}

/// Plans that get starting credits.
pub fn gets_starting_credits(plan: Plan) -> bool {
    matches!(plan, Plan::Free | Plan::Payg)
}

/// The calendar month (UTC) of a time: `2026-12`.
pub fn month_of(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}", at.year(), u8::from(at.month()))
}

/// The first instant of a month (`2026-12`), UTC.
pub fn month_start(month: &str) -> Option<OffsetDateTime> {
    let (y, m) = month.split_once('-')?;
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(y.parse().ok()?, month, 1).ok()?;
    Some(date.midnight().assume_utc())
}

pub fn usd_to_micro(usd: f64) -> i64 {
    (usd * MICRO).round() as i64
}

/// Micro-USD as dollars, for messages and views.
pub fn micro_to_usd(micro: i64) -> f64 {
    micro as f64 / MICRO
}

/// The money side of one request: the cap its caller set and the holds it
/// took. Holds not handed to a usage event when the request ends are
/// released when this is dropped.
#[derive(Default)]
pub struct Bill {
    /// `X-Maximin-Max-Cost-Usd`, micro-USD.
    pub cap_micro: Option<i64>,
    holds: Mutex<Vec<String>>,
    release: Option<crate::meter::Releaser>,
    /// Tokens counted at admission against the tokens-per-minute limits,
    /// and the decision the `X-RateLimit-*-Tokens` headers report.
    tokens: Mutex<
        Option<(
            Option<crate::store::TokenCharge>,
            crate::ratelimit::Decision,
        )>,
    >,
}

impl std::fmt::Debug for Bill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bill")
            .field("cap_micro", &self.cap_micro)
            .finish_non_exhaustive()
    }
}

impl Bill {
    /// Hands the holds over (to the usage event that charges the request).
    pub fn take_holds(&self) -> Vec<String> {
        std::mem::take(&mut *self.holds.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The tokens-per-minute decision of this request, if it counted tokens.
    pub fn token_decision(&self) -> Option<crate::ratelimit::Decision> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, d)| *d)
    }

    /// Hands the tokens counted over (to the usage event that settles them).
    pub fn take_tokens(&self) -> Option<crate::store::TokenCharge> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|(t, _)| t.take())
    }

    /// Records the tokens counted at admission and the decision.
    pub(crate) fn set_tokens(
        &self,
        charge: crate::store::TokenCharge,
        decision: crate::ratelimit::Decision,
    ) {
        *self.tokens.lock().unwrap_or_else(|e| e.into_inner()) = Some((Some(charge), decision));
    }

    fn push(&self, id: String) {
        self.holds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
    }
}

impl Drop for Bill {
    fn drop(&mut self) {
        let holds = self.take_holds();
        if let (false, Some(r)) = (holds.is_empty(), &self.release) {
            r.release(holds);
        }
    }
}

/// `insufficient_credits`, with the reason and the figures.
pub fn insufficient(reason: &str, message: String) -> Error {
    Error::new(ErrorCode::InsufficientCredits, message).with("reason", reason)
}

fn usd(micro: i64) -> String {
    format!("${:.6}", micro_to_usd(micro))
}

impl Platform {
    /// A caller for one request (or one unit of work): its own [`Bill`],
    /// with the cap it asked for.
    pub fn for_request(&self, caller: &Caller, cap_micro: Option<i64>) -> Arc<Caller> {
        Arc::new(Caller {
            account: caller.account.clone(),
            key: caller.key.clone(),
            bill: Some(Arc::new(Bill {
                cap_micro,
                holds: Mutex::new(Vec::new()),
                release: Some(self.meter.releaser()),
                tokens: Mutex::new(None),
            })),
        })
    }

    /// A catalog model as `/v1/models` shows it, with the prices in force
    /// (the operator's `[billing.prices]` over the catalog's).
    pub fn model_view(&self, spec: &ModelSpec) -> maximin_types::ModelView {
        let mut view = self.catalog.view(spec, &self.installed);
        if let Some(p) = self.billing.prices.get(&spec.id) {
            view.price = maximin_types::Price {
                input_per_million: p.input_per_million,
                output_per_million: p.output_per_million,
                per_10k_characters: p.per_10k_characters,
                per_image: p.per_image,
                per_second: p.per_second,
            };
        }
        view
    }

    /// Whether the caller's account (and key) has credit left at all: the
    /// check every unit of work that is not read-only passes at admission,
    /// before it runs, whatever route it came by.
    pub async fn check_credit(&self, caller: &Caller) -> Result<()> {
        if caller.key.test {
            return Ok(());
        }
        let now = self.clock.now();
        if !invoiced(caller.account.plan) {
            let (balance, held) = self.store.credit(&caller.account.id, now).await?;
            if balance - held <= 0 {
                return Err(no_credit(balance - held));
            }
        }
        if let Some(budget) = caller.key.budget_micro {
            let (spent, held) = self
                .store
                .key_spend(&caller.key.id, &month_of(now), now)
                .await?;
            if spent + held >= budget {
                return Err(over_budget(budget, budget - spent - held));
            }
        }
        Ok(())
    }

    /// Sets aside the estimated cost of a request before it runs: refused
    /// with `insufficient_credits` when it is over the request's cap, the
    /// key's monthly budget or the account's available balance. The hold
    /// goes with the request's usage event, which charges the real cost.
    pub async fn reserve(
        &self,
        caller: &Caller,
        model: &ModelSpec,
        estimate: Quantities,
    ) -> Result<()> {
        self.reserve_bounded(caller, model, estimate, estimate)
            .await
    }

    /// The prices in force for a catalog model.
    pub fn prices_of(&self, model: &ModelSpec) -> Prices {
        self.billing
            .prices
            .get(&model.id)
            .copied()
            .unwrap_or_else(|| Prices::of(model, None))
    }

    /// [`Platform::reserve`] for a request whose cost is known only within
    /// bounds (a chat answer's length): `expected` is held against its
    /// `X-Maximin-Max-Cost-Usd` cap (a stream is cut where it reaches the
    /// cap), `bound`, what it can cost at most, against the balance and
    /// the key's budget, so concurrent requests cannot overdraw.
    pub async fn reserve_bounded(
        &self,
        caller: &Caller,
        model: &ModelSpec,
        expected: Quantities,
        bound: Quantities,
    ) -> Result<()> {
        let Some(bill) = caller.bill.as_ref() else {
            return Ok(());
        };
        let prices = self.prices_of(model);
        if let Some(cap) = bill.cap_micro {
            let expected = prices.cost_micro(&expected);
            if expected > cap {
                return Err(insufficient(
                    "max_cost",
                    format!(
                        "This request is estimated to cost {}, over the {} its X-Maximin-Max-Cost-Usd header allows.",
                        usd(expected),
                        usd(cap)
                    ),
                )
                .with("estimate_usd", micro_to_usd(expected))
                .with("max_cost_usd", micro_to_usd(cap)));
            }
        }
        let cost = prices.cost_micro(&bound);
        if caller.key.test {
            return Ok(());
        }
        let now = self.clock.now();
        let limits = HoldLimits {
            balance: !invoiced(caller.account.plan),
            key_budget: caller.key.budget_micro.map(|b| (b, month_of(now))),
        };
        if !limits.balance && limits.key_budget.is_none() {
            return Ok(());
        }
        let hold = CreditHold {
            id: secrets::new_id("hold"),
            account_id: caller.account.id.clone(),
            key_id: caller.key.id.clone(),
            amount_micro: cost,
            expires_at: now + HOLD_TTL,
        };
        match self.store.hold_credit(&hold, &limits, now).await? {
            Ok(()) => {
                bill.push(hold.id);
                Ok(())
            }
            Err(HoldRefusal::Balance { available_micro }) => Err(insufficient(
                "balance",
                format!(
                    "This request is estimated to cost {} and the account has {} available; add credit to go on.",
                    usd(cost),
                    usd(available_micro.max(0))
                ),
            )
            .with("estimate_usd", micro_to_usd(cost))
            .with("available_usd", micro_to_usd(available_micro))),
            Err(HoldRefusal::KeyBudget { remaining_micro }) => Err(insufficient(
                "key_budget",
                format!(
                    "This request is estimated to cost {} and this key has {} left of its monthly budget of {}.",
                    usd(cost),
                    usd(remaining_micro.max(0)),
                    usd(caller.key.budget_micro.unwrap_or(0))
                ),
            )
            .with("estimate_usd", micro_to_usd(cost))
            .with("remaining_usd", micro_to_usd(remaining_micro))),
        }
    }

    /// Prices a usage event as it is recorded (sandbox keys: nothing).
    pub(crate) fn price_event(&self, event: &mut UsageEvent) {
        if event.charge.sandbox {
            event.charge.cost_micro = 0;
            return;
        }
        event.charge.cost_micro = match event.model.as_deref() {
            Some(m) => self
                .billing
                .prices(&self.catalog, m)
                .map_or(0, |p| p.cost_micro(&Quantities::of(event))),
            None => 0,
        };
    }

    /// Adds credit to an account (`maximin billing grant`, `POST
    /// /v1/account/credits`); returns the new balance, micro-USD.
    pub async fn grant_credit(&self, account_id: &str, usd: f64, note: &str) -> Result<i64> {
        if !usd.is_finite() || usd <= 0.0 || usd > 1_000_000_000.0 {
            return Err(Error::invalid(
                "usd",
                "A grant is a positive amount of US dollars (at most 1,000,000,000).",
            ));
        }
        let note = note.trim();
        if note.chars().count() > 500 {
            return Err(Error::invalid(
                "note",
                "A note holds at most 500 characters.",
            ));
        }
        let entry = LedgerEntry {
            id: 0,
            account_id: account_id.to_owned(),
            at: self.clock.now(),
            amount_micro: usd_to_micro(usd),
            kind: "grant".into(),
            note: note.to_owned(),
        };
        self.store
            .add_credit(&entry)
            .await?
            .ok_or_else(|| Error::not_found("account", account_id))
    }

    /// A new account's starting credits, when its plan gets them.
    pub(crate) async fn starting_credits(&self, account: &Account) -> Result<()> {
        let amount = self.billing.starting_credits_micro();
        if !gets_starting_credits(account.plan) || amount == 0 {
            return Ok(());
        }
        let entry = LedgerEntry {
            id: 0,
            account_id: account.id.clone(),
            at: account.created_at,
            amount_micro: amount,
            kind: "starting".into(),
            note: "starting credits".into(),
        };
        self.store.add_credit(&entry).await?;
        Ok(())
    }
}

impl Platform {
    /// Balance, this month's spend by model and by key (sandbox apart),
    /// the last 12 months and the credits added.
    pub async fn billing_view(&self, account_id: &str) -> Result<BillingView> {
        let account = self.account(account_id).await?;
        let now = self.clock.now();
        let month = month_of(now);
        let first = months_back(now, 11);
        let (balance, held) = self.store.credit(account_id, now).await?;
        let lines = self.store.billing_lines(account_id, &first, &month).await?;
        let months = (0..12)
            .rev()
            .map(|back| {
                let m = months_back(now, back);
                let of = |sandbox: bool| {
                    let m = &m;
                    lines
                        .iter()
                        .filter(move |l| &l.month == m && l.sandbox == sandbox)
                };
                MonthSpend {
                    cost_usd: micro_to_usd(of(false).map(|l| l.cost_micro).sum()),
                    requests: of(false).map(|l| l.requests).sum(),
                    sandbox_requests: of(true).map(|l| l.requests).sum(),
                    month: m.clone(),
                }
            })
            .collect();
        let this_month = |sandbox: bool| {
            spend(
                lines
                    .iter()
                    .filter(|l| l.month == month && l.sandbox == sandbox),
            )
        };
        let (live, sandbox) = (this_month(false), this_month(true));
        let credits = self
            .store
            .ledger(account_id)
            .await?
            .into_iter()
            .map(|e| CreditEntry {
                at: crate::clock::iso8601(e.at),
                amount_usd: micro_to_usd(e.amount_micro),
                kind: e.kind,
                note: e.note,
            })
            .collect();
        Ok(BillingView {
            account_id: account.id,
            plan: account.plan,
            invoiced: invoiced(account.plan),
            balance_usd: micro_to_usd(balance),
            held_usd: micro_to_usd(held),
            available_usd: micro_to_usd(balance - held),
            month,
            this_month: live,
            sandbox,
            months,
            credits,
        })
    }
}

/// A period's spend from its billing lines: in total, by model, by key.
fn spend<'a>(lines: impl Iterator<Item = &'a BillingLine> + Clone) -> Spend {
    let group = |name: fn(&BillingLine) -> &str| {
        let mut sums: Vec<BillingLine> = Vec::new();
        for l in lines.clone() {
            let at = match sums.iter().position(|s| name(s) == name(l)) {
                Some(i) => i,
                None => {
                    sums.push(BillingLine {
                        model: l.model.clone(),
                        key_id: l.key_id.clone(),
                        ..BillingLine::default()
                    });
                    sums.len() - 1
                }
            };
            let s = &mut sums[at];
            s.requests += l.requests;
            s.prompt_tokens += l.prompt_tokens;
            s.completion_tokens += l.completion_tokens;
            s.characters += l.characters;
            s.images += l.images;
            s.media_ms += l.media_ms;
            s.cost_micro += l.cost_micro;
        }
        sums.iter()
            .map(|s| SpendLine {
                name: name(s).to_owned(),
                requests: s.requests,
                prompt_tokens: s.prompt_tokens,
                completion_tokens: s.completion_tokens,
                characters: s.characters,
                images: s.images,
                media_ms: s.media_ms,
                cost_usd: micro_to_usd(s.cost_micro),
            })
            .collect()
    };
    Spend {
        cost_usd: micro_to_usd(lines.clone().map(|l| l.cost_micro).sum()),
        requests: lines.clone().map(|l| l.requests).sum(),
        by_model: group(|l| &l.model),
        by_key: group(|l| &l.key_id),
    }
}

/// The month `back` months before `now`'s (UTC): `2026-01` back 1 is `2025-12`.
pub fn months_back(now: OffsetDateTime, back: u32) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    let index = now.year() * 12 + i32::from(u8::from(now.month())) - 1 - back as i32;
    format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    )
}

fn no_credit(available: i64) -> Error {
    insufficient(
        "balance",
        "This account has no credit left; add credit to go on.".to_owned(),
    )
    .with("available_usd", micro_to_usd(available))
}

fn over_budget(budget: i64, remaining: i64) -> Error {
    insufficient(
        "key_budget",
        format!(
            "This key has spent its monthly budget of {}; it renews on the 1st (UTC).",
            usd(budget)
        ),
    )
    .with("budget_usd", micro_to_usd(budget))
    .with("remaining_usd", micro_to_usd(remaining))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_exact_micro_usd_rounded_up() {
        let p = Prices {
            input_per_million: 0.3,
            output_per_million: 1.2,
            per_10k_characters: 1.0,
            per_image: 0.0035,
            per_second: 0.045,
        };
        let q = |pt, ct| Quantities {
            prompt_tokens: pt,
            completion_tokens: ct,
            ..Quantities::default()
        };
        // 1,000 tokens in at $0.3/M: $0.0003 = 300 micro; 10 out: 12 micro.
        assert_eq!(p.cost_micro(&q(1000, 10)), 312);
        // A third of a micro-USD is charged as one.
        assert_eq!(
            Prices {
                input_per_million: 1.0 / 3.0,
                ..Prices::default()
            }
            .cost_micro(&q(1, 0)),
            1
        );
        // 0.1 + 0.2 (floating point) is not rounded up past 0.3.
        assert_eq!(
            Prices {
                input_per_million: 0.1,
                output_per_million: 0.2,
                ..Prices::default()
            }
            .cost_micro(&q(10, 10)),
            3
        );
        let speech = Quantities {
            characters: 250,
            ..Quantities::default()
        };
        assert_eq!(p.cost_micro(&speech), 25_000);
        let media = Quantities {
            images: 2,
            media_ms: 6000,
            ..Quantities::default()
        };
        assert_eq!(p.cost_micro(&media), 7_000 + 270_000);
    }

    #[test]
    fn months_back_cross_years() {
        let at = time::macros::datetime!(2026-02-10 12:00 UTC);
        assert_eq!(months_back(at, 0), "2026-02");
        assert_eq!(months_back(at, 1), "2026-01");
        assert_eq!(months_back(at, 2), "2025-12");
        assert_eq!(months_back(at, 14), "2024-12");
    }

    #[test]
    fn months_are_utc() {
        let at = time::macros::datetime!(2026-12-31 23:30 -02:00);
        assert_eq!(month_of(at), "2027-01");
        assert_eq!(
            month_of(time::macros::datetime!(2026-03-01 00:00 UTC)),
            "2026-03"
        );
    }
}
