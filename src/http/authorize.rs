//! `GET`/`POST /authorize` (OIDC Core §3.1.2.1: the endpoint "MUST support the use of the
//! HTTP GET and POST methods"), the login form (`POST /login`) and the consent form
//! (`POST /consent`). The page rules are in `pages`, the cookies in `cookies`; what to do is
//! decided by `oauth::authorize`. The two forms carry the authorization request's parameters
//! and a CSRF token; the authorization request itself needs none (it is a cross-site request
//! by design).

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::cookies::cookie;
use super::extract::{ClientIp, PageForm};
use super::pages::{
    authorize_error, authorize_error_as, error_page, html, query_params, redirect, respond,
};
use super::state::AppState;
use crate::model::{ScopeSet, Secret, User};
use crate::oauth::authorize::{
    AuthorizeError, AuthorizeRequest, ConsentAnswer, SESSION_TTL_SECS, SignedIn, describe_scope,
    with_query,
};
use crate::oauth::{OAuthError, Params};
use crate::store::Session;

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
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client: &'a str,
    username: &'a str,
    /// The OIDC scopes, in plain words.
    identity: &'a [&'static str],
    /// The permission scopes, by name.
    permissions: &'a [&'a str],
    params: &'a [(String, String)],
    csrf: &'a str,
    ticket: &'a str,
}

/// `GET /authorize`.
pub async fn authorize_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match query_params(query) {
        Ok(params) => authorize(&s, &headers, &params, StatusCode::FOUND).await,
        Err(page) => *page,
    }
}

/// `POST /authorize`: the same request, form-encoded (OIDC Core §3.1.2.1).
pub async fn authorize_post(
    State(s): State<AppState>,
    headers: HeaderMap,
    PageForm(params): PageForm,
) -> Response {
    if cookie(&headers, s.cookies.session).is_none() {
        // A browser sends no `SameSite=Lax` cookie with a POST from another site, signed in
        // or not; it does with a top-level GET. So without a session cookie the request
        // continues as the GET, where single sign-on can see the session.
        let here = super::paths::url(s.oauth.issuer(), super::paths::AUTHORIZE);
        return redirect(&with_query(&here, &params.sorted()), StatusCode::SEE_OTHER);
    }
    // 303: the browser follows with a GET (RFC 9110 §15.4.4).
    authorize(&s, &headers, &params, StatusCode::SEE_OTHER).await
}

/// Signs in with the browser's session if there is one (and it is fresh enough), else
/// shows the login page.
async fn authorize(
    s: &AppState,
    headers: &HeaderMap,
    params: &Params,
    redirect: StatusCode,
) -> Response {
    let request = match s.oauth.check_authorize(params).await {
        Ok(r) => r,
        Err(e) => return authorize_error_as(s, e, redirect),
    };
    let now = s.clock.now();
    if let Some(cookie) = cookie(headers, s.cookies.session) {
        match s.oauth.session_user(cookie, now).await {
            Ok(Some((user, session))) if request.accepts_session(session.auth_time, now) => {
                return signed_in(s, headers, &request, &user, &session, redirect).await;
            }
            Ok(_) => {}
            Err(e) => return authorize_error_as(s, e, redirect),
        }
    }
    if request.prompt_none {
        return authorize_error_as(s, request.login_required(), redirect);
    }
    let username = request.login_hint.clone().unwrap_or_default();
    login_page(s, headers, &request, &username, None, StatusCode::OK)
}

/// The user is signed in: the code goes back to the client, unless consent is needed.
async fn signed_in(
    s: &AppState,
    headers: &HeaderMap,
    request: &AuthorizeRequest,
    user: &User,
    session: &Session,
    redirect: StatusCode,
) -> Response {
    match s
        .oauth
        .signed_in(request, user, session, s.clock.now())
        .await
    {
        Ok(SignedIn::Respond(response)) => respond(&response, redirect),
        Ok(SignedIn::AskConsent { scopes, ticket }) => {
            consent_page(s, headers, request, user, &scopes, &ticket)
        }
        Err(e) => authorize_error_as(s, e, redirect),
    }
}

/// `POST /login`: the login form. Same password check (and throttling) as the password
/// grant; a wrong password shows one generic message and keeps the username.
pub async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PageForm(params): PageForm,
) -> Response {
    let started = tokio::time::Instant::now();
    let request = match s.oauth.check_authorize(&params).await {
        Ok(r) => r,
        Err(e) => return authorize_error_as(&s, e, StatusCode::SEE_OTHER),
    };
    if !s.cookies.csrf_ok(&headers, &params) {
        return form_expired();
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
        Err(e) => {
            return authorize_error_as(
                &s,
                AuthorizeError::Internal(e.into()),
                StatusCode::SEE_OTHER,
            );
        }
    };
    // A new sign-in gets a new cookie (no session fixation); the browser's previous session
    // continues if it was this user's, and ends otherwise.
    let previous = cookie(&headers, s.cookies.session);
    let (cookie, session) = match s.oauth.start_session(&user, previous, now).await {
        Ok(started) => started,
        Err(e) => return authorize_error_as(&s, e, StatusCode::SEE_OTHER),
    };
    let mut res = signed_in(
        &s,
        &headers,
        &request,
        &user,
        &session,
        StatusCode::SEE_OTHER,
    )
    .await;
    s.cookies.set_session(&mut res, &cookie, SESSION_TTL_SECS);
    res
}

/// `POST /consent`: the user's answer on the consent page (OIDC Core §3.1.2.4).
pub async fn consent(
    State(s): State<AppState>,
    headers: HeaderMap,
    PageForm(params): PageForm,
) -> Response {
    let request = match s.oauth.check_authorize(&params).await {
        Ok(r) => r,
        Err(e) => return authorize_error_as(&s, e, StatusCode::SEE_OTHER),
    };
    if !s.cookies.csrf_ok(&headers, &params) {
        return form_expired();
    }
    let now = s.clock.now();
    let signed_in = match cookie(&headers, s.cookies.session) {
        Some(cookie) => s.oauth.session_user(cookie, now).await,
        None => Ok(None),
    };
    let (user, session) = match signed_in {
        Ok(Some(found)) => found,
        // Signed out meanwhile (or elsewhere): sign in again, then the page comes back.
        Ok(None) => return login_page(&s, &headers, &request, "", None, StatusCode::OK),
        Err(e) => return authorize_error_as(&s, e, StatusCode::SEE_OTHER),
    };
    let answer = ConsentAnswer {
        allowed: params.get("decision") == Some("allow"),
        ticket: params.get("consent_ticket").unwrap_or_default(),
    };
    match s
        .oauth
        .consent_answered(&request, &user, &session, answer, now)
        .await
    {
        Ok(response) => respond(&response, StatusCode::SEE_OTHER),
        Err(e) => authorize_error_as(&s, e, StatusCode::SEE_OTHER),
    }
}

fn form_expired() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Sign-in expired",
        "The sign-in form expired or was not sent from this site. Start the sign-in again \
         from the application.",
    )
}

/// The page's CSRF token, and the response with its cookie set when it is new.
fn with_csrf(s: &AppState, headers: &HeaderMap, render: impl FnOnce(&str) -> Response) -> Response {
    let (csrf, fresh) = match s.cookies.csrf_token(headers) {
        Ok(t) => t,
        Err(e) => return authorize_error(s, AuthorizeError::Internal(e)),
    };
    let mut res = render(&csrf);
    if fresh {
        s.cookies.set_csrf(&mut res, &csrf);
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
    with_csrf(s, headers, |csrf| {
        let page = LoginPage {
            client: request.client.display_name(),
            params: &request.params,
            csrf,
            username,
            error,
        };
        html(status, page.render())
    })
}

fn consent_page(
    s: &AppState,
    headers: &HeaderMap,
    request: &AuthorizeRequest,
    user: &User,
    scopes: &ScopeSet,
    ticket: &str,
) -> Response {
    let identity: Vec<&'static str> = scopes.iter().filter_map(describe_scope).collect();
    let permissions: Vec<&str> = scopes
        .iter()
        .filter(|s| describe_scope(s).is_none())
        .collect();
    with_csrf(s, headers, |csrf| {
        let page = ConsentPage {
            client: request.client.display_name(),
            username: &user.username,
            identity: &identity,
            permissions: &permissions,
            params: &request.params,
            csrf,
            ticket,
        };
        html(StatusCode::OK, page.render())
    })
}
