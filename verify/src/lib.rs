#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! - [`Verifier`] (`verifier.rs`): discovery, the JWKS cache and the checks.
//! - [`AccessToken`] (`claims.rs`): what a verified token says.
//! - [`Scoped`], [`Scopes`], [`scopes!`] (`extract.rs`): the axum extractors.
//! - [`Error`] (`error.rs`): why a request was refused, answered per RFC 6750 §3.

mod claims;
mod error;
mod extract;
mod http;
mod jws;
mod verifier;

pub use claims::AccessToken;
pub use error::{Error, SetupError};
pub use extract::{Scoped, Scopes, bearer_token};
pub use verifier::{Builder, Clock, Verifier};

/// Whether every scope is a scope token of RFC 6749 §3.3 (`1*NQSCHAR`: printable ASCII but
/// space, `"` and `\`), so it can stand in a `WWW-Authenticate` challenge as it is. Used by
/// [`scopes!`] at compile time.
#[doc(hidden)]
pub const fn __valid_scopes(scopes: &[&str]) -> bool {
    if scopes.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < scopes.len() {
        if !extract::is_scope_token(scopes[i]) {
            return false;
        }
        i += 1;
    }
    true
}
