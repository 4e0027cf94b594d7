//! Why a request was refused, and the answer each reason gets (RFC 6750 §3). No axum state,
//! no I/O: an [`Error`] is a value, and its response is a pure function of it.

use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Why a request carrying (or lacking) a bearer token was refused.
///
/// Descriptions are fixed ASCII strings without `"` or `\`: RFC 6750 §3 allows only
/// `%x20-21 / %x23-5B / %x5D-7E` in `error_description`, and a fixed text cannot leak what
/// a token contained.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No `Authorization` header, or one with another scheme. RFC 6750 §3.1: "If the request
    /// lacks any authentication information … the resource server SHOULD NOT include an
    /// error code": 401 with a bare `WWW-Authenticate: Bearer`.
    #[error("no bearer token")]
    MissingToken,
    /// RFC 6750 §3.1 `invalid_request` (400): a malformed request, such as an empty bearer
    /// token or two `Authorization` headers.
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// RFC 6750 §3.1 `invalid_token` (401): malformed, forged, expired, for another audience
    /// or issuer, not an access token, or signed by a key the issuer does not publish.
    #[error("invalid_token: {0}")]
    InvalidToken(&'static str),
    /// RFC 6750 §3.1 `insufficient_scope` (403): a valid token without every scope the
    /// handler needs; the challenge names them all (`scope`, RFC 6750 §3).
    #[error("insufficient_scope: needs {}", .0.join(" "))]
    InsufficientScope(&'static [&'static str]),
    /// The issuer's discovery document or JWKS cannot be fetched and no keys are cached: the
    /// token cannot be judged either way (503, never a 401 that would log the user out).
    #[error("the issuer's signing keys are unavailable")]
    Unavailable,
}

impl Error {
    /// The HTTP status RFC 6750 §3.1 gives each error code.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::MissingToken | Error::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Error::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 §3.1 error code, if the answer has one.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Error::MissingToken => None,
            Error::InvalidRequest(_) => Some("invalid_request"),
            Error::InvalidToken(_) => Some("invalid_token"),
            Error::InsufficientScope(_) => Some("insufficient_scope"),
            // Not an RFC 6750 code: the body of a 503, RFC 6749 §4.1.2.1's word for it.
            Error::Unavailable => Some("temporarily_unavailable"),
        }
    }

    /// The fixed, human-readable `error_description`.
    pub fn description(&self) -> &'static str {
        match self {
            Error::MissingToken => "this resource needs a bearer token",
            Error::InvalidRequest(d) | Error::InvalidToken(d) => d,
            Error::InsufficientScope(_) => "the token lacks a scope this resource needs",
            Error::Unavailable => "the identity provider's signing keys cannot be fetched",
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), if the answer carries one.
    pub fn challenge(&self) -> Option<String> {
        let code = match self {
            Error::Unavailable => return None,
            Error::MissingToken => return Some("Bearer".to_owned()),
            _ => self.code()?,
        };
        let mut challenge = format!(
            "Bearer error=\"{code}\", error_description=\"{}\"",
            self.description()
        );
        if let Error::InsufficientScope(scopes) = self {
            // RFC 6750 §3: the scope attribute, space-delimited scope tokens (RFC 6749 §3.3);
            // a scope that is not a valid token (a hand-written `Scopes` impl) is left out
            // rather than break the header's syntax.
            let scope = scope_list(scopes);
            if !scope.is_empty() {
                challenge.push_str(&format!(", scope=\"{scope}\""));
            }
        }
        Some(challenge)
    }
}

fn scope_list(scopes: &[&str]) -> String {
    scopes
        .iter()
        .copied()
        .filter(|s| crate::extract::is_scope_token(s))
        .collect::<Vec<_>>()
        .join(" ")
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        if let Some(code) = self.code() {
            body.insert("error".into(), code.into());
        }
        body.insert("error_description".into(), self.description().into());
        if let Error::InsufficientScope(scopes) = &self {
            body.insert("scope".into(), scope_list(scopes).into());
        }
        let body = serde_json::Value::Object(body).to_string();
        let mut res = (self.status(), body).into_response();
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(challenge) = self.challenge() {
            // Every part is ASCII without control characters, so this cannot fail; if it
            // ever did, a bare challenge is still a correct 401/403.
            let value = HeaderValue::try_from(challenge)
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if self == Error::Unavailable {
            // RFC 9110 §10.2.3: when it is worth trying again (the verifier's retry interval
            // is of this order).
            headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res
    }
}

/// The fixed `error_description`s, in one place so one test checks them all.
pub(crate) mod desc {
    pub const TOO_LONG: &str = "the token is too long";
    pub const MALFORMED: &str = "the token is not a JWS in compact serialization";
    pub const HEADER: &str = "the token header is not a JSON object";
    pub const ALG: &str = "the token is not signed with RS256";
    pub const CRIT: &str = "the token has a critical header parameter that is not understood";
    pub const TYP: &str = "not an access token: the header typ is not at+jwt";
    pub const KID: &str = "the token header has no kid";
    pub const PAYLOAD: &str = "the token claims are not a JSON object";
    pub const UNKNOWN_KID: &str = "the token is signed by a key the issuer does not publish";
    pub const SIGNATURE: &str = "the token signature is invalid";
    pub const ISSUER: &str = "the token is from another issuer";
    pub const AUDIENCE: &str = "the token is for another audience";
    pub const EXPIRED: &str = "the token has expired";
    pub const NOT_YET: &str = "the token is not valid yet";
    pub const ISSUED_LATER: &str = "the token was issued in the future";
    pub const EMPTY: &str = "the bearer token is empty";
    pub const TWO_HEADERS: &str = "the request has more than one Authorization header";
    pub const HEADER_BYTES: &str = "the Authorization header is not visible ASCII";
    pub const B64TOKEN: &str = "the bearer token has characters outside RFC 6750 b64token";
    pub const INVALID_CLAIM: &str = "the token has an invalid claim";
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        TOO_LONG,
        MALFORMED,
        HEADER,
        ALG,
        CRIT,
        TYP,
        KID,
        PAYLOAD,
        UNKNOWN_KID,
        SIGNATURE,
        ISSUER,
        AUDIENCE,
        EXPIRED,
        NOT_YET,
        ISSUED_LATER,
        EMPTY,
        TWO_HEADERS,
        HEADER_BYTES,
        B64TOKEN,
        INVALID_CLAIM,
    ];
    /// A required claim that is missing or of the wrong JSON type.
    pub const CLAIMS: &[(&str, &str)] = &[
        ("iss", "the token has no valid iss claim"),
        ("sub", "the token has no valid sub claim"),
        ("aud", "the token has no valid aud claim"),
        ("exp", "the token has no valid exp claim"),
        ("iat", "the token has no valid iat claim"),
        ("nbf", "the token has no valid nbf claim"),
        ("jti", "the token has no valid jti claim"),
        ("client_id", "the token has no valid client_id claim"),
        ("scope", "the token has no valid scope claim"),
        ("auth_time", "the token has no valid auth_time claim"),
        ("sid", "the token has no valid sid claim"),
    ];
    /// The description for a bad `claim`.
    pub fn claim(claim: &str) -> &'static str {
        CLAIMS
            .iter()
            .find(|(c, _)| *c == claim)
            .map_or(INVALID_CLAIM, |(_, d)| d)
    }
}

/// Why a [`Verifier`](crate::Verifier) could not be set up: a bad issuer URL, or (for
/// [`Verifier::discover`](crate::Verifier::discover)) a discovery document that could not be
/// fetched or does not belong to the issuer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    #[error("the issuer must be an http or https URL without query or fragment: {0}")]
    InvalidIssuer(String),
    #[error("the audience must not be empty")]
    EmptyAudience,
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("discovery at {url} failed: {reason}")]
    Discovery { url: String, reason: String },
    /// OIDC Discovery §4.3: the document's `issuer` must be the issuer it was fetched for.
    #[error("discovery answered issuer {found:?}, not {expected:?} (OIDC Discovery §4.3)")]
    IssuerMismatch { expected: String, found: String },
    #[error("discovery has no usable jwks_uri: {0}")]
    JwksUri(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(e: &Error) -> Option<String> {
        e.clone()
            .into_response()
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn a_request_without_a_token_gets_a_bare_challenge() {
        let e = Error::MissingToken;
        assert_eq!(e.status(), 401);
        assert_eq!(header(&e).as_deref(), Some("Bearer"));
    }

    #[test]
    fn an_invalid_token_gets_its_code_and_description() {
        let e = Error::InvalidToken("the token has expired");
        assert_eq!(e.status(), 401);
        assert_eq!(
            header(&e).as_deref(),
            Some(r#"Bearer error="invalid_token", error_description="the token has expired""#)
        );
    }

    #[test]
    fn a_missing_scope_names_every_required_scope() {
        let e = Error::InsufficientScope(&["items:read", "items:write"]);
        assert_eq!(e.status(), 403);
        assert_eq!(
            header(&e).as_deref(),
            Some(
                r#"Bearer error="insufficient_scope", error_description="the token lacks a scope this resource needs", scope="items:read items:write""#
            )
        );
    }

    #[test]
    fn a_scope_that_would_break_the_header_is_left_out() {
        let e = Error::InsufficientScope(&["a\"b", "ok"]);
        assert!(header(&e).unwrap().ends_with(r#"scope="ok""#));
    }

    #[test]
    fn unavailable_keys_are_a_503_without_a_challenge() {
        let res = Error::Unavailable.into_response();
        assert_eq!(res.status(), 503);
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(res.headers()[RETRY_AFTER], "5");
    }

    #[test]
    fn every_description_is_allowed_in_a_challenge() {
        // RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E.
        let all = desc::ALL.iter().chain(desc::CLAIMS.iter().map(|(_, d)| d));
        for d in all.chain([
            &Error::MissingToken.description(),
            &Error::Unavailable.description(),
        ]) {
            assert!(
                d.bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
                "{d:?}"
            );
        }
    }
}
