//! Trust: nothing outlives a password change, a disable or a removal; no burst of guesses
//! outruns the throttle; registered redirect URIs are safe ones; tokens from the future are
//! refused; and durability seen from inside, with faults injected at the COMMITs that matter.

use std::os::unix::fs::PermissionsExt;

use ferrid::model::ScopeSet;
use ferrid::store::faults::{Fault, Point};
use ferrid::store::{AuthorizationCode, Redemption, RefreshFamily, Session};
use ferrid::tokens::opaque::sha256_hex;
use futures_util::future::join_all;
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};

use crate::support::code_flow::{
    self as authorize, Browser, RP, RP_SECRET, authorize_url, code_for, exchange, location,
    query_of,
};
use crate::support::{
    Api, CLIENT, CLIENT_SECRET, PASSWORD, Server, TestApp, TestDir, USER, at_header, ferrid_cli,
    field, hash_password, insecure_claims, kid_of, postgres_url, provision, signing_key_pem,
    stderr,
};

const NEW_PASSWORD: &str = "a new password, typed by its owner";
/// A client for password + refresh_token.
const APP: &str = "app";
const APP_SECRET: &str = "app-secret-0123456789-0123456789-0123456789";

/// The client for password + refresh_token.
fn app_client(app: &TestApp) -> Api {
    app.api.as_client(APP, APP_SECRET)
}

fn cli_ok(app: &TestApp, args: &[&str], stdin: &str) {
    let out = ferrid_cli(app.dir.path(), args, stdin);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

fn passwd(app: &TestApp, password: &str) {
    cli_ok(app, &["user", "passwd", USER], &format!("{password}\n"));
}

/// Signs in through the login page with `password`; expects the redirect with a code.
async fn sign_in(app: &TestApp, browser: &mut Browser, url: &str, password: &str) {
    let page = browser.get(url).await;
    assert_eq!(page.status(), 200, "the login form");
    let page = page.text().await.unwrap();
    let res = browser.sign_in(&app.base, &page, USER, password).await;
    assert_eq!(res.status(), 303, "signed in");
}

/// Item 1: browser sessions — and codes issued from them — end with a password change, a
/// disable (and do not come back with an enable), and a removal.
#[tokio::test]
async fn a_password_change_a_disable_or_a_removal_ends_browser_sessions_for_good() {
    let app = authorize::spawn().await;
    let (url, verifier) = authorize_url(&app, RP, &[]);
    let mut browser = Browser::new();
    code_for(&app, &mut browser, &url).await;
    assert_eq!(browser.get(&url).await.status(), 302, "single sign-on");
    // A code issued from the session before the change, not yet redeemed.
    let pending = query_of(&location(&browser.get(&url).await))["code"].clone();

    passwd(&app, NEW_PASSWORD);
    assert_eq!(
        browser.get(&url).await.status(),
        200,
        "the form again: the session ended with the password change"
    );
    let (status, body) = exchange(&app, (RP, Some(RP_SECRET)), &pending, Some(&verifier)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    sign_in(&app, &mut browser, &url, NEW_PASSWORD).await;
    assert_eq!(browser.get(&url).await.status(), 302);
    cli_ok(&app, &["user", "disable", USER], "");
    cli_ok(&app, &["user", "enable", USER], "");
    assert_eq!(
        browser.get(&url).await.status(),
        200,
        "enabling the user again does not bring the session back"
    );

    sign_in(&app, &mut browser, &url, NEW_PASSWORD).await;
    assert_eq!(browser.get(&url).await.status(), 302);
    cli_ok(&app, &["user", "remove", USER], "");
    assert_eq!(browser.get(&url).await.status(), 200, "removed: no session");
    assert!(app.store.user_by_username(USER).await.unwrap().is_none());
    // Removing again, or removing nobody, says so and changes nothing.
    let again = ferrid_cli(app.dir.path(), &["user", "remove", USER], "");
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("no user named"),
        "{}",
        stderr(&again)
    );
}

/// Item 2: user tokens of a client that does not refresh, and a client's own tokens, end
/// with a password change, a disable + enable, or their client's removal — at /userinfo and
/// /introspect alike.
#[tokio::test]
async fn tokens_without_refresh_end_with_a_password_change_a_disable_or_their_client() {
    let app = TestApp::spawn().await;
    let (status, body) = app.web().login(USER, PASSWORD, Some("openid")).await;
    assert_eq!(status, 200);
    assert!(
        body.get("refresh_token").is_none(),
        "this client does not refresh"
    );
    let first = field(&body, "access_token");
    assert!(
        insecure_claims(&first)["sid"].is_string(),
        "every user token names its session"
    );
    assert_eq!(app.userinfo(&first).await.status(), 200);
    assert_eq!(app.web().introspect(&first).await["active"], true);

    passwd(&app, NEW_PASSWORD);
    assert_eq!(app.userinfo(&first).await.status(), 401);
    assert_eq!(app.web().introspect(&first).await, json!({"active": false}));
    // A login right after the change — often within the same second — is not caught by it.
    let (status, body) = app.web().login(USER, NEW_PASSWORD, Some("openid")).await;
    assert_eq!(status, 200);
    let second = field(&body, "access_token");
    assert_eq!(app.userinfo(&second).await.status(), 200);

    let now = app.clock.now();
    assert!(app.store.set_user_disabled(USER, true, now).await.unwrap());
    assert!(app.store.set_user_disabled(USER, false, now).await.unwrap());
    assert_eq!(
        app.userinfo(&second).await.status(),
        401,
        "after disable + enable"
    );
    let (_, body) = app.web().login(USER, NEW_PASSWORD, Some("openid")).await;
    let third = field(&body, "access_token");
    assert_eq!(app.userinfo(&third).await.status(), 200);

    // A client's own token (client_credentials), seen by the resource server it names.
    let job = ferrid::model::Client {
        id: "job".into(),
        secret_hash: Some(ferrid::oauth::client_auth::hash_client_secret(APP_SECRET)),
        grant_types: vec![ferrid::model::GrantType::ClientCredentials],
        scopes: ScopeSet::parse("items:read").unwrap(),
        redirect_uris: vec![],
        audiences: vec![CLIENT.into()],
        created_at: now,
        ..Default::default()
    };
    app.store.insert_client(&job).await.unwrap();
    let res = app
        .token(
            &[("grant_type", "client_credentials")],
            Some(("job", APP_SECRET)),
        )
        .await;
    assert_eq!(res.status(), 200);
    let own = field(&res.json().await.unwrap(), "access_token");
    assert_eq!(app.web().introspect(&own).await["active"], true);
    cli_ok(&app, &["client", "remove", "job"], "");
    assert_eq!(app.web().introspect(&own).await, json!({"active": false}));

    // And the user's token, once its client is removed.
    cli_ok(&app, &["client", "remove", CLIENT], "");
    assert_eq!(app.userinfo(&third).await.status(), 401);
}

/// Items 1 and 2, the race: a login that read the user before a password change committed
/// and stored its session after it gets nothing that lives — browser session, code,
/// refresh family and the access tokens naming it.
#[tokio::test]
async fn a_login_that_raced_a_password_change_leaves_nothing_alive() {
    let app = spawn_with_refresh().await;
    // The login reads the user (and would check the password now) …
    let user = app.store.user_by_username(USER).await.unwrap().unwrap();
    // … while the owner changes it …
    let now = app.clock.now();
    let hash = hash_password(NEW_PASSWORD).await;
    assert!(app.store.set_password_hash(USER, &hash, now).await.unwrap());
    // … and then stores what the login made, under what it read.
    let session = Session {
        id: "session-of-the-login".into(),
        user_id: user.id.clone(),
        auth_time: now,
        expires_at: now + 3600,
        security_version: user.security_version,
    };
    app.store
        .insert_session(&sha256_hex("cookie"), &session, now)
        .await
        .unwrap();
    assert!(
        app.store
            .session_with_user(&sha256_hex("cookie"), now)
            .await
            .unwrap()
            .is_none(),
        "the browser session is dead"
    );
    let code = AuthorizationCode {
        client_id: RP.into(),
        user_id: user.id.clone(),
        redirect_uri: authorize::CALLBACK.into(),
        scopes: ScopeSet::parse("openid").unwrap(),
        nonce: None,
        code_challenge: None,
        auth_time: now,
        family_id: "family-of-the-code".into(),
        created_at: now,
        expires_at: now + 60,
        security_version: user.security_version,
        session_id: Some(session.id.clone()),
    };
    app.store
        .insert_code(&sha256_hex("code"), &code)
        .await
        .unwrap();
    let redeemed = app
        .store
        .redeem_code(&sha256_hex("code"), now, now + 3600)
        .await
        .unwrap();
    assert!(
        matches!(redeemed, Redemption::Unknown),
        "the code is refused"
    );
    let family = RefreshFamily {
        id: "family-of-the-login".into(),
        client_id: APP.into(),
        user_id: user.id.clone(),
        scopes: ScopeSet::parse("openid").unwrap(),
        auth_time: now,
        created_at: now,
        expires_at: now + 3600,
        revoked_at: None,
        security_version: user.security_version,
    };
    app.store
        .insert_refresh_family(&family, &sha256_hex("refresh-token"))
        .await
        .unwrap();
    assert_eq!(
        app_client(&app).introspect("refresh-token").await,
        json!({"active": false})
    );
    let (status, _) = app_client(&app).refresh("refresh-token", None).await;
    assert_eq!(status, 400, "the refresh token is refused");
    let state = app
        .store
        .token_state(&user.id, APP, "a-jti", Some(&family.id))
        .await
        .unwrap();
    assert_eq!(
        state.session_expires_at, None,
        "its access tokens are refused"
    );
}

fn checked_and_refused(statuses: &[u16], checked_status: u16) -> (usize, usize) {
    let checked = statuses.iter().filter(|s| **s == checked_status).count();
    let refused = statuses.iter().filter(|s| matches!(s, 429 | 503)).count();
    assert_eq!(checked + refused, statuses.len(), "{statuses:?}");
    (checked, refused)
}

/// Forty concurrent password grants for the standard user with wrong passwords: statuses.
async fn wrong_guesses(app: &TestApp, round: usize) -> Vec<u16> {
    join_all((0..40).map(|i| async move {
        let password = format!("wrong guess {round}-{i}");
        let form = [
            ("grant_type", "password"),
            ("username", USER),
            ("password", password.as_str()),
        ];
        let res = app.token(&form, Some((CLIENT, CLIENT_SECRET))).await;
        res.status().as_u16()
    }))
    .await
}

/// Item 3: forty concurrent wrong guesses for one user from one address get the five free
/// password checks and no more — at the token endpoint and on the login form (which needs
/// no client secret) — and after the delay, one more.
#[tokio::test]
async fn a_burst_of_wrong_guesses_gets_no_more_checks_than_a_sequence() {
    let app = TestApp::spawn().await;
    let statuses = wrong_guesses(&app, 0).await;
    assert_eq!(checked_and_refused(&statuses, 400), (5, 35), "{statuses:?}");
    app.clock.advance(3);
    let statuses = wrong_guesses(&app, 1).await;
    assert_eq!(checked_and_refused(&statuses, 400), (1, 39), "{statuses:?}");

    // The login form, through its own throttle keys (another user).
    let app = authorize::spawn().await;
    app.add_user("grace", PASSWORD, "").await;
    let (url, _) = authorize_url(&app, RP, &[]);
    let mut browser = Browser::new();
    let page = browser.get(&url).await.text().await.unwrap();
    let cookie = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let form = crate::support::code_flow::hidden_fields(&page);
    let posts = (0..40).map(|i| {
        let mut form = form.clone();
        form.push(("username".into(), "grace".into()));
        form.push(("password".into(), format!("wrong guess {i}")));
        let request = app
            .http
            .post(app.url("/login"))
            .header("cookie", cookie.clone())
            .form(&form);
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = join_all(posts).await;
    assert_eq!(
        checked_and_refused(&statuses, 200),
        (5, 35),
        "200 is the form again with 'incorrect': {statuses:?}"
    );
}

/// Item 4: counters are fixed-size keyed hashes, whatever the username's length.
#[tokio::test]
async fn huge_usernames_cost_the_throttle_a_fixed_size_key() {
    let app = TestApp::spawn().await;
    let long = "u".repeat(60_000);
    let guesses = (0..30).map(|i| {
        let username = format!("{long}{i}");
        let app = &app;
        async move {
            let form = [
                ("grant_type", "password"),
                ("username", username.as_str()),
                ("password", "wrong"),
            ];
            app.token(&form, Some((CLIENT, CLIENT_SECRET)))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = join_all(guesses).await;
    // Twenty free failures per address, then the address is throttled.
    assert_eq!(
        checked_and_refused(&statuses, 400),
        (20, 10),
        "{statuses:?}"
    );
    assert!(app.throttle.len() <= 1 + 2 * 20, "{}", app.throttle.len());
    assert!(
        app.throttle.memory_bytes() < 8 * 1024,
        "1.8 MB of usernames cost {} bytes",
        app.throttle.memory_bytes()
    );
}

/// Item 5: two replicas on one PostgreSQL database share the free failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_free_failures() {
    if postgres_url().is_none() {
        eprintln!("PostgreSQL-only: runs when FERRID_TEST_DATABASE is set (as .ci/run does)");
        return;
    }
    let dir = TestDir::new();
    let secret = provision(
        dir.path(),
        "app",
        &["--grant-type", "password", "--scope", "openid"],
        &[("ada", PASSWORD, &[])],
    );
    let a = Server::start(dir.path(), &[], &[]);
    let b = Server::start(dir.path(), &[], &[]);
    let http = reqwest::Client::new();
    let guess = |base: String, password: &'static str| {
        let (http, secret) = (http.clone(), secret.clone());
        async move {
            http.post(format!("{base}/token"))
                .basic_auth("app", Some(secret))
                .form(&[
                    ("grant_type", "password"),
                    ("username", "ada"),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Three wrong guesses at A, two at B: the five free failures, between them.
    for base in [&a.base, &a.base, &a.base, &b.base, &b.base] {
        assert_eq!(guess(base.clone(), "wrong").await, 400);
    }
    // The sixth is throttled at either replica — even with the right password.
    assert_eq!(guess(a.base.clone(), "wrong").await, 429);
    assert_eq!(guess(b.base.clone(), PASSWORD).await, 429);
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Item 6: the SQLite database and its -wal/-shm are created 0600; an existing file that
/// others can read is closed at start, with a log line.
#[tokio::test]
async fn the_sqlite_database_is_private_and_an_open_one_is_closed_at_start() {
    let dir = TestDir::sqlite();
    let db = dir.path().join("ferrid.db");
    let files = [
        db.clone(),
        db.with_extension("db-wal"),
        db.with_extension("db-shm"),
    ];
    let server = Server::start(dir.path(), &[], &[]);
    // A write, so the server has its -wal and -shm.
    let out = ferrid_cli(
        dir.path(),
        &["user", "add", "ada"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    drop(server);
    for file in files.iter().filter(|f| f.exists()) {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let server = Server::start(dir.path(), &[], &[]);
    for file in files.iter().filter(|f| f.exists()) {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert!(
        server.log().contains("readable by other accounts"),
        "{}",
        server.log()
    );
}

/// Item 7: redirect URIs are https, http on loopback, or a native app's private-use scheme
/// with a dot; anything else is refused with the rule in words (and a development flag that
/// says what it is lets plain http through).
#[tokio::test]
async fn only_safe_redirect_uris_can_be_registered() {
    let app = TestApp::spawn_empty().await;
    let add = |id: &str, uri: &str, extra: &[&str]| {
        let mut args = vec![
            "client",
            "add",
            id,
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            uri,
        ];
        args.extend_from_slice(extra);
        ferrid_cli(app.dir.path(), &args, "")
    };
    for (n, uri) in [
        "https://app.example/callback",
        "http://127.0.0.1:8000/callback",
        "http://[::1]/callback",
        "http://localhost:3000/callback",
        "com.example.app:/oauth2redirect",
    ]
    .iter()
    .enumerate()
    {
        let out = add(&format!("good-{n}"), uri, &[]);
        assert!(out.status.success(), "{uri}: {}", stderr(&out));
    }
    for (n, (uri, says)) in [
        ("javascript:alert(document.cookie)", "private-use scheme"),
        (
            "data:text/html,<script>alert(1)</script>",
            "private-use scheme",
        ),
        ("myapp:/callback", "with a dot"),
        ("http://app.example/callback", "loopback"),
        ("https://app.example/callback#frag", "fragment"),
    ]
    .iter()
    .enumerate()
    {
        let out = add(&format!("bad-{n}"), uri, &[]);
        assert!(!out.status.success(), "{uri} was accepted");
        assert!(stderr(&out).contains(says), "{uri}: {}", stderr(&out));
    }
    assert!(app.store.client("bad-0").await.unwrap().is_none());
    let out = add(
        "dev",
        "http://app.example/callback",
        &["--dev-allow-http-redirect-uri"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = add(
        "dev-js",
        "javascript:alert(1)",
        &["--dev-allow-http-redirect-uri"],
    );
    assert!(
        !out.status.success(),
        "the development flag is for http only"
    );

    // A grant-type list that parses to nothing registers nothing.
    let out = ferrid_cli(
        app.dir.path(),
        &["client", "add", "no-grant", "--public", "--grant-type", ","],
        "",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at least one --grant-type"),
        "{}",
        stderr(&out)
    );

    // One stored by an earlier version, which did not check, is never redirected to.
    let legacy = ferrid::model::Client {
        id: "legacy".into(),
        secret_hash: None,
        grant_types: vec![ferrid::model::GrantType::AuthorizationCode],
        scopes: ScopeSet::parse("openid").unwrap(),
        redirect_uris: vec!["javascript:alert(document.cookie)".into()],
        audiences: vec![],
        created_at: 0,
        ..Default::default()
    };
    app.store.insert_client(&legacy).await.unwrap();
    let url = url::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", "legacy"),
            ("redirect_uri", "javascript:alert(document.cookie)"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
            ("prompt", "none"),
        ],
    )
    .unwrap();
    let res = app.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    assert!(res.text().await.unwrap().contains("not a safe one"));
}

/// Item 8: ferrid refuses its own tokens whose `iat` or `nbf` is ahead of its clock beyond
/// the skew; and user tokens without a session (minted before every token named one) are
/// judged by `iat` against the user's last password change.
#[tokio::test]
async fn tokens_from_the_future_and_tokens_without_a_session_are_judged_by_time() {
    let app = TestApp::spawn().await;
    let real = app.login("openid").await;
    let real = field(&real, "access_token");
    let key = EncodingKey::from_rsa_pem(&signing_key_pem(&app)).unwrap();
    let kid = kid_of(&real);
    let sign = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = insecure_claims(&real).as_object().unwrap().clone();
        claims.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        edit(&mut claims);
        jsonwebtoken::encode(&at_header(&kid), &claims, &key).unwrap()
    };
    let now = app.clock.now();
    let skew = ferrid::tokens::CLOCK_SKEW_SECS;
    // (what, claim set to a time, that time, expected /userinfo status)
    let cases = [
        ("iat within the skew", "iat", now + skew, 200),
        ("iat from the future", "iat", now + skew + 60, 401),
        ("nbf from the future", "nbf", now + skew + 60, 401),
        ("nbf passed", "nbf", now - 1, 200),
    ];
    for (what, claim, at, status) in cases {
        let token = sign(&|c| {
            c.insert(claim.into(), json!(at));
        });
        assert_eq!(app.userinfo(&token).await.status(), status, "{what}");
        let active = app.web().introspect(&token).await["active"] == true;
        assert_eq!(active, status == 200, "{what}");
    }

    // Without a session: live until the user's password changes, then refused.
    let legacy = sign(&|c| {
        c.remove("sid");
        c.insert("iat".into(), json!(now));
    });
    assert_eq!(app.userinfo(&legacy).await.status(), 200);
    let hash = hash_password(NEW_PASSWORD).await;
    assert!(app.store.set_password_hash(USER, &hash, now).await.unwrap());
    assert_eq!(app.userinfo(&legacy).await.status(), 401);
    // One issued after the change lives — until a disable (and enable).
    let later = sign(&|c| {
        c.remove("sid");
        c.insert("iat".into(), json!(now + 1));
    });
    assert_eq!(app.userinfo(&later).await.status(), 200);
    assert!(
        app.store
            .set_user_disabled(USER, true, now + 1)
            .await
            .unwrap()
    );
    assert!(
        app.store
            .set_user_disabled(USER, false, now + 1)
            .await
            .unwrap()
    );
    assert_eq!(app.userinfo(&later).await.status(), 401);

    // A client's own token is refused once its client is gone, and stays refused when a
    // client of the same id is registered again after it was issued.
    let job = |created_at: i64| ferrid::model::Client {
        id: "job".into(),
        secret_hash: Some(ferrid::oauth::client_auth::hash_client_secret(APP_SECRET)),
        grant_types: vec![ferrid::model::GrantType::ClientCredentials],
        scopes: ScopeSet::parse("items:read").unwrap(),
        redirect_uris: vec![],
        audiences: vec![CLIENT.into()],
        created_at,
        ..Default::default()
    };
    let own = sign(&|c| {
        c.remove("sid");
        c.remove("auth_time");
        c.insert("sub".into(), json!("job"));
        c.insert("client_id".into(), json!("job"));
        c.insert("aud".into(), json!(CLIENT));
        c.insert("scope".into(), json!("items:read"));
        c.insert("iat".into(), json!(now - 5));
    });
    app.store.insert_client(&job(now - 10)).await.unwrap();
    assert_eq!(app.web().introspect(&own).await["active"], true);
    assert!(app.store.delete_client("job").await.unwrap());
    assert_eq!(
        app.web().introspect(&own).await["active"],
        false,
        "client gone"
    );
    app.store.insert_client(&job(now)).await.unwrap();
    assert_eq!(
        app.web().introspect(&own).await["active"],
        false,
        "another client of the same id"
    );
}

/// An app with a client for password + refresh_token, and the code-flow clients.
async fn spawn_with_refresh() -> TestApp {
    let app = authorize::spawn().await;
    app.add_client(
        APP,
        Some(APP_SECRET),
        &["password", "refresh_token"],
        "openid",
    )
    .await;
    app
}

/// Signs in through the login page for a code, arms `fault` at its redemption, and exchanges
/// the code twice: the two statuses.
#[cfg(debug_assertions)]
async fn exchange_twice_with(app: &TestApp, fault: Fault) -> (u16, u16) {
    let (url, verifier) = authorize_url(app, RP, &[]);
    let mut browser = Browser::new();
    let code = code_for(app, &mut browser, &url).await;
    app.store.faults().arm(Point::CodeRedemption, fault);
    let (first, _) = exchange(app, (RP, Some(RP_SECRET)), &code, Some(&verifier)).await;
    let (second, _) = exchange(app, (RP, Some(RP_SECRET)), &code, Some(&verifier)).await;
    (first, second)
}

/// Item 9: a COMMIT that fails is never answered as a success, and nothing of it is kept —
/// for a refresh rotation, a code redemption and a revocation.
#[cfg(debug_assertions)] // faults can be armed in debug builds only
#[tokio::test]
async fn a_failed_commit_is_never_answered_as_a_success() {
    let app = spawn_with_refresh().await;
    let faults = app.store.faults();
    let (_, body) = app_client(&app).login(USER, PASSWORD, Some("openid")).await;
    let first = field(&body, "refresh_token");

    faults.arm(Point::Rotation, Fault::FailCommit);
    let (status, body) = app_client(&app).refresh(&first, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    let (status, body) = app_client(&app).refresh(&first, None).await;
    assert_eq!(
        status, 200,
        "nothing was committed, so the token is still good"
    );
    let second = field(&body, "refresh_token");

    faults.arm(Point::Revocation, Fault::FailCommit);
    assert_eq!(app_client(&app).revoke(&second).await.status(), 503);
    let (status, _) = app_client(&app).refresh(&second, None).await;
    assert_eq!(status, 200, "the revocation was not committed");

    assert_eq!(
        exchange_twice_with(&app, Fault::FailCommit).await,
        (503, 200),
        "the code was not spent"
    );
}

/// Item 9: a change committed whose answer was lost (the connection dropped just after the
/// COMMIT) is answered 503, never 200, and then behaves as the README says: the spent
/// refresh token is a replay (its family is revoked: the client logs in again), the spent
/// code too, and the revocation stands.
#[cfg(debug_assertions)] // faults can be armed in debug builds only
#[tokio::test]
async fn a_commit_whose_answer_was_lost_behaves_as_documented() {
    let app = spawn_with_refresh().await;
    let faults = app.store.faults();
    let (_, body) = app_client(&app).login(USER, PASSWORD, Some("openid")).await;
    let token = field(&body, "refresh_token");
    let access_token = field(&body, "access_token");

    faults.arm(Point::Rotation, Fault::LoseConnectionAfterCommit);
    assert_eq!(app_client(&app).refresh(&token, None).await.0, 503);
    let (status, body) = app_client(&app).refresh(&token, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        app.userinfo(&access_token).await.status(),
        401,
        "the replay revoked the session"
    );

    let (_, body) = app_client(&app).login(USER, PASSWORD, Some("openid")).await;
    let token = field(&body, "refresh_token");
    faults.arm(Point::Revocation, Fault::LoseConnectionAfterCommit);
    assert_eq!(app_client(&app).revoke(&token).await.status(), 503);
    assert_eq!(
        app_client(&app).refresh(&token, None).await.0,
        400,
        "the revocation was committed"
    );
    assert_eq!(
        app_client(&app).revoke(&token).await.status(),
        200,
        "and a retry is answered"
    );

    assert_eq!(
        exchange_twice_with(&app, Fault::LoseConnectionAfterCommit).await,
        (503, 400),
        "the code was spent"
    );
}

/// Item 9: SQLite runs in WAL with synchronous=FULL (2), so a commit that was answered has
/// been written through to the disk: it survives a power loss, not only a crash.
#[tokio::test]
async fn sqlite_runs_in_wal_with_full_synchronous_commits() {
    let app = TestApp::spawn().await;
    match app.store.sqlite_durability().await.unwrap() {
        Some((journal, synchronous)) => {
            assert_eq!(journal, "wal");
            assert_eq!(synchronous, 2, "FULL");
        }
        None => assert!(app.dir.is_postgres()),
    }
}
