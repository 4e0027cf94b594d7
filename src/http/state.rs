//! What every handler can reach.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::clock::Clock;
use crate::oauth::OAuth;

use super::discovery::Discovery;

/// Cloned for every request (axum's `State`), so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<ServerContext>);

impl AppState {
    pub fn new(shared: ServerContext) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = ServerContext;
    fn deref(&self) -> &ServerContext {
        &self.0
    }
}

pub struct ServerContext {
    pub oauth: OAuth,
    /// The pages' cookie names and attributes (they depend on the issuer's scheme).
    pub cookies: super::cookies::Cookies,
    pub clock: Clock,
    pub discovery: Arc<Discovery>,
    /// Take the client address from X-Forwarded-For (behind a trusted proxy).
    pub trust_x_forwarded_for: bool,
}

impl FromRef<AppState> for Clock {
    fn from_ref(s: &AppState) -> Self {
        s.clock.clone()
    }
}
