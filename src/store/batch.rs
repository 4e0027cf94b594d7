//! Point reads (and refresh-token rotations) that many requests make at once, coalesced
//! into one statement.
//!
//! ```text
//!  request ─┐                    one task per kind                       database
//!  request ─┼─ submit(key) ──▶ [queue] ──▶ next batch of distinct keys ──▶ one statement
//!  request ─┘      ▲                        (padded to a power of two)        │
//!                  └──────────── each request gets the answer for its key ◀───┘
//! ```
//!
//! Every statement is a round trip to another thread (sqlx gives each SQLite connection a
//! thread of its own) or to another process (PostgreSQL), and on a small machine the round
//! trip — two thread wake-ups — costs more than the read: about 80 µs of CPU against a few
//! µs of SQLite's own work, measured on a 2-core VM. So the reads on every request's path
//! (the token state behind /userinfo and /introspect, the client behind every client
//! authentication) go through a [`Batcher`]: one task runs one statement at a time; the
//! requests that arrive while it runs form the next statement (`… in (…)`), up to
//! [`MAX_BATCH`]. An idle server reads each key at once, alone; nothing waits for a timer,
//! and every answer still comes from the database at the time of the request. Rotations
//! use the same machinery: a batch of them is one UPDATE, so one commit and one WAL write.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// Pads a batch of distinct keys to the next power of two by repeating its last key, so
/// that statements come in at most 7 shapes (1, 2, 4 … 64 keys) instead of 64: sqlx caches
/// 100 prepared statements per connection, and four kinds × 64 sizes did not fit. Every
/// statement takes repeated keys (reads answer them once; rotations process each key once).
fn pad_to_power_of_two<K: Clone>(keys: &mut Vec<K>) {
    if let Some(last) = keys.last().cloned() {
        keys.resize(keys.len().next_power_of_two(), last);
    }
}

use super::StoreError;

/// The most keys one statement reads (and the queue's length: senders wait beyond it).
pub(crate) const MAX_BATCH: usize = 64;

type Reply<V> = oneshot::Sender<Result<Option<V>, StoreError>>;

/// Reads (or, for rotations, writes) one `V` per key `K`, many keys per statement.
pub(crate) struct Batcher<K, V> {
    queue: mpsc::Sender<(K, Reply<V>)>,
}

impl<K, V> std::fmt::Debug for Batcher<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batcher")
    }
}

impl<K, V> Batcher<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Starts the reading task (on the current tokio runtime). `read` gets distinct keys (the
    /// last of them repeated up to a power of two) and returns what it found, keyed; a key
    /// it does not return was not found. With a `deadline`, a statement that takes longer answers its batch `Unavailable` and the
    /// next batch starts (on another connection) instead of waiting behind it — for reads
    /// only: a write must not be answered before its outcome is known.
    pub(crate) fn spawn<F, Fut>(read: F, deadline: Option<std::time::Duration>) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<HashMap<K, V>, StoreError>> + Send + 'static,
    {
        let (queue, mut requests) = mpsc::channel::<(K, Reply<V>)>(MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            // Ends when the last Store clone (and so the last sender) is gone.
            while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let mut seen = HashSet::with_capacity(batch.len());
                let mut keys: Vec<K> = batch
                    .iter()
                    .filter(|(key, _)| seen.insert(key.clone()))
                    .map(|(key, _)| key.clone())
                    .collect();
                pad_to_power_of_two(&mut keys);
                // Its own task, so that a panic fails this batch and not every later one.
                let statement = tokio::spawn(read(keys));
                let done = match deadline {
                    Some(deadline) => tokio::time::timeout(deadline, statement).await,
                    None => Ok(statement.await),
                };
                let found = match done {
                    Ok(Ok(found)) => found.map(Arc::new),
                    Ok(Err(_)) => Err(StoreError::Corrupt("a batched statement panicked".into())),
                    Err(_) => Err(StoreError::Unavailable(Arc::new(sqlx::Error::Io(
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "a database read took too long",
                        ),
                    )))),
                };
                for (key, reply) in batch.drain(..) {
                    // A request that gave up waiting has dropped its receiver; fine.
                    let _ = reply.send(match &found {
                        Ok(found) => Ok(found.get(&key).cloned()),
                        Err(e) => Err(e.clone()),
                    });
                }
            }
        });
        Self { queue }
    }

    /// Submits `key` to the next statement and waits for its answer: what the database
    /// holds for it (a read), or what became of it (a rotation).
    pub(crate) async fn submit(&self, key: K) -> Result<Option<V>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Corrupt("the store's reading task has stopped".into());
        self.queue.send((key, reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// `($1, $2, …), (…)`: `rows` tuples of `width` placeholders, numbered from 1; with
/// `width` 1, a plain list `$1, $2, …` (for `in (…)`).
pub(crate) fn placeholders(rows: usize, width: usize) -> String {
    let numbers = |from: usize| {
        (from..from + width)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if width == 1 {
        return (1..=rows)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
    }
    (0..rows)
        .map(|r| format!("({})", numbers(r * width + 1)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_come_in_seven_shapes() {
        let shapes: HashSet<usize> = (1..=MAX_BATCH)
            .map(|n| {
                let mut keys: Vec<usize> = (0..n).collect();
                pad_to_power_of_two(&mut keys);
                assert_eq!(keys[n..].iter().filter(|k| **k != n - 1).count(), 0);
                keys.len()
            })
            .collect();
        assert_eq!(shapes.len(), 7, "{shapes:?}");
    }

    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(placeholders(1, 1), "$1");
        assert_eq!(placeholders(3, 1), "$1, $2, $3");
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }

    #[tokio::test]
    async fn concurrent_gets_share_statements_and_each_gets_its_own_answer() {
        let statements = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = statements.clone();
        let batcher = Arc::new(Batcher::spawn(
            move |keys: Vec<u32>| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    // Odd keys exist, even ones do not.
                    Ok(keys
                        .into_iter()
                        .filter(|k| k % 2 == 1)
                        .map(|k| (k, k * 10))
                        .collect())
                }
            },
            None,
        ));
        let mut tasks = Vec::new();
        for k in 0..200u32 {
            let b = batcher.clone();
            tasks.push(tokio::spawn(async move { (k, b.submit(k % 50).await) }));
        }
        for t in tasks {
            let (k, got) = t.await.unwrap();
            let k = k % 50;
            assert_eq!(got.unwrap(), (k % 2 == 1).then_some(k * 10));
        }
        let n = statements.load(std::sync::atomic::Ordering::SeqCst);
        assert!(n < 200 / 2, "{n} statements for 200 concurrent reads");
    }

    #[tokio::test]
    async fn a_panicking_statement_fails_its_batch_and_the_next_one_runs() {
        let batcher = Batcher::spawn(
            |keys: Vec<u32>| async move {
                assert!(!keys.contains(&13), "unlucky");
                Ok(keys.into_iter().map(|k| (k, k)).collect())
            },
            None,
        );
        assert!(batcher.submit(13).await.is_err());
        assert_eq!(batcher.submit(7).await.unwrap(), Some(7));
    }

    /// A read stuck past its deadline answers `Unavailable`, and the next read runs.
    #[tokio::test]
    async fn a_stuck_read_times_out_and_the_next_one_runs() {
        let batcher = Batcher::spawn(
            |keys: Vec<u32>| async move {
                if keys.contains(&13) {
                    std::future::pending::<()>().await;
                }
                Ok(keys.into_iter().map(|k| (k, k)).collect())
            },
            Some(std::time::Duration::from_millis(50)),
        );
        assert!(matches!(
            batcher.submit(13).await,
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(batcher.submit(7).await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn a_failed_statement_fails_every_read_in_it() {
        let batcher = Batcher::spawn(
            |_keys: Vec<u32>| async {
                Err::<HashMap<u32, u32>, _>(StoreError::Corrupt("boom".into()))
            },
            None,
        );
        assert!(matches!(
            batcher.submit(1).await,
            Err(StoreError::Corrupt(_))
        ));
    }
}
