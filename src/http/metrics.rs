//! `GET /metrics` (OpenMetrics text) and the middleware that counts every request.
//! Restrict `/metrics` to your monitoring, at the proxy or with `--metrics-bind` (a listener
//! of its own): it is not secret, but not public.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::paths;
use super::state::AppState;
use crate::metrics::{Method, Process, Scraped};

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

/// Counts the request by route pattern, method and status, times it, and counts it in
/// flight while it runs.
pub async fn track(State(s): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| paths::pattern(m.as_str()));
    let method = Method::of(req.method());
    let metrics = s.oauth.metrics();
    let _in_flight = metrics.in_flight();
    let start = Instant::now();
    let res = next.run(req).await;
    metrics.request(route, method, res.status().as_u16(), start.elapsed());
    res
}
