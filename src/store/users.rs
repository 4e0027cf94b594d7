//! The `users` table.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::FromRow;

use super::{Store, StoreError, on_pool};
use crate::model::{ScopeSet, Secret, User};

const COLUMNS: &str = "id, username, password_hash, name, email, email_verified, scopes, \
                       disabled, created_at, updated_at, security_version, security_changed_at";

/// [`COLUMNS`] of `users u`, for joins.
pub(super) const USER_COLUMNS: &str = "u.id, u.username, u.password_hash, u.name, u.email, \
     u.email_verified, u.scopes, u.disabled, u.created_at, u.updated_at, u.security_version, \
     u.security_changed_at";

/// [`USER_COLUMNS`] without the password hash (an empty string in its place), for the
/// checks of every token, which never need it.
const TOKEN_USER_COLUMNS: &str = "u.id, u.username, case when u.id is null then null else '' end \
     as password_hash, u.name, u.email, u.email_verified, u.scopes, u.disabled, u.created_at, \
     u.updated_at, u.security_version, u.security_changed_at";

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
    security_version: i64,
    security_changed_at: i64,
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
            security_version: r.security_version,
            security_changed_at: r.security_changed_at,
        })
    }
}

/// A [`UserRow`] from an outer join: every column null when there was no user.
#[derive(FromRow)]
struct MaybeUserRow {
    id: Option<String>,
    username: Option<String>,
    password_hash: Option<String>,
    name: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
    scopes: Option<String>,
    disabled: Option<bool>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
    security_version: Option<i64>,
    security_changed_at: Option<i64>,
}

impl TryFrom<MaybeUserRow> for Option<User> {
    type Error = StoreError;
    fn try_from(r: MaybeUserRow) -> Result<Self, StoreError> {
        let Some(id) = r.id else { return Ok(None) };
        let missing = || StoreError::Corrupt(format!("a column of user {id} is null"));
        let row = UserRow {
            username: r.username.ok_or_else(missing)?,
            password_hash: r.password_hash.ok_or_else(missing)?,
            name: r.name,
            email: r.email,
            email_verified: r.email_verified.ok_or_else(missing)?,
            scopes: r.scopes.ok_or_else(missing)?,
            disabled: r.disabled.ok_or_else(missing)?,
            created_at: r.created_at.ok_or_else(missing)?,
            updated_at: r.updated_at.ok_or_else(missing)?,
            security_version: r.security_version.ok_or_else(missing)?,
            security_changed_at: r.security_changed_at.ok_or_else(missing)?,
            id,
        };
        User::try_from(row).map(Some)
    }
}

/// What [`Store::token_state`] looks up: an access token's `sub`, `client_id`, `jti`, `sid`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct TokenKey {
    sub: String,
    client_id: String,
    jti: String,
    sid: Option<String>,
}

impl super::Statements {
    /// [`Store::token_state`] for many tokens in one statement.
    pub(super) async fn token_states(
        self: Arc<Self>,
        keys: Vec<TokenKey>,
    ) -> Result<HashMap<TokenKey, TokenState>, StoreError> {
        #[derive(FromRow)]
        struct Row {
            /// Which of `keys` the row answers (its position): echoing the keys back would
            /// copy four strings a row.
            req_i: i64,
            #[sqlx(flatten)]
            user: MaybeUserRow,
            jti_revoked: bool,
            session_expires_at: Option<i64>,
            client_created_at: Option<i64>,
        }
        // The session counts only while it is the user's, of the token's client, not revoked,
        // and made under the user's current security version. The password hash stays in the
        // database: no token check needs it.
        let sql = format!(
            "with req (sub, client_id, jti, sid, i) as (values {}) \
             select req.i as req_i, {TOKEN_USER_COLUMNS}, \
                    exists(select 1 from revoked_access_tokens r where r.jti = req.jti) \
                      as jti_revoked, \
                    (select f.expires_at from refresh_families f \
                      where f.id = req.sid and f.revoked_at is null and f.user_id = u.id \
                        and f.client_id = req.client_id \
                        and f.security_version = u.security_version) as session_expires_at, \
                    (select c.created_at from clients c where c.id = req.client_id) \
                      as client_created_at \
             from req left join users u on u.id = req.sub",
            super::batch::placeholders(keys.len(), 5)
        );
        let rows: Vec<Row> = on_pool!(self, |p| {
            let mut query = sqlx::query_as(&sql);
            for (i, key) in keys.iter().enumerate() {
                query = query
                    .bind(&key.sub)
                    .bind(&key.client_id)
                    .bind(&key.jti)
                    .bind(&key.sid)
                    .bind(i as i64);
            }
            query.fetch_all(p).await
        })?;
        rows.into_iter()
            .map(|r| {
                let key = usize::try_from(r.req_i)
                    .ok()
                    .and_then(|i| keys.get(i))
                    .ok_or_else(|| StoreError::Corrupt("a token state for no request".into()))?
                    .clone();
                let state = TokenState {
                    user: Option::<User>::try_from(r.user)?,
                    jti_revoked: r.jti_revoked,
                    session_expires_at: r.session_expires_at,
                    client_created_at: r.client_created_at,
                };
                Ok((key, state))
            })
            .collect()
    }
}

/// What decides whether an access token is still live, besides its signature and `exp`
/// (see [`Store::token_state`]).
#[derive(Clone, Debug)]
pub struct TokenState {
    /// The user named by `sub`; `None` for a client's own token, or a user who is gone.
    pub user: Option<User>,
    /// Whether the token's `jti` was revoked (RFC 7009).
    pub jti_revoked: bool,
    /// When the session named by `sid` ends; `None` when it is not live (revoked, of another
    /// user or client, or made before the user's last password change or disable).
    pub session_expires_at: Option<i64>,
    /// When the token's client was registered; `None` when it is gone.
    pub client_created_at: Option<i64>,
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

/// A change to a user's profile; `None` keeps what is stored.
#[derive(Debug, Default)]
pub struct ProfileChanges {
    pub email: Option<Option<String>>,
    pub name: Option<Option<String>>,
    pub email_verified: Option<bool>,
    pub scopes: Option<ScopeSet>,
}

impl ProfileChanges {
    pub fn is_empty(&self) -> bool {
        self.email.is_none()
            && self.name.is_none()
            && self.email_verified.is_none()
            && self.scopes.is_none()
    }
}

/// Moves the security version of the user named `$username` on and ends everything the
/// user's logins made, in the caller's transaction: refresh-token families are revoked and
/// browser sessions deleted. (Each also carries the security version it was made under, so
/// one made by a login that raced with the change is dead too.) Evaluates to the user's id,
/// or returns `Ok(false)` from the caller when there is no such user.
macro_rules! end_logins_of_user {
    ($tx:expr, $username:expr, $now:expr) => {{
        let id: Option<(String,)> = sqlx::query_as(BUMP_SECURITY_VERSION)
            .bind($now)
            .bind($username)
            .fetch_optional(&mut *$tx)
            .await?;
        let Some((id,)) = id else { return Ok(false) };
        // Back-Channel Logout 1.0 §2.5: every relying party the user is signed in to hears.
        sqlx::query(super::logout::QUEUE_FOR_USER)
            .bind($now)
            .bind(&id)
            .execute(&mut *$tx)
            .await?;
        sqlx::query(
            "update refresh_families set revoked_at = $1 where user_id = $2 and revoked_at is null",
        )
        .bind($now)
        .bind(&id)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("delete from sessions where user_id = $1")
            .bind(&id)
            .execute(&mut *$tx)
            .await?;
        id
    }};
}

const BUMP_SECURITY_VERSION: &str = "update users set security_version = security_version + 1, \
     security_changed_at = $1, updated_at = $1 where username = $2 returning id";

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
            security_version: 0,
            security_changed_at: 0,
        };
        self.insert_user_record(&user).await?;
        Ok(user)
    }

    /// Stores a user as it is, id and times included (copying between databases).
    pub async fn insert_user_record(&self, u: &User) -> Result<(), StoreError> {
        let sql = format!(
            "insert into users ({COLUMNS}) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
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
            .bind(u.security_version)
            .bind(u.security_changed_at)
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

    /// What decides whether an access token of `client_id` for `sub` (a user's id, or the
    /// client's own id), with `jti` and session `sid`, is live: its user, whether the `jti`
    /// was revoked, when its session ends, whether its client exists. The hot path of
    /// /userinfo and /introspect: read with concurrent requests' in one statement
    /// (`store::batch`).
    pub async fn token_state(
        &self,
        sub: &str,
        client_id: &str,
        jti: &str,
        sid: Option<&str>,
    ) -> Result<TokenState, StoreError> {
        let key = TokenKey {
            sub: sub.to_owned(),
            client_id: client_id.to_owned(),
            jti: jti.to_owned(),
            sid: sid.map(str::to_owned),
        };
        // The statement answers every key (an outer join): a missing one means nothing
        // was found at all.
        Ok(self.token_states.submit(key).await?.unwrap_or(TokenState {
            user: None,
            jti_revoked: false,
            session_expires_at: None,
            client_created_at: None,
        }))
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

    /// Sets a new password hash and ends everything the old one made — refresh-token
    /// families, browser sessions, codes and tokens without a session (the security
    /// version moves on) — in one transaction. False when there is no such user.
    pub async fn set_password_hash(
        &self,
        username: &str,
        hash: &Secret,
        now: i64,
    ) -> Result<bool, StoreError> {
        on_pool!(write self, |p| {
            let mut tx = p.begin().await?;
            let id = end_logins_of_user!(tx, username, now);
            sqlx::query("update users set password_hash = $1 where id = $2")
                .bind(hash.expose())
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Changes a user's profile or permissions (one statement: what is not given keeps its
    /// stored value). A new email address is unverified unless `email_verified` says
    /// otherwise: relying parties trust a verified address to be the user's. False when there
    /// is no such user.
    pub async fn update_user_profile(
        &self,
        username: &str,
        c: &ProfileChanges,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(write self, |p| sqlx::query(
            "update users set \
               email = case when $1 then $2 else email end, \
               name = case when $3 then $4 else name end, \
               email_verified = case when $5 is not null then $5 \
                 when $1 and coalesce($2, '') <> coalesce(email, '') then false \
                 else email_verified end, \
               scopes = coalesce($6, scopes), \
               updated_at = $7 \
             where username = $8"
        )
        .bind(c.email.is_some())
        .bind(c.email.clone().flatten())
        .bind(c.name.is_some())
        .bind(c.name.clone().flatten())
        .bind(c.email_verified)
        .bind(c.scopes.as_ref().map(ToString::to_string))
        .bind(now)
        .bind(username)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
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

    /// Enables or disables a user. Disabling ends everything the user's logins made, as a
    /// password change does, so enabling the account again brings none of it back. False
    /// when there is no such user.
    pub async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        on_pool!(write self, |p| {
            let mut tx = p.begin().await?;
            if disabled {
                end_logins_of_user!(tx, username, now);
            }
            let found = sqlx::query(
                "update users set disabled = $1, updated_at = $2 where username = $3",
            )
            .bind(disabled)
            .bind(now)
            .bind(username)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            tx.commit().await?;
            Ok(found)
        })
    }

    /// Removes a user and everything of theirs: refresh-token families (and so their
    /// tokens), browser sessions, unused codes. Access tokens naming the user are refused
    /// from then on (their user is gone); the id is never reused. False when there is no
    /// such user.
    pub async fn delete_user(&self, username: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(write self, |p| {
            let mut tx = p.begin().await?;
            let id: Option<(String,)> =
                sqlx::query_as("delete from users where username = $1 returning id")
                    .bind(username)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((id,)) = id else { return Ok(false) };
            sqlx::query(super::logout::QUEUE_FOR_USER)
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            for sql in [
                "delete from refresh_families where user_id = $1",
                "delete from sessions where user_id = $1",
                "delete from authorization_codes where user_id = $1",
                "delete from consents where user_id = $1",
            ] {
                sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }
}
