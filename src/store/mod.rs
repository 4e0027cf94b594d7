//! Persistence with sqlx. SQL lives only in this module; callers get plain `model` types.
//!
//! The SQL is written once in the portable subset (`$N` placeholders, TEXT ids, INTEGER unix
//! times, `RETURNING`, `ON CONFLICT`), so a second engine needs only its own migrations.

mod clients;
mod refresh_tokens;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use refresh_tokens::{RefreshFamily, RefreshRecord, Rotation};
pub use users::NewUser;

/// Failures the store reports; database details stop here.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint said no (e.g. the username or client id exists).
    #[error("already exists")]
    Conflict,
    /// The database cannot be reached or did not answer in time.
    #[error("the database is unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// A stored row could not be read back into its model type.
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(e)
            }
            _ => StoreError::Other(e),
        }
    }
}

/// The database: cheap to clone, shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating it if needed) the database at `url` and applies pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            anyhow::bail!(
                "this build of ferrid stores data in SQLite only; use a database URL like sqlite://ferrid.db"
            );
        }
        if !url.starts_with("sqlite:") {
            anyhow::bail!("unsupported database URL; use one like sqlite://ferrid.db");
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("cannot read the database URL: {e}"))?
            .create_if_missing(true)
            // WAL: readers never block the writer; NORMAL sync is durable across a process
            // crash (a power loss may drop the last transactions, never corrupt the file).
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("cannot apply database migrations: {e}"))?;
        Ok(Self { pool })
    }

    /// Answers when the database does: what `/readyz` asks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    /// True when there is neither a user nor a client yet (what `--demo` waits for).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let (n,): (i64,) =
            sqlx::query_as("select (select count(*) from users) + (select count(*) from clients)")
                .fetch_one(&self.pool)
                .await?;
        Ok(n == 0)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn json_list(raw: &str, what: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn to_json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}
