//! RP-Initiated Logout (OpenID Connect RP-Initiated Logout 1.0 §2, §3): what a logout
//! request does to the browser's session, and where the browser goes next. No HTTP here:
//! `http::logout` renders what [`OAuth::logout`] decides.

use super::OAuth;
use super::authorize::AuthorizeError;

/// A logout request, as the relying party sent it (by GET or POST), and whether the
/// signed-in user confirmed it on ferrid's page (with a valid CSRF token: the adapter checks).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogoutRequest<'a> {
    pub id_token_hint: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub post_logout_redirect_uri: Option<&'a str>,
    pub state: Option<&'a str>,
    pub confirmed: bool,
}

/// What the logout page must do.
#[derive(Debug, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// The request is refused, and nothing was ended: show this (never redirect).
    Refused {
        title: &'static str,
        message: &'static str,
    },
    /// Ask the signed-in user to confirm (§2: the OP MUST ask unless the `id_token_hint`
    /// belongs to the current session); nothing was ended yet.
    Confirm { username: String },
    /// The session (if there was one) has ended: send the browser to `redirect`, else show
    /// the signed-out page. Either way, clear the session cookie.
    SignedOut { redirect: Option<String> },
    /// The session (if there was one) has ended, but the address to return to is not
    /// registered for the client: show the signed-out page with this error, never redirect
    /// (§3: "MUST NOT perform post-logout redirection"). Clear the session cookie.
    SignedOutNotReturned { message: &'static str },
}

impl OAuth {
    /// Decides an RP-initiated logout for the browser holding `session_cookie`, and ends its
    /// session when it should: at once when a valid `id_token_hint` comes from a login made
    /// in that session, after the user confirms otherwise. It returns to `post_logout_redirect_uri`
    /// (with `state`) only when that URI is registered as a post-logout redirect URI of the
    /// client named by `client_id` or by the hint's `aud` — never an open redirector. An
    /// unregistered one does not keep the session alive: the user asked to sign out.
    pub async fn logout(
        &self,
        request: LogoutRequest<'_>,
        session_cookie: Option<&str>,
        now: i64,
    ) -> Result<LogoutOutcome, AuthorizeError> {
        let refused = |title, message| Ok(LogoutOutcome::Refused { title, message });
        // §2: an ID token this OP issued to the client — an expired one too.
        let hint = match request.id_token_hint {
            Some(token) => match self.tokens.id_token_hint(token) {
                Ok(hint) => Some(hint),
                // Signed by a key that is gone from the keys dir (rotated out long ago): it
                // cannot be checked, so it counts as no hint — the user is asked to confirm.
                Err(crate::tokens::TokenError::UnknownKey) => None,
                Err(_) => {
                    return refused(
                        "Cannot sign out",
                        "The id_token_hint is not a valid ID token of this server.",
                    );
                }
            },
            None => None,
        };
        let hinted_client = hint.as_ref().map(|h| h.aud.as_str());
        let client_id = match (request.client_id, hinted_client) {
            (Some(a), Some(b)) if a != b => {
                return refused("Cannot sign out", "client_id does not match id_token_hint.");
            }
            (Some(id), _) | (None, Some(id)) => Some(id),
            (None, None) => None,
        };
        let redirect = match request.post_logout_redirect_uri {
            Some(uri) => {
                let client = match client_id {
                    Some(id) => self.store.client(id).await?,
                    None => None,
                };
                // Exactly a registered post-logout URI of that client (RP-Initiated Logout
                // §3.1), and one that may be used at all.
                let registered =
                    client.is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == uri));
                if registered && crate::model::is_usable_redirect_uri(uri) {
                    let state: Vec<(&str, &str)> = request
                        .state
                        .map(|st| vec![("state", st)])
                        .unwrap_or_default();
                    Ok(Some(super::authorize::with_query(uri, &state)))
                } else {
                    Err(
                        "The address to return to is not registered for this application, so \
                         you stay here.",
                    )
                }
            }
            None => Ok(None),
        };
        if let Some(cookie) = session_cookie {
            if let Some((user, session)) = self.session_user(cookie, now).await? {
                // §2: without confirmation only when the hint belongs to this very session:
                // its user, and a login (`sid`) made in it — not an old token of the user's.
                let hinted = match &hint {
                    Some(h) if h.sub == user.id => match &h.sid {
                        Some(sid) => {
                            self.store.session_of_family(sid).await?.as_deref()
                                == Some(session.id.as_str())
                        }
                        None => false,
                    },
                    _ => false,
                };
                if !hinted && !request.confirmed {
                    return Ok(LogoutOutcome::Confirm {
                        username: user.username,
                    });
                }
            }
            self.end_browser_session(cookie, now).await?;
        }
        Ok(match redirect {
            Ok(redirect) => LogoutOutcome::SignedOut { redirect },
            Err(message) => LogoutOutcome::SignedOutNotReturned { message },
        })
    }
}
