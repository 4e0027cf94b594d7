//! `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4) and
//! `GET /.well-known/oauth-authorization-server` (RFC 8414 §3): one document, built once at
//! start, listing only what this build implements.

use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::json;

use super::paths;
use super::state::AppState;
use crate::model::{EMAIL, OFFLINE_ACCESS, OPENID, PROFILE};
use crate::oauth::grants;

/// The serialized document and its ETag.
pub struct Discovery {
    /// Shared with every response (a reference count, not a copy).
    pub body: bytes::Bytes,
    pub etag: String,
}

impl Discovery {
    pub fn new(issuer: &str) -> Self {
        let url = |path: &str| paths::url(issuer, path);
        let grant_types: Vec<&str> = grants::SUPPORTED.iter().map(|g| g.as_str()).collect();
        let doc = json!({
            "issuer": issuer,
            "authorization_endpoint": url(paths::AUTHORIZE),
            "token_endpoint": url(paths::TOKEN),
            "end_session_endpoint": url(paths::LOGOUT),
            "jwks_uri": url(paths::JWKS),
            "userinfo_endpoint": url(paths::USERINFO),
            "introspection_endpoint": url(paths::INTROSPECT),
            "revocation_endpoint": url(paths::REVOKE),
            "grant_types_supported": grant_types,
            "response_types_supported": ["code"],
            // OAuth 2.0 Form Post Response Mode.
            "response_modes_supported": ["query", "form_post"],
            // RFC 7636 §4.2; plain is refused (RFC 9700 §2.1.1).
            "code_challenge_methods_supported": ["S256"],
            // RFC 9207: every authorization response carries `iss`.
            "authorization_response_iss_parameter_supported": true,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "none"],
            // RFC 7662 §2.1: introspection needs an authenticated (confidential) client;
            // RFC 7009 §2.1: a public client may revoke its own tokens.
            "introspection_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "none"],
            "scopes_supported": [OPENID, PROFILE, EMAIL, OFFLINE_ACCESS],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "at_hash", "nonce", "sid",
                "name", "preferred_username", "email", "email_verified",
            ],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            // OIDC Discovery §3: this one defaults to true, so say no explicitly.
            "request_uri_parameter_supported": false,
            // Back-Channel Logout 1.0 §2.1: logout tokens carry `sid`, as ID tokens do.
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
            // RP-Initiated Logout 1.0 §2.1 has no flag of its own: end_session_endpoint.
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
        });
        let body = doc.to_string();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
        let etag = format!("\"{}\"", crate::tokens::opaque::hex(&digest.as_ref()[..12]));
        Self {
            body: body.into(),
            etag,
        }
    }
}

/// Serves the discovery document from memory. (The request rather than a `HeaderMap`, which
/// axum would clone for the extractor.)
pub async fn discovery(State(s): State<AppState>, req: Request) -> Response {
    super::cached_json(
        req.headers(),
        s.discovery.body.clone(),
        &s.discovery.etag,
        axum::http::HeaderValue::from_static("public, max-age=3600"),
    )
}
