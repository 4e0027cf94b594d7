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

/// The mapping, checked variant by variant (as kanidm unit-tests its own): status, the
/// challenge or Retry-After it needs, `no-store`, and the RFC's error code in the body.
#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use axum::http::HeaderMap;

    async fn parts(res: Response) -> (StatusCode, HeaderMap, serde_json::Value) {
        let status = res.status();
        let headers = res.headers().clone();
        let body = to_bytes(res.into_body(), 4096).await.unwrap();
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }

    #[tokio::test]
    async fn oauth_errors_are_rfc_6749_section_5_2_responses() {
        let cases = [
            (
                OAuthError::invalid_request("x is missing"),
                400,
                "invalid_request",
            ),
            (OAuthError::InvalidClient, 401, "invalid_client"),
            (OAuthError::InvalidGrant("no"), 400, "invalid_grant"),
            (
                OAuthError::UnauthorizedClient("no"),
                400,
                "unauthorized_client",
            ),
            (
                OAuthError::UnsupportedGrantType,
                400,
                "unsupported_grant_type",
            ),
            (OAuthError::InvalidScope("no".into()), 400, "invalid_scope"),
            (
                OAuthError::TemporarilyUnavailable,
                503,
                "temporarily_unavailable",
            ),
            (OAuthError::Throttled(7), 429, "temporarily_unavailable"),
            (
                OAuthError::Internal(anyhow::anyhow!("disk on fire at /var/db")),
                500,
                "server_error",
            ),
        ];
        for (error, status, code) in cases {
            let (got, headers, body) = parts(error.into_response()).await;
            assert_eq!(got.as_u16(), status, "{code}");
            assert_eq!(body["error"], code);
            assert_eq!(headers[CACHE_CONTROL], "no-store", "{code}");
            assert_eq!(headers[PRAGMA], "no-cache", "{code}");
            match status {
                // §5.2: a client that tried HTTP Basic gets the scheme's challenge.
                401 => assert!(
                    headers[WWW_AUTHENTICATE]
                        .to_str()
                        .unwrap()
                        .starts_with("Basic realm=\"ferrid\"")
                ),
                503 => assert_eq!(headers[RETRY_AFTER], "1"),
                429 => assert_eq!(headers[RETRY_AFTER], "7"),
                500 => assert!(
                    !body.to_string().contains("disk on fire"),
                    "internal details stay in the log"
                ),
                _ => assert!(!headers.contains_key(WWW_AUTHENTICATE), "{code}"),
            }
        }
        // A wait of zero is still a Retry-After of one second.
        let (_, headers, _) = parts(OAuthError::Throttled(0).into_response()).await;
        assert_eq!(headers[RETRY_AFTER], "1");
    }

    #[tokio::test]
    async fn bearer_errors_are_rfc_6750_section_3_challenges() {
        let challenge = |res: &HeaderMap| res[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        // §3.1: no token at all: the bare challenge, no error code, no body.
        let (status, headers, body) = parts(BearerError::Missing.into_response()).await;
        assert_eq!(
            (status.as_u16(), challenge(&headers)),
            (401, r#"Bearer realm="ferrid""#.into())
        );
        assert_eq!(body, serde_json::Value::Null);

        let (status, headers, body) =
            parts(BearerError::InvalidToken("expired").into_response()).await;
        assert_eq!(status, 401);
        assert!(challenge(&headers).contains(r#"error="invalid_token""#));
        assert_eq!(body["error"], "invalid_token");

        let (status, headers, _) =
            parts(BearerError::InsufficientScope("openid").into_response()).await;
        assert_eq!(status, 403);
        let c = challenge(&headers);
        assert!(c.contains(r#"error="insufficient_scope""#) && c.contains(r#"scope="openid""#));

        let (status, headers, _) =
            parts(BearerError::InvalidRequest("two tokens").into_response()).await;
        assert_eq!(status, 400);
        assert!(challenge(&headers).contains(r#"error="invalid_request""#));

        // 5xx: still a challenge, but no §3.1 error code in it; Retry-After when worth it.
        let (status, headers, _) = parts(BearerError::Unavailable.into_response()).await;
        assert_eq!(status, 503);
        assert_eq!(headers[RETRY_AFTER], "1");
        assert!(!challenge(&headers).contains("error="));
        let (status, headers, body) =
            parts(BearerError::Internal(anyhow::anyhow!("secret detail")).into_response()).await;
        assert_eq!(status, 500);
        assert!(!challenge(&headers).contains("error="));
        assert!(!body.to_string().contains("secret detail"));
    }
}
