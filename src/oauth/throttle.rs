//! Brute-force throttling of password checks (RFC 6749 §4.3.2: the server MUST protect the
//! password endpoint against brute force; the login page shares it).
//!
//! Failed logins are counted per key over a sliding window, and past a number of free
//! failures each further attempt must wait an exponentially growing delay, capped. A
//! throttled attempt is refused at once, without checking the password (no hashing spent).
//! The keys, and why:
//!
//! - **username + client IP**: the tight one (5 free failures, delay doubling up to the cap).
//!   An attacker hammering a username from their address is slowed down, while the real user,
//!   logging in from another address, is not affected at all: nobody can lock a user out by
//!   failing on purpose (the trade-off Keycloak documents for its permanent lockout).
//! - **client IP**: password spraying across many usernames from one address (20 free).
//! - **username**: a distributed attack on one account from many addresses (50 free, and a
//!   delay capped low, so the real user is slowed by seconds at most).
//!
//! Keys do not depend on whether the user exists, so throttling reveals nothing either.
//! Counters live in memory, per server process: with N replicas an attacker gets N times
//! the budget (still exponentially delayed). Behind a proxy, enable `--trust-x-forwarded-for`
//! or every request shares the proxy's address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

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
const WINDOW_SECS: i64 = 15 * 60;
/// Above this many tracked keys, forgotten ones are dropped (bounds memory under a flood of
/// made-up usernames).
const MAX_KEYS: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last_failure: i64,
}

#[derive(Clone, Copy)]
struct Rule {
    free: u32,
    max_delay: i64,
}

/// The counters of one server.
pub struct Throttle {
    policy: ThrottlePolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(&self, username: &str, ip: Option<IpAddr>) -> Vec<(String, Rule)> {
        let tight = Rule {
            free: self.policy.free_failures,
            max_delay: self.policy.max_delay_secs,
        };
        let mut keys = vec![(
            format!("u:{username}"),
            Rule {
                free: self.policy.free_failures * 10,
                max_delay: self.policy.max_delay_secs.min(5),
            },
        )];
        if let Some(ip) = ip {
            keys.push((format!("ui:{ip}\u{0}{username}"), tight));
            keys.push((
                format!("i:{ip}"),
                Rule {
                    free: self.policy.free_failures * 4,
                    max_delay: tight.max_delay,
                },
            ));
        }
        keys
    }

    /// `Err(seconds)` when an attempt must wait that long first.
    pub fn check(&self, username: &str, ip: Option<IpAddr>, now: i64) -> Result<(), i64> {
        let entries = self.lock();
        let wait = self
            .keys(username, ip)
            .iter()
            .filter_map(|(key, rule)| entries.get(key).map(|e| (e, rule)))
            .map(|(e, rule)| {
                if now - e.last_failure >= WINDOW_SECS || e.failures < rule.free {
                    return 0;
                }
                // 2 s, 4 s, 8 s, …: at least 2 s, since time here has whole seconds.
                let over = (e.failures - rule.free).min(30);
                let delay = (2i64 << over).min(rule.max_delay);
                (e.last_failure + delay - now).max(0)
            })
            .max()
            .unwrap_or(0);
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    pub fn failed(&self, username: &str, ip: Option<IpAddr>, now: i64) {
        let keys = self.keys(username, ip);
        let mut entries = self.lock();
        if entries.len() >= MAX_KEYS {
            entries.retain(|_, e| now - e.last_failure < WINDOW_SECS);
            if entries.len() >= MAX_KEYS {
                entries.clear();
            }
        }
        for (key, _) in keys {
            let e = entries.entry(key).or_insert(Entry {
                failures: 0,
                last_failure: now,
            });
            if now - e.last_failure >= WINDOW_SECS {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last_failure = now;
        }
    }

    /// A success clears the username + address counter (the others keep counting).
    pub fn succeeded(&self, username: &str, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            self.lock().remove(&format!("ui:{ip}\u{0}{username}"));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn delays_start_after_the_free_failures_and_double_up_to_the_cap() {
        let t = Throttle::new(ThrottlePolicy {
            free_failures: 3,
            max_delay_secs: 8,
        });
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(t.check("ada", a, 100).is_ok());
            t.failed("ada", a, 100);
        }
        assert_eq!(t.check("ada", a, 100), Err(2));
        assert_eq!(t.check("ada", a, 101), Err(1));
        assert!(t.check("ada", a, 102).is_ok());
        t.failed("ada", a, 102);
        assert_eq!(t.check("ada", a, 102), Err(4));
        for n in 0..10 {
            t.failed("ada", a, 200 + n);
        }
        assert_eq!(t.check("ada", a, 209), Err(8), "capped");
        // Forgotten after the window.
        assert!(t.check("ada", a, 209 + WINDOW_SECS).is_ok());
    }

    #[test]
    fn an_attacker_elsewhere_does_not_lock_the_user_out() {
        let t = Throttle::new(ThrottlePolicy::default());
        for _ in 0..10 {
            t.failed("ada", ip("203.0.113.9"), 100);
        }
        assert!(t.check("ada", ip("203.0.113.9"), 100).is_err());
        assert!(
            t.check("ada", ip("192.0.2.1"), 100).is_ok(),
            "the real user's address is free"
        );
        // Even a distributed attack slows the user by seconds at most.
        for n in 0..200 {
            t.failed("ada", ip(&format!("198.51.100.{}", n % 250)), 100);
        }
        assert!(t.check("ada", ip("192.0.2.1"), 100).unwrap_err() <= 5);
    }

    #[test]
    fn success_clears_the_user_and_address_counter() {
        let t = Throttle::new(ThrottlePolicy::default());
        for _ in 0..6 {
            t.failed("ada", ip("192.0.2.1"), 100);
        }
        assert!(t.check("ada", ip("192.0.2.1"), 100).is_err());
        t.succeeded("ada", ip("192.0.2.1"));
        assert!(t.check("ada", ip("192.0.2.1"), 100).is_ok());
    }
}
