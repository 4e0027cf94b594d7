//! Counters for `/metrics` (Prometheus text format 0.0.4). A leaf: the protocol layer counts
//! its events here, the HTTP layer its requests, and `http::metrics` renders them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Everything counted since the process started.
#[derive(Default)]
pub struct Metrics {
    /// (route, method, status) → requests.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route → latency histogram.
    latency: Mutex<BTreeMap<String, Histogram>>,
    pub logins_succeeded: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_throttled: AtomicU64,
    pub refresh_token_reuse: AtomicU64,
    pub authorization_code_reuse: AtomicU64,
    /// Back-channel logout attempts: answered 2xx, failed (retried later), given up.
    pub backchannel_delivered: AtomicU64,
    pub backchannel_failed: AtomicU64,
    pub backchannel_given_up: AtomicU64,
}

impl Metrics {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one HTTP request. `route` is the matched route pattern, never the raw path
    /// (which would let clients create unbounded label values).
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
        drop(requests);
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = latency.entry(route.to_owned()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The Prometheus text exposition; `hashing_queue` is the number of password checks
    /// waiting or running right now.
    pub fn render(&self, hashing_queue: usize) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP ferrid_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE ferrid_http_requests_total counter\n");
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((route, method, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "ferrid_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        drop(requests);
        out.push_str("# HELP ferrid_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE ferrid_http_request_duration_seconds histogram\n");
        let latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        for (route, h) in latency.iter() {
            let route = escape(route);
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "ferrid_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "ferrid_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "ferrid_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "ferrid_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        drop(latency);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP ferrid_logins_total Password checks (password grant and login page) by outcome.\n");
        out.push_str("# TYPE ferrid_logins_total counter\n");
        let _ = writeln!(
            out,
            "ferrid_logins_total{{outcome=\"success\"}} {}",
            load(&self.logins_succeeded)
        );
        let _ = writeln!(
            out,
            "ferrid_logins_total{{outcome=\"failure\"}} {}",
            load(&self.logins_failed)
        );
        let _ = writeln!(
            out,
            "ferrid_logins_total{{outcome=\"throttled\"}} {}",
            load(&self.logins_throttled)
        );
        out.push_str("# HELP ferrid_token_reuse_total Replays detected: a rotated refresh token or a used code presented again.\n");
        out.push_str("# TYPE ferrid_token_reuse_total counter\n");
        let _ = writeln!(
            out,
            "ferrid_token_reuse_total{{kind=\"refresh_token\"}} {}",
            load(&self.refresh_token_reuse)
        );
        let _ = writeln!(
            out,
            "ferrid_token_reuse_total{{kind=\"authorization_code\"}} {}",
            load(&self.authorization_code_reuse)
        );
        out.push_str("# HELP ferrid_backchannel_logout_deliveries_total Logout tokens POSTed to relying parties, by outcome (failed: retried later; given_up: after the last retry).\n");
        out.push_str("# TYPE ferrid_backchannel_logout_deliveries_total counter\n");
        for (outcome, counter) in [
            ("delivered", &self.backchannel_delivered),
            ("failed", &self.backchannel_failed),
            ("given_up", &self.backchannel_given_up),
        ] {
            let _ = writeln!(
                out,
                "ferrid_backchannel_logout_deliveries_total{{outcome=\"{outcome}\"}} {}",
                load(counter)
            );
        }
        out.push_str(
            "# HELP ferrid_password_hashing_queue Password checks running or waiting for a core.\n",
        );
        out.push_str("# TYPE ferrid_password_hashing_queue gauge\n");
        let _ = writeln!(out, "ferrid_password_hashing_queue {hashing_queue}");
        out
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_the_right_buckets() {
        let m = Metrics::default();
        m.request("/token", "POST", 200, 0.02);
        m.request("/token", "POST", 200, 0.3);
        let text = m.render(0);
        assert!(text.contains(
            "ferrid_http_requests_total{route=\"/token\",method=\"POST\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "ferrid_http_request_duration_seconds_bucket{route=\"/token\",le=\"0.025\"} 1"
        ));
        assert!(text.contains(
            "ferrid_http_request_duration_seconds_bucket{route=\"/token\",le=\"0.5\"} 2"
        ));
        assert!(text.contains("ferrid_http_request_duration_seconds_count{route=\"/token\"} 2"));
    }
}
