//! The `users` table.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::FromRow;

use super::{Store, StoreError, on_pool};
use crate::model::{ScopeSet, Secret, User};

const COLUMNS: &str = "id, username, password_hash, name, email, email_verified, scopes, \
                       disabled, created_at, updated_at";

/// [`COLUMNS`] of `users u`, for joins.
pub(super) const USER_COLUMNS: &str = "u.id, u.username, u.password_hash, u.name, u.email, \
     u.email_verified, u.scopes, u.disabled, u.created_at, u.updated_at";

#[derive(FromRow)]
pub(super) struct UserRow {
    id: String,
    username: String,
    password_hash: String,
    name: Option<String>,
    email: Option<String>,
    email_verified: bool,
    scopes: String,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            scopes: ScopeSet::parse(&r.scopes)
                .map_err(|e| StoreError::Corrupt(format!("scopes of user {}: {e}", r.username)))?,
            id: r.id,
            username: r.username,
            password_hash: Secret::new(r.password_hash),
            name: r.name,
            email: r.email,
            email_verified: r.email_verified,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// What [`Store::user_with_token_state`] looks up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct TokenKey {
    user_id: String,
    jti: String,
    sid: Option<String>,
}

impl super::Reads {
    /// [`Store::user_with_token_state`] for many tokens in one statement.
    pub(super) async fn token_states(
        self: Arc<Self>,
        keys: Vec<TokenKey>,
    ) -> Result<HashMap<TokenKey, (User, TokenState)>, StoreError> {
        #[derive(FromRow)]
        struct Row {
            req_jti: String,
            req_sid: Option<String>,
            #[sqlx(flatten)]
            user: UserRow,
            jti_revoked: bool,
            session_expires_at: Option<i64>,
        }
        let sql = format!(
            "with req (user_id, jti, sid) as (values {}) \
             select req.jti as req_jti, req.sid as req_sid, {USER_COLUMNS}, \
                    exists(select 1 from revoked_access_tokens r where r.jti = req.jti) \
                      as jti_revoked, \
                    (select f.expires_at from refresh_families f \
                      where f.id = req.sid and f.revoked_at is null) as session_expires_at \
             from req join users u on u.id = req.user_id",
            super::batch::placeholders(keys.len(), 3)
        );
        let rows: Vec<Row> = on_pool!(self, |p| {
            let mut query = sqlx::query_as(&sql);
            for key in &keys {
                query = query.bind(&key.user_id).bind(&key.jti).bind(&key.sid);
            }
            query.fetch_all(p).await
        })?;
        rows.into_iter()
            .map(|r| {
                let state = TokenState {
                    jti_revoked: r.jti_revoked,
                    session_expires_at: r.session_expires_at,
                };
                let user = User::try_from(r.user)?;
                let key = TokenKey {
                    user_id: user.id.clone(),
                    jti: r.req_jti,
                    sid: r.req_sid,
                };
                Ok((key, (user, state)))
            })
            .collect()
    }
}

/// See [`Store::user_with_token_state`].
#[derive(Clone, Copy, Debug)]
pub struct TokenState {
    pub jti_revoked: bool,
    pub session_expires_at: Option<i64>,
}

/// What `insert_user` needs; the id is generated.
#[derive(Debug)]
pub struct NewUser {
    pub username: String,
    pub password_hash: Secret,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub scopes: ScopeSet,
    pub disabled: bool,
}

const REVOKE_FAMILIES_OF_USER: &str =
    "update refresh_families set revoked_at = $1 where user_id = $2 and revoked_at is null";

impl Store {
    /// Creates a user with a fresh UUID. `Conflict` when the username is taken.
    pub async fn insert_user(&self, new: &NewUser, now: i64) -> Result<User, StoreError> {
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            username: new.username.clone(),
            password_hash: new.password_hash.clone(),
            name: new.name.clone(),
            email: new.email.clone(),
            email_verified: new.email_verified,
            scopes: new.scopes.clone(),
            disabled: new.disabled,
            created_at: now,
            updated_at: now,
        };
        self.insert_user_record(&user).await?;
        Ok(user)
    }

    /// Stores a user as it is, id and times included (copying between databases).
    pub async fn insert_user_record(&self, u: &User) -> Result<(), StoreError> {
        let sql = format!(
            "insert into users ({COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        on_pool!(write self, |p| sqlx::query(&sql)
            .bind(&u.id)
            .bind(&u.username)
            .bind(u.password_hash.expose())
            .bind(&u.name)
            .bind(&u.email)
            .bind(u.email_verified)
            .bind(u.scopes.to_string())
            .bind(u.disabled)
            .bind(u.created_at)
            .bind(u.updated_at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("select {COLUMNS} from users where username = $1");
        let row: Option<UserRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(username)
            .fetch_optional(p)
            .await)?;
        row.map(User::try_from).transpose()
    }

    /// The user an access token names, with what else decides whether the token is live:
    /// whether its `jti` was revoked, and when its session (refresh-token family `sid`)
    /// ends — `None` when there is no such live family. `None` when there is no such user.
    /// The hot path of /userinfo and /introspect: read with concurrent requests' in one
    /// statement (`store::batch`).
    pub async fn user_with_token_state(
        &self,
        user_id: &str,
        jti: &str,
        sid: Option<&str>,
    ) -> Result<Option<(User, TokenState)>, StoreError> {
        self.token_states
            .get(TokenKey {
                user_id: user_id.to_owned(),
                jti: jti.to_owned(),
                sid: sid.map(str::to_owned),
            })
            .await
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("select {COLUMNS} from users where id = $1");
        let row: Option<UserRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        row.map(User::try_from).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!("select {COLUMNS} from users order by username");
        let rows: Vec<UserRow> = on_pool!(self, |p| sqlx::query_as(&sql).fetch_all(p).await)?;
        rows.into_iter().map(User::try_from).collect()
    }

    /// Sets a new password hash and revokes the user's refresh-token families, in one
    /// transaction: a password change logs the user out everywhere. False when there is no
    /// such user.
    pub async fn set_password_hash(
        &self,
        username: &str,
        hash: &Secret,
        now: i64,
    ) -> Result<bool, StoreError> {
        on_pool!(write self, |p| {
            let mut tx = p.begin().await?;
            let id: Option<(String,)> = sqlx::query_as(
                "update users set password_hash = $1, updated_at = $2 where username = $3 returning id",
            )
            .bind(hash.expose())
            .bind(now)
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((id,)) = id else { return Ok(false) };
            sqlx::query(REVOKE_FAMILIES_OF_USER)
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Replaces the hash only if it is still `old` (a rehash after login must not undo a
    /// password change that happened meanwhile). True when it was replaced.
    pub async fn upgrade_password_hash(
        &self,
        user_id: &str,
        old: &Secret,
        new: &Secret,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(write self, |p| sqlx::query(
            "update users set password_hash = $1, updated_at = $2 \
             where id = $3 and password_hash = $4",
        )
        .bind(new.expose())
        .bind(now)
        .bind(user_id)
        .bind(old.expose())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Enables or disables a user; disabling revokes the user's refresh-token families, so
    /// enabling the account again does not bring old sessions back. False when there is no
    /// such user.
    pub async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        on_pool!(write self, |p| {
            let mut tx = p.begin().await?;
            let id: Option<(String,)> = sqlx::query_as(
                "update users set disabled = $1, updated_at = $2 where username = $3 returning id",
            )
            .bind(disabled)
            .bind(now)
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((id,)) = id else { return Ok(false) };
            if disabled {
                sqlx::query(REVOKE_FAMILIES_OF_USER)
                    .bind(now)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }
}
