//! Authorization codes and browser sessions (the authorization-code flow).

use sqlx::FromRow;

use super::{Store, StoreError, on_pool};
use crate::model::ScopeSet;

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
}

/// What redeeming a code found.
#[derive(Debug)]
pub enum Redemption {
    /// First use: the code is now spent.
    Redeemed(AuthorizationCode),
    /// The code was used before: a replay. The caller revokes what it issued.
    Reused(AuthorizationCode),
    /// No such code.
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
        })
    }
}

/// A signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: String,
    pub auth_time: i64,
    pub expires_at: i64,
}

impl Store {
    pub async fn insert_code(&self, hash: &str, c: &AuthorizationCode) -> Result<(), StoreError> {
        on_pool!(write self, |p| sqlx::query(
            "insert into authorization_codes (hash, client_id, user_id, redirect_uri, scopes, \
             nonce, code_challenge, auth_time, family_id, created_at, expires_at, used_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, null)"
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
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Spends a code: one conditional UPDATE decides, so a code is redeemed at most once
    /// however many requests race for it. The winner also creates the code's session
    /// (refresh-token family, no token yet, expiring at `family_expires_at`) in the same
    /// transaction, so a second use — however soon — finds it and can revoke it.
    pub async fn redeem_code(
        &self,
        hash: &str,
        now: i64,
        family_expires_at: i64,
    ) -> Result<Redemption, StoreError> {
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
            if won {
                sqlx::query(
                    "insert into refresh_families \
                     (id, client_id, user_id, scopes, auth_time, created_at, expires_at, revoked_at) \
                     select family_id, client_id, user_id, scopes, auth_time, $1, $2, null \
                     from authorization_codes where hash = $3",
                )
                .bind(now)
                .bind(family_expires_at)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
            }
            let row: Option<CodeRow> = sqlx::query_as(
                "select client_id, user_id, redirect_uri, scopes, nonce, code_challenge, \
                 auth_time, family_id, created_at, expires_at from authorization_codes where hash = $1",
            )
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(match row.map(AuthorizationCode::try_from).transpose()? {
                None => Redemption::Unknown,
                Some(code) if won => Redemption::Redeemed(code),
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
            "insert into sessions (hash, user_id, auth_time, created_at, expires_at) \
             values ($1, $2, $3, $4, $5)"
        )
        .bind(hash)
        .bind(&s.user_id)
        .bind(s.auth_time)
        .bind(now)
        .bind(s.expires_at)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// A live session by the digest of its cookie.
    pub async fn session(&self, hash: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let row: Option<(String, i64, i64)> = on_pool!(self, |p| {
            sqlx::query_as(
            "select user_id, auth_time, expires_at from sessions where hash = $1 and expires_at > $2"
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(p)
        .await
        })?;
        Ok(row.map(|(user_id, auth_time, expires_at)| Session {
            user_id,
            auth_time,
            expires_at,
        }))
    }

    pub async fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        on_pool!(write self, |p| sqlx::query(
            "delete from sessions where hash = $1"
        )
        .bind(hash)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
