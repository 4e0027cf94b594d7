//! Signing keys: rotation, retirement, reload (interval and SIGHUP), and restarts.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Server, TestApp, ferrid_cli, field, kid_of, kids, stderr, stdout};

#[tokio::test]
async fn rotation_reaches_a_running_server_and_old_tokens_keep_working() {
    let app = TestApp::spawn().await;
    let old_token = field(&app.login("openid").await, "access_token");
    let old_kid = kid_of(&old_token);
    let jwks_before = app.http.get(app.url("/jwks.json")).send().await.unwrap();
    let etag_before = jwks_before.headers()["etag"].to_str().unwrap().to_owned();

    // The immediate switch (a compromised key); staged rotation is in `rotation.rs`.
    let out = ferrid_cli(app.dir.path(), &["keys", "rotate", "--now"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let new_kid = stdout(&out).split_whitespace().nth(3).unwrap().to_owned();
    assert_ne!(new_kid, old_kid);

    // The running server picks it up within 10 s (the contract), without a restart.
    let seen = app
        .eventually(Duration::from_secs(10), || async {
            kids(&app.get_json("/jwks.json").await).len() == 2
        })
        .await;
    assert!(seen, "rotation not picked up");
    let listed = kids(&app.get_json("/jwks.json").await);
    assert!(listed.contains(&old_kid) && listed.contains(&new_kid));
    let jwks_after = app
        .http
        .get(app.url("/jwks.json"))
        .header("if-none-match", &etag_before)
        .send()
        .await
        .unwrap();
    assert_eq!(jwks_after.status(), 200, "a new key set has a new ETag");

    let new_token = field(&app.login("openid").await, "access_token");
    assert_eq!(kid_of(&new_token), new_kid);
    assert_eq!(
        app.userinfo(&old_token).await.status(),
        200,
        "old key still in the JWKS"
    );
    assert_eq!(app.userinfo(&new_token).await.status(), 200);

    // `keys list` marks the signing key.
    let out = ferrid_cli(app.dir.path(), &["keys", "list"], "");
    let list = stdout(&out);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&new_kid) && l.contains("signing")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with(&old_kid) && l.contains("verify-only")),
        "{list}"
    );

    // The signing key cannot be retired. (Kids may start with `-`; test both kinds of
    // argument passing.)
    let out = ferrid_cli(app.dir.path(), &["keys", "retire", &new_kid], "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("rotate"),
        "says what to do: {}",
        stderr(&out)
    );

    // Retiring the old key removes it, and the tokens it signed stop working.
    let out = ferrid_cli(app.dir.path(), &["keys", "retire", &old_kid], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let gone = app
        .eventually(Duration::from_secs(10), || async {
            kids(&app.get_json("/jwks.json").await) == [new_kid.clone()]
        })
        .await;
    assert!(gone, "retirement not picked up");
    assert_eq!(app.userinfo(&old_token).await.status(), 401);
    assert_eq!(app.userinfo(&new_token).await.status(), 200);
}

#[tokio::test]
async fn sighup_reloads_the_keys_at_once() {
    let dir = crate::support::TestDir::new();
    let server = Server::start(dir.path(), &[], &[]);
    let http = reqwest::Client::new();
    let jwks = |http: reqwest::Client, url: String| async move {
        http.get(url)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(
        kids(&jwks(http.clone(), server.url("/jwks.json")).await).len(),
        1
    );
    let out = ferrid_cli(dir.path(), &["keys", "rotate"], "");
    assert!(out.status.success());
    server.signal("HUP");
    let start = std::time::Instant::now();
    while kids(&jwks(http.clone(), server.url("/jwks.json")).await).len() != 2 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "SIGHUP did not reload the keys"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.stop(), "clean exit on SIGTERM");
}

#[tokio::test]
async fn keys_and_data_survive_a_restart() {
    // A restart keeps its issuer (here fixed; by default it is the --bind address, which a
    // port-0 test server would change).
    let issuer = |c: &mut ferrid::config::ServeConfig| c.issuer = Some("http://ferrid.test".into());
    let app = TestApp::spawn_with(
        crate::support::TestDir::new(),
        ferrid::clock::Clock::system(),
        issuer,
    )
    .await;
    app.add_client(
        crate::support::CLIENT,
        Some(crate::support::CLIENT_SECRET),
        &["password"],
        "openid profile",
    )
    .await;
    app.add_user(crate::support::USER, crate::support::PASSWORD, "")
        .await;
    let token = field(&app.login("openid profile").await, "access_token");
    let jwks = app.get_json("/jwks.json").await;
    let dir = app.stop().await;

    let app = TestApp::spawn_with(dir, ferrid::clock::Clock::system(), issuer).await;
    assert_eq!(
        app.get_json("/jwks.json").await,
        jwks,
        "no new key on restart"
    );
    let res = app.userinfo(&token).await;
    assert_eq!(
        res.status(),
        200,
        "a token from before the restart still works"
    );
    let info: Value = res.json().await.unwrap();
    assert_eq!(info["preferred_username"], "ada");
    app.login("openid").await;
}
