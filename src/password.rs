//! Password hashing: argon2id for everything ferrid stores, bcrypt only to verify hashes
//! imported from FastAPI/passlib apps (they are replaced by argon2id on the next login).
//!
//! Hashing is slow on purpose (tens of milliseconds), so it never runs on the async workers:
//! [`Passwords`] runs it on threads of its own, one per core, behind a bounded queue. When the queue is full the caller gets [`PasswordError::Busy`] at once and
//! answers 503 + Retry-After, instead of letting a login storm queue without limit.

use std::sync::Arc;

use std::cell::RefCell;

use argon2::password_hash::{Output, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use crate::model::Secret;

pub use crate::model::MAX_PASSWORD_BYTES;

/// The most memory a stored (imported) argon2 hash may ask for: 256 MiB, four times RFC
/// 9106's second recommendation. A hash asking for more never matches, so a bad import
/// cannot make every login of a user allocate gigabytes.
pub const MAX_STORED_MEMORY_KIB: u32 = 256 * 1024;

/// argon2id cost parameters. The default is OWASP's first recommendation for argon2id
/// (Password Storage Cheat Sheet): m = 19 MiB, t = 2, p = 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashParams {
    /// argon2's working memory at these parameters, in 1 KiB blocks.
    fn block_count(&self) -> usize {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map(|p| p.block_count())
            .unwrap_or(0)
    }

    fn argon2(&self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password hashing queue is full")]
    Busy,
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// What a verification found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The password matches; `rehash` says the stored hash is bcrypt or argon2id with other
    /// parameters than the configured ones, and should be replaced.
    Match {
        rehash: bool,
    },
    Mismatch,
}

/// Hashes and verifies passwords on its own threads with bounded concurrency.
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    params: HashParams,
    argon2: Argon2<'static>,
    /// A hash of a random password with the configured parameters: an unknown username is
    /// verified against it, so it costs what a wrong password costs.
    dummy_hash: String,
    /// Jobs running: one per core.
    running: Arc<Semaphore>,
    /// Jobs running or waiting; when none is left, the request is refused with `Busy`.
    admitted: Arc<Semaphore>,
    capacity: usize,
    /// The hashing threads' queue. Their own threads, one per worker, rather than tokio's
    /// blocking pool: argon2 needs 19 MiB a hash, and a few long-lived threads keep that
    /// memory in a few allocator arenas instead of one per passing pool thread — while they
    /// work; idle for [`IDLE_RELEASE`], they let it go.
    jobs: Arc<JobQueue>,
    /// How long each job takes on its hashing thread (`/metrics`).
    duration: Option<crate::metrics::Histogram>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Drop for Inner {
    fn drop(&mut self) {
        // The threads finish the jobs queued, then end.
        self.jobs.close();
    }
}

/// A hashing thread idle this long lets go of its argon2 working memory (19 MiB at the
/// default parameters); the next hash allocates it again, which costs far less than the hash.
pub const IDLE_RELEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// The hashing threads' queue: jobs in a deque behind a mutex, and the idle threads on a
/// stack, each parked with its own timer. A new job wakes the thread that went idle last, so
/// under a trickle of logins one thread does the work and the others, idle, let go of their
/// memory. (A shared condition variable wakes them in turn — every thread then kept its
/// 19 MiB and also allocated it again whenever its turn came after more than the idle time;
/// a shared `mpsc::Receiver` behind a mutex let the thread blocked in `recv` keep the others
/// from ever timing out.)
struct JobQueue {
    state: std::sync::Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    jobs: std::collections::VecDeque<Job>,
    /// Idle threads, the most recently idle last.
    idle: Vec<std::thread::Thread>,
    closed: bool,
}

/// What a hashing thread gets from the queue.
enum Next {
    Job(Job),
    /// No job came within the wait.
    Idle,
    /// The hasher is gone.
    Closed,
}

impl JobQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, job: Job) -> Result<(), PasswordError> {
        let mut state = self.lock();
        if state.closed {
            return Err(PasswordError::Internal(
                "the hashing threads are gone".into(),
            ));
        }
        state.jobs.push_back(job);
        let wake = state.idle.pop();
        drop(state);
        if let Some(thread) = wake {
            thread.unpark();
        }
        Ok(())
    }

    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let idle = std::mem::take(&mut state.idle);
        drop(state);
        for thread in idle {
            thread.unpark();
        }
    }

    /// The next job for the calling thread, waiting at most `wait` (forever if `None`). A
    /// thread that waits with a time limit holds working memory and goes on top of the idle
    /// stack, to be woken first; one that waits without (it holds none) goes to the bottom.
    fn next(&self, wait: Option<std::time::Duration>) -> Next {
        let me = std::thread::current();
        let deadline = wait.map(|w| std::time::Instant::now() + w);
        let mut state = self.lock();
        let next = loop {
            if let Some(job) = state.jobs.pop_front() {
                break Next::Job(job);
            }
            if state.closed {
                break Next::Closed;
            }
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            if left.is_some_and(|left| left.is_zero()) {
                break Next::Idle;
            }
            if !state.idle.iter().any(|t| t.id() == me.id()) {
                if wait.is_some() {
                    state.idle.push(me.clone());
                } else {
                    state.idle.insert(0, me.clone());
                }
            }
            drop(state);
            // An unpark that came before this park makes it return at once; spurious wake-ups
            // just go round the loop.
            match left {
                Some(left) => std::thread::park_timeout(left),
                None => std::thread::park(),
            }
            state = self.lock();
        };
        state.idle.retain(|t| t.id() != me.id());
        next
    }
}

/// Starts `n` hashing threads fed by one queue; they end when the queue is closed (the
/// hasher dropped).
fn hashing_threads(
    n: usize,
    idle_release: std::time::Duration,
) -> Result<Arc<JobQueue>, PasswordError> {
    let queue = Arc::new(JobQueue {
        state: std::sync::Mutex::default(),
    });
    for i in 0..n {
        let thread_queue = queue.clone();
        let started = std::thread::Builder::new()
            .name(format!("ferrid-hash-{i}"))
            .spawn(move || {
                // A thread that holds working memory waits at most `idle_release` for the next
                // job before it lets go of it (`memory` has it handed back to the OS).
                loop {
                    let holding = BLOCKS.with_borrow(|blocks| !blocks.is_empty());
                    match thread_queue.next(holding.then_some(idle_release)) {
                        Next::Job(job) => job(),
                        Next::Idle => BLOCKS.with_borrow_mut(|blocks| *blocks = Vec::new()),
                        Next::Closed => return,
                    }
                }
            });
        if let Err(e) = started {
            // The threads already started end.
            queue.close();
            return Err(PasswordError::Internal(format!(
                "cannot start a hashing thread: {e}"
            )));
        }
    }
    Ok(queue)
}

impl Passwords {
    /// Builds the hasher; computes one hash (the dummy), so call it off the async workers.
    /// `workers` jobs run at once and up to `queue` more wait.
    pub fn new(params: HashParams, workers: usize, queue: usize) -> Result<Self, PasswordError> {
        Self::with_idle_release(params, workers, queue, IDLE_RELEASE)
    }

    /// [`Passwords::new`] whose threads let go of their working memory after `idle_release`.
    fn with_idle_release(
        params: HashParams,
        workers: usize,
        queue: usize,
        idle_release: std::time::Duration,
    ) -> Result<Self, PasswordError> {
        let argon2 = params.argon2()?;
        let random = uuid::Uuid::new_v4().to_string();
        // Computed once, in memory of its own (not kept by this thread).
        let dummy_hash = hash_with(&argon2, &random, 0)?;
        let workers = workers.max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                argon2,
                dummy_hash,
                running: Arc::new(Semaphore::new(workers)),
                admitted: Arc::new(Semaphore::new(workers + queue)),
                capacity: workers + queue,
                jobs: hashing_threads(workers, idle_release)?,
                duration: None,
            }),
        })
    }

    /// Times every job on the hashing threads into `histogram`. Call it on a new hasher,
    /// before it is cloned.
    pub fn timed(mut self, histogram: crate::metrics::Histogram) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.duration = Some(histogram);
        }
        self
    }

    pub fn params(&self) -> HashParams {
        self.inner.params
    }

    /// Password checks running or waiting right now.
    pub fn queue_depth(&self) -> usize {
        self.inner.capacity - self.inner.admitted.available_permits()
    }

    /// Hashes on the calling thread. For the command line and for blocking contexts only.
    pub fn hash_blocking(&self, password: &Secret) -> Result<Secret, PasswordError> {
        check_length(password)?;
        let keep = self.inner.params.block_count();
        hash_with(&self.inner.argon2, password.expose(), keep).map(Secret::new)
    }

    /// Verifies on the calling thread. `stored = None` (no such user) verifies against the
    /// dummy hash and always answers `Mismatch`, taking the same time as a wrong password.
    pub fn verify_blocking(&self, stored: Option<&Secret>, password: &Secret) -> PasswordCheck {
        if password.expose().len() > MAX_PASSWORD_BYTES {
            return PasswordCheck::Mismatch;
        }
        let hash = stored.map(Secret::expose).unwrap_or(&self.inner.dummy_hash);
        let matched = if is_bcrypt(hash) {
            // passlib and bcrypt both use only the first 72 bytes; so does this check.
            bcrypt::verify(password.expose(), hash).unwrap_or(false)
        } else {
            PasswordHash::new(hash).is_ok_and(|parsed| {
                verify_with(&parsed, password.expose(), self.inner.params.block_count())
            })
        };
        match (stored, matched) {
            (Some(stored), true) => PasswordCheck::Match {
                rehash: self.needs_rehash(stored.expose()),
            },
            _ => PasswordCheck::Mismatch,
        }
    }

    /// Whether a stored hash should be replaced by one with the configured parameters.
    pub fn needs_rehash(&self, hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return true;
        };
        let current = &self.inner.params;
        let param = |name: &str| parsed.params.get_decimal(name);
        parsed.algorithm.as_str() != "argon2id"
            || parsed.version != Some(Version::V0x13.into())
            || param("m") != Some(current.memory_kib)
            || param("t") != Some(current.iterations)
            || param("p") != Some(current.parallelism)
    }

    /// [`Passwords::verify_blocking`] on a hashing thread, behind the bounded queue.
    pub async fn verify(
        &self,
        stored: Option<Secret>,
        password: Secret,
    ) -> Result<PasswordCheck, PasswordError> {
        let this = self.clone();
        self.run(move || Ok(this.verify_blocking(stored.as_ref(), &password)))
            .await
    }

    /// [`Passwords::hash_blocking`] on a hashing thread, behind the bounded queue.
    pub async fn hash(&self, password: Secret) -> Result<Secret, PasswordError> {
        let this = self.clone();
        self.run(move || this.hash_blocking(&password)).await
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let admitted = self
            .inner
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| PasswordError::Busy)?;
        let running = self
            .inner
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| PasswordError::Internal(e.to_string()))?;
        let span = tracing::Span::current();
        let (reply, answer) = tokio::sync::oneshot::channel();
        // The permits move into the job: when the request is dropped (client gone, timeout)
        // while the hash runs, its core stays taken until the hash is done, so cancelled
        // logins cannot pile up more hashing than there are cores.
        let duration = self.inner.duration.clone();
        let task: Job = Box::new(move || {
            let _permits = (admitted, running);
            let started = std::time::Instant::now();
            let answer = span.in_scope(job);
            if let Some(histogram) = duration {
                histogram.observe(started.elapsed());
            }
            let _ = reply.send(answer);
        });
        self.inner.jobs.push(task)?;
        answer
            .await
            .map_err(|_| PasswordError::Internal("a hashing job was lost".into()))?
    }
}

fn check_length(password: &Secret) -> Result<(), PasswordError> {
    if password.expose().len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Internal(format!(
            "a password may be at most {MAX_PASSWORD_BYTES} bytes long"
        )));
    }
    Ok(())
}

thread_local! {
    /// The argon2 working memory of this thread (19 MiB at the default parameters), kept
    /// between hashes. Allocating it per hash left each hashing thread's allocator arena
    /// holding two or three such blocks after a login storm (peak RSS 230 MiB with two
    /// hashing threads); reused, it is one block per thread. argon2 writes every block
    /// before reading it, so what a previous hash left here is never read.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// argon2 of `password` with `salt` into `out`, in this thread's working memory. Parameters
/// needing more blocks than `keep` (a stored hash with a larger `m` than configured) get
/// memory of their own for this one hash, so such hashes cannot grow what a thread keeps.
fn argon2_into(
    argon2: &Argon2<'_>,
    blocks_needed: usize,
    keep: usize,
    password: &str,
    salt: Salt<'_>,
    out: &mut [u8],
) -> Result<(), PasswordError> {
    let mut salt_bytes = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| PasswordError::Internal(e.to_string()))?;
    let mut run = |blocks: &mut [Block]| {
        argon2
            .hash_password_into_with_memory(password.as_bytes(), salt, out, blocks)
            .map_err(|e| PasswordError::Internal(e.to_string()))
    };
    if blocks_needed > keep {
        return run(&mut vec![Block::default(); blocks_needed]);
    }
    BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() < blocks_needed {
            blocks.resize(blocks_needed, Block::default());
        }
        run(&mut blocks[..blocks_needed])
    })
}

/// A new PHC string for `password` (what `argon2::PasswordHasher::hash_password` writes),
/// in this thread's working memory when it needs no more than `keep` blocks.
fn hash_with(argon2: &Argon2<'_>, password: &str, keep: usize) -> Result<String, PasswordError> {
    let internal = |e: argon2::password_hash::Error| PasswordError::Internal(e.to_string());
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let params = argon2.params();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let out = &mut out[..params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    argon2_into(
        argon2,
        params.block_count(),
        keep,
        password,
        salt.as_salt(),
        out,
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: params.try_into().map_err(internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(out).map_err(internal)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches an argon2 PHC string (any variant, version and parameters it
/// names), compared in constant time (`Output`'s `PartialEq`).
fn verify_with(stored: &PasswordHash<'_>, password: &str, keep: usize) -> bool {
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm) else {
        return false;
    };
    let version = match stored.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(stored) else {
        return false;
    };
    if params.m_cost() > MAX_STORED_MEMORY_KIB {
        tracing::warn!(
            memory_kib = params.m_cost(),
            "a stored argon2 hash asks for more memory than ferrid allows; it never matches"
        );
        return false;
    }
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    argon2_into(&argon2, blocks, keep, password, salt, &mut out).is_ok()
        && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// bcrypt's modular-crypt prefixes, as written by passlib, bcrypt and OpenBSD.
pub fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| hash.starts_with(p))
}

/// Whether `hash` is something ferrid can verify: an argon2 PHC string or a bcrypt hash.
pub fn is_supported_hash(hash: &str) -> bool {
    if is_bcrypt(hash) {
        return hash.len() == 60;
    }
    PasswordHash::new(hash).is_ok_and(|h| {
        h.algorithm.as_str().starts_with("argon2")
            && Params::try_from(&h).is_ok_and(|p| p.m_cost() <= MAX_STORED_MEMORY_KIB)
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn idle_hashing_threads_let_go_of_their_working_memory() {
        let idle = std::time::Duration::from_millis(300);
        let passwords =
            super::Passwords::with_idle_release(super::HashParams::default(), 2, 4, idle).unwrap();
        // Runs `f` on both hashing threads at once (each job waits for the other).
        async fn on_both(p: &super::Passwords, f: fn(&super::Passwords) -> usize) -> [usize; 2] {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let job = || {
                let (barrier, this) = (barrier.clone(), p.clone());
                p.run(move || {
                    barrier.wait();
                    Ok(f(&this))
                })
            };
            let (a, b) = tokio::join!(job(), job());
            [a.unwrap(), b.unwrap()]
        }
        let kept = |_: &super::Passwords| super::BLOCKS.with_borrow(|b| b.len());
        let hash = |p: &super::Passwords| {
            p.hash_blocking(&super::Secret::new("a password of some length"))
                .unwrap();
            0
        };
        assert_eq!(
            on_both(&passwords, kept).await,
            [0, 0],
            "nothing kept before a hash"
        );
        on_both(&passwords, hash).await;
        let blocks = super::HashParams::default().block_count();
        assert_eq!(
            on_both(&passwords, kept).await,
            [blocks, blocks],
            "kept while working"
        );
        // Both threads let go once idle: neither one's wait keeps the other from timing out.
        tokio::time::sleep(idle * 3).await;
        assert_eq!(on_both(&passwords, kept).await, [0, 0]);

        // A trickle of logins, one every third of the idle time: one thread does them all,
        // and the other, idle, lets go (taking turns, both would hold their memory).
        for _ in 0..8 {
            passwords
                .hash(super::Secret::new("a password of some length"))
                .await
                .unwrap();
            tokio::time::sleep(idle / 3).await;
        }
        let mut held = on_both(&passwords, kept).await;
        held.sort_unstable();
        assert_eq!(held, [0, blocks], "one thread works, the other let go");
    }

    use super::*;

    /// The user of FastAPI's security tutorial: password "secret".
    const JOHNDOE: &str = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";

    fn cheap() -> Passwords {
        Passwords::new(
            HashParams {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            1,
            1,
        )
        .unwrap()
    }

    #[test]
    fn argon2id_round_trip_and_no_rehash_with_same_params() {
        let p = cheap();
        let h = p.hash_blocking(&Secret::new("correct horse")).unwrap();
        assert!(h.expose().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        let stored = Some(&h);
        assert_eq!(
            p.verify_blocking(stored, &Secret::new("correct horse")),
            PasswordCheck::Match { rehash: false }
        );
        assert_eq!(
            p.verify_blocking(stored, &Secret::new("wrong")),
            PasswordCheck::Mismatch
        );
    }

    /// Hashes written by the argon2 crate's own `PasswordHasher` (other variants, versions,
    /// more memory than configured, another output length — as an import may carry) verify,
    /// and ours verify with its `PasswordVerifier`: the reused working memory changes nothing.
    #[test]
    fn argon2_hashes_interoperate_with_the_reference_implementation() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let p = cheap();
        let password = "correct horse";
        for (algorithm, version, m, t, lanes, len) in [
            (Algorithm::Argon2id, Version::V0x13, 1024, 1, 1, 32),
            (Algorithm::Argon2id, Version::V0x13, 4096, 3, 2, 32),
            (Algorithm::Argon2i, Version::V0x13, 2048, 2, 1, 16),
            (Algorithm::Argon2d, Version::V0x10, 1024, 2, 1, 64),
        ] {
            let params = Params::new(m, t, lanes, Some(len)).unwrap();
            let reference = Argon2::new(algorithm, version, params);
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            let theirs = reference
                .hash_password(password.as_bytes(), &salt)
                .unwrap()
                .to_string();
            let stored = Secret::new(theirs.clone());
            assert!(
                matches!(
                    p.verify_blocking(Some(&stored), &Secret::new(password)),
                    PasswordCheck::Match { .. }
                ),
                "{theirs}"
            );
            assert_eq!(
                p.verify_blocking(Some(&stored), &Secret::new("correct horse!")),
                PasswordCheck::Mismatch
            );
        }
        // Twice on one thread: the second hash runs in the first one's memory.
        for _ in 0..2 {
            let ours = p.hash_blocking(&Secret::new(password)).unwrap();
            let parsed = PasswordHash::new(ours.expose()).unwrap();
            assert!(
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            );
            assert!(
                Argon2::default()
                    .verify_password(b"wrong", &parsed)
                    .is_err()
            );
        }
    }

    #[test]
    fn bcrypt_imports_verify_and_ask_for_rehash() {
        let p = cheap();
        let stored = Secret::new(JOHNDOE);
        assert!(is_supported_hash(JOHNDOE));
        assert_eq!(
            p.verify_blocking(Some(&stored), &Secret::new("secret")),
            PasswordCheck::Match { rehash: true }
        );
        assert_eq!(
            p.verify_blocking(Some(&stored), &Secret::new("Secret")),
            PasswordCheck::Mismatch
        );
    }

    #[test]
    fn other_argon2_parameters_ask_for_rehash() {
        let strong = Passwords::new(
            HashParams {
                memory_kib: 2048,
                ..cheap().params()
            },
            1,
            1,
        )
        .unwrap();
        let h = cheap().hash_blocking(&Secret::new("pw")).unwrap();
        assert!(strong.needs_rehash(h.expose()));
        assert!(!cheap().needs_rehash(h.expose()));
    }

    #[test]
    fn unknown_user_and_oversized_password_never_match() {
        let p = cheap();
        assert_eq!(
            p.verify_blocking(None, &Secret::new("anything")),
            PasswordCheck::Mismatch
        );
        let h = p.hash_blocking(&Secret::new("x")).unwrap();
        let long = Secret::new("x".repeat(MAX_PASSWORD_BYTES + 1));
        assert_eq!(p.verify_blocking(Some(&h), &long), PasswordCheck::Mismatch);
        assert!(p.hash_blocking(&long).is_err());
    }

    /// A stored hash asking for more than [`MAX_STORED_MEMORY_KIB`] is refused at import
    /// and never verified (it would allocate that much at every login).
    #[test]
    fn argon2_hashes_asking_for_too_much_memory_are_refused() {
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$\
                    RdescudvJCsgt3ub+b+dWRWJTmaaJObG0z8b2yLU9tc";
        assert!(!is_supported_hash(huge));
        let p = cheap();
        assert_eq!(
            p.verify_blocking(Some(&Secret::new(huge)), &Secret::new("password")),
            PasswordCheck::Mismatch
        );
    }

    #[test]
    fn garbage_hashes_are_not_supported() {
        assert!(!is_supported_hash("plaintext"));
        assert!(!is_supported_hash("$2b$12$short"));
        assert!(!is_supported_hash("$pbkdf2-sha256$29000$abc$def"));
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let p = cheap(); // 1 running + 1 waiting
        // A job that holds the only hashing thread until released, so nothing finishes
        // early however the threads are scheduled.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let running = p.run(move || {
            let _ = held.recv();
            Ok(())
        });
        let waiting = p.hash(Secret::new("b"));
        let (running, waiting, refused) = tokio::join!(running, waiting, async {
            let refused = p.hash(Secret::new("c")).await;
            let _ = release.send(());
            refused
        });
        assert!(running.is_ok() && waiting.is_ok());
        assert!(matches!(refused, Err(PasswordError::Busy)));
    }

    #[tokio::test]
    async fn cancelled_callers_keep_their_core_until_the_hash_is_done() {
        let p = Passwords::new(cheap().params(), 1, 0).unwrap();
        // A job that runs until released, so the caller surely gives up while it runs.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            p.run(move || {
                let _ = held.recv();
                Ok(())
            }),
        )
        .await;
        assert!(first.is_err(), "the caller gave up");
        // The abandoned job still holds the only core: the next caller is refused.
        assert!(matches!(
            p.hash(Secret::new("b")).await,
            Err(PasswordError::Busy)
        ));
        let _ = release.send(());
        // Once it finishes, the core is free again.
        let mut freed = false;
        for _ in 0..200 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            if p.hash(Secret::new("c")).await.is_ok() {
                freed = true;
                break;
            }
        }
        assert!(freed);
    }
}
