//! Rate limits (DESIGN.md §3): per key, per endpoint class, per plan, in fixed
//! one-minute windows aligned to the clock, so that "60 requests per minute"
//! means at most 60 in each window and `X-RateLimit-Reset` is the window's end.
//!
//! The limiter is a trait: this in-process one serves a single node; a Redis one
//! (`INCR` + `PEXPIREAT` on the same bucket names) will serve replicas.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use maximin_types::{CustomLimits, Plan, RateClass};

use crate::Result;

pub const WINDOW_SECS: u64 = 60;

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds when the current window ends.
    pub reset_at: u64,
    /// Seconds until the window ends (at least 1), for `Retry-After`.
    pub retry_after: u64,
}

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request against `bucket` and says whether it may proceed.
    async fn hit(&self, bucket: &str, limit: u32, now_unix_ms: u64) -> Result<Decision>;

    /// The state of `bucket` without counting a request (for the headers of a
    /// response refused before the limiter, such as a missing scope).
    async fn peek(&self, bucket: &str, limit: u32, now_unix_ms: u64) -> Result<Decision>;
}

/// The limit that applies to a key of an account on an endpoint class, and the
/// name of the counter it shares.
pub fn limit_for(
    plan: Plan,
    custom: Option<CustomLimits>,
    class: RateClass,
) -> (&'static str, u32) {
    match plan {
        // Free accounts share one counter across every endpoint.
        Plan::Free => ("all", 60),
        Plan::Payg | Plan::Coding => (class.as_str(), payg_rpm(class)),
        Plan::Enterprise => {
            let c = custom.unwrap_or(DEFAULT_ENTERPRISE);
            (class.as_str(), c.rpm.saturating_add(c.burst))
        }
    }
}

pub const DEFAULT_ENTERPRISE: CustomLimits = CustomLimits {
    rpm: 6000,
    burst: 1000,
};

fn payg_rpm(class: RateClass) -> u32 {
    match class {
        // Speech is inference like chat and embeddings (DESIGN.md §3 has no row for it).
        RateClass::Chat | RateClass::Embeddings | RateClass::Speech => 600,
        RateClass::VideoSubmit => 120,
        RateClass::Read => 300,
        RateClass::FileUpload => 60,
        RateClass::FineTuneCreate => 30,
        RateClass::Account => 60,
    }
}

const SHARDS: usize = 16;

/// Fixed-window counters in this process's memory.
pub struct InProcessLimiter {
    shards: Vec<Mutex<HashMap<String, Window>>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    count: u32,
}

impl Default for InProcessLimiter {
    fn default() -> Self {
        InProcessLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl InProcessLimiter {
    fn shard(&self, bucket: &str) -> &Mutex<HashMap<String, Window>> {
        // FNV-1a: cheap and good enough to spread keys over shards.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in bucket.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        &self.shards[(h % SHARDS as u64) as usize]
    }
}

#[async_trait]
impl RateLimiter for InProcessLimiter {
    async fn hit(&self, bucket: &str, limit: u32, now_unix_ms: u64) -> Result<Decision> {
        Ok(self.count(bucket, limit, now_unix_ms, true))
    }

    async fn peek(&self, bucket: &str, limit: u32, now_unix_ms: u64) -> Result<Decision> {
        Ok(self.count(bucket, limit, now_unix_ms, false))
    }
}

impl InProcessLimiter {
    fn count(&self, bucket: &str, limit: u32, now_unix_ms: u64, add: bool) -> Decision {
        let now = now_unix_ms / 1000;
        let start = now - now % WINDOW_SECS;
        let reset_at = start + WINDOW_SECS;
        let mut map = self.shard(bucket).lock().unwrap_or_else(|e| e.into_inner());
        // Keep memory bounded: windows that ended are dropped once the map grows.
        if map.len() > 4096 {
            map.retain(|_, w| w.start >= start);
        }
        let w = map
            .entry(bucket.to_owned())
            .or_insert(Window { start, count: 0 });
        if w.start != start {
            *w = Window { start, count: 0 };
        }
        let allowed = w.count < limit;
        if allowed && add {
            w.count += 1;
        }
        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(w.count),
            reset_at,
            retry_after: (reset_at - now).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sixty_per_window_then_refused_until_the_next() {
        let l = InProcessLimiter::default();
        let t0 = 1_700_000_080_000; // 40 s into a minute
        for i in 0..60 {
            let d = l.hit("k:all", 60, t0).await.expect("hit");
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 59 - i);
        }
        let d = l.hit("k:all", 60, t0 + 1000).await.expect("hit");
        assert!(!d.allowed);
        assert_eq!(d.retry_after, 19);
        assert_eq!(d.reset_at, 1_700_000_100);
        let peeked = l.peek("k:all", 60, t0 + 1000).await.expect("peek");
        assert_eq!((peeked.remaining, peeked.allowed), (0, false));
        // Other buckets are independent.
        assert!(l.hit("other:all", 60, t0).await.expect("hit").allowed);
        // The next window starts afresh.
        assert!(
            l.hit("k:all", 60, 1_700_000_100_000)
                .await
                .expect("hit")
                .allowed
        );
    }

    #[test]
    fn plans_map_to_limits() {
        assert_eq!(limit_for(Plan::Free, None, RateClass::Chat), ("all", 60));
        assert_eq!(
            limit_for(Plan::Payg, None, RateClass::VideoSubmit),
            ("video_submit", 120)
        );
        assert_eq!(
            limit_for(
                Plan::Enterprise,
                Some(CustomLimits {
                    rpm: 100,
                    burst: 20
                }),
                RateClass::Chat
            ),
            ("chat", 120)
        );
    }
}
