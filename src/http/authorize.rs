//! `GET`/`POST /authorize` (OIDC Core §3.1.2, RFC 6749 §4.1) with the login page, and
//! `GET /logout` (OpenID Connect RP-Initiated Logout 1.0). Pages are rendered by askama from
//! `templates/`; every HTML response carries a strict Content-Security-Policy, denies
//! framing and is not cached.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, REFERRER_POLICY,
    SET_COOKIE, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::extract::OAuthForm;
use super::state::AppState;
use crate::model::Secret;
use crate::oauth::authorize::{AuthorizeError, AuthorizeRequest, SESSION_TTL_SECS, error_redirect};
use crate::oauth::{OAuthError, Params};
use crate::tokens::opaque;

const SESSION_COOKIE: &str = "ferrid_session";
const CSRF_COOKIE: &str = "ferrid_csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    client: &'a str,
    params: &'a [(String, String)],
    csrf: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

#[derive(Template)]
#[template(path = "logged_out.html")]
struct LoggedOutPage;

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

/// `GET /authorize`: signs in with the session if there is one (and it is fresh enough),
/// else shows the login page.
pub async fn authorize(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Invalid request", &e.description()),
    };
    let request = match s.oauth.check_authorize(&params).await {
        Ok(r) => r,
        Err(e) => return authorize_error(&s, e),
    };
    let now = s.clock.now();
    if let Some(cookie) = cookie(&headers, SESSION_COOKIE) {
        match s.oauth.session_user(cookie, now).await {
            Ok(Some((user, session))) if request.accepts_session(session.auth_time, now) => {
                return match s
                    .oauth
                    .issue_code(&request, &user, session.auth_time, now)
                    .await
                {
                    Ok(to) => redirect(&to, StatusCode::FOUND),
                    Err(e) => authorize_error(&s, e),
                };
            }
            Ok(_) => {}
            Err(e) => return authorize_error(&s, e),
        }
    }
    if request.prompt_none {
        return authorize_error(&s, request.login_required());
    }
    let username = request.login_hint.clone().unwrap_or_default();
    login_page(&s, &request, &username, None, StatusCode::OK)
}

/// `POST /authorize`: the login form. Same password check (and throttling) as the password
/// grant; a wrong password shows one generic message and keeps the username.
pub async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let started = tokio::time::Instant::now();
    let request = match s.oauth.check_authorize(&params).await {
        Ok(r) => r,
        Err(e) => return authorize_error(&s, e),
    };
    // Double-submit CSRF check: the form's token must equal the cookie set with the form.
    let csrf_ok = match (cookie(&headers, CSRF_COOKIE), params.get("csrf_token")) {
        (Some(cookie), Some(form)) => bool::from(cookie.as_bytes().ct_eq(form.as_bytes())),
        _ => false,
    };
    if !csrf_ok {
        return error_page(
            StatusCode::FORBIDDEN,
            "Sign-in expired",
            "The sign-in form expired or was not sent from this site. Start the sign-in again from the application.",
        );
    }
    let username = params.get("username").unwrap_or_default();
    let password = Secret::new(params.get("password").unwrap_or_default());
    let now = s.clock.now();
    let user = match s
        .oauth
        .check_password(username, password, started, now)
        .await
    {
        Ok(user) => user,
        Err(OAuthError::InvalidGrant(_)) => {
            return login_page(
                &s,
                &request,
                username,
                Some("The username or password is incorrect."),
                StatusCode::OK,
            );
        }
        Err(OAuthError::TemporarilyUnavailable) => {
            return login_page(
                &s,
                &request,
                username,
                Some("Too many sign-ins right now. Wait a moment and try again."),
                StatusCode::SERVICE_UNAVAILABLE,
            );
        }
        Err(e) => return authorize_error(&s, AuthorizeError::Internal(e.into())),
    };
    let session = match s.oauth.start_session(&user, now).await {
        Ok(c) => c,
        Err(e) => return authorize_error(&s, e),
    };
    match s.oauth.issue_code(&request, &user, now, now).await {
        Ok(to) => {
            // 303: the browser follows with a GET (RFC 9110 §15.4.4).
            let mut res = redirect(&to, StatusCode::SEE_OTHER);
            let secure = secure(&s);
            set_cookie(
                &mut res,
                &format!(
                    "{SESSION_COOKIE}={session}; Path=/; Max-Age={SESSION_TTL_SECS}; HttpOnly; SameSite=Lax{secure}"
                ),
            );
            set_cookie(
                &mut res,
                &format!(
                    "{CSRF_COOKIE}=; Path=/authorize; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
                ),
            );
            res
        }
        Err(e) => authorize_error(&s, e),
    }
}

/// `GET /logout` (RP-Initiated Logout 1.0 §2): ends the session; goes back to
/// `post_logout_redirect_uri` only when it is registered for the client named by
/// `client_id` or by the `aud` of `id_token_hint`.
pub async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Invalid request", &e.description()),
    };
    let hinted = params
        .get("id_token_hint")
        .and_then(|t| s.oauth.tokens.id_token_audience(t).ok());
    let client_id = match (params.get("client_id"), hinted.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "client_id does not match id_token_hint.",
            );
        }
        (Some(id), _) | (None, Some(id)) => Some(id.to_owned()),
        (None, None) => None,
    };
    let mut target = None;
    if let Some(uri) = params.get("post_logout_redirect_uri") {
        let client = match &client_id {
            Some(id) => s.oauth.store.client(id).await.ok().flatten(),
            None => None,
        };
        // Exactly a registered URI of that client, or no redirect at all: never an open
        // redirector.
        match client.filter(|c| c.redirect_uris.iter().any(|u| u == uri)) {
            Some(_) => target = Some(uri.to_owned()),
            None => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Cannot return to the application",
                    "The address to return to is not registered for this application.",
                );
            }
        }
    }
    let ended = match cookie(&headers, SESSION_COOKIE) {
        Some(cookie) => s.oauth.end_session(cookie).await,
        None => Ok(()),
    };
    if let Err(e) = ended {
        return authorize_error(&s, e);
    }
    let mut res = match target {
        Some(uri) => {
            let state: Vec<(&str, &str)> = params
                .get("state")
                .map(|st| vec![("state", st)])
                .unwrap_or_default();
            redirect(
                &crate::oauth::authorize::with_query(&uri, &state),
                StatusCode::FOUND,
            )
        }
        None => html(StatusCode::OK, LoggedOutPage.render(), None),
    };
    set_cookie(
        &mut res,
        &format!(
            "{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
            secure(&s)
        ),
    );
    res
}

fn login_page(
    s: &AppState,
    request: &AuthorizeRequest,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = match opaque::random_token() {
        Ok(t) => t,
        Err(e) => return authorize_error(s, AuthorizeError::Internal(e)),
    };
    let page = LoginPage {
        client: &request.client.id,
        params: &request.params,
        csrf: &csrf,
        username,
        error,
    };
    let mut res = html(status, page.render(), Some(&request.redirect_uri));
    set_cookie(
        &mut res,
        &format!(
            "{CSRF_COOKIE}={csrf}; Path=/authorize; HttpOnly; SameSite=Strict{}",
            secure(s)
        ),
    );
    res
}

fn authorize_error(s: &AppState, e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Untrusted(message) => {
            error_page(StatusCode::BAD_REQUEST, "Cannot sign in", message)
        }
        AuthorizeError::Redirect {
            to,
            error,
            description,
            state,
        } => redirect(
            &error_redirect(
                &to,
                error,
                &description,
                state.as_deref(),
                s.oauth.tokens.issuer(),
            ),
            StatusCode::FOUND,
        ),
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

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    html(status, ErrorPage { title, message }.render(), None)
}

/// An HTML response with the security headers. `form_target` is the redirect URI a form
/// submission ends at: CSP's form-action also governs the redirect after the POST.
fn html(
    status: StatusCode,
    body: Result<String, askama::Error>,
    form_target: Option<&str>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let form_action = match form_target.and_then(|t| url::Url::parse(t).ok()) {
        Some(url) => format!("'self' {}", url.origin().ascii_serialization()),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut res = (
        status,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(CONTENT_SECURITY_POLICY, v);
    }
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

fn redirect(to: &str, status: StatusCode) -> Response {
    let mut res = status.into_response();
    match HeaderValue::from_str(to) {
        Ok(v) => {
            res.headers_mut().insert(LOCATION, v);
        }
        Err(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Cannot sign in",
                "The redirect address is malformed.",
            );
        }
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

fn set_cookie(res: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().append(SET_COOKIE, v);
    }
}

/// `; Secure` when the issuer is https (cookies then never travel in clear).
fn secure(s: &AppState) -> &'static str {
    if s.oauth.tokens.issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// The value of cookie `name` from the request's Cookie headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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
