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
//! **A guess counts when it starts.** [`Throttle::begin`] counts the attempt as under way
//! (pending) in the step that checks it, and the [`Attempt`] it returns is settled when the
//! password check ends: a failure becomes a counted failure, a success is taken back. An
//! attempt goes ahead only if it would have been allowed even if every attempt under way
//! fails; otherwise, while some are under way, it waits for them to settle and looks again
//! (at most [`MAX_WAITING`] waiting per key, for at most [`WAIT_LIMIT`]; beyond either,
//! "busy": 503). So a burst of concurrent guesses gets exactly the password checks the same
//! guesses one after the other would — five, then one per delay — while concurrent correct
//! logins (a service account, a crowd behind one NAT) only queue briefly. An attempt
//! dropped unsettled (its client went away mid-check) counts as a failure.
//!
//! **Memory is bounded by keys, not bytes.** A key is a 16-byte keyed hash (HMAC-SHA256
//! under a key derived from the server secret) of its kind, address and username, whatever
//! their length; at most [`MAX_KEYS`] keys are kept. Past that, expired keys go first, then
//! the oldest, down to nine tenths of the bound — never all, so a flood of made-up
//! usernames cannot wipe the counters protecting a user under attack (whose key the attack
//! itself keeps fresh). Keys do not depend on whether the user exists, so throttling
//! reveals nothing either.
//!
//! **Across replicas.** On PostgreSQL the failures are also written to the shared
//! `login_failures` table (one small write per *failed* login; a successful one writes
//! nothing unless it clears a counter that had failures), and every check reads them: N
//! replicas share one budget. Attempts in flight are counted by the replica running them.

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
/// The most counters kept in memory (each [`ENTRY_BYTES`]).
pub const MAX_KEYS: usize = 100_000;
/// What one counter costs in the map: a 16-byte key, a 24-byte count, a control byte.
pub const ENTRY_BYTES: usize = 16 + 24 + 1;
/// The most attempts that may wait on one counter for others to settle.
pub const MAX_WAITING: u32 = 64;
/// The longest an attempt waits for others to settle.
pub const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A counter's key: a keyed hash, the same length whatever the username's.
type Key = [u8; 16];

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Settled failures within the window.
    failures: u32,
    /// Attempts started and not settled yet.
    pending: u32,
    /// Attempts waiting for those to settle.
    waiting: u32,
    /// When the last failure was settled.
    last: i64,
}

impl Entry {
    /// Counts nothing: may be dropped.
    fn is_idle(&self, now: i64) -> bool {
        self.pending == 0
            && self.waiting == 0
            && (self.failures == 0 || now - self.last >= WINDOW_SECS)
    }
}

/// What a counter says of the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Go,
    /// Wait for attempts under way to settle, then look again.
    Wait,
    /// Refused for this many seconds.
    Refuse(i64),
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
    /// Too many attempts under way for one counter: retry in a moment.
    Busy,
    /// The shared counters could not be read.
    Store(StoreError),
}

/// The counters of one server.
pub struct Throttle {
    policy: ThrottlePolicy,
    hash_key: aws_lc_rs::hmac::Key,
    entries: Mutex<HashMap<Key, Entry>>,
    /// Woken whenever an attempt settles.
    settled: tokio::sync::Notify,
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
            settled: tokio::sync::Notify::new(),
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

    /// Starts a password check for `username` from `ip`: goes ahead (counted as under way)
    /// when it would have been allowed even if every attempt under way fails; waits for
    /// those to settle when it depends on them; refused with the seconds to wait when the
    /// failures say so, or `Busy` when too many wait.
    pub async fn begin(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Attempt<'_>, Refused> {
        let keys = self.keys(username, ip);
        let names: Vec<String> = keys.iter().map(|(k, _)| hex(k)).collect();
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        // Read once: an attempt that waits looks again at this replica's counters only
        // (other replicas' failures of the next two seconds are not awaited).
        let shared = match &self.shared {
            Some(store) => store
                .login_failures(&names, now - WINDOW_SECS)
                .await
                .map_err(Refused::Store)?,
            None => HashMap::new(),
        };
        let mut waiting = false;
        loop {
            // Registered before looking, so that a settle in between is not missed.
            let settled = self.settled.notified();
            match self.try_start(&keys, &shared, waiting, now) {
                Decision::Go => {
                    let clears_shared = keys.iter().zip(&names).any(|((_, kind), name)| {
                        *kind == Kind::UsernameAddress && shared.get(name).is_some_and(|c| c.0 > 0)
                    });
                    return Ok(Attempt {
                        throttle: self,
                        keys,
                        clears_shared,
                        started: now,
                        settled: false,
                    });
                }
                Decision::Refuse(wait) => {
                    self.stop_waiting(&keys, waiting, now);
                    return Err(Refused::Wait(wait));
                }
                Decision::Wait if !waiting && !self.start_waiting(&keys) => {
                    return Err(Refused::Busy);
                }
                Decision::Wait => {
                    waiting = true;
                    if tokio::time::timeout_at(deadline, settled).await.is_err() {
                        self.stop_waiting(&keys, true, now);
                        return Err(Refused::Busy);
                    }
                }
            }
        }
    }

    /// Decides, and on `Go` counts the attempt as under way (and no longer waiting), in one
    /// step under the lock.
    fn try_start(
        &self,
        keys: &[(Key, Kind)],
        shared: &HashMap<String, (i64, i64)>,
        waiting: bool,
        now: i64,
    ) -> Decision {
        let mut entries = self.lock();
        let decision = self.decide(&entries, keys, shared, now);
        if decision == Decision::Go {
            if entries.len() + keys.len() > MAX_KEYS || entries.capacity() > table_capacity() {
                evict(&mut entries, now);
            }
            for (key, _) in keys {
                let e = entries.entry(*key).or_default();
                if now - e.last >= WINDOW_SECS {
                    e.failures = 0;
                }
                e.pending = e.pending.saturating_add(1);
                if waiting {
                    e.waiting = e.waiting.saturating_sub(1);
                }
            }
        }
        decision
    }

    /// Registers an attempt as waiting on its counters; false when one has too many waiting.
    fn start_waiting(&self, keys: &[(Key, Kind)]) -> bool {
        let mut entries = self.lock();
        let crowded = keys
            .iter()
            .any(|(key, _)| entries.get(key).is_some_and(|e| e.waiting >= MAX_WAITING));
        if !crowded {
            for (key, _) in keys {
                let e = entries.entry(*key).or_default();
                e.waiting = e.waiting.saturating_add(1);
            }
        }
        !crowded
    }

    /// What the counters of `keys` say of one more attempt now.
    fn decide(
        &self,
        entries: &HashMap<Key, Entry>,
        keys: &[(Key, Kind)],
        shared: &HashMap<String, (i64, i64)>,
        now: i64,
    ) -> Decision {
        let mut decision = Decision::Go;
        for (key, kind) in keys {
            let rule = self.rule(*kind);
            let local = entries.get(key).copied().unwrap_or_default();
            let local_failures = if now - local.last >= WINDOW_SECS {
                0
            } else {
                local.failures
            };
            let (db_failures, db_last) = shared.get(&hex(key)).copied().unwrap_or((0, 0));
            let failures = local_failures.max(u32::try_from(db_failures).unwrap_or(u32::MAX));
            let last = local.last.max(db_last);
            let this = if failures.saturating_add(local.pending) < rule.free {
                // Allowed even if every attempt under way fails.
                Decision::Go
            } else if local.pending > 0 {
                Decision::Wait
            } else {
                match delay(rule, failures, last, now) {
                    0 => Decision::Go,
                    wait => Decision::Refuse(wait),
                }
            };
            decision = match (decision, this) {
                (Decision::Refuse(a), Decision::Refuse(b)) => Decision::Refuse(a.max(b)),
                (Decision::Refuse(a), _) | (_, Decision::Refuse(a)) => Decision::Refuse(a),
                (Decision::Wait, _) | (_, Decision::Wait) => Decision::Wait,
                _ => Decision::Go,
            };
        }
        decision
    }

    fn stop_waiting(&self, keys: &[(Key, Kind)], waiting: bool, now: i64) {
        if !waiting {
            return;
        }
        let mut entries = self.lock();
        for (key, _) in keys {
            if let Some(e) = entries.get_mut(key) {
                e.waiting = e.waiting.saturating_sub(1);
                if e.is_idle(now) {
                    entries.remove(key);
                }
            }
        }
    }

    /// Counters held in memory now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the counters take in memory, table included (an upper bound).
    pub fn memory_bytes(&self) -> usize {
        self.lock().capacity() * ENTRY_BYTES
    }

    fn settle_failed(&self, keys: &[(Key, Kind)], now: i64) {
        {
            let mut entries = self.lock();
            for (key, _) in keys {
                let e = entries.entry(*key).or_default();
                e.pending = e.pending.saturating_sub(1);
                if now - e.last >= WINDOW_SECS {
                    e.failures = 0;
                }
                e.failures = e.failures.saturating_add(1);
                e.last = e.last.max(now);
            }
        }
        self.settled.notify_waiters();
    }

    /// Takes attempts under way back (not failures), clearing the username + address
    /// counter when `success`; counters left idle are dropped.
    fn settle_taken_back(&self, keys: &[(Key, Kind)], success: bool, now: i64) {
        {
            let mut entries = self.lock();
            for (key, kind) in keys {
                if let Some(e) = entries.get_mut(key) {
                    e.pending = e.pending.saturating_sub(1);
                    if success && *kind == Kind::UsernameAddress {
                        e.failures = 0;
                    }
                    if e.is_idle(now) {
                        entries.remove(key);
                    }
                }
            }
        }
        self.settled.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A password check under way: settle it with [`Attempt::failed`] or
/// [`Attempt::succeeded`]; dropped unsettled, it counts as a failure.
#[must_use = "an attempt counts as a failure unless it is settled"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    keys: Vec<(Key, Kind)>,
    /// Whether the shared username + address counter had failures (a success clears it).
    clears_shared: bool,
    started: i64,
    settled: bool,
}

impl Attempt<'_> {
    /// The password was wrong (or the user unknown, or disabled): the attempt stays counted.
    pub async fn failed(mut self, now: i64) {
        self.settled = true;
        self.throttle.settle_failed(&self.keys, now);
        if let Some(store) = &self.throttle.shared {
            let names: Vec<String> = self.keys.iter().map(|(k, _)| hex(k)).collect();
            if let Err(e) = store.record_login_failure(&names, now, WINDOW_SECS).await {
                tracing::warn!(error = %e, "could not share a failed login with the other replicas");
            }
        }
    }

    /// The password could not be checked (the hashing queue was full, the database did not
    /// answer): the attempt is taken back, and nothing else changes.
    pub fn not_checked(mut self) {
        self.settled = true;
        self.throttle
            .settle_taken_back(&self.keys, false, self.started);
    }

    /// The password was right: the attempt is taken back, and the username + address
    /// counter is cleared (the others keep counting).
    pub async fn succeeded(mut self) {
        self.settled = true;
        self.throttle
            .settle_taken_back(&self.keys, true, self.started);
        let user_address = self
            .keys
            .iter()
            .find(|(_, kind)| *kind == Kind::UsernameAddress);
        if let (Some(store), Some((key, _)), true) =
            (&self.throttle.shared, user_address, self.clears_shared)
            && let Err(e) = store.clear_login_failures(&hex(key)).await
        {
            tracing::warn!(error = %e, "could not clear a shared login counter");
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            // The client went away while its password was being checked: the outcome is
            // unknown, so it counts as a failure would. (Locally: the shared counters learn
            // only of settled failures.)
            self.throttle.settle_failed(&self.keys, self.started);
        }
    }
}

/// The wait, in seconds, that `failures` (including attempts under way) impose on the next
/// attempt: none below the rule's free failures; then 2 s, 4 s, 8 s … after the last,
/// capped (at least 2 s, since time here has whole seconds).
fn delay(rule: Rule, failures: u32, last: i64, now: i64) -> i64 {
    if failures < rule.free || now - last >= WINDOW_SECS {
        return 0;
    }
    let over = (failures - rule.free).min(30);
    let delay = (2i64 << over).min(rule.max_delay);
    (last + delay - now).max(0)
}

/// Makes room for new keys: drops expired counters, then, if that was not enough, the
/// oldest ones down to nine tenths of [`MAX_KEYS`]. Counters of attempts under way stay.
fn evict(entries: &mut HashMap<Key, Entry>, now: i64) {
    entries.retain(|_, e| !e.is_idle(now));
    evict_oldest(entries);
    // Removals leave tombstones, which can make the table grow past what MAX_KEYS needs:
    // rebuild it at that size.
    entries.shrink_to(MAX_KEYS);
}

/// The capacity of a table built for [`MAX_KEYS`] counters.
fn table_capacity() -> usize {
    static CAPACITY: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CAPACITY.get_or_init(|| HashMap::<Key, Entry>::with_capacity(MAX_KEYS).capacity())
}

/// The most memory the counters take: a table for [`MAX_KEYS`], twice that while it grows.
pub fn max_memory_bytes() -> usize {
    2 * table_capacity() * ENTRY_BYTES
}

fn evict_oldest(entries: &mut HashMap<Key, Entry>) {
    let target = MAX_KEYS / 10 * 9;
    if entries.len() <= target {
        return;
    }
    let busy = |e: &Entry| e.pending > 0 || e.waiting > 0;
    let mut lasts: Vec<i64> = entries
        .values()
        .filter(|e| !busy(e))
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
        .filter(|e| !busy(e) && e.last < cutoff)
        .count();
    let mut at_cutoff = excess - older;
    entries.retain(|_, e| {
        if busy(e) || e.last > cutoff {
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

    /// One whole attempt that fails.
    async fn fail(t: &Throttle, user: &str, from: Option<IpAddr>, now: i64) -> Result<(), i64> {
        match t.begin(user, from, now).await {
            Ok(attempt) => {
                attempt.failed(now).await;
                Ok(())
            }
            Err(Refused::Wait(w)) => Err(w),
            Err(Refused::Busy) => Err(-1),
            Err(Refused::Store(e)) => panic!("{e}"),
        }
    }

    async fn check(t: &Throttle, user: &str, from: Option<IpAddr>, now: i64) -> Result<(), i64> {
        match t.begin(user, from, now).await {
            Ok(attempt) => {
                attempt.succeeded().await;
                Ok(())
            }
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

    /// Forty guesses at once, each taking 10 ms to check: how many were checked.
    async fn burst(t: &Throttle, from: Option<IpAddr>, now: i64, right: bool) -> (usize, usize) {
        let guesses = (0..40).map(|_| async {
            match t.begin("ada", from, now).await {
                Ok(attempt) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    if right {
                        attempt.succeeded().await;
                    } else {
                        attempt.failed(now).await;
                    }
                    (1, 0)
                }
                Err(Refused::Wait(_) | Refused::Busy) => (0, 1),
                Err(Refused::Store(e)) => panic!("{e}"),
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
        // The next burst, once the delay has passed, gets one check, as a sequence would.
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
