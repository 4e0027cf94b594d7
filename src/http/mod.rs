//! The HTTP adapters: extract, call one `oauth` function, shape the response.

mod authorize;
pub mod cookies;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod front;
mod health;
mod jwks;
mod logout;
mod metrics;
mod outage;
mod pages;
pub mod paths;
pub mod serve;
pub mod state;
mod token;
mod userinfo;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use state::AppState;

/// Largest request body accepted on any endpoint; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A request that takes longer is answered 503 and dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every endpoint behind the front door ([`front::Front`]); `/metrics` too unless it has a
/// listener of its own ([`metrics_service`]).
pub fn service(state: AppState, with_metrics: bool) -> front::Front<Router> {
    let metrics = state.oauth.metrics_handle();
    front::Front::new(router(state, with_metrics), metrics)
}

/// The routes. Requests reach them through [`service`].
fn router(state: AppState, with_metrics: bool) -> Router {
    // What needs the database: answered 503 at once while it is down (`outage`).
    let database = Router::new()
        .route(paths::TOKEN, post(token::token))
        .route(
            paths::USERINFO,
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(
            paths::AUTHORIZE,
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route(paths::LOGIN, post(authorize::login))
        .route(paths::CONSENT, post(authorize::consent))
        .route(paths::LOGOUT, get(logout::logout).post(logout::logout_post))
        .route(paths::INTROSPECT, post(token::introspect))
        .route(paths::REVOKE, post(token::revoke))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            outage::fail_fast,
        ));
    let mut router = Router::new()
        .route(paths::OPENID_CONFIGURATION, get(discovery::discovery))
        .route(paths::OAUTH_AUTHORIZATION_SERVER, get(discovery::discovery))
        .route(paths::JWKS, get(jwks::jwks))
        .route(paths::STYLESHEET, get(pages::stylesheet))
        .route(paths::HEALTHZ, get(health::healthz))
        .route(paths::READYZ, get(health::readyz))
        .merge(database);
    if with_metrics {
        router = router.route(paths::METRICS, get(metrics::metrics));
    }
    router
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// `/metrics` alone, for `--metrics-bind`, behind the same front door.
pub fn metrics_service(state: AppState) -> front::Front<Router> {
    let metrics = state.oauth.metrics_handle();
    let router = Router::new()
        .route(paths::METRICS, get(metrics::metrics))
        .with_state(state);
    front::Front::new(router, metrics)
}

/// A JSON body from memory with an ETag; 304 when the client already has it (RFC 9110 §13.1.2).
fn cached_json(
    headers: &HeaderMap,
    body: bytes::Bytes,
    etag: &str,
    cache: HeaderValue,
) -> Response {
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let etag = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\""));
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(ETAG, etag), (CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (ETAG, etag),
            (CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}
