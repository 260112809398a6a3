//! Where a request runs: the one place every surface goes through to reach a
//! provider, local or upstream (issue 14). A catalog model has one or more
//! *targets* (its deployments; a model with a plain `engine` has one). A
//! request is sent to the healthy target with the fewest requests in flight
//! for its weight; a failure before the answer starts (connection error,
//! timeout, 429, 5xx) is retried with backoff, honouring `Retry-After`, on
//! another target where there is one, at most `retries` times, and then the
//! model's `fallbacks` are tried in order, all within the request's deadline.
//! Each target has a circuit breaker; an upstream may have an active health
//! check and a concurrency limit. Accounts pinned to regions and sandbox keys
//! only see the targets they may use; when none is left the answer is
//! `model_unavailable` with the reason, never a silent route elsewhere.

pub mod breaker;
pub mod config;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maximin_types::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::catalog::{Catalog, ModelSpec};
use crate::pii::PiiMode;
use crate::{Error, Result};
pub use breaker::{Breaker, BreakerState};
pub use config::{RoutingConfig, UpstreamConfig, UpstreamKind};
use stats::TargetStats;

/// What the caller's account and key allow routing to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Regions requests may go to; empty: anywhere.
    pub regions: Vec<String>,
    /// A sandbox (`mmx_test_`) key: never a paid upstream.
    pub sandbox: bool,
    pub pii: PiiMode,
    /// Redact for local engines too.
    pub pii_local: bool,
}

/// One configured upstream and its shared state.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub config: UpstreamConfig,
    permits: Option<Arc<Semaphore>>,
    healthy: AtomicBool,
}

impl Upstream {
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Set by the active health check.
    pub fn set_healthy(&self, ok: bool) {
        let was = self.healthy.swap(ok, Ordering::Relaxed);
        if was != ok {
            tracing::warn!(upstream = %self.name, healthy = ok, "upstream health changed");
        }
    }

    pub fn in_flight_limit(&self) -> Option<usize> {
        self.config.max_concurrency
    }
}

/// One place a catalog model runs.
#[derive(Debug)]
pub struct Target {
    /// What the response reports (`X-Maximin-Upstream`): `NAME:MODEL` for an
    /// upstream, `local:ENGINE` for a local engine. Never a key.
    pub label: String,
    /// The provider's registry key: `upstream:NAME` or the engine name.
    pub provider: String,
    /// The spec handed to the provider: for an upstream, the catalog entry
    /// with `upstream_model` set to the provider's name; for a local engine,
    /// the local model (its weights).
    pub spec: ModelSpec,
    pub weight: u32,
    pub upstream: Option<Arc<Upstream>>,
    pub breaker: Breaker,
    pub stats: TargetStats,
    in_flight: AtomicUsize,
}

impl Target {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn is_local(&self) -> bool {
        self.upstream.is_none()
    }

    /// The provider's name of the model.
    pub fn provider_model(&self) -> &str {
        self.spec.upstream_model.as_deref().unwrap_or(&self.spec.id)
    }
}

/// A target in use: while it lives the request counts as in flight there
/// (and holds its upstream's concurrency permit). Drop it when the answer
/// has been delivered.
#[derive(Debug)]
pub struct Lease {
    target: Arc<Target>,
    _permit: Option<OwnedSemaphorePermit>,
    pub started: Instant,
}

impl Lease {
    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// The answer broke after it had started: counts against the breaker.
    pub fn broke(&self) {
        if !self.target.is_local() {
            self.target.breaker.failure(Instant::now());
        }
        self.target.stats.error("broken_stream");
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.target.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The routing table, built at start from the catalog and `[upstreams]`.
#[derive(Debug, Default)]
pub struct Router {
    local_region: Option<String>,
    config: RoutingConfig,
    upstreams: BTreeMap<String, Arc<Upstream>>,
    targets: HashMap<String, Vec<Arc<Target>>>,
}

/// Whether a failure may be tried again elsewhere: it happened before the
/// answer started and says nothing about the request itself.
pub fn retryable(e: &Error) -> bool {
    matches!(
        e.code,
        ErrorCode::UpstreamError | ErrorCode::RateLimitExceeded | ErrorCode::ModelUnavailable
    )
}

fn error_class(e: &Error) -> &'static str {
    match e.details.get("reason").and_then(|r| r.as_str()) {
        Some("timeout") => "timeout",
        Some("connect") => "connect",
        Some("status") => match e.details.get("upstream_status").and_then(|s| s.as_u64()) {
            Some(429) => "rate_limited",
            Some(s) if s >= 500 => "server_error",
            _ => "client_error",
        },
        _ => match e.code {
            ErrorCode::RateLimitExceeded => "rate_limited",
            ErrorCode::InvalidRequest => "client_error",
            ErrorCode::UpstreamError => "upstream_error",
            _ => "other",
        },
    }
}

impl Router {
    /// Builds the table. Deployments naming an upstream that is not
    /// configured are left out (the catalog says what to configure).
    pub fn new(
        catalog: &Catalog,
        upstreams: &BTreeMap<String, UpstreamConfig>,
        config: RoutingConfig,
        local_region: Option<String>,
    ) -> Router {
        let upstreams: BTreeMap<String, Arc<Upstream>> = upstreams
            .iter()
            .map(|(name, cfg)| {
                (
                    name.clone(),
                    Arc::new(Upstream {
                        name: name.clone(),
                        config: cfg.clone(),
                        permits: cfg.max_concurrency.map(|n| Arc::new(Semaphore::new(n))),
                        healthy: AtomicBool::new(true),
                    }),
                )
            })
            .collect();
        let upstream_target = |spec: &ModelSpec, name: &str, model: &str, weight: u32| {
            let up = upstreams.get(name)?;
            let mut spec = spec.clone();
            spec.upstream_model = Some(model.to_owned());
            Some(Arc::new(Target {
                label: format!("{name}:{model}"),
                provider: format!("upstream:{name}"),
                spec,
                weight,
                upstream: Some(up.clone()),
                breaker: Breaker::new(up.config.breaker_failures, up.config.breaker_cooldown()),
                stats: TargetStats::default(),
                in_flight: AtomicUsize::new(0),
            }))
        };
        let local_target = |spec: &ModelSpec, engine: &str, weight: u32| {
            Arc::new(Target {
                label: format!("local:{engine}"),
                provider: engine.to_owned(),
                spec: spec.clone(),
                weight,
                upstream: None,
                breaker: Breaker::new(5, Duration::from_secs(30)),
                stats: TargetStats::default(),
                in_flight: AtomicUsize::new(0),
            })
        };
        let mut targets = HashMap::new();
        for spec in catalog.models() {
            let mut list = Vec::new();
            if spec.deployments.is_empty() {
                match spec.upstream() {
                    Some(name) => {
                        let model = spec.upstream_model.as_deref().unwrap_or(&spec.id);
                        list.extend(upstream_target(spec, name, model, 1));
                    }
                    None => list.push(local_target(spec, &spec.engine, 1)),
                }
            }
            for d in &spec.deployments {
                let model = d.model.as_deref().unwrap_or(&spec.id);
                match (&d.upstream, &d.engine) {
                    (Some(name), _) => list.extend(upstream_target(spec, name, model, d.weight)),
                    (None, Some(engine)) => {
                        // A local deployment runs another catalog entry's weights.
                        let local = catalog.resolve(model).unwrap_or(spec);
                        let mut local = local.clone();
                        local.engine = engine.clone();
                        list.push(local_target(&local, engine, d.weight));
                    }
                    (None, None) => {}
                }
            }
            targets.insert(spec.id.clone(), list);
        }
        Router {
            local_region,
            config,
            upstreams,
            targets,
        }
    }

    pub fn upstream_names(&self) -> BTreeSet<String> {
        self.upstreams.keys().cloned().collect()
    }

    pub fn upstreams(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.upstreams.values()
    }

    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.get(name)
    }

    pub fn local_region(&self) -> Option<&str> {
        self.local_region.as_deref()
    }

    /// Every target, by catalog id.
    pub fn targets(&self) -> impl Iterator<Item = (&String, &Vec<Arc<Target>>)> {
        self.targets.iter()
    }

    pub fn targets_of(&self, model_id: &str) -> &[Arc<Target>] {
        self.targets.get(model_id).map_or(&[], Vec::as_slice)
    }

    /// Why `target` is not for this caller, if it is not.
    fn refusal(&self, target: &Target, policy: &Policy) -> Option<String> {
        if let Some(up) = &target.upstream {
            if policy.sandbox && up.config.paid {
                return Some(format!(
                    "'{}' is a paid upstream and sandbox keys (mmx_test_) are never sent to one",
                    up.name
                ));
            }
        }
        if policy.regions.is_empty() {
            return None;
        }
        let region = match &target.upstream {
            Some(up) => up.config.region.as_deref(),
            // A local engine runs in the install's region; an install with
            // no region set keeps the data on this machine, which every
            // pinned account accepts.
            None => match &self.local_region {
                None => return None,
                Some(r) => Some(r.as_str()),
            },
        };
        match region {
            Some(r) if policy.regions.iter().any(|p| p == r) => None,
            Some(r) => Some(format!(
                "'{}' runs in region '{r}', outside the regions this account or key is limited to ({})",
                target.label,
                policy.regions.join(", ")
            )),
            None => Some(format!(
                "'{}' has no region set, and this account or key is limited to {}",
                target.label,
                policy.regions.join(", ")
            )),
        }
    }

    /// Picks the next target among `pool`: the breaker and health check
    /// allow it; not yet tried when an untried one is left (a local one is
    /// never tried twice); then two drawn
    /// at random by weight, and the one with fewer requests in flight for
    /// its weight (the power of two choices: traffic follows the weights
    /// when idle and shifts away from a deployment that falls behind).
    fn pick(&self, pool: &[Arc<Target>], tried: &[usize], now: Instant) -> Option<usize> {
        let usable: Vec<usize> = (0..pool.len())
            .filter(|&i| {
                let t = &pool[i];
                t.breaker.allows(now) && t.upstream.as_ref().is_none_or(|u| u.healthy())
            })
            .collect();
        let fresh: Vec<usize> = usable
            .iter()
            .copied()
            .filter(|i| !tried.contains(i))
            .collect();
        // A target tried already is tried again only when it is an
        // upstream: a local engine's refusal (its queue is full) is its own
        // back-pressure, for the client to honour, not for us to wait out.
        let from = if fresh.is_empty() {
            usable
                .into_iter()
                .filter(|&i| !pool[i].is_local())
                .collect()
        } else {
            fresh
        };
        let total: u64 = from.iter().map(|&i| u64::from(pool[i].weight.max(1))).sum();
        if total == 0 {
            return None;
        }
        let draw = || {
            let mut at = rand::random::<u64>() % total;
            for &i in &from {
                let w = u64::from(pool[i].weight.max(1));
                if at < w {
                    return i;
                }
                at -= w;
            }
            from[from.len() - 1]
        };
        let load = |i: usize| pool[i].in_flight() as f64 / f64::from(pool[i].weight.max(1));
        let (a, b) = (draw(), draw());
        Some(if load(b) < load(a) { b } else { a })
    }

    /// One target of `spec` this caller may use now (regions, sandbox,
    /// breakers, health), for work that is not retried elsewhere once
    /// started (speech). None left is `model_unavailable` with the reason.
    pub fn eligible(&self, spec: &ModelSpec, policy: &Policy) -> Result<Arc<Target>> {
        let mut refusals = Vec::new();
        let pool = self.pool(spec, policy, &mut refusals);
        if pool.is_empty() {
            return Err(refused(spec, policy, &refusals));
        }
        match self.pick(&pool, &[], Instant::now()) {
            Some(i) => Ok(pool[i].clone()),
            None => Err(all_down(spec)),
        }
    }

    /// The targets of `model` this caller may use; why the others not.
    fn pool(
        &self,
        model: &ModelSpec,
        policy: &Policy,
        refusals: &mut Vec<String>,
    ) -> Vec<Arc<Target>> {
        self.targets_of(&model.id)
            .iter()
            .filter(|t| match self.refusal(t, policy) {
                Some(why) => {
                    refusals.push(why);
                    false
                }
                None => true,
            })
            .cloned()
            .collect()
    }

    /// Runs `attempt` on the model's targets, then its fallbacks', until one
    /// answers. `attempt` must return only once the answer has started (a
    /// stream's first event), so that a failure it reports can still be
    /// retried. Returns the value and the lease on the target that gave it.
    pub async fn route<T, F, Fut>(
        &self,
        catalog: &Catalog,
        spec: &ModelSpec,
        policy: &Policy,
        mut attempt: F,
    ) -> Result<(T, Lease)>
    where
        F: FnMut(Arc<Target>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.config.deadline();
        let mut chain = vec![spec];
        chain.extend(spec.fallbacks.iter().filter_map(|f| catalog.resolve(f)));
        let mut refusals: Vec<String> = Vec::new();
        let mut last_error: Option<Error> = None;
        let mut eligible_any = false;
        for model in chain {
            let pool = self.pool(model, policy, &mut refusals);
            if pool.is_empty() {
                continue;
            }
            eligible_any = true;
            let retries = model
                .retries
                .or_else(|| {
                    pool.iter()
                        .find_map(|t| t.upstream.as_ref().map(|u| u.config.retries))
                })
                .unwrap_or(2);
            let mut tried: Vec<usize> = Vec::new();
            let mut attempts = 0u32;
            let mut wait_for: Option<Duration> = None;
            while attempts <= retries {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let Some(i) = self.pick(&pool, &tried, now) else {
                    break;
                };
                let target = pool[i].clone();
                let same_again = tried.contains(&i);
                if attempts > 0 {
                    // Another target needs no waiting for this one's
                    // Retry-After; the same one again does.
                    let base = Duration::from_millis(100u64 << attempts.min(5));
                    let jitter = base.mul_f64(0.5 + rand::random::<f64>() * 0.5);
                    let pause = match (same_again, wait_for) {
                        (true, Some(after)) => after.max(jitter),
                        (true, None) => jitter,
                        (false, _) => jitter / 4,
                    };
                    if Instant::now() + pause >= deadline {
                        break;
                    }
                    tokio::time::sleep(pause).await;
                    target.stats.retry();
                }
                attempts += 1;
                tried.push(i);
                if !target.breaker.try_acquire(Instant::now()) {
                    continue;
                }
                let permit = match target.upstream.as_ref().and_then(|u| u.permits.clone()) {
                    None => None,
                    Some(sem) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match tokio::time::timeout(left, sem.acquire_owned()).await {
                            Ok(Ok(p)) => Some(p),
                            _ => {
                                target.breaker.release_probe();
                                break;
                            }
                        }
                    }
                };
                target.in_flight.fetch_add(1, Ordering::Relaxed);
                let lease = Lease {
                    target: target.clone(),
                    _permit: permit,
                    started: Instant::now(),
                };
                let limit = target
                    .upstream
                    .as_ref()
                    .map_or(Duration::MAX, |u| u.config.timeout())
                    .min(deadline.saturating_duration_since(Instant::now()));
                target.stats.request();
                let outcome = match tokio::time::timeout(limit, attempt(target.clone())).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::new(
                        ErrorCode::UpstreamError,
                        format!(
                            "The upstream '{}' did not answer within {:.0} s.",
                            target.label,
                            limit.as_secs_f64()
                        ),
                    )
                    .with("reason", "timeout")),
                };
                match outcome {
                    Ok(value) => {
                        target.breaker.success();
                        target.stats.first_byte(lease.started.elapsed());
                        return Ok((value, lease));
                    }
                    Err(e) if retryable(&e) => {
                        let class = error_class(&e);
                        target.stats.error(class);
                        // A local engine's refusal is back-pressure (a full
                        // queue), not ill health: only upstreams trip breakers.
                        if target.is_local() {
                            target.breaker.release_probe();
                        } else if target.breaker.failure(Instant::now()) {
                            tracing::warn!(deployment = %target.label, "circuit breaker opened");
                        }
                        tracing::info!(deployment = %target.label, class, "attempt failed");
                        wait_for = e.retry_after.map(Duration::from_secs);
                        last_error = Some(e);
                    }
                    Err(e) => {
                        // The request itself is at fault: no other target
                        // would answer differently.
                        target.breaker.success();
                        target.stats.error(error_class(&e));
                        return Err(e);
                    }
                }
            }
        }
        if !eligible_any {
            return Err(refused(spec, policy, &refusals));
        }
        Err(last_error.unwrap_or_else(|| all_down(spec)))
    }
}

/// No target of `spec` may serve this caller: `model_unavailable`, why.
fn refused(spec: &ModelSpec, policy: &Policy, refusals: &[String]) -> Error {
    let reason = if refusals.is_empty() {
        format!("No deployment serves '{}' in this install.", spec.id)
    } else {
        format!(
            "No deployment of '{}' may serve this request: {}.",
            spec.id,
            refusals.join("; ")
        )
    };
    Error::new(ErrorCode::ModelUnavailable, reason)
        .with("model", spec.id.as_str())
        .with("reason", if policy.sandbox { "sandbox" } else { "routing" })
}

/// Every target of `spec` is out: breakers open or health checks failing.
fn all_down(spec: &ModelSpec) -> Error {
    Error::new(
        ErrorCode::UpstreamError,
        format!(
            "Every deployment of '{}' is unavailable (circuit breakers open or health checks failing); try again shortly.",
            spec.id
        ),
    )
    .with("model", spec.id.as_str())
}

#[cfg(test)]
mod tests;
