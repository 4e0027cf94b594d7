//! `GET`/`POST /userinfo` and every way a token can be refused (RFC 6750 §3).

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{TestApp, at_header, field, insecure_claims, kid_of, signing_key_pem};

async fn refused(app: &TestApp, token: &str) -> (u16, String) {
    let res = app.userinfo(token).await;
    let status = res.status().as_u16();
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, www.unwrap_or_default())
}

fn assert_invalid_token(what: &str, (status, www): (u16, String)) {
    assert_eq!(status, 401, "{what}");
    assert!(www.starts_with("Bearer "), "{what}: {www}");
    assert!(www.contains(r#"error="invalid_token""#), "{what}: {www}");
}

#[tokio::test]
async fn userinfo_returns_the_claims_of_the_granted_scopes() {
    let app = TestApp::spawn().await;
    let body = app.login("openid profile email").await;
    let token = body["access_token"].as_str().unwrap();
    let res = app.userinfo(token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let info: Value = res.json().await.unwrap();
    assert_eq!(info["sub"], insecure_claims(token)["sub"]);
    assert_eq!(info["preferred_username"], "ada");
    assert_eq!(info["name"], "ada Lovelace");
    assert_eq!(info["email"], "ada@example.com");
    assert_eq!(info["email_verified"], true);

    // POST works the same; scopes limit the claims.
    let token = field(&app.login("openid").await, "access_token");
    let res = app
        .http
        .post(app.url("/userinfo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let info: Value = res.json().await.unwrap();
    assert_eq!(info.as_object().unwrap().len(), 1, "only sub: {info}");
}

#[tokio::test]
async fn no_token_gets_a_bare_challenge_and_a_token_without_openid_is_insufficient() {
    let app = TestApp::spawn().await;
    let res = app.http.get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let www = res.headers()["www-authenticate"].to_str().unwrap();
    assert_eq!(
        www, r#"Bearer realm="ferrid""#,
        "RFC 6750 §3.1: no error code without a token"
    );

    let token = field(&app.login("items:read").await, "access_token");
    let res = app.userinfo(&token).await;
    assert_eq!(res.status(), 403);
    let www = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        www.contains(r#"error="insufficient_scope""#) && www.contains(r#"scope="openid""#),
        "{www}"
    );
}

#[tokio::test]
async fn forged_tampered_foreign_and_expired_tokens_are_invalid_token() {
    let app = TestApp::spawn().await;
    let body = app.login("openid profile").await;
    let good = body["access_token"].as_str().unwrap().to_owned();
    let kid = kid_of(&good);
    let claims = insecure_claims(&good);
    assert_eq!(app.userinfo(&good).await.status(), 200);

    // alg: none, no signature (RFC 8725 §2.1).
    let none_header = B64.encode(json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string());
    let payload = B64.encode(claims.to_string());
    assert_invalid_token(
        "alg none",
        refused(&app, &format!("{none_header}.{payload}.")).await,
    );

    // HS256 keyed with our public key, as PEM and as the JWK modulus (RFC 8725 §2.1).
    let private = pem::parse(signing_key_pem(&app)).unwrap();
    let pair = KeyPair::from_pkcs8(private.contents()).unwrap();
    let spki = AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
    let public_pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec()));
    let jwks = app.get_json("/jwks.json").await;
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
    for secret in [public_pem.as_bytes(), n.as_bytes()] {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid.clone());
        let forged = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(secret)).unwrap();
        assert_invalid_token("HS256 with the public key", refused(&app, &forged).await);
    }

    // A stranger's RSA key, claiming our kid, and claiming its own.
    let stranger = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let der = AsDer::<Pkcs8V1Der>::as_der(&stranger).unwrap();
    let stranger_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
    let stranger_key = EncodingKey::from_rsa_pem(stranger_pem.as_bytes()).unwrap();
    for claimed_kid in [kid.as_str(), "stranger"] {
        let forged = jsonwebtoken::encode(&at_header(claimed_kid), &claims, &stranger_key).unwrap();
        assert_invalid_token("a stranger's key", refused(&app, &forged).await);
    }

    // Tampered: a claim changed, the signature kept.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut evil = claims.clone();
    evil["scope"] = json!("openid profile admin");
    parts[1] = B64.encode(evil.to_string());
    assert_invalid_token("tampered payload", refused(&app, &parts.join(".")).await);
    let mut sig = good.clone();
    let last = sig.pop().unwrap();
    sig.push(if last == 'A' { 'B' } else { 'A' });
    assert_invalid_token("tampered signature", refused(&app, &sig).await);

    // Signed with our own key, but for another issuer.
    let ours = EncodingKey::from_rsa_pem(&signing_key_pem(&app)).unwrap();
    let mut foreign = claims.clone();
    foreign["iss"] = json!("https://evil.example");
    let forged = jsonwebtoken::encode(&at_header(&kid), &foreign, &ours).unwrap();
    assert_invalid_token("another issuer", refused(&app, &forged).await);

    // An ID token is not an access token (RFC 9068 §4: typ must be at+jwt).
    let id_token = body["id_token"].as_str().unwrap();
    assert_invalid_token("an ID token", refused(&app, id_token).await);

    // Malformed.
    for junk in ["abc", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA"] {
        assert_invalid_token(junk, refused(&app, junk).await);
    }

    // Expired: move the server's clock past exp.
    app.clock.advance(901);
    assert_invalid_token("expired", refused(&app, &good).await);
}

#[tokio::test]
async fn a_disabled_users_tokens_stop_working_at_userinfo() {
    let app = TestApp::spawn().await;
    let token = field(&app.login("openid").await, "access_token");
    app.store
        .set_user_disabled("ada", true, app.clock.now())
        .await
        .unwrap();
    assert_invalid_token("disabled user", refused(&app, &token).await);
}
