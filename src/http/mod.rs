//! The HTTP adapters: extract, call one `oauth` function, shape the response.

mod authorize;
pub mod cookies;
pub mod discovery;
pub mod error;
pub mod extract;
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

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// Largest request body accepted on any endpoint; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A request that takes longer is answered 503 and dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every endpoint; `/metrics` too unless it has a listener of its own (`metrics_router`).
pub fn router(state: AppState, with_metrics: bool) -> Router {
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
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        // Spans name the route, never the URI: query strings can carry codes and tokens.
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str);
                let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok());
                tracing::info_span!("http", method = %req.method(), route, request_id = id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, RequestIds::new()))
}

/// `/metrics` alone, for `--metrics-bind`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(paths::METRICS, get(metrics::metrics))
        .with_state(state)
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
}

/// Request ids: a random prefix for this process and a counter, e.g. `4f9c2a1e07b3d5c8-42`.
/// Unique across replicas and restarts like a UUID, without a call into the kernel's random
/// number generator for every request.
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            prefix: prefix[..16].into(),
            next: Arc::default(),
        }
    }
}

impl tower_http::request_id::MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<tower_http::request_id::RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// A JSON body from memory with an ETag; 304 when the client already has it (RFC 9110 §13.1.2).
fn cached_json(
    headers: &HeaderMap,
    body: String,
    etag: &str,
    cache_control: &'static str,
) -> Response {
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let etag = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\""));
    let cache = HeaderValue::from_static(cache_control);
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

#[cfg(test)]
mod tests {
    use tower_http::request_id::MakeRequestId;

    use super::*;

    #[test]
    fn request_ids_are_a_process_prefix_and_a_counter() {
        let mut ids = RequestIds::new();
        let request = Request::new(Body::empty());
        let id = |ids: &mut RequestIds| {
            let id = ids.make_request_id(&request).unwrap();
            id.header_value().to_str().unwrap().to_owned()
        };
        let (first, second) = (id(&mut ids), id(&mut ids));
        let (prefix, n) = first.split_once('-').unwrap();
        assert_eq!(prefix.len(), 16);
        assert!(prefix.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            second,
            format!("{prefix}-{}", n.parse::<u64>().unwrap() + 1)
        );
        assert_ne!(
            id(&mut RequestIds::new()).split_once('-').unwrap().0,
            prefix
        );
    }
}
