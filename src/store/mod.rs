//! Persistence with sqlx. SQL lives only in this module; callers get plain `model` types.
//!
//! One store, two engines: SQLite (embedded, the default) and PostgreSQL (several replicas on
//! one database). Every query is written once in the portable subset — `$N` placeholders,
//! TEXT ids, integer unix times, `RETURNING`, `ON CONFLICT` — and `on_pool!` compiles it
//! for each engine's native pool (the `Any` driver cannot take SQLite's WAL and busy-timeout
//! options). Migrations are per engine only because DDL types differ
//! (`migrations/sqlite`, `migrations/postgres`, same numbering).

mod batch;
mod clients;
mod codes;
mod consents;
mod copy;
pub mod faults;
mod files;
mod health;
mod login_failures;
mod logout;
mod refresh_tokens;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::metrics::{Metrics, PoolState};

pub use codes::{AuthorizationCode, Redemption, Session};
pub use copy::CopyReport;
pub use logout::LogoutNotification;
pub use refresh_tokens::{RefreshFamily, RefreshRecord, Retry, Rotation};
pub use users::{NewUser, ProfileChanges, TokenState};

/// Runs the same body on whichever native pool the store has: `$p` is a `&SqlitePool` in one
/// arm and a `&PgPool` in the other. `on_pool!(write store, |p| …)` is for anything that
/// writes: on SQLite it runs on the single writer connection (see [`Pool`]).
/// Every statement is timed and counted in flight for `/metrics` while it runs.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {{
        let _statement = $store.metrics.statement();
        match &$store.pool {
            $crate::store::Pool::Sqlite { readers: $p, .. } => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    }};
    (write $store:expr, |$p:ident| $body:expr) => {{
        let _statement = $store.metrics.statement();
        match &$store.pool {
            $crate::store::Pool::Sqlite { writer: $p, .. } => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    }};
}
pub(crate) use on_pool;

/// Failures the store reports; database details stop here.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint said no (e.g. the username or client id exists).
    #[error("already exists")]
    Conflict,
    /// The database cannot be reached or did not answer in time: worth a retry.
    #[error("the database is unavailable: {0}")]
    Unavailable(Arc<sqlx::Error>),
    /// A stored row could not be read back into its model type.
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(Arc<sqlx::Error>),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
            // PostgreSQL: SQLSTATE class 08 (connection exception), 57P0x (the server
            // shutting down or restarting), 40001 and 40P01 (a serialization failure or a
            // deadlock: two replicas' batched rotations can lock the same rows in opposite
            // orders; PostgreSQL aborts one). SQLite: SQLITE_BUSY (5, and its extended codes
            // 261, 517) and SQLITE_LOCKED (6), the busy timeout running out behind another
            // writer. Either way, worth a retry.
            sqlx::Error::Database(d)
                if d.code().is_some_and(|c| {
                    c.starts_with("08")
                        || c.starts_with("57P0")
                        || matches!(c.as_ref(), "40001" | "40P01")
                        || matches!(c.as_ref(), "5" | "6" | "261" | "517")
                }) =>
            {
                StoreError::Unavailable(Arc::new(e))
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(Arc::new(e)),
            _ => StoreError::Other(Arc::new(e)),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    /// SQLite lets one connection write at a time; others that try wait in its busy
    /// handler, which sleeps and retries (1, 2, 5, 10 … 100 ms), so ten connections racing
    /// to rotate refresh tokens spend their time asleep. Writes therefore go through one
    /// connection, and wait for it in the pool's fair queue instead; reads (WAL) run on the
    /// others, concurrently with the writer.
    Sqlite {
        readers: SqlitePool,
        writer: SqlitePool,
    },
    Postgres(PgPool),
}

/// The database: cheap to clone, shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// The reads every request makes, coalesced (see [`batch`]).
    token_states: Arc<batch::Batcher<users::TokenKey, TokenState>>,
    clients: Arc<batch::Batcher<String, crate::model::Client>>,
    refresh_records: Arc<batch::Batcher<String, (RefreshRecord, crate::model::User)>>,
    rotations: refresh_tokens::Rotations,
    /// The statements themselves, for the rare ones that are not batched.
    statements: Arc<Statements>,
    faults: Arc<faults::Faults>,
    health: Arc<health::Health>,
    metrics: Arc<Metrics>,
}

/// What the batched statements run on: the pool (and the test faults). Its methods are the
/// statements — the reads on every request's path, and the rotation UPDATE; a [`Store`]
/// holds the batchers that feed them.
struct Statements {
    pool: Pool,
    faults: Arc<faults::Faults>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Statements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Statements")
    }
}

/// A [`batch::Batcher`] running `statement` (a method of [`Statements`]) on `statements`.
fn batched<K, V, F, Fut>(
    statements: &Arc<Statements>,
    statement: F,
    deadline: Option<Duration>,
) -> Arc<batch::Batcher<K, V>>
where
    K: Eq + std::hash::Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
    F: Fn(Arc<Statements>, Vec<K>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<std::collections::HashMap<K, V>, StoreError>>
        + Send
        + 'static,
{
    let statements = statements.clone();
    Arc::new(batch::Batcher::spawn(
        move |keys| statement(statements.clone(), keys),
        deadline,
    ))
}

/// How long a batched read may take before its requests are answered 503 (see
/// [`batch::Batcher::spawn`]).
const READ_DEADLINE: Duration = Duration::from_secs(5);

/// How long a request waits for a database connection before it is answered 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

impl Store {
    /// Opens the database at `url` (`sqlite://PATH`, created if needed, or `postgres://…`)
    /// with at most `max_connections` connections, and applies pending migrations.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        Self::connect_counted(url, max_connections, Arc::default()).await
    }

    /// [`Store::connect`], timing its statements in `metrics`.
    pub async fn connect_counted(
        url: &str,
        max_connections: u32,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let max_connections = max_connections.max(1);
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| anyhow::anyhow!("cannot read the database URL: {e}"))?
                .application_name("ferrid");
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot connect to PostgreSQL: {e}; check --database-url and that the server is up")
                })?;
            // Replicas starting together are fine: sqlx serializes migrations with an
            // advisory lock.
            sqlx::migrate!("migrations/postgres")
                .run(&pool)
                .await
                .map_err(|e| anyhow::anyhow!("cannot apply database migrations: {e}"))?;
            Pool::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| anyhow::anyhow!("cannot read the database URL: {e}"))?
                .create_if_missing(true)
                // WAL: readers never block the writer, and every commit is appended to the
                // log. synchronous=FULL: each commit is fsynced before it returns, so a
                // rotation that was answered survives a power loss too. (NORMAL would
                // survive a process crash but may drop the last commits on a power loss
                // — answered refresh tokens would then be unknown and their clients
                // logged out.) Rotations share commits (`batch`), which keeps the fsyncs
                // few.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let file = options.get_filename().to_owned();
            if file.as_os_str() != ":memory:" && !file.as_os_str().is_empty() {
                tokio::task::spawn_blocking(move || files::secure_sqlite_files(&file))
                    .await?
                    .map_err(|e| anyhow::anyhow!("cannot prepare the database file: {e}"))?;
            }
            let pool = |n: u32| {
                SqlitePoolOptions::new()
                    .max_connections(n)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    // An embedded database has no peer that can hang up: sqlx's ping before
                    // every acquire would only add a round trip to the connection's thread.
                    .test_before_acquire(false)
                    .connect_with(options.clone())
            };
            let writer = pool(1)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
            sqlx::migrate!("migrations/sqlite")
                .run(&writer)
                .await
                .map_err(|e| anyhow::anyhow!("cannot apply database migrations: {e}"))?;
            let readers = pool(max_connections)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
            Pool::Sqlite { readers, writer }
        } else {
            anyhow::bail!(
                "unsupported database URL; use sqlite://PATH (e.g. sqlite://ferrid.db) or postgres://USER@HOST/DB"
            );
        };
        let faults = Arc::new(faults::Faults::default());
        let statements = Arc::new(Statements {
            pool: pool.clone(),
            faults: faults.clone(),
            metrics: metrics.clone(),
        });
        let token_states = batched(&statements, Statements::token_states, Some(READ_DEADLINE));
        let clients = batched(&statements, Statements::clients, Some(READ_DEADLINE));
        let refresh_records = batched(
            &statements,
            Statements::refresh_records,
            Some(READ_DEADLINE),
        );
        // A write must not be answered before its outcome is known: no deadline.
        let rotations = refresh_tokens::Rotations(batched(&statements, Statements::rotate, None));
        Ok(Self {
            pool,
            token_states,
            clients,
            refresh_records,
            rotations,
            statements,
            faults,
            health: Arc::default(),
            metrics,
        })
    }

    /// The pools' connections now (SQLite's reader and writer pools together).
    pub fn pool_state(&self) -> PoolState {
        let of_pg = |p: &PgPool| {
            (
                p.size(),
                u32::try_from(p.num_idle()).unwrap_or(0),
                p.options().get_max_connections(),
            )
        };
        let of_lite = |p: &SqlitePool| {
            (
                p.size(),
                u32::try_from(p.num_idle()).unwrap_or(0),
                p.options().get_max_connections(),
            )
        };
        let (size, idle, max) = match &self.pool {
            Pool::Sqlite { readers, writer } => {
                let (r, w) = (of_lite(readers), of_lite(writer));
                (r.0 + w.0, r.1 + w.1, r.2 + w.2)
            }
            Pool::Postgres(p) => of_pg(p),
        };
        PoolState { size, idle, max }
    }

    /// The faults the durability tests arm (debug builds only).
    #[cfg(debug_assertions)]
    pub fn faults(&self) -> &faults::Faults {
        &self.faults
    }

    /// Which engine: "sqlite" or "postgres".
    pub fn engine(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite { .. } => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Answers when the database does: what `/readyz` asks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |p| sqlx::query("select 1")
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// SQLite's `journal_mode` and `synchronous` (0 off, 1 normal, 2 full, 3 extra) as the
    /// connection that writes sees them; `None` on PostgreSQL. What the durability tests
    /// check.
    pub async fn sqlite_durability(&self) -> Result<Option<(String, i64)>, StoreError> {
        let Pool::Sqlite { writer, .. } = &self.pool else {
            return Ok(None);
        };
        let mut conn = writer.acquire().await?;
        let (mode,): (String,) = sqlx::query_as("pragma journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        let (sync,): (i64,) = sqlx::query_as("pragma synchronous")
            .fetch_one(&mut *conn)
            .await?;
        Ok(Some((mode, sync)))
    }

    /// True when there is neither a user nor a client yet (what `--demo` waits for).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let (n,): (i64,) = on_pool!(self, |p| sqlx::query_as(
            "select (select count(*) from users) + (select count(*) from clients)"
        )
        .fetch_one(p)
        .await)?;
        Ok(n == 0)
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite { readers, writer } => {
                readers.close().await;
                writer.close().await;
            }
            Pool::Postgres(p) => p.close().await,
        }
    }
}

fn json_list(raw: &str, what: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn to_json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}
