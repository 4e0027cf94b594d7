//! What `/metrics` exposes (OpenMetrics text, through the prometheus-client crate). A leaf:
//! the protocol layer counts its events here, the HTTP layer its requests, the store its
//! statements and the hasher its hashes; `http::metrics` renders them with what is read at
//! scrape time (pool, queue, throttle, key age, the process).
//!
//! The registry belongs to the app — no global recorder — so two servers in one process
//! (the tests) count apart. A request's path takes no lock of its own: counters, gauges and
//! [`Histogram`] are atomics, and a labelled family is a map behind a read-mostly `RwLock`
//! (its write side runs once per new label set).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// Request latency buckets, in seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Password hashes take tens to hundreds of milliseconds.
const HASH_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Statements take microseconds to, behind a busy pool, seconds.
const STATEMENT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5,
];

/// A histogram whose `observe` is three relaxed atomic adds. (prometheus-client's own
/// histogram takes a mutex per observation.) The sum is kept in nanoseconds, exact and
/// lock-free.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramInner>);

#[derive(Debug)]
struct HistogramInner {
    bounds: &'static [f64],
    /// `counts[i]`: observations in (bounds[i-1], bounds[i]]; the last slot is +Inf.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self(Arc::new(HistogramInner {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = self
            .0
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.0.bounds.len());
        self.0.counts[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // Per bucket, as prometheus-client's own histogram keeps them: its encoder writes
        // the cumulative counts. Read once each, so that the count is their sum even while
        // requests add to them.
        let mut count = 0;
        let mut buckets = Vec::with_capacity(self.0.counts.len());
        for (i, n) in self.0.counts.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            count += n;
            let bound = self.0.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, n));
        }
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// HTTP methods as a label: the known ones by name, the rest as `OTHER` (a client must not
/// be able to make new label values).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub enum Method {
    GET,
    POST,
    HEAD,
    OPTIONS,
    PUT,
    DELETE,
    PATCH,
    OTHER,
}

impl Method {
    pub fn of(method: &axum::http::Method) -> Self {
        use axum::http::Method as M;
        match *method {
            M::GET => Self::GET,
            M::POST => Self::POST,
            M::HEAD => Self::HEAD,
            M::OPTIONS => Self::OPTIONS,
            M::PUT => Self::PUT,
            M::DELETE => Self::DELETE,
            M::PATCH => Self::PATCH,
            _ => Self::OTHER,
        }
    }
}

/// A route pattern (never the raw path, whose values a client could multiply).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: Method,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    grant_type: &'static str,
    outcome: &'static str,
}

/// Outcomes of a password check.
#[derive(Clone, Copy, Debug)]
pub enum LoginOutcome {
    Success,
    Failure,
    Throttled,
}

/// Replays detected.
#[derive(Clone, Copy, Debug)]
pub enum Reuse {
    RefreshToken,
    AuthorizationCode,
}

/// Back-channel logout attempts: answered 2xx, failed (retried later), given up.
#[derive(Clone, Copy, Debug)]
pub enum Delivery {
    Delivered,
    Failed,
    GivenUp,
}

/// Everything counted since the process started.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram>,
    in_flight: Gauge,
    logins: Family<OutcomeLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    reuse: Family<KindLabels, Counter>,
    refresh_retries: Counter,
    backchannel: Family<OutcomeLabels, Counter>,
    hash_duration: Histogram,
    statement_duration: Histogram,
    statements_in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(REQUEST_BUCKETS)) as fn() -> Histogram,
        );
        let in_flight = Gauge::default();
        let logins = Family::<OutcomeLabels, Counter>::default();
        let tokens = Family::<TokenLabels, Counter>::default();
        let reuse = Family::<KindLabels, Counter>::default();
        let refresh_retries = Counter::default();
        let backchannel = Family::<OutcomeLabels, Counter>::default();
        let hash_duration = Histogram::new(HASH_BUCKETS);
        let statement_duration = Histogram::new(STATEMENT_BUCKETS);
        let statements_in_flight = Gauge::default();

        // Series that exist before their first event, so that a rate over them starts at 0.
        for outcome in ["success", "failure", "throttled"] {
            drop(logins.get_or_create(&OutcomeLabels { outcome }));
        }
        for kind in ["refresh_token", "authorization_code"] {
            drop(reuse.get_or_create(&KindLabels { kind }));
        }
        for outcome in ["delivered", "failed", "given_up"] {
            drop(backchannel.get_or_create(&OutcomeLabels { outcome }));
        }

        let mut registry = Registry::default();
        registry.register(
            "ferrid_http_requests",
            "HTTP requests answered, by route pattern, method and status",
            requests.clone(),
        );
        registry.register(
            "ferrid_http_request_duration_seconds",
            "Time from a request's arrival to its response, by route pattern",
            request_duration.clone(),
        );
        registry.register(
            "ferrid_http_requests_in_flight",
            "Requests being answered right now",
            in_flight.clone(),
        );
        registry.register(
            "ferrid_logins",
            "Password checks (password grant and login page) by outcome",
            logins.clone(),
        );
        registry.register(
            "ferrid_token_requests",
            "Token endpoint requests by grant type and outcome (issued, or the RFC 6749 error code)",
            tokens.clone(),
        );
        registry.register(
            "ferrid_token_reuse",
            "Replays detected: a rotated refresh token or a used code presented again",
            reuse.clone(),
        );
        registry.register(
            "ferrid_refresh_retries",
            "Refresh tokens presented again within --refresh-retry-window and answered with the \
             same successor (not replays)",
            refresh_retries.clone(),
        );
        registry.register(
            "ferrid_backchannel_logout_deliveries",
            "Logout tokens POSTed to relying parties, by outcome (failed: retried later; \
             given_up: after the last retry)",
            backchannel.clone(),
        );
        registry.register(
            "ferrid_password_hash_duration_seconds",
            "Time one password hash or check takes on a hashing thread",
            hash_duration.clone(),
        );
        registry.register(
            "ferrid_db_statement_duration_seconds",
            "Time a database statement or transaction takes, waiting for a connection included",
            statement_duration.clone(),
        );
        Self {
            registry,
            requests,
            request_duration,
            in_flight,
            logins,
            tokens,
            reuse,
            refresh_retries,
            backchannel,
            hash_duration,
            statement_duration,
            statements_in_flight,
        }
    }

    /// Records one answered HTTP request.
    pub fn request(&self, route: &'static str, method: Method, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels { route })
            .observe(elapsed);
    }

    /// Counts a request as in flight until the guard drops (answered or cancelled).
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    pub fn login(&self, outcome: LoginOutcome) {
        let outcome = match outcome {
            LoginOutcome::Success => "success",
            LoginOutcome::Failure => "failure",
            LoginOutcome::Throttled => "throttled",
        };
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// One token request: `grant_type` from a fixed set (`unsupported` for anything else),
    /// `outcome` "issued" or an RFC 6749 §5.2 error code.
    pub fn token_request(&self, grant_type: &'static str, outcome: &'static str) {
        self.tokens
            .get_or_create(&TokenLabels {
                grant_type,
                outcome,
            })
            .inc();
    }

    pub fn reuse(&self, kind: Reuse) {
        let kind = match kind {
            Reuse::RefreshToken => "refresh_token",
            Reuse::AuthorizationCode => "authorization_code",
        };
        self.reuse.get_or_create(&KindLabels { kind }).inc();
    }

    /// A retry within `--refresh-retry-window`, answered with the same successor.
    pub fn refresh_retry(&self) {
        self.refresh_retries.inc();
    }

    pub fn delivery(&self, outcome: Delivery) {
        let outcome = match outcome {
            Delivery::Delivered => "delivered",
            Delivery::Failed => "failed",
            Delivery::GivenUp => "given_up",
        };
        self.backchannel
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The histogram the hashing threads fill.
    pub fn hash_duration(&self) -> Histogram {
        self.hash_duration.clone()
    }

    /// Times a statement, and counts it in flight, until the guard drops.
    pub fn statement(&self) -> Statement {
        self.statements_in_flight.inc();
        Statement {
            started: std::time::Instant::now(),
            duration: self.statement_duration.clone(),
            in_flight: self.statements_in_flight.clone(),
        }
    }

    /// Statements running or waiting for a connection right now.
    pub fn statements_in_flight(&self) -> u64 {
        u64::try_from(self.statements_in_flight.get()).unwrap_or(0)
    }

    /// The OpenMetrics text: what was counted, then what `scraped` read just now.
    pub fn render(&self, scraped: &Scraped) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let mut now = Registry::default();
        scraped.register(&mut now, self.statements_in_flight());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &now);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// See [`Metrics::in_flight`].
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// See [`Metrics::statement`].
pub struct Statement {
    started: std::time::Instant,
    duration: Histogram,
    in_flight: Gauge,
}

impl Drop for Statement {
    fn drop(&mut self) {
        self.in_flight.dec();
        self.duration.observe(self.started.elapsed());
    }
}

/// The database pool as it is now.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolState {
    /// Connections open (idle or in use).
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// Values read at scrape time rather than counted.
#[derive(Clone, Debug, Default)]
pub struct Scraped {
    pub hashing_queue: usize,
    pub pool: PoolState,
    pub throttle_entries: usize,
    /// Seconds since the key that signs now was created.
    pub signing_key_age: Option<f64>,
    pub process: Option<Process>,
}

impl Scraped {
    fn register(&self, registry: &mut Registry, statements_in_flight: u64) {
        let gauge = |v: f64| ConstGauge::new(v);
        registry.register(
            "ferrid_password_hashing_queue",
            "Password checks running or waiting for a hashing thread",
            gauge(self.hashing_queue as f64),
        );
        registry.register(
            "ferrid_db_pool_size",
            "Database connections open, idle or in use",
            gauge(self.pool.size.into()),
        );
        registry.register(
            "ferrid_db_pool_idle",
            "Database connections open and idle",
            gauge(self.pool.idle.into()),
        );
        registry.register(
            "ferrid_db_pool_max",
            "Database connections the pool may open",
            gauge(self.pool.max.into()),
        );
        // Statements in flight that hold no connection are waiting for one.
        let busy = u64::from(self.pool.size.saturating_sub(self.pool.idle));
        registry.register(
            "ferrid_db_pool_waiting",
            "Statements waiting for a database connection",
            gauge(statements_in_flight.saturating_sub(busy) as f64),
        );
        registry.register(
            "ferrid_login_throttle_entries",
            "Login failure counters the throttle holds in memory",
            gauge(self.throttle_entries as f64),
        );
        if let Some(age) = self.signing_key_age {
            registry.register(
                "ferrid_signing_key_age_seconds",
                "Seconds since the key that signs new tokens began to sign",
                gauge(age),
            );
        }
        if let Some(p) = &self.process {
            p.register(registry);
        }
    }
}

/// The standard process metrics of Prometheus's client libraries, read from /proc.
#[derive(Clone, Debug, Default)]
pub struct Process {
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

/// Linux reports times in /proc in clock ticks of USER_HZ, which is 100 on every
/// architecture Linux runs (it is part of the user-space ABI; Prometheus's Go client assumes
/// the same).
const USER_HZ: f64 = 100.0;

impl Process {
    /// Reads this process's numbers. File I/O: call it off the async workers.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may contain anything.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        // proc(5): field 14 utime, 15 stime, 22 starttime, 23 vsize; `fields[0]` is field 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
                line.split_whitespace().nth(3)?.parse::<u64>().ok()
            });
        Some(Self {
            resident_memory_bytes: rss_kib * 1024,
            virtual_memory_bytes: field(23)?,
            cpu_seconds: (field(14)? + field(15)?) as f64 / USER_HZ,
            open_fds,
            max_fds,
            start_time_seconds: boot_time as f64 + field(22)? as f64 / USER_HZ,
        })
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            ConstGauge::new(self.resident_memory_bytes as f64),
        );
        registry.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            ConstGauge::new(self.virtual_memory_bytes as f64),
        );
        registry.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            ConstCounter::new(self.cpu_seconds),
        );
        registry.register(
            "process_open_fds",
            "Number of open file descriptors",
            ConstGauge::new(self.open_fds as f64),
        );
        if let Some(max) = self.max_fds {
            registry.register(
                "process_max_fds",
                "Maximum number of open file descriptors",
                ConstGauge::new(max as f64),
            );
        }
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            ConstGauge::new(self.start_time_seconds),
        );
    }
}

/// For tests: a histogram's count and a counter's value from a rendered exposition.
#[doc(hidden)]
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_the_right_buckets() {
        let m = Metrics::new();
        m.request("/token", Method::POST, 200, Duration::from_millis(20));
        m.request("/token", Method::POST, 200, Duration::from_millis(300));
        let text = m.render(&Scraped::default());
        let value = |s| sample(&text, s);
        assert_eq!(
            value(r#"ferrid_http_requests_total{route="/token",method="POST",status="200"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(r#"ferrid_http_request_duration_seconds_bucket{le="0.025",route="/token"}"#).or(
                value(r#"ferrid_http_request_duration_seconds_bucket{route="/token",le="0.025"}"#)
            ),
            Some(1.0)
        );
        assert_eq!(
            value(r#"ferrid_http_request_duration_seconds_count{route="/token"}"#),
            Some(2.0)
        );
        assert!(
            (value(r#"ferrid_http_request_duration_seconds_sum{route="/token"}"#).unwrap() - 0.32)
                .abs()
                < 1e-9
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_statement_is_in_flight_until_its_guard_drops() {
        let m = Metrics::new();
        let guard = m.statement();
        assert_eq!(m.statements_in_flight(), 1);
        drop(guard);
        assert_eq!(m.statements_in_flight(), 0);
        let text = m.render(&Scraped::default());
        assert_eq!(
            sample(&text, "ferrid_db_statement_duration_seconds_count"),
            Some(1.0)
        );
    }

    #[test]
    fn the_process_reads_itself() {
        let p = Process::read().expect("/proc is readable");
        assert!(p.resident_memory_bytes > 1024 * 1024);
        assert!(p.open_fds >= 3);
        let now = crate::clock::Clock::system().now() as f64;
        assert!(p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86_400.0);
    }
}
