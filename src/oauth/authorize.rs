//! The authorization endpoint (RFC 6749 §4.1, RFC 7636, OpenID Connect Core §3.1.2) and the
//! browser session behind it. No HTTP here: the `http::authorize` adapter renders pages and
//! sets cookies; this module decides.
//!
//! Errors that cannot be trusted to the redirect URI — an unknown client, a redirect URI that
//! is not registered exactly — are shown to the user and never redirect (§4.1.2.1: an open
//! redirector otherwise). Every other error goes back to the client with `error`,
//! `error_description` and `state`, in the request's response mode (the query, or a form
//! post).
//!
//! A signed-in user's request ends in a code — or first in the consent page, for clients
//! registered with `--consent` (OIDC Core §3.1.2.4), whose answer counts only with the
//! page's signed ticket.

use std::borrow::Cow;

use super::{OAuth, OAuthError, Params, scope};
use crate::model::{Client, EMAIL, GrantType, OFFLINE_ACCESS, OPENID, PROFILE, ScopeSet, User};
use crate::store::{AuthorizationCode, Session};
use crate::tokens::opaque;

/// How long a code lives (RFC 6749 §4.1.2: "a maximum authorization code lifetime of 10
/// minutes is RECOMMENDED"; one minute is plenty for a redirect).
pub const CODE_TTL_SECS: i64 = 60;
/// How long a browser session lasts without a new login.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;

/// Why an authorization request failed.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Shown as an HTML page, never redirected.
    Untrusted(&'static str),
    /// Sent back to the client's redirect URI (§4.1.2.1), in the request's response mode.
    Redirect {
        to: String,
        mode: ResponseMode,
        error: &'static str,
        description: Cow<'static, str>,
        state: Option<String>,
    },
    /// The database or hashing queue is busy: try again.
    Unavailable,
    Internal(anyhow::Error),
}

impl From<crate::store::StoreError> for AuthorizeError {
    fn from(e: crate::store::StoreError) -> Self {
        match OAuthError::from(e) {
            OAuthError::TemporarilyUnavailable => AuthorizeError::Unavailable,
            other => AuthorizeError::Internal(other.into()),
        }
    }
}

/// How the authorization response reaches the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResponseMode {
    /// In the redirect URI's query (RFC 6749 §4.1.2; the default for `code`).
    #[default]
    Query,
    /// POSTed by the browser from a page that submits itself (OAuth 2.0 Form Post Response
    /// Mode §2): the code never appears in a URL.
    FormPost,
}

/// An authorization response (a code, or an error), and how to deliver it.
#[derive(Clone, Debug)]
pub struct AuthorizationResponse {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub params: Vec<(&'static str, String)>,
}

impl AuthorizationResponse {
    /// The redirect URI with the parameters added to its query.
    pub fn url(&self) -> String {
        let pairs: Vec<(&str, &str)> = self.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        with_query(&self.redirect_uri, &pairs)
    }
}

/// What happens once the user is signed in.
#[derive(Debug)]
pub enum SignedIn {
    /// The code (or an error) goes back to the client.
    Respond(AuthorizationResponse),
    /// The client asks for consent the user has not given: show the consent page for these
    /// scopes (already narrowed to what the client and user may have), with the ticket its
    /// answer must carry.
    AskConsent { scopes: ScopeSet, ticket: String },
}

/// The user's answer on the consent page, with the page's ticket.
#[derive(Clone, Copy, Debug)]
pub struct ConsentAnswer<'a> {
    pub allowed: bool,
    pub ticket: &'a str,
}

/// How long a consent page may be answered.
pub const CONSENT_TTL_SECS: i64 = 600;

/// What a consent ticket signs: each field length-prefixed, so no two field lists read alike.
fn consent_message(
    request: &AuthorizeRequest,
    session: &Session,
    scopes: &ScopeSet,
    expires: i64,
) -> Vec<u8> {
    let scopes = scopes.to_string();
    let expires = expires.to_string();
    let mut message = Vec::with_capacity(256);
    for field in [
        session.id.as_str(),
        session.user_id.as_str(),
        request.client.id.as_str(),
        request.redirect_uri.as_str(),
        scopes.as_str(),
        expires.as_str(),
    ] {
        message.extend_from_slice(&(field.len() as u64).to_be_bytes());
        message.extend_from_slice(field.as_bytes());
    }
    message
}

/// A checked authorization request.
#[derive(Clone, Debug)]
pub struct AuthorizeRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub requested: Option<ScopeSet>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt_none: bool,
    pub prompt_login: bool,
    pub prompt_consent: bool,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The parameters as received, to carry through the login form.
    pub params: Vec<(String, String)>,
}

/// The parameters an authorization request may carry; the login form echoes exactly these.
pub const PARAMETERS: [&str; 12] = [
    "response_type",
    "response_mode",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
];

impl AuthorizeRequest {
    fn error(
        &self,
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> AuthorizeError {
        AuthorizeError::Redirect {
            to: self.redirect_uri.clone(),
            mode: self.response_mode,
            error,
            description: description.into(),
            state: self.state.clone(),
        }
    }

    /// Whether a session that authenticated at `auth_time` is good enough now.
    pub fn accepts_session(&self, auth_time: i64, now: i64) -> bool {
        !self.prompt_login && self.max_age.is_none_or(|max| now - auth_time <= max)
    }

    /// The error for `prompt=none` when the user would have to log in (OIDC Core §3.1.2.6).
    pub fn login_required(&self) -> AuthorizeError {
        self.error("login_required", "the user is not signed in")
    }
}

/// What an OIDC scope lets the client do, in the consent page's words; `None` for a
/// permission scope (shown by its name).
pub fn describe_scope(scope: &str) -> Option<&'static str> {
    match scope {
        OPENID => Some("Know who you are: your account's identifier"),
        PROFILE => Some("See your name and username"),
        EMAIL => Some("See your email address"),
        OFFLINE_ACCESS => Some("Keep access while you are not using it"),
        _ => None,
    }
}

fn is_web_uri(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// RFC 7636 §4.1: `code_verifier = 43*128unreserved`; the S256 challenge is its SHA-256,
/// base64url without padding (43 characters).
fn is_pkce_value(s: &str, min: usize) -> bool {
    (min..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine;
    use subtle::ConstantTimeEq;
    if !is_pkce_value(verifier, 43) {
        return false;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

impl OAuth {
    /// Checks an authorization request (OIDC Core §3.1.2.1, RFC 6749 §4.1.1, RFC 7636 §4.3).
    pub async fn check_authorize(
        &self,
        params: &Params,
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        // First what decides whether errors may be redirected at all.
        let client_id = params
            .get("client_id")
            .ok_or(AuthorizeError::Untrusted("the request has no client_id"))?;
        let client = self
            .store
            .client(client_id)
            .await?
            .ok_or(AuthorizeError::Untrusted(
                "this application is not registered here",
            ))?;
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or(AuthorizeError::Untrusted("the request has no redirect_uri"))?;
        // Exact string comparison (RFC 9700 §4.1.3): no prefixes, no patterns.
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(AuthorizeError::Untrusted(
                "the redirect_uri is not registered for this application",
            ));
        }
        // Registered by an earlier version that did not check (RFC 8252 §7): never used.
        if !crate::model::is_usable_redirect_uri(redirect_uri) {
            return Err(AuthorizeError::Untrusted(
                "the redirect_uri registered for this application is not a safe one; the \
                 administrator must register it again",
            ));
        }
        let mut request = AuthorizeRequest {
            redirect_uri: redirect_uri.to_owned(),
            response_mode: ResponseMode::Query,
            state: params.get("state").map(str::to_owned),
            client,
            requested: None,
            nonce: params.get("nonce").map(str::to_owned),
            code_challenge: None,
            prompt_none: false,
            prompt_login: false,
            prompt_consent: false,
            max_age: None,
            login_hint: params.get("login_hint").map(str::to_owned),
            params: PARAMETERS
                .iter()
                .filter_map(|name| params.get(name).map(|v| ((*name).to_owned(), v.to_owned())))
                .collect(),
        };
        // Known first, so that every later error is delivered the way the client asked.
        match params.get("response_mode") {
            None | Some("query") => {}
            // A page can POST only to a web address, not to a native app's private-use
            // scheme (RFC 8252 §7.1): those get the response in the query.
            Some("form_post") if !is_web_uri(redirect_uri) => {
                return Err(request.error(
                    "invalid_request",
                    "response_mode=form_post needs an http or https redirect_uri",
                ));
            }
            Some("form_post") => request.response_mode = ResponseMode::FormPost,
            // `fragment` would put the code where scripts and history can read it.
            Some(_) => {
                return Err(request.error(
                    "invalid_request",
                    "response_mode must be query or form_post",
                ));
            }
        }
        match params.get("response_type") {
            Some("code") => {}
            Some(_) => {
                return Err(request.error(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ));
            }
            None => return Err(request.error("invalid_request", "response_type is missing")),
        }
        if !request.client.may_use(GrantType::AuthorizationCode) {
            return Err(request.error(
                "unauthorized_client",
                "this client is not registered for the authorization_code grant",
            ));
        }
        request.requested = match self
            .requested_scopes(params.get("scope"), &request.client)
            .await
        {
            Ok(r) => scope::check_client(r.as_ref(), &request.client).map(|()| r),
            Err(e @ OAuthError::InvalidScope(_)) => Err(e),
            Err(OAuthError::TemporarilyUnavailable) => return Err(AuthorizeError::Unavailable),
            Err(e) => return Err(AuthorizeError::Internal(e.into())),
        }
        .map_err(|e| request.error("invalid_scope", e.description()))?;
        // RFC 7636 §4.3 / RFC 9700 §2.1.1: S256 only; required of public clients.
        match (
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        ) {
            (Some(challenge), Some("S256")) if is_pkce_value(challenge, 43) => {
                request.code_challenge = Some(challenge.to_owned());
            }
            (Some(_), Some("S256")) => {
                return Err(request.error("invalid_request", "code_challenge is malformed"));
            }
            (Some(_), _) => {
                return Err(request.error(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not accepted)",
                ));
            }
            (None, Some(_)) => {
                return Err(request.error("invalid_request", "code_challenge is missing"));
            }
            (None, None) if request.client.is_public() => {
                return Err(request.error(
                    "invalid_request",
                    "public clients must use PKCE (code_challenge with S256)",
                ));
            }
            (None, None) => {}
        }
        if let Some(prompt) = params.get("prompt") {
            for value in prompt.split(' ').filter(|v| !v.is_empty()) {
                match value {
                    "none" => request.prompt_none = true,
                    "login" => request.prompt_login = true,
                    // Asked again of clients registered with `--consent`; the others are the
                    // operator's own apps, which never show the consent page.
                    "consent" => request.prompt_consent = true,
                    // There is no account chooser: one account per browser session.
                    "select_account" => {}
                    _ => {
                        return Err(request.error("invalid_request", "prompt has an unknown value"));
                    }
                }
            }
            if request.prompt_none && prompt.split(' ').filter(|v| !v.is_empty()).count() > 1 {
                // OIDC Core §3.1.2.1: none with any other value is an error.
                return Err(request.error("invalid_request", "prompt=none cannot be combined"));
            }
        }
        if let Some(max_age) = params.get("max_age") {
            let max_age = max_age
                .parse::<i64>()
                .ok()
                .filter(|m| *m >= 0)
                .ok_or_else(|| {
                    request.error("invalid_request", "max_age must be a number of seconds")
                })?;
            // OIDC Core §3.1.2.1: max_age=0 is prompt=login.
            request.prompt_login |= max_age == 0;
            request.max_age = Some(max_age);
        }
        // Request objects (OIDC Core §6) are not supported, and the client is told so.
        if params.get("request").is_some() {
            return Err(request.error("request_not_supported", "request objects are not supported"));
        }
        if params.get("request_uri").is_some() {
            return Err(request.error("request_uri_not_supported", "request_uri is not supported"));
        }
        Ok(request)
    }

    /// The user of a browser session, if the cookie names a live one, the user is enabled
    /// and nothing ended the session since (a password change, a disable).
    pub async fn session_user(
        &self,
        cookie: &str,
        now: i64,
    ) -> Result<Option<(User, Session)>, AuthorizeError> {
        let found = self
            .store
            .session_with_user(&opaque::sha256_hex(cookie), now)
            .await?;
        Ok(found.map(|(session, user)| (user, session)))
    }

    /// Starts a browser session for a user who just signed in; returns the cookie value and
    /// the session. The browser's previous session (`previous`, its cookie) continues under
    /// the new cookie when it was this user's — the same relying parties, the same `sid`s —
    /// and ends otherwise (another user, or none left).
    pub async fn start_session(
        &self,
        user: &User,
        previous: Option<&str>,
        now: i64,
    ) -> Result<(String, Session), AuthorizeError> {
        let continued = match previous {
            Some(cookie) => match self.session_user(cookie, now).await? {
                Some((_, old)) if old.user_id == user.id => {
                    // The old cookie goes; its session lives on under the new one.
                    self.store
                        .delete_session_cookie(&opaque::sha256_hex(cookie))
                        .await?;
                    Some(old.id)
                }
                // Another user's live session ends, and its relying parties hear of it.
                Some(_) => {
                    self.end_browser_session(cookie, now).await?;
                    None
                }
                // An expired or ended one: only its cookie goes.
                None => {
                    self.store
                        .delete_session_cookie(&opaque::sha256_hex(cookie))
                        .await?;
                    None
                }
            },
            None => None,
        };
        let cookie = opaque::random_token().map_err(AuthorizeError::Internal)?;
        let session = Session {
            id: continued.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            user_id: user.id.clone(),
            auth_time: now,
            expires_at: now + SESSION_TTL_SECS,
            security_version: user.security_version,
        };
        self.store
            .insert_session(&opaque::sha256_hex(&cookie), &session, now)
            .await?;
        Ok((cookie, session))
    }

    /// Ends the browser session the cookie names (if it still exists): its relying parties
    /// are told by back-channel logout, and its refresh tokens without `offline_access` are
    /// revoked. True when a session ended.
    pub async fn end_browser_session(
        &self,
        cookie: &str,
        now: i64,
    ) -> Result<bool, AuthorizeError> {
        let ended = self
            .store
            .end_browser_session(&opaque::sha256_hex(cookie), now)
            .await?;
        if ended {
            self.backchannel.wake();
        }
        Ok(ended)
    }

    /// The scopes this request gets for `user` (`oauth::scope`).
    fn grant(&self, request: &AuthorizeRequest, user: &User) -> Result<ScopeSet, AuthorizeError> {
        scope::grant_for_user(request.requested.as_ref(), &request.client, user)
            .map_err(|e| request.error("invalid_scope", e.description()))
    }

    /// What to do for a signed-in user: issue the code, or first ask for consent when the
    /// client is registered with `--consent` and the user has not allowed every scope it
    /// gets (or `prompt=consent` asks again). With `prompt=none`, a needed consent is the
    /// error `consent_required` (OIDC Core §3.1.2.6). A grant of no scope at all has nothing
    /// to ask about.
    pub async fn signed_in(
        &self,
        request: &AuthorizeRequest,
        user: &User,
        session: &Session,
        now: i64,
    ) -> Result<SignedIn, AuthorizeError> {
        let scopes = self.grant(request, user)?;
        if request.client.consent && !scopes.is_empty() {
            let allowed = self.store.consent(&user.id, &request.client.id).await?;
            let covered = !request.prompt_consent
                && allowed.is_some_and(|a| scopes.iter().all(|s| a.contains(s)));
            if !covered {
                if request.prompt_none {
                    return Err(request.error(
                        "consent_required",
                        "the user has not allowed this application yet",
                    ));
                }
                let ticket = self.consent_ticket(request, session, &scopes, now + CONSENT_TTL_SECS);
                return Ok(SignedIn::AskConsent { scopes, ticket });
            }
        }
        let response = self
            .issue_code(request, user, &scopes, session, now)
            .await?;
        Ok(SignedIn::Respond(response))
    }

    /// The consent page's ticket: an HMAC (under a key derived from `ferrid.secret`) over
    /// the session, its user, the client, the redirect URI and exactly the scopes shown,
    /// valid until `expires`. The answer counts only with it — not for another client or
    /// scope set, not for whoever signs in on the browser later, not after a while.
    fn consent_ticket(
        &self,
        request: &AuthorizeRequest,
        session: &Session,
        scopes: &ScopeSet,
        expires: i64,
    ) -> String {
        use base64::Engine;
        let mac = aws_lc_rs::hmac::sign(
            &self.consent_key,
            &consent_message(request, session, scopes, expires),
        );
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.as_ref());
        format!("{expires}.{mac}")
    }

    fn consent_ticket_ok(
        &self,
        ticket: &str,
        request: &AuthorizeRequest,
        session: &Session,
        scopes: &ScopeSet,
        now: i64,
    ) -> bool {
        use base64::Engine;
        let Some((expires, mac)) = ticket.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(mac)) = (
            expires.parse::<i64>(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(mac),
        ) else {
            return false;
        };
        expires >= now
            && aws_lc_rs::hmac::verify(
                &self.consent_key,
                &consent_message(request, session, scopes, expires),
                &mac,
            )
            .is_ok()
    }

    /// The user's answer on the consent page: Allow remembers the scopes (with those allowed
    /// before) and issues the code; Deny sends `access_denied` (RFC 6749 §4.1.2.1). Only
    /// with the page's valid ticket for this session, user and scope set.
    pub async fn consent_answered(
        &self,
        request: &AuthorizeRequest,
        user: &User,
        session: &Session,
        answer: ConsentAnswer<'_>,
        now: i64,
    ) -> Result<AuthorizationResponse, AuthorizeError> {
        let scopes = self.grant(request, user)?;
        if !self.consent_ticket_ok(answer.ticket, request, session, &scopes, now) {
            return Err(AuthorizeError::Untrusted(
                "this consent page expired or belongs to another sign-in; start again from the \
                 application",
            ));
        }
        if !answer.allowed {
            return Err(request.error("access_denied", "the user did not allow the application"));
        }
        let mut remembered = self
            .store
            .consent(&user.id, &request.client.id)
            .await?
            .unwrap_or_default();
        remembered.extend(&scopes);
        self.store
            .save_consent(&user.id, &request.client.id, &remembered, now)
            .await?;
        tracing::info!(
            event = "consent_given",
            user_id = user.id,
            client_id = request.client.id,
            scope = %scopes,
        );
        self.issue_code(request, user, &scopes, session, now).await
    }

    /// Issues a code for a signed-in user (RFC 6749 §4.1.2, with `iss` of RFC 9207).
    pub async fn issue_code(
        &self,
        request: &AuthorizeRequest,
        user: &User,
        scopes: &ScopeSet,
        session: &Session,
        now: i64,
    ) -> Result<AuthorizationResponse, AuthorizeError> {
        if request.nonce.is_some() && !scopes.contains(OPENID) {
            // A nonce only means something in an ID token; harmless, so accepted and unused.
            tracing::debug!("nonce sent without openid");
        }
        let code = opaque::random_token().map_err(AuthorizeError::Internal)?;
        let record = AuthorizationCode {
            client_id: request.client.id.clone(),
            user_id: user.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scopes: scopes.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time: session.auth_time,
            family_id: uuid::Uuid::new_v4().to_string(),
            created_at: now,
            expires_at: now + CODE_TTL_SECS,
            security_version: user.security_version,
            session_id: Some(session.id.clone()),
        };
        self.store
            .insert_code(&opaque::sha256_hex(&code), &record)
            .await?;
        let mut params = vec![("code", code), ("iss", self.tokens.issuer().to_owned())];
        if let Some(state) = &request.state {
            params.push(("state", state.clone()));
        }
        Ok(AuthorizationResponse {
            redirect_uri: request.redirect_uri.clone(),
            mode: request.response_mode,
            params,
        })
    }
}

/// `base` with `params` added to its query (RFC 6749 §4.1.2: keep the existing query).
/// Without parameters, `base` exactly (no stray `?`).
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return base.to_owned();
    }
    match url::Url::parse(base) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

/// The response for an error that may go back to the client (§4.1.2.1).
pub fn error_response(
    to: &str,
    mode: ResponseMode,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> AuthorizationResponse {
    let mut params = vec![
        ("error", error.to_owned()),
        ("error_description", description.to_owned()),
        ("iss", issuer.to_owned()),
    ];
    if let Some(state) = state {
        params.push(("state", state.to_owned()));
    }
    AuthorizationResponse {
        redirect_uri: to.to_owned(),
        mode,
        params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn pkce_s256_matches_the_rfc_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_matches(
            "short",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn redirects_keep_the_registered_query_and_add_no_empty_one() {
        assert_eq!(
            with_query("https://app.example/bye", &[]),
            "https://app.example/bye"
        );
        assert_eq!(
            with_query(
                "https://app.example/cb?x=1",
                &[("code", "a b"), ("state", "s")]
            ),
            "https://app.example/cb?x=1&code=a+b&state=s"
        );
    }
}
