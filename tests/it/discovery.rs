//! Discovery, JWKS and health endpoints.

use crate::support::TestApp;
use serde_json::Value;

#[tokio::test]
async fn discovery_lists_only_what_is_implemented_and_every_url_answers() {
    let app = TestApp::spawn().await;
    let doc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["issuer"], app.base.as_str());
    assert_eq!(doc["token_endpoint"], app.url("/token").as_str());
    assert_eq!(doc["jwks_uri"], app.url("/jwks.json").as_str());
    assert_eq!(doc["userinfo_endpoint"], app.url("/userinfo").as_str());
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "password",
            "refresh_token",
            "client_credentials"
        ])
    );
    assert_eq!(
        doc["introspection_endpoint"],
        app.url("/introspect").as_str()
    );
    assert_eq!(doc["revocation_endpoint"], app.url("/revoke").as_str());
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    // Nothing unfinished is advertised.
    // Every REQUIRED member of OIDC Discovery 1.0 §3, and the code flow's.
    for required in [
        "issuer",
        "authorization_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(doc.get(required).is_some(), "{required} is missing");
    }
    assert_eq!(
        doc["authorization_endpoint"],
        app.url("/authorize").as_str()
    );
    assert_eq!(doc["end_session_endpoint"], app.url("/logout").as_str());
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    // Form Post Response Mode; Back-Channel Logout 1.0 §2.1 (logout tokens carry `sid`).
    assert_eq!(
        doc["response_modes_supported"],
        serde_json::json!(["query", "form_post"])
    );
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["request_uri_parameter_supported"], false);

    // RFC 8414 metadata is the same document.
    let rfc8414 = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(doc, rfc8414);

    // Every advertised URL exists (GET answers something other than 404/405 for GET
    // endpoints; the POST-only ones answer 400 or 401 to an empty POST).
    for (field, value) in doc.as_object().unwrap() {
        let Some(url) = value.as_str().filter(|v| v.starts_with("http")) else {
            continue;
        };
        if field == "issuer" {
            continue;
        }
        let post_only = [
            "token_endpoint",
            "introspection_endpoint",
            "revocation_endpoint",
        ];
        let res = if post_only.contains(&field.as_str()) {
            app.http.post(url).send().await.unwrap()
        } else {
            app.http.get(url).send().await.unwrap()
        };
        assert_ne!(res.status(), 404, "{field} {url}");
        assert_ne!(res.status(), 405, "{field} {url}");
    }
}

#[tokio::test]
async fn discovery_uses_the_configured_issuer_verbatim() {
    let dir = crate::support::TestDir::new();
    let app = TestApp::spawn_with(dir, ferrid::clock::Clock::system(), |c| {
        c.issuer = Some("https://id.example.com/tenant".into());
    })
    .await;
    let doc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["issuer"], "https://id.example.com/tenant");
    assert_eq!(doc["token_endpoint"], "https://id.example.com/tenant/token");
    assert_eq!(doc["jwks_uri"], "https://id.example.com/tenant/jwks.json");
}

#[tokio::test]
async fn jwks_has_public_rsa_keys_only_and_revalidates_with_its_etag() {
    let app = TestApp::spawn().await;
    let res = app.http.get(app.url("/jwks.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    assert_eq!(res.headers()["content-type"], "application/json");
    let jwks: Value = res.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
    members.sort();
    assert_eq!(
        members,
        ["alg", "e", "kid", "kty", "n", "use"],
        "no private member"
    );

    let again = app
        .http
        .get(app.url("/jwks.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let disc = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    let disc_etag = disc.headers()["etag"].to_str().unwrap().to_owned();
    let again = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .header("if-none-match", disc_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn_empty().await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // With the database closed, readiness fails fast while health still answers.
    app.store.close().await;
    let start = std::time::Instant::now();
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(start.elapsed() < std::time::Duration::from_secs(3));
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
