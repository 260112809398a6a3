//! Rate limits shared by replicas, in Redis: the same fixed one-minute
//! windows, bucket names and headers as the in-process limiter, counted by
//! one Lua script per admission (read every bucket, then count in all of
//! them only when each has room), which Redis runs atomically. There is no
//! read-then-write between replicas to race.
//!
//! When Redis cannot be reached the limiter refuses (`fail_open = false`,
//! the default: `503 server_error` with `Retry-After`), or admits without
//! counting (`fail_open = true`), logging either way; it reconnects on the
//! next request.

use std::time::Duration;

use async_trait::async_trait;
use maximin_core::ratelimit::{decisions, Bucket, Decision, RateLimiter, WINDOW_SECS};
use maximin_core::{Error, Result};
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

/// KEYS: the buckets' window keys. ARGV: n, force (0/1), how long the
/// windows are kept (ms), then each bucket's limit. Returns each bucket's count before,
/// then 1 when `n` was counted.
const SCRIPT: &str = r"
local n = tonumber(ARGV[1])
local force = ARGV[2] == '1'
local need = n
if need < 1 then need = 1 end
local counts = {}
local admitted = true
for i, key in ipairs(KEYS) do
  local c = tonumber(redis.call('GET', key) or '0')
  counts[i] = c
  if c + need > tonumber(ARGV[3 + i]) then admitted = false end
end
local counted = force or (n > 0 and admitted)
if counted then
  for i, key in ipairs(KEYS) do
    local v = counts[i] + n
    if v < 0 then v = 0 end
    redis.call('SET', key, v, 'PX', ARGV[3])
  end
end
counts[#KEYS + 1] = counted and 1 or 0
return counts
";

/// How long one admission waits for Redis before it counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisLimiter {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    script: redis::Script,
    fail_open: bool,
}

impl RedisLimiter {
    /// A limiter on the Redis `url` names (`redis://host:port/db`); it
    /// connects on first use and again after a failure.
    pub fn new(url: &str, fail_open: bool) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| Error::internal(format!("redis_url: {e}")))?;
        Ok(RedisLimiter {
            client,
            conn: Mutex::new(None),
            script: redis::Script::new(SCRIPT),
            fail_open,
        })
    }

    /// Checks that Redis answers (for start-up and readiness).
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.connection().await.map_err(unreachable)?;
        tokio::time::timeout(TIMEOUT, redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map_err(|_| unreachable("timed out"))?
            .map_err(unreachable)?;
        Ok(())
    }

    async fn connection(&self) -> std::result::Result<MultiplexedConnection, String> {
        let mut held = self.conn.lock().await;
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(TIMEOUT, self.client.get_multiplexed_async_connection())
            .await
            .map_err(|_| "connecting timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        *held = Some(c.clone());
        Ok(c)
    }

    /// Runs the script; on any failure the connection is dropped (the
    /// next call reconnects).
    async fn run(
        &self,
        buckets: &[Bucket],
        n: i64,
        force: bool,
        now_unix_ms: u64,
    ) -> std::result::Result<(Vec<u32>, bool), String> {
        let now = now_unix_ms / 1000;
        let start = now - now % WINDOW_SECS;
        // Kept a window past its end, so a late settle still finds it.
        let keep_ms = ((start + 2 * WINDOW_SECS) * 1000).saturating_sub(now_unix_ms);
        let mut inv = self.script.prepare_invoke();
        for b in buckets {
            inv.key(format!("maximin:rl:{}:{start}", b.name));
        }
        inv.arg(n).arg(u8::from(force)).arg(keep_ms.max(1));
        for b in buckets {
            inv.arg(b.limit);
        }
        let mut conn = self.connection().await?;
        let out = tokio::time::timeout(TIMEOUT, inv.invoke_async::<Vec<i64>>(&mut conn)).await;
        let out = match out {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                *self.conn.lock().await = None;
                return Err(e.to_string());
            }
            Err(_) => {
                *self.conn.lock().await = None;
                return Err("timed out".into());
            }
        };
        if out.len() != buckets.len() + 1 {
            return Err(format!("the script answered {} values", out.len()));
        }
        let counts = out[..buckets.len()]
            .iter()
            .map(|&c| u32::try_from(c.max(0)).unwrap_or(u32::MAX))
            .collect();
        Ok((counts, out[buckets.len()] == 1))
    }

    async fn count(
        &self,
        buckets: &[Bucket],
        n: i64,
        force: bool,
        now_unix_ms: u64,
    ) -> Result<Vec<Decision>> {
        match self.run(buckets, n, force, now_unix_ms).await {
            Ok((counts, counted)) => Ok(decisions(buckets, &counts, n, counted, now_unix_ms)),
            Err(cause) if self.fail_open => {
                tracing::warn!(cause = %cause, "Redis unreachable: admitting without rate limits (fail_open)");
                Ok(decisions(
                    buckets,
                    &vec![0; buckets.len()],
                    n,
                    false,
                    now_unix_ms,
                ))
            }
            Err(cause) => Err(unreachable(cause)),
        }
    }
}

fn unreachable(cause: impl std::fmt::Display) -> Error {
    tracing::error!(cause = %cause, "Redis unreachable: refusing requests (fail_open = false)");
    Error::unavailable("The rate limiter is unreachable for now; retry shortly.", 1)
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn hit(&self, buckets: &[Bucket], now_unix_ms: u64) -> Result<Vec<Decision>> {
        self.count(buckets, 1, false, now_unix_ms).await
    }

    async fn peek(&self, buckets: &[Bucket], now_unix_ms: u64) -> Result<Vec<Decision>> {
        self.count(buckets, 0, false, now_unix_ms).await
    }

    async fn take(&self, buckets: &[Bucket], n: u32, now_unix_ms: u64) -> Result<Vec<Decision>> {
        self.count(buckets, i64::from(n), false, now_unix_ms).await
    }

    async fn settle(&self, buckets: &[Bucket], delta: i64, now_unix_ms: u64) -> Result<()> {
        if let Err(cause) = self.run(buckets, delta, true, now_unix_ms).await {
            tracing::warn!(cause = %cause, "Redis unreachable: a request's tokens were not settled");
        }
        Ok(())
    }

    /// Not ready while Redis is out of reach, unless requests are admitted
    /// anyway (`fail_open`).
    async fn ready(&self) -> Result<()> {
        if self.fail_open {
            return Ok(());
        }
        self.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maximin_core::ratelimit::{buckets_for, InProcessLimiter};
    use maximin_types::{Plan, RateClass};

    /// The Redis tests run against: `MAXIMIN_TEST_REDIS_URL`, required in CI.
    fn server() -> Option<String> {
        match std::env::var("MAXIMIN_TEST_REDIS_URL") {
            Ok(u) if !u.is_empty() => Some(u),
            _ => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI runs the Redis limiter's tests: set MAXIMIN_TEST_REDIS_URL (scripts/check does)"
                );
                eprintln!("no Redis (MAXIMIN_TEST_REDIS_URL): skipped");
                None
            }
        }
    }

    fn unique() -> String {
        format!("t{:x}", crate::sql::rand_u64())
    }

    #[tokio::test]
    async fn three_replicas_admit_exactly_the_limit_and_agree_with_the_in_process_headers() {
        let Some(url) = server() else { return };
        let replicas: Vec<std::sync::Arc<RedisLimiter>> = (0..3)
            .map(|_| std::sync::Arc::new(RedisLimiter::new(&url, false).expect("limiter")))
            .collect();
        let account = unique();
        let t0 = 1_700_000_080_000u64;
        let buckets = buckets_for(&account, "key_1", Plan::Free, None, RateClass::Chat);
        let mut runs = tokio::task::JoinSet::new();
        for n in 0..64 {
            let l = replicas[n % 3].clone();
            let b = buckets.clone();
            runs.spawn(async move { l.hit(&b, t0).await.expect("hit") });
        }
        let all = runs.join_all().await;
        let admitted = all.iter().filter(|ds| ds.iter().all(|d| d.allowed)).count();
        assert_eq!(
            admitted, 60,
            "a free account's 60 a minute, over 3 replicas"
        );
        // Every replica reports the same state, as one process would.
        let local = InProcessLimiter::default();
        for _ in 0..60 {
            local.hit(&buckets, t0).await.expect("hit");
        }
        let want = local.peek(&buckets, t0 + 1000).await.expect("peek");
        for l in &replicas {
            assert_eq!(l.peek(&buckets, t0 + 1000).await.expect("peek"), want);
        }
        // Tokens settle past admission and never below zero.
        let tb = maximin_core::ratelimit::token_buckets(&account, "key_1", Plan::Free, None);
        assert!(replicas[0].take(&tb, 90_000, t0).await.expect("take")[0].allowed);
        assert!(!replicas[1].take(&tb, 20_000, t0).await.expect("take")[0].allowed);
        replicas[2].settle(&tb, -100_000, t0).await.expect("settle");
        assert_eq!(
            replicas[1].peek(&tb, t0).await.expect("peek")[1].remaining,
            100_000
        );
        // The next window starts afresh.
        assert!(replicas[0].hit(&buckets, t0 + 60_000).await.expect("hit")[0].allowed);
    }

    #[tokio::test]
    async fn an_unreachable_redis_refuses_with_503_unless_failing_open() {
        // Nothing listens on port 9 of loopback.
        let closed = RedisLimiter::new("redis://127.0.0.1:9/", false).expect("limiter");
        let b = buckets_for("a", "k", Plan::Free, None, RateClass::Chat);
        let e = closed
            .hit(&b, 1_700_000_080_000)
            .await
            .expect_err("refused");
        assert_eq!((e.status(), e.retry_after), (503, Some(1)));
        assert_eq!(e.code, maximin_types::ErrorCode::ServerError);
        let open = RedisLimiter::new("redis://127.0.0.1:9/", true).expect("limiter");
        let ds = open.hit(&b, 1_700_000_080_000).await.expect("admitted");
        assert!(ds.iter().all(|d| d.allowed));
    }
}
