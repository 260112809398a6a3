//! Prometheus metrics: request counts and latency by route template, method and
//! status. Labels are route templates (`/v1/models/{id}`), never raw paths, so
//! no id, content or key can reach a label.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = map
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default();
        s.count += 1;
        s.sum += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    pub fn render(&self) -> String {
        let map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str("# HELP maximin_http_requests_total HTTP requests by route template, method and status.\n");
        out.push_str("# TYPE maximin_http_requests_total counter\n");
        for ((route, method, status), s) in map.iter() {
            let _ = writeln!(
                out,
                "maximin_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str(
            "# HELP maximin_http_request_duration_seconds Time from request to response head.\n",
        );
        out.push_str("# TYPE maximin_http_request_duration_seconds histogram\n");
        for ((route, method, status), s) in map.iter() {
            let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "maximin_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "maximin_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "maximin_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "maximin_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

/// Routing figures per upstream and deployment: attempts, errors by class,
/// retries, breaker state (0 closed, 1 half-open, 2 open), requests in
/// flight, health, and time to the answer's first byte. Labels are the
/// operator's names for upstreams and models, never content or keys.
pub fn render_routing(router: &maximin_core::routing::Router) -> String {
    use maximin_core::routing::stats::TTFB_BUCKETS;
    let now = std::time::Instant::now();
    let mut out = String::new();
    let mut rows = Vec::new();
    for (model, targets) in router.targets() {
        for t in targets {
            let Some(up) = &t.upstream else { continue };
            rows.push((up.name.clone(), model.clone(), t.clone()));
        }
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let header = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    };
    header(
        &mut out,
        "maximin_upstream_healthy",
        "gauge",
        "1 while the upstream's active health check passes.",
    );
    for up in router.upstreams() {
        let _ = writeln!(
            out,
            "maximin_upstream_healthy{{upstream=\"{}\"}} {}",
            up.name,
            u8::from(up.healthy())
        );
    }
    let labels = |(up, model, t): &(
        String,
        String,
        std::sync::Arc<maximin_core::routing::Target>,
    )| {
        format!(
            "upstream=\"{up}\",model=\"{model}\",deployment=\"{}\"",
            t.label
        )
    };
    let snaps: Vec<_> = rows
        .iter()
        .map(|r| (labels(r), r.2.stats.snapshot(), r.2.clone()))
        .collect();
    header(
        &mut out,
        "maximin_upstream_requests_total",
        "counter",
        "Attempts sent to a deployment.",
    );
    for (l, s, _) in &snaps {
        let _ = writeln!(out, "maximin_upstream_requests_total{{{l}}} {}", s.requests);
    }
    header(
        &mut out,
        "maximin_upstream_retries_total",
        "counter",
        "Attempts that were retries.",
    );
    for (l, s, _) in &snaps {
        let _ = writeln!(out, "maximin_upstream_retries_total{{{l}}} {}", s.retries);
    }
    header(&mut out, "maximin_upstream_errors_total", "counter", "Failed attempts by class (timeout, connect, rate_limited, server_error, client_error, broken_stream, …).");
    for (l, s, _) in &snaps {
        for (class, n) in &s.errors {
            let _ = writeln!(
                out,
                "maximin_upstream_errors_total{{{l},class=\"{class}\"}} {n}"
            );
        }
    }
    header(
        &mut out,
        "maximin_upstream_breaker_state",
        "gauge",
        "Circuit breaker: 0 closed, 1 half-open, 2 open.",
    );
    for (l, _, t) in &snaps {
        let _ = writeln!(
            out,
            "maximin_upstream_breaker_state{{{l}}} {}",
            t.breaker.state(now).gauge()
        );
    }
    header(
        &mut out,
        "maximin_upstream_in_flight",
        "gauge",
        "Requests in flight at a deployment.",
    );
    for (l, _, t) in &snaps {
        let _ = writeln!(out, "maximin_upstream_in_flight{{{l}}} {}", t.in_flight());
    }
    header(
        &mut out,
        "maximin_upstream_first_byte_seconds",
        "histogram",
        "Time from sending an attempt to the answer's first event.",
    );
    for (l, s, _) in &snaps {
        for (i, le) in TTFB_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "maximin_upstream_first_byte_seconds_bucket{{{l},le=\"{le}\"}} {}",
                s.ttfb.buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "maximin_upstream_first_byte_seconds_bucket{{{l},le=\"+Inf\"}} {}",
            s.ttfb.count
        );
        let _ = writeln!(
            out,
            "maximin_upstream_first_byte_seconds_sum{{{l}}} {}",
            s.ttfb.sum
        );
        let _ = writeln!(
            out,
            "maximin_upstream_first_byte_seconds_count{{{l}}} {}",
            s.ttfb.count
        );
    }
    out
}
