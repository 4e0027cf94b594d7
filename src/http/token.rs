//! The client-authenticated endpoints: `POST /token` (RFC 6749 §3.2), `POST /introspect`
//! (RFC 7662) and `POST /revoke` (RFC 7009). All take a form body and the same client
//! authentication.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::error::no_store;
use super::extract::{BasicAuth, ClientIp, OAuthForm};
use super::state::AppState;
use crate::oauth::{ClientAuth, OAuthError, Params};

pub async fn token(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    BasicAuth(basic): BasicAuth,
    OAuthForm(params): OAuthForm,
) -> Result<Response, OAuthError> {
    let auth = client_auth(basic, &params)?;
    let issued = s.oauth.token(auth, &params, ip, s.clock.now()).await?;
    Ok(no_store(Json(issued).into_response()))
}

fn client_auth(
    basic: Option<crate::oauth::client_auth::BasicCredentials>,
    params: &Params,
) -> Result<ClientAuth, OAuthError> {
    ClientAuth::from_parts(basic, params.get("client_id"), params.get("client_secret"))
}

pub async fn introspect(
    State(s): State<AppState>,
    BasicAuth(basic): BasicAuth,
    OAuthForm(params): OAuthForm,
) -> Result<Response, OAuthError> {
    let auth = client_auth(basic, &params)?;
    let token = params.get("token");
    let answer = s
        .oauth
        .introspect(auth, token, params.get("token_type_hint"), s.clock.now())
        .await?;
    Ok(no_store(Json(answer).into_response()))
}

pub async fn revoke(
    State(s): State<AppState>,
    BasicAuth(basic): BasicAuth,
    OAuthForm(params): OAuthForm,
) -> Result<Response, OAuthError> {
    let auth = client_auth(basic, &params)?;
    let token = params.get("token");
    s.oauth
        .revoke(auth, token, params.get("token_type_hint"), s.clock.now())
        .await?;
    // RFC 7009 §2.2: 200, whether or not there was anything to revoke.
    Ok(no_store(().into_response()))
}
