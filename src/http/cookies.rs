//! The pages' cookies: the browser session and the CSRF token (double submit). Their names
//! and attributes depend on the issuer's scheme, and are computed once, at start.

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::oauth::Params;
use crate::tokens::opaque;

/// Cookie names. With an https issuer they carry the `__Host-` prefix, which browsers accept
/// only from this host, over https, with `Path=/` — so a sibling subdomain cannot plant them
/// (RFC 9700 §4.7: login CSRF, session fixation).
#[derive(Clone, Debug)]
pub struct Cookies {
    pub session: &'static str,
    pub csrf: &'static str,
    attributes: &'static str,
}

impl Cookies {
    pub fn for_issuer(issuer: &str) -> Self {
        let https = url::Url::parse(issuer).is_ok_and(|u| u.scheme() == "https");
        if https {
            Cookies {
                session: "__Host-ferrid_session",
                csrf: "__Host-ferrid_csrf",
                attributes: "; Path=/; Secure; HttpOnly",
            }
        } else {
            Cookies {
                session: "ferrid_session",
                csrf: "ferrid_csrf",
                attributes: "; Path=/; HttpOnly",
            }
        }
    }

    /// Sets the session cookie for `max_age` seconds (`SameSite=Lax`: the browser sends it
    /// on the redirect back from a relying party).
    pub fn set_session(&self, res: &mut Response, value: &str, max_age: i64) {
        set_cookie(
            res,
            &format!(
                "{}={value}; Max-Age={max_age}; SameSite=Lax{}",
                self.session, self.attributes
            ),
        );
    }

    pub fn clear_session(&self, res: &mut Response) {
        set_cookie(
            res,
            &format!(
                "{}=; Max-Age=0; SameSite=Lax{}",
                self.session, self.attributes
            ),
        );
    }

    /// Sets the CSRF cookie (`SameSite=Strict`: only this site's forms).
    pub fn set_csrf(&self, res: &mut Response, token: &str) {
        set_cookie(
            res,
            &format!("{}={token}; SameSite=Strict{}", self.csrf, self.attributes),
        );
    }

    /// Double-submit check: the form's `csrf_token` must equal the cookie set with the form.
    pub fn csrf_ok(&self, headers: &HeaderMap, params: &Params) -> bool {
        match (cookie(headers, self.csrf), params.get("csrf_token")) {
            (Some(cookie), Some(form)) => bool::from(cookie.as_bytes().ct_eq(form.as_bytes())),
            _ => false,
        }
    }

    /// The browser's CSRF token: the one it has (so several open forms stay valid), or a
    /// new one (`true`: set the cookie).
    pub fn csrf_token(&self, headers: &HeaderMap) -> Result<(String, bool), anyhow::Error> {
        match cookie(headers, self.csrf).filter(|c| c.len() == 43) {
            Some(existing) => Ok((existing.to_owned(), false)),
            None => opaque::random_token().map(|t| (t, true)),
        }
    }
}

fn set_cookie(res: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().append(SET_COOKIE, v);
    }
}

/// The value of cookie `name` from the request's Cookie headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}
