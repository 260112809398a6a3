//! Admission: whether one unit of work may run. A unit is an HTTP request,
//! and equally a WebSocket message, a task step or a playground call: each is
//! authenticated under the current auth epoch (so a revocation or a plan
//! change applies to the very next unit), checked against scopes and plan,
//! and counted by the rate limiter in the same buckets, whatever surface it
//! came through.

use std::sync::Arc;

use maximin_types::ErrorCode;

use crate::ratelimit::{buckets_for, tightest, Bucket, Decision};
use crate::{Caller, EndpointSpec, Error, Platform, Result};

/// The outcome of admitting one unit of work.
#[derive(Debug)]
pub struct Admission {
    /// The rate-limit state to report (`X-RateLimit-*`): the tighter of the
    /// key's and the account's counters. `None` when the unit never reached
    /// the limiter (authentication failed) or the limiter failed.
    pub limit: Option<Decision>,
    /// The caller as of now, or why the unit is refused.
    pub result: Result<Arc<Caller>>,
}

impl Admission {
    fn refused(e: Error) -> Self {
        Admission {
            limit: None,
            result: Err(e),
        }
    }
}

impl Platform {
    /// Admits one unit of work of an authenticated caller: scopes and plan
    /// entitlements, then the rate limits (the key's and the account's,
    /// counted in both or in neither). A unit refused for its scope still
    /// reports the counters' state (peeked, not counted).
    pub async fn admit(&self, caller: Arc<Caller>, spec: &EndpointSpec) -> Admission {
        let buckets = buckets_for(
            &caller.account.id,
            &caller.key.id,
            caller.account.plan,
            caller.account.limits,
            spec.class,
        );
        let now_ms =
            u64::try_from(self.clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        if let Err(e) = caller.authorize(spec) {
            let limit = self
                .limiter
                .peek(&buckets, now_ms)
                .await
                .ok()
                .and_then(|ds| tightest(&ds))
                .map(|(_, d)| d);
            return Admission {
                limit,
                result: Err(e),
            };
        }
        let decisions = match self.limiter.hit(&buckets, now_ms).await {
            Ok(ds) => ds,
            Err(e) => return Admission::refused(e),
        };
        match tightest(&decisions) {
            Some((at, d)) if !d.allowed => Admission {
                limit: Some(d),
                result: Err(rate_limited(&buckets[at], &d)),
            },
            limit => Admission {
                limit: limit.map(|(_, d)| d),
                result: Ok(caller),
            },
        }
    }

    /// Admits a further unit of work of a caller authenticated earlier (a
    /// WebSocket message, a task step, a playground call): its key is read
    /// again under the current auth epoch, then the unit is admitted as by
    /// [`Platform::admit`], in the same counters as its HTTP requests.
    pub async fn admit_again(&self, caller: &Caller, spec: &EndpointSpec) -> Admission {
        match self.authenticate_hash(&caller.key.hash).await {
            Ok(now) => self.admit(now, spec).await,
            Err(e) => Admission::refused(e),
        }
    }

    /// The caller as of now, checked for `spec` without counting a request:
    /// for the messages of a connection that are not units of work of their
    /// own (starting or finishing a WebSocket task), which a revoked key must
    /// not send either.
    pub async fn recheck(&self, caller: &Caller, spec: &EndpointSpec) -> Result<Arc<Caller>> {
        let now = self.authenticate_hash(&caller.key.hash).await?;
        now.authorize(spec)?;
        Ok(now)
    }
}

/// `rate_limit_exceeded`, naming the counter that is full.
fn rate_limited(bucket: &Bucket, d: &Decision) -> Error {
    let whose = match bucket.holder {
        crate::ratelimit::Holder::Key => "this key",
        crate::ratelimit::Holder::Account => "this account (all its keys together)",
    };
    let mut e = Error::new(
        ErrorCode::RateLimitExceeded,
        format!(
            "Rate limit of {} requests per minute reached for {whose}; retry in {} s.",
            d.limit, d.retry_after
        ),
    )
    .with("limit", d.limit)
    .with("reset_at", d.reset_at)
    .with("applies_to", bucket.holder.as_str());
    e.retry_after = Some(d.retry_after);
    e
}
