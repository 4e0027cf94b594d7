//! `GET /jwks.json` (RFC 7517 §5): the public signing keys, from memory. The body is rebuilt
//! only when the keys dir changes; an ETag lets caches revalidate cheaply.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::Response;

use super::state::AppState;
use crate::tokens::keys::JWKS_MAX_AGE_SECS;

/// The usual answer (RFC 9111 §5.2.2.1). New keys are published at least this long plus a
/// minute before they sign (`--key-publish-ahead`), so a resource server that honours it
/// has every key before the first token it signed; it should still refetch, rate-limited,
/// when it meets an unknown `kid` (a key rotated with `keys rotate --now`).
const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("public, max-age=300");
const _: () = assert!(JWKS_MAX_AGE_SECS == 300, "CACHE_CONTROL says 300");

/// Takes the request rather than a `HeaderMap`, which axum would clone for the extractor.
pub async fn jwks(State(s): State<AppState>, req: Request) -> Response {
    let ring = s.oauth.keys().current();
    // Shorter when the schedule publishes a key sooner: no cached copy outlives the set.
    let cache_control = match ring.jwks_max_age(s.clock.now()) {
        JWKS_MAX_AGE_SECS => CACHE_CONTROL,
        secs => HeaderValue::try_from(format!("public, max-age={secs}")).unwrap_or(CACHE_CONTROL),
    };
    super::cached_json(
        req.headers(),
        ring.jwks_body().clone(),
        ring.jwks_etag(),
        cache_control,
    )
}
