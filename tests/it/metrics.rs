//! `/metrics` read by a parser nobody here wrote: the OpenMetrics parser of Prometheus's own
//! Python client (Debian's python3-prometheus-client), which refuses a malformed exposition.

use std::collections::HashMap;
use std::process::Command;

use crate::support::{CLIENT, CLIENT_SECRET, TestApp, TestDir, run_with_stdin};
use ferrid::clock::Clock;

/// The interpreter with Debian's prometheus_client; `FERRID_TEST_PYTHON` overrides it.
fn python() -> String {
    std::env::var("FERRID_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families, samples = {}, []
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = family.type
    for s in family.samples:
        samples.append([s.name, s.labels, s.value])
json.dump({"families": families, "samples": samples}, sys.stdout)
"#;

/// A parsed exposition: family name → type, and every sample.
struct Exposition {
    families: HashMap<String, String>,
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        // Install python3-prometheus-client, or set FERRID_TEST_PYTHON.
        let mut python = Command::new(python());
        python.args(["-c", PARSE]);
        let out = run_with_stdin(python, text);
        assert!(
            out.status.success(),
            "the OpenMetrics parser refused the exposition: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let families = parsed["families"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let samples = parsed["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels = s[1]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                (
                    s[0].as_str().unwrap().to_owned(),
                    labels,
                    s[2].as_f64().unwrap(),
                )
            })
            .collect();
        Self { families, samples }
    }

    /// The value of the sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
            })
            .map(|(_, _, v)| *v)
    }
}

async fn scrape(app: &TestApp, base: &str) -> reqwest::Response {
    app.http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_exposition_parses_and_counts_logins_tokens_hashes_and_statements() {
    let app = TestApp::spawn().await;
    app.login("openid").await;
    let wrong = app
        .token(
            &[
                ("grant_type", "password"),
                ("username", "ada"),
                ("password", "wrong"),
            ],
            Some((CLIENT, CLIENT_SECRET)),
        )
        .await;
    assert_eq!(wrong.status(), 400);
    // A grant type a client makes up is counted as `unsupported`, not as a new label value.
    let made_up = app
        .token(
            &[("grant_type", "urn:made:up")],
            Some((CLIENT, CLIENT_SECRET)),
        )
        .await;
    assert_eq!(made_up.status(), 400);

    let res = scrape(&app, &app.base).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    let m = Exposition::parse(&res.text().await.unwrap());

    // Every documented family, with its type.
    for (family, kind) in [
        ("ferrid_http_requests", "counter"),
        ("ferrid_http_request_duration_seconds", "histogram"),
        ("ferrid_http_requests_in_flight", "gauge"),
        ("ferrid_logins", "counter"),
        ("ferrid_token_requests", "counter"),
        ("ferrid_token_reuse", "counter"),
        ("ferrid_refresh_retries", "counter"),
        ("ferrid_backchannel_logout_deliveries", "counter"),
        ("ferrid_password_hash_duration_seconds", "histogram"),
        ("ferrid_password_hashing_queue", "gauge"),
        ("ferrid_db_statement_duration_seconds", "histogram"),
        ("ferrid_db_pool_size", "gauge"),
        ("ferrid_db_pool_idle", "gauge"),
        ("ferrid_db_pool_max", "gauge"),
        ("ferrid_db_pool_waiting", "gauge"),
        ("ferrid_login_throttle_entries", "gauge"),
        ("ferrid_signing_key_age_seconds", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_cpu_seconds", "counter"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert_eq!(
            m.families.get(family).map(String::as_str),
            Some(kind),
            "{family} in {:?}",
            m.families
        );
    }

    // The logins, by outcome.
    assert_eq!(
        m.value("ferrid_logins_total", &[("outcome", "success")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("ferrid_logins_total", &[("outcome", "failure")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("ferrid_logins_total", &[("outcome", "throttled")]),
        Some(0.0)
    );
    // Tokens, by grant type and outcome.
    let tokens = |grant: &str, outcome: &str| {
        m.value(
            "ferrid_token_requests_total",
            &[("grant_type", grant), ("outcome", outcome)],
        )
    };
    assert_eq!(tokens("password", "issued"), Some(1.0));
    assert_eq!(tokens("password", "invalid_grant"), Some(1.0));
    assert_eq!(tokens("unsupported", "unsupported_grant_type"), Some(1.0));
    // Requests, and their histogram.
    let requests = |status: &str| {
        m.value(
            "ferrid_http_requests_total",
            &[("route", "/token"), ("method", "POST"), ("status", status)],
        )
    };
    assert_eq!(requests("200"), Some(1.0));
    assert_eq!(requests("400"), Some(2.0));
    let count = m.value(
        "ferrid_http_request_duration_seconds_count",
        &[("route", "/token")],
    );
    assert_eq!(count, Some(3.0));
    assert_eq!(
        m.value(
            "ferrid_http_request_duration_seconds_bucket",
            &[("route", "/token"), ("le", "+Inf")]
        ),
        Some(3.0)
    );
    assert!(
        m.value(
            "ferrid_http_request_duration_seconds_sum",
            &[("route", "/token")]
        )
        .unwrap()
            > 0.0
    );
    // The scrape itself is in flight.
    assert_eq!(m.value("ferrid_http_requests_in_flight", &[]), Some(1.0));
    // Two password checks hashed (the user's password, the wrong one); the histogram's sum
    // is real time.
    assert_eq!(
        m.value("ferrid_password_hash_duration_seconds_count", &[]),
        Some(2.0)
    );
    assert!(
        m.value("ferrid_password_hash_duration_seconds_sum", &[])
            .unwrap()
            > 0.001
    );
    // Statements ran and were timed; none waits now.
    assert!(
        m.value("ferrid_db_statement_duration_seconds_count", &[])
            .unwrap()
            >= 3.0
    );
    assert_eq!(m.value("ferrid_db_pool_waiting", &[]), Some(0.0));
    assert!(m.value("ferrid_db_pool_max", &[]).unwrap() >= 1.0);
    assert!(
        m.value("ferrid_db_pool_size", &[]).unwrap()
            >= m.value("ferrid_db_pool_idle", &[]).unwrap()
    );
    // The failed login is held by the throttle.
    assert!(m.value("ferrid_login_throttle_entries", &[]).unwrap() >= 1.0);
    // The signing key was generated at start, by this clock.
    let age = m.value("ferrid_signing_key_age_seconds", &[]).unwrap();
    assert!((0.0..120.0).contains(&age), "{age}");
    // The process.
    assert!(m.value("process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(m.value("process_open_fds", &[]).unwrap() >= 3.0);
    assert!(m.value("process_cpu_seconds_total", &[]).unwrap() > 0.0);
    let now = Clock::system().now() as f64;
    let started = m.value("process_start_time_seconds", &[]).unwrap();
    assert!(
        started <= now + 1.0 && started > now - 86_400.0,
        "{started}"
    );
}

#[tokio::test]
async fn the_signing_key_ages_with_the_clock() {
    let app = TestApp::spawn().await;
    app.clock.advance(3600);
    let m = Exposition::parse(&scrape(&app, &app.base).await.text().await.unwrap());
    let age = m.value("ferrid_signing_key_age_seconds", &[]).unwrap();
    assert!((3600.0..3720.0).contains(&age), "{age}");
}

#[tokio::test]
async fn metrics_bind_serves_metrics_on_a_listener_of_its_own() {
    let app = TestApp::spawn_with(TestDir::new(), Clock::system(), |c| {
        c.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
    .with_standard_client_and_user()
    .await;
    app.login("openid").await;
    // Not on the public listener...
    assert_eq!(scrape(&app, &app.base).await.status(), 404);
    // ...but on its own, counting what the public one served.
    let own = app.metrics_base.clone().expect("a metrics listener");
    assert_ne!(own, app.base);
    let res = scrape(&app, &own).await;
    assert_eq!(res.status(), 200);
    let m = Exposition::parse(&res.text().await.unwrap());
    assert_eq!(
        m.value("ferrid_logins_total", &[("outcome", "success")]),
        Some(1.0)
    );
    // The public endpoints are not on the metrics listener.
    let token = app.http.post(format!("{own}/token")).send().await.unwrap();
    assert_eq!(token.status(), 404);
    // And it stops with the server.
    drop(app.stop().await);
    assert!(
        reqwest::Client::new()
            .get(format!("{own}/metrics"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_scrapes_is_answered_and_counted() {
    let app = TestApp::spawn().await;
    let scrapes = (0..50).map(|_| scrape(&app, &app.base));
    for res in futures_util::future::join_all(scrapes).await {
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        assert!(text.ends_with("# EOF\n"));
    }
    let m = Exposition::parse(&scrape(&app, &app.base).await.text().await.unwrap());
    let scraped = m.value(
        "ferrid_http_requests_total",
        &[("route", "/metrics"), ("method", "GET"), ("status", "200")],
    );
    assert_eq!(scraped, Some(50.0));
    // None of them is still counted in flight: only this scrape.
    assert_eq!(m.value("ferrid_http_requests_in_flight", &[]), Some(1.0));
}

#[tokio::test]
async fn clients_cannot_make_new_label_values() {
    let app = TestApp::spawn().await;
    // An attacker's burst: made-up paths, methods, and a query string carrying a secret.
    let mut sent = Vec::new();
    for i in 0..40 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        sent.push(
            app.http
                .request(method, app.url(&format!("/nothing/{i}?code=secret-{i}")))
                .send(),
        );
        sent.push(app.http.get(app.url(&format!("/token/{i}"))).send());
    }
    for res in futures_util::future::join_all(sent).await {
        assert!(res.unwrap().status().is_client_error());
    }
    let text = scrape(&app, &app.base).await.text().await.unwrap();
    assert!(!text.contains("secret-"), "a query string reached /metrics");
    let m = Exposition::parse(&text);
    let routes: std::collections::BTreeSet<&str> = m
        .samples
        .iter()
        .filter(|(n, _, _)| n == "ferrid_http_requests_total")
        .map(|(_, l, _)| l["route"].as_str())
        .collect();
    assert_eq!(routes.into_iter().collect::<Vec<_>>(), ["unmatched"]);
    assert_eq!(
        m.value(
            "ferrid_http_requests_total",
            &[
                ("route", "unmatched"),
                ("method", "OTHER"),
                ("status", "404")
            ]
        ),
        Some(40.0)
    );
    assert_eq!(
        m.value(
            "ferrid_http_requests_total",
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
        ),
        Some(40.0)
    );
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_replaced_otherwise() {
    let app = TestApp::spawn().await;
    let id_of = |value: Option<String>| {
        let mut req = app.http.get(app.url("/healthz"));
        if let Some(v) = value {
            req = req.header("x-request-id", v);
        }
        async move {
            req.send().await.unwrap().headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    // A client's own id is echoed, so it can follow its request through the logs.
    assert_eq!(id_of(Some("trace-42".into())).await, "trace-42");
    // None, an empty one, or one too long to be an id: ferrid makes its own.
    for value in [None, Some(String::new()), Some("x".repeat(129))] {
        let id = id_of(value.clone()).await;
        let (prefix, n) = id
            .split_once('-')
            .unwrap_or_else(|| panic!("{value:?} -> {id}"));
        assert_eq!(prefix.len(), 16, "{value:?} -> {id}");
        assert!(n.parse::<u64>().is_ok(), "{value:?} -> {id}");
    }
}
