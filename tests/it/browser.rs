//! A real headless browser (Debian's chromium, driven through chromedriver with the
//! fantoccini WebDriver client) signs in on the login page and lands on the relying party
//! with a code that exchanges for tokens. It saves a screenshot of the login page.

use serde_json::Value;

use crate::support::chrome::{sign_in, start_browser, wait_for_page};
use crate::support::code_flow::{RP, RP_SECRET, query_of};
use crate::support::receiver::Receiver;
use crate::support::{PASSWORD, USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_browser_signs_in_on_the_login_page() {
    let app = crate::support::code_flow::spawn().await;
    let rp = Receiver::start().await;
    let callback = rp.url("/callback");
    let mut client = app.store.client(RP).await.unwrap().unwrap();
    client.redirect_uris.push(callback.clone());
    assert!(app.store.update_client(&client).await.unwrap());
    let (_profile, _driver, browser) = start_browser().await;

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

    sign_in(&browser, PASSWORD).await;
    let landed = wait_for_page(&browser, "Relying party", &callback).await;
    browser.close().await.unwrap();
    let q = query_of(&landed);
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
