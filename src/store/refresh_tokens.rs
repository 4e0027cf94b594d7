//! Refresh-token families and access-token revocations.
//!
//! Validity is decided in the database alone, never in memory: rotation marks the presented
//! token used with one conditional UPDATE (`… where used_at is null`) in the same transaction
//! that stores its successor, so of N concurrent refreshes exactly one wins, and a rotation
//! that was answered is committed (it survives a crash).

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::FromRow;

use super::faults::{self, Fault, Point};
use super::users::{USER_COLUMNS, UserRow};
use super::{Store, StoreError, on_pool};
use crate::model::{ScopeSet, User};

/// One login's chain of refresh tokens.
#[derive(Clone, Debug)]
pub struct RefreshFamily {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    /// The scopes originally granted: a refresh may ask for these or fewer (RFC 6749 §6).
    pub scopes: ScopeSet,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// The user's security version when the login happened: the family is dead once the
    /// user's has moved on (a password change, a disable).
    pub security_version: i64,
}

impl RefreshFamily {
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    /// Live, and its user (`user`, whose family it is) enabled and at the security version
    /// the family was made under: a family made before a password change or disable is dead,
    /// even one a racing login stored after it.
    pub fn is_live_for(&self, user: &User, now: i64) -> bool {
        self.is_live(now) && !user.disabled && self.security_version == user.security_version
    }
}

/// A stored refresh token and its family.
#[derive(Clone, Debug)]
pub struct RefreshRecord {
    pub family: RefreshFamily,
    pub issued_at: i64,
    pub used_at: Option<i64>,
}

/// What a rotation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live and unused: it is now used, and the successor is stored.
    Rotated,
    /// The token had been rotated within the retry window, its successor is unused, and this
    /// is the first retry: here is the successor, as sealed at the rotation (and now cleared).
    Retried { sealed: String },
    /// The token had been rotated already: a replay. Its family is now revoked.
    Reused,
    /// No such token, or its family is revoked or expired (nothing was changed).
    Refused,
}

/// A family's columns as [`FAMILY_COLUMNS`] names them (`id`, `scopes` and `created_at`
/// aliased, so a family can be read joined with its user).
#[derive(FromRow)]
struct FamilyRow {
    #[sqlx(rename = "family_id")]
    id: String,
    client_id: String,
    user_id: String,
    #[sqlx(rename = "family_scopes")]
    scopes: String,
    auth_time: i64,
    #[sqlx(rename = "family_created_at")]
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    #[sqlx(rename = "family_security_version")]
    security_version: i64,
}

impl TryFrom<FamilyRow> for RefreshFamily {
    type Error = StoreError;
    fn try_from(r: FamilyRow) -> Result<Self, StoreError> {
        Ok(RefreshFamily {
            scopes: ScopeSet::parse(&r.scopes).map_err(|e| {
                StoreError::Corrupt(format!("scopes of refresh family {}: {e}", r.id))
            })?,
            id: r.id,
            client_id: r.client_id,
            user_id: r.user_id,
            auth_time: r.auth_time,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            security_version: r.security_version,
        })
    }
}

/// A token row with its family's columns.
#[derive(FromRow)]
struct Row {
    #[sqlx(flatten)]
    family: FamilyRow,
    issued_at: i64,
    used_at: Option<i64>,
}

impl TryFrom<Row> for RefreshRecord {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(RefreshRecord {
            family: r.family.try_into()?,
            issued_at: r.issued_at,
            used_at: r.used_at,
        })
    }
}

/// The columns of a [`FamilyRow`], from `refresh_families f`.
const FAMILY_COLUMNS: &str = "f.id as family_id, f.client_id, f.user_id, \
     f.scopes as family_scopes, f.auth_time, f.created_at as family_created_at, f.expires_at, \
     f.revoked_at, f.security_version as family_security_version";

const FROM_TOKEN_AND_FAMILY: &str =
    "from refresh_tokens t join refresh_families f on f.id = t.family_id";

/// `successor_sealed` of an unused token that was handed out twice (a retry): its rotation
/// keeps no sealed successor. (A sealed value is base64url: it never contains a space.)
const NO_RETRY: &str = "no retry";

/// Rows deleted per statement by the purge, so it never holds the write lock for long.
const PURGE_BATCH: i64 = 500;

const INSERT_TOKEN: &str =
    "insert into refresh_tokens (hash, family_id, issued_at) values ($1, $2, $3)";
const REVOKE_FAMILY: &str =
    "update refresh_families set revoked_at = $1 where id = $2 and revoked_at is null";

/// Runs a revoking statement on the writer — unless a test armed a fault at
/// [`Point::Revocation`]: then its COMMIT fails (the statement runs in a transaction that is
/// rolled back), or the connection is "lost" after it.
macro_rules! revocation {
    ($store:expr, $query:expr) => {{
        let fault = $store.faults.take(Point::Revocation);
        on_pool!(write $store, |p| {
            let query = $query;
            if fault == Some(Fault::FailCommit) {
                let mut tx = p.begin().await?;
                query.execute(&mut *tx).await?;
                tx.rollback().await?;
                return Err(faults::injected("the COMMIT of a revocation failed"));
            }
            query.execute(p).await.map(|_| ())
        })?;
        if fault == Some(Fault::LoseConnectionAfterCommit) {
            return Err(faults::injected(
                "connection lost after a revocation's COMMIT",
            ));
        }
        Ok(())
    }};
}

/// Rotations, batched (see `store::batch`): each answers for itself.
#[derive(Clone)]
pub(super) struct Rotations(
    pub(super) std::sync::Arc<super::batch::Batcher<RotateKey, Result<Rotation, StoreError>>>,
);

impl std::fmt::Debug for Rotations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rotations")
    }
}

impl Rotations {
    /// Rotates in the next statement; a token the statement did not answer for was refused.
    async fn rotate(&self, key: RotateKey) -> Result<Rotation, StoreError> {
        self.0.submit(key).await?.unwrap_or(Ok(Rotation::Refused))
    }
}

/// One request of [`Store::rotate_refresh_token`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct RotateKey {
    token_hash: String,
    family_id: String,
    successor_hash: String,
    now: i64,
    /// See [`Retry`].
    retry: Option<Retry>,
}

/// The retry window of a rotation (`--refresh-retry-window`): the successor kept sealed
/// for the client to get again, and the earliest rotation time a retry is accepted for.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Retry {
    pub sealed_successor: String,
    pub rotated_since: i64,
}

/// The sealed successor stays out of debug output (STYLE: secrets-adjacent values are not
/// printed, even when they are useless alone).
impl std::fmt::Debug for Retry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry")
            .field("sealed_successor", &"…")
            .field("rotated_since", &self.rotated_since)
            .finish()
    }
}

impl super::Statements {
    /// [`Store::rotate_refresh_token`] for many tokens: one UPDATE rotates every token of the
    /// batch that is unused and of a live family (for each, its own successor and time), and
    /// says which; each of the others that had been used already revokes its family — or,
    /// within the retry window, gets the sealed successor once (`retry_or_revoke`). Two
    /// requests for one token in one batch: the first listed wins, the other is its retry
    /// (window) or a replay.
    ///
    /// The UPDATE commits the winners before anything else runs, so what follows answers per
    /// request: a failed replay check fails only its own request, never a committed win
    /// (whose client would otherwise retry with its spent token — a replay — and lose the
    /// session).
    pub(super) async fn rotate(
        self: Arc<Self>,
        batch: Vec<RotateKey>,
    ) -> Result<HashMap<RotateKey, Result<Rotation, StoreError>>, StoreError> {
        // Per item i: $(4i+1) the token's digest, $(4i+2) its successor's, $(4i+3) now,
        // $(4i+4) the sealed successor (null without a retry window).
        let case = |then: usize| {
            let arms: Vec<String> = (0..batch.len())
                .map(|i| format!("when ${} then ${}", 4 * i + 1, 4 * i + 1 + then))
                .collect();
            format!("case refresh_tokens.hash {} end", arms.join(" "))
        };
        let digests: Vec<String> = (0..batch.len())
            .map(|i| format!("${}", 4 * i + 1))
            .collect();
        let (successor, now, sealed) = (case(1), case(2), case(3));
        // A token that was itself handed out twice (by a retry) keeps no successor to retry
        // for: its second presentation must expose the copy (see `claim_retry`).
        let sql = format!(
            "update refresh_tokens set used_at = {now}, successor_hash = {successor}, \
             successor_sealed = case when refresh_tokens.successor_sealed is null \
             then {sealed} end \
             where hash in ({}) and used_at is null and exists \
             (select 1 from refresh_families f where f.id = refresh_tokens.family_id \
              and f.revoked_at is null and f.expires_at > {now}) \
             returning hash, successor_hash",
            digests.join(", ")
        );
        let fault = self.faults.take(Point::Rotation);
        let rotated: Vec<(String, String)> = on_pool!(write self, |p| {
            let mut query = sqlx::query_as(&sql);
            for key in &batch {
                query = query
                    .bind(&key.token_hash)
                    .bind(&key.successor_hash)
                    .bind(key.now)
                    .bind(key.retry.as_ref().map(|r| &r.sealed_successor));
            }
            if fault == Some(Fault::FailCommit) {
                let mut tx = p.begin().await?;
                query.fetch_all(&mut *tx).await?;
                tx.rollback().await?;
                return Err(faults::injected("the COMMIT of a refresh rotation failed"));
            }
            query.fetch_all(p).await
        })?;
        if fault == Some(Fault::LoseConnectionAfterCommit) {
            return Err(faults::injected(
                "connection lost after a rotation's COMMIT",
            ));
        }
        let rotated: std::collections::HashSet<(String, String)> = rotated.into_iter().collect();
        let mut outcome = HashMap::with_capacity(batch.len());
        // The batch may repeat its last key (padding: `store::batch`); each counts once.
        for key in batch {
            if outcome.contains_key(&key) {
                continue;
            }
            let won = rotated.contains(&(key.token_hash.clone(), key.successor_hash.clone()));
            let result = if won {
                Ok(Rotation::Rotated)
            } else {
                self.retry_or_revoke(&key).await
            };
            outcome.insert(key, result);
        }
        Ok(outcome)
    }

    /// A token that was not rotated: a retry within the window gets its sealed successor;
    /// else a used token is a replay and revokes its family.
    async fn retry_or_revoke(&self, key: &RotateKey) -> Result<Rotation, StoreError> {
        if let Some(retry) = &key.retry
            && let Some(sealed) = self
                .claim_retry(
                    &key.token_hash,
                    &key.family_id,
                    retry.rotated_since,
                    key.now,
                )
                .await?
        {
            return Ok(Rotation::Retried { sealed });
        }
        Ok(if self.revoke_if_used(key).await? {
            Rotation::Reused
        } else {
            Rotation::Refused
        })
    }

    /// Takes the sealed successor of `token_hash` — once: it is cleared as it is taken — if
    /// the token was rotated at or after `rotated_since`, its family is live, and the
    /// successor has not been used (RFC 9700 §4.14.2: once the successor is used, the old
    /// token is a replay whatever the window). Three steps:
    ///
    /// 1. read the sealed successor;
    /// 2. clear it if it is still there (compare-and-clear: of concurrent retries one gets
    ///    it; RETURNING would give the cleared value);
    /// 3. mark the successor, still unused, as handed out twice ([`NO_RETRY`]), so that its
    ///    own rotation keeps nothing to retry for: of two holders of the same successor (the
    ///    client and a thief with the old token), whoever presents it second is a replay and
    ///    ends the family. Should the successor have been used between 2 and 3, there is
    ///    nothing to hand out: `None`, a replay.
    async fn claim_retry(
        &self,
        token_hash: &str,
        family_id: &str,
        rotated_since: i64,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let successor_unused = "exists (select 1 from refresh_tokens s \
             where s.hash = refresh_tokens.successor_hash and s.used_at is null)";
        let sealed: Option<String> = on_pool!(write self, |p| sqlx::query_scalar(&format!(
            "select successor_sealed from refresh_tokens \
             where hash = $1 and family_id = $2 and used_at >= $3 \
             and successor_sealed is not null and successor_sealed <> $5 \
             and {successor_unused} and exists \
             (select 1 from refresh_families f where f.id = $2 \
              and f.revoked_at is null and f.expires_at > $4)"
        ))
        .bind(token_hash)
        .bind(family_id)
        .bind(rotated_since)
        .bind(now)
        .bind(NO_RETRY)
        .fetch_optional(p)
        .await)?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let taken = on_pool!(write self, |p| sqlx::query(&format!(
            "update refresh_tokens set successor_sealed = null \
             where hash = $1 and successor_sealed = $2 and {successor_unused}"
        ))
        .bind(token_hash)
        .bind(&sealed)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        if taken != 1 {
            return Ok(None);
        }
        let marked = on_pool!(write self, |p| sqlx::query(
            "update refresh_tokens set successor_sealed = $2 where used_at is null \
             and successor_sealed is null \
             and hash = (select successor_hash from refresh_tokens where hash = $1)"
        )
        .bind(token_hash)
        .bind(NO_RETRY)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok((marked == 1).then_some(sealed))
    }

    /// Revokes the family of a token that was used already (a replay). False when the token
    /// is unused (its family is dead: nothing to do) or the family was revoked before.
    async fn revoke_if_used(&self, key: &RotateKey) -> Result<bool, StoreError> {
        let revoked = on_pool!(write self, |p| sqlx::query(
            "update refresh_families set revoked_at = $1 \
             where id = $2 and revoked_at is null and exists \
             (select 1 from refresh_tokens \
              where hash = $3 and family_id = $2 and used_at is not null)"
        )
        .bind(key.now)
        .bind(&key.family_id)
        .bind(&key.token_hash)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(revoked == 1)
    }

    /// [`Store::refresh_record_with_user`] for many token digests in one statement.
    pub(super) async fn refresh_records(
        self: Arc<Self>,
        hashes: Vec<String>,
    ) -> Result<HashMap<String, (RefreshRecord, User)>, StoreError> {
        #[derive(FromRow)]
        struct WithUser {
            hash: String,
            #[sqlx(flatten)]
            row: Row,
            #[sqlx(flatten)]
            user: UserRow,
        }
        let sql = format!(
            "select t.hash, {FAMILY_COLUMNS}, t.issued_at, t.used_at, {USER_COLUMNS} \
             {FROM_TOKEN_AND_FAMILY} join users u on u.id = f.user_id where t.hash in ({})",
            super::batch::placeholders(hashes.len(), 1)
        );
        let rows: Vec<WithUser> = on_pool!(self, |p| {
            let mut query = sqlx::query_as(&sql);
            for hash in &hashes {
                query = query.bind(hash);
            }
            query.fetch_all(p).await
        })?;
        rows.into_iter()
            .map(|r| {
                let found = (RefreshRecord::try_from(r.row)?, User::try_from(r.user)?);
                Ok((r.hash, found))
            })
            .collect()
    }
}

impl Store {
    /// Starts a family with its first token.
    pub async fn insert_refresh_family(
        &self,
        family: &RefreshFamily,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        self.insert_refresh_family_at(family, Some((token_hash, family.created_at)))
            .await
    }

    /// Stores a family, with one live token `(digest, issued_at)` or none (a session whose
    /// client does not refresh). Also used to copy live tokens between databases.
    pub async fn insert_refresh_family_at(
        &self,
        family: &RefreshFamily,
        token: Option<(&str, i64)>,
    ) -> Result<(), StoreError> {
        on_pool!(write self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(
                "insert into refresh_families \
                 (id, client_id, user_id, scopes, auth_time, created_at, expires_at, revoked_at, \
                  security_version) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&family.id)
            .bind(&family.client_id)
            .bind(&family.user_id)
            .bind(family.scopes.to_string())
            .bind(family.auth_time)
            .bind(family.created_at)
            .bind(family.expires_at)
            .bind(family.revoked_at)
            .bind(family.security_version)
            .execute(&mut *tx)
            .await?;
            if let Some((hash, issued_at)) = token {
                sqlx::query(INSERT_TOKEN)
                    .bind(hash)
                    .bind(&family.id)
                    .bind(issued_at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Adds a first token to an existing family (a session started by a code exchange).
    pub async fn insert_refresh_token(
        &self,
        family_id: &str,
        token_hash: &str,
        issued_at: i64,
    ) -> Result<(), StoreError> {
        on_pool!(write self, |p| sqlx::query(INSERT_TOKEN)
            .bind(token_hash)
            .bind(family_id)
            .bind(issued_at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The token and its family, without changing anything (introspection).
    pub async fn refresh_record(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let sql = format!(
            "select {FAMILY_COLUMNS}, t.issued_at, t.used_at {FROM_TOKEN_AND_FAMILY} \
             where t.hash = $1"
        );
        let row: Option<Row> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(token_hash)
            .fetch_optional(p)
            .await)?;
        row.map(RefreshRecord::try_from).transpose()
    }

    /// The token, its family and the family's user, in one statement (the refresh grant).
    /// Read with concurrent requests' in one statement (`store::batch`).
    pub async fn refresh_record_with_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshRecord, User)>, StoreError> {
        self.refresh_records.submit(token_hash.to_owned()).await
    }

    /// Every live family (copying between databases).
    pub async fn live_refresh_families(&self, now: i64) -> Result<Vec<RefreshFamily>, StoreError> {
        let sql = format!(
            "select {FAMILY_COLUMNS} from refresh_families f \
             where f.revoked_at is null and f.expires_at > $1 order by f.created_at"
        );
        let rows: Vec<FamilyRow> =
            on_pool!(self, |p| sqlx::query_as(&sql).bind(now).fetch_all(p).await)?;
        rows.into_iter().map(RefreshFamily::try_from).collect()
    }

    /// Every unused token of a live family, with its digest (copying between databases).
    pub async fn live_refresh_tokens(
        &self,
        now: i64,
    ) -> Result<Vec<(String, RefreshRecord)>, StoreError> {
        #[derive(FromRow)]
        struct WithHash {
            hash: String,
            #[sqlx(flatten)]
            row: Row,
        }
        let sql = format!(
            "select t.hash, {FAMILY_COLUMNS}, t.issued_at, t.used_at {FROM_TOKEN_AND_FAMILY} \
             where t.used_at is null and f.revoked_at is null and f.expires_at > $1 \
             order by f.created_at"
        );
        let rows: Vec<WithHash> =
            on_pool!(self, |p| sqlx::query_as(&sql).bind(now).fetch_all(p).await)?;
        rows.into_iter()
            .map(|r| Ok((r.hash, RefreshRecord::try_from(r.row)?)))
            .collect()
    }

    /// Rotates the refresh token `token_hash` of family `family_id`: in one statement, marks
    /// it used — only if it was unused and its family is live — and stores `successor_hash`
    /// as the family's next token (migration 0004's trigger inserts it). Of concurrent
    /// rotations of one token exactly one matches the row. When none did because the token
    /// had been used, that is a replay: the family is revoked (RFC 9700 §4.14.2).
    ///
    /// Concurrent rotations of different tokens share the statement (and so the commit):
    /// see `store::batch`. Each is committed before it is answered.
    ///
    /// With `retry` (a retry window), the successor is also kept sealed, and a token rotated
    /// at or after `retry.rotated_since` whose successor is unused gets that sealed successor
    /// back, once ([`Rotation::Retried`]) instead of being a replay.
    pub async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        family_id: &str,
        successor_hash: &str,
        now: i64,
        retry: Option<Retry>,
    ) -> Result<Rotation, StoreError> {
        let key = RotateKey {
            token_hash: token_hash.to_owned(),
            family_id: family_id.to_owned(),
            successor_hash: successor_hash.to_owned(),
            now,
            retry,
        };
        self.rotations.rotate(key).await
    }

    /// A used token presented again within the retry window: its sealed successor, taken
    /// once, if the family is live and the successor unused (see [`Store::rotate_refresh_token`]).
    pub async fn claim_refresh_retry(
        &self,
        token_hash: &str,
        family_id: &str,
        rotated_since: i64,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        self.statements
            .claim_retry(token_hash, family_id, rotated_since, now)
            .await
    }

    /// Revokes a family (RFC 7009 §2.1: revoking a refresh token revokes its family).
    pub async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> Result<(), StoreError> {
        revocation!(self, sqlx::query(REVOKE_FAMILY).bind(now).bind(family_id))
    }

    /// Records a revoked access token until it expires anyway.
    pub async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        revocation!(
            self,
            sqlx::query(
                "insert into revoked_access_tokens (jti, expires_at) values ($1, $2) \
                 on conflict (jti) do nothing",
            )
            .bind(jti)
            .bind(expires_at)
        )
    }

    /// Revoked access tokens that have not expired yet, as (jti, exp).
    pub async fn revoked_access_tokens(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_as(
            "select jti, expires_at from revoked_access_tokens where expires_at > $1 order by jti"
        )
        .bind(now)
        .fetch_all(p)
        .await)?)
    }

    /// Deletes expired families, their tokens and expired revocation records, in batches of
    /// at most `PURGE_BATCH` (500) rows with a pause between them, so the purge never holds the
    /// write lock for long (a family refreshed every 15 minutes for 30 days has thousands of
    /// tokens). Also clears sealed successors whose retry window is over. Returns how many
    /// rows went or were cleared.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        for sql in [
            // Tokens first, so deleting a family never cascades over an unbounded number.
            "delete from refresh_tokens where hash in \
             (select t.hash from refresh_tokens t join refresh_families f on f.id = t.family_id \
              where f.expires_at <= $1 limit $2)",
            "delete from refresh_families where id in \
             (select id from refresh_families where expires_at <= $1 limit $2)",
            "delete from revoked_access_tokens where jti in \
             (select jti from revoked_access_tokens where expires_at <= $1 limit $2)",
            "delete from authorization_codes where hash in \
             (select hash from authorization_codes where expires_at <= $1 limit $2)",
            "delete from sessions where hash in \
             (select hash from sessions where expires_at <= $1 limit $2)",
            // Sealed successors are kept only for the retry window (at most 60 s): after it,
            // nothing of a successor stays in the database, even sealed.
            "update refresh_tokens set successor_sealed = null where hash in \
             (select hash from refresh_tokens where successor_sealed is not null \
              and used_at is not null and used_at <= $1 - 60 limit $2)",
            // Throttle counts are forgotten after the window (oauth::throttle::WINDOW_SECS).
            "delete from login_failures where key in \
             (select key from login_failures where last_failure <= $1 - 900 limit $2)",
        ] {
            loop {
                let n = on_pool!(write self, |p| sqlx::query(sql)
                    .bind(now)
                    .bind(PURGE_BATCH)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected()))?;
                total += n;
                if n < PURGE_BATCH as u64 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        Ok(total)
    }
}
