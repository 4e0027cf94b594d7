//! Protocol errors, in RFC words. No HTTP here: `http::error` maps each to a status and body.

use std::borrow::Cow;

/// An error of the token endpoint (RFC 6749 §5.2). Descriptions are ASCII without `"` or `\`
/// (§5.2 restricts `error_description` to %x20-21 / %x23-5B / %x5D-7E) and never carry a
/// secret or a database detail.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(Cow<'static, str>),
    #[error("invalid_client")]
    InvalidClient,
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(&'static str),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(Cow<'static, str>),
    /// Too many password checks are waiting: try again shortly (answered 503 + Retry-After).
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
    /// Too many failed logins for this username or address: wait this many seconds
    /// (answered 429 + Retry-After, without checking the password).
    #[error("temporarily_unavailable: throttled")]
    Throttled(i64),
    /// Anything that is our fault. Logged with its cause; answered `server_error` without detail.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl OAuthError {
    pub fn invalid_request(msg: impl Into<Cow<'static, str>>) -> Self {
        OAuthError::InvalidRequest(msg.into())
    }

    /// The `error` code of RFC 6749 §5.2 (and §4.1.2.1 for the two 5xx codes).
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::TemporarilyUnavailable | OAuthError::Throttled(_) => {
                "temporarily_unavailable"
            }
            OAuthError::Internal(_) => "server_error",
        }
    }

    /// The `error_description`: says what to do, never why in detail for security failures.
    pub fn description(&self) -> Cow<'static, str> {
        match self {
            OAuthError::InvalidRequest(m) | OAuthError::InvalidScope(m) => m.clone(),
            OAuthError::InvalidClient => "client authentication failed".into(),
            OAuthError::InvalidGrant(m) | OAuthError::UnauthorizedClient(m) => (*m).into(),
            OAuthError::UnsupportedGrantType => {
                "grant_type is not supported; see grant_types_supported in the discovery document"
                    .into()
            }
            OAuthError::TemporarilyUnavailable => {
                "the server is busy or its database is unreachable; retry after the Retry-After delay"
                    .into()
            }
            OAuthError::Throttled(_) => {
                "too many failed logins; retry after the Retry-After delay".into()
            }
            OAuthError::Internal(_) => "internal error; the server log has the details".into(),
        }
    }
}

/// An error of a Bearer-protected resource (RFC 6750 §3.1).
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    /// No token at all: 401 with a bare challenge (§3.1: no error code).
    #[error("no access token")]
    Missing,
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    #[error("invalid_token: {0}")]
    InvalidToken(&'static str),
    #[error("insufficient_scope: needs {0}")]
    InsufficientScope(&'static str),
    /// The database is unreachable: 503 with Retry-After.
    #[error("temporarily unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A database that is down or overloaded is a 503 the client may retry; anything else from
/// the store is our fault.
impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                OAuthError::TemporarilyUnavailable
            }
            other => OAuthError::Internal(other.into()),
        }
    }
}

impl From<crate::store::StoreError> for BearerError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                BearerError::Unavailable
            }
            other => BearerError::Internal(other.into()),
        }
    }
}
