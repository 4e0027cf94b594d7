//! `POST /token`: the password grant and every error of RFC 6749 §5.2.

use crate::support::{CLIENT, CLIENT_SECRET, PASSWORD, TestApp, USER, insecure_claims};
use serde_json::Value;

async fn error_of(res: reqwest::Response) -> (u16, String, Value) {
    let status = res.status().as_u16();
    assert_eq!(
        res.headers()["cache-control"],
        "no-store",
        "errors are not cached either"
    );
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = res.json().await.unwrap();
    (status, www, body)
}

fn password<'a>(username: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ]
}

#[tokio::test]
async fn password_grant_issues_rfc_9068_access_and_oidc_id_tokens() {
    let app = TestApp::spawn().await;
    let res = app
        .token(
            &[
                ("grant_type", "password"),
                ("username", USER),
                ("password", PASSWORD),
                ("scope", "openid profile email items:read"),
            ],
            Some((CLIENT, CLIENT_SECRET)),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "email items:read openid profile");
    assert!(body.get("refresh_token").is_none());

    let access = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert!(header.kid.is_some());
    let claims = insecure_claims(access);
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "scope",
    ] {
        assert!(claims.get(claim).is_some(), "access token lacks {claim}");
    }
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["client_id"], CLIENT);
    assert_eq!(claims["aud"], CLIENT);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    let user = app.store.user_by_username(USER).await.unwrap().unwrap();
    assert_eq!(claims["sub"], user.id.as_str());

    let id = insecure_claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], CLIENT);
    assert_eq!(id["sub"], user.id.as_str());
    assert_eq!(id["email"], "ada@example.com");
    assert_eq!(id["preferred_username"], USER);
    assert_eq!(
        id["at_hash"].as_str().unwrap(),
        ferrid::tokens::at_hash(access)
    );
    assert!(id.get("auth_time").is_some());
}

#[tokio::test]
async fn no_id_token_without_openid_and_profile_claims_only_for_their_scopes() {
    let app = TestApp::spawn().await;
    let body = app.login("items:read").await;
    assert!(body.get("id_token").is_none());
    assert_eq!(body["scope"], "items:read");

    let body = app.login("openid").await;
    let id = insecure_claims(body["id_token"].as_str().unwrap());
    assert!(id.get("email").is_none() && id.get("name").is_none());
}

#[tokio::test]
async fn without_a_scope_parameter_the_documented_default_applies() {
    let app = TestApp::spawn().await;
    let res = app
        .token(&password(USER, PASSWORD), Some((CLIENT, CLIENT_SECRET)))
        .await;
    let body: Value = res.json().await.unwrap();
    // Client: openid profile email items:read items:write; user holds items:read.
    assert_eq!(body["scope"], "email items:read openid profile");
}

#[tokio::test]
async fn client_secret_post_and_public_clients_authenticate() {
    let app = TestApp::spawn().await;
    let mut form = password(USER, PASSWORD);
    form.extend([("client_id", CLIENT), ("client_secret", CLIENT_SECRET)]);
    assert_eq!(app.token(&form, None).await.status(), 200);

    app.add_client("mobile", None, &["password"], "openid")
        .await;
    let mut form = password(USER, PASSWORD);
    form.push(("client_id", "mobile"));
    let res = app.token(&form, None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], "openid");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_byte_identical_answers() {
    let app = TestApp::spawn().await;
    let wrong = app
        .token(
            &password(USER, "not the password"),
            Some((CLIENT, CLIENT_SECRET)),
        )
        .await;
    let unknown = app
        .token(
            &password("nobody", "not the password"),
            Some((CLIENT, CLIENT_SECRET)),
        )
        .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(unknown.status(), 400);
    let headers = |r: &reqwest::Response| {
        let mut h: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-request-id"))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        h.sort();
        h
    };
    assert_eq!(headers(&wrong), headers(&unknown));
    let (wrong, unknown) = (wrong.bytes().await.unwrap(), unknown.bytes().await.unwrap());
    assert_eq!(wrong, unknown);
    let body: Value = serde_json::from_slice(&wrong).unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_disabled_user_is_refused_with_the_same_answer() {
    let app = TestApp::spawn().await;
    let wrong = app
        .token(&password(USER, "nope"), Some((CLIENT, CLIENT_SECRET)))
        .await;
    let wrong = wrong.bytes().await.unwrap();
    app.store
        .set_user_disabled(USER, true, app.clock.now())
        .await
        .unwrap();
    let res = app
        .token(&password(USER, PASSWORD), Some((CLIENT, CLIENT_SECRET)))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.bytes().await.unwrap(), wrong);
}

#[tokio::test]
async fn client_authentication_failures_are_401_with_a_challenge() {
    let app = TestApp::spawn().await;
    let form = password(USER, PASSWORD);
    // Wrong secret, Basic.
    let (status, www, body) = error_of(app.token(&form, Some((CLIENT, "wrong"))).await).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
    assert!(www.starts_with("Basic realm="), "{www}");
    // Wrong secret, in the body.
    let mut post = form.clone();
    post.extend([("client_id", CLIENT), ("client_secret", "wrong")]);
    let (status, www, body) = error_of(app.token(&post, None).await).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
    assert!(!www.is_empty());
    // Unknown client.
    let (status, _, body) = error_of(app.token(&form, Some(("stranger", "x"))).await).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
    // No client at all.
    let (status, _, body) = error_of(app.token(&form, None).await).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
    // A confidential client that sends no secret.
    let mut bare = form.clone();
    bare.push(("client_id", CLIENT));
    let (status, _, body) = error_of(app.token(&bare, None).await).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
    // A public client that sends a secret.
    app.add_client("mobile", None, &["password"], "openid")
        .await;
    let (status, _, _) = error_of(app.token(&form, Some(("mobile", "x"))).await).await;
    assert_eq!(status, 401);
    // A malformed Basic header.
    let res = app
        .http
        .post(app.url("/token"))
        .header("authorization", "Basic %%%")
        .form(&form)
        .send()
        .await
        .unwrap();
    let (status, _, body) = error_of(res).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
}

#[tokio::test]
async fn malformed_requests_are_invalid_request() {
    let app = TestApp::spawn().await;
    let basic = Some((CLIENT, CLIENT_SECRET));
    // A repeated parameter.
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(CLIENT, Some(CLIENT_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=password&username={USER}&password=x&password=y"
        ))
        .send()
        .await
        .unwrap();
    let (status, _, body) = error_of(res).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_request")
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("password")
    );
    // A JSON body.
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(CLIENT, Some(CLIENT_SECRET))
        .json(
            &serde_json::json!({"grant_type": "password", "username": USER, "password": PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    let (status, _, body) = error_of(res).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_request")
    );
    // No grant_type.
    let (status, _, body) = error_of(
        app.token(&[("username", USER), ("password", PASSWORD)], basic)
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_request")
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("grant_type")
    );
    // No password.
    let (status, _, body) = error_of(
        app.token(&[("grant_type", "password"), ("username", USER)], basic)
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_request")
    );
    // Credentials both in the header and the body.
    let mut both = password(USER, PASSWORD);
    both.push(("client_secret", CLIENT_SECRET));
    let (status, _, body) = error_of(app.token(&both, basic).await).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_request")
    );
}

#[tokio::test]
async fn grant_and_scope_policy_errors() {
    let app = TestApp::spawn().await;
    let basic = Some((CLIENT, CLIENT_SECRET));
    let with_scope = |scope: &'static str| {
        let mut f = password(USER, PASSWORD);
        f.push(("scope", scope));
        f
    };
    // A value no client is registered for is not defined here: ignored, and the response
    // says what was granted (OIDC Core §3.1.2.1, RFC 6749 §3.3).
    let res = app.token(&with_scope("openid admin phone"), basic).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["scope"], "openid");
    // A permission another client is registered for, but not this one.
    app.add_client("admin-tool", Some(CLIENT_SECRET), &["password"], "admin")
        .await;
    let (status, _, body) = error_of(app.token(&with_scope("openid admin"), basic).await).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_scope")
    );
    // A scope the client may have but the user does not hold.
    let (status, _, body) = error_of(app.token(&with_scope("items:write"), basic).await).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_scope")
    );
    // A malformed scope.
    let (status, _, body) = error_of(app.token(&with_scope("a\"b"), basic).await).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_scope")
    );
    // An unknown grant type, and one this build does not offer.
    for grant in [
        "urn:example:magic",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        let (status, _, body) = error_of(app.token(&[("grant_type", grant)], basic).await).await;
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (400, "unsupported_grant_type"),
            "{grant}"
        );
    }
    // A client not registered for the password grant (RFC 9700 §2.4: opt-in only).
    app.add_client(
        "service",
        Some("service-secret-0123456789-0123456789"),
        &["client_credentials"],
        "openid",
    )
    .await;
    let (status, _, body) = error_of(
        app.token(
            &password(USER, PASSWORD),
            Some(("service", "service-secret-0123456789-0123456789")),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "unauthorized_client")
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_and_get_is_not_allowed() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(100 * 1024);
    let res = app
        .http
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=password&username={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let res = app.http.get(app.url("/token")).send().await.unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn concurrent_logins_all_succeed_within_the_queue() {
    let app = TestApp::spawn().await;
    let bodies = futures_util::future::join_all((0..16).map(|_| app.login("openid"))).await;
    assert!(bodies.iter().all(|b| b["access_token"].is_string()));
}

#[tokio::test]
async fn logins_beyond_the_hashing_queue_get_503_with_retry_after() {
    // One core's worth of hashing and no queue: of a burst of logins, the ones that find the
    // core busy are answered at once instead of waiting.
    let dir = crate::support::TestDir::new();
    let app = TestApp::spawn_with(dir, ferrid::clock::Clock::system(), |c| {
        c.hash_workers = 1;
        c.hash_queue = 0;
    })
    .await;
    app.add_client(CLIENT, Some(CLIENT_SECRET), &["password"], "openid")
        .await;
    app.add_user(USER, PASSWORD, "").await;
    let form = password(USER, PASSWORD);
    let burst = (0..16).map(|_| app.token(&form, Some((CLIENT, CLIENT_SECRET))));
    let responses = futures_util::future::join_all(burst).await;
    let mut ok = 0;
    let mut busy = 0;
    for res in responses {
        match res.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(res.headers()["retry-after"], "1");
                assert_eq!(res.headers()["cache-control"], "no-store");
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["error"], "temporarily_unavailable");
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok={ok} busy={busy}");
    // Once the burst is over, logins work again.
    app.login("openid").await;
}

#[tokio::test]
async fn failed_logins_are_answered_no_sooner_than_the_floor() {
    let app = TestApp::spawn().await;
    let floor = ferrid::oauth::grants::FAILED_LOGIN_FLOOR;
    for (user, pw) in [(USER, "wrong"), ("nobody", "wrong")] {
        let start = std::time::Instant::now();
        let res = app
            .token(&password(user, pw), Some((CLIENT, CLIENT_SECRET)))
            .await;
        assert_eq!(res.status(), 400);
        assert!(
            start.elapsed() >= floor,
            "{user}: answered after {:?}",
            start.elapsed()
        );
    }
}

/// RFC 6749 §2.3.1 form-encodes id and secret before Base64, but many clients (Python
/// requests' `HTTPBasicAuth`, curl `-u`) send them as they are: a secret with `+` or `%`
/// works either way, and a wrong one still fails.
#[tokio::test]
async fn client_secret_basic_accepts_the_secret_encoded_or_as_is() {
    let app = TestApp::spawn().await;
    let secret = "with+plus and %2B percent:colon-0123456789abcdef";
    app.add_client("raw", Some(secret), &["password"], "openid")
        .await;
    app.add_user("grace", PASSWORD, "").await;
    let form = password("grace", PASSWORD);
    let encoded: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    for (how, sent, status) in [
        ("as is (reqwest, like Python requests)", secret, 200),
        ("form-encoded (RFC 6749 §2.3.1)", encoded.as_str(), 200),
        (
            "wrong",
            "with plus and + percent:colon-0123456789abcdef",
            401,
        ),
    ] {
        let res = app.token(&form, Some(("raw", sent))).await;
        assert_eq!(res.status(), status, "{how}");
    }
}
