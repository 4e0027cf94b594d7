//! A real headless browser (Debian's chromium, driven through chromedriver with the
//! fantoccini WebDriver client) signs in on the login page and lands on the relying party
//! with a code that exchanges for tokens. It saves a screenshot of the login page.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::code_flow::{RP, RP_SECRET, query_of};
use crate::support::{PASSWORD, USER};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A relying party's callback: answers every request with a small page.
async fn callback_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let body = "<!doctype html><title>Signed in</title><p>Signed in.</p>";
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(res.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/callback")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_browser_signs_in_on_the_login_page() {
    let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("this test needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver (.ci/run does)");
    let app = crate::support::code_flow::spawn().await;
    let callback = callback_server().await;
    let mut client = app.store.client(RP).await.unwrap().unwrap();
    client.redirect_uris.push(callback.clone());
    app.store.delete_client(RP).await.unwrap();
    app.store.insert_client(&client).await.unwrap();

    let port = free_port();
    let _driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=480,800",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let start = Instant::now();
    let browser = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if start.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start the browser: {e}"),
        }
    };

    let verifier = "a-browser-verifier-of-at-least-43-characters-0123456789";
    let challenge = {
        use base64::Engine;
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
    };
    let url = url::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", RP),
            ("redirect_uri", callback.as_str()),
            ("scope", "openid profile email"),
            ("state", "browser-state"),
            ("nonce", "browser-nonce"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    browser.goto(url.as_str()).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "Sign in");
    let shot = browser.screenshot().await.unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("login-page.png");
    std::fs::write(&path, &shot).unwrap();
    assert!(shot.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!("login page screenshot: {}", path.display());

    browser
        .find(Locator::Css("#username"))
        .await
        .unwrap()
        .send_keys(USER)
        .await
        .unwrap();
    browser
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let start = Instant::now();
    let landed = loop {
        let current = browser.current_url().await.unwrap();
        if current.as_str().starts_with(&callback) {
            break current;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never reached the callback; at {current}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    browser.close().await.unwrap();
    let q = query_of(landed.as_str());
    assert_eq!(q["state"], "browser-state");

    let res = app
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", q["code"].as_str()),
                ("redirect_uri", callback.as_str()),
                ("code_verifier", verifier),
            ],
            Some((RP, RP_SECRET)),
        )
        .await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    let id = crate::support::insecure_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "browser-nonce");
    assert_eq!(id["preferred_username"], USER);
}
