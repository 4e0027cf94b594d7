//! The `login_failures` table: the brute-force throttle's failure counts, shared by the
//! replicas of one PostgreSQL database (`oauth::throttle`). Keys are keyed hashes, never
//! usernames or addresses.

use std::collections::HashMap;

use super::{Pool, Store, StoreError, on_pool};

impl Store {
    /// Whether failure counts should go through the database: on PostgreSQL, where several
    /// replicas may serve one database. (SQLite has one server process; its counts stay
    /// in memory.)
    pub fn shares_login_failures(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// The counts of `keys` whose last failure is after `since`: key → (failures, last).
    pub async fn login_failures(
        &self,
        keys: &[String],
        since: i64,
    ) -> Result<HashMap<String, (i64, i64)>, StoreError> {
        let sql = format!(
            "select key, failures, last_failure from login_failures \
             where key in ({}) and last_failure > ${}",
            super::batch::placeholders(keys.len(), 1),
            keys.len() + 1
        );
        let rows: Vec<(String, i64, i64)> = on_pool!(self, |p| {
            let mut query = sqlx::query_as(&sql);
            for key in keys {
                query = query.bind(key);
            }
            query.bind(since).fetch_all(p).await
        })?;
        Ok(rows.into_iter().map(|(k, f, l)| (k, (f, l))).collect())
    }

    /// Counts one failure against each of `keys` (a count older than `window` starts over).
    /// Callers pass keys in one order, so concurrent writers lock rows in the same order.
    pub async fn record_login_failure(
        &self,
        keys: &[String],
        now: i64,
        window: i64,
    ) -> Result<(), StoreError> {
        let rows: Vec<String> = (0..keys.len())
            .map(|i| format!("(${}, 1, $1)", i + 3))
            .collect();
        let sql = format!(
            "insert into login_failures (key, failures, last_failure) values {} \
             on conflict (key) do update set \
               failures = case when login_failures.last_failure <= $1 - $2 then 1 \
                               else login_failures.failures + 1 end, \
               last_failure = $1",
            rows.join(", ")
        );
        on_pool!(write self, |p| {
            let mut query = sqlx::query(&sql).bind(now).bind(window);
            for key in keys {
                query = query.bind(key);
            }
            query.execute(p).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Forgets one count (a successful login clears its username + address counter).
    pub async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        on_pool!(write self, |p| sqlx::query("delete from login_failures where key = $1")
            .bind(key)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
