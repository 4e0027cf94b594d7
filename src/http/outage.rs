//! While the database probe finds the database down (`store::health`), the routes that need
//! it answer 503 with `Retry-After` at once instead of each waiting for a connection that
//! will not come; discovery, JWKS, health and metrics never pass through here.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::pages::error_page;
use super::paths;
use super::state::AppState;
use crate::oauth::OAuthError;

pub async fn fail_fast(State(s): State<AppState>, req: Request<Body>, next: Next) -> Response {
    if !s.oauth.database_down() {
        return next.run(req).await;
    }
    let page = req.extensions().get::<MatchedPath>().is_some_and(|m| {
        [
            paths::AUTHORIZE,
            paths::LOGIN,
            paths::CONSENT,
            paths::LOGOUT,
        ]
        .contains(&m.as_str())
    });
    if !page {
        return OAuthError::TemporarilyUnavailable.into_response();
    }
    let mut res = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment",
        "The sign-in service cannot reach its database. Wait a moment and try again.",
    );
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    res
}
