//! Staged key rotation, by hand and on a schedule, seen from a resource server that caches the
//! JWKS as told (`max-age`) and refetches on an unknown `kid` only now and then.

use std::collections::BTreeSet;
use std::time::Duration;

use ferrid::clock::Clock;
use ferrid::config::ServeConfig;
use ferrid::tokens::keys::Schedule;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

use crate::support::{TestApp, TestDir, ferrid_cli, field, kid_of, kids, stderr, stdout};

const HOUR: i64 = 3600;

/// What a careful resource server does: keeps the JWKS for its `max-age`, and on a `kid` it
/// does not know refetches at most once per [`ResourceServer::UNKNOWN_KID_EVERY`] seconds
/// (else anyone could make it hammer the identity provider with made-up kids).
struct ResourceServer {
    http: reqwest::Client,
    jwks_uri: String,
    issuer: String,
    audience: String,
    cache: Option<(JwkSet, i64)>,
    last_unknown_kid_refetch: Option<i64>,
    fetches: u32,
    unknown_kid_refetches: u32,
}

impl ResourceServer {
    const UNKNOWN_KID_EVERY: i64 = 300;

    fn new(issuer: &str, audience: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            jwks_uri: format!("{issuer}/jwks.json"),
            issuer: issuer.into(),
            audience: audience.into(),
            cache: None,
            last_unknown_kid_refetch: None,
            fetches: 0,
            unknown_kid_refetches: 0,
        }
    }

    /// Fetches the JWKS; it is fresh until `now + max-age`.
    async fn fetch(&mut self, now: i64) {
        let res = self.http.get(&self.jwks_uri).send().await.unwrap();
        let cache_control = res.headers()["cache-control"].to_str().unwrap().to_owned();
        let max_age: i64 = cache_control
            .split(',')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .unwrap_or_else(|| panic!("no max-age in {cache_control:?}"))
            .parse()
            .unwrap();
        self.cache = Some((res.json().await.unwrap(), now + max_age));
        self.fetches += 1;
    }

    /// Verifies an access token at (simulated) time `now`.
    async fn verify(&mut self, token: &str, now: i64) -> Result<Value, String> {
        if self
            .cache
            .as_ref()
            .is_none_or(|(_, fresh_until)| now >= *fresh_until)
        {
            self.fetch(now).await;
        }
        let kid = kid_of(token);
        let known = |rs: &Self| {
            rs.cache
                .as_ref()
                .and_then(|(set, _)| set.find(&kid))
                .cloned()
        };
        let jwk = match known(self) {
            Some(jwk) => jwk,
            None => {
                if self
                    .last_unknown_kid_refetch
                    .is_some_and(|t| now - t < Self::UNKNOWN_KID_EVERY)
                {
                    return Err(format!("unknown kid {kid}, and refetched too recently"));
                }
                self.last_unknown_kid_refetch = Some(now);
                self.unknown_kid_refetches += 1;
                self.fetch(now).await;
                known(self).ok_or_else(|| format!("kid {kid} not in the JWKS"))?
            }
        };
        let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        // Time is simulated: `exp` is checked against `now` below.
        validation.validate_exp = false;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| e.to_string())?
            .claims;
        if claims["exp"].as_i64().unwrap() <= now {
            return Err("expired".into());
        }
        Ok(claims)
    }
}

async fn client_credentials_token(app: &TestApp) -> String {
    let res = app
        .token(
            &[
                ("grant_type", "client_credentials"),
                ("scope", "items:read"),
            ],
            Some(("api", "api-secret")),
        )
        .await;
    assert_eq!(res.status(), 200);
    field(&res.json().await.unwrap(), "access_token")
}

fn exp_of(token: &str) -> i64 {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["exp"].as_i64().unwrap()
}

/// The acceptance test of staged rotation: three scheduled rotations, time moved forward
/// 200 s at a step (less than half a token's lifetime, so a key leaving while its tokens
/// live cannot fall between two steps), a token issued and every live token verified at
/// each step. The
/// resource server never refuses a valid token and never needs its unknown-kid refetch
/// (every key was in its cache before the first token it signed); a key leaves the JWKS
/// only when no live token needs it; and the files of keys that left are deleted.
#[tokio::test]
async fn resource_servers_never_refuse_a_valid_token_across_three_scheduled_rotations() {
    let clock = Clock::system();
    let app = TestApp::spawn_with(TestDir::new(), clock.clone(), |c| {
        c.key_schedule = Some(Schedule {
            interval: 3 * HOUR,
            publish_ahead: HOUR,
        });
        c.keys_reload_interval = Duration::from_millis(50);
    })
    .await;
    app.add_client(
        "api",
        Some("api-secret"),
        &["client_credentials"],
        "items:read",
    )
    .await;
    let mut rs = ResourceServer::new(&app.base, "api");

    let start = clock.now();
    // Keys start signing at +3h, +6h and +9h (each published an hour before).
    let end = start + 9 * HOUR + 30 * 60;
    let mut live: Vec<(String, String, i64)> = Vec::new();
    let mut signing_kids: Vec<String> = Vec::new();
    while clock.now() < end {
        let now = clock.now();
        let token = client_credentials_token(&app).await;
        let kid = kid_of(&token);
        if signing_kids.last() != Some(&kid) {
            signing_kids.push(kid.clone());
        }
        live.push((token.clone(), kid, exp_of(&token)));
        live.retain(|(_, _, exp)| *exp > now);
        let published = kids(&app.get_json("/jwks.json").await);
        for (token, kid, exp) in &live {
            assert!(
                published.contains(kid),
                "at +{}s key {kid} left the JWKS while a token it signed lives until +{}s",
                now - start,
                exp - start
            );
            if let Err(e) = rs.verify(token, now).await {
                panic!("at +{}s a valid token was refused: {e}", now - start);
            }
        }
        clock.advance(200);
        // Let the server's watcher (every 50 ms) see the new time.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        signing_kids.len(),
        4,
        "three scheduled rotations: {signing_kids:?}"
    );
    assert_eq!(
        rs.unknown_kid_refetches, 0,
        "every key was cached before its first token arrived"
    );
    // Honouring max-age, the resource server fetched about every five minutes, not per token.
    assert!(rs.fetches < 200, "{} fetches", rs.fetches);
    // The keys superseded at +3h and +6h (and +9h: its tokens expired by +9h15m) have left.
    let published = kids(&app.get_json("/jwks.json").await);
    assert_eq!(published, [signing_kids[3].clone()]);
    // The third rotation deleted the files of the keys that had left by then (two).
    let files = std::fs::read_dir(app.keys_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pem")
        })
        .count();
    assert_eq!(files, 2, "the first two keys' files are deleted");
}

/// Two replicas on one database and one keys dir, both with the schedule on, racing at every
/// tick: exactly one new key per interval.
#[tokio::test]
async fn two_replicas_with_a_schedule_rotate_once_per_interval() {
    let clock = Clock::system();
    let tweak = |c: &mut ServeConfig| {
        c.key_schedule = Some(Schedule {
            interval: 2 * HOUR,
            publish_ahead: HOUR,
        });
        c.keys_reload_interval = Duration::from_millis(20);
    };
    let a = TestApp::spawn_with(TestDir::new(), clock.clone(), tweak).await;
    let mut config = TestApp::config_for(&a.dir);
    tweak(&mut config);
    let b = ferrid::app::App::build_with_clock(config, clock.clone())
        .await
        .unwrap();
    let b_jwks = format!("http://127.0.0.1:{}/jwks.json", b.port());
    let (stop_b, stopped) = tokio::sync::oneshot::channel::<()>();
    let b_task = tokio::spawn(b.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let mut seen = BTreeSet::new();
    let start = clock.now();
    // Publications are due at +1h, +3h and +5h.
    while clock.now() < start + 5 * HOUR + 30 * 60 {
        seen.extend(kids(&a.get_json("/jwks.json").await));
        let b_set: Value = a
            .http
            .get(&b_jwks)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(kids(&b_set));
        clock.advance(600);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen.extend(kids(&a.get_json("/jwks.json").await));
    assert_eq!(
        seen.len(),
        4,
        "the first key and one per interval, whichever replica made it: {seen:?}"
    );
    let _ = stop_b.send(());
    b_task.await.unwrap().unwrap();
}

/// `ferrid keys rotate` stages: the key is published at once, signs an hour later, and the
/// key it replaces leaves the JWKS once the tokens it signed have expired.
#[tokio::test]
async fn keys_rotate_publishes_a_key_an_hour_before_it_signs() {
    let clock = Clock::system();
    let app = TestApp::spawn_in(TestDir::new(), clock.clone())
        .await
        .with_standard_client_and_user()
        .await;
    let old_kid = kid_of(&field(&app.login("openid").await, "access_token"));

    // Too short a lead is refused, and the message names the immediate switch.
    let out = ferrid_cli(
        app.dir.path(),
        &["keys", "rotate", "--key-publish-ahead", "1m"],
        "",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--now"), "{}", stderr(&out));

    // The command reads the system clock (the server's has not moved yet): the new key
    // signs from an hour after a moment between these two.
    let before = clock.now();
    let out = ferrid_cli(app.dir.path(), &["keys", "rotate"], "");
    let after = clock.now();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("new staged key"),
        "{}",
        stdout(&out)
    );
    let new_kid = stdout(&out).split_whitespace().nth(3).unwrap().to_owned();
    let published = app
        .eventually(Duration::from_secs(10), || async {
            kids(&app.get_json("/jwks.json").await).contains(&new_kid)
        })
        .await;
    assert!(published, "the staged key is published at once");
    assert_eq!(
        kid_of(&field(&app.login("openid").await, "access_token")),
        old_kid,
        "but does not sign yet"
    );
    let list = stdout(&ferrid_cli(app.dir.path(), &["keys", "list"], ""));
    assert!(
        list.lines()
            .any(|l| l.starts_with(&new_kid) && l.contains("staged") && l.contains("signs from")),
        "{list}"
    );

    clock.advance(HOUR + 5);
    let switched = app
        .eventually(Duration::from_secs(10), || async {
            kid_of(&field(&app.login("openid").await, "access_token")) == new_kid
        })
        .await;
    assert!(switched, "the staged key signs after an hour");
    assert!(kids(&app.get_json("/jwks.json").await).contains(&old_kid));

    // 15m tokens + 5m JWKS max-age + two reloads (1 s each) + a minute after the new key
    // started, the old key leaves — not before (5 s before, with real seconds passing).
    let retire_after = 15 * 60 + 5 * 60 + 2 + 60;
    clock.advance(before + HOUR + retire_after - 5 - clock.now());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        kids(&app.get_json("/jwks.json").await).contains(&old_kid),
        "still published just before its time"
    );
    clock.advance(after + HOUR + retire_after - clock.now());
    let left = app
        .eventually(Duration::from_secs(10), || async {
            kids(&app.get_json("/jwks.json").await) == [new_kid.clone()]
        })
        .await;
    assert!(left, "the old key leaves the JWKS by itself");
}
