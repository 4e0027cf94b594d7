//! The token endpoint's grants (RFC 6749 §4), one file each, and the token minting they share.

mod authorization_code;
mod client_credentials;
mod password;
pub use password::FAILED_LOGIN_FLOOR;
mod refresh_token;

use std::net::IpAddr;

use serde::Serialize;

use super::client_auth::{self, ClientAuth};
use super::{OAuth, OAuthError, Params};
use crate::model::{Client, EMAIL, GrantType, OPENID, PROFILE, ScopeSet, User};
use crate::store::RefreshFamily;
use crate::tokens::{AccessClaims, Audience, IdClaims, ProfileClaims, at_hash, opaque};

/// A successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// The grant types this build implements; discovery advertises exactly these.
pub const SUPPORTED: [GrantType; 4] = [
    GrantType::AuthorizationCode,
    GrantType::Password,
    GrantType::RefreshToken,
    GrantType::ClientCredentials,
];

impl OAuth {
    /// `POST /token`: authenticates the client, then runs the grant it asked for.
    /// Counted in `/metrics` by grant type and outcome.
    #[tracing::instrument(skip_all, fields(client_id = auth.client_id(), grant_type))]
    pub async fn token(
        &self,
        auth: ClientAuth,
        params: &Params,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let answer = self.run_grant(auth, params, ip, now).await;
        // The label is one of the grant types ferrid knows: a client cannot add values.
        let grant_type = params
            .get("grant_type")
            .and_then(|g| g.parse::<GrantType>().ok())
            .map_or("unsupported", GrantType::as_str);
        let outcome = answer.as_ref().map_or_else(OAuthError::code, |_| "issued");
        self.metrics.token_request(grant_type, outcome);
        answer
    }

    async fn run_grant(
        &self,
        auth: ClientAuth,
        params: &Params,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let client = client_auth::authenticate(&self.store, &auth).await?;
        let grant = params.require("grant_type")?;
        tracing::Span::current().record("grant_type", grant);
        let grant = match grant.parse::<GrantType>() {
            Ok(g) if SUPPORTED.contains(&g) => g,
            _ => return Err(OAuthError::UnsupportedGrantType),
        };
        if !client.may_use(grant) {
            // RFC 6749 §5.2 unauthorized_client; RFC 9700 §2.4 for why password is opt-in.
            return Err(OAuthError::UnauthorizedClient(
                "this client is not registered for this grant type",
            ));
        }
        match grant {
            GrantType::Password => self.password_grant(&client, params, ip, now).await,
            GrantType::RefreshToken => self.refresh_grant(&client, params, now).await,
            GrantType::ClientCredentials => {
                self.client_credentials_grant(&client, params, now).await
            }
            GrantType::AuthorizationCode => {
                self.authorization_code_grant(&client, params, now).await
            }
        }
    }

    /// The session (refresh-token family) of a fresh login: every user token names one in
    /// `sid`, so that whatever ends the session — a replay, a revocation, a password change,
    /// a disable — ends its access tokens at ferrid's own endpoints too. It lives as long as
    /// a refresh token may when the client may refresh (RFC 6749 §6), else as long as the
    /// access token. It keeps the user's security version of the login: a password change
    /// that commits while the login is being checked leaves it dead.
    pub(crate) fn new_login_family(
        &self,
        client: &Client,
        user: &User,
        scopes: &ScopeSet,
        auth_time: i64,
        now: i64,
    ) -> RefreshFamily {
        let lifetime = if client.may_use(GrantType::RefreshToken) {
            self.lifetimes.refresh_token
        } else {
            self.lifetimes.access_token
        };
        RefreshFamily {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: client.id.clone(),
            user_id: user.id.clone(),
            scopes: scopes.clone(),
            auth_time,
            created_at: now,
            expires_at: now + lifetime.as_secs() as i64,
            revoked_at: None,
            security_version: user.security_version,
        }
    }

    /// Stores a new family, with its first refresh token (as a digest) when the client may
    /// refresh, and returns that token; done before the response goes out.
    pub(crate) async fn store_login_family(
        &self,
        client: &Client,
        family: &RefreshFamily,
    ) -> Result<Option<String>, OAuthError> {
        if !client.may_use(GrantType::RefreshToken) {
            self.store.insert_refresh_family_at(family, None).await?;
            return Ok(None);
        }
        let token = opaque::random_token()?;
        self.store
            .insert_refresh_family(family, &opaque::sha256_hex(&token))
            .await?;
        Ok(Some(token))
    }

    /// Signs an access token (RFC 9068) for `sub`. `sid` names the refresh-token family of
    /// the login, so that revoking the family also ends its access tokens at ferrid's own
    /// endpoints (RFC 7009 §2.1).
    fn sign_access_token(
        &self,
        client: &Client,
        sub: &str,
        scopes: &ScopeSet,
        auth_time: Option<i64>,
        sid: Option<&str>,
        now: i64,
    ) -> Result<String, OAuthError> {
        let audiences = if client.audiences.is_empty() {
            vec![client.id.clone()]
        } else {
            client.audiences.clone()
        };
        let access = AccessClaims {
            iss: self.tokens.issuer().to_owned(),
            sub: sub.to_owned(),
            aud: Audience::from_list(audiences),
            exp: now + self.lifetimes.access_token.as_secs() as i64,
            iat: now,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: client.id.clone(),
            scope: scopes.to_string(),
            auth_time,
            sid: sid.map(str::to_owned),
        };
        self.tokens.sign_access(&access).map_err(internal)
    }

    /// Mints the tokens of a user grant: an access token, and an ID token when `openid` was
    /// granted. `auth_time` is when the user last typed the password (kept across refreshes).
    pub(crate) fn mint_for_user(
        &self,
        client: &Client,
        user: &User,
        scopes: &ScopeSet,
        login: Login<'_>,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let Login {
            auth_time,
            sid,
            nonce,
        } = login;
        let access_token =
            self.sign_access_token(client, &user.id, scopes, Some(auth_time), sid, now)?;
        let id_token = if scopes.contains(OPENID) {
            let id = IdClaims {
                iss: self.tokens.issuer().to_owned(),
                sub: user.id.clone(),
                aud: client.id.clone(),
                exp: now + self.lifetimes.id_token.as_secs() as i64,
                iat: now,
                auth_time,
                at_hash: at_hash(&access_token),
                nonce: nonce.map(str::to_owned),
                sid: sid.map(str::to_owned),
                profile: profile_claims(user, scopes),
            };
            Some(self.tokens.sign_id(&id).map_err(internal)?)
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.lifetimes.access_token.as_secs(),
            scope: scopes.to_string(),
            refresh_token: None,
            id_token,
        })
    }
}

/// The user's login the tokens come from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Login<'a> {
    /// When the user last typed the password (kept across refreshes: OIDC Core §12.2).
    pub auth_time: i64,
    /// The session (refresh-token family) the tokens belong to, if any.
    pub sid: Option<&'a str>,
    /// The `nonce` of the authorization request (OIDC Core §3.1.3.6).
    pub nonce: Option<&'a str>,
}

/// The claims `profile` and `email` release (OIDC Core §5.4).
pub(crate) fn profile_claims(user: &User, scopes: &ScopeSet) -> ProfileClaims {
    let mut claims = ProfileClaims::default();
    if scopes.contains(PROFILE) {
        claims.name = user.name.clone();
        claims.preferred_username = Some(user.username.clone());
    }
    if scopes.contains(EMAIL) && user.email.is_some() {
        claims.email = user.email.clone();
        claims.email_verified = Some(user.email_verified);
    }
    claims
}

fn internal(e: impl std::error::Error + Send + Sync + 'static) -> OAuthError {
    OAuthError::Internal(anyhow::Error::new(e))
}

/// The tokens are secrets: `Debug` shows only what is not.
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// The grants' rules, one by one, against a real SQLite file, real keys and the real hasher
/// (at small argon2 parameters), without HTTP.
#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::model::{ClientId, ClientRegistration, RedirectUri, RedirectUriPolicy, Secret};
    use crate::oauth::throttle::{Throttle, ThrottlePolicy};
    use crate::oauth::{Lifetimes, OAuth, Params};
    use crate::password::{HashParams, Passwords};
    use crate::store::{NewUser, Store};
    use crate::tokens::{Keys, TokenIssuer, keys};

    const SECRET: &str = "a-client-secret-of-at-least-32-characters";
    const NOW: i64 = 1_800_000_000;

    struct Fixture {
        oauth: OAuth,
        store: Store,
        _dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("grants.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        let keys_dir = dir.path().join("keys");
        let ring = tokio::task::spawn_blocking(move || {
            keys::load_or_generate(&keys_dir, 0, Default::default())
        })
        .await
        .unwrap()
        .unwrap();
        let small = HashParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let passwords = Passwords::new(small, 1, 16).unwrap();
        let hash = passwords
            .hash(Secret::new("correct horse battery"))
            .await
            .unwrap();
        store
            .insert_user(
                &NewUser {
                    username: "ada".into(),
                    password_hash: hash,
                    name: None,
                    email: None,
                    email_verified: false,
                    scopes: ScopeSet::parse("items:read").unwrap(),
                    disabled: false,
                },
                NOW,
            )
            .await
            .unwrap();
        let oauth = OAuth::new(
            store.clone(),
            TokenIssuer::new("https://id.example".into(), Keys::new(ring)),
            passwords,
            Lifetimes {
                access_token: Duration::from_secs(900),
                id_token: Duration::from_secs(900),
                refresh_token: Duration::from_secs(86_400),
                refresh_retry_window: Duration::ZERO,
            },
            Arc::new(Throttle::new(ThrottlePolicy::default(), &[1; 32], None)),
            Arc::new(crate::metrics::Metrics::default()),
            &[2; 32],
        );
        Fixture {
            oauth,
            store,
            _dir: dir,
        }
    }

    async fn register(f: &Fixture, id: &str, secret: Option<&str>, grants: &[GrantType]) {
        let uris = if grants.contains(&GrantType::AuthorizationCode) {
            vec![
                RedirectUri::parse("https://app.example/cb", RedirectUriPolicy::default()).unwrap(),
            ]
        } else {
            vec![]
        };
        let client = Client::register(
            ClientRegistration {
                id: ClientId::parse(id).unwrap(),
                secret: secret.map(Secret::new),
                grant_types: grants.to_vec(),
                scopes: ScopeSet::parse("openid profile items:read").unwrap(),
                redirect_uris: uris,
                audiences: vec![],
                settings: Default::default(),
            },
            NOW - 10,
        )
        .unwrap();
        f.store.insert_client(&client).await.unwrap();
    }

    async fn token(f: &Fixture, client: &str, form: &str) -> Result<TokenResponse, OAuthError> {
        let auth = ClientAuth::Basic {
            client_id: client.into(),
            secret: Secret::new(SECRET),
            as_sent: None,
        };
        let params = Params::parse(form.as_bytes()).unwrap();
        f.oauth.token(auth, &params, None, NOW).await
    }

    fn code(e: Result<TokenResponse, OAuthError>) -> &'static str {
        e.map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[tokio::test]
    async fn the_password_grant_is_for_registered_clients_and_names_its_session() {
        let f = fixture().await;
        register(&f, "app", Some(SECRET), &[GrantType::Password]).await;
        register(&f, "job", Some(SECRET), &[GrantType::ClientCredentials]).await;
        let form = "grant_type=password&username=ada&password=correct+horse+battery&scope=openid";
        let issued = token(&f, "app", form).await.unwrap();
        assert_eq!(issued.scope, "openid");
        assert!(issued.refresh_token.is_none(), "not registered for refresh");
        assert!(issued.id_token.is_some());
        let claims = f
            .oauth
            .tokens
            .verify_access(&issued.access_token, NOW)
            .unwrap();
        assert!(claims.sid.is_some(), "every user token names its session");
        // RFC 6749 §5.2.
        assert_eq!(code(token(&f, "job", form).await), "unauthorized_client");
        let wrong = "grant_type=password&username=ada&password=wrong";
        assert_eq!(code(token(&f, "app", wrong).await), "invalid_grant");
        let unknown = "grant_type=password&username=nobody&password=wrong";
        assert_eq!(code(token(&f, "app", unknown).await), "invalid_grant");
        // A value no client is registered for is not defined here: ignored (OIDC Core
        // §3.1.2.1), and the response says what was granted (RFC 6749 §3.3).
        let permission = "grant_type=password&username=ada&password=correct+horse+battery&scope=openid+items:write";
        assert_eq!(token(&f, "app", permission).await.unwrap().scope, "openid");
        // Once some client may have it, it is a permission this client may not: refused.
        let writer = Client {
            id: "writer".into(),
            scopes: ScopeSet::parse("items:write").unwrap(),
            ..Client::default()
        };
        f.store.insert_client(&writer).await.unwrap();
        assert_eq!(code(token(&f, "app", permission).await), "invalid_scope");
        let user_lacks =
            "grant_type=password&username=ada&password=correct+horse+battery&scope=openid";
        assert_eq!(code(token(&f, "app", user_lacks).await), "ok");
        assert_eq!(
            code(token(&f, "app", "grant_type=implicit").await),
            "unsupported_grant_type"
        );
        assert_eq!(
            code(token(&f, "app", "username=ada").await),
            "invalid_request"
        );
    }

    #[tokio::test]
    async fn client_credentials_are_the_clients_own_and_permission_scopes_only() {
        let f = fixture().await;
        register(&f, "job", Some(SECRET), &[GrantType::ClientCredentials]).await;
        let issued = token(&f, "job", "grant_type=client_credentials")
            .await
            .unwrap();
        let claims = f
            .oauth
            .tokens
            .verify_access(&issued.access_token, NOW)
            .unwrap();
        assert_eq!(claims.sub, "job");
        assert_eq!(
            issued.scope, "items:read",
            "no identity scopes without a user"
        );
        assert!(issued.refresh_token.is_none() && issued.id_token.is_none());
    }

    #[tokio::test]
    async fn refresh_rotates_and_a_replay_ends_the_family() {
        let f = fixture().await;
        register(
            &f,
            "app",
            Some(SECRET),
            &[GrantType::Password, GrantType::RefreshToken],
        )
        .await;
        let login = "grant_type=password&username=ada&password=correct+horse+battery&scope=openid";
        let first = token(&f, "app", login)
            .await
            .unwrap()
            .refresh_token
            .unwrap();
        let refresh = |t: &str| format!("grant_type=refresh_token&refresh_token={t}");
        let second = token(&f, "app", &refresh(&first)).await.unwrap();
        let second = second.refresh_token.unwrap();
        // RFC 9700 §4.14.2: the spent one again revokes the family, successor included.
        assert_eq!(
            code(token(&f, "app", &refresh(&first)).await),
            "invalid_grant"
        );
        assert_eq!(
            code(token(&f, "app", &refresh(&second)).await),
            "invalid_grant"
        );
        // A refresh may narrow the scope, never widen it (RFC 6749 §6).
        let third = token(&f, "app", login)
            .await
            .unwrap()
            .refresh_token
            .unwrap();
        let wider = format!("{}&scope=openid+profile", refresh(&third));
        assert_eq!(code(token(&f, "app", &wider).await), "invalid_scope");
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once_by_its_client_at_its_redirect_uri() {
        let f = fixture().await;
        register(&f, "web", Some(SECRET), &[GrantType::AuthorizationCode]).await;
        register(&f, "other", Some(SECRET), &[GrantType::AuthorizationCode]).await;
        let params = Params::parse(
            b"response_type=code&client_id=web&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid",
        )
        .unwrap();
        let request = f.oauth.check_authorize(&params).await.unwrap();
        let user = f.store.user_by_username("ada").await.unwrap().unwrap();
        let (_, session) = f.oauth.start_session(&user, None, NOW).await.unwrap();
        let scopes = ScopeSet::parse("openid").unwrap();
        let issue = || f.oauth.issue_code(&request, &user, &scopes, &session, NOW);
        let code_of = |r: crate::oauth::authorize::AuthorizationResponse| {
            let (_, code) = r.params.iter().find(|(k, _)| *k == "code").unwrap();
            code.clone()
        };
        let exchange = |c: &str, uri: &str| {
            format!(
                "grant_type=authorization_code&code={c}&redirect_uri={}",
                url::form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>()
            )
        };
        let first = code_of(issue().await.unwrap());
        assert_eq!(
            code(token(&f, "web", &exchange(&first, "https://app.example/cb")).await),
            "ok"
        );
        assert_eq!(
            code(token(&f, "web", &exchange(&first, "https://app.example/cb")).await),
            "invalid_grant",
            "RFC 6749 §4.1.2: a code works once"
        );
        let second = code_of(issue().await.unwrap());
        assert_eq!(
            code(token(&f, "other", &exchange(&second, "https://app.example/cb")).await),
            "invalid_grant",
            "bound to its client"
        );
        let third = code_of(issue().await.unwrap());
        assert_eq!(
            code(token(&f, "web", &exchange(&third, "https://app.example/other")).await),
            "invalid_grant",
            "bound to its redirect URI"
        );
    }
}
