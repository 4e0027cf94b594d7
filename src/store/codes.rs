//! Authorization codes and browser sessions (the authorization-code flow).

use sqlx::FromRow;

use super::faults::{self, Fault, Point};
use super::users::{USER_COLUMNS, UserRow};
use super::{Store, StoreError, on_pool};
use crate::model::{ScopeSet, User};

/// An authorization code as stored (RFC 6749 §4.1.2): bound to its client, redirect URI,
/// PKCE challenge, nonce and scopes.
#[derive(Clone, Debug)]
pub struct AuthorizationCode {
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scopes: ScopeSet,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    /// The refresh-token family (session) the code's tokens belong to: revoked when the code
    /// is used twice (RFC 6749 §4.1.2).
    pub family_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The user's security version when the code was issued: a code issued before a
    /// password change or disable is refused.
    pub security_version: i64,
    /// The browser session the code was issued in: its family belongs to it, and ends
    /// with it (RP-initiated logout, back-channel logout).
    pub session_id: Option<String>,
}

/// What redeeming a code found.
#[derive(Debug)]
pub enum Redemption {
    /// First use: the code is now spent.
    Redeemed(AuthorizationCode),
    /// The code was used before: a replay. The caller revokes what it issued.
    Reused(AuthorizationCode),
    /// No such code, or one issued before its user's password changed or the user was
    /// disabled (now spent).
    Unknown,
}

#[derive(FromRow)]
struct CodeRow {
    client_id: String,
    user_id: String,
    redirect_uri: String,
    scopes: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    auth_time: i64,
    family_id: String,
    created_at: i64,
    expires_at: i64,
    security_version: i64,
    session_id: Option<String>,
}

impl TryFrom<CodeRow> for AuthorizationCode {
    type Error = StoreError;
    fn try_from(r: CodeRow) -> Result<Self, StoreError> {
        Ok(AuthorizationCode {
            scopes: ScopeSet::parse(&r.scopes)
                .map_err(|e| StoreError::Corrupt(format!("scopes of a code: {e}")))?,
            client_id: r.client_id,
            user_id: r.user_id,
            redirect_uri: r.redirect_uri,
            nonce: r.nonce,
            code_challenge: r.code_challenge,
            auth_time: r.auth_time,
            family_id: r.family_id,
            created_at: r.created_at,
            expires_at: r.expires_at,
            security_version: r.security_version,
            session_id: r.session_id,
        })
    }
}

/// A signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// Public id: codes and families name it; never the cookie or its digest.
    pub id: String,
    pub user_id: String,
    pub auth_time: i64,
    pub expires_at: i64,
    /// The user's security version at sign-in: the session ends when it moves on.
    pub security_version: i64,
}

impl Store {
    pub async fn insert_code(&self, hash: &str, c: &AuthorizationCode) -> Result<(), StoreError> {
        on_pool!(write self, |p| sqlx::query(
            "insert into authorization_codes (hash, client_id, user_id, redirect_uri, scopes, \
             nonce, code_challenge, auth_time, family_id, created_at, expires_at, used_at, \
             security_version, session_id) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, null, $12, $13)"
        )
        .bind(hash)
        .bind(&c.client_id)
        .bind(&c.user_id)
        .bind(&c.redirect_uri)
        .bind(c.scopes.to_string())
        .bind(&c.nonce)
        .bind(&c.code_challenge)
        .bind(c.auth_time)
        .bind(&c.family_id)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.security_version)
        .bind(&c.session_id)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Spends a code: one conditional UPDATE decides, so a code is redeemed at most once
    /// however many requests race for it. The winner also creates the code's session
    /// (refresh-token family, no token yet, expiring at `family_expires_at`) in the same
    /// transaction, so a second use — however soon — finds it and can revoke it. The
    /// session is created only while the user is enabled and still at the security version
    /// the code was issued under; otherwise the code is spent and answered `Unknown`.
    pub async fn redeem_code(
        &self,
        hash: &str,
        now: i64,
        family_expires_at: i64,
    ) -> Result<Redemption, StoreError> {
        let fault = self.faults.take(Point::CodeRedemption);
        on_pool!(write self, |p| {
            let mut tx = p.begin().await?;
            let won = sqlx::query(
                "update authorization_codes set used_at = $1 where hash = $2 and used_at is null",
            )
            .bind(now)
            .bind(hash)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let current = won
                && sqlx::query(
                    "insert into refresh_families \
                     (id, client_id, user_id, scopes, auth_time, created_at, expires_at, revoked_at, \
                      security_version, session_id) \
                     select c.family_id, c.client_id, c.user_id, c.scopes, c.auth_time, $1, $2, \
                            null, c.security_version, c.session_id \
                     from authorization_codes c join users u on u.id = c.user_id \
                     where c.hash = $3 and u.security_version = c.security_version \
                       and not u.disabled",
                )
                .bind(now)
                .bind(family_expires_at)
                .bind(hash)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
            let row: Option<CodeRow> = sqlx::query_as(
                "select client_id, user_id, redirect_uri, scopes, nonce, code_challenge, \
                 auth_time, family_id, created_at, expires_at, security_version, session_id \
                 from authorization_codes where hash = $1",
            )
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?;
            if fault == Some(Fault::FailCommit) {
                tx.rollback().await?;
                return Err(faults::injected("the COMMIT of a code redemption failed"));
            }
            tx.commit().await?;
            if fault == Some(Fault::LoseConnectionAfterCommit) {
                return Err(faults::injected("connection lost after a code redemption's COMMIT"));
            }
            Ok(match row.map(AuthorizationCode::try_from).transpose()? {
                None => Redemption::Unknown,
                Some(code) if current => Redemption::Redeemed(code),
                Some(_) if won => Redemption::Unknown,
                Some(code) => Redemption::Reused(code),
            })
        })
    }

    pub async fn insert_session(
        &self,
        hash: &str,
        s: &Session,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(write self, |p| sqlx::query(
            "insert into sessions (hash, user_id, auth_time, created_at, expires_at, \
             security_version, id) values ($1, $2, $3, $4, $5, $6, $7)"
        )
        .bind(hash)
        .bind(&s.user_id)
        .bind(s.auth_time)
        .bind(now)
        .bind(s.expires_at)
        .bind(s.security_version)
        .bind(&s.id)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// A live session by the digest of its cookie, with its user — only while the user is
    /// enabled and at the security version the session was made under (one statement).
    pub async fn session_with_user(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<(Session, User)>, StoreError> {
        #[derive(FromRow)]
        struct Row {
            session_id: String,
            auth_time: i64,
            expires_at: i64,
            #[sqlx(flatten)]
            user: UserRow,
        }
        let sql = format!(
            "select coalesce(s.id, s.hash) as session_id, s.auth_time, s.expires_at, {USER_COLUMNS} \
             from sessions s join users u on u.id = s.user_id \
             where s.hash = $1 and s.expires_at > $2 \
               and s.security_version = u.security_version and not u.disabled"
        );
        let row: Option<Row> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(hash)
            .bind(now)
            .fetch_optional(p)
            .await)?;
        row.map(|r| {
            let user = User::try_from(r.user)?;
            let session = Session {
                id: r.session_id,
                user_id: user.id.clone(),
                auth_time: r.auth_time,
                expires_at: r.expires_at,
                security_version: user.security_version,
            };
            Ok((session, user))
        })
        .transpose()
    }

    /// The browser session a refresh-token family (an ID token's `sid`) was made in, if any
    /// (the password grant's families have none).
    pub async fn session_of_family(&self, family_id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> = on_pool!(self, |p| sqlx::query_as(
            "select session_id from refresh_families where id = $1"
        )
        .bind(family_id)
        .fetch_optional(p)
        .await)?;
        Ok(row.and_then(|(s,)| s))
    }

    /// Deletes a session's cookie only (its session continues under a new cookie).
    pub async fn delete_session_cookie(&self, hash: &str) -> Result<(), StoreError> {
        on_pool!(write self, |p| sqlx::query("delete from sessions where hash = $1")
            .bind(hash)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Ends a browser session (RP-initiated logout, a new sign-in by someone else): deletes
    /// it and its unredeemed codes, queues a logout token for every relying party it signed
    /// in that wants one (Back-Channel Logout 1.0 §2.5), and revokes those of its families
    /// that were not granted `offline_access` (§2.7: such refresh tokens "SHOULD be
    /// revoked"; offline ones are meant to outlive the session). One transaction. True when
    /// a session was ended.
    pub async fn end_browser_session(&self, hash: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(write self, |p| {
            let mut tx = p.begin().await?;
            let id: Option<(String,)> = sqlx::query_as(
                "delete from sessions where hash = $1 returning coalesce(id, hash)",
            )
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((id,)) = id else { return Ok(false) };
            sqlx::query("delete from authorization_codes where session_id = $1 and used_at is null")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            let queue = super::logout::QUEUE_FOR_SESSION;
            sqlx::query(queue)
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            // Which families end is decided here, not by SQL's LIKE (case-insensitive on
            // SQLite): scopes are case-sensitive (RFC 6749 §3.3).
            let families: Vec<(String, String)> = sqlx::query_as(
                "select id, scopes from refresh_families where session_id = $1 and revoked_at is null",
            )
            .bind(&id)
            .fetch_all(&mut *tx)
            .await?;
            for (family, scopes) in families {
                if scopes.split(' ').any(|s| s == crate::model::OFFLINE_ACCESS) {
                    continue;
                }
                sqlx::query("update refresh_families set revoked_at = $1 where id = $2")
                    .bind(now)
                    .bind(&family)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }
}
