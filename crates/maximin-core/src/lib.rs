//! The domain core of maximin. It decides; the surfaces translate.
//!
//! [`Platform`] holds the swappable parts (store, rate limiter, clock, catalog,
//! metering) and offers the operations that the CLI and the HTTP account API
//! share: accounts, keys, authentication, authorization, usage.

pub mod admission;
pub mod authcache;
pub mod billing;
pub mod catalog;
pub mod clock;
pub mod crypto;
pub mod debuglog;
pub mod engines;
pub mod error;
pub mod export;
pub mod files;
pub mod finetune;
pub mod idempotency;
pub mod inference;
pub mod invoices;
pub mod lifecycle;
pub mod listing;
pub mod meter;
pub mod people;
pub mod pii;
pub mod privacy;
pub mod providers;
pub mod ratelimit;
pub mod readiness;
pub mod retention;
pub mod routing;
pub mod secrets;
pub mod speech;
pub mod store;
pub mod support;
pub mod tasks;
pub mod usage_daily;
pub mod voices;

use std::sync::Arc;

use maximin_types::{
    AccountUsage, AccountView, ActivityEntry, CustomLimits, ErrorCode, KeyCreated, KeyUsage,
    KeyView, Modality, ModelUsage, Plan, RateClass, Scope, UsageFigures,
};
use time::OffsetDateTime;

pub use error::{Error, Result};

use authcache::AuthCache;
use catalog::{Catalog, Installed, ModelSpec};
use clock::{iso8601, Clock};
use engines::Engines;
use files::{Files, Vault};
use idempotency::Idempotency;
use meter::Meter;
use ratelimit::RateLimiter;
use store::{Account, ApiKey, Store, UsageEvent};
use tasks::Tasks;

/// At most this many unrevoked keys per account (seed 002).
pub const MAX_KEYS_PER_ACCOUNT: usize = 20;
/// Usage logs are kept 12 months (DESIGN.md §8).
pub const USAGE_RETENTION: time::Duration = time::Duration::days(365);

/// What an endpoint requires of its caller, declared where the route is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointSpec {
    pub class: RateClass,
    /// The modality the endpoint serves; `None` for catalog and account routes.
    pub modality: Option<Modality>,
    /// Whether a `read`-scoped key may call it.
    pub read_only: bool,
    /// Whether it belongs to the account API (needs the `admin` scope).
    pub admin: bool,
    /// Whether its units of work may cost money: an account with no credit
    /// left (or a key past its budget) is refused before they run.
    pub spends: bool,
}

/// Options of a new key.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub test: bool,
    pub scopes: Vec<Scope>,
    pub models: Vec<String>,
    /// Regions within the account's (empty: as the account).
    pub regions: Vec<String>,
    /// PII protection over the account's (`None`: as the account).
    pub pii: Option<maximin_types::PiiMode>,
    /// A monthly spending cap, USD.
    pub budget_usd: Option<f64>,
}

/// What an account's routing limits change to (`accounts update`, the
/// account API); `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct RoutingUpdate {
    /// Regions (empty: no limit).
    pub regions: Option<Vec<String>>,
    pub pii: Option<maximin_types::PiiMode>,
    pub pii_local: Option<bool>,
}

/// Region names as given: trimmed, non-empty, letters, digits, '-' and '_'.
fn check_regions(regions: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for r in regions {
        let r = r.trim();
        if r.is_empty()
            || r.len() > 64
            || !r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::invalid(
                "regions",
                format!(
                    "'{r}' is not a region name (letters, digits, '-' and '_', such as eu-west)."
                ),
            ));
        }
        if !out.iter().any(|o| o == r) {
            out.push(r.to_owned());
        }
    }
    Ok(out)
}

/// An authenticated caller: the key and the account it belongs to.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
    pub key: ApiKey,
    /// The request's own money side (cap, credit holds): set by
    /// [`Platform::for_request`] for a request or a unit of work; `None`
    /// for a caller that is not one (a cached caller, a task's runner).
    pub bill: Option<Arc<billing::Bill>>,
}

impl Caller {
    /// A caller outside any request (a task's runner).
    pub fn new(account: Account, key: ApiKey) -> Self {
        Caller {
            account,
            key,
            bill: None,
        }
    }

    fn has(&self, scope: Scope) -> bool {
        self.key.scopes.contains(&scope)
    }

    /// Checks scopes and plan entitlements for an endpoint.
    pub fn authorize(&self, ep: &EndpointSpec) -> Result<()> {
        if ep.admin && !self.has(Scope::Admin) {
            return Err(Error::permission_denied(
                "This key cannot use the account API: it needs the 'admin' scope.",
            )
            .with("required_scope", "admin"));
        }
        if !ep.read_only && self.has(Scope::Read) {
            return Err(Error::permission_denied(
                "This key is read-only and cannot call an endpoint that creates or changes anything.",
            )
            .with("scope", "read"));
        }
        if let Some(m) = ep.modality {
            self.authorize_modality(m)?;
        }
        Ok(())
    }

    fn authorize_modality(&self, m: Modality) -> Result<()> {
        if !self.account.plan.entitles(m) {
            return Err(Error::permission_denied(format!(
                "The '{}' plan does not include {} endpoints.",
                self.account.plan, m
            ))
            .with("plan", self.account.plan.as_str())
            .with("modality", m.as_str()));
        }
        let limited: Vec<Modality> = self
            .key
            .scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Modality(m) => Some(*m),
                _ => None,
            })
            .collect();
        if !limited.is_empty() && !limited.contains(&m) {
            return Err(Error::permission_denied(format!(
                "This key's scopes do not include '{m}'."
            ))
            .with("required_scope", m.as_str()));
        }
        Ok(())
    }

    /// Checks that this key may use a catalog model.
    pub fn authorize_model(&self, model: &ModelSpec) -> Result<()> {
        self.authorize_modality(model.modality)?;
        if !self.key.models.is_empty() && !self.key.models.iter().any(|m| m == &model.id) {
            return Err(Error::permission_denied(format!(
                "This key is not allowed to use the model '{}'.",
                model.id
            ))
            .with("field", "model")
            .with("model", model.id.as_str()));
        }
        Ok(())
    }
}

pub struct Platform {
    pub store: Arc<dyn Store>,
    pub limiter: Arc<dyn RateLimiter>,
    pub clock: Arc<dyn Clock>,
    pub catalog: Arc<Catalog>,
    pub installed: Installed,
    pub engines: Engines,
    pub idempotency: Idempotency,
    pub meter: Meter,
    pub files: Arc<Files>,
    pub tasks: Arc<Tasks>,
    /// Default models still being fetched on first start (`/readyz`).
    pub readiness: readiness::Readiness,
    /// Where each catalog model runs: deployments, upstreams, breakers.
    pub router: routing::Router,
    /// Prices and credits (`[billing]`).
    pub billing: billing::Billing,
    /// Fine-tuned models' adapters opened for the engines.
    pub adapters: finetune::serve::Adapters,
    /// The model list, rendered.
    listing: listing::Listing,
    auth_cache: AuthCache,
}

impl Platform {
    /// Assembles the platform; starts the metering writer on the current runtime.
    pub fn new(
        store: Arc<dyn Store>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        catalog: Catalog,
        engines: Engines,
        mut installed: Installed,
        vault: Vault,
    ) -> Self {
        installed.engines.extend(engines.names());
        let keys = vault.keys.clone();
        Platform {
            files: Arc::new(Files::new(store.clone(), vault, clock.clone())),
            tasks: Arc::new(Tasks::new(store.clone(), keys, clock.clone())),
            engines,
            idempotency: Idempotency::new(store.clone(), clock.clone()),
            meter: Meter::start(store.clone()),
            readiness: readiness::Readiness::default(),
            auth_cache: AuthCache::default(),
            adapters: Default::default(),
            listing: Default::default(),
            store,
            limiter,
            clock,
            router: routing::Router::new(
                &catalog,
                &Default::default(),
                routing::RoutingConfig::default(),
                None,
            ),
            billing: billing::Billing::new(&catalog, billing::BillingConfig::default()),
            catalog: Arc::new(catalog),
            installed,
        }
    }

    /// Prices and starting credits from `[billing]`.
    pub fn with_billing(mut self, config: billing::BillingConfig) -> Self {
        self.billing = billing::Billing::new(&self.catalog, config);
        self
    }

    /// Routes through the configured upstreams (`[upstreams.NAME]`), with
    /// `[routing]` settings, in the install's `region`. The providers
    /// themselves are registered in `engines` under `upstream:NAME`.
    pub fn with_upstreams(
        mut self,
        upstreams: &std::collections::BTreeMap<String, routing::UpstreamConfig>,
        config: routing::RoutingConfig,
        region: Option<String>,
    ) -> Self {
        self.installed.upstreams = upstreams.keys().cloned().collect();
        self.router = routing::Router::new(&self.catalog, upstreams, config, region);
        self
    }

    /// Whether storage answers (`/readyz`).
    pub async fn ping(&self) -> Result<()> {
        self.store.ping().await
    }

    /// Whether the rate limiter can decide (`/readyz`; a shared one can be
    /// out of reach).
    pub async fn limiter_ready(&self) -> Result<()> {
        self.limiter.ready().await
    }

    /// What `/readyz` reports: default models still fetching or missing.
    /// A missing model pulled by hand meanwhile leaves the report, and the
    /// engines are told to look for new files.
    pub fn readiness_report(&self) -> readiness::Report {
        let (report, arrived) = self.readiness.report(&self.catalog, &self.installed);
        if arrived {
            self.engines.refresh();
        }
        report
    }

    // ---- accounts ----

    pub async fn create_account(
        &self,
        email: &str,
        plan: Plan,
        limits: Option<CustomLimits>,
        operator: bool,
    ) -> Result<AccountView> {
        let email = email.trim();
        if !valid_email(email) {
            return Err(Error::invalid(
                "email",
                format!("'{email}' is not an email address."),
            ));
        }
        check_limits(plan, limits)?;
        let account = Account {
            id: secrets::new_id("acct"),
            email: email.to_lowercase(),
            plan,
            limits,
            routing: store::Routing::default(),
            created_at: self.clock.now(),
            operator,
            closed_at: None,
            debug_until: None,
        };
        self.store.insert_account(&account).await?;
        self.starting_credits(&account).await?;
        Ok(account_view(&account))
    }

    pub async fn account(&self, id: &str) -> Result<Account> {
        self.store
            .account(id)
            .await?
            .ok_or_else(|| Error::not_found("account", id))
    }

    pub async fn account_view(&self, id: &str) -> Result<AccountView> {
        Ok(account_view(&self.account(id).await?))
    }

    pub async fn list_accounts(&self) -> Result<Vec<AccountView>> {
        Ok(self
            .store
            .list_accounts()
            .await?
            .iter()
            .map(account_view)
            .collect())
    }

    /// Changes an account's routing limits; the next request of every key
    /// of the account is routed by them.
    pub async fn update_account_routing(
        &self,
        id: &str,
        update: RoutingUpdate,
    ) -> Result<AccountView> {
        let mut account = self.account(id).await?;
        if let Some(regions) = &update.regions {
            account.routing.regions = check_regions(regions)?;
        }
        if let Some(pii) = update.pii {
            account.routing.pii = Some(pii);
        }
        if let Some(local) = update.pii_local {
            account.routing.pii_local = local;
        }
        if !self.store.set_account_routing(id, &account.routing).await? {
            return Err(Error::not_found("account", id));
        }
        self.log_privacy(
            id,
            "routing_changed",
            id,
            serde_json::json!({
                "regions": account.routing.regions,
                "pii": account.routing.pii.unwrap_or_default(),
                "pii_local": account.routing.pii_local,
            }),
        )
        .await?;
        Ok(account_view(&account))
    }

    // ---- keys ----

    pub async fn create_key(&self, account_id: &str, new: NewKey) -> Result<KeyCreated> {
        let secret = secrets::generate_secret(new.test);
        self.create_key_with_secret(account_id, new, secret).await
    }

    /// A key whose secret the caller made (a hub session's playground key,
    /// derived from its cookie, so that it is never stored).
    pub(crate) async fn create_key_with_secret(
        &self,
        account_id: &str,
        new: NewKey,
        secret: String,
    ) -> Result<KeyCreated> {
        let account = self.account(account_id).await?;
        if account.closed_at.is_some() {
            return Err(Error::invalid(
                "account",
                "This account is closed: it can have no new keys.",
            ));
        }
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid(
                "name",
                "A key needs a name of 1 to 100 characters.",
            ));
        }
        let mut models = Vec::with_capacity(new.models.len());
        for m in &new.models {
            let spec = self.catalog.resolve(m).ok_or_else(|| {
                Error::new(
                    ErrorCode::ModelNotFound,
                    format!("No model '{m}' in the catalog."),
                )
                .with("field", "models")
                .with("model", m.as_str())
            })?;
            if !models.contains(&spec.id) {
                models.push(spec.id.clone());
            }
        }
        let mut scopes = new.scopes.clone();
        scopes.sort();
        scopes.dedup();
        if let Some(m) = scopes.iter().find_map(|s| match s {
            Scope::Modality(m) if !account.plan.entitles(*m) => Some(*m),
            _ => None,
        }) {
            return Err(Error::invalid(
                "scopes",
                format!("The '{}' plan does not include '{m}'.", account.plan),
            ));
        }
        let key = ApiKey {
            id: secrets::new_id("key"),
            account_id: account.id.clone(),
            name: name.to_owned(),
            prefix: secrets::display_prefix(&secret),
            hash: secrets::hash_secret(&secret),
            test: new.test,
            scopes,
            models,
            routing: store::Routing {
                regions: check_regions(&new.regions)?,
                pii: new.pii,
                pii_local: false,
            },
            created_at: self.clock.now(),
            revoked_at: None,
            last_used_at: None,
            usage: UsageFigures::default(),
            budget_micro: match new.budget_usd {
                None => None,
                Some(b) if (0.0..=1_000_000_000.0).contains(&b) => Some(billing::usd_to_micro(b)),
                Some(_) => {
                    return Err(Error::invalid(
                        "budget_usd",
                        "A key's monthly budget is 0 or more US dollars (at most 1,000,000,000).",
                    ))
                }
            },
        };
        if !self.store.insert_key(&key, MAX_KEYS_PER_ACCOUNT).await? {
            return Err(Error::invalid(
                "keys",
                format!(
                    "An account can hold at most {MAX_KEYS_PER_ACCOUNT} active keys; revoke one first."
                ),
            )
            .with("limit", MAX_KEYS_PER_ACCOUNT));
        }
        self.log_privacy(
            &account.id,
            "key_created",
            &key.id,
            serde_json::json!({
                "name": key.name,
                "mode": if key.test { "test" } else { "live" },
                "scopes": key.scopes,
                "prefix": key.prefix,
            }),
        )
        .await?;
        Ok(KeyCreated {
            key: key_view(&key),
            secret,
        })
    }

    pub async fn list_keys(&self, account_id: &str) -> Result<Vec<KeyView>> {
        self.account(account_id).await?;
        Ok(self
            .store
            .keys_of(account_id)
            .await?
            .iter()
            .map(key_view)
            .collect())
    }

    /// A key of an account (`account_id: None` for the operator's CLI).
    pub async fn key(&self, account_id: Option<&str>, key_id: &str) -> Result<ApiKey> {
        match self.store.key(key_id).await? {
            Some(k) if account_id.is_none_or(|a| a == k.account_id) => Ok(k),
            _ => Err(Error::not_found("key", key_id)),
        }
    }

    pub async fn revoke_key(&self, account_id: Option<&str>, key_id: &str) -> Result<KeyView> {
        let key = self.key(account_id, key_id).await?;
        if self.store.revoke_key(key_id, self.clock.now()).await? {
            self.log_privacy(
                &key.account_id,
                "key_revoked",
                key_id,
                serde_json::json!({"name": key.name, "prefix": key.prefix}),
            )
            .await?;
        }
        Ok(key_view(&self.key(account_id, key_id).await?))
    }

    pub async fn key_activity(
        &self,
        account_id: Option<&str>,
        key_id: &str,
        limit: u32,
    ) -> Result<Vec<ActivityEntry>> {
        self.key(account_id, key_id).await?;
        self.meter.flush().await;
        Ok(self
            .store
            .activity(key_id, limit.clamp(1, 1000))
            .await?
            .into_iter()
            .map(activity_entry)
            .collect())
    }

    // ---- requests ----

    /// Resolves a bearer token to a caller. Malformed, unknown and revoked keys
    /// all fail with `authentication_failed`, each with its own message.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Caller>> {
        if !secrets::is_well_formed(token) {
            return Err(Error::authentication(
                "The API key is malformed: keys look like mmx_live_… or mmx_test_… followed by 40 letters and digits.",
            )
            .with("reason", "malformed"));
        }
        self.authenticate_hash(&secrets::hash_secret(token)).await
    }

    /// The caller whose key has this hash, as the store says now: read again
    /// whenever the auth epoch has changed since it was cached.
    async fn authenticate_hash(&self, hash: &str) -> Result<Arc<Caller>> {
        // The epoch is read before the store, so an entry cached from a read that
        // raced with a revocation carries the old epoch and is not used again.
        let epoch = self.store.auth_epoch().await?;
        let now = self.clock.now();
        if let Some(caller) = epoch.and_then(|e| self.auth_cache.get(hash, e, now)) {
            return Ok(caller);
        }
        let (key, account) = match self.store.key_by_hash(hash).await? {
            Some((k, a)) if secrets::constant_time_eq(&k.hash, hash) => (k, a),
            _ => {
                return Err(
                    Error::authentication("The API key is not valid.").with("reason", "unknown")
                )
            }
        };
        if account.closed_at.is_some() {
            return Err(
                Error::authentication("The account this key belongs to is closed.")
                    .with("reason", "account_closed"),
            );
        }
        if key.revoked_at.is_some() {
            return Err(
                Error::authentication("The API key has been revoked.").with("reason", "revoked")
            );
        }
        let caller = Arc::new(Caller::new(account, key));
        if let Some(e) = epoch {
            self.auth_cache.put(hash.to_owned(), caller.clone(), e, now);
        }
        Ok(caller)
    }

    /// Resolves a model name for a caller: `model_not_found` when the catalog does
    /// not know it, `permission_denied` when the key may not use it,
    /// `model_unavailable` when this install cannot serve it now.
    pub fn model_for(&self, caller: &Caller, name: &str) -> Result<&ModelSpec> {
        let spec = self.catalog.resolve(name).ok_or_else(|| {
            Error::new(
                ErrorCode::ModelNotFound,
                format!("No model '{name}' in the catalog; GET /v1/models lists them."),
            )
            .with("field", "model")
            .with("model", name)
        })?;
        caller.authorize_model(spec)?;
        if let Err(hint) = self.installed.availability(spec) {
            return Err(Error::new(
                ErrorCode::ModelUnavailable,
                format!(
                    "The model '{}' cannot be served by this install. {hint}",
                    spec.id
                ),
            )
            .with("model", spec.id.as_str())
            .with("setup", hint));
        }
        Ok(spec)
    }

    pub async fn usage(
        &self,
        account_id: &str,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<AccountUsage> {
        let until = until.unwrap_or_else(|| self.clock.now());
        let since = since.unwrap_or(until - time::Duration::days(30));
        if since > until {
            return Err(Error::invalid(
                "since",
                "'since' must not be after 'until'.",
            ));
        }
        self.meter.flush().await;
        let summary = self.store.usage_summary(account_id, since, until).await?;
        let mut total = UsageFigures::default();
        for (_, u) in &summary.by_key {
            total.requests += u.requests;
            total.errors += u.errors;
            total.prompt_tokens += u.prompt_tokens;
            total.completion_tokens += u.completion_tokens;
            total.characters += u.characters;
            total.images += u.images;
            total.media_ms += u.media_ms;
        }
        Ok(AccountUsage {
            since: iso8601(since),
            until: iso8601(until),
            total,
            by_key: summary
                .by_key
                .into_iter()
                .map(|(key_id, usage)| KeyUsage { key_id, usage })
                .collect(),
            by_model: summary
                .by_model
                .into_iter()
                .map(|(model, usage)| ModelUsage { model, usage })
                .collect(),
        })
    }

    /// Prices a usage event and hands it to the writer, which charges it.
    pub fn record(self: &Arc<Self>, mut event: UsageEvent) {
        self.price_event(&mut event);
        // Tokens not settled yet (a stream that ended): settled now.
        if let Some(tokens) = event.charge.tokens.take() {
            let used = event.prompt_tokens + event.completion_tokens;
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let p = Arc::clone(self);
                rt.spawn(async move { p.settle_tokens(&tokens, used).await });
            }
        }
        self.meter.record(event);
    }

    /// Stops background work, writing what is pending.
    pub async fn shutdown(&self) {
        self.meter.shutdown().await;
    }
}

/// Custom limits fit the plan: only `enterprise` has them, and they allow
/// something.
pub(crate) fn check_limits(plan: Plan, limits: Option<CustomLimits>) -> Result<()> {
    if limits.is_some() && plan != Plan::Enterprise {
        return Err(Error::invalid(
            "limits",
            "Custom limits apply only to the 'enterprise' plan.",
        ));
    }
    if let Some(l) = limits {
        if l.rpm == 0 {
            return Err(Error::invalid("rpm", "rpm must be at least 1."));
        }
        if l.tpm == Some(0) {
            return Err(Error::invalid("tpm", "tpm must be at least 1."));
        }
    }
    Ok(())
}

pub(crate) fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

pub fn account_view(a: &Account) -> AccountView {
    AccountView {
        id: a.id.clone(),
        email: a.email.clone(),
        plan: a.plan,
        limits: match a.plan {
            Plan::Enterprise => Some(a.limits.unwrap_or(ratelimit::DEFAULT_ENTERPRISE)),
            _ => None,
        },
        entitlements: Modality::ALL
            .iter()
            .copied()
            .filter(|m| a.plan.entitles(*m))
            .collect(),
        regions: a.routing.regions.clone(),
        pii: a.routing.pii.unwrap_or_default(),
        pii_local: a.routing.pii_local,
        operator: a.operator,
        created_at: iso8601(a.created_at),
    }
}

pub fn key_view(k: &ApiKey) -> KeyView {
    KeyView {
        id: k.id.clone(),
        account_id: k.account_id.clone(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        mode: if k.test { "test" } else { "live" }.into(),
        scopes: k.scopes.clone(),
        models: k.models.clone(),
        regions: k.routing.regions.clone(),
        pii: k.routing.pii,
        created_at: iso8601(k.created_at),
        revoked_at: k.revoked_at.map(iso8601),
        last_used_at: k.last_used_at.map(iso8601),
        usage: k.usage.clone(),
        budget_usd: k.budget_micro.map(billing::micro_to_usd),
    }
}

pub(crate) fn activity_entry(e: UsageEvent) -> ActivityEntry {
    ActivityEntry {
        at: iso8601(e.at),
        request_id: e.request_id,
        method: e.method,
        endpoint: e.endpoint,
        status: e.status,
        model: e.model,
        prompt_tokens: e.prompt_tokens,
        completion_tokens: e.completion_tokens,
        characters: e.characters,
        images: e.images,
        media_ms: e.media_ms,
        latency_ms: e.latency_us as f64 / 1000.0,
        error_code: e.error_code,
        client_ip: e.client_ip,
        cost_usd: billing::micro_to_usd(e.charge.cost_micro),
    }
}
