//! A deployment's circuit breaker: closed while it answers; open after
//! `threshold` consecutive failures, refusing traffic for `cooldown`; then
//! half-open, letting one request through as a probe: its success closes the
//! breaker, its failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// As a Prometheus gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner {
                failures: 0,
                opened_at: None,
                probing: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        let inner = self.lock();
        match inner.opened_at {
            None => BreakerState::Closed,
            Some(at) if now.duration_since(at) < self.cooldown => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a request may go now. In the half-open state only one
    /// probe is let through at a time; this call claims it.
    pub fn try_acquire(&self, now: Instant) -> bool {
        let mut inner = self.lock();
        match inner.opened_at {
            None => true,
            Some(at) if now.duration_since(at) < self.cooldown => false,
            Some(_) if inner.probing => false,
            Some(_) => {
                inner.probing = true;
                true
            }
        }
    }

    /// Whether a request could go now, without claiming a probe.
    pub fn allows(&self, now: Instant) -> bool {
        let inner = self.lock();
        match inner.opened_at {
            None => true,
            Some(at) => now.duration_since(at) >= self.cooldown && !inner.probing,
        }
    }

    pub fn success(&self) {
        let mut inner = self.lock();
        inner.failures = 0;
        inner.opened_at = None;
        inner.probing = false;
    }

    /// Records a failure; returns true when this one opened the breaker.
    pub fn failure(&self, now: Instant) -> bool {
        let mut inner = self.lock();
        inner.failures = inner.failures.saturating_add(1);
        let was_open = inner.opened_at.is_some();
        if inner.probing || inner.failures >= self.threshold {
            inner.opened_at = Some(now);
            inner.probing = false;
            return !was_open || inner.failures == self.threshold;
        }
        false
    }

    /// Releases a claimed probe whose request ended neither way (the
    /// client left): the next request may probe.
    pub fn release_probe(&self) {
        self.lock().probing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_probes_then_closes() {
        let b = Breaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(b.try_acquire(t0));
        b.failure(t0);
        b.failure(t0);
        b.success();
        b.failure(t0);
        b.failure(t0);
        assert_eq!(
            b.state(t0),
            BreakerState::Closed,
            "a success reset the count"
        );
        assert!(b.failure(t0), "the third in a row opens it");
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(!b.try_acquire(t0 + Duration::from_secs(5)));
        let later = t0 + Duration::from_secs(11);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.try_acquire(later), "one probe");
        assert!(!b.try_acquire(later), "only one probe at a time");
        b.failure(later);
        assert_eq!(
            b.state(later),
            BreakerState::Open,
            "a failed probe opens it again"
        );
        let again = later + Duration::from_secs(11);
        assert!(b.try_acquire(again));
        b.success();
        assert_eq!(b.state(again), BreakerState::Closed);
        assert!(b.try_acquire(again) && b.try_acquire(again));
    }
}
