//! ferrid-verify against a real ferrid: tokens from its token endpoint, keys from its JWKS,
//! checked by the example's router served over HTTP. One test binary (link time).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ferrid_verify::{Error, Verifier};

mod support;
use support::{
    AUDIENCE, Ferrid, PASSWORD, SERVICE, USER, WEB, forge, header_of, http, kid_of, serve_example,
    verifier,
};

/// The example's router, exactly as `cargo run --example resource_server` serves it.
#[allow(dead_code)] // its `main`
#[path = "../../examples/resource_server.rs"]
mod example;

const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_is_accepted_by_the_example_app() {
    let ferrid = Ferrid::start().await;
    let v = verifier(&ferrid, AUDIENCE).await.0;
    let app = serve_example(v).await;
    let token = ferrid.service_token("items:read").await;
    assert_eq!(header_of(&token)["typ"], "at+jwt");

    let me = http().get_with(&format!("{app}/me"), &token).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let me = me.json();
    assert_eq!(me["sub"], SERVICE);
    assert_eq!(me["client_id"], SERVICE);
    assert_eq!(me["scope"], "items:read");

    let items = http().get_with(&format!("{app}/items"), &token).await;
    assert_eq!(items.status, 200, "{}", items.body);
    assert_eq!(items.json()["owner"], SERVICE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_bearer_token_gets_401_and_a_bare_challenge() {
    let ferrid = Ferrid::start().await;
    let app = serve_example(verifier(&ferrid, AUDIENCE).await.0).await;
    for headers in [vec![], vec![("authorization", "Basic cmVwb3J0czp4")]] {
        let res = http().get(&format!("{app}/items"), &headers).await;
        assert_eq!(res.status, 401, "{headers:?}");
        // RFC 6750 §3.1: no error code when no credentials were sent.
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
        assert!(res.json().get("error").is_none(), "{}", res.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_token_gets_401_invalid_token() {
    let ferrid = Ferrid::start().await;
    let v = verifier(&ferrid, AUDIENCE).await.0;
    let app = serve_example(v.clone()).await;
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let res = http().get_with(&format!("{app}/me"), garbage).await;
        assert_eq!(res.status, 401, "{garbage}");
        let challenge = res.header("www-authenticate").unwrap();
        assert!(challenge.starts_with(INVALID_TOKEN), "{challenge}");
        assert_eq!(res.json()["error"], "invalid_token");
    }
    // A malformed token is refused before any key is needed.
    assert_eq!(v.jwks_fetches(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_audience_gets_401() {
    let ferrid = Ferrid::start().await;
    // No registered audience: its tokens' aud is its own client id.
    ferrid
        .add_client("other", &["client_credentials"], "items:read", &[])
        .await;
    let app = serve_example(verifier(&ferrid, AUDIENCE).await.0).await;
    let body = ferrid
        .token("other", &[("grant_type", "client_credentials")])
        .await;
    let token = body["access_token"].as_str().unwrap();

    let res = http().get_with(&format!("{app}/me"), token).await;
    assert_eq!(res.status, 401);
    assert_eq!(
        res.header("www-authenticate"),
        Some(
            r#"Bearer error="invalid_token", error_description="the token is for another audience""#
        )
    );
    // The same token passes a verifier for its audience.
    let theirs = verifier(&ferrid, "other").await.0;
    assert_eq!(theirs.verify(token).await.unwrap().aud, ["other"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_gets_401_after_the_leeway() {
    let ferrid = Ferrid::start().await;
    let (v, clock) = verifier(&ferrid, AUDIENCE).await;
    let app = serve_example(v.clone()).await;
    let token = ferrid.service_token("items:read").await;
    let exp = v.verify(&token).await.unwrap().exp;

    // The default leeway is 60 s: valid until exp + 60.
    clock.set(exp + 59);
    assert!(v.verify(&token).await.is_ok());
    clock.advance(1);
    assert_eq!(
        v.verify(&token).await.err(),
        Some(Error::InvalidToken("the token has expired"))
    );
    let res = http().get_with(&format!("{app}/items"), &token).await;
    assert_eq!(res.status, 401);
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token", error_description="the token has expired""#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_is_not_an_access_token() {
    let ferrid = Ferrid::start().await;
    ferrid
        .add_client(WEB, &["password"], "openid items:read", &[])
        .await;
    ferrid.add_user(USER, PASSWORD, "items:read").await;
    let body = ferrid
        .token(
            WEB,
            &[
                ("grant_type", "password"),
                ("username", USER),
                ("password", PASSWORD),
                ("scope", "openid items:read"),
            ],
        )
        .await;
    let (access, id) = (
        body["access_token"].as_str().unwrap(),
        body["id_token"].as_str().expect("an ID token"),
    );
    // A verifier for the web client: the ID token's aud, iss, exp and key all pass.
    let v = verifier(&ferrid, WEB).await.0;
    let app = serve_example(v.clone()).await;
    assert!(v.verify(access).await.is_ok());

    let res = http().get_with(&format!("{app}/me"), id).await;
    assert_eq!(res.status, 401);
    assert_eq!(
        res.header("www-authenticate"),
        Some(
            r#"Bearer error="invalid_token", error_description="not an access token: the header typ is not at+jwt""#
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_scope_gets_403_insufficient_scope() {
    let ferrid = Ferrid::start().await;
    let app = serve_example(verifier(&ferrid, AUDIENCE).await.0).await;
    let token = ferrid.service_token("items:write").await;

    // Any valid token is enough for /me…
    let me = http().get_with(&format!("{app}/me"), &token).await;
    assert_eq!(me.status, 200);
    // …but /items needs items:read (RFC 6750 §3.1).
    let res = http().get_with(&format!("{app}/items"), &token).await;
    assert_eq!(res.status, 403);
    assert_eq!(
        res.header("www-authenticate"),
        Some(
            r#"Bearer error="insufficient_scope", error_description="the token lacks a scope this resource needs", scope="items:read""#
        )
    );
    let body = res.json();
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "items:read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_key_rotation_a_token_of_the_new_key_costs_one_refetch() {
    let ferrid = Ferrid::start().await;
    let (v, clock) = verifier(&ferrid, AUDIENCE).await;
    let app = serve_example(v.clone()).await;
    let old_token = ferrid.service_token("items:read").await;
    let old_kid = kid_of(&old_token);
    assert_eq!(
        http()
            .get_with(&format!("{app}/items"), &old_token)
            .await
            .status,
        200
    );
    assert_eq!(v.jwks_fetches(), 1);

    // A new key that signs from now (`ferrid keys rotate --now`); wait until ferrid signs
    // with it (it reloads the keys dir every 200 ms here).
    let (dir, now) = (ferrid.keys_dir(), ferrid.clock.now());
    let new_kid = tokio::task::spawn_blocking(move || ferrid::tokens::keys::generate(&dir, now))
        .await
        .unwrap()
        .unwrap();
    let start = std::time::Instant::now();
    let new_token = loop {
        let token = ferrid.service_token("items:read").await;
        if kid_of(&token) != old_kid {
            break token;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "ferrid still signs with {old_kid}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(kid_of(&new_token), new_kid);

    // Past the unknown-kid interval (5 s) but well within the JWKS max-age: only the
    // unknown kid can make the verifier fetch.
    clock.advance(5);
    let res = http().get_with(&format!("{app}/items"), &new_token).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(v.jwks_fetches(), 2, "exactly one refetch");
    // Both keys are now known: no more fetches.
    for token in [&new_token, &old_token] {
        assert_eq!(
            http().get_with(&format!("{app}/items"), token).await.status,
            200
        );
    }
    assert_eq!(v.jwks_fetches(), 2);
    assert_eq!(ferrid.jwks_requests().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_kids_cause_at_most_one_refetch_per_interval() {
    let ferrid = Ferrid::start().await;
    let (v, clock) = verifier(&ferrid, AUDIENCE).await;
    let app = serve_example(v.clone()).await;
    let attacker = tokio::task::spawn_blocking(|| {
        aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap()
    })
    .await
    .unwrap();
    let valid = ferrid.service_token("items:read").await;
    assert_eq!(
        http()
            .get_with(&format!("{app}/items"), &valid)
            .await
            .status,
        200
    );
    assert_eq!(v.jwks_fetches(), 1);

    let burst = |round: u32| {
        let tokens: Vec<String> = (0..20)
            .map(|i| forge(&attacker, &format!("made-up-{round}-{i}"), &ferrid))
            .collect();
        let app = app.clone();
        async move {
            let mut answers = tokio::task::JoinSet::new();
            for token in tokens {
                let url = format!("{app}/items");
                answers.spawn(async move { http().get_with(&url, &token).await });
            }
            while let Some(res) = answers.join_next().await {
                let res = res.unwrap();
                assert_eq!(res.status, 401);
                assert_eq!(
                    res.header("www-authenticate"),
                    Some(
                        r#"Bearer error="invalid_token", error_description="the token is signed by a key the issuer does not publish""#
                    )
                );
            }
        }
    };
    // Within the interval of the first fetch: no refetch at all.
    burst(0).await;
    assert_eq!(v.jwks_fetches(), 1);
    // Each interval: one refetch for the whole burst, then none.
    for round in 1..=2 {
        clock.advance(5);
        burst(round).await;
        assert_eq!(v.jwks_fetches(), 1 + round as u64);
        burst(round + 10).await;
        assert_eq!(v.jwks_fetches(), 1 + round as u64);
    }
    assert_eq!(ferrid.jwks_requests().await, 3);
    // The real token is still served from the cache.
    assert_eq!(
        http()
            .get_with(&format!("{app}/items"), &valid)
            .await
            .status,
        200
    );
    assert_eq!(v.jwks_fetches(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_on_a_cold_cache_fetch_the_jwks_once() {
    let ferrid = Ferrid::start().await;
    let v = verifier(&ferrid, AUDIENCE).await.0;
    let app = serve_example(v.clone()).await;
    let token = ferrid.service_token("items:read").await;
    assert_eq!(v.jwks_fetches(), 0, "cold");

    let mut answers = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (url, token) = (format!("{app}/items"), token.clone());
        answers.spawn(async move { http().get_with(&url, &token).await.status });
    }
    let mut ok = 0;
    while let Some(status) = answers.join_next().await {
        assert_eq!(status.unwrap(), 200);
        ok += 1;
    }
    assert_eq!(ok, 50);
    assert_eq!(v.jwks_fetches(), 1);
    assert_eq!(ferrid.jwks_requests().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_jwks_is_revalidated_with_its_etag() {
    let ferrid = Ferrid::start().await;
    let (v, clock) = verifier(&ferrid, AUDIENCE).await;
    let token = ferrid.service_token("items:read").await;
    v.verify(&token).await.unwrap();
    assert_eq!(ferrid.jwks_answers(200).await, 1);

    // Past ferrid's max-age (at most 300 s): the next token revalidates, and ferrid answers
    // 304 Not Modified to the verifier's If-None-Match.
    clock.advance(301);
    let token = ferrid.service_token("items:read").await;
    v.verify(&token).await.unwrap();
    assert_eq!(v.jwks_fetches(), 2);
    assert_eq!(ferrid.jwks_answers(304).await, 1);
    assert_eq!(ferrid.jwks_answers(200).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ferrid_down_a_warm_verifier_still_verifies_and_a_cold_one_answers_503() {
    let mut ferrid = Ferrid::start().await;
    let (warm, clock) = verifier(&ferrid, AUDIENCE).await;
    let (cold, _) = verifier(&ferrid, AUDIENCE).await;
    let (warm_app, cold_app) = (serve_example(warm.clone()).await, serve_example(cold).await);
    let token = ferrid.service_token("items:read").await;
    assert_eq!(
        http()
            .get_with(&format!("{warm_app}/items"), &token)
            .await
            .status,
        200
    );
    ferrid.stop().await;

    // Fresh keys: no fetch needed.
    assert_eq!(
        http()
            .get_with(&format!("{warm_app}/items"), &token)
            .await
            .status,
        200
    );
    assert_eq!(warm.jwks_fetches(), 1);
    // Stale keys: the refetch fails, the keys held keep verifying, and the next retry
    // waits for the interval instead of every request waiting for a dead issuer.
    clock.advance(301);
    for _ in 0..3 {
        let res = http().get_with(&format!("{warm_app}/items"), &token).await;
        assert_eq!(res.status, 200, "{}", res.body);
    }
    assert_eq!(warm.jwks_fetches(), 2);

    // No keys at all: the token cannot be judged.
    let res = http().get_with(&format!("{cold_app}/items"), &token).await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.header("www-authenticate").is_none());
    assert_eq!(res.header("retry-after"), Some("5"));
    assert_eq!(res.json()["error"], "temporarily_unavailable");
    // What needs no key is still judged.
    let res = http()
        .get_with(&format!("{cold_app}/items"), "garbage")
        .await;
    assert_eq!(res.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazily_built_verifier_discovers_on_the_first_token() {
    let ferrid = Ferrid::start().await;
    let v = Verifier::builder(&ferrid.issuer, AUDIENCE).build().unwrap();
    let token = ferrid.service_token("items:read").await;
    assert_eq!(v.verify(&token).await.unwrap().sub, SERVICE);
    assert_eq!(v.jwks_fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_refuses_a_document_of_another_issuer() {
    let ferrid = Ferrid::start().await;
    // Fetches the same document (a terminating `/` is dropped before the well-known path,
    // OIDC Discovery §4.1), whose issuer has no trailing slash: not the configured one.
    let err = Verifier::discover(format!("{}/", ferrid.issuer), AUDIENCE)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ferrid_verify::SetupError::IssuerMismatch { .. }),
        "{err}"
    );
    let err = Verifier::discover(format!("{}/nowhere", ferrid.issuer), AUDIENCE)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ferrid_verify::SetupError::Discovery { .. }),
        "{err}"
    );
}
