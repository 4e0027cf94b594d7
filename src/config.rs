//! Configuration of `ferrid serve`: one clap struct (every flag also read from a `FERRID_…`
//! environment variable), validated once into [`ServeConfig`]. Tests build `ServeConfig`
//! directly and never touch the process environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::oauth::throttle::ThrottlePolicy;
use crate::password::HashParams;
use crate::tokens::keys::{JWKS_MAX_AGE_SECS, MIN_PUBLISH_AHEAD_SECS, Schedule};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://ferrid.db";
pub const DEFAULT_KEYS_DIR: &str = "keys";

/// Where the data lives; accepted by every subcommand.
#[derive(Args, Clone, Debug)]
pub struct StorageArgs {
    /// Database URL: `sqlite://PATH` (created on first start) or `postgres://USER:PASSWORD@HOST/DB`.
    /// Default: sqlite://ferrid.db.
    #[arg(long, global = true, env = "FERRID_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Directory of the RSA signing keys (PKCS#8 PEM, mode 0600). Default: keys.
    #[arg(long, global = true, env = "FERRID_KEYS_DIR", default_value = DEFAULT_KEYS_DIR)]
    pub keys_dir: PathBuf,

    /// Most database connections a server opens. Default: 10.
    #[arg(
        long,
        global = true,
        env = "FERRID_DATABASE_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub database_max_connections: u32,
}

/// The flags of `ferrid serve`.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Default: 127.0.0.1:8080.
    #[arg(long, env = "FERRID_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Serve /metrics on this address instead, on a listener of its own (e.g. 127.0.0.1:9090,
    /// or an address only your monitoring reaches); the main listener then has no /metrics.
    /// Default: /metrics on --bind.
    #[arg(long, env = "FERRID_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// The issuer: used as `iss` and to build every URL in discovery. Default: `http://<bind>`.
    #[arg(long, env = "FERRID_ISSUER")]
    pub issuer: Option<String>,

    /// Lifetime of access tokens. Default: 15m.
    #[arg(long, env = "FERRID_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = parse_ttl)]
    pub access_token_ttl: Duration,

    /// Lifetime of ID tokens. Default: 15m.
    #[arg(long, env = "FERRID_ID_TOKEN_TTL", default_value = "15m", value_parser = parse_ttl)]
    pub id_token_ttl: Duration,

    /// Absolute lifetime of a refresh-token family. Default: 30d.
    #[arg(long, env = "FERRID_REFRESH_TOKEN_TTL", default_value = "30d", value_parser = parse_ttl)]
    pub refresh_token_ttl: Duration,

    /// For how long after a refresh the same refresh token may be presented once more (its
    /// answer was lost) and get the same new refresh token, instead of counting as a replay
    /// that ends the session. At most 60s. Default: 0s (every second presentation is a replay).
    #[arg(long, env = "FERRID_REFRESH_RETRY_WINDOW", default_value = "0s", value_parser = parse_retry_window)]
    pub refresh_retry_window: Duration,

    /// argon2id memory cost in KiB. Default: 19456 (OWASP).
    #[arg(long, env = "FERRID_ARGON2_MEMORY_KIB", default_value_t = HashParams::default().memory_kib)]
    pub argon2_memory_kib: u32,

    /// argon2id iterations. Default: 2 (OWASP).
    #[arg(long, env = "FERRID_ARGON2_ITERATIONS", default_value_t = HashParams::default().iterations)]
    pub argon2_iterations: u32,

    /// argon2id lanes. Default: 1 (OWASP).
    #[arg(long, env = "FERRID_ARGON2_PARALLELISM", default_value_t = HashParams::default().parallelism)]
    pub argon2_parallelism: u32,

    /// Password checks that may wait for a free core before logins are answered 503.
    /// Default: 128 per core (about 1.7 s of work at OWASP parameters).
    #[arg(long, env = "FERRID_HASH_QUEUE")]
    pub hash_queue: Option<usize>,

    /// Failed logins per username and client address before each further attempt must wait
    /// (a delay that doubles, up to --login-max-delay). Default: 5.
    #[arg(long, env = "FERRID_LOGIN_FREE_FAILURES", default_value_t = 5)]
    pub login_free_failures: u32,

    /// The longest wait imposed after failed logins. Default: 60s.
    #[arg(long, env = "FERRID_LOGIN_MAX_DELAY", default_value = "60s", value_parser = parse_ttl)]
    pub login_max_delay: Duration,

    /// Take the client address from the last X-Forwarded-For entry (set this behind a proxy
    /// that appends it, and only then). Default: off.
    #[arg(long, env = "FERRID_TRUST_X_FORWARDED_FOR")]
    pub trust_x_forwarded_for: bool,

    /// Most client connections served at once. Default: 4096.
    #[arg(long, env = "FERRID_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Rotate the signing key on a schedule, e.g. 30d: a new key is published
    /// --key-publish-ahead before it starts signing, and old keys leave the JWKS once their
    /// tokens have expired. With replicas, one of them rotates. Default: off (`ferrid keys
    /// rotate` by hand).
    #[arg(long, env = "FERRID_KEY_ROTATION_INTERVAL", value_parser = parse_ttl)]
    pub key_rotation_interval: Option<Duration>,

    /// How long a new key is in the JWKS before it signs, so resource servers have it cached
    /// first. At least 6m (the JWKS max-age, 5m, plus a minute). Default: 1h.
    #[arg(long, env = "FERRID_KEY_PUBLISH_AHEAD", default_value = "1h", value_parser = parse_publish_ahead)]
    pub key_publish_ahead: Duration,

    /// On an empty database, create a demo client and user and print how to get a token.
    #[arg(long, env = "FERRID_DEMO")]
    pub demo: bool,
}

/// Parses a human duration (`90s`, `15m`, `30d`); zero is refused.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration such as 90s, 15m, 12h or 30d"))?;
    if d.is_zero() {
        return Err("a lifetime must be longer than zero".into());
    }
    Ok(d)
}

/// The longest `--refresh-retry-window`: a retry is a lost answer on a bad network, retried
/// within seconds; a longer window would only give a thief more time.
pub const MAX_REFRESH_RETRY_WINDOW_SECS: u64 = 60;

/// Parses `--refresh-retry-window`: zero (off) up to [`MAX_REFRESH_RETRY_WINDOW_SECS`].
pub fn parse_retry_window(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration such as 0s or 5s"))?;
    if d.subsec_nanos() != 0 {
        return Err("give whole seconds, e.g. 5s".into());
    }
    if d.as_secs() > MAX_REFRESH_RETRY_WINDOW_SECS {
        return Err(format!(
            "at most {MAX_REFRESH_RETRY_WINDOW_SECS}s: the window is for a client retrying a \
             lost answer, and a longer one gives whoever stole a refresh token more time"
        ));
    }
    Ok(d)
}

/// The longest `--key-publish-ahead` (30 days): more is a mistake, not a plan.
pub const MAX_PUBLISH_AHEAD_SECS: u64 = 30 * 86_400;

/// Parses `--key-publish-ahead`: from [`MIN_PUBLISH_AHEAD_SECS`] to [`MAX_PUBLISH_AHEAD_SECS`].
pub fn parse_publish_ahead(s: &str) -> Result<Duration, String> {
    let d = parse_ttl(s)?;
    if d.as_secs() > MAX_PUBLISH_AHEAD_SECS {
        return Err(format!(
            "at most {}d: a staged key sits unused in the JWKS until then",
            MAX_PUBLISH_AHEAD_SECS / 86_400
        ));
    }
    if (d.as_secs() as i64) < MIN_PUBLISH_AHEAD_SECS {
        return Err(format!(
            "a new key must be published at least {}s ahead: resource servers may cache the \
             JWKS for {}s; for an immediate switch (a compromised key) run `ferrid keys rotate --now`",
            MIN_PUBLISH_AHEAD_SECS, JWKS_MAX_AGE_SECS
        ));
    }
    Ok(d)
}

/// The rotation schedule from `--key-rotation-interval` and `--key-publish-ahead`: the
/// interval must leave room for a key to be published ahead and then sign for as long again.
pub fn schedule(
    interval: Option<Duration>,
    publish_ahead: Duration,
) -> anyhow::Result<Option<Schedule>> {
    let Some(interval) = interval else {
        return Ok(None);
    };
    let (interval, publish_ahead) = (interval.as_secs() as i64, publish_ahead.as_secs() as i64);
    if interval < 2 * publish_ahead {
        anyhow::bail!(
            "--key-rotation-interval ({interval}s) must be at least twice --key-publish-ahead \
             ({publish_ahead}s), so each key signs at least as long as it was published ahead"
        );
    }
    Ok(Some(Schedule {
        interval,
        publish_ahead,
    }))
}

/// Everything `App::build` needs, validated.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    /// `Some`: /metrics is served there, and not on `bind`.
    pub metrics_bind: Option<SocketAddr>,
    /// `None`: `http://<the address actually bound>`.
    pub issuer: Option<String>,
    pub database_url: String,
    pub database_max_connections: u32,
    pub keys_dir: PathBuf,
    pub access_token_ttl: Duration,
    pub id_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Zero: off.
    pub refresh_retry_window: Duration,
    pub hash_params: HashParams,
    pub hash_workers: usize,
    pub hash_queue: usize,
    pub demo: bool,
    /// How often the keys dir is checked for changes (SIGHUP checks at once), and a
    /// scheduled rotation for being due.
    pub keys_reload_interval: Duration,
    /// Rotation on a schedule, if on.
    pub key_schedule: Option<Schedule>,
    /// How often expired refresh tokens and revocation records are deleted.
    pub purge_interval: Duration,
    /// Most client connections at once.
    pub max_connections: usize,
    /// Brute-force throttling of password checks.
    pub login_throttle: ThrottlePolicy,
    /// Whether the client address comes from X-Forwarded-For.
    pub trust_x_forwarded_for: bool,
    /// How long a client may take to send a request's headers (idle connections included).
    pub header_read_timeout: Duration,
}

impl ServeConfig {
    /// Defaults for everything but where the data lives: what tests start from.
    pub fn new(database_url: impl Into<String>, keys_dir: impl Into<PathBuf>) -> Self {
        let workers = available_cores();
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_bind: None,
            issuer: None,
            database_url: database_url.into(),
            database_max_connections: 10,
            keys_dir: keys_dir.into(),
            access_token_ttl: Duration::from_secs(15 * 60),
            id_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_retry_window: Duration::ZERO,
            hash_params: HashParams::default(),
            hash_workers: workers,
            hash_queue: 128 * workers,
            demo: false,
            keys_reload_interval: Duration::from_secs(5),
            key_schedule: None,
            purge_interval: Duration::from_secs(10 * 60),
            max_connections: 4096,
            login_throttle: ThrottlePolicy::default(),
            trust_x_forwarded_for: false,
            header_read_timeout: Duration::from_secs(10),
        }
    }

    pub fn from_args(serve: ServeArgs, storage: StorageArgs) -> anyhow::Result<Self> {
        let mut config = Self::new(storage.database_url, storage.keys_dir);
        config.database_max_connections = storage.database_max_connections;
        if let Some(issuer) = &serve.issuer {
            validate_issuer(issuer)?;
        }
        config.bind = serve.bind;
        config.metrics_bind = serve.metrics_bind;
        config.issuer = serve.issuer;
        config.access_token_ttl = serve.access_token_ttl;
        config.id_token_ttl = serve.id_token_ttl;
        config.refresh_token_ttl = serve.refresh_token_ttl;
        config.refresh_retry_window = serve.refresh_retry_window;
        config.hash_params = HashParams {
            memory_kib: serve.argon2_memory_kib,
            iterations: serve.argon2_iterations,
            parallelism: serve.argon2_parallelism,
        };
        if let Some(queue) = serve.hash_queue {
            config.hash_queue = queue;
        }
        config.key_schedule = schedule(serve.key_rotation_interval, serve.key_publish_ahead)?;
        config.demo = serve.demo;
        config.max_connections = serve.max_connections;
        config.login_throttle = ThrottlePolicy {
            free_failures: serve.login_free_failures,
            max_delay_secs: serve.login_max_delay.as_secs().max(1) as i64,
        };
        config.trust_x_forwarded_for = serve.trust_x_forwarded_for;
        Ok(config)
    }
}

/// OIDC Discovery §3 / RFC 8414 §2: the issuer is an https (or, for development, http) URL
/// with no query or fragment. A trailing slash is kept as given: `iss` is compared as a string.
pub fn validate_issuer(issuer: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(issuer).map_err(|e| {
        anyhow::anyhow!(
            "--issuer {issuer:?} is not a URL ({e}); give one like https://id.example.com"
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        anyhow::bail!("--issuer must be an https:// (or http:// for development) URL with a host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        anyhow::bail!("--issuer may not have a query or fragment (RFC 8414 §2)");
    }
    Ok(())
}

pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_human_durations() {
        assert_eq!(parse_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("30d").unwrap(), Duration::from_secs(30 * 86400));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("soon").unwrap_err().contains("15m"));
    }

    #[test]
    fn the_refresh_retry_window_is_off_by_default_and_short() {
        assert_eq!(parse_retry_window("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_retry_window("5s").unwrap(), Duration::from_secs(5));
        assert!(
            parse_retry_window("5m")
                .unwrap_err()
                .contains("at most 60s")
        );
        assert!(parse_retry_window("soon").is_err());
        assert!(
            parse_retry_window("500ms")
                .unwrap_err()
                .contains("whole seconds")
        );
    }

    #[test]
    fn keys_are_published_ahead_long_enough_and_rotated_no_faster_than_that() {
        assert!(parse_publish_ahead("1h").is_ok());
        assert!(
            parse_publish_ahead("100000y")
                .unwrap_err()
                .contains("at most 30d")
        );
        let short = parse_publish_ahead("1m").unwrap_err();
        assert!(short.contains("--now"), "{short}");
        let hour = Duration::from_secs(3600);
        assert_eq!(schedule(None, hour).unwrap(), None);
        assert_eq!(
            schedule(Some(hour * 24 * 30), hour).unwrap(),
            Some(Schedule {
                interval: 30 * 86400,
                publish_ahead: 3600
            })
        );
        let fast = schedule(Some(hour), hour).unwrap_err().to_string();
        assert!(fast.contains("twice"), "{fast}");
    }

    #[test]
    fn issuers_must_be_plain_http_urls() {
        assert!(validate_issuer("https://id.example.com").is_ok());
        assert!(validate_issuer("http://127.0.0.1:8080/tenant/").is_ok());
        assert!(validate_issuer("id.example.com").is_err());
        assert!(validate_issuer("https://id.example.com/?x=1").is_err());
        assert!(validate_issuer("ftp://id.example.com").is_err());
    }
}
