//! OpenID Connect Back-Channel Logout 1.0: when a session ends, each relying party it
//! signed in that registered a `backchannel_logout_uri` gets a logout token, POSTed server
//! to server.
//!
//! Whatever ends sessions — RP-initiated logout, a password change, a disable, a removal, by
//! this server or by a `ferrid user …` command — queues the notifications in the same
//! transaction (`store::logout`, an outbox), so none is lost to a crash or to a command that
//! has no server loop. Every server delivers what is due: at once when it queued something
//! itself, else within [`POLL`]. Delivery never holds up the user's logout (it runs on its
//! own task), each POST has a short timeout, a failure is retried a few times with growing
//! pauses, and every outcome is logged and counted in `/metrics`. The URI is the client's
//! registered one at delivery time; redirects are not followed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::OAuth;
use crate::clock::Clock;
use crate::metrics::Delivery;
use crate::store::{LogoutNotification, StoreError};
use crate::tokens::{BACKCHANNEL_LOGOUT_EVENT, LogoutClaims};

/// How often a server looks for notifications queued by others (commands, replicas) or
/// due for a retry.
pub const POLL: Duration = Duration::from_secs(1);
/// How long one POST may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts before a notification is given up: the first and three retries.
pub const MAX_ATTEMPTS: i64 = 4;
/// Pause before retry n (after attempt n): 2 s, 10 s, 30 s.
const RETRY_AFTER_SECS: [i64; 3] = [2, 10, 30];
/// How long a server holds the notifications it claimed (longer than a POST may take).
const CLAIM_SECS: i64 = 30;
/// Notifications claimed, and POSTed concurrently, at a time.
const BATCH: i64 = 32;
/// A logout token's lifetime (§2.4 requires `exp`; the relying party checks it on receipt).
pub const LOGOUT_TOKEN_TTL_SECS: i64 = 120;

/// The wake-up call of this server's delivery task.
#[derive(Default)]
pub struct Backchannel {
    queued: Notify,
}

impl Backchannel {
    /// Something was queued by this server: deliver now rather than at the next poll.
    pub fn wake(&self) {
        self.queued.notify_one();
    }
}

/// POSTs logout tokens: HTTP/1.1, TLS over aws-lc with the system's trusted roots. It
/// follows no redirects (only the registered URI is ever posted to).
#[derive(Clone)]
pub struct LogoutPoster {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl LogoutPoster {
    pub fn new() -> std::io::Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_connect_timeout(Some(TIMEOUT));
        http.enforce_http(false);
        let roots = match hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider.clone())
        {
            Ok(roots) => roots,
            Err(e) => {
                // Loopback http still works; https fails, each time with this reason.
                tracing::warn!(
                    error = %e,
                    "no trusted roots in the system: back-channel logout to https URIs will \
                     fail; install the system's CA certificates (Debian: ca-certificates)"
                );
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(std::io::Error::other)?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let https = roots.https_or_http().enable_http1().wrap_connector(http);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Self { client })
    }

    /// POSTs `logout_token` form-encoded (§2.5); any 2xx is success (§2.8: 200, or 204).
    /// The whole exchange has [`TIMEOUT`].
    async fn post(&self, uri: &str, token: &str) -> Result<(), String> {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", token)
            .finish();
        // Errors never name the URI: it is the relying party's and may carry a secret.
        let request = axum::http::Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cache-control", "no-cache, no-store")
            .header("user-agent", concat!("ferrid/", env!("CARGO_PKG_VERSION")))
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|_| "the registered URI is not a valid request target".to_owned())?;
        let exchange = async {
            let res = self.client.request(request).await.map_err(|e| {
                let cause = std::error::Error::source(&e).map(ToString::to_string);
                format!("{e}{}", cause.map(|c| format!(": {c}")).unwrap_or_default())
            })?;
            // The body is not read: whatever the relying party sends, only the status counts.
            Ok::<_, String>(res.status())
        };
        match tokio::time::timeout(TIMEOUT, exchange).await {
            Err(_) => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
            Ok(Err(e)) => Err(e),
            Ok(Ok(status)) if status.is_success() => Ok(()),
            Ok(Ok(status)) => Err(format!("answered HTTP {}", status.as_u16())),
        }
    }
}

impl OAuth {
    /// Delivers logout tokens until the task is aborted.
    pub async fn deliver_logout_tokens(self, clock: Clock) {
        // Reading the system's trusted roots is file I/O: off the async workers.
        let built = tokio::task::spawn_blocking(LogoutPoster::new).await;
        let http = match built.map_err(std::io::Error::other).and_then(|b| b) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "back-channel logout is off: no TLS client");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = self.backchannel.queued.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
            if self.store.database_down() {
                continue;
            }
            if let Err(e) = self.deliver_due_logout_tokens(&http, clock.now()).await {
                tracing::warn!(error = %e, "back-channel logout: cannot read the queue; will retry");
            }
        }
    }

    /// One round: claims what is due and POSTs it, concurrently. Returns how many were
    /// claimed.
    pub async fn deliver_due_logout_tokens(
        &self,
        http: &LogoutPoster,
        now: i64,
    ) -> Result<usize, StoreError> {
        if !self.store.logout_notifications_due(now).await? {
            return Ok(0);
        }
        let claimed = self
            .store
            .claim_logout_notifications(now, CLAIM_SECS, BATCH)
            .await?;
        let n = claimed.len();
        let mut posts = tokio::task::JoinSet::new();
        for notification in claimed {
            let (oauth, http) = (self.clone(), http.clone());
            posts.spawn(async move { oauth.deliver(&http, notification, now).await });
        }
        while let Some(done) = posts.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "back-channel logout: cannot update the queue");
            }
        }
        Ok(n)
    }

    async fn deliver(
        &self,
        http: &LogoutPoster,
        n: LogoutNotification,
        now: i64,
    ) -> Result<(), StoreError> {
        let Some(uri) = n.backchannel_logout_uri.as_deref() else {
            // The client is gone or no longer wants logout tokens.
            return self.store.delete_logout_notification(&n.id).await;
        };
        let outcome = match self.logout_token(&n, now) {
            Ok(token) => http.post(uri, &token).await,
            Err(e) => Err(format!("cannot sign the logout token: {e}")),
        };
        match outcome {
            Ok(()) => {
                self.metrics.delivery(Delivery::Delivered);
                tracing::info!(
                    event = "backchannel_logout_delivered",
                    client_id = n.client_id,
                    sid = n.sid,
                    attempt = n.attempts,
                );
                self.store.delete_logout_notification(&n.id).await
            }
            Err(why) if n.attempts >= MAX_ATTEMPTS => {
                self.metrics.delivery(Delivery::GivenUp);
                tracing::error!(
                    event = "backchannel_logout_given_up",
                    client_id = n.client_id,
                    sid = n.sid,
                    attempts = n.attempts,
                    error = why,
                    "the relying party was not told of a logout; its session may outlive ours"
                );
                self.store.delete_logout_notification(&n.id).await
            }
            Err(why) => {
                self.metrics.delivery(Delivery::Failed);
                let pause = RETRY_AFTER_SECS[(n.attempts.max(1) as usize - 1).min(2)];
                tracing::warn!(
                    event = "backchannel_logout_failed",
                    client_id = n.client_id,
                    sid = n.sid,
                    attempt = n.attempts,
                    retry_in_secs = pause,
                    error = why,
                );
                self.store
                    .retry_logout_notification(&n.id, now + pause)
                    .await
            }
        }
    }

    /// The logout token (§2.4): `iss`, `aud`, `iat`, `exp`, `jti`, `sub`, `sid` and the
    /// back-channel logout event; never a `nonce` (§2.4: "MUST NOT contain").
    fn logout_token(
        &self,
        n: &LogoutNotification,
        now: i64,
    ) -> Result<String, crate::tokens::TokenError> {
        self.tokens.sign_logout(&LogoutClaims {
            iss: self.tokens.issuer().to_owned(),
            sub: n.user_id.clone(),
            aud: n.client_id.clone(),
            iat: now,
            exp: now + LOGOUT_TOKEN_TTL_SECS,
            jti: uuid::Uuid::new_v4().to_string(),
            sid: n.sid.clone(),
            events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
        })
    }
}
