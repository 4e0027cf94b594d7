//! `GET /healthz` (the process serves) and `GET /readyz` (and its database answers).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::state::AppState;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// 503 within two seconds when the database does not answer — at once while the probe
/// finds it down — so a load balancer can take this replica out instead of waiting on it.
pub async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.oauth.database_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "database unavailable"})),
        );
    }
    match tokio::time::timeout(Duration::from_secs(2), s.oauth.database_ready()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "database unavailable"})),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "database timeout"})),
        ),
    }
}
