//! `GET`/`POST /logout` (OpenID Connect RP-Initiated Logout 1.0 §2): renders what
//! `oauth::logout` decides — the confirmation page, an error page, or the end of the session
//! (the signed-out page or the redirect back to the relying party).

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::cookies::cookie;
use super::extract::PageForm;
use super::pages::{authorize_error, error_page, html, query_params, redirect};
use super::state::AppState;
use crate::oauth::Params;
use crate::oauth::authorize::AuthorizeError;
use crate::oauth::logout::{LogoutOutcome, LogoutRequest};

#[derive(Template)]
#[template(path = "logged_out.html")]
struct LoggedOutPage<'a> {
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct LogoutConfirmPage<'a> {
    username: &'a str,
    params: &'a [(String, String)],
    csrf: &'a str,
}

/// `GET /logout` (§2).
pub async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match query_params(query) {
        Ok(p) => p,
        Err(page) => return *page,
    };
    rp_initiated_logout(s, headers, params, false).await
}

/// `POST /logout`: the same request as a form (§2 requires both), or the confirmation.
pub async fn logout_post(
    State(s): State<AppState>,
    headers: HeaderMap,
    PageForm(params): PageForm,
) -> Response {
    rp_initiated_logout(s, headers, params, true).await
}

async fn rp_initiated_logout(
    s: AppState,
    headers: HeaderMap,
    params: Params,
    posted: bool,
) -> Response {
    let request = LogoutRequest {
        id_token_hint: params.get("id_token_hint"),
        client_id: params.get("client_id"),
        post_logout_redirect_uri: params.get("post_logout_redirect_uri"),
        state: params.get("state"),
        confirmed: posted
            && params.get("confirm") == Some("yes")
            && s.cookies.csrf_ok(&headers, &params),
    };
    let session = cookie(&headers, s.cookies.session);
    let outcome = match s.oauth.logout(request, session, s.clock.now()).await {
        Ok(outcome) => outcome,
        Err(e) => return authorize_error(&s, e),
    };
    match outcome {
        LogoutOutcome::Refused { title, message } => {
            error_page(StatusCode::BAD_REQUEST, title, message)
        }
        LogoutOutcome::Confirm { username } => {
            logout_confirm_page(&s, &headers, &params, &username)
        }
        LogoutOutcome::SignedOut { redirect: to } => {
            let mut res = match to {
                Some(to) => redirect(&to, StatusCode::SEE_OTHER),
                None => html(StatusCode::OK, LoggedOutPage { error: None }.render()),
            };
            s.cookies.clear_session(&mut res);
            res
        }
        LogoutOutcome::SignedOutNotReturned { message } => {
            let page = LoggedOutPage {
                error: Some(message),
            };
            let mut res = html(StatusCode::BAD_REQUEST, page.render());
            s.cookies.clear_session(&mut res);
            res
        }
    }
}

fn logout_confirm_page(
    s: &AppState,
    headers: &HeaderMap,
    params: &Params,
    username: &str,
) -> Response {
    let (csrf, fresh) = match s.cookies.csrf_token(headers) {
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
    let mut res = html(StatusCode::OK, page.render());
    if fresh {
        s.cookies.set_csrf(&mut res, &csrf);
    }
    res
}
