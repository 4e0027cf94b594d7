//! `POST /token`, the token endpoint (RFC 6749 §3.2).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::error::no_store;
use super::extract::{BasicAuth, OAuthForm};
use super::state::AppState;
use crate::oauth::{ClientAuth, OAuthError};

pub async fn token(
    State(s): State<AppState>,
    BasicAuth(basic): BasicAuth,
    OAuthForm(params): OAuthForm,
) -> Result<Response, OAuthError> {
    let auth = ClientAuth::from_parts(basic, params.get("client_id"), params.get("client_secret"))?;
    let issued = s.oauth.token(auth, &params, s.clock.now()).await?;
    Ok(no_store(Json(issued).into_response()))
}
