//! `GET /jwks.json` (RFC 7517 §5): the public signing keys, from memory. The body is rebuilt
//! only when the keys dir changes; an ETag lets caches revalidate cheaply.

use axum::extract::{Request, State};
use axum::response::Response;

use super::state::AppState;

/// Short max-age: after a rotation, resource servers should see the new key within a minute
/// (and should refetch at once when they meet an unknown `kid`).
const CACHE_CONTROL: &str = "public, max-age=60";

/// Takes the request rather than a `HeaderMap`, which axum would clone for the extractor.
pub async fn jwks(State(s): State<AppState>, req: Request) -> Response {
    let ring = s.oauth.keys().current();
    super::cached_json(
        req.headers(),
        ring.jwks_body().clone(),
        ring.jwks_etag(),
        CACHE_CONTROL,
    )
}
