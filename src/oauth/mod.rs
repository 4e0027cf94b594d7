//! The protocol: client authentication, scope policy, grants, userinfo. No axum and no SQL
//! here: functions take parsed requests and `now`, and return results or RFC-shaped errors.

pub mod client_auth;
mod error;
pub mod grants;
pub mod params;
pub mod scope;
mod userinfo;

use std::time::Duration;

pub use client_auth::ClientAuth;
pub use error::{BearerError, OAuthError};
pub use grants::TokenResponse;
pub use params::Params;
pub use userinfo::UserInfo;

use crate::password::Passwords;
use crate::store::Store;
use crate::tokens::TokenIssuer;

/// Token lifetimes.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub access_token: Duration,
    pub id_token: Duration,
}

/// Everything the protocol needs; one per server, cheap to clone.
#[derive(Clone)]
pub struct OAuth {
    pub store: Store,
    pub tokens: TokenIssuer,
    pub passwords: Passwords,
    pub lifetimes: Lifetimes,
}
