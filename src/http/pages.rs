//! What every page shares: the error page, the HTML response with its security headers (a
//! strict Content-Security-Policy, no framing, no caching, no referrer), redirects, and the
//! stylesheet. Pages are rendered by askama from `templates/`; forms post back to the URL
//! they came from and the stylesheet is linked relatively, so an issuer with a path (behind
//! a proxy) works too.

use askama::Template;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::oauth::authorize::{
    AuthorizationResponse, AuthorizeError, ResponseMode, error_response,
};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// OAuth 2.0 Form Post Response Mode §2: a page that POSTs the response to the redirect URI.
#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    redirect_uri: &'a str,
    params: &'a [(&'static str, String)],
    script: &'static str,
}

/// The form post page's only script: it submits the form, so that the user need not. With
/// scripts off, the page's button does the same. Allowed by its hash in the page's CSP.
pub const FORM_POST_SCRIPT: &str = "document.forms[0].submit();";

/// `'sha256-…'` of [`FORM_POST_SCRIPT`], the CSP source that allows exactly that script.
fn form_post_script_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        use base64::Engine;
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, FORM_POST_SCRIPT.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    })
}

/// Delivers an authorization response (a code or an error) in its response mode: a redirect
/// with `status` (302 after a GET, 303 after a form), or the form post page.
pub fn respond(response: &AuthorizationResponse, status: StatusCode) -> Response {
    match response.mode {
        ResponseMode::Query => redirect(&response.url(), status),
        ResponseMode::FormPost => {
            let page = FormPostPage {
                redirect_uri: &response.redirect_uri,
                params: &response.params,
                script: FORM_POST_SCRIPT,
            };
            page_with_script(
                StatusCode::OK,
                page.render(),
                Some(form_post_script_source()),
            )
        }
    }
}

/// The stylesheet of the pages, served from the binary.
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        include_str!("../../templates/ferrid.css"),
    )
}

/// The parameters of a GET page's query string, or the error page for a malformed one.
pub fn query_params(query: Option<String>) -> Result<crate::oauth::Params, Box<Response>> {
    crate::oauth::Params::parse(query.unwrap_or_default().as_bytes()).map_err(|e| {
        Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            &e.description(),
        ))
    })
}

/// The page (or redirect) for an authorization or logout error.
pub fn authorize_error(s: &AppState, e: AuthorizeError) -> Response {
    authorize_error_as(s, e, StatusCode::FOUND)
}

/// [`authorize_error`], redirecting with `status` (303 after a form: RFC 9110 §15.4.4).
pub fn authorize_error_as(s: &AppState, e: AuthorizeError, status: StatusCode) -> Response {
    match e {
        AuthorizeError::Untrusted(message) => {
            error_page(StatusCode::BAD_REQUEST, "Cannot sign in", message)
        }
        AuthorizeError::Redirect {
            to,
            mode,
            error,
            description,
            state,
        } => {
            let issuer = s.oauth.issuer();
            let response = error_response(&to, mode, error, &description, state.as_deref(), issuer);
            respond(&response, status)
        }
        AuthorizeError::Unavailable => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again in a moment",
            "The sign-in service is busy. Wait a moment and try again.",
        ),
        AuthorizeError::Internal(e) => {
            tracing::error!(error = format!("{e:#}"), "authorization request failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not complete the sign-in.",
            )
        }
    }
}

pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    html(status, ErrorPage { title, message }.render())
}

/// An HTML response with the security headers: a strict Content-Security-Policy (nothing
/// but this site's stylesheet and images; no scripts, no framing, no `<base>`), no caching,
/// no referrer.
///
/// No `form-action`: Chromium applies it to every redirect that follows a form submission,
/// so a relying party whose callback redirects on to another origin (its app, a CDN) would
/// be blocked after the login, consent or form-post page — and these pages have no markup an
/// attacker controls (askama escapes everything) to inject a form into.
pub fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    page_with_script(status, body, None)
}

/// [`html`], with one script allowed by its CSP source (a hash).
fn page_with_script(
    status: StatusCode,
    body: Result<String, askama::Error>,
    script_source: Option<&str>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let script = script_source
        .map(|source| format!("; script-src {source}"))
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; \
         base-uri 'none'{script}"
    );
    let content_type = HeaderValue::from_static("text/html; charset=utf-8");
    let mut res = (status, [(CONTENT_TYPE, content_type)], body).into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(CONTENT_SECURITY_POLICY, v);
    }
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

pub fn redirect(to: &str, status: StatusCode) -> Response {
    let Ok(location) = HeaderValue::from_str(to) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Cannot sign in",
            "The redirect address is malformed.",
        );
    };
    let mut res = status.into_response();
    let h = res.headers_mut();
    h.insert(LOCATION, location);
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_post_page_runs_exactly_the_script_its_csp_allows() {
        let response = AuthorizationResponse {
            redirect_uri: "https://rp.example/cb?a=1&b=2".into(),
            mode: ResponseMode::FormPost,
            params: vec![("code", "c\"ode".into()), ("state", "<s>".into())],
        };
        let res = respond(&response, StatusCode::FOUND);
        assert_eq!(res.status(), StatusCode::OK);
        let csp = res.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(!csp.contains("form-action"), "{csp}");
        assert!(
            csp.ends_with(&format!("script-src {}", form_post_script_source())),
            "{csp}"
        );
        let page = FormPostPage {
            redirect_uri: &response.redirect_uri,
            params: &response.params,
            script: FORM_POST_SCRIPT,
        }
        .render()
        .unwrap();
        assert!(page.contains(&format!("<script>{FORM_POST_SCRIPT}</script>")));
        assert!(
            page.contains(r#"action="https://rp.example/cb?a=1&#38;b=2""#),
            "{page}"
        );
        assert!(page.contains(r#"value="c&#34;ode""#), "{page}");
        assert!(page.contains(r#"value="&#60;s&#62;""#), "{page}");
        // RFC 7636 / form post §2: a hash of known bytes, checked independently.
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"document.forms[0].submit();");
        use base64::Engine;
        assert_eq!(
            form_post_script_source(),
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        );
    }
}
