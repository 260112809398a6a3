//! Per-target routing figures for Prometheus: attempts, errors by class,
//! retries and time to the answer's first byte. Metadata only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the time-to-first-byte histogram.
pub const TTFB_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Debug, Default)]
pub struct TargetStats {
    requests: AtomicU64,
    retries: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    ttfb: Mutex<Histogram>,
}

#[derive(Debug, Default, Clone)]
pub struct Histogram {
    pub count: u64,
    pub sum: f64,
    pub buckets: [u64; TTFB_BUCKETS.len()],
}

/// A copy of the figures at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub requests: u64,
    pub retries: u64,
    pub errors: BTreeMap<&'static str, u64>,
    pub ttfb: Histogram,
}

impl TargetStats {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, class: &'static str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(class).or_default() += 1;
    }

    pub fn first_byte(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut h = self.ttfb.lock().unwrap_or_else(|e| e.into_inner());
        h.count += 1;
        h.sum += secs;
        for (i, le) in TTFB_BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.buckets[i] += 1;
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            ttfb: self.ttfb.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}
