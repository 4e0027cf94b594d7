//! `GET /jwks.json` (RFC 7517 §5): the public signing keys, from memory. The body is rebuilt
//! only when the keys dir changes; an ETag lets caches revalidate cheaply.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::state::AppState;

/// Short max-age: after a rotation, resource servers should see the new key within a minute
/// (and should refetch at once when they meet an unknown `kid`).
const CACHE_CONTROL: &str = "public, max-age=60";

pub async fn jwks(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let ring = s.oauth.keys().current();
    super::cached_json(
        &headers,
        ring.jwks_body().to_owned(),
        ring.jwks_etag(),
        CACHE_CONTROL,
    )
}
