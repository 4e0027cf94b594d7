//! The token lifecycle: refresh rotation and reuse detection (RFC 6749 §6, RFC 9700 §4.14),
//! client_credentials (§4.4), introspection (RFC 7662) and revocation (RFC 7009).

use serde_json::Value;

use crate::support::{Api, PASSWORD, TestApp, USER, ferrid_cli, field, insecure_claims, stderr};

/// A confidential client registered for password and refresh_token.
const APP: &str = "app";
const APP_SECRET: &str = "app-secret-0123456789-0123456789-0123456789";
/// A resource server, registered only to introspect.
const API: &str = "api";
const API_SECRET: &str = "api-secret-0123456789-0123456789-0123456789";

async fn spawn() -> TestApp {
    let app = TestApp::spawn().await;
    app.add_client(
        APP,
        Some(APP_SECRET),
        &["password", "refresh_token"],
        "openid profile email offline_access items:read",
    )
    .await;
    app.add_client(API, Some(API_SECRET), &["client_credentials"], "items:read")
        .await;
    app
}

/// A server with `tweak` applied to its configuration, the refresh-capable client (scope
/// openid) and the standard user.
async fn spawn_tweaked(tweak: impl FnOnce(&mut ferrid::config::ServeConfig)) -> TestApp {
    let dir = crate::support::TestDir::new();
    let app = TestApp::spawn_with(dir, ferrid::clock::Clock::system(), tweak).await;
    app.add_client(
        APP,
        Some(APP_SECRET),
        &["password", "refresh_token"],
        "openid",
    )
    .await;
    app.add_user(USER, PASSWORD, "").await;
    app
}

/// The refresh-capable client.
fn client(app: &TestApp) -> Api {
    app.api.as_client(APP, APP_SECRET)
}

/// A password grant of the standard user through [`client`]; its body.
async fn login(app: &TestApp, scope: &str) -> Value {
    let (status, body) = client(app).login(USER, PASSWORD, Some(scope)).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn inactive() -> Value {
    serde_json::json!({"active": false})
}

#[tokio::test]
async fn refresh_rotates_and_a_replay_revokes_the_whole_family() {
    let app = spawn().await;
    let first = login(&app, "openid profile").await;
    let r1 = field(&first, "refresh_token");
    assert_eq!(r1.len(), 43, "256 bits, base64url");

    let (status, second) = client(&app).refresh(&r1, None).await;
    assert_eq!(status, 200, "{second}");
    let r2 = field(&second, "refresh_token");
    assert_ne!(r1, r2, "rotated");
    assert!(second["access_token"].is_string() && second["id_token"].is_string());

    // Replaying r1 — in the same second as its rotation — fails and revokes the family,
    // so r2, never used, is dead too (RFC 9700 §4.14.2).
    let (status, body) = client(&app).refresh(&r1, None).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
    let (status, body) = client(&app).refresh(&r2, None).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
    assert_eq!(client(&app).introspect(&r2).await, inactive());

    // Only digests are stored.
    let stored = app.store.refresh_record(&r2).await.unwrap();
    assert!(stored.is_none(), "the raw token is not a key of the table");
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
    let app = spawn().await;
    let first = login(&app, "openid profile items:read").await;
    let (status, narrow) = client(&app)
        .refresh(&field(&first, "refresh_token"), Some("items:read"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(narrow["scope"], "items:read");
    assert!(narrow.get("id_token").is_none(), "no openid, no ID token");
    // Omitting the scope asks for the original grant again (RFC 6749 §6).
    let (status, back) = client(&app)
        .refresh(&field(&narrow, "refresh_token"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(back["scope"], "items:read openid profile");
    // Widening fails, and leaves the token usable.
    let (status, body) = client(&app)
        .refresh(&field(&back, "refresh_token"), Some("openid email"))
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_scope")
    );
    let (status, _) = client(&app)
        .refresh(&field(&back, "refresh_token"), None)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn of_twenty_concurrent_refreshes_of_one_token_exactly_one_succeeds() {
    let app = spawn().await;
    let token = field(&login(&app, "openid").await, "refresh_token");
    let rp = client(&app);
    let results = futures_util::future::join_all((0..20).map(|_| rp.refresh(&token, None))).await;
    let won = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, b)| *s == 400 && b["error"] == "invalid_grant")
    );
    // The losers presented a rotated token: a replay, so the winner's successor is dead too.
    let winner = results.iter().find(|(s, _)| *s == 200).unwrap();
    assert_eq!(
        client(&app)
            .refresh(&field(&winner.1, "refresh_token"), None)
            .await
            .0,
        400
    );
}

/// Concurrent refreshes of different sessions share statements (see store::batch): each
/// must get its own successor, and one session's replay in the same batch must not touch
/// the others.
#[tokio::test]
async fn concurrent_refreshes_of_different_sessions_each_rotate_their_own() {
    let app = spawn().await;
    let mut tokens = Vec::new();
    for _ in 0..12 {
        tokens.push(field(&login(&app, "openid").await, "refresh_token"));
    }
    let spent = tokens[0].clone();
    let rp = client(&app);
    assert_eq!(rp.refresh(&spent, None).await.0, 200);
    for round in 0..3 {
        // Round 0 also replays the spent token of the first session.
        let replay = (round == 0).then(|| rp.refresh(&spent, None));
        let (results, replayed) = tokio::join!(
            futures_util::future::join_all(tokens.iter().skip(1).map(|t| rp.refresh(t, None))),
            async {
                match replay {
                    Some(r) => Some(r.await),
                    None => None,
                }
            }
        );
        if let Some((status, _)) = replayed {
            assert_eq!(status, 400);
        }
        let mut next = vec![String::new()];
        for (status, body) in &results {
            assert_eq!(*status, 200, "round {round}: {body}");
            next.push(field(body, "refresh_token"));
        }
        let mut distinct = next.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            next.len(),
            "every session has its own successor"
        );
        tokens = next;
    }
}

#[tokio::test]
async fn a_replay_ends_the_access_tokens_of_its_session_too() {
    let app = spawn().await;
    let first = login(&app, "openid").await;
    let access = first["access_token"].as_str().unwrap().to_owned();
    let (_, second) = client(&app)
        .refresh(&field(&first, "refresh_token"), None)
        .await;
    let newer_access = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.userinfo(&access).await.status(), 200);
    // Even a replay that asks for a scope it was never granted revokes the family.
    let (status, _) = client(&app)
        .refresh(&field(&first, "refresh_token"), Some("items:write"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        client(&app)
            .refresh(&field(&second, "refresh_token"), None)
            .await
            .0,
        400
    );
    // RFC 7009 §2.1 / RFC 9700 §4.14.2: the session's access tokens end at ferrid's own
    // endpoints too.
    assert_eq!(app.userinfo(&access).await.status(), 401);
    assert_eq!(app.userinfo(&newer_access).await.status(), 401);
    assert_eq!(client(&app).introspect(&newer_access).await, inactive());
}

#[tokio::test]
async fn refreshed_id_tokens_keep_sub_and_auth_time_and_the_family_has_an_absolute_lifetime() {
    let app = spawn_tweaked(|c| c.refresh_token_ttl = std::time::Duration::from_secs(3600)).await;
    let first = login(&app, "openid").await;
    let id1 = insecure_claims(first["id_token"].as_str().unwrap());

    app.clock.advance(1000);
    let (status, second) = client(&app)
        .refresh(&field(&first, "refresh_token"), None)
        .await;
    assert_eq!(status, 200);
    let id2 = insecure_claims(second["id_token"].as_str().unwrap());
    assert_eq!(id2["sub"], id1["sub"]);
    assert_eq!(
        id2["auth_time"], id1["auth_time"],
        "auth_time is the login, not the refresh"
    );
    // The wall clock may tick between the two requests.
    let later = id2["iat"].as_i64().unwrap() - id1["iat"].as_i64().unwrap();
    assert!((1000..=1002).contains(&later), "{later}");

    // An hour after the login the family is over, however recently it was rotated.
    app.clock.advance(2601);
    let (status, body) = client(&app)
        .refresh(&field(&second, "refresh_token"), None)
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
}

#[tokio::test]
async fn disabling_a_user_changing_the_password_or_removing_the_client_ends_refreshes() {
    let app = spawn().await;
    let dir = app.dir.path();

    let token = field(&login(&app, "openid").await, "refresh_token");
    assert!(
        ferrid_cli(dir, &["user", "disable", USER], "")
            .status
            .success()
    );
    let (status, body) = client(&app).refresh(&token, None).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
    assert!(
        ferrid_cli(dir, &["user", "enable", USER], "")
            .status
            .success()
    );
    let (status, _) = client(&app).refresh(&token, None).await;
    assert_eq!(
        status, 400,
        "enabling the user again does not revive old sessions"
    );

    let token = field(&login(&app, "openid").await, "refresh_token");
    let out = ferrid_cli(dir, &["user", "passwd", USER], "a brand new password\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, body) = client(&app).refresh(&token, None).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );

    let res = app
        .token(
            &[
                ("grant_type", "password"),
                ("username", USER),
                ("password", "a brand new password"),
            ],
            Some((APP, APP_SECRET)),
        )
        .await;
    let token = field(&res.json::<Value>().await.unwrap(), "refresh_token");
    assert!(
        ferrid_cli(dir, &["client", "remove", APP], "")
            .status
            .success()
    );
    let (status, body) = client(&app).refresh(&token, None).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
    // The client's families went with it: registering the same id again brings no old
    // session back.
    app.add_client(
        APP,
        Some(APP_SECRET),
        &["password", "refresh_token"],
        "openid",
    )
    .await;
    let (status, body) = client(&app).refresh(&token, None).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_their_client_and_grant_type() {
    let app = spawn().await;
    let token = field(&login(&app, "openid").await, "refresh_token");
    // Another client presenting it gets invalid_grant, and the token stays good.
    app.add_client(
        "other",
        Some("other-secret-0123456789-0123456789"),
        &["password", "refresh_token"],
        "openid",
    )
    .await;
    let res = app
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            Some(("other", "other-secret-0123456789-0123456789")),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(client(&app).refresh(&token, None).await.0, 200);

    // A client not registered for refresh_token gets no refresh token and cannot refresh.
    let body = app.login("openid").await;
    assert!(body.get("refresh_token").is_none());
    let res = app
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "whatever"),
            ],
            Some((crate::support::CLIENT, crate::support::CLIENT_SECRET)),
        )
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    // offline_access is granted only to clients that may refresh.
    assert_eq!(
        login(&app, "openid offline_access").await["scope"],
        "offline_access openid"
    );
}

#[tokio::test]
async fn client_credentials_is_for_confidential_clients_registered_for_it() {
    let app = spawn().await;
    let res = app
        .token(
            &[("grant_type", "client_credentials")],
            Some((API, API_SECRET)),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], "items:read");
    assert!(body.get("id_token").is_none() && body.get("refresh_token").is_none());
    let claims = insecure_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], API);
    assert_eq!(claims["client_id"], API);
    assert!(claims.get("auth_time").is_none());

    // No user, so no OIDC scopes: one the client is not registered for is ignored (OIDC
    // Core §3.1.2.1) …
    let res = app
        .token(
            &[
                ("grant_type", "client_credentials"),
                ("scope", "openid items:read"),
            ],
            Some((API, API_SECRET)),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["scope"], "items:read");
    // … and one it is registered for is refused.
    app.add_client(
        "job",
        Some(API_SECRET),
        &["client_credentials"],
        "openid items:read",
    )
    .await;
    let res = app
        .token(
            &[("grant_type", "client_credentials"), ("scope", "openid")],
            Some(("job", API_SECRET)),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_scope");
    // Not registered for it.
    let res = app
        .token(
            &[("grant_type", "client_credentials")],
            Some((APP, APP_SECRET)),
        )
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    // A public client (even one registered for it behind the command line's back).
    app.add_client("spa", None, &["client_credentials"], "items:read")
        .await;
    let res = app
        .token(
            &[("grant_type", "client_credentials"), ("client_id", "spa")],
            None,
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
}

#[tokio::test]
async fn introspection_answers_for_live_expired_revoked_garbage_and_foreign_tokens() {
    let app = spawn().await;
    let body = login(&app, "openid items:read").await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = field(&body, "refresh_token");

    let live = client(&app).introspect(&access).await;
    assert_eq!(live["active"], true);
    assert_eq!(live["scope"], "items:read openid");
    assert_eq!(live["client_id"], APP);
    assert_eq!(live["username"], USER);
    assert_eq!(live["token_type"], "Bearer");
    assert_eq!(live["iss"], app.base.as_str());
    assert!(live["exp"].is_i64() && live["sub"].is_string());

    let live_refresh = app
        .api
        .as_client(APP, APP_SECRET)
        .introspect(&refresh_token)
        .await;
    assert_eq!(live_refresh["active"], true);
    assert_eq!(live_refresh["username"], USER);
    // The hint is only a hint.
    let hinted = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(APP, Some(APP_SECRET))
        .form(&[
            ("token", access.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(hinted["active"], true);

    // Another client may not see them (its aud is not named either).
    assert_eq!(
        app.api.as_client(API, API_SECRET).introspect(&access).await,
        inactive()
    );
    assert_eq!(
        app.api
            .as_client(API, API_SECRET)
            .introspect(&refresh_token)
            .await,
        inactive()
    );

    // Garbage, and a token of another ferrid (another issuer, another key).
    for junk in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        assert_eq!(client(&app).introspect(junk).await, inactive());
    }
    // Rotated away (its family still live): inactive, and the successor is active.
    let (_, next) = client(&app).refresh(&refresh_token, None).await;
    assert_eq!(client(&app).introspect(&refresh_token).await, inactive());
    assert_eq!(
        client(&app)
            .introspect(&field(&next, "refresh_token"))
            .await["active"],
        true
    );
    let stranger = spawn().await;
    let foreign = login(&stranger, "openid").await;
    assert_eq!(
        client(&app)
            .introspect(foreign["access_token"].as_str().unwrap())
            .await,
        inactive()
    );
    assert_eq!(
        client(&app)
            .introspect(&field(&foreign, "refresh_token"))
            .await,
        inactive()
    );

    // Revoked.
    assert_eq!(client(&app).revoke(&access).await.status(), 200);
    assert_eq!(client(&app).introspect(&access).await, inactive());

    // Expired.
    let fresh = login(&app, "openid").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock.advance(901);
    assert_eq!(client(&app).introspect(&fresh).await, inactive());

    // Wrong client credentials: 401, and no answer about the token.
    let res = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(APP, Some("wrong"))
        .form(&[("token", fresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"));
    // A public client cannot introspect.
    app.add_client("spa", None, &["password"], "openid").await;
    let res = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", fresh.as_str()), ("client_id", "spa")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Missing token parameter.
    let res = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(APP, Some(APP_SECRET))
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn a_resource_server_named_in_aud_may_introspect() {
    let app = TestApp::spawn().await;
    let mut client = app
        .store
        .client(crate::support::CLIENT)
        .await
        .unwrap()
        .unwrap();
    client.id = "with-aud".into();
    client.audiences = vec![API.into()];
    app.store.insert_client(&client).await.unwrap();
    app.add_client(API, Some(API_SECRET), &["client_credentials"], "items:read")
        .await;
    let res = app
        .token(
            &[
                ("grant_type", "password"),
                ("username", USER),
                ("password", PASSWORD),
                ("client_id", "with-aud"),
                ("client_secret", crate::support::CLIENT_SECRET),
            ],
            None,
        )
        .await;
    let access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = app.api.as_client(API, API_SECRET).introspect(&access).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["aud"], API);
}

#[tokio::test]
async fn revocation_of_refresh_and_access_tokens() {
    let app = spawn().await;
    let first = login(&app, "openid").await;
    let (_, second) = client(&app)
        .refresh(&field(&first, "refresh_token"), None)
        .await;
    let current = field(&second, "refresh_token");

    // Revoking the current refresh token revokes its family.
    assert_eq!(client(&app).revoke(&current).await.status(), 200);
    assert_eq!(client(&app).refresh(&current, None).await.0, 400);
    assert_eq!(client(&app).introspect(&current).await, inactive());

    // ...and ends the access tokens of that session at ferrid's own endpoints.
    let session_access = second["access_token"].as_str().unwrap();
    assert_eq!(app.userinfo(session_access).await.status(), 401);

    // Revoking an access token: userinfo and introspection refuse it until it expires.
    let access = login(&app, "openid").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.userinfo(&access).await.status(), 200);
    let res = client(&app).revoke(&access).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(app.userinfo(&access).await.status(), 401);

    // Unknown tokens: 200 (RFC 7009 §2.2).
    assert_eq!(client(&app).revoke("no-such-token").await.status(), 200);
    // Another client's token: refused.
    let other = login(&app, "openid").await;
    let res = app
        .api
        .as_client(API, API_SECRET)
        .revoke(&field(&other, "refresh_token"))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(
        client(&app)
            .refresh(&field(&other, "refresh_token"), None)
            .await
            .0,
        200,
        "not revoked"
    );
    // Wrong client credentials.
    assert_eq!(
        app.api
            .as_client(APP, "wrong")
            .revoke(&field(&other, "refresh_token"))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn expired_tokens_and_revocations_are_purged() {
    let app = spawn().await;
    let body = login(&app, "openid").await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let token = field(&body, "refresh_token");
    assert_eq!(client(&app).revoke(&access).await.status(), 200);
    let now = app.clock.now();
    assert_eq!(
        app.store.purge_expired(now).await.unwrap(),
        0,
        "nothing is expired yet"
    );
    assert_eq!(
        client(&app).refresh(&token, None).await.0,
        200,
        "live tokens survive a purge"
    );
    // After the refresh family's lifetime (30 days) everything is gone: two tokens (the
    // rotated one and its successor), their family, and the revocation record.
    let later = now + 31 * 24 * 3600;
    assert_eq!(app.store.purge_expired(later).await.unwrap(), 4);
    assert_eq!(app.store.purge_expired(later).await.unwrap(), 0);
    let digest = ferrid::tokens::opaque::sha256_hex(&token);
    assert!(app.store.refresh_record(&digest).await.unwrap().is_none());
}

#[tokio::test]
async fn the_background_task_purges_without_being_asked() {
    let app = spawn_tweaked(|c| c.purge_interval = std::time::Duration::from_millis(100)).await;
    let token = field(&login(&app, "openid").await, "refresh_token");
    let digest = ferrid::tokens::opaque::sha256_hex(&token);
    assert!(app.store.refresh_record(&digest).await.unwrap().is_some());
    app.clock.advance(31 * 24 * 3600);
    let gone = app
        .eventually(std::time::Duration::from_secs(5), || async {
            app.store.refresh_record(&digest).await.unwrap().is_none()
        })
        .await;
    assert!(gone, "the purge task did not run");
}

#[tokio::test]
async fn revocation_is_no_oracle_and_a_removed_clients_own_tokens_end() {
    let app = spawn().await;
    // Another client's dead refresh token answers like an unknown one.
    let first = login(&app, "openid").await;
    let (_, _second) = client(&app)
        .refresh(&field(&first, "refresh_token"), None)
        .await;
    assert_eq!(
        app.api
            .as_client(API, API_SECRET)
            .revoke(&field(&first, "refresh_token"))
            .await
            .status(),
        200
    );

    // A client_credentials token stays active only while its client exists.
    let res = app
        .token(
            &[("grant_type", "client_credentials")],
            Some((API, API_SECRET)),
        )
        .await;
    let own = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.api.as_client(API, API_SECRET).introspect(&own).await["active"],
        true
    );
    app.add_client(
        "rs",
        Some(API_SECRET),
        &["client_credentials"],
        "items:read",
    )
    .await;
    let mut with_aud = app.store.client(API).await.unwrap().unwrap();
    with_aud.audiences = vec!["rs".into()];
    assert!(app.store.delete_client(API).await.unwrap());
    app.store.insert_client(&with_aud).await.unwrap();
    let res = app
        .token(
            &[("grant_type", "client_credentials")],
            Some((API, API_SECRET)),
        )
        .await;
    let aud_token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.api
            .as_client("rs", API_SECRET)
            .introspect(&aud_token)
            .await["active"],
        true
    );
    assert!(app.store.delete_client(API).await.unwrap());
    assert_eq!(
        app.api
            .as_client("rs", API_SECRET)
            .introspect(&aud_token)
            .await,
        inactive()
    );
}

/// The rotation statement itself (both engines): it stores the successor in the family,
/// refuses a token of a revoked family without spending it or storing a successor, and
/// answers a second rotation of one token as a replay that revokes the family.
#[tokio::test]
async fn one_statement_rotation_stores_the_successor_and_detects_replays() {
    use ferrid::store::Rotation;
    use ferrid::tokens::opaque::sha256_hex;
    let app = spawn().await;
    let now = app.clock.now();
    let first = sha256_hex(&field(&login(&app, "openid").await, "refresh_token"));
    let family = app
        .store
        .refresh_record(&first)
        .await
        .unwrap()
        .unwrap()
        .family;
    let (second, third) = (sha256_hex("second"), sha256_hex("third"));

    let rotated = app
        .store
        .rotate_refresh_token(&first, &family.id, &second, now, None)
        .await;
    assert_eq!(rotated.unwrap(), Rotation::Rotated);
    let spent = app.store.refresh_record(&first).await.unwrap().unwrap();
    assert_eq!(spent.used_at, Some(now));
    let successor = app.store.refresh_record(&second).await.unwrap().unwrap();
    assert_eq!(
        (successor.family.id.as_str(), successor.used_at),
        (family.id.as_str(), None)
    );
    assert_eq!(successor.issued_at, now);

    // The same token again: a replay. The family is revoked, nothing is stored.
    let replay = app
        .store
        .rotate_refresh_token(&first, &family.id, &third, now, None)
        .await;
    assert_eq!(replay.unwrap(), Rotation::Reused);
    assert!(app.store.refresh_record(&third).await.unwrap().is_none());
    let successor = app.store.refresh_record(&second).await.unwrap().unwrap();
    assert!(successor.family.revoked_at.is_some());

    // The live successor of a revoked family: refused, and left unspent.
    let refused = app
        .store
        .rotate_refresh_token(&second, &family.id, &third, now, None)
        .await;
    assert_eq!(refused.unwrap(), Rotation::Refused);
    assert_eq!(
        app.store
            .refresh_record(&second)
            .await
            .unwrap()
            .unwrap()
            .used_at,
        None
    );
    assert!(app.store.refresh_record(&third).await.unwrap().is_none());

    // An expired family: refused too.
    let other = sha256_hex(&field(&login(&app, "openid").await, "refresh_token"));
    let other_family = app
        .store
        .refresh_record(&other)
        .await
        .unwrap()
        .unwrap()
        .family;
    let late = other_family.expires_at;
    let expired = app
        .store
        .rotate_refresh_token(&other, &other_family.id, &third, late, None)
        .await;
    assert_eq!(expired.unwrap(), Rotation::Refused);
    assert!(app.store.refresh_record(&third).await.unwrap().is_none());
}

/// RFC 7009: a revoked access token stays revoked. Revoking one while its user is disabled
/// records it too, so re-enabling the user does not bring it back.
#[tokio::test]
async fn an_access_token_revoked_while_its_user_is_disabled_stays_revoked() {
    let app = spawn().await;
    // A client without refresh tokens: its access tokens belong to no session.
    app.add_client("plain", Some(APP_SECRET), &["password"], "openid")
        .await;
    let res = app
        .token(
            &[
                ("grant_type", "password"),
                ("username", USER),
                ("password", PASSWORD),
                ("scope", "openid"),
            ],
            Some(("plain", APP_SECRET)),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert!(body.get("refresh_token").is_none());
    let now = app.clock.now();
    assert!(app.store.set_user_disabled(USER, true, now).await.unwrap());
    assert_eq!(app.userinfo(&access).await.status(), 401);
    assert_eq!(
        app.api
            .as_client("plain", APP_SECRET)
            .revoke(&access)
            .await
            .status(),
        200
    );
    assert!(app.store.set_user_disabled(USER, false, now).await.unwrap());
    assert_eq!(app.userinfo(&access).await.status(), 401, "still revoked");
}

/// RFC 7662 §2.1, RFC 7009 §2.1: the client is authenticated before anything else is
/// looked at — a caller with wrong credentials learns nothing, not even that it sent no token.
#[tokio::test]
async fn introspection_and_revocation_authenticate_the_client_first() {
    let app = spawn().await;
    for path in ["/introspect", "/revoke"] {
        let res = app
            .http
            .post(app.url(path))
            .basic_auth(APP, Some("wrong"))
            .form(&[("token_type_hint", "access_token")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{path}");
        let res = app
            .http
            .post(app.url(path))
            .basic_auth(APP, Some(APP_SECRET))
            .form(&[("token_type_hint", "access_token")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            400,
            "{path}: authenticated, then the missing token"
        );
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "invalid_request"
        );
    }
}
