//! What users allowed clients registered with `--consent` (OIDC Core §3.1.2.4).

use super::{Store, StoreError, on_pool};
use crate::model::ScopeSet;

impl Store {
    /// The scopes `user_id` allowed `client_id`, if any.
    pub async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        let row: Option<(String,)> = on_pool!(self, |p| sqlx::query_as(
            "select scopes from consents where user_id = $1 and client_id = $2"
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(p)
        .await)?;
        row.map(|(s,)| {
            ScopeSet::parse(&s)
                .map_err(|e| StoreError::Corrupt(format!("scopes of a consent: {e}")))
        })
        .transpose()
    }

    /// Records that `user_id` allowed `client_id` the scopes `allowed` (replacing what was
    /// stored: the caller passes the union).
    pub async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        allowed: &ScopeSet,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(write self, |p| sqlx::query(
            "insert into consents (user_id, client_id, scopes, updated_at) values ($1, $2, $3, $4) \
             on conflict (user_id, client_id) do update set scopes = excluded.scopes, \
             updated_at = excluded.updated_at"
        )
        .bind(user_id)
        .bind(client_id)
        .bind(allowed.to_string())
        .bind(now)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Every consent: `(user_id, client_id, scopes, updated_at)` (copying databases).
    pub async fn consents(&self) -> Result<Vec<(String, String, ScopeSet, i64)>, StoreError> {
        let rows: Vec<(String, String, String, i64)> = on_pool!(self, |p| {
            sqlx::query_as(
            "select user_id, client_id, scopes, updated_at from consents order by user_id, client_id"
        )
        .fetch_all(p)
        .await
        })?;
        rows.into_iter()
            .map(|(u, c, s, at)| {
                ScopeSet::parse(&s)
                    .map(|s| (u, c, s, at))
                    .map_err(|e| StoreError::Corrupt(format!("scopes of a consent: {e}")))
            })
            .collect()
    }
}
