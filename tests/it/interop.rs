//! What relying parties nobody here wrote need (Apache mod_auth_openidc, Django, Express,
//! ASP.NET Core): authorization requests sent by POST, scope values ferrid does not define,
//! users and clients an admin can change, consent for third-party apps, post-logout
//! redirects of their own, back-channel logout, and the form-post response mode. The pages
//! a user clicks through run in headless Chromium; the rest is plain HTTP.

use std::collections::HashMap;
use std::time::Duration;

use fantoccini::Locator;
use serde_json::Value;

use crate::support::chrome::{PATIENCE, sign_in, start_browser, wait_for_page};
use crate::support::code_flow::{
    Browser, CALLBACK, RP, RP_SECRET, SIGNED_OUT, authorize_url, code_for, exchange, hidden_fields,
    location, query_of, spawn,
};
use crate::support::receiver::Receiver;
use crate::support::{
    PASSWORD, TestApp, USER, ferrid_cli_async, insecure_claims, kid_of, stderr, stdout,
};

/// `ferrid ARGS…` on the app's database, off the runtime's workers (the server runs on them).
async fn cli(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    ferrid_cli_async(app.dir.path(), args, stdin).await
}

async fn cli_ok(app: &TestApp, args: &[&str], stdin: &str) -> String {
    let out = cli(app, args, stdin).await;
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// `ferrid client add ID ARGS… --json` on a running app; returns the secret it printed.
async fn add_client(app: &TestApp, id: &str, args: &[&str]) -> String {
    let mut all = vec!["client", "add", id, "--json"];
    all.extend_from_slice(args);
    let printed: Value = serde_json::from_str(&cli_ok(app, &all, "").await).unwrap();
    printed["client_secret"]
        .as_str()
        .expect("a secret")
        .to_owned()
}

/// [`add_client`] for the code flow: `--grant-type authorization_code`, the redirect URI and
/// the scopes, then `extra` flags.
async fn add_code_client(
    app: &TestApp,
    id: &str,
    redirect: &str,
    scopes: &[&str],
    extra: &[&str],
) -> String {
    let mut args = vec![
        "--grant-type",
        "authorization_code",
        "--redirect-uri",
        redirect,
    ];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    args.extend_from_slice(extra);
    add_client(app, id, &args).await
}

fn params_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

// 1. OIDC Core §3.1.2.1: the authorization endpoint "MUST support the use of the HTTP GET
//    and POST methods".
#[tokio::test]
async fn an_authorization_request_sent_by_post_behaves_like_the_get() {
    let app = spawn().await;
    let mut browser = Browser::new();
    let (url, verifier) = authorize_url(&app, RP, &[]);
    let form = params_of(&url);
    // No session cookie: a cross-site POST would not carry one (SameSite=Lax) even if the
    // browser were signed in, so the request continues as the GET, which would.
    let res = browser.post(&app.url("/authorize"), &form).await;
    assert_eq!(res.status(), 303);
    let as_get = location(&res);
    assert!(as_get.starts_with(&app.url("/authorize?")), "{as_get}");
    let mut carried = params_of(&as_get);
    let mut sent = form.clone();
    carried.sort();
    sent.sort();
    assert_eq!(carried, sent, "every parameter, unchanged");
    let page = browser.get(&as_get).await.text().await.unwrap();
    assert!(page.contains("action=\"login\""), "{page}");
    let res = browser.sign_in(&app.base, &page, USER, PASSWORD).await;
    assert_eq!(res.status(), 303);
    let code = query_of(&location(&res))["code"].clone();
    let (status, tokens) = exchange(&app, (RP, Some(RP_SECRET)), &code, Some(&verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    // Signed in: straight back with a code, 303 so the browser follows with a GET.
    let res = browser.post(&app.url("/authorize"), &form).await;
    assert_eq!(res.status(), 303);
    assert!(query_of(&location(&res)).contains_key("code"));
    // Errors go back to the client as they do for a GET.
    let mut bad = form.clone();
    bad.retain(|(k, _)| k != "scope");
    bad.push(("scope".into(), "openid items:write".into()));
    let res = browser.post(&app.url("/authorize"), &bad).await;
    assert_eq!(res.status(), 303);
    let q = query_of(&location(&res));
    assert!(location(&res).starts_with(CALLBACK));
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("invalid_scope", "st4te")
    );
    // A body that is not a form, or too large, gets a page a person can read.
    let http = reqwest::Client::new();
    for (body, content_type, status) in [
        (
            "{\"client_id\": \"webapp\"}".to_owned(),
            "application/json",
            400,
        ),
        (
            "a".repeat(100_000),
            "application/x-www-form-urlencoded",
            413,
        ),
    ] {
        let res = http
            .post(app.url("/authorize"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    // The login form is not the authorization endpoint: a password posted there is not
    // checked (the form has its own path and CSRF token).
    let mut with_password = form.clone();
    with_password.push(("username".into(), USER.into()));
    with_password.push(("password".into(), "wrong".into()));
    let res = browser.post(&app.url("/authorize"), &with_password).await;
    assert_eq!(res.status(), 303);
    assert!(
        query_of(&location(&res)).contains_key("code"),
        "signed in as before"
    );
}

// 2. OIDC Core §3.1.2.1: scope values not understood SHOULD be ignored; RFC 6749 §3.3.
#[tokio::test]
async fn scope_values_ferrid_does_not_define_are_ignored_and_the_grant_says_so() {
    let app = spawn().await;
    let mut browser = Browser::new();
    // RP may have openid profile email items:read; phone, address and groups are defined
    // nowhere; offline_access is an OIDC scope RP is not registered for.
    let asked = "openid profile phone address groups offline_access";
    let (url, verifier) = authorize_url(&app, RP, &[("scope", asked)]);
    let code = code_for(&app, &mut browser, &url).await;
    let (status, tokens) = exchange(&app, (RP, Some(RP_SECRET)), &code, Some(&verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "openid profile");
    assert!(tokens.get("refresh_token").is_some(), "RP may refresh");
    let claims = insecure_claims(tokens["id_token"].as_str().unwrap());
    assert!(claims.get("phone_number").is_none() && claims.get("address").is_none());
    // The same at the token endpoint: a refresh asking for more than was granted is still
    // refused (RFC 6749 §6), unknown values are not "more".
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let rp = app.api.as_client(RP, RP_SECRET);
    let (status, refreshed) = rp.refresh(refresh, Some("openid groups")).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["scope"], "openid");
    let (status, wider) = rp
        .refresh(
            refreshed["refresh_token"].as_str().unwrap(),
            Some("openid email"),
        )
        .await;
    assert_eq!(
        (status, wider["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    // A user's permission the user does not hold is still refused (items:read is RP's,
    // and ada holds it; items:write is the standard client's, not RP's).
    let (url, _) = authorize_url(&app, RP, &[("scope", "openid items:write")]);
    let res = browser.get(&url).await;
    assert_eq!(query_of(&location(&res))["error"], "invalid_scope");
}

// 3. email_verified can be set at creation, import and later.
#[tokio::test]
async fn users_are_updated_and_marked_verified_from_the_command_line() {
    let app = TestApp::spawn().await;
    let password = "carol's long password\n";
    cli_ok(
        &app,
        &[
            "user",
            "add",
            "carol",
            "--email",
            "carol@example.com",
            "--email-verified",
        ],
        password,
    )
    .await;
    let web = app.web();
    let email_claims = |body: &Value| {
        let c = insecure_claims(body["id_token"].as_str().unwrap());
        (c["email_verified"].clone(), c.get("name").cloned())
    };
    let (_, body) = web
        .login("carol", password.trim(), Some("openid email profile"))
        .await;
    assert_eq!(email_claims(&body), (Value::Bool(true), None));

    cli_ok(
        &app,
        &[
            "user",
            "update",
            "carol",
            "--no-email-verified",
            "--name",
            "Carol Example",
            "--scope",
            "items:write",
        ],
        "",
    )
    .await;
    let (_, body) = web
        .login(
            "carol",
            password.trim(),
            Some("openid email profile items:write"),
        )
        .await;
    assert_eq!(
        email_claims(&body),
        (Value::Bool(false), Some(Value::from("Carol Example")))
    );
    assert_eq!(body["scope"], "email items:write openid profile");
    // A new address is unverified unless said otherwise (a verified claim is trusted by
    // relying parties to be the user's).
    cli_ok(&app, &["user", "update", "carol", "--email-verified"], "").await;
    cli_ok(
        &app,
        &["user", "update", "carol", "--email", "other@example.com"],
        "",
    )
    .await;
    let carol = app.store.user_by_username("carol").await.unwrap().unwrap();
    assert!(!carol.email_verified, "a changed address is unverified");
    cli_ok(
        &app,
        &[
            "user",
            "update",
            "carol",
            "--email",
            "carol@example.com",
            "--email-verified",
        ],
        "",
    )
    .await;
    // A list that is given replaces the stored one.
    cli_ok(
        &app,
        &["user", "update", "carol", "--scope", "items:read"],
        "",
    )
    .await;
    let carol = app.store.user_by_username("carol").await.unwrap().unwrap();
    assert_eq!(carol.scopes.to_string(), "items:read");
    assert_eq!(carol.email.as_deref(), Some("carol@example.com"), "kept");
    for (args, why) in [
        (vec!["user", "update", "carol"], "nothing to change"),
        (
            vec!["user", "update", "nobody", "--name", "N"],
            "no user named",
        ),
        (
            vec![
                "user",
                "update",
                "carol",
                "--email-verified",
                "--no-email-verified",
            ],
            "cannot be used with",
        ),
    ] {
        let out = cli(&app, &args, "").await;
        assert!(!out.status.success());
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }

    // Import: the file's email_verified wins; --email-verified is the default for the rest.
    let hash = bcrypt::hash("secret", 4).unwrap();
    let file = app.dir.path().join("users.json");
    let users = serde_json::json!({
        "dave": {"username": "dave", "hashed_password": hash, "email": "d@example.com"},
        "erin": {"username": "erin", "hashed_password": hash, "email": "e@example.com",
                 "email_verified": false},
    });
    std::fs::write(&file, users.to_string()).unwrap();
    let path = file.display().to_string();
    cli_ok(&app, &["user", "import", &path, "--email-verified"], "").await;
    let verified = |name: &'static str| {
        let store = app.store.clone();
        async move {
            store
                .user_by_username(name)
                .await
                .unwrap()
                .unwrap()
                .email_verified
        }
    };
    assert!(verified("dave").await);
    assert!(!verified("erin").await);
}

// 4. A client changes without losing its tokens; its secret rotates; a resource server
//    needs no grant.
#[tokio::test]
async fn clients_are_updated_and_rotate_secrets_without_ending_their_tokens() {
    let app = TestApp::spawn().await;
    let secret = add_client(
        &app,
        "shop",
        &[
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid",
            "--name",
            "The Shop",
        ],
    )
    .await;
    let shop = app.api.as_client("shop", &secret);
    let (status, first) = shop.login(USER, PASSWORD, Some("openid profile")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["scope"], "openid", "profile is not the shop's");
    let listed = cli_ok(&app, &["client", "list"], "").await;
    assert!(listed.contains("name=\"The Shop\""), "{listed}");

    cli_ok(
        &app,
        &[
            "client", "update", "shop", "--scope", "openid", "--scope", "profile",
        ],
        "",
    )
    .await;
    let (status, second) = shop.login(USER, PASSWORD, Some("openid profile")).await;
    assert_eq!(
        (status, second["scope"].as_str()),
        (200, Some("openid profile"))
    );
    // The refresh token from before the update still works.
    let (status, refreshed) = shop
        .refresh(first["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, 200, "{refreshed}");

    let rotated: Value = serde_json::from_str(
        &cli_ok(&app, &["client", "rotate-secret", "shop", "--json"], "").await,
    )
    .unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let (status, _) = shop.login(USER, PASSWORD, None).await;
    assert_eq!(status, 401, "the old secret stops working at once");
    let shop = app.api.as_client("shop", new_secret);
    let (status, again) = shop
        .refresh(refreshed["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, 200, "live tokens are kept: {again}");

    // No grant type: a resource server that only introspects.
    cli_ok(&app, &["client", "update", "shop", "--no-grant-type"], "").await;
    let (status, body) = shop.login(USER, PASSWORD, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    let seen = shop
        .introspect(again["access_token"].as_str().unwrap())
        .await;
    assert_eq!(seen["active"], true);

    for (args, why) in [
        (
            vec!["client", "rotate-secret", "nobody"],
            "no client with id",
        ),
        (
            vec!["client", "update", "nobody", "--name", "x"],
            "no client with id",
        ),
        (
            vec![
                "client",
                "update",
                "shop",
                "--backchannel-logout-uri",
                "http://rp.example/bc",
            ],
            "back-channel logout URI",
        ),
        (
            vec![
                "client",
                "update",
                "shop",
                "--grant-type",
                "authorization_code",
            ],
            "--redirect-uri",
        ),
    ] {
        let out = cli(&app, &args, "").await;
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
    cli_ok(
        &app,
        &[
            "client",
            "add",
            "spa",
            "--public",
            "--grant-type",
            "password",
        ],
        "",
    )
    .await;
    let out = cli(&app, &["client", "rotate-secret", "spa"], "").await;
    assert!(stderr(&out).contains("public client"), "{}", stderr(&out));
}

// 5. OIDC Core §3.1.2.4: consent for clients registered with --consent, in a real browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_party_apps_ask_for_consent_which_is_remembered_and_can_be_denied() {
    let app = spawn().await;
    let rp = Receiver::start().await;
    let callback = rp.url("/callback");
    let secret = add_code_client(
        &app,
        "gallery",
        &callback,
        &["openid", "profile", "email", "items:read"],
        &["--name", "Photo Gallery", "--consent"],
    )
    .await;
    let authorize = |scope: &str, extra: &[(&str, &str)]| {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", "gallery"),
            ("redirect_uri", callback.as_str()),
            ("scope", scope),
            ("state", "s1"),
        ];
        params.extend_from_slice(extra);
        url::Url::parse_with_params(&app.url("/authorize"), &params)
            .unwrap()
            .to_string()
    };
    let (_profile, _driver, browser) = start_browser().await;

    // Sign in, then the consent page names the app and the scopes in plain words.
    browser
        .goto(&authorize("openid profile items:read", &[]))
        .await
        .unwrap();
    wait_for_page(&browser, "Sign in", &app.base).await;
    let lead = browser.find(Locator::Css(".lead")).await.unwrap();
    assert!(lead.text().await.unwrap().contains("Photo Gallery"));
    sign_in(&browser, PASSWORD).await;
    wait_for_page(&browser, "Allow access?", &app.base).await;
    let page = browser.source().await.unwrap();
    for words in [
        "Allow Photo Gallery?",
        "Know who you are",
        "See your name and username",
        "<code>items:read</code>",
    ] {
        assert!(page.contains(words), "{words}: {page}");
    }
    assert!(!page.contains("email address"), "email was not asked for");
    let allow = browser
        .find(Locator::Css("button[value=allow]"))
        .await
        .unwrap();
    allow.click().await.unwrap();
    let landed = wait_for_page(&browser, "Relying party", &callback).await;
    let q = query_of(&landed);
    assert_eq!(q["state"], "s1");
    let code = q["code"].clone();
    let exchanged = app
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &callback),
            ],
            Some(("gallery", &secret)),
        )
        .await;
    assert_eq!(exchanged.status(), 200);

    // Remembered: the same scopes (or fewer) go straight back with a code.
    browser
        .goto(&authorize("openid profile", &[]))
        .await
        .unwrap();
    let landed = wait_for_page(&browser, "Relying party", &callback).await;
    assert!(query_of(&landed).contains_key("code"));
    // prompt=none with a scope not allowed yet: consent_required (OIDC Core §3.1.2.6).
    browser
        .goto(&authorize("openid email", &[("prompt", "none")]))
        .await
        .unwrap();
    let landed = wait_for_page(&browser, "Relying party", &callback).await;
    assert_eq!(query_of(&landed)["error"], "consent_required");
    // A new scope asks again; Deny sends access_denied (RFC 6749 §4.1.2.1).
    browser.goto(&authorize("openid email", &[])).await.unwrap();
    wait_for_page(&browser, "Allow access?", &app.base).await;
    let page = browser.source().await.unwrap();
    assert!(page.contains("See your email address"), "{page}");
    browser
        .find(Locator::Css("button[value=deny]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let landed = wait_for_page(&browser, "Relying party", &callback).await;
    let q = query_of(&landed);
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "s1")
    );
    // prompt=consent asks even for what was allowed.
    browser
        .goto(&authorize("openid", &[("prompt", "consent")]))
        .await
        .unwrap();
    wait_for_page(&browser, "Allow access?", &app.base).await;
    // The operator's own apps (no --consent) never ask.
    let (url, _) = authorize_url(&app, RP, &[("prompt", "consent")]);
    browser.goto(&url).await.unwrap();
    let start = std::time::Instant::now();
    while !browser
        .current_url()
        .await
        .unwrap()
        .as_str()
        .starts_with(CALLBACK)
    {
        assert!(start.elapsed() < PATIENCE, "RP should not ask for consent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await.unwrap();

    // The consent form is a form: without its CSRF token, nothing.
    let mut plain = Browser::new();
    let mut form = params_of(&authorize("openid", &[]));
    form.push(("decision".into(), "allow".into()));
    let res = plain.post(&app.url("/consent"), &form).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());
    // Its answer counts only for what the page showed, to whom, for a while: the page's
    // ticket binds the session, user, client, redirect URI and scopes.
    app.add_user("eve", PASSWORD, "items:read").await;
    let page = plain
        .get(&authorize("openid email", &[]))
        .await
        .text()
        .await
        .unwrap();
    let res = plain.sign_in(&app.base, &page, "eve", PASSWORD).await;
    assert_eq!(res.status(), 200, "the consent page");
    let consent = hidden_fields(&res.text().await.unwrap());
    type Form = Vec<(String, String)>;
    let answer = |edit: &dyn Fn(&mut Form)| {
        let mut form = consent.clone();
        edit(&mut form);
        form.push(("decision".into(), "allow".into()));
        form
    };
    let set = |name: &'static str, value: &'static str| {
        move |form: &mut Form| {
            form.retain(|(k, _)| k != name);
            form.push((name.into(), value.into()));
        }
    };
    for (why, form) in [
        (
            "more scopes",
            answer(&set("scope", "openid email items:read")),
        ),
        (
            "a forged ticket",
            answer(&set("consent_ticket", "99999999999.AAAA")),
        ),
        (
            "no ticket",
            answer(&|f| f.retain(|(k, _)| k != "consent_ticket")),
        ),
    ] {
        let res = plain.post(&app.url("/consent"), &form).await;
        assert_eq!(res.status(), 400, "{why}");
        assert!(res.headers().get("location").is_none(), "{why}");
    }
    app.clock.advance(601);
    let res = plain.post(&app.url("/consent"), &answer(&|_| {})).await;
    assert_eq!(res.status(), 400, "an expired page");
    app.clock.advance(-601);
    let res = plain.post(&app.url("/consent"), &answer(&|_| {})).await;
    assert_eq!(res.status(), 303);
    assert!(query_of(&location(&res)).contains_key("code"));
    // After a password change the session is gone: the same answer, replayed, gets the
    // login page and no code.
    let hash = crate::support::hash_password("eve's new password").await;
    let now = app.clock.now();
    assert!(
        app.store
            .set_password_hash("eve", &hash, now)
            .await
            .unwrap()
    );
    let res = plain.post(&app.url("/consent"), &answer(&|_| {})).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("location").is_none());
    assert!(res.text().await.unwrap().contains("action=\"login\""));
}

// 6. Post-logout redirect URIs are registered apart; a hinted logout always ends the
//    session; no stray `?`.
#[tokio::test]
async fn post_logout_redirects_are_their_own_and_a_hinted_logout_always_signs_out() {
    let app = spawn().await;
    let mut browser = Browser::new();
    let (url, verifier) = authorize_url(&app, RP, &[]);
    let (signed_in, _) = authorize_url(&app, RP, &[("prompt", "none")]);
    let code = code_for(&app, &mut browser, &url).await;
    let (_, tokens) = exchange(&app, (RP, Some(RP_SECRET)), &code, Some(&verifier)).await;
    let hint = tokens["id_token"].as_str().unwrap().to_owned();
    let logout = |hint: &str, to: &str, state: Option<&str>| {
        let mut params = vec![("id_token_hint", hint), ("post_logout_redirect_uri", to)];
        params.extend(state.map(|s| ("state", s)));
        url::Url::parse_with_params(&app.url("/logout"), &params)
            .unwrap()
            .to_string()
    };
    // The callback is a redirect URI, not a post-logout one: no redirect, but the session
    // ends all the same (the user asked to sign out).
    let res = browser.get(&logout(&hint, CALLBACK, Some("x"))).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    assert!(res.text().await.unwrap().contains("not registered"));
    let res = browser.get(&signed_in).await;
    assert_eq!(query_of(&location(&res))["error"], "login_required");
    // Signed in again: the old hint is the user's but not of this session, so the user is
    // asked (RP-Initiated Logout §2: the OP MUST ask when the ID token "does not belong to
    // the current OP session").
    let code = code_for(&app, &mut browser, &url).await;
    let res = browser.get(&logout(&hint, SIGNED_OUT, None)).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Sign out?"));
    assert!(
        browser.get(&signed_in).await.status() == 302,
        "still signed in"
    );
    // This session's hint, a registered URI without state: exactly the URI.
    let (_, tokens) = exchange(&app, (RP, Some(RP_SECRET)), &code, Some(&verifier)).await;
    let current = tokens["id_token"].as_str().unwrap();
    let res = browser.get(&logout(current, SIGNED_OUT, None)).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), SIGNED_OUT);
    // And a post-logout URI never receives codes.
    let (to_signed_out, _) = authorize_url(&app, RP, &[("redirect_uri", SIGNED_OUT)]);
    let res = browser.get(&to_signed_out).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
}

/// A logout token, verified with the JWKS by jsonwebtoken: its header and claims.
async fn verified_logout_token(app: &TestApp, token: &str, client: &str) -> (Value, Value) {
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(app.api.jwks().await).unwrap();
    let kid = kid_of(token);
    let jwk = jwks.find(&kid).expect("signed with a key of the JWKS");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[client]);
    validation.set_issuer(&[&app.base]);
    validation.set_required_spec_claims(&["iss", "aud", "exp", "iat", "sub"]);
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).expect("a valid token");
    let header = serde_json::to_value(&data.header).unwrap();
    (header, data.claims)
}

/// Signs in to `client` through the login page (or the browser's session) and exchanges the
/// code; returns the token response.
async fn sign_in_to(
    app: &TestApp,
    browser: &mut Browser,
    (client, secret): (&str, &str),
    scope: &str,
) -> Value {
    let (url, verifier) = authorize_url(app, client, &[("scope", scope)]);
    let mut res = browser.get(&url).await;
    if res.status() == 200 {
        let page = res.text().await.unwrap();
        res = browser.sign_in(&app.base, &page, USER, PASSWORD).await;
    }
    let code = query_of(&location(&res))["code"].clone();
    let (status, tokens) = exchange(app, (client, Some(secret)), &code, Some(&verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

// 7. OpenID Connect Back-Channel Logout 1.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_tells_every_relying_party_of_the_session() {
    let app = spawn().await;
    let rp = Receiver::start().await;
    // Two relying parties of one browser session: the first with offline access.
    let offline_secret = add_code_client(
        &app,
        "offline-app",
        CALLBACK,
        &["openid", "offline_access"],
        &[
            "--grant-type",
            "refresh_token",
            "--backchannel-logout-uri",
            &rp.url("/offline?kept=1"),
        ],
    )
    .await;
    let online_secret = add_code_client(
        &app,
        "online-app",
        CALLBACK,
        &["openid"],
        &[
            "--grant-type",
            "refresh_token",
            "--backchannel-logout-uri",
            &rp.url("/online"),
        ],
    )
    .await;
    let mut browser = Browser::new();
    let offline = sign_in_to(
        &app,
        &mut browser,
        ("offline-app", &offline_secret),
        "openid offline_access",
    )
    .await;
    let online = sign_in_to(&app, &mut browser, ("online-app", &online_secret), "openid").await;
    let sid_of = |tokens: &Value| {
        insecure_claims(tokens["id_token"].as_str().unwrap())["sid"]
            .as_str()
            .expect("ID tokens carry sid")
            .to_owned()
    };
    let (offline_sid, online_sid) = (sid_of(&offline), sid_of(&online));
    assert_ne!(offline_sid, online_sid, "a session at each relying party");

    // The logout answers while the relying parties have not (delivery never blocks it),
    // and the first delivery to each fails: it is retried.
    rp.hold();
    rp.fail_next(2);
    let logout = url::Url::parse_with_params(
        &app.url("/logout"),
        &[("id_token_hint", online["id_token"].as_str().unwrap())],
    )
    .unwrap();
    let res = browser.get(logout.as_str()).await;
    assert_eq!(res.status(), 200, "signed out");
    let posted = app
        .eventually(Duration::from_secs(10), || async {
            rp.received().len() >= 2
        })
        .await;
    assert!(posted, "{:?}", rp.received());
    rp.release();
    let retried = app
        .eventually(Duration::from_secs(20), || async {
            rp.received().len() >= 4
        })
        .await;
    assert!(retried, "{:?}", rp.received());

    let mut delivered: HashMap<String, (Value, Value)> = HashMap::new();
    for r in rp.received() {
        assert_eq!(r.method, "POST");
        assert_eq!(r.content_type, "application/x-www-form-urlencoded");
        let client = if r.target == "/offline?kept=1" {
            "offline-app"
        } else {
            assert_eq!(r.target, "/online", "only the registered URIs");
            "online-app"
        };
        let token = r.form()["logout_token"].clone();
        delivered.insert(
            client.into(),
            verified_logout_token(&app, &token, client).await,
        );
    }
    let sub = app.store.user_by_username(USER).await.unwrap().unwrap().id;
    for (client, sid) in [("offline-app", &offline_sid), ("online-app", &online_sid)] {
        let (header, claims) = &delivered[client];
        // §2.4: explicitly typed; sub and the sid of that relying party's ID token; the
        // back-channel logout event; never a nonce.
        assert_eq!(header["typ"], "logout+jwt");
        assert_eq!(claims["sub"], sub.as_str());
        assert_eq!(claims["sid"], sid.as_str());
        assert_eq!(
            claims["events"],
            serde_json::json!({"http://schemas.openid.net/event/backchannel-logout": {}})
        );
        assert!(claims["jti"].is_string() && claims.get("nonce").is_none());
    }
    // §2.7: refresh tokens without offline_access end with the session; offline ones stay.
    let (status, _) = app
        .api
        .as_client("online-app", &online_secret)
        .refresh(online["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .api
        .as_client("offline-app", &offline_secret)
        .refresh(offline["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, 200);
    // Counted.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "ferrid_backchannel_logout_deliveries_total{outcome=\"delivered\"} 2",
        "ferrid_backchannel_logout_deliveries_total{outcome=\"failed\"} 2",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }

    // A password change (a command, not the server) ends every session of the user — the
    // offline one too — and the server delivers what the command queued.
    let again = sign_in_to(&app, &mut browser, ("online-app", &online_secret), "openid").await;
    let before = rp.received().len();
    cli_ok(&app, &["user", "passwd", USER], "another long password\n").await;
    let told = app
        .eventually(Duration::from_secs(10), || async {
            rp.received().len() >= before + 2
        })
        .await;
    assert!(told, "{:?}", &rp.received()[before..]);
    let mut sids = HashMap::new();
    for r in &rp.received()[before..] {
        let client = if r.target == "/online" {
            "online-app"
        } else {
            "offline-app"
        };
        let token = r.form()["logout_token"].clone();
        let (_, claims) = verified_logout_token(&app, &token, client).await;
        sids.insert(client, claims["sid"].as_str().unwrap().to_owned());
    }
    assert_eq!(sids["online-app"], sid_of(&again));
    assert_eq!(sids["offline-app"], offline_sid);
}

/// A browser's session outlives a new sign-in by the same user (the relying parties it signed
/// in stay signed in), and ends when someone else signs in on that browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sign_in_continues_the_same_users_session_and_ends_anothers() {
    let app = spawn().await;
    app.add_user("bob", PASSWORD, "").await;
    let rp = Receiver::start().await;
    let secret = add_code_client(
        &app,
        "notes",
        CALLBACK,
        &["openid"],
        &[
            "--grant-type",
            "refresh_token",
            "--backchannel-logout-uri",
            &rp.url("/bc"),
        ],
    )
    .await;
    let notes = app.api.as_client("notes", &secret);
    let mut browser = Browser::new();
    let tokens = sign_in_to(&app, &mut browser, ("notes", &secret), "openid").await;
    let sign_in_again_as = async |browser: &mut Browser, user: &str| {
        let (url, _) = authorize_url(&app, RP, &[("prompt", "login")]);
        let page = browser.get(&url).await.text().await.unwrap();
        let res = browser.sign_in(&app.base, &page, user, PASSWORD).await;
        assert_eq!(res.status(), 303);
    };
    // ada again (prompt=login): nothing ends. The delivery task polls every second.
    sign_in_again_as(&mut browser, USER).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(rp.received().is_empty(), "{:?}", rp.received());
    let (status, refreshed) = notes
        .refresh(tokens["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, 200, "{refreshed}");
    // bob on ada's browser: ada's session ends, and notes hears of it.
    sign_in_again_as(&mut browser, "bob").await;
    let told = app
        .eventually(Duration::from_secs(10), || async {
            !rp.received().is_empty()
        })
        .await;
    assert!(told);
    let token = rp.received()[0].form()["logout_token"].clone();
    let (_, claims) = verified_logout_token(&app, &token, "notes").await;
    let ada = app.store.user_by_username(USER).await.unwrap().unwrap();
    assert_eq!(claims["sub"], ada.id.as_str());
    let (status, _) = notes
        .refresh(refreshed["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, 400, "ended with the session (no offline_access)");
}

// 8. OAuth 2.0 Form Post Response Mode, in a real browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_post_sends_the_code_in_a_post_the_page_submits_itself() {
    let app = spawn().await;
    let rp = Receiver::start().await;
    let callback = rp.url("/signin-oidc");
    let secret = add_code_client(&app, "aspnet", &callback, &["openid"], &[]).await;
    let url = url::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("response_mode", "form_post"),
            ("client_id", "aspnet"),
            ("redirect_uri", callback.as_str()),
            ("scope", "openid"),
            ("state", "st&te"),
        ],
    )
    .unwrap()
    .to_string();
    // The callback sends the browser on to the app, on another origin (nothing in the
    // pages' CSP may stop that redirect).
    let app_origin = Receiver::start().await;
    rp.redirect_to(&app_origin.url("/home"));
    let (_profile, _driver, browser) = start_browser().await;
    browser.goto(&url).await.unwrap();
    wait_for_page(&browser, "Sign in", &app.base).await;
    sign_in(&browser, PASSWORD).await;
    // The page's script submits the form: the callback got a POST (the code is in no URL),
    // and the browser ends where the callback sent it.
    let landed = wait_for_page(&browser, "Relying party", &app_origin.base).await;
    assert_eq!(landed, app_origin.url("/home"));
    browser.close().await.unwrap();
    let received = rp.received();
    // (The browser also asks the callback's origin for /favicon.ico.)
    let post = received
        .iter()
        .find(|r| r.method == "POST")
        .expect("a POST to the callback");
    assert_eq!(post.target, "/signin-oidc");
    let form = post.form();
    assert_eq!(form["state"], "st&te");
    assert_eq!(form["iss"], app.base);
    let exchanged = app
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &form["code"]),
                ("redirect_uri", &callback),
            ],
            Some(("aspnet", &secret)),
        )
        .await;
    assert_eq!(exchanged.status(), 200);

    // Errors use the mode too; and without scripts, the page's button does the same.
    let mut plain = Browser::new();
    let none = format!("{url}&prompt=none");
    let res = plain.get(&none).await;
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    let page = res.text().await.unwrap();
    assert!(page.contains(&format!("<form method=\"post\" action=\"{callback}\">")));
    assert!(page.contains("<button type=\"submit\">Continue</button>"));
    let fields: HashMap<_, _> = hidden_fields(&page).into_iter().collect();
    assert_eq!(fields["error"], "login_required");
    assert_eq!(fields["state"], "st&te");
    // A native app's private-use redirect URI cannot take a POST: refused, in the query.
    cli_ok(
        &app,
        &[
            "client",
            "add",
            "native",
            "--public",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            "com.example.app:/cb",
        ],
        "",
    )
    .await;
    let native = url::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("response_mode", "form_post"),
            ("client_id", "native"),
            ("redirect_uri", "com.example.app:/cb"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let res = plain.get(native.as_str()).await;
    assert_eq!(res.status(), 302);
    assert!(location(&res).starts_with("com.example.app:/cb?error=invalid_request"));
    // An unknown mode is refused, in the default mode.
    let bad = url.replace("form_post", "fragment");
    let res = plain.get(&bad).await;
    assert_eq!(res.status(), 302);
    assert_eq!(query_of(&location(&res))["error"], "invalid_request");
}
