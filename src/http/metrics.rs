//! `GET /metrics` (OpenMetrics text); `front` counts every request.
//! Restrict `/metrics` to your monitoring, at the proxy or with `--metrics-bind` (a listener
//! of its own): it is not secret, but not public.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::metrics::{Process, Scraped};

/// OpenMetrics 1.0 (what the prometheus-client crate writes; Prometheus asks for it).
const CONTENT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn metrics(State(s): State<AppState>) -> Response {
    let oauth = s.oauth.clone();
    let now = s.clock.now();
    // /proc is file I/O: read it, and render, off the async workers.
    let rendered = tokio::task::spawn_blocking(move || {
        let scraped = Scraped {
            process: Process::read(),
            ..oauth.scrape(now)
        };
        oauth.metrics().render(&scraped)
    })
    .await;
    match rendered {
        Ok(body) => (
            [
                (CONTENT_TYPE, HeaderValue::from_static(CONTENT)),
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
