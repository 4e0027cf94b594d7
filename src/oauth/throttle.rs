//! Brute-force throttling of password checks (RFC 6749 §4.3.2: the server MUST protect the
//! password endpoint against brute force; the login page shares it).
//!
//! Failed logins are counted per key over a sliding window, and past a number of free
//! failures each further attempt must wait an exponentially growing delay, capped. A
//! throttled attempt is refused at once, without checking the password (no hashing spent).
//! The keys, and why:
//!
//! - **username + client address**: the tight one (5 free failures, delay doubling up to the
//!   cap). An attacker hammering a username from their address is slowed down, while the
//!   real user, logging in from another address, is not affected at all: nobody can lock a
//!   user out by failing on purpose (the trade-off Keycloak documents for its lockout).
//! - **client address**: password spraying across many usernames from one address (20 free).
//! - **username**: a distributed attack on one account from many addresses (50 free, and a
//!   delay capped low, so the real user is slowed by seconds at most).
//!
//! An IPv6 address counts by its /64 prefix (one host usually has the whole prefix), an
//! IPv4-mapped IPv6 address as its IPv4 address.
//!
//! **A burst learns no more than a sequence.** [`Throttle::begin`] counts an attempt as
//! under way when it starts (refusing it at once if the counters already say so, or if
//! [`MAX_PENDING`] attempts of one counter are under way), and the [`Attempt`] is settled
//! when the password check ends. Its outcome — right or wrong — is told only if, at that
//! moment, the counters allow one more attempt, exactly as they would for the next guess of
//! a sequence; otherwise the answer is "throttled", whatever the password was, and nothing
//! is counted. So of forty concurrent wrong guesses, five are answered "wrong" and
//! thirty-five "throttled", as forty in a row would be; a right guess among the withheld
//! ones is withheld too. Concurrent *correct* logins (a service account, a crowd behind one
//! NAT) never wait for each other. A withheld answer comes no sooner than a failed one, so
//! its timing tells nothing either. An attempt dropped unsettled (its client went away
//! mid-check) counts as a failure.
//!
//! **Memory is bounded by keys, not bytes.** A key is a 16-byte keyed hash (HMAC-SHA256
//! under a key derived from the server secret) of its kind, address and username, whatever
//! their length; at most [`MAX_KEYS`] keys are kept. Past that, expired keys go first, then
//! the oldest, down to nine tenths of the bound — never all, so a flood of made-up
//! usernames cannot wipe the counters protecting a user under attack (whose key the attack
//! itself keeps fresh). Successful logins leave nothing behind. Keys do not depend on
//! whether the user exists, so throttling reveals nothing either.
//!
//! **Across replicas.** On PostgreSQL the failures are also written to the shared
//! `login_failures` table (one small write per counted failure; a successful login writes
//! nothing), and an attempt that this replica's counters let through reads them: N replicas
//! share one budget. A success therefore clears the username + address counter only on the
//! replica that saw it; elsewhere it expires with the window.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::store::{Store, StoreError};

/// How much failing is allowed.
#[derive(Clone, Copy, Debug)]
pub struct ThrottlePolicy {
    /// Failures per username + address before delays start.
    pub free_failures: u32,
    /// The longest delay, in seconds.
    pub max_delay_secs: i64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            free_failures: 5,
            max_delay_secs: 60,
        }
    }
}

/// Failures are forgotten this long after the last one.
pub const WINDOW_SECS: i64 = 15 * 60;
/// The most counters kept in memory.
pub const MAX_KEYS: usize = 100_000;
/// What one slot of the counters' table costs: a 16-byte key, 16 bytes of counts, and the
/// table's control byte.
pub const ENTRY_BYTES: usize = 16 + 16 + 1;
/// The most attempts of one counter that may be under way at once: beyond, "busy" (503).
/// Bounds the hashing a burst can cause before its answers are withheld (as much as the
/// default hashing queue of two cores holds, so that a crowd behind one address is refused
/// by the queue, not by this).
pub const MAX_PENDING: u32 = 256;

/// A counter's key: a keyed hash, the same length whatever the username's.
type Key = [u8; 16];

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Counted failures within the window.
    failures: u32,
    /// Attempts started and not settled yet.
    pending: u32,
    /// When the last failure was counted.
    last: i64,
}

impl Entry {
    /// Counts nothing: may be dropped.
    fn is_idle(&self, now: i64) -> bool {
        self.pending == 0 && (self.failures == 0 || now - self.last >= WINDOW_SECS)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Username,
    UsernameAddress,
    Address,
}

#[derive(Clone, Copy)]
struct Rule {
    free: u32,
    max_delay: i64,
}

/// Why an attempt may not go ahead.
#[derive(Debug)]
pub enum Refused {
    /// Throttled: retry after this many seconds.
    Wait(i64),
    /// Too many attempts of one counter under way: retry in a moment.
    Busy,
    /// The shared counters could not be read.
    Store(StoreError),
}

/// What may be told of a settled attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its outcome, right or wrong.
    Tell,
    /// Nothing: it is throttled, retry after this many seconds.
    Withhold(i64),
}

/// Shared counts read at the start of an attempt: key (hex) → (failures, last failure).
type SharedCounts = HashMap<String, (i64, i64)>;

/// The counters of one server.
pub struct Throttle {
    policy: ThrottlePolicy,
    hash_key: aws_lc_rs::hmac::Key,
    entries: Mutex<HashMap<Key, Entry>>,
    /// The database, when failures are shared between replicas (PostgreSQL).
    shared: Option<Store>,
}

impl Throttle {
    /// `key` keys the counters' hashes (derive it from the server secret, so replicas sharing
    /// counters agree); `shared` is the store when counters are shared between replicas.
    pub fn new(policy: ThrottlePolicy, key: &[u8; 32], shared: Option<Store>) -> Self {
        Self {
            policy,
            hash_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
            entries: Mutex::new(HashMap::new()),
            shared,
        }
    }

    fn rule(&self, kind: Kind) -> Rule {
        let tight = Rule {
            free: self.policy.free_failures,
            max_delay: self.policy.max_delay_secs,
        };
        match kind {
            Kind::UsernameAddress => tight,
            Kind::Address => Rule {
                free: tight.free.saturating_mul(4),
                ..tight
            },
            Kind::Username => Rule {
                free: tight.free.saturating_mul(10),
                max_delay: tight.max_delay.min(5),
            },
        }
    }

    fn key(&self, kind: Kind, username: Option<&str>, ip: Option<IpAddr>) -> Key {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.hash_key);
        ctx.update(&[kind as u8]);
        match ip.map(normalize) {
            Some(IpAddr::V4(v4)) => ctx.update(&v4.octets()),
            // The /64 prefix.
            Some(IpAddr::V6(v6)) => ctx.update(&v6.octets()[..8]),
            None => {}
        }
        ctx.update(&[0xff]);
        if let Some(username) = username {
            ctx.update(username.as_bytes());
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(&ctx.sign().as_ref()[..16]);
        key
    }

    fn keys(&self, username: &str, ip: Option<IpAddr>) -> Vec<(Key, Kind)> {
        let mut keys = vec![(
            self.key(Kind::Username, Some(username), None),
            Kind::Username,
        )];
        if ip.is_some() {
            keys.push((
                self.key(Kind::UsernameAddress, Some(username), ip),
                Kind::UsernameAddress,
            ));
            keys.push((self.key(Kind::Address, None, ip), Kind::Address));
        }
        // One order everywhere, so concurrent writes of the shared rows never deadlock.
        keys.sort_by_key(|(key, _)| *key);
        keys
    }

    /// Starts a password check for `username` from `ip`: refused with the seconds to wait
    /// when the counters say so (this replica's first, then the shared ones), `Busy` when
    /// too many attempts of a counter are under way; else counted as under way.
    pub async fn begin(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Attempt<'_>, Refused> {
        let keys = self.keys(username, ip);
        let none = SharedCounts::new();
        // This replica's counters never say less than the shared ones: when they refuse,
        // the database need not be asked.
        if let Decision::Refuse(wait) = self.decide(&self.lock(), &keys, &none, now) {
            return Err(Refused::Wait(wait));
        }
        let shared = match &self.shared {
            Some(store) => {
                let names: Vec<String> = keys.iter().map(|(k, _)| hex(k)).collect();
                store
                    .login_failures(&names, now - WINDOW_SECS)
                    .await
                    .map_err(Refused::Store)?
            }
            None => none,
        };
        let mut entries = self.lock();
        if let Decision::Refuse(wait) = self.decide(&entries, &keys, &shared, now) {
            return Err(Refused::Wait(wait));
        }
        let crowded = keys
            .iter()
            .any(|(key, _)| entries.get(key).is_some_and(|e| e.pending >= MAX_PENDING));
        if crowded {
            return Err(Refused::Busy);
        }
        if entries.len() + keys.len() > MAX_KEYS || entries.capacity() > table_capacity() {
            evict(&mut entries, now);
        }
        for (key, _) in &keys {
            let e = entries.entry(*key).or_default();
            e.pending = e.pending.saturating_add(1);
        }
        drop(entries);
        Ok(Attempt {
            throttle: self,
            keys,
            shared,
            started: now,
            settled: false,
        })
    }

    /// Whether one more attempt may be told its outcome now: refused while a counter's
    /// failures (this replica's, or the shared ones if more) are past its free ones and
    /// their delay has not passed since the last.
    fn decide(
        &self,
        entries: &HashMap<Key, Entry>,
        keys: &[(Key, Kind)],
        shared: &SharedCounts,
        now: i64,
    ) -> Decision {
        let wait = keys
            .iter()
            .map(|(key, kind)| {
                let local = entries.get(key).copied().unwrap_or_default();
                let local = if now - local.last >= WINDOW_SECS {
                    (0, local.last)
                } else {
                    (local.failures, local.last)
                };
                let (db_failures, db_last) = if shared.is_empty() {
                    (0, 0)
                } else {
                    shared.get(&hex(key)).copied().unwrap_or((0, 0))
                };
                let failures = local.0.max(u32::try_from(db_failures).unwrap_or(u32::MAX));
                delay(self.rule(*kind), failures, local.1.max(db_last), now)
            })
            .max()
            .unwrap_or(0);
        if wait > 0 {
            Decision::Refuse(wait)
        } else {
            Decision::Go
        }
    }

    /// Settles an attempt under way: whether its outcome may be told (see the module
    /// doc), and, when it may and was a failure, counts it. True when a failure was counted.
    fn settle(&self, attempt: &Attempt<'_>, outcome: Outcome, now: i64) -> (Verdict, bool) {
        let mut entries = self.lock();
        for (key, _) in &attempt.keys {
            if let Some(e) = entries.get_mut(key) {
                e.pending = e.pending.saturating_sub(1);
            }
        }
        let verdict = match outcome {
            Outcome::NotChecked => Verdict::Tell,
            _ => match self.decide(&entries, &attempt.keys, &attempt.shared, now) {
                Decision::Refuse(wait) => Verdict::Withhold(wait),
                Decision::Go => Verdict::Tell,
            },
        };
        let counted = verdict == Verdict::Tell && outcome == Outcome::Failed;
        for (key, kind) in &attempt.keys {
            let Some(e) = entries.get_mut(key) else {
                continue;
            };
            if counted {
                if now - e.last >= WINDOW_SECS {
                    e.failures = 0;
                }
                e.failures = e.failures.saturating_add(1);
                e.last = e.last.max(now);
            } else if verdict == Verdict::Tell
                && outcome == Outcome::Succeeded
                && *kind == Kind::UsernameAddress
            {
                e.failures = 0;
            }
            if e.is_idle(now) {
                entries.remove(key);
            }
        }
        (verdict, counted)
    }

    /// Counters held in memory now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the counters' table takes in memory now.
    pub fn memory_bytes(&self) -> usize {
        table_bytes(self.lock().capacity())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Go,
    Refuse(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Failed,
    Succeeded,
    NotChecked,
}

/// A password check under way: settle it with [`Attempt::failed`], [`Attempt::succeeded`]
/// or [`Attempt::not_checked`]; dropped unsettled, it counts as a failure.
#[must_use = "an attempt counts as a failure unless it is settled"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    keys: Vec<(Key, Kind)>,
    /// The shared counts read when it started.
    shared: SharedCounts,
    started: i64,
    settled: bool,
}

impl Attempt<'_> {
    /// The password was wrong (or the user unknown, or disabled). Told — and counted — only
    /// if the counters allow one more attempt now; else withheld.
    pub async fn failed(mut self, now: i64) -> Verdict {
        self.settled = true;
        let (verdict, counted) = self.throttle.settle(&self, Outcome::Failed, now);
        if counted {
            self.share_failure(now).await;
        }
        verdict
    }

    /// The password was right. Told only if the counters allow one more attempt now (then
    /// the username + address counter is cleared, the others keep counting); else withheld.
    pub fn succeeded(mut self, now: i64) -> Verdict {
        self.settled = true;
        self.throttle.settle(&self, Outcome::Succeeded, now).0
    }

    /// The password could not be checked (the hashing queue was full, the database did not
    /// answer): the attempt is taken back, and nothing else changes.
    pub fn not_checked(mut self) {
        self.settled = true;
        let _ = self
            .throttle
            .settle(&self, Outcome::NotChecked, self.started);
    }

    async fn share_failure(&self, now: i64) {
        if let Some(store) = &self.throttle.shared {
            let names: Vec<String> = self.keys.iter().map(|(k, _)| hex(k)).collect();
            if let Err(e) = store.record_login_failure(&names, now, WINDOW_SECS).await {
                tracing::warn!(error = %e, "could not share a failed login with the other replicas");
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // The client went away while its password was being checked: the outcome is
        // unknown, so it counts as a failure would — shared too, from a task of its own.
        let (_, counted) = self.throttle.settle(self, Outcome::Failed, self.started);
        if let (true, Some(store), Ok(runtime)) = (
            counted,
            self.throttle.shared.clone(),
            tokio::runtime::Handle::try_current(),
        ) {
            let names: Vec<String> = self.keys.iter().map(|(k, _)| hex(k)).collect();
            let now = self.started;
            runtime.spawn(async move {
                if let Err(e) = store.record_login_failure(&names, now, WINDOW_SECS).await {
                    tracing::warn!(error = %e, "could not share a failed login with the other replicas");
                }
            });
        }
    }
}

/// The wait, in seconds, that `failures` impose on the next attempt: none below the rule's
/// free failures; then 2 s, 4 s, 8 s … after the last, capped (at least 2 s, since time
/// here has whole seconds).
fn delay(rule: Rule, failures: u32, last: i64, now: i64) -> i64 {
    if failures < rule.free || now - last >= WINDOW_SECS {
        return 0;
    }
    let over = (failures - rule.free).min(30);
    let delay = (2i64 << over).min(rule.max_delay);
    (last + delay - now).max(0)
}

/// Makes room for new keys: drops idle counters, then, if that was not enough, the oldest
/// ones down to nine tenths of [`MAX_KEYS`]; then rebuilds the table at its size (removals
/// leave tombstones, which would make it grow). Counters of attempts under way stay.
fn evict(entries: &mut HashMap<Key, Entry>, now: i64) {
    entries.retain(|_, e| !e.is_idle(now));
    evict_oldest(entries);
    entries.shrink_to(MAX_KEYS);
}

fn evict_oldest(entries: &mut HashMap<Key, Entry>) {
    let target = MAX_KEYS / 10 * 9;
    if entries.len() <= target {
        return;
    }
    let mut lasts: Vec<i64> = entries
        .values()
        .filter(|e| e.pending == 0)
        .map(|e| e.last)
        .collect();
    let excess = (entries.len() - target).min(lasts.len());
    if excess == 0 {
        return;
    }
    let (_, cutoff, _) = lasts.select_nth_unstable(excess - 1);
    let cutoff = *cutoff;
    // Older than the cutoff first, then as many of those at the cutoff as still needed.
    let older = entries
        .values()
        .filter(|e| e.pending == 0 && e.last < cutoff)
        .count();
    let mut at_cutoff = excess - older;
    entries.retain(|_, e| {
        if e.pending > 0 || e.last > cutoff {
            return true;
        }
        if e.last < cutoff {
            return false;
        }
        if at_cutoff > 0 {
            at_cutoff -= 1;
            return false;
        }
        true
    });
}

/// The capacity of a table built for [`MAX_KEYS`] counters.
fn table_capacity() -> usize {
    static CAPACITY: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CAPACITY.get_or_init(|| HashMap::<Key, Entry>::with_capacity(MAX_KEYS).capacity())
}

/// The bytes of a table of `capacity`: its buckets are the next power of two above
/// capacity × 8/7 (the table keeps an eighth free).
fn table_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    (capacity * 8 / 7).next_power_of_two() * ENTRY_BYTES
}

/// The most memory the counters take: a table for [`MAX_KEYS`], twice that while it grows.
pub fn max_memory_bytes() -> usize {
    2 * table_bytes(table_capacity())
}

/// An IPv4-mapped IPv6 address is its IPv4 address.
fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn hex(key: &Key) -> String {
    crate::tokens::opaque::hex(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn throttle(free_failures: u32, max_delay_secs: i64) -> Throttle {
        let policy = ThrottlePolicy {
            free_failures,
            max_delay_secs,
        };
        Throttle::new(policy, &[7; 32], None)
    }

    /// One whole attempt that fails: `Ok` when its answer was told, else the wait.
    async fn fail(t: &Throttle, user: &str, from: Option<IpAddr>, now: i64) -> Result<(), i64> {
        match t.begin(user, from, now).await {
            Ok(attempt) => match attempt.failed(now).await {
                Verdict::Tell => Ok(()),
                Verdict::Withhold(wait) => Err(wait),
            },
            Err(Refused::Wait(w)) => Err(w),
            Err(Refused::Busy) => Err(-1),
            Err(Refused::Store(e)) => panic!("{e}"),
        }
    }

    /// One whole attempt with the right password: `Ok` when its answer was told.
    async fn check(t: &Throttle, user: &str, from: Option<IpAddr>, now: i64) -> Result<(), i64> {
        match t.begin(user, from, now).await {
            Ok(attempt) => match attempt.succeeded(now) {
                Verdict::Tell => Ok(()),
                Verdict::Withhold(wait) => Err(wait),
            },
            Err(Refused::Wait(w)) => Err(w),
            Err(Refused::Busy) => Err(-1),
            Err(Refused::Store(e)) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn delays_start_after_the_free_failures_and_double_up_to_the_cap() {
        let t = throttle(3, 8);
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            fail(&t, "ada", a, 100).await.unwrap();
        }
        assert_eq!(fail(&t, "ada", a, 100).await, Err(2));
        assert_eq!(fail(&t, "ada", a, 101).await, Err(1));
        fail(&t, "ada", a, 102).await.unwrap();
        assert_eq!(fail(&t, "ada", a, 102).await, Err(4));
        for n in 0..10 {
            let _ = fail(&t, "ada", a, 200 + 10 * n).await;
        }
        assert_eq!(check(&t, "ada", a, 290).await, Err(8), "capped");
        // Forgotten after the window.
        assert!(check(&t, "ada", a, 290 + WINDOW_SECS).await.is_ok());
    }

    /// Forty guesses at once, each taking 10 ms to check: (answers told, refused or
    /// withheld).
    async fn burst(t: &Throttle, from: Option<IpAddr>, now: i64, right: bool) -> (usize, usize) {
        let guesses = (0..40).map(|_| async {
            let attempt = match t.begin("ada", from, now).await {
                Ok(attempt) => attempt,
                Err(Refused::Wait(_) | Refused::Busy) => return (0, 1),
                Err(Refused::Store(e)) => panic!("{e}"),
            };
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let verdict = if right {
                attempt.succeeded(now)
            } else {
                attempt.failed(now).await
            };
            match verdict {
                Verdict::Tell => (1, 0),
                Verdict::Withhold(_) => (0, 1),
            }
        });
        futures_util::future::join_all(guesses)
            .await
            .into_iter()
            .fold((0, 0), |(c, r), (dc, dr)| (c + dc, r + dr))
    }

    #[tokio::test]
    async fn a_burst_gets_no_more_checks_than_a_sequence() {
        let t = throttle(5, 60);
        let a = ip("192.0.2.1");
        assert_eq!(
            burst(&t, a, 100, false).await,
            (5, 35),
            "the free failures, no more"
        );
        // The next burst, once the delay has passed, gets one answer, as a sequence would.
        assert_eq!(burst(&t, a, 102, false).await, (1, 39));
        assert_eq!(burst(&t, a, 103, false).await, (0, 40), "the delay doubled");
    }

    #[tokio::test]
    async fn concurrent_correct_logins_all_go_ahead() {
        let t = throttle(5, 60);
        assert_eq!(burst(&t, ip("192.0.2.1"), 100, true).await, (40, 0));
        assert!(t.is_empty(), "successes leave nothing behind");
    }

    #[tokio::test]
    async fn a_right_guess_among_withheld_ones_is_withheld_too() {
        let t = throttle(5, 60);
        let a = ip("192.0.2.1");
        let attempts: Vec<_> =
            futures_util::future::join_all((0..7).map(|_| t.begin("ada", a, 100)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        let mut attempts = attempts.into_iter();
        for attempt in attempts.by_ref().take(5) {
            assert_eq!(attempt.failed(100).await, Verdict::Tell);
        }
        let right = attempts.next().unwrap();
        assert_eq!(right.succeeded(100), Verdict::Withhold(2));
        assert_eq!(
            attempts.next().unwrap().failed(100).await,
            Verdict::Withhold(2)
        );
        assert!(
            check(&t, "ada", a, 100).await.is_err(),
            "nothing was cleared"
        );
    }

    #[tokio::test]
    async fn too_many_attempts_under_way_are_busy_and_nothing_leaks() {
        let t = throttle(5, 60);
        let a = ip("192.0.2.1");
        let mut under_way = Vec::new();
        for _ in 0..MAX_PENDING {
            under_way.push(t.begin("ada", a, 100).await.unwrap());
        }
        assert!(matches!(t.begin("ada", a, 100).await, Err(Refused::Busy)));
        for attempt in under_way {
            attempt.not_checked();
        }
        assert!(t.is_empty(), "nothing left behind");
        assert!(check(&t, "ada", a, 100).await.is_ok());
    }

    #[tokio::test]
    async fn an_abandoned_attempt_counts_and_a_success_is_taken_back() {
        let t = throttle(2, 60);
        let a = ip("192.0.2.1");
        drop(t.begin("ada", a, 100).await.unwrap());
        check(&t, "ada", a, 100).await.unwrap();
        // The success cleared the username + address counter, the abandoned one too.
        fail(&t, "ada", a, 100).await.unwrap();
        drop(t.begin("ada", a, 100).await.unwrap());
        assert_eq!(check(&t, "ada", a, 100).await, Err(2));
    }

    #[tokio::test]
    async fn an_attacker_elsewhere_does_not_lock_the_user_out() {
        let t = throttle(5, 60);
        for _ in 0..10 {
            let _ = fail(&t, "ada", ip("203.0.113.9"), 100).await;
        }
        assert!(check(&t, "ada", ip("203.0.113.9"), 100).await.is_err());
        assert!(
            check(&t, "ada", ip("192.0.2.1"), 100).await.is_ok(),
            "the real user's address is free"
        );
        // Even a distributed attack slows the user by seconds at most.
        for n in 0..200 {
            let _ = fail(&t, "ada", ip(&format!("198.51.100.{}", n % 250)), 100).await;
        }
        assert!(check(&t, "ada", ip("192.0.2.1"), 100).await.unwrap_err() <= 5);
    }

    #[tokio::test]
    async fn success_clears_the_user_and_address_counter() {
        let t = throttle(5, 60);
        for _ in 0..6 {
            let _ = fail(&t, "ada", ip("192.0.2.1"), 100).await;
        }
        assert!(check(&t, "ada", ip("192.0.2.1"), 100).await.is_err());
        check(&t, "ada", ip("192.0.2.1"), 102).await.unwrap();
        assert!(check(&t, "ada", ip("192.0.2.1"), 102).await.is_ok());
    }

    #[tokio::test]
    async fn an_ipv6_host_counts_by_its_prefix() {
        let t = throttle(2, 60);
        fail(&t, "ada", ip("2001:db8::1"), 100).await.unwrap();
        fail(&t, "ada", ip("2001:db8::2:3"), 100).await.unwrap();
        assert!(check(&t, "ada", ip("2001:db8::ffff"), 100).await.is_err());
        assert!(check(&t, "ada", ip("2001:db8:0:1::1"), 100).await.is_ok());
        // IPv4-mapped is the IPv4 address.
        fail(&t, "bob", ip("192.0.2.7"), 100).await.unwrap();
        fail(&t, "bob", ip("::ffff:192.0.2.7"), 100).await.unwrap();
        assert!(check(&t, "bob", ip("192.0.2.7"), 100).await.is_err());
    }

    #[tokio::test]
    async fn memory_is_bounded_by_keys_and_a_flood_never_wipes_the_counter_under_attack() {
        let t = throttle(5, 60);
        let target = ip("203.0.113.9");
        // Usernames of 60 KB cost a key of 16 bytes.
        let long = "x".repeat(60_000);
        fail(&t, &long, ip("198.51.100.1"), 100).await.unwrap();
        assert!(t.memory_bytes() < 4096);
        // The attack on ada gets throttled.
        for _ in 0..6 {
            let _ = fail(&t, "ada", target, 100).await;
        }
        assert!(check(&t, "ada", target, 101).await.is_err());
        // A flood of made-up usernames from many addresses, at the rate the hashing threads
        // allow (about 135 failed logins a second on two cores), for longer than the window,
        // while the attacker keeps trying ada whenever the delay allows.
        let flood = MAX_KEYS * 3 / 2;
        let mut now = 101;
        let mut checked_on_ada = 0;
        for n in 0..flood {
            now = 101 + (n / 135) as i64;
            let from = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n as u32));
            fail(&t, &format!("made-up-{n}"), Some(from), now)
                .await
                .unwrap();
            checked_on_ada += usize::from(fail(&t, "ada", target, now).await.is_ok());
            assert!(t.len() <= MAX_KEYS);
        }
        // Kept, the counter let the attacker have one guess a minute (the cap), after five
        // within the first minute (2 s, 4 s, … 32 s). Evicted — which, at this rate, would
        // happen every half minute or so — it would have given five free guesses each time.
        let minutes = (now - 101) as usize / 60;
        assert!(
            checked_on_ada <= minutes + 6,
            "{checked_on_ada} guesses on ada in {minutes} minutes"
        );
        // 100 000 counters fit in a few MiB.
        assert!(
            t.memory_bytes() <= max_memory_bytes(),
            "{}",
            t.memory_bytes()
        );
        assert!(max_memory_bytes() < 10 << 20, "{}", max_memory_bytes());
    }
}
