//! The listener: our own accept loop instead of `axum::serve`, for the limits a front door
//! needs (a slow or idle client must not hold a connection, and connections are capped):
//!
//! - at most [`Limits::max_connections`] connections at once; past that, new connections wait
//!   in the kernel's accept queue;
//! - a client must send a request's headers within [`Limits::header_read_timeout`] (this also
//!   closes idle keep-alive connections); requests then have `http::REQUEST_TIMEOUT`;
//! - on shutdown, the listener closes, requests in flight finish (up to a grace period).
//!
//! Every request carries `ConnectInfo<SocketAddr>` (the peer address).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{Service, ServiceExt};

/// Connection limits of the listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub grace_period: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            grace_period: Duration::from_secs(30),
        }
    }
}

/// Serves `router` (the routes behind `http::front`) on `listener` until `shutdown`
/// resolves.
pub async fn serve<S>(
    listener: TcpListener,
    router: S,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(Body::new)
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.grace_period) => {
            tracing::warn!("requests still running after the grace period; stopping anyway");
        }
    }
}
