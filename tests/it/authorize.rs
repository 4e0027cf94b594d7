//! The authorization-code flow: an openidconnect relying party discovers ferrid, sends the
//! user to the login page, and exchanges the code (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1);
//! and every way it must refuse.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

use crate::support::code_flow::{
    Browser, CALLBACK, RP, RP_SECRET, authorize_url, code_for, exchange, hidden_fields, location,
    query_of, spawn,
};
use crate::support::{PASSWORD, TestApp, USER};

#[tokio::test]
async fn an_openidconnect_relying_party_signs_a_user_in_with_the_code_flow() {
    let app = spawn().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let provider =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .expect("discovery works");
    let client = CoreClient::from_provider_metadata(
        provider,
        ClientId::new(RP.into()),
        Some(ClientSecret::new(RP_SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();

    let mut browser = Browser::new();
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("<label for=\"username\">") && html.contains("<label for=\"password\">"));

    let res = browser.sign_in(&app.base, &html, USER, PASSWORD).await;
    assert_eq!(res.status(), 303);
    let set_cookie: Vec<_> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(set_cookie.iter().any(|c| c.starts_with("ferrid_session=")
        && c.contains("HttpOnly")
        && c.contains("SameSite=Lax")));
    let q = query_of(&location(&res));
    assert_eq!(&q["state"], state.secret());
    assert_eq!(q["iss"], app.base, "RFC 9207");

    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code exchanges");
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("ID token verifies, nonce included");
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some(USER));
    assert!(claims.auth_time().is_some());
    assert!(tokens.refresh_token().is_some());
    assert_eq!(
        app.userinfo(tokens.access_token().secret()).await.status(),
        200
    );
}

#[tokio::test]
async fn a_session_signs_in_again_without_the_form_until_prompt_or_max_age_ask() {
    let app = spawn().await;
    let mut browser = Browser::new();
    let (url, verifier) = authorize_url(&app, RP, &[]);
    let code = code_for(&app, &mut browser, &url).await;
    let (status, first) = exchange(&app, (RP, Some(RP_SECRET)), &code, Some(&verifier)).await;
    assert_eq!(status, 200);
    let id_token = first["id_token"].as_str().unwrap().to_owned();

    // Signed in: straight back with a code.
    let res = browser.get(&url).await;
    assert_eq!(res.status(), 302);
    let code = query_of(&location(&res))["code"].clone();
    assert_eq!(
        exchange(&app, (RP, Some(RP_SECRET)), &code, Some(&verifier))
            .await
            .0,
        200
    );
    // prompt=none works too.
    let (none, _) = authorize_url(&app, RP, &[("prompt", "none")]);
    assert!(query_of(&location(&browser.get(&none).await)).contains_key("code"));
    // prompt=login and an exceeded max_age show the form again.
    let (login, _) = authorize_url(&app, RP, &[("prompt", "login")]);
    assert_eq!(browser.get(&login).await.status(), 200);
    app.clock.advance(120);
    let (aged, _) = authorize_url(&app, RP, &[("max_age", "60")]);
    assert_eq!(browser.get(&aged).await.status(), 200);
    let (fresh_enough, _) = authorize_url(&app, RP, &[("max_age", "600")]);
    assert_eq!(browser.get(&fresh_enough).await.status(), 302);

    // Logging out without a hint asks first (RP-Initiated Logout §2); a cross-site GET
    // alone ends nothing.
    let ask = url::Url::parse_with_params(&app.url("/logout"), &[("client_id", RP)]).unwrap();
    let res = browser.get(ask.as_str()).await;
    assert_eq!(res.status(), 200);
    let confirm = res.text().await.unwrap();
    assert!(confirm.contains("Sign out?"));
    assert_eq!(browser.get(&none).await.status(), 302, "still signed in");
    let res = browser
        .post(&app.url("/logout"), &hidden_fields(&confirm))
        .await;
    assert_eq!(res.status(), 200, "confirmed: signed out");
    assert_eq!(
        query_of(&location(&browser.get(&none).await))["error"],
        "login_required"
    );

    // With the ID token as hint, logout is immediate and a registered
    // post_logout_redirect_uri gets the state back.
    let code = code_for(&app, &mut browser, &url).await;
    let (_, second) = exchange(&app, (RP, Some(RP_SECRET)), &code, Some(&verifier)).await;
    let hint = second["id_token"].as_str().unwrap();
    let logout = url::Url::parse_with_params(
        &app.url("/logout"),
        &[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", "http://127.0.0.1:9/signed-out"),
            ("state", "bye"),
        ],
    )
    .unwrap();
    let res = browser.get(logout.as_str()).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "http://127.0.0.1:9/signed-out?state=bye");
    let res = browser.get(&none).await;
    assert_eq!(query_of(&location(&res))["error"], "login_required");
    // A forged hint is refused, not ignored.
    let forged = format!("{}x", &id_token[..id_token.len() - 1]);
    let bad =
        url::Url::parse_with_params(&app.url("/logout"), &[("id_token_hint", forged.as_str())])
            .unwrap();
    assert_eq!(browser.get(bad.as_str()).await.status(), 400);
    // A hint whose key is gone from the keys dir (rotated out long ago) cannot be checked:
    // it counts as no hint (here, with no session left, the signed-out page), not an error.
    let gone_key = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"typ":"JWT","alg":"RS256","kid":"rotated-out-long-ago"}"#);
        let rest = id_token.split_once('.').unwrap().1;
        format!("{header}.{rest}")
    };
    let unknown =
        url::Url::parse_with_params(&app.url("/logout"), &[("id_token_hint", gone_key.as_str())])
            .unwrap();
    let res = browser.get(unknown.as_str()).await;
    assert_eq!(res.status(), 200);
    assert!(!res.text().await.unwrap().contains("Cannot sign out"));
}

#[tokio::test]
async fn a_wrong_password_shows_a_generic_message_and_keeps_the_username() {
    let app = spawn().await;
    let mut browser = Browser::new();
    let (url, _) = authorize_url(&app, RP, &[("login_hint", "ada")]);
    let page = browser.get(&url).await.text().await.unwrap();
    assert_eq!(
        username_field(&page),
        "ada",
        "login_hint fills the username"
    );
    let res = browser
        .sign_in(&app.base, &page, "ada", "wrong password")
        .await;
    assert_eq!(res.status(), 200);
    let again = res.text().await.unwrap();
    assert!(again.contains("The username or password is incorrect."));
    assert_eq!(username_field(&again), "ada", "the username is kept");
    assert!(
        !again.contains("wrong password"),
        "the password is never echoed"
    );
    // An unknown user gets the same page.
    // (Each rendering of the form carries a fresh CSRF token: submit the newest one.)
    let unknown = browser
        .sign_in(&app.base, &again, "nobody", "wrong password")
        .await
        .text()
        .await
        .unwrap();
    let strip = |p: &str| p.split("<form").next().unwrap().to_owned();
    assert_eq!(strip(&again), strip(&unknown));
}

#[tokio::test]
async fn untrusted_errors_show_a_page_and_never_redirect() {
    let app = spawn().await;
    let mut browser = Browser::new();
    for (name, value) in [
        ("redirect_uri", "http://evil.example/cb"),
        ("redirect_uri", "http://127.0.0.1:9/callback/extra"),
        ("client_id", "nobody"),
        ("redirect_uri", ""),
    ] {
        let (url, _) = authorize_url(&app, RP, &[(name, value)]);
        let res = browser.get(&url).await;
        assert_eq!(res.status(), 400, "{name}={value}");
        assert!(res.headers().get("location").is_none());
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    // The logout endpoint is no open redirector either.
    for uri in [
        "http://evil.example/",
        "http://127.0.0.1:9/callback?next=http://evil.example",
    ] {
        let logout = url::Url::parse_with_params(
            &app.url("/logout"),
            &[("client_id", RP), ("post_logout_redirect_uri", uri)],
        )
        .unwrap();
        let res = browser.get(logout.as_str()).await;
        assert_eq!(res.status(), 400, "{uri}");
        assert!(res.headers().get("location").is_none());
    }
    let logout = url::Url::parse_with_params(
        &app.url("/logout"),
        &[("post_logout_redirect_uri", CALLBACK)],
    )
    .unwrap();
    assert_eq!(
        browser.get(logout.as_str()).await.status(),
        400,
        "no client named: no redirect"
    );
}

#[tokio::test]
async fn other_errors_go_back_to_the_client_with_state() {
    let app = spawn().await;
    let mut browser = Browser::new();
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (RP, &[("code_challenge_method", "plain")], "invalid_request"),
        (
            RP,
            &[("response_type", "token")],
            "unsupported_response_type",
        ),
        // A permission another client has, but not this one.
        (RP, &[("scope", "openid items:write")], "invalid_scope"),
        (RP, &[("prompt", "none")], "login_required"),
        (
            "spa",
            &[("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
        (RP, &[("max_age", "soon")], "invalid_request"),
    ];
    for (client, extra, error) in cases {
        let (url, _) = authorize_url(&app, client, extra);
        let res = browser.get(&url).await;
        assert_eq!(res.status(), 302, "{extra:?}");
        let q = query_of(&location(&res));
        assert!(location(&res).starts_with(CALLBACK));
        assert_eq!(q["error"], error, "{extra:?}");
        assert_eq!(q["state"], "st4te");
        assert!(q.contains_key("error_description"));
    }
    // A client not registered for the code flow.
    app.add_client(
        "legacy",
        Some("legacy-secret-0123456789-0123456789"),
        &["password"],
        "openid",
    )
    .await;
    let mut legacy = app.store.client("legacy").await.unwrap().unwrap();
    legacy.redirect_uris = vec![CALLBACK.into()];
    app.store.delete_client("legacy").await.unwrap();
    app.store.insert_client(&legacy).await.unwrap();
    let (url, _) = authorize_url(&app, "legacy", &[]);
    assert_eq!(
        query_of(&location(&browser.get(&url).await))["error"],
        "unauthorized_client"
    );
}

#[tokio::test]
async fn the_login_form_needs_its_csrf_token() {
    let app = spawn().await;
    let mut browser = Browser::new();
    let (url, _) = authorize_url(&app, RP, &[]);
    let page = browser.get(&url).await.text().await.unwrap();
    let mut form = hidden_fields(&page);
    form.retain(|(k, _)| k != "csrf_token");
    form.push(("username".into(), USER.into()));
    form.push(("password".into(), PASSWORD.into()));
    let res = browser.post(&app.url("/login"), &form).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());
    // A token that is not the cookie's.
    form.push(("csrf_token".into(), "forged".into()));
    assert_eq!(browser.post(&app.url("/login"), &form).await.status(), 403);
    // The right token but no cookie (a cross-site post carries none: SameSite=Strict).
    let mut stranger = Browser::new();
    let page = browser.get(&url).await.text().await.unwrap();
    assert_eq!(
        stranger
            .sign_in(&app.base, &page, USER, PASSWORD)
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn codes_are_single_use_short_lived_bound_and_need_their_verifier() {
    let app = spawn().await;
    let rp = (RP, Some(RP_SECRET));
    let (url, verifier) = authorize_url(&app, RP, &[]);

    // Missing and wrong verifiers.
    let mut browser = Browser::new();
    let code = code_for(&app, &mut browser, &url).await;
    let (status, body) = exchange(&app, rp, &code, None).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
    let code = query_of(&location(&browser.get(&url).await))["code"].clone();
    let (status, _) = exchange(
        &app,
        rp,
        &code,
        Some("another-verifier-that-is-long-enough-0123456789"),
    )
    .await;
    assert_eq!(status, 400);

    // A code of another client.
    let code = query_of(&location(&browser.get(&url).await))["code"].clone();
    let (status, _) = exchange(&app, ("spa", None), &code, Some(&verifier)).await;
    assert_eq!(status, 400);

    // Expired after 60 seconds.
    let code = query_of(&location(&browser.get(&url).await))["code"].clone();
    app.clock.advance(61);
    assert_eq!(exchange(&app, rp, &code, Some(&verifier)).await.0, 400);

    // Used twice: the second use fails and revokes what the first one got.
    let code = query_of(&location(&browser.get(&url).await))["code"].clone();
    let (status, first) = exchange(&app, rp, &code, Some(&verifier)).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(app.userinfo(access).await.status(), 200);
    let (status, body) = exchange(&app, rp, &code, Some(&verifier)).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
    assert_eq!(
        app.userinfo(access).await.status(),
        401,
        "the first use's access token is revoked"
    );
    let refresh = first["refresh_token"].as_str().unwrap();
    let res = app
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            Some((RP, RP_SECRET)),
        )
        .await;
    assert_eq!(res.status(), 400, "and its refresh token");

    // A public client with PKCE gets tokens with its client_id alone.
    let (url, verifier) = authorize_url(&app, "spa", &[]);
    let code = query_of(&location(&browser.get(&url).await))["code"].clone();
    let (status, body) = exchange(&app, ("spa", None), &code, Some(&verifier)).await;
    assert_eq!(status, 200, "{body}");
    let id = crate::support::insecure_claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n0nce");
    assert_eq!(id["aud"], "spa");
}

/// The value of the visible username field of a login page.
fn username_field(page: &str) -> String {
    let tag = page
        .split("<input id=\"username\"")
        .nth(1)
        .expect("a username field");
    let tag = &tag[..tag.find('>').unwrap()];
    let start = tag.find("value=\"").unwrap() + 7;
    tag[start..start + tag[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn a_username_typed_without_login_hint_is_kept_too() {
    let app = spawn().await;
    let mut browser = Browser::new();
    let (url, _) = authorize_url(&app, RP, &[]);
    let page = browser.get(&url).await.text().await.unwrap();
    assert_eq!(username_field(&page), "");
    let again = browser
        .sign_in(&app.base, &page, "someone <b>", "wrong")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        username_field(&again),
        "someone &#60;b&#62;",
        "kept, and escaped"
    );
}

#[tokio::test]
async fn concurrent_uses_of_one_code_give_one_set_of_tokens_and_revoke_it() {
    let app = spawn().await;
    let mut browser = Browser::new();
    let (url, verifier) = authorize_url(&app, RP, &[]);
    for _ in 0..5 {
        let code = code_for(&app, &mut browser, &url).await;
        let uses = (0..4).map(|_| exchange(&app, (RP, Some(RP_SECRET)), &code, Some(&verifier)));
        let results = futures_util::future::join_all(uses).await;
        let won: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
        assert_eq!(won.len(), 1, "{results:?}");
        // The losers were second uses: whatever the winner got is revoked, even if it was
        // minted after they arrived.
        let access = won[0].1["access_token"].as_str().unwrap();
        assert_eq!(app.userinfo(access).await.status(), 401);
        browser.cookies.clear();
    }
}

#[tokio::test]
async fn max_age_zero_and_request_objects() {
    let app = spawn().await;
    let mut browser = Browser::new();
    let (url, _) = authorize_url(&app, RP, &[]);
    code_for(&app, &mut browser, &url).await;
    let (zero, _) = authorize_url(&app, RP, &[("max_age", "0")]);
    assert_eq!(
        browser.get(&zero).await.status(),
        200,
        "max_age=0 is prompt=login"
    );
    for (name, error) in [
        ("request", "request_not_supported"),
        ("request_uri", "request_uri_not_supported"),
    ] {
        let (url, _) = authorize_url(&app, RP, &[(name, "x")]);
        assert_eq!(
            query_of(&location(&browser.get(&url).await))["error"],
            error
        );
    }
}

#[tokio::test]
async fn https_issuers_get_host_only_secure_cookies_and_paths_work_behind_a_proxy() {
    let dir = crate::support::TestDir::new();
    let app = TestApp::spawn_with(dir, ferrid::clock::Clock::system(), |c| {
        c.issuer = Some("https://id.example.com/tenant".into());
    })
    .await;
    let client = ferrid::model::Client {
        id: RP.into(),
        secret_hash: None,
        grant_types: vec![ferrid::model::GrantType::AuthorizationCode],
        scopes: ferrid::model::ScopeSet::parse("openid profile").unwrap(),
        redirect_uris: vec![CALLBACK.into(), "com.example.app:/cb".into()],
        audiences: vec![],
        created_at: 0,
        ..Default::default()
    };
    app.store.insert_client(&client).await.unwrap();
    app.add_user(USER, PASSWORD, "").await;
    let mut browser = Browser::new();
    let (url, _) = authorize_url(&app, RP, &[("redirect_uri", "com.example.app:/cb")]);
    let page = browser.get(&url).await;
    assert_eq!(page.status(), 200, "{:?}", page.headers().get("location"));
    let csrf_cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        csrf_cookie.starts_with("__Host-ferrid_csrf=")
            && csrf_cookie.contains("Secure")
            && csrf_cookie.contains("Path=/;"),
        "{csrf_cookie}"
    );
    // No form-action in the CSP: it would also govern the redirects after the form (to the
    // native app, and on from a web app's callback).
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!csp.contains("form-action"), "{csp}");
    let html = page.text().await.unwrap();
    // Behind a proxy mapping /tenant, the form posts back to where it came from and the
    // stylesheet is relative.
    assert!(
        html.contains("<form method=\"post\" action=\"login\">")
            && html.contains("href=\"assets/ferrid.css\"")
    );
    let res = browser.sign_in(&app.base, &html, USER, PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("com.example.app:/cb?code="));
    let session = res.headers()["set-cookie"].to_str().unwrap();
    assert!(
        session.starts_with("__Host-ferrid_session=")
            && session.contains("Secure")
            && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert_eq!(
        query_of(&location(&res))["iss"],
        "https://id.example.com/tenant"
    );
}
