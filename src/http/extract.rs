//! Extractors that own their rejections, so malformed input gets an RFC-shaped error
//! instead of axum's plain-text 4xx.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::error::no_store;
use crate::oauth::client_auth::{BasicCredentials, parse_basic};
use crate::oauth::{BearerError, OAuthError, Params};

/// The form body of an OAuth endpoint (RFC 6749 §3.2): `application/x-www-form-urlencoded`
/// only, no parameter twice.
pub struct OAuthForm(pub Params);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(OAuthError::invalid_request(
                "send the parameters as an application/x-www-form-urlencoded body (RFC 6749 section 3.2)",
            )
            .into_response());
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        Params::parse(&body)
            .map(OAuthForm)
            .map_err(IntoResponse::into_response)
    }
}

/// [`OAuthForm`] for the pages' forms (`/authorize`, `/login`, `/consent`, `/logout`): a
/// body that is not a form, too large, or malformed gets the HTML error page a person can
/// read, not the token endpoint's JSON.
pub struct PageForm(pub Params);

impl<S: Send + Sync> FromRequest<S> for PageForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match OAuthForm::from_request(req, state).await {
            Ok(OAuthForm(params)) => Ok(PageForm(params)),
            Err(rejected) => Err(super::pages::error_page(
                rejected.status(),
                "Invalid request",
                "The form could not be read. Start again from the application.",
            )),
        }
    }
}

fn body_rejection(e: BytesRejection) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let res = (
            StatusCode::PAYLOAD_TOO_LARGE,
            axum::Json(serde_json::json!({
                "error": "invalid_request",
                "error_description": "the request body is too large",
            })),
        );
        return no_store(res.into_response());
    }
    OAuthError::invalid_request("the request body could not be read").into_response()
}

/// The client credentials of an `Authorization: Basic` header, if one was sent.
pub struct BasicAuth(pub Option<BasicCredentials>);

impl<S: Send + Sync> FromRequestParts<S> for BasicAuth {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(BasicAuth(None));
        };
        if values.next().is_some() {
            return Err(OAuthError::invalid_request("send one Authorization header"));
        }
        let value = value.to_str().map_err(|_| OAuthError::InvalidClient)?;
        parse_basic(value).map(BasicAuth)
    }
}

/// The access token of an `Authorization: Bearer` header (RFC 6750 §2.1).
pub struct BearerToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = BearerError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(BearerError::Missing);
        };
        if values.next().is_some() {
            return Err(BearerError::InvalidRequest("send one Authorization header"));
        }
        let value = value
            .to_str()
            .map_err(|_| BearerError::InvalidToken("the access token is invalid or expired"))?;
        parse_bearer(value).map(|t| BearerToken(t.to_owned()))
    }
}

/// The characters of RFC 6750 §2.1's `b64token` before its trailing `=`s: ALPHA, DIGIT and
/// `-._~+/`. A table, as every byte of every bearer token is looked up.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

/// `credentials = "Bearer" 1*SP b64token` (RFC 6750 §2.1); the scheme is case-insensitive.
/// Another scheme counts as no token (§3.1: no error code then).
pub fn parse_bearer(value: &str) -> Result<&str, BearerError> {
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(BearerError::Missing);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    let token = token.trim_start_matches(' ');
    let b64token = {
        let body = token.trim_end_matches('=');
        !body.is_empty() && body.bytes().all(|b| B64TOKEN[usize::from(b)])
    };
    if !b64token {
        return Err(BearerError::InvalidToken("the access token is malformed"));
    }
    Ok(token)
}

/// The client's address: the peer of the connection, or — behind a trusted proxy
/// (`--trust-x-forwarded-for`) — the last entry of `X-Forwarded-For`, the one that proxy
/// appended (earlier entries are whatever the client claimed).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl FromRequestParts<super::AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if !state.trust_x_forwarded_for {
            return Ok(ClientIp(peer));
        }
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|ip| ip.trim().parse().ok());
        Ok(ClientIp(forwarded.or(peer)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_b64token_table_is_rfc_6750s_alphabet() {
        for b in 0..=255u8 {
            assert_eq!(
                B64TOKEN[usize::from(b)],
                b.is_ascii_alphanumeric() || b"-._~+/".contains(&b),
                "{b}"
            );
        }
    }

    #[test]
    fn bearer_header_follows_rfc_6750_section_2_1() {
        assert_eq!(
            parse_bearer("Bearer abc.def-_~+/==").unwrap(),
            "abc.def-_~+/=="
        );
        assert_eq!(parse_bearer("bearer  abc").unwrap(), "abc");
        assert!(matches!(
            parse_bearer("Basic abc"),
            Err(BearerError::Missing)
        ));
        assert!(matches!(parse_bearer("Bearer"), Err(BearerError::Missing)));
        assert!(matches!(
            parse_bearer("Bearer a b"),
            Err(BearerError::InvalidToken(_))
        ));
        assert!(matches!(
            parse_bearer("Bearer ="),
            Err(BearerError::InvalidToken(_))
        ));
        assert!(matches!(
            parse_bearer("Bearer "),
            Err(BearerError::InvalidToken(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any header value gives a token, "no token" or invalid_token; nothing panics, and a
        /// token, when given, is b64token-shaped (RFC 6750 §2.1).
        #[test]
        fn any_bearer_header_is_handled(value in "\\PC{0,200}") {
            if let Ok(token) = parse_bearer(&value) {
                proptest::prop_assert!(!token.is_empty());
                proptest::prop_assert!(token.trim_end_matches('=').bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)));
            }
        }
    }
}
