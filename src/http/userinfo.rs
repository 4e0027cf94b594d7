//! `GET`/`POST /userinfo` (OpenID Connect Core §5.3), Bearer-protected (RFC 6750).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::error::no_store;
use super::extract::BearerToken;
use super::state::AppState;
use crate::oauth::BearerError;

pub async fn userinfo(
    State(s): State<AppState>,
    BearerToken(token): BearerToken,
) -> Result<Response, BearerError> {
    let info = s.oauth.userinfo(&token, s.clock.now()).await?;
    Ok(no_store(Json(info).into_response()))
}
