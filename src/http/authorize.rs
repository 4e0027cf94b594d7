//! `GET`/`POST /authorize` (OIDC Core §3.1.2, RFC 6749 §4.1) and the login form
//! (`POST /authorize` with the form's fields). The page rules are in `pages`, the cookies in
//! `cookies`; what to do is decided by `oauth::authorize`.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::cookies::cookie;
use super::extract::{ClientIp, OAuthForm};
use super::pages::{authorize_error, error_page, html, query_params, redirect};
use super::state::AppState;
use crate::model::Secret;
use crate::oauth::OAuthError;
use crate::oauth::authorize::{AuthorizeError, AuthorizeRequest, SESSION_TTL_SECS};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    client: &'a str,
    params: &'a [(String, String)],
    csrf: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

/// `GET /authorize`: signs in with the session if there is one (and it is fresh enough),
/// else shows the login page.
pub async fn authorize(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match query_params(query) {
        Ok(p) => p,
        Err(page) => return *page,
    };
    let request = match s.oauth.check_authorize(&params).await {
        Ok(r) => r,
        Err(e) => return authorize_error(&s, e),
    };
    let now = s.clock.now();
    if let Some(cookie) = cookie(&headers, s.cookies.session) {
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
    login_page(&s, &headers, &request, &username, None, StatusCode::OK)
}

/// `POST /authorize`: the login form. Same password check (and throttling) as the password
/// grant; a wrong password shows one generic message and keeps the username.
pub async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let started = tokio::time::Instant::now();
    let request = match s.oauth.check_authorize(&params).await {
        Ok(r) => r,
        Err(e) => return authorize_error(&s, e),
    };
    if !s.cookies.csrf_ok(&headers, &params) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Sign-in expired",
            "The sign-in form expired or was not sent from this site. Start the sign-in again \
             from the application.",
        );
    }
    let username = params.get("username").unwrap_or_default();
    let password = Secret::new(params.get("password").unwrap_or_default());
    let now = s.clock.now();
    let user = match s
        .oauth
        .check_password(username, password, ip, started, now)
        .await
    {
        Ok(user) => user,
        Err(OAuthError::InvalidGrant(_)) => {
            let message = Some("The username or password is incorrect.");
            return login_page(&s, &headers, &request, username, message, StatusCode::OK);
        }
        Err(OAuthError::Throttled(wait)) => {
            let message = format!("Too many failed sign-ins. Try again in {wait} seconds.");
            let status = StatusCode::TOO_MANY_REQUESTS;
            return login_page(&s, &headers, &request, username, Some(&message), status);
        }
        Err(OAuthError::TemporarilyUnavailable) => {
            let message = Some("Too many sign-ins right now. Wait a moment and try again.");
            let status = StatusCode::SERVICE_UNAVAILABLE;
            return login_page(&s, &headers, &request, username, message, status);
        }
        Err(e) => return authorize_error(&s, AuthorizeError::Internal(e.into())),
    };
    let to = match s.oauth.issue_code(&request, &user, now, now).await {
        Ok(to) => to,
        Err(e) => return authorize_error(&s, e),
    };
    // A new sign-in gets a new session; the one the browser had (if any) ends.
    let ended = match cookie(&headers, s.cookies.session) {
        Some(old) => s.oauth.delete_browser_session(old).await,
        None => Ok(()),
    };
    if let Err(e) = ended {
        return authorize_error(&s, e);
    }
    let session = match s.oauth.start_session(&user, now).await {
        Ok(c) => c,
        Err(e) => return authorize_error(&s, e),
    };
    // 303: the browser follows with a GET (RFC 9110 §15.4.4).
    let mut res = redirect(&to, StatusCode::SEE_OTHER);
    s.cookies.set_session(&mut res, &session, SESSION_TTL_SECS);
    res
}

fn login_page(
    s: &AppState,
    headers: &HeaderMap,
    request: &AuthorizeRequest,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (csrf, fresh) = match s.cookies.csrf_token(headers) {
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
    if fresh {
        s.cookies.set_csrf(&mut res, &csrf);
    }
    res
}
