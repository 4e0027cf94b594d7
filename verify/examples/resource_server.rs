//! A resource server that trusts ferrid's access tokens: `GET /me` for any valid token,
//! `GET /items` for a token granted `items:read`.
//!
//! ```sh
//! FERRID_ISSUER=http://127.0.0.1:8080 AUDIENCE=demo-app \
//!   cargo run -p ferrid-verify --example resource_server
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/items
//! ```
//!
//! `BIND` sets the address (default `127.0.0.1:3000`); `RUST_LOG` the log filter. The tests
//! in `verify/tests` serve this very router.

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use ferrid_verify::{AccessToken, Scoped, Verifier};
use serde_json::json;

ferrid_verify::scopes!(
    /// What `/items` needs.
    pub ItemsRead = "items:read"
);

/// The routes; the verifier is the router's state (a larger app's state would hold it and
/// implement `FromRef<AppState> for Verifier`).
pub fn app(verifier: Verifier) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/items", get(items))
        .with_state(verifier)
}

/// Any valid access token.
async fn me(token: AccessToken) -> impl IntoResponse {
    json_body(json!({
        "sub": token.sub,
        "client_id": token.client_id,
        "scope": token.scopes.join(" "),
    }))
}

/// A token granted `items:read`; any other valid token gets 403 `insufficient_scope`.
async fn items(token: Scoped<ItemsRead>) -> impl IntoResponse {
    json_body(json!({"owner": token.sub, "items": ["apple", "pear"]}))
}

fn json_body(value: serde_json::Value) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], value.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "resource_server=info,ferrid_verify=info".into()),
        )
        .init();
    let issuer = std::env::var("FERRID_ISSUER")
        .map_err(|_| "set FERRID_ISSUER to ferrid's issuer URL, e.g. http://127.0.0.1:8080")?;
    let audience = std::env::var("AUDIENCE")
        .map_err(|_| "set AUDIENCE to the value access tokens' aud must contain")?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());

    let verifier = Verifier::discover(issuer, audience).await?;
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    tracing::info!(addr = %listener.local_addr()?, "resource server listening");
    axum::serve(listener, app(verifier)).await?;
    Ok(())
}
