//! [`Verifier`]: the issuer's discovery document, its JWKS cached as the issuer says, and the
//! checks of RFC 9068 §4 on each token.
//!
//! The cache contract:
//!
//! - The JWKS is kept for its `Cache-Control: max-age` (less `Age`), within
//!   [`Builder::min_cache_age`] and [`Builder::max_cache_age`]; a stale copy is revalidated
//!   with `If-None-Match` when it had an ETag.
//! - A `kid` not in a fresh copy triggers one refetch, if the last fetch is at least
//!   [`Builder::unknown_kid_interval`] old; otherwise the token is refused. Made-up kids thus
//!   cost the issuer at most one request per interval.
//! - One fetch at a time (single flight): requests that wait for a fetch use its result;
//!   requests with a known key use the stale copy rather than wait for a fetch in flight.
//! - A failed fetch keeps the keys already held, and is retried no sooner than the same
//!   interval. With no keys at all the answer is [`Error::Unavailable`] (503).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use axum::http::Uri;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;

use crate::claims::{AccessToken, Expect, check};
use crate::error::{Error, SetupError, desc};
use crate::http::{Http, freshness};
use crate::jws;

/// A time source: unix seconds. The default reads the system clock; tests pass their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Verifies ferrid's access tokens for one audience. Cheap to clone (one `Arc`): keep one
/// per process in the router's state, so every request shares its JWKS cache.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    leeway: i64,
    unknown_kid_interval: i64,
    min_cache_age: i64,
    max_cache_age: i64,
    clock: Clock,
    http: Http,
    /// The keys as last fetched; `None` until a fetch succeeds.
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Fetch attempts finished (successful or not): a request that waited for the refresh
    /// lock sees whether a fetch happened meanwhile.
    attempts: AtomicU64,
    /// Held while fetching: one fetch at a time (single flight).
    refresh: tokio::sync::Mutex<Refresh>,
    /// JWKS requests sent (for tests and metrics).
    fetches: AtomicU64,
}

struct KeySet {
    keys: HashMap<String, Arc<ParsedPublicKey>>,
    /// Unix seconds until which the set is fresh.
    fresh_until: i64,
}

/// What only the fetcher touches.
struct Refresh {
    /// From discovery; `None` until it succeeded.
    jwks_uri: Option<String>,
    etag: Option<String>,
    last_attempt: Option<i64>,
    last_failed: bool,
}

/// Options of a [`Verifier`]; from [`Verifier::builder`].
#[must_use]
pub struct Builder {
    issuer: String,
    audience: String,
    leeway: Duration,
    unknown_kid_interval: Duration,
    min_cache_age: Duration,
    max_cache_age: Duration,
    timeout: Duration,
    clock: Option<Clock>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("unknown_kid_interval", &self.unknown_kid_interval)
            .field("min_cache_age", &self.min_cache_age)
            .field("max_cache_age", &self.max_cache_age)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Clock skew allowed on `exp`, `nbf` and `iat` (whole seconds). Default: 60 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The least time between two JWKS fetches caused by unknown `kid`s, and between
    /// retries after a failed fetch (whole seconds). Default: 5 s.
    pub fn unknown_kid_interval(mut self, interval: Duration) -> Self {
        self.unknown_kid_interval = interval;
        self
    }

    /// The JWKS is kept at least this long, whatever its `max-age` (`0`, `no-cache`,
    /// `no-store` included), so a server under load revalidates at most once per this
    /// time. Default: 1 s; `Duration::ZERO` revalidates before every use of a stale copy.
    pub fn min_cache_age(mut self, age: Duration) -> Self {
        self.min_cache_age = age;
        self
    }

    /// The JWKS is kept at most this long, whatever its `max-age`, so a key the issuer
    /// withdrew stops verifying within this time. Default: 1 hour.
    pub fn max_cache_age(mut self, age: Duration) -> Self {
        self.max_cache_age = age;
        self
    }

    /// How long a discovery or JWKS request may take, connection included. Default: 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The time source for token and cache times (unix seconds). Default: the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A verifier that fetches discovery and the JWKS when the first token arrives, so the
    /// service starts while the issuer is down (its requests get 503 until it is back).
    /// Reads the system's trusted roots for an https issuer: call it at startup, not on a
    /// request.
    pub fn build(self) -> Result<Verifier, SetupError> {
        let issuer_uri = issuer_uri(&self.issuer)?;
        if self.audience.is_empty() {
            return Err(SetupError::EmptyAudience);
        }
        let https = issuer_uri.scheme_str() == Some("https");
        let http = Http::new(https, self.timeout)?;
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let clock = self.clock.unwrap_or_else(|| Arc::new(system_now));
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audience: self.audience,
                leeway: secs(self.leeway),
                unknown_kid_interval: secs(self.unknown_kid_interval),
                min_cache_age: secs(self.min_cache_age),
                max_cache_age: secs(self.max_cache_age),
                clock,
                http,
                keys: RwLock::new(None),
                attempts: AtomicU64::new(0),
                refresh: tokio::sync::Mutex::new(Refresh {
                    jwks_uri: None,
                    etag: None,
                    last_attempt: None,
                    last_failed: false,
                }),
                fetches: AtomicU64::new(0),
            }),
        })
    }

    /// Fetches the discovery document now and fails if it cannot be had or does not belong
    /// to the issuer (OIDC Discovery §4.3). The JWKS is fetched when the first token
    /// arrives.
    pub async fn discover(self) -> Result<Verifier, SetupError> {
        let verifier = tokio::task::spawn_blocking(move || self.build())
            .await
            .map_err(|e| SetupError::Tls(format!("reading the trusted roots: {e}")))??;
        let jwks_uri = discover(&verifier.inner.http, &verifier.inner.issuer).await?;
        verifier.inner.refresh.lock().await.jwks_uri = Some(jwks_uri);
        Ok(verifier)
    }
}

#[allow(clippy::disallowed_methods)] // the default clock: the one reader of system time
fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Verifier {
    /// Options for a verifier of tokens from `issuer` (exactly as in their `iss`, e.g.
    /// `https://id.example.com`) for `audience` (a value their `aud` must contain: the
    /// resource server's id, or the client id of the app the tokens are issued to).
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> Builder {
        Builder {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(60),
            unknown_kid_interval: Duration::from_secs(5),
            min_cache_age: Duration::from_secs(1),
            max_cache_age: Duration::from_secs(3600),
            timeout: Duration::from_secs(5),
            clock: None,
        }
    }

    /// A verifier with the default options, its discovery document fetched now
    /// ([`Builder::discover`]).
    pub async fn discover(
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, SetupError> {
        Self::builder(issuer, audience).discover().await
    }

    /// The issuer, as tokens' `iss` must be.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The audience tokens' `aud` must contain.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// How many JWKS requests this verifier (and its clones) sent.
    #[doc(hidden)]
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Verifies an access token (RFC 9068 §4): its header (`typ` `at+jwt`, `alg` RS256, a
    /// `kid`), its signature by a key of the issuer's JWKS, `iss`, `aud`, `exp`, `nbf` and
    /// `iat`. Scopes are the caller's business ([`AccessToken::require`]).
    pub async fn verify(&self, token: &str) -> Result<AccessToken, Error> {
        let parsed = jws::parse(token)?;
        let key = self.key(&parsed.kid).await?;
        let kid = parsed.kid.clone();
        let claims = parsed.verify(&key)?;
        let result = check(
            claims,
            kid,
            &Expect {
                issuer: &self.inner.issuer,
                audience: &self.inner.audience,
                now: self.now(),
                leeway: self.inner.leeway,
            },
        );
        if let Err(e) = &result {
            // The reason only: never the token.
            tracing::debug!(error = %e, "access token refused");
        }
        result
    }

    fn now(&self) -> i64 {
        (self.inner.clock)()
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The public key named `kid`, fetching the JWKS as the cache contract says.
    async fn key(&self, kid: &str) -> Result<Arc<ParsedPublicKey>, Error> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        let snapshot = self.snapshot();
        let known = snapshot.as_ref().and_then(|s| s.keys.get(kid).cloned());
        if let (Some(set), Some(key)) = (&snapshot, &known)
            && self.now() < set.fresh_until
        {
            return Ok(key.clone());
        }
        let mut refresh = match self.inner.refresh.try_lock() {
            Ok(guard) => guard,
            Err(_) => match known {
                // A fetch is in flight: a known key is used as it is rather than wait for
                // the revalidation (RFC 5861 §3, stale-while-revalidate)…
                Some(key) => return Ok(key),
                // …anything else waits for that fetch's result.
                None => self.inner.refresh.lock().await,
            },
        };
        if self.inner.attempts.load(Ordering::Acquire) != seen {
            // A fetch finished while we waited: its answer is ours too (single flight).
            return self.lookup(kid, &refresh);
        }
        let now = self.now();
        let stale = self.snapshot().is_none_or(|s| now >= s.fresh_until);
        let recent = refresh
            .last_attempt
            .is_some_and(|t| now - t < self.inner.unknown_kid_interval);
        let fetch = if stale {
            // Revalidate a stale copy, but after a failure not before the interval: a dead
            // issuer must not make every request wait for a timeout.
            !(refresh.last_failed && recent)
        } else {
            // An unknown kid in a fresh copy: a key rotated in sooner than our copy
            // expires (`ferrid keys rotate --now`) — or a made-up kid, hence the limit.
            !recent
        };
        if fetch {
            self.fetch(&mut refresh, now).await;
        }
        self.lookup(kid, &refresh)
    }

    fn lookup(&self, kid: &str, refresh: &Refresh) -> Result<Arc<ParsedPublicKey>, Error> {
        match self.snapshot() {
            None => Err(Error::Unavailable),
            Some(set) => match set.keys.get(kid) {
                Some(key) => Ok(key.clone()),
                // The issuer could not be asked about this kid: the token cannot be judged.
                None if refresh.last_failed => Err(Error::Unavailable),
                None => Err(Error::InvalidToken(desc::UNKNOWN_KID)),
            },
        }
    }

    /// One fetch attempt (discovery first, if it is not done yet); the outcome is in
    /// `self.inner.keys` and `refresh`.
    async fn fetch(&self, refresh: &mut Refresh, now: i64) {
        refresh.last_attempt = Some(now);
        let outcome = self.try_fetch(refresh).await;
        refresh.last_failed = outcome.is_err();
        if let Err(reason) = outcome {
            tracing::warn!(
                issuer = %self.inner.issuer,
                error = %reason,
                "cannot fetch the issuer's signing keys; keeping the keys held"
            );
        }
        self.inner.attempts.fetch_add(1, Ordering::Release);
    }

    async fn try_fetch(&self, refresh: &mut Refresh) -> Result<(), String> {
        let jwks_uri = match &refresh.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = discover(&self.inner.http, &self.inner.issuer)
                    .await
                    .map_err(|e| e.to_string())?;
                refresh.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let current = self.snapshot();
        // RFC 9111 §4.3.1: revalidate with the validator of the copy we hold.
        let etag = current.as_ref().and(refresh.etag.as_deref());
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let res = self.inner.http.get(&jwks_uri, etag).await?;
        let now = self.now();
        // Within the bounds (the floor wins if they cross; `clamp` would panic).
        let fresh_for = freshness(res.cache_control.as_deref(), res.age.as_deref())
            .min(self.inner.max_cache_age)
            .max(self.inner.min_cache_age);
        let keys = match (res.status, current) {
            // RFC 9111 §4.3.4: not modified — the held copy is fresh again.
            (304, Some(current)) => current.keys.clone(),
            (200, _) => parse_jwks(&res.body)?,
            (status, _) => return Err(format!("the JWKS answered HTTP {status}")),
        };
        if res.status == 200 || res.etag.is_some() {
            refresh.etag = res.etag;
        }
        tracing::debug!(keys = keys.len(), fresh_for, "JWKS fetched");
        let set = KeySet {
            keys,
            fresh_until: now.saturating_add(fresh_for),
        };
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(set));
        Ok(())
    }
}

/// OIDC Discovery §3, §4: `{issuer}/.well-known/openid-configuration` (less a terminating
/// `/` of the issuer, §4.1); its `issuer` must be ours exactly (§4.3), and its `jwks_uri`
/// must use the issuer's scheme (an https issuer's keys never come over plain http).
async fn discover(http: &Http, issuer: &str) -> Result<String, SetupError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.strip_suffix('/').unwrap_or(issuer)
    );
    let failed = |reason: String| SetupError::Discovery {
        url: url.clone(),
        reason,
    };
    let res = http.get(&url, None).await.map_err(failed)?;
    if res.status != 200 {
        return Err(failed(format!("answered HTTP {}", res.status)));
    }
    let doc: serde_json::Map<String, Value> = serde_json::from_slice(&res.body)
        .map_err(|_| failed("the answer is not a JSON object".into()))?;
    let found = doc
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if found != issuer {
        return Err(SetupError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: found.to_owned(),
        });
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| SetupError::JwksUri("missing".into()))?;
    let parsed: Uri = jwks_uri
        .parse()
        .map_err(|_| SetupError::JwksUri(format!("not a URL: {jwks_uri}")))?;
    let issuer_scheme = issuer.split_once("://").map(|(s, _)| s);
    if parsed.scheme_str() != issuer_scheme || parsed.authority().is_none() {
        return Err(SetupError::JwksUri(format!(
            "{jwks_uri} does not use the issuer's scheme"
        )));
    }
    Ok(jwks_uri.to_owned())
}

/// OIDC Discovery §2 / RFC 8414 §2: an http(s) URL with a host and no query or fragment.
fn issuer_uri(issuer: &str) -> Result<Uri, SetupError> {
    let bad = || SetupError::InvalidIssuer(issuer.to_owned());
    if issuer.contains(['?', '#']) {
        return Err(bad());
    }
    let uri: Uri = issuer.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.authority().is_some_and(|a| !a.as_str().contains('@'));
    if !scheme_ok || !host_ok {
        return Err(bad());
    }
    Ok(uri)
}

/// The usable keys of a JWK Set (RFC 7517 §5): RSA keys (RFC 7518 §6.3.1) with a `kid`,
/// meant for signatures (`use` absent or `sig`, §4.2; `key_ops` absent or with `verify`,
/// §4.3) with RS256 (`alg` absent or RS256, §4.4), of 2048 to 8192 bits. Others are ignored,
/// as §5 says a set's members that are not understood should be. Of two keys with one
/// `kid` (§4.5 says they should differ), the first counts.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<ParsedPublicKey>>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "the JWKS is not JSON")?;
    let members = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS has no keys array")?;
    let mut keys = HashMap::new();
    for jwk in members {
        let field = |name| jwk.get(name).and_then(Value::as_str);
        let usable = field("kty") == Some("RSA")
            && field("use").is_none_or(|u| u == "sig")
            && field("alg").is_none_or(|a| a == "RS256")
            && jwk.get("key_ops").is_none_or(|ops| {
                ops.as_array()
                    .is_some_and(|ops| ops.iter().any(|o| o == "verify"))
            });
        let (Some(kid), Some(n), Some(e), true) = (field("kid"), field("n"), field("e"), usable)
        else {
            continue;
        };
        let (Ok(n), Ok(e)) = (B64.decode(n), B64.decode(e)) else {
            continue;
        };
        // RFC 7518 §3.3: 2048 bits or more (aws-lc would refuse smaller keys only when
        // verifying, and larger than 8192 bits is a denial of service, not a key).
        if !(2048..=8192).contains(&modulus_bits(&n)) {
            continue;
        }
        let Ok(key) =
            (PublicKeyComponents { n, e }).to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        else {
            continue;
        };
        keys.entry(kid.to_owned()).or_insert_with(|| Arc::new(key));
    }
    if keys.is_empty() {
        // Ferrid always publishes its signing key: an empty set is a broken answer, and the
        // keys held are worth more than it.
        return Err("the JWKS has no usable RS256 key".into());
    }
    Ok(keys)
}

/// The size of an RSA modulus given as unsigned big-endian bytes (RFC 7518 §6.3.1.1).
fn modulus_bits(n: &[u8]) -> usize {
    match n.iter().position(|&b| b != 0) {
        None => 0,
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::tests::{KEY, sign};
    use aws_lc_rs::signature::KeyPair as _;
    use serde_json::json;

    fn jwk_of(pair: &aws_lc_rs::rsa::KeyPair, kid: &str) -> Value {
        let c = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
               "n": B64.encode(&c.n), "e": B64.encode(&c.e)})
    }

    #[test]
    fn the_jwks_keeps_only_usable_rs256_signature_keys() {
        let good = jwk_of(&KEY, "good");
        let mut enc = good.clone();
        enc["use"] = "enc".into();
        enc["kid"] = "enc".into();
        let mut es = good.clone();
        es["alg"] = "RS512".into();
        es["kid"] = "rs512".into();
        let mut ops = good.clone();
        ops["key_ops"] = json!(["encrypt"]);
        ops["kid"] = "ops".into();
        let mut bare = good.clone();
        bare.as_object_mut().unwrap().remove("use");
        bare.as_object_mut().unwrap().remove("alg");
        bare["kid"] = "bare".into();
        let ec = json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"});
        let small =
            json!({"kty": "RSA", "kid": "small", "n": B64.encode([0xc1; 128]), "e": "AQAB"});
        let no_kid = json!({"kty": "RSA", "n": good["n"], "e": "AQAB"});
        let body = json!({"keys": [good, enc, es, ops, bare, ec, small, no_kid]}).to_string();
        let keys = parse_jwks(body.as_bytes()).unwrap();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort();
        assert_eq!(kids, ["bare", "good"]);
    }

    #[test]
    fn modulus_bits_ignore_leading_zeros() {
        assert_eq!(modulus_bits(&[0, 0, 1]), 1);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0; 3]), 0);
        assert_eq!(modulus_bits(&[0xc1; 256]), 2048);
    }

    #[test]
    fn a_jwks_without_usable_keys_is_a_failed_fetch() {
        assert!(parse_jwks(br#"{"keys": []}"#).is_err());
        assert!(parse_jwks(br#"{"other": 1}"#).is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }

    #[test]
    fn issuers_are_http_urls_without_query_or_fragment() {
        for ok in [
            "https://id.example.com",
            "https://id.example.com/tenant/",
            "http://127.0.0.1:8080",
        ] {
            assert!(issuer_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "id.example.com",
            "ftp://id.example.com",
            "https://id.example.com?x=1",
            "https://id.example.com#f",
            "https://user@id.example.com",
            "",
        ] {
            assert!(issuer_uri(bad).is_err(), "{bad}");
        }
    }

    /// A verifier whose keys are set by hand (no HTTP): the checks end to end.
    async fn with_keys(now: i64) -> Verifier {
        let v = Verifier::builder("http://id.example.com", "api")
            .clock(Arc::new(move || now))
            .build()
            .unwrap();
        let body = json!({"keys": [jwk_of(&KEY, "k1")]}).to_string();
        let set = KeySet {
            keys: parse_jwks(body.as_bytes()).unwrap(),
            fresh_until: now + 300,
        };
        *v.inner.keys.write().unwrap() = Some(Arc::new(set));
        v
    }

    #[tokio::test]
    async fn a_token_signed_by_a_held_key_verifies_without_a_fetch() {
        let now = 1_700_000_000;
        let v = with_keys(now).await;
        let header = json!({"typ": "at+jwt", "alg": "RS256", "kid": "k1"});
        let claims = json!({"iss": "http://id.example.com", "sub": "u", "aud": "api",
            "exp": now + 60, "iat": now, "jti": "j", "client_id": "c", "scope": "a b"});
        let token = v.verify(&sign(&KEY, &header, &claims)).await.unwrap();
        assert_eq!(token.scopes, ["a", "b"]);
        assert_eq!(v.jwks_fetches(), 0);
    }
}
