//! Admission: whether one unit of work may run. A unit is an HTTP request,
//! and equally a WebSocket message, a task step or a playground call: each is
//! authenticated under the current auth epoch (so a revocation or a plan
//! change applies to the very next unit), checked against scopes and plan,
//! and counted by the rate limiter in the same buckets, whatever surface it
//! came through. A unit that may cost money is refused when its account
//! has no credit left or its key is past its monthly budget.

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
            limit => {
                let limit = limit.map(|(_, d)| d);
                // No credit left: refused before it runs, whatever the route.
                if spec.spends {
                    if let Err(e) = self.check_credit(&caller).await {
                        return Admission {
                            limit,
                            result: Err(e),
                        };
                    }
                }
                Admission {
                    limit,
                    result: Ok(caller),
                }
            }
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

impl Platform {
    /// Counts a request's prompt tokens (`n`, estimated) against the
    /// tokens-per-minute limits of its key and account, both or neither;
    /// the completion is settled when the request is recorded. Refused
    /// with `rate_limit_exceeded` (and `Retry-After`) when either is full.
    /// The decision goes with the request for the `X-RateLimit-*-Tokens`
    /// headers.
    pub async fn take_tokens(&self, caller: &Caller, n: u64) -> Result<()> {
        let Some(bill) = caller.bill.as_ref() else {
            return Ok(());
        };
        let buckets = crate::ratelimit::token_buckets(
            &caller.account.id,
            &caller.key.id,
            caller.account.plan,
            caller.account.limits,
        );
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let decisions = self.limiter.take(&buckets, n, self.now_ms()).await?;
        let Some((at, d)) = tightest(&decisions) else {
            return Ok(());
        };
        let allowed = decisions.iter().all(|d| d.allowed);
        let charge = crate::store::TokenCharge {
            buckets: buckets.to_vec(),
            admitted: if allowed { u64::from(n) } else { 0 },
        };
        bill.set_tokens(charge, d);
        if allowed {
            return Ok(());
        }
        let whose = match buckets[at].holder {
            crate::ratelimit::Holder::Key => "this key",
            crate::ratelimit::Holder::Account => "this account (all its keys together)",
        };
        let mut e = Error::new(
            ErrorCode::RateLimitExceeded,
            format!(
                "This request's about {n} prompt tokens do not fit in the {} tokens per minute left of {} for {whose}; retry in {} s.",
                d.remaining, d.limit, d.retry_after
            ),
        )
        .with("limit_tokens", d.limit)
        .with("remaining_tokens", d.remaining)
        .with("reset_at", d.reset_at)
        .with("applies_to", buckets[at].holder.as_str());
        e.retry_after = Some(d.retry_after);
        Err(e)
    }

    /// Settles a request's tokens: what it used (prompt and completion)
    /// less what was counted at admission, in the same counters.
    pub async fn settle_tokens(&self, charge: &crate::store::TokenCharge, used: u64) {
        let delta = i64::try_from(used).unwrap_or(i64::MAX)
            - i64::try_from(charge.admitted).unwrap_or(i64::MAX);
        if delta == 0 {
            return;
        }
        if let Err(e) = self
            .limiter
            .settle(&charge.buckets, delta, self.now_ms())
            .await
        {
            tracing::warn!(code = %e.code, "settling tokens per minute failed");
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
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
