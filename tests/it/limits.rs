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

    // An idle connection is closed too.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    closed_after(&mut idle, Duration::from_secs(5)).await;
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
