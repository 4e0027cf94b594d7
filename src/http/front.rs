//! What every request passes through once, in one service around the router: a request id
//! (kept from the client or made here, and echoed in the response), a tracing span that names
//! the route (never the URI: query strings can carry codes and tokens), the request timeout,
//! `X-Content-Type-Options: nosniff`, and the request's count, duration and in-flight gauge
//! in `/metrics`.
//!
//! One service instead of a stack of tower layers applied to every route: axum clones a
//! route's whole boxed stack for each request, and each `from_fn` middleware boxes once more,
//! so six layers cost a request about a third of what a trivial route costs in all (measured
//! with wrk on JWKS; see the README's Performance section). This costs one allocation.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::http::header::X_CONTENT_TYPE_OPTIONS;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Service, ServiceExt};
use tracing::Instrument;

use super::{REQUEST_TIMEOUT, paths};
use crate::metrics::{Method, Metrics};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client; a longer one is replaced.
const MAX_REQUEST_ID: usize = 128;

/// `inner` (the router) behind the front door.
#[derive(Clone)]
pub struct Front<S> {
    inner: S,
    ids: RequestIds,
    metrics: Arc<Metrics>,
}

impl<S> Front<S> {
    pub fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            ids: RequestIds::new(),
            metrics,
        }
    }
}

impl<S> Service<Request<Body>> for Front<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready; `call` readies its own clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let id = match req.headers().get(REQUEST_ID) {
            Some(id) if !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.to_str().is_ok() => {
                id.clone()
            }
            _ => {
                let id = self.ids.next();
                req.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        // Our routes are fixed paths, so the path is the route pattern when it is one of
        // them; anything else is `unmatched`, so clients cannot create label values.
        let route = paths::pattern(req.uri().path()).unwrap_or("unmatched");
        let method = Method::of(req.method());
        let span = tracing::info_span!(
            "http",
            method = %req.method(),
            route,
            request_id = id.to_str().unwrap_or_default()
        );
        let inner = self.inner.clone();
        let metrics = self.metrics.clone();
        Box::pin(
            async move {
                let _in_flight = metrics.in_flight();
                let started = Instant::now();
                let mut res = match tokio::time::timeout(REQUEST_TIMEOUT, inner.oneshot(req)).await
                {
                    Ok(Ok(res)) => res,
                    Err(_) => {
                        tracing::warn!(timeout = ?REQUEST_TIMEOUT, "request timed out");
                        StatusCode::SERVICE_UNAVAILABLE.into_response()
                    }
                };
                let elapsed = started.elapsed();
                let status = res.status();
                if status.is_server_error() {
                    tracing::error!(status = status.as_u16(), latency = ?elapsed, "response failed");
                } else {
                    tracing::debug!(status = status.as_u16(), latency = ?elapsed, "answered");
                }
                let headers = res.headers_mut();
                headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
                headers.insert(REQUEST_ID, id);
                metrics.request(route, method, status.as_u16(), elapsed);
                Ok(res)
            }
            .instrument(span),
        )
    }
}

/// Request ids: a random prefix for this process and a counter, e.g. `4f9c2a1e07b3d5c8-42`.
/// Unique across replicas and restarts like a UUID, without a call into the kernel's random
/// number generator for every request.
#[derive(Clone)]
pub struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    pub fn new() -> Self {
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            prefix: prefix[..16].into(),
            next: Arc::default(),
        }
    }

    pub fn next(&self) -> HeaderValue {
        let mut n = self.next.fetch_add(1, Ordering::Relaxed);
        // `prefix-n` written by hand: `format!` costs a request more than all of this.
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut id = Vec::with_capacity(self.prefix.len() + 1 + digits.len() - i);
        id.extend_from_slice(self.prefix.as_bytes());
        id.push(b'-');
        id.extend_from_slice(&digits[i..]);
        HeaderValue::from_maybe_shared(bytes::Bytes::from(id))
            .unwrap_or(HeaderValue::from_static("-"))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_a_process_prefix_and_a_counter() {
        let ids = RequestIds::new();
        let id = |ids: &RequestIds| ids.next().to_str().unwrap().to_owned();
        let (first, second) = (id(&ids), id(&ids));
        let (prefix, n) = first.split_once('-').unwrap();
        assert_eq!(prefix.len(), 16);
        assert!(prefix.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            second,
            format!("{prefix}-{}", n.parse::<u64>().unwrap() + 1)
        );
        assert_ne!(id(&RequestIds::new()).split_once('-').unwrap().0, prefix);
    }
}
