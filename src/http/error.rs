//! The one place protocol errors become HTTP responses.

use axum::Json;
use axum::http::header::{CACHE_CONTROL, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::oauth::{BearerError, OAuthError};

/// The realm named in every challenge.
pub const REALM: &str = "ferrid";

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// `Cache-Control: no-store` and `Pragma: no-cache`: RFC 6749 §5.1 for every response that
/// carries tokens or credentials, and we send it on their errors too (§5.2).
pub fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// RFC 6749 §5.2: 400 with a JSON body, except `invalid_client`, which is 401 with a
/// `WWW-Authenticate` challenge for the Basic scheme (the scheme ferrid accepts).
impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match &self {
            OAuthError::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::BAD_REQUEST,
        };
        let description = self.description();
        let body = ErrorBody {
            error: self.code(),
            error_description: &description,
        };
        let mut res = no_store((status, Json(body)).into_response());
        match self {
            OAuthError::InvalidClient => {
                res.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="ferrid", charset="UTF-8""#),
                );
            }
            OAuthError::TemporarilyUnavailable => {
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            OAuthError::Throttled(wait) => {
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(wait.max(1)));
            }
            _ => {}
        }
        res
    }
}

/// RFC 6750 §3: a `WWW-Authenticate: Bearer` challenge with the error code; 400, 401 or 403
/// by §3.1. No error code when the request carried no token at all.
impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        let (status, code, description, scope) = match &self {
            BearerError::Missing => (
                StatusCode::UNAUTHORIZED,
                None,
                "send the access token as Authorization: Bearer TOKEN",
                None,
            ),
            BearerError::InvalidRequest(d) => {
                (StatusCode::BAD_REQUEST, Some("invalid_request"), *d, None)
            }
            BearerError::InvalidToken(d) => {
                (StatusCode::UNAUTHORIZED, Some("invalid_token"), *d, None)
            }
            BearerError::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                Some("insufficient_scope"),
                "the access token lacks a required scope",
                Some(*scope),
            ),
            BearerError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("temporarily_unavailable"),
                "the database is unreachable; retry shortly",
                None,
            ),
            BearerError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Some("server_error"),
                    "internal error",
                    None,
                )
            }
        };
        let mut challenge = format!(r#"Bearer realm="{REALM}""#);
        // Only RFC 6750 §3.1's codes go in the challenge.
        let challenge_code = matches!(
            status,
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        );
        if let Some(code) = code.filter(|_| challenge_code) {
            challenge.push_str(&format!(
                r#", error="{code}", error_description="{description}""#
            ));
        }
        if let Some(scope) = scope {
            challenge.push_str(&format!(r#", scope="{scope}""#));
        }
        // §3.1: a request without a token gets the bare challenge, so no error body either.
        let mut res = match code {
            Some(error) => {
                let body = ErrorBody {
                    error,
                    error_description: description,
                };
                no_store((status, Json(body)).into_response())
            }
            None => no_store(status.into_response()),
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            res.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}
