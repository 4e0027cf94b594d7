//! The axum extractors: [`AccessToken`] (any valid token), `Option<AccessToken>` (a token
//! if one is sent), and [`Scoped<S>`] (a valid token with every scope `S` declares, the way
//! FastAPI's `Security(…, scopes=[…])` works). The [`Verifier`] comes from the router's
//! state through [`FromRef`].

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::{Error, desc};
use crate::{AccessToken, Verifier};

/// The scopes a handler needs, all of them. Declare with [`scopes!`](crate::scopes!):
///
/// ```
/// ferrid_verify::scopes!(pub ItemsWrite = "items:read", "items:write");
/// use ferrid_verify::Scopes;
/// assert_eq!(ItemsWrite::REQUIRED, ["items:read", "items:write"]);
/// ```
pub trait Scopes {
    /// Every scope a token must have been granted.
    const REQUIRED: &'static [&'static str];
}

/// Declares marker types for [`Scoped`], each with the scopes it requires (all of them):
/// `scopes!(pub ItemsRead = "items:read"; pub Admin = "items:read", "admin");`. Each scope
/// must be a scope token (RFC 6749 §3.3: printable ASCII but space, `"` and `\`), checked at
/// compile time.
#[macro_export]
macro_rules! scopes {
    ($($(#[$meta:meta])* $vis:vis $name:ident = $($scope:literal),+ $(,)?);+ $(;)?) => {
        $(
            $(#[$meta])*
            #[derive(Clone, Copy, Debug, Default)]
            $vis struct $name;
            impl $crate::Scopes for $name {
                const REQUIRED: &'static [&'static str] = {
                    const REQUIRED: &[&str] = &[$($scope),+];
                    assert!(
                        $crate::__valid_scopes(REQUIRED),
                        "a scope is 1 or more printable ASCII characters but space, \" and \\ (RFC 6749 §3.3)"
                    );
                    REQUIRED
                };
            }
        )+
    };
}

/// A valid access token granted every scope of `S`; otherwise the request is answered 403
/// `insufficient_scope` naming them (RFC 6750 §3.1), or 401 as for [`AccessToken`].
pub struct Scoped<S> {
    token: AccessToken,
    _scopes: PhantomData<fn() -> S>,
}

impl<S: Scopes> Scoped<S> {
    /// The token, if it has every scope of `S` (for tests of handlers, and for tokens
    /// verified elsewhere).
    pub fn new(token: AccessToken) -> Result<Self, Error> {
        token.require(S::REQUIRED)?;
        Ok(Self {
            token,
            _scopes: PhantomData,
        })
    }
}

impl<S> Scoped<S> {
    pub fn into_inner(self) -> AccessToken {
        self.token
    }
}

impl<S> Deref for Scoped<S> {
    type Target = AccessToken;
    fn deref(&self) -> &AccessToken {
        &self.token
    }
}

impl<S> Clone for Scoped<S> {
    fn clone(&self) -> Self {
        Self {
            token: self.token.clone(),
            _scopes: PhantomData,
        }
    }
}

impl<S> fmt::Debug for Scoped<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Scoped").field(&self.token).finish()
    }
}

impl<St> FromRequestParts<St> for AccessToken
where
    Verifier: FromRef<St>,
    St: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Error> {
        let token = bearer_token(&parts.headers)?;
        Verifier::from_ref(state).verify(token).await
    }
}

/// `None` when the request has no `Authorization` header; a token that is sent must be valid.
impl<St> OptionalFromRequestParts<St> for AccessToken
where
    Verifier: FromRef<St>,
    St: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Option<Self>, Error> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Ok(None);
        }
        <Self as FromRequestParts<St>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

impl<S, St> FromRequestParts<St> for Scoped<S>
where
    S: Scopes,
    Verifier: FromRef<St>,
    St: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Error> {
        let token = <AccessToken as FromRequestParts<St>>::from_request_parts(parts, state).await?;
        Self::new(token)
    }
}

/// The bearer token of a request's `Authorization` header (RFC 6750 §2.1).
///
/// - No header, or another scheme (`Basic …`): [`Error::MissingToken`] (§3.1: no error code
///   for a request without the scheme's credentials).
/// - Two headers, an empty token: [`Error::InvalidRequest`] (§3.1: a malformed request).
/// - Characters outside `b64token`: [`Error::InvalidToken`].
///
/// Tokens in the query or the body (§2.2, §2.3) are not looked at: they end up in logs.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Error> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Error::MissingToken);
    };
    if values.next().is_some() {
        return Err(Error::InvalidRequest(desc::TWO_HEADERS));
    }
    let value = value
        .to_str()
        .map_err(|_| Error::InvalidRequest(desc::HEADER_BYTES))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    // RFC 9110 §11.1: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(Error::MissingToken);
    }
    // RFC 9110 §11.4: 1*SP after the scheme.
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(Error::InvalidRequest(desc::EMPTY));
    }
    // RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    let b64token = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !b64token {
        return Err(Error::InvalidToken(desc::B64TOKEN));
    }
    Ok(token)
}

/// RFC 6749 §3.3: scope-token = 1*NQSCHAR, NQSCHAR = %x21 / %x23-5B / %x5D-7E.
pub(crate) const fn is_scope_token(scope: &str) -> bool {
    let bytes = scope.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b == 0x21 || (b >= 0x23 && b <= 0x5b) || (b >= 0x5d && b <= 0x7e)) {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    crate::scopes!(
        /// Reads items.
        ItemsRead = "items:read";
        pub(crate) ItemsWrite = "items:read", "items:write",
    );

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_bearer_token_is_read_from_the_authorization_header() {
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def-_~+/=="])),
            Ok("abc.def-_~+/==")
        );
        assert_eq!(bearer_token(&headers(&["bearer  abc"])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&["BEARER abc"])), Ok("abc"));
    }

    #[test]
    fn no_token_or_another_scheme_is_a_missing_token() {
        assert_eq!(bearer_token(&headers(&[])), Err(Error::MissingToken));
        assert_eq!(
            bearer_token(&headers(&["Basic YTpi"])),
            Err(Error::MissingToken)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearerabc"])),
            Err(Error::MissingToken)
        );
    }

    #[test]
    fn malformed_authorization_headers_are_invalid_requests() {
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(Error::InvalidRequest(desc::TWO_HEADERS))
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer"])),
            Err(Error::InvalidRequest(desc::EMPTY))
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer   "])),
            Err(Error::InvalidRequest(desc::EMPTY))
        );
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(
            bearer_token(&h),
            Err(Error::InvalidRequest(desc::HEADER_BYTES))
        );
    }

    #[test]
    fn a_token_outside_b64token_is_invalid() {
        for bad in ["Bearer a b", "Bearer a\"b", "Bearer ===", "Bearer a=b"] {
            assert_eq!(
                bearer_token(&headers(&[bad])),
                Err(Error::InvalidToken(desc::B64TOKEN)),
                "{bad}"
            );
        }
    }

    #[test]
    fn scopes_declares_every_required_scope() {
        assert_eq!(ItemsRead::REQUIRED, ["items:read"]);
        assert_eq!(ItemsWrite::REQUIRED, ["items:read", "items:write"]);
    }

    #[test]
    fn scoped_needs_all_of_its_scopes() {
        let token = AccessToken {
            scopes: vec!["items:read".into()],
            ..Default::default()
        };
        assert!(Scoped::<ItemsRead>::new(token.clone()).is_ok());
        assert_eq!(
            Scoped::<ItemsWrite>::new(token).err(),
            Some(Error::InsufficientScope(&["items:read", "items:write"]))
        );
    }

    #[test]
    fn scope_tokens_are_rfc_6749_nqschars() {
        for ok in ["items:read", "a", "!#[]~"] {
            assert!(is_scope_token(ok), "{ok}");
        }
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert!(!is_scope_token(bad), "{bad}");
        }
        assert!(!crate::__valid_scopes(&[]));
    }
}
