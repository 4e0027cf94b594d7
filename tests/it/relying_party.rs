//! ferrid driven by a real relying party (the openidconnect crate), and a resource server
//! that verifies access tokens with nothing but the JWKS.

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use openidconnect::core::{CoreClient, CoreJsonWebKeySet, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthType, ClientId, ClientSecret, IssuerUrl, JsonWebKeySetUrl, Nonce,
    OAuth2TokenResponse, ResourceOwnerPassword, ResourceOwnerUsername, Scope, TokenResponse,
    TokenUrl, UserInfoUrl,
};
use serde_json::Value;

use crate::support::{CLIENT, CLIENT_SECRET, PASSWORD, TestApp, USER, field};

#[tokio::test]
async fn an_openidconnect_relying_party_logs_in_validates_the_id_token_and_refreshes() {
    let app = TestApp::spawn().await;
    // The relying party may also refresh.
    app.add_client(
        RP,
        Some(CLIENT_SECRET),
        &["password", "refresh_token"],
        "openid profile email",
    )
    .await;
    let doc = app.get_json("/.well-known/openid-configuration").await;
    let url = |field: &str| doc[field].as_str().unwrap().to_owned();

    let jwks =
        CoreJsonWebKeySet::fetch_async(&JsonWebKeySetUrl::new(url("jwks_uri")).unwrap(), &app.http)
            .await
            .unwrap();
    for auth_type in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = CoreClient::new(
            ClientId::new(RP.into()),
            IssuerUrl::new(url("issuer")).unwrap(),
            jwks.clone(),
        )
        .set_client_secret(ClientSecret::new(CLIENT_SECRET.into()))
        .set_auth_type(auth_type)
        .set_token_uri(TokenUrl::new(url("token_endpoint")).unwrap())
        .set_user_info_url(UserInfoUrl::new(url("userinfo_endpoint")).unwrap());

        let res = client
            .exchange_password(
                &ResourceOwnerUsername::new(USER.into()),
                &ResourceOwnerPassword::new(PASSWORD.into()),
            )
            .add_scope(Scope::new("openid".into()))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .request_async(&app.http)
            .await
            .unwrap();

        // Signature, iss, aud, exp: IdTokenVerifier; at_hash: checked against the token.
        let id_token = res.id_token().expect("an ID token for openid");
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, |_: Option<&Nonce>| Ok(()))
            .unwrap();
        let expected_hash = AccessTokenHash::from_token(
            res.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(claims.access_token_hash(), Some(&expected_hash));
        assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.com"));
        assert!(claims.auth_time().is_some());

        // Another audience must fail verification.
        let stranger = CoreClient::new(
            ClientId::new("someone-else".into()),
            IssuerUrl::new(url("issuer")).unwrap(),
            jwks.clone(),
        );
        assert!(
            id_token
                .claims(&stranger.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
                .is_err()
        );

        let info: CoreUserInfoClaims = client
            .user_info(res.access_token().clone(), Some(claims.subject().clone()))
            .request_async(&app.http)
            .await
            .unwrap();
        assert_eq!(info.subject(), claims.subject());
        assert_eq!(info.preferred_username().map(|u| u.as_str()), Some(USER));

        // Refresh: a new access token, a rotated refresh token, and an ID token for the same
        // user that the verifier accepts again.
        let refresh = res.refresh_token().expect("a refresh token").clone();
        let refreshed = client
            .exchange_refresh_token(&refresh)
            .request_async(&app.http)
            .await
            .unwrap();
        let new_refresh = refreshed.refresh_token().expect("a rotated refresh token");
        assert_ne!(new_refresh.secret(), refresh.secret());
        assert_ne!(
            refreshed.access_token().secret(),
            res.access_token().secret()
        );
        let new_id = refreshed.id_token().expect("an ID token on refresh");
        let new_claims = new_id
            .claims(&verifier, |_: Option<&Nonce>| Ok(()))
            .unwrap();
        assert_eq!(new_claims.subject(), claims.subject());
        assert_eq!(new_claims.auth_time(), claims.auth_time());
        // The old refresh token is spent.
        assert!(
            client
                .exchange_refresh_token(&refresh)
                .request_async(&app.http)
                .await
                .is_err()
        );
    }
}

const RP: &str = "relying-party";

#[tokio::test]
async fn a_resource_server_verifies_access_tokens_with_only_the_jwks() {
    let app = TestApp::spawn().await;
    let token = field(&app.login("openid items:read").await, "access_token");

    // What a resource server does: fetch the JWKS once, pick the key by kid, check
    // typ (RFC 9068 §4), iss, aud, exp.
    let jwks: JwkSet = app
        .http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in the JWKS");
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[&app.base]);
    validation.set_audience(&[CLIENT]);
    let data =
        jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap();
    assert_eq!(data.claims["scope"], "items:read openid");
    assert_eq!(data.claims["client_id"], CLIENT);

    // The wrong audience is refused by the same check.
    validation.set_audience(&["another-api"]);
    assert!(
        jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .is_err()
    );
}
