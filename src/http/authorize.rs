//! `GET`/`POST /authorize` (OIDC Core §3.1.2, RFC 6749 §4.1) with the login page, and
//! `GET`/`POST /logout` (OpenID Connect RP-Initiated Logout 1.0). Pages are rendered by askama
//! from `templates/`; every HTML response carries a strict Content-Security-Policy, denies
//! framing and is not cached. Forms post back to the URL they came from, and the stylesheet
//! is linked relatively, so an issuer with a path (behind a proxy) works too.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, REFERRER_POLICY,
    SET_COOKIE, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::extract::{ClientIp, OAuthForm};
use super::state::AppState;
use crate::model::Secret;
use crate::oauth::authorize::{
    AuthorizeError, AuthorizeRequest, SESSION_TTL_SECS, error_redirect, with_query,
};
use crate::oauth::{OAuthError, Params};
use crate::tokens::opaque;

/// Cookie names. With an https issuer they carry the `__Host-` prefix, which browsers accept
/// only from this host, over https, with `Path=/` — so a sibling subdomain cannot plant them
/// (RFC 9700 §4.7: login CSRF, session fixation).
struct Cookies {
    session: &'static str,
    csrf: &'static str,
    attributes: &'static str,
}

fn cookies(s: &AppState) -> Cookies {
    let https = url::Url::parse(s.oauth.tokens.issuer()).is_ok_and(|u| u.scheme() == "https");
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

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct LogoutConfirmPage<'a> {
    username: &'a str,
    params: &'a [(String, String)],
    csrf: &'a str,
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
    if let Some(cookie) = cookie(&headers, cookies(&s).session) {
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
    if !csrf_ok(&s, &headers, &params) {
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
    let names = cookies(&s);
    let ended = match cookie(&headers, names.session) {
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
    set_cookie(
        &mut res,
        &format!(
            "{}={session}; Max-Age={SESSION_TTL_SECS}; SameSite=Lax{}",
            names.session, names.attributes
        ),
    );
    res
}

/// `GET /logout` (OpenID Connect RP-Initiated Logout 1.0 §2).
pub async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Invalid request", &e.description()),
    };
    rp_initiated_logout(s, headers, params, false).await
}

/// `POST /logout`: the same request as a form (§2 requires both), or the confirmation.
pub async fn logout_post(
    State(s): State<AppState>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    rp_initiated_logout(s, headers, params, true).await
}

/// Ends the browser's session — at once when a valid `id_token_hint` names the signed-in
/// user, after the user confirms otherwise (§2: the OP MUST ask then) — and goes back to
/// `post_logout_redirect_uri` only when it is registered for the client named by
/// `client_id` or by the hint's `aud`.
async fn rp_initiated_logout(
    s: AppState,
    headers: HeaderMap,
    params: Params,
    posted: bool,
) -> Response {
    let hint = match params.get("id_token_hint") {
        Some(token) => match s.oauth.tokens.id_token_hint(token) {
            Ok(hint) => Some(hint),
            Err(_) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Cannot sign out",
                    "The id_token_hint is not a valid ID token of this server.",
                );
            }
        },
        None => None,
    };
    let hinted_client = hint.as_ref().map(|(aud, _)| aud.as_str());
    let client_id = match (params.get("client_id"), hinted_client) {
        (Some(a), Some(b)) if a != b => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Cannot sign out",
                "client_id does not match id_token_hint.",
            );
        }
        (Some(id), _) | (None, Some(id)) => Some(id.to_owned()),
        (None, None) => None,
    };
    let mut target = None;
    if let Some(uri) = params.get("post_logout_redirect_uri") {
        let client = match &client_id {
            Some(id) => match s.oauth.store.client(id).await {
                Ok(c) => c,
                Err(e) => return authorize_error(&s, e.into()),
            },
            None => None,
        };
        // Exactly a registered URI of that client, or no redirect at all: never an open
        // redirector.
        let registered = client.is_some_and(|c| c.redirect_uris.iter().any(|u| u == uri));
        if !registered || !crate::model::is_usable_redirect_uri(uri) {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Cannot return to the application",
                "The address to return to is not registered for this application.",
            );
        }
        target = Some(uri.to_owned());
    }

    let names = cookies(&s);
    if let Some(cookie) = cookie(&headers, names.session) {
        let user = match s.oauth.session_user(cookie, s.clock.now()).await {
            Ok(user) => user.map(|(u, _)| u),
            Err(e) => return authorize_error(&s, e),
        };
        if let Some(user) = user {
            let hinted = hint.as_ref().is_some_and(|(_, sub)| *sub == user.id);
            let confirmed =
                posted && params.get("confirm") == Some("yes") && csrf_ok(&s, &headers, &params);
            if !hinted && !confirmed {
                return logout_confirm_page(&s, &headers, &params, &user.username);
            }
        }
        if let Err(e) = s.oauth.delete_browser_session(cookie).await {
            return authorize_error(&s, e);
        }
    }
    let mut res = match target {
        Some(uri) => {
            let state: Vec<(&str, &str)> = params
                .get("state")
                .map(|st| vec![("state", st)])
                .unwrap_or_default();
            redirect(&with_query(&uri, &state), StatusCode::SEE_OTHER)
        }
        None => html(StatusCode::OK, LoggedOutPage.render(), None),
    };
    set_cookie(
        &mut res,
        &format!(
            "{}=; Max-Age=0; SameSite=Lax{}",
            names.session, names.attributes
        ),
    );
    res
}

fn logout_confirm_page(
    s: &AppState,
    headers: &HeaderMap,
    params: &Params,
    username: &str,
) -> Response {
    let (csrf, fresh) = match csrf_token(s, headers) {
        Ok(t) => t,
        Err(e) => return authorize_error(s, AuthorizeError::Internal(e)),
    };
    let carried: Vec<(String, String)> = [
        "id_token_hint",
        "client_id",
        "post_logout_redirect_uri",
        "state",
    ]
    .iter()
    .filter_map(|n| params.get(n).map(|v| ((*n).to_owned(), v.to_owned())))
    .collect();
    let page = LogoutConfirmPage {
        username,
        params: &carried,
        csrf: &csrf,
    };
    let mut res = html(
        StatusCode::OK,
        page.render(),
        params.get("post_logout_redirect_uri"),
    );
    if fresh {
        let names = cookies(s);
        set_cookie(
            &mut res,
            &format!("{}={csrf}; SameSite=Strict{}", names.csrf, names.attributes),
        );
    }
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
    let (csrf, fresh) = match csrf_token(s, headers) {
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
        let names = cookies(s);
        set_cookie(
            &mut res,
            &format!("{}={csrf}; SameSite=Strict{}", names.csrf, names.attributes),
        );
    }
    res
}

/// Double-submit check: the form's `csrf_token` must equal the cookie set with the form.
fn csrf_ok(s: &AppState, headers: &HeaderMap, params: &Params) -> bool {
    match (cookie(headers, cookies(s).csrf), params.get("csrf_token")) {
        (Some(cookie), Some(form)) => bool::from(cookie.as_bytes().ct_eq(form.as_bytes())),
        _ => false,
    }
}

/// The browser's CSRF token: the one it has (so several open forms stay valid), or a new one
/// (`true`: set the cookie).
fn csrf_token(s: &AppState, headers: &HeaderMap) -> Result<(String, bool), anyhow::Error> {
    match cookie(headers, cookies(s).csrf).filter(|c| c.len() == 43) {
        Some(existing) => Ok((existing.to_owned(), false)),
        None => opaque::random_token().map(|t| (t, true)),
    }
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
        } => {
            let issuer = s.oauth.tokens.issuer();
            let to = error_redirect(&to, error, &description, state.as_deref(), issuer);
            redirect(&to, StatusCode::FOUND)
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

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    html(status, ErrorPage { title, message }.render(), None)
}

/// An HTML response with the security headers. `form_target` is where a form submission
/// ends: CSP's form-action also governs the redirect that answers the form.
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
    // The redirect URI's origin, or its scheme for a native app's private-use URI
    // (RFC 8252 §7.1).
    let form_action = match form_target.and_then(|t| url::Url::parse(t).ok()) {
        Some(url) if matches!(url.scheme(), "http" | "https") => {
            format!("'self' {}", url.origin().ascii_serialization())
        }
        Some(url) => format!("'self' {}:", url.scheme()),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
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

fn redirect(to: &str, status: StatusCode) -> Response {
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

fn set_cookie(res: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().append(SET_COOKIE, v);
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
