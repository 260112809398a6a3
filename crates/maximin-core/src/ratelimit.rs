//! Rate limits (DESIGN.md §3): per key and per account, per endpoint class,
//! per plan, in fixed one-minute windows aligned to the clock, so that "60
//! requests per minute" means at most 60 in each window and `X-RateLimit-Reset`
//! is the window's end.
//!
//! Every request is counted twice: against its key's counter and against its
//! account's (the plan's ceiling for all the account's keys together, so that
//! more keys do not mean more requests). The two are counted together or not
//! at all: a request refused by one counter uses up nothing of the other.
//!
//! The limiter is a trait: this in-process one serves a single node; the
//! Redis one (`maximin_store::RedisLimiter`: one script that reads every
//! bucket, then counts in all of them only when each has room) serves
//! replicas. Both report through [`decisions`], so their headers agree.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use maximin_types::{CustomLimits, Plan, RateClass};

use crate::Result;

pub const WINDOW_SECS: u64 = 60;

/// What the limiter decided for one request on one counter.
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

/// Whose requests a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Key,
    Account,
}

impl Holder {
    pub fn as_str(self) -> &'static str {
        match self {
            Holder::Key => "key",
            Holder::Account => "account",
        }
    }
}

/// One counter a request is counted against, and its limit per window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    pub limit: u32,
    pub holder: Holder,
}

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request against every bucket when each has room, and
    /// against none when any is full. One decision per bucket, in order,
    /// each saying whether that bucket had room: the request may proceed
    /// when all are `allowed`.
    async fn hit(&self, buckets: &[Bucket], now_unix_ms: u64) -> Result<Vec<Decision>>;

    /// The state of the buckets without counting a request (for the headers
    /// of a response refused before the limiter, such as a missing scope).
    async fn peek(&self, buckets: &[Bucket], now_unix_ms: u64) -> Result<Vec<Decision>>;

    /// Counts `n` (tokens) against every bucket when each has room for all
    /// of them, and against none otherwise: [`RateLimiter::hit`] for `n`.
    async fn take(&self, buckets: &[Bucket], n: u32, now_unix_ms: u64) -> Result<Vec<Decision>>;

    /// Adds `delta` to every bucket's count in the current window whatever
    /// the limit (a request's tokens settled once known: more than counted
    /// at admission, or fewer), never below zero.
    async fn settle(&self, buckets: &[Bucket], delta: i64, now_unix_ms: u64) -> Result<()>;

    /// Whether the limiter can decide now (`/readyz`): a shared one out of
    /// reach that would refuse every request is not ready.
    async fn ready(&self) -> Result<()> {
        Ok(())
    }
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

/// The counters of one request by key `key_id` of account `account_id`: the
/// key's own, then the account's ceiling. A plan's figures are what the
/// account gets (seed 002: "free tier accounts receive 60 requests per
/// minute", "pay-as-you-go accounts get 600 RPM"; enterprise capacity is
/// configured per account), and each key is held to them as well: keys share
/// the account's requests, they do not multiply them.
pub fn buckets_for(
    account_id: &str,
    key_id: &str,
    plan: Plan,
    custom: Option<CustomLimits>,
    class: RateClass,
) -> [Bucket; 2] {
    let (counter, limit) = limit_for(plan, custom, class);
    key_and_account(account_id, key_id, counter, limit)
}

/// A key's counter and its account's, both held to `limit`.
fn key_and_account(account_id: &str, key_id: &str, counter: &str, limit: u32) -> [Bucket; 2] {
    [
        Bucket {
            name: format!("{key_id}:{counter}"),
            limit,
            holder: Holder::Key,
        },
        Bucket {
            name: format!("{account_id}:{counter}"),
            limit,
            holder: Holder::Account,
        },
    ]
}

/// The decision to report of several counters' (the `X-RateLimit-*`
/// headers): a refusal when there is one, else the counter with the fewest
/// requests left; on a tie, the lower limit, then the later counter (the
/// account's, which another key would not escape). Its index comes with it.
pub fn tightest(decisions: &[Decision]) -> Option<(usize, Decision)> {
    decisions
        .iter()
        .copied()
        .enumerate()
        .rev()
        .min_by_key(|(_, d)| (d.allowed, d.remaining, d.limit))
}

pub const DEFAULT_ENTERPRISE: CustomLimits = CustomLimits {
    rpm: 6000,
    burst: 1000,
    tpm: None,
};

/// Tokens per minute (prompt and completion, chat and embeddings together)
/// of each plan, for the account and each of its keys: free 100,000,
/// coding 1,000,000, pay-as-you-go 2,000,000, enterprise as configured
/// (`--tpm`, default 20,000,000).
pub fn tpm_for(plan: Plan, custom: Option<CustomLimits>) -> u32 {
    match plan {
        Plan::Free => 100_000,
        Plan::Coding => 1_000_000,
        Plan::Payg => 2_000_000,
        Plan::Enterprise => custom.and_then(|c| c.tpm).unwrap_or(20_000_000),
    }
}

/// The token counters of a request: the key's, then the account's.
pub fn token_buckets(
    account_id: &str,
    key_id: &str,
    plan: Plan,
    custom: Option<CustomLimits>,
) -> [Bucket; 2] {
    key_and_account(account_id, key_id, "tokens", tpm_for(plan, custom))
}

fn payg_rpm(class: RateClass) -> u32 {
    match class {
        // Speech is inference like chat and embeddings (DESIGN.md §3 has no row for it).
        RateClass::Chat | RateClass::Embeddings | RateClass::Speech => 600,
        RateClass::VideoSubmit | RateClass::Media => 120,
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
    fn shard(bucket: &str) -> usize {
        // FNV-1a: cheap and good enough to spread keys over shards.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in bucket.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        (h % SHARDS as u64) as usize
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, HashMap<String, Window>> {
        self.shards[shard].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads every bucket and, when `n > 0` and each has room for `n`,
    /// counts `n` in all of them, holding the locks of their shards (taken
    /// in one order, so two requests never wait on each other) throughout:
    /// no other request sees one bucket counted and the other not. With
    /// `force`, `n` (or a negative `n`) is added whatever the limits.
    fn count(&self, buckets: &[Bucket], now_unix_ms: u64, n: i64, force: bool) -> Vec<Decision> {
        let now = now_unix_ms / 1000;
        let start = now - now % WINDOW_SECS;
        let shard_of: Vec<usize> = buckets.iter().map(|b| Self::shard(&b.name)).collect();
        let mut order = shard_of.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<MutexGuard<'_, HashMap<String, Window>>> =
            order.iter().map(|&i| self.lock(i)).collect();
        // Where each bucket's shard guard is in `guards`.
        let guard_of: Vec<usize> = shard_of
            .iter()
            .map(|s| order.binary_search(s).unwrap_or_default())
            .collect();
        let mut counts = Vec::with_capacity(buckets.len());
        for (b, &g) in buckets.iter().zip(&guard_of) {
            let map = &mut guards[g];
            // Keep memory bounded: windows that ended are dropped once the map grows.
            if map.len() > 4096 {
                map.retain(|_, w| w.start >= start);
            }
            let w = map
                .entry(b.name.clone())
                .or_insert(Window { start, count: 0 });
            if w.start != start {
                *w = Window { start, count: 0 };
            }
            counts.push(w.count);
        }
        let admitted = buckets.iter().zip(&counts).all(|(b, &c)| fits(b, c, n));
        let counted = force || (n > 0 && admitted);
        if counted {
            for (b, &g) in buckets.iter().zip(&guard_of) {
                if let Some(w) = guards[g].get_mut(&b.name) {
                    w.count = u32::try_from((i64::from(w.count) + n).max(0)).unwrap_or(u32::MAX);
                }
            }
        }
        decisions(buckets, &counts, n, counted, now_unix_ms)
    }
}

/// Whether `n` (at least 1) more fits in a bucket that counted `count`.
pub fn fits(bucket: &Bucket, count: u32, n: i64) -> bool {
    i64::from(count) + n.max(1) <= i64::from(bucket.limit)
}

/// The decisions of a count of `n` against `buckets` that held `counts`
/// before it, in the window of `now_unix_ms`; `counted`: whether `n` was
/// added. Any limiter reports through this, so the headers agree.
pub fn decisions(
    buckets: &[Bucket],
    counts: &[u32],
    n: i64,
    counted: bool,
    now_unix_ms: u64,
) -> Vec<Decision> {
    let now = now_unix_ms / 1000;
    let reset_at = now - now % WINDOW_SECS + WINDOW_SECS;
    buckets
        .iter()
        .zip(counts)
        .map(|(b, &c)| {
            let after = if counted {
                (i64::from(c) + n).max(0)
            } else {
                i64::from(c)
            };
            Decision {
                // Whether this bucket had room; the request ran only if all had.
                allowed: fits(b, c, n),
                limit: b.limit,
                remaining: u32::try_from((i64::from(b.limit) - after).max(0)).unwrap_or(0),
                reset_at,
                retry_after: (reset_at - now).max(1),
            }
        })
        .collect()
}

#[async_trait]
impl RateLimiter for InProcessLimiter {
    async fn hit(&self, buckets: &[Bucket], now_unix_ms: u64) -> Result<Vec<Decision>> {
        Ok(self.count(buckets, now_unix_ms, 1, false))
    }

    async fn peek(&self, buckets: &[Bucket], now_unix_ms: u64) -> Result<Vec<Decision>> {
        Ok(self.count(buckets, now_unix_ms, 0, false))
    }

    async fn take(&self, buckets: &[Bucket], n: u32, now_unix_ms: u64) -> Result<Vec<Decision>> {
        Ok(self.count(buckets, now_unix_ms, i64::from(n), false))
    }

    async fn settle(&self, buckets: &[Bucket], delta: i64, now_unix_ms: u64) -> Result<()> {
        self.count(buckets, now_unix_ms, delta, true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, limit: u32) -> Vec<Bucket> {
        vec![Bucket {
            name: name.into(),
            limit,
            holder: Holder::Key,
        }]
    }

    async fn hit1(l: &InProcessLimiter, name: &str, limit: u32, now: u64) -> Decision {
        l.hit(&one(name, limit), now).await.expect("hit")[0]
    }

    #[tokio::test]
    async fn tokens_are_taken_all_or_none_and_settled_either_way() {
        let l = InProcessLimiter::default();
        let t0 = 1_700_000_080_000;
        let b = token_buckets(
            "acct_t",
            "key_t",
            Plan::Enterprise,
            Some(CustomLimits {
                rpm: 10,
                burst: 0,
                tpm: Some(100),
            }),
        );
        let ds = l.take(&b, 60, t0).await.expect("take");
        assert!(ds.iter().all(|d| d.allowed));
        assert_eq!(tightest(&ds).expect("d").1.remaining, 40);
        // 41 do not fit in 40: refused, nothing counted.
        let ds = l.take(&b, 41, t0).await.expect("take");
        assert!(!tightest(&ds).expect("d").1.allowed);
        assert_eq!(l.peek(&b, t0).await.expect("peek")[0].remaining, 40);
        // The answer used 20 more than counted; another used 5 fewer.
        l.settle(&b, 20, t0).await.expect("settle");
        assert_eq!(l.peek(&b, t0).await.expect("peek")[1].remaining, 20);
        l.settle(&b, -5, t0).await.expect("settle");
        assert_eq!(l.peek(&b, t0).await.expect("peek")[1].remaining, 25);
        // Settling past the limit leaves nothing, and never wraps.
        l.settle(&b, 1000, t0).await.expect("settle");
        assert_eq!(l.peek(&b, t0).await.expect("peek")[0].remaining, 0);
        assert!(!l.take(&b, 1, t0).await.expect("take")[0].allowed);
        // The next minute starts afresh.
        assert!(l.take(&b, 100, t0 + 60_000).await.expect("take")[0].allowed);
        assert_eq!(tpm_for(Plan::Free, None), 100_000);
    }

    #[tokio::test]
    async fn sixty_per_window_then_refused_until_the_next() {
        let l = InProcessLimiter::default();
        let t0 = 1_700_000_080_000; // 40 s into a minute
        for i in 0..60 {
            let d = hit1(&l, "k:all", 60, t0).await;
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 59 - i);
        }
        let d = hit1(&l, "k:all", 60, t0 + 1000).await;
        assert!(!d.allowed);
        assert_eq!(d.retry_after, 19);
        assert_eq!(d.reset_at, 1_700_000_100);
        let peeked = l.peek(&one("k:all", 60), t0 + 1000).await.expect("peek")[0];
        assert_eq!((peeked.remaining, peeked.allowed), (0, false));
        // Other buckets are independent.
        assert!(hit1(&l, "other:all", 60, t0).await.allowed);
        // The next window starts afresh.
        assert!(hit1(&l, "k:all", 60, 1_700_000_100_000).await.allowed);
    }

    #[tokio::test]
    async fn keys_share_their_accounts_ceiling_and_a_refusal_counts_nowhere() {
        let l = InProcessLimiter::default();
        let t0 = 1_700_000_080_000;
        let a = buckets_for("acct_a", "key_1", Plan::Free, None, RateClass::Chat);
        let b = buckets_for("acct_a", "key_2", Plan::Free, None, RateClass::Read);
        for i in 0..60u32 {
            let keys = if i % 2 == 0 { &a } else { &b };
            let ds = l.hit(keys, t0).await.expect("hit");
            assert!(ds.iter().all(|d| d.allowed), "request {i}");
            // The headers report the account, the tighter of the two.
            let (at, d) = tightest(&ds).expect("decision");
            assert_eq!((keys[at].holder, d.remaining), (Holder::Account, 59 - i));
        }
        // The account is full: either key is refused, by the account's counter.
        let ds = l.hit(&a, t0).await.expect("hit");
        let (at, d) = tightest(&ds).expect("decision");
        assert!(!d.allowed);
        assert_eq!(a[at].holder, Holder::Account);
        // The refused request used up nothing of the key's own counter.
        let key_only = l.peek(&a[..1], t0).await.expect("peek")[0];
        assert_eq!(key_only.remaining, 30);
        // Another account is not affected.
        let other = buckets_for("acct_b", "key_3", Plan::Free, None, RateClass::Chat);
        assert!(l.hit(&other, t0).await.expect("hit")[1].allowed);
    }

    #[tokio::test]
    async fn a_full_key_refuses_without_counting_against_the_account() {
        let l = InProcessLimiter::default();
        let t0 = 1_700_000_080_000;
        let key = Bucket {
            name: "key_1:all".into(),
            limit: 2,
            holder: Holder::Key,
        };
        let account = Bucket {
            name: "acct_a:all".into(),
            limit: 5,
            holder: Holder::Account,
        };
        let both = [key, account];
        for _ in 0..2 {
            assert!(l
                .hit(&both, t0)
                .await
                .expect("hit")
                .iter()
                .all(|d| d.allowed));
        }
        for _ in 0..3 {
            let ds = l.hit(&both, t0).await.expect("hit");
            let (at, d) = tightest(&ds).expect("decision");
            assert_eq!((at, d.allowed, d.remaining), (0, false, 0));
        }
        let acct = l.peek(&both[1..], t0).await.expect("peek")[0];
        assert_eq!(
            acct.remaining, 3,
            "three refusals took nothing from the account"
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
                    tpm: None,
                    rpm: 100,
                    burst: 20
                }),
                RateClass::Chat
            ),
            ("chat", 120)
        );
        let [key, account] = buckets_for("acct_a", "key_1", Plan::Payg, None, RateClass::Chat);
        assert_eq!((key.name.as_str(), key.limit), ("key_1:chat", 600));
        assert_eq!((account.name.as_str(), account.limit), ("acct_a:chat", 600));
    }
}
