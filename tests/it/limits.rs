//! Listener limits: slow and idle clients are cut off, connections are capped, bodies are
//! bounded.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestApp, TestDir};

async fn spawn(max_connections: usize) -> TestApp {
    TestApp::spawn_with(TestDir::new(), ferrid::clock::Clock::system(), |c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.max_connections = max_connections;
    })
    .await
}

/// Reads until the server closes the connection; returns how long that took.
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server kept a slow client for more than {limit:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    let app = spawn(64).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: ferrid\r\n")
        .await
        .unwrap();
    // Trickle a header byte now and then, never finishing.
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"X").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), trickle).await;
    let took = closed_after(&mut slow, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(5));

    // An idle connection is closed too, before and after a request (keep-alive).
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    closed_after(&mut idle, Duration::from_secs(5)).await;
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: ferrid\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    closed_after(&mut kept, Duration::from_secs(5)).await;
    // And the server still serves.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let app = spawn(2).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let _a = TcpStream::connect(&addr).await.unwrap();
    let _b = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Both slots are held by idle clients: a third waits until the header timeout frees one.
    let start = Instant::now();
    let res = reqwest::Client::new()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "served before a slot was free"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_user_and_address_and_released() {
    let app = TestApp::spawn_with(TestDir::new(), ferrid::clock::Clock::system(), |c| {
        c.login_throttle = ferrid::oauth::throttle::ThrottlePolicy {
            free_failures: 3,
            max_delay_secs: 60,
        };
        c.trust_x_forwarded_for = true;
    })
    .await;
    use crate::support::{CLIENT, CLIENT_SECRET, PASSWORD, USER};
    app.add_client(CLIENT, Some(CLIENT_SECRET), &["password"], "openid")
        .await;
    app.add_user(USER, PASSWORD, "").await;
    let login = |user: &'static str, password: &'static str, from: &'static str| {
        let req = app
            .http
            .post(app.url("/token"))
            .basic_auth(CLIENT, Some(CLIENT_SECRET))
            .header("x-forwarded-for", format!("10.9.9.9, {from}"))
            .form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ]);
        async move { req.send().await.unwrap() }
    };
    for user in [USER, "nobody"] {
        for _ in 0..3 {
            assert_eq!(login(user, "wrong", "192.0.2.1").await.status(), 400);
        }
        // Throttled now, the right password included, and without checking it.
        let res = login(user, PASSWORD, "192.0.2.1").await;
        assert_eq!(res.status(), 429, "{user}");
        let wait: i64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    // The same user from another address is not locked out.
    assert_eq!(login(USER, PASSWORD, "192.0.2.2").await.status(), 200);
    // And the delay passes.
    app.clock.advance(61);
    assert_eq!(login(USER, PASSWORD, "192.0.2.1").await.status(), 200);
}
