//! Wiring: the only module that knows every other one. `App::build` connects and migrates the
//! store, loads (or creates) the signing keys, binds the listener and builds the router;
//! `run_until_stopped` serves until the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::ServeConfig;
use crate::http::{self, AppState, discovery::Discovery};
use crate::oauth::throttle::Throttle;
use crate::oauth::{Lifetimes, OAuth};
use crate::password::Passwords;
use crate::store::Store;
use crate::tokens::{Keys, TokenIssuer, keys};

pub struct App {
    listener: TcpListener,
    /// `--metrics-bind`: /metrics on a listener of its own.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    /// The database (the purge task, `--demo`, and tests reach it here).
    store: Store,
    throttle: Arc<Throttle>,
    passwords: Passwords,
    keys_dir: PathBuf,
    keys_reload_interval: Duration,
    purge_interval: Duration,
    limits: http::serve::Limits,
}

impl App {
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::system()).await
    }

    /// As [`App::build`], with a clock the caller controls (tests move it forward).
    pub async fn build_with_clock(config: ServeConfig, clock: Clock) -> anyhow::Result<Self> {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let store = Store::connect_counted(
            &config.database_url,
            config.database_max_connections,
            metrics.clone(),
        )
        .await?;

        let dir = config.keys_dir.clone();
        // A key leaves the JWKS once the longest-lived token it can have signed has expired.
        let longest_token = config
            .access_token_ttl
            .max(config.id_token_ttl)
            .as_secs()
            .max(crate::oauth::backchannel::LOGOUT_TOKEN_TTL_SECS as u64);
        let key_policy = keys::KeyPolicy::for_tokens(
            longest_token as i64,
            config.keys_reload_interval.as_secs_f64().ceil() as i64,
            config.key_schedule,
        );
        let now = clock.now();
        let (ring, secret) = tokio::task::spawn_blocking(move || {
            let ring = keys::load_or_generate(&dir, now, key_policy)?;
            // A schedule needs a dir it can lock and write: say so now, not every minute.
            if key_policy.schedule.is_some() {
                keys::check_rotatable(&dir)?;
            }
            anyhow::Ok((ring, keys::load_or_create_secret(&dir)?))
        })
        .await?
        .with_context(|| {
            format!(
                "cannot load the signing keys or the server secret from {}",
                config.keys_dir.display()
            )
        })?;
        // Replicas must share one secret (their throttle counters meet only then): its
        // fingerprint, which reveals nothing of it, lets an operator compare them.
        tracing::info!(
            fingerprint = keys::secret_fingerprint(&secret),
            "server secret loaded from {}",
            keys::SECRET_FILE
        );
        if let Some(mode) = keys::dir_mode(&config.keys_dir).filter(|m| m & 0o077 != 0) {
            tracing::warn!(
                dir = %config.keys_dir.display(),
                "keys dir has mode {mode:o}; run: chmod 700 {}",
                config.keys_dir.display()
            );
        }

        let (params, workers, queue) = (config.hash_params, config.hash_workers, config.hash_queue);
        let hash_duration = metrics.hash_duration();
        let passwords = tokio::task::spawn_blocking(move || {
            Passwords::new(params, workers, queue).map(|p| p.timed(hash_duration))
        })
        .await??;

        let listener = TcpListener::bind(config.bind).await.with_context(|| {
            format!(
                "cannot listen on {}; is another server using it? choose another with --bind",
                config.bind
            )
        })?;
        let metrics_listener = match config.metrics_bind {
            Some(bind) => Some(TcpListener::bind(bind).await.with_context(|| {
                format!("cannot listen on {bind} for /metrics; choose another with --metrics-bind")
            })?),
            None => None,
        };
        let addr = listener.local_addr()?;
        let issuer = config
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        if config.issuer.is_none() && addr.ip().is_unspecified() {
            tracing::warn!(
                issuer,
                "no --issuer given while listening on all interfaces: relying parties cannot use \
                 this issuer URL; set --issuer to the URL they reach, e.g. https://id.example.com"
            );
        }

        let throttle = Arc::new(Throttle::new(
            config.login_throttle,
            &keys::derive_key(&secret, "ferrid login throttle v1"),
            store.shares_login_failures().then(|| store.clone()),
        ));
        let oauth = OAuth::new(
            store.clone(),
            TokenIssuer::new(issuer.clone(), Keys::new(ring)),
            passwords.clone(),
            Lifetimes {
                access_token: config.access_token_ttl,
                id_token: config.id_token_ttl,
                refresh_token: config.refresh_token_ttl,
                refresh_retry_window: config.refresh_retry_window,
            },
            throttle.clone(),
            metrics.clone(),
            &keys::derive_key(&secret, "ferrid consent ticket v1"),
        );
        let state = AppState::new(crate::http::state::ServerContext {
            trust_x_forwarded_for: config.trust_x_forwarded_for,
            cookies: http::cookies::Cookies::for_issuer(&issuer),
            oauth,
            clock,
            discovery: Arc::new(Discovery::new(&issuer)),
        });
        Ok(Self {
            listener,
            metrics_listener,
            state,
            store,
            throttle,
            passwords,
            keys_dir: config.keys_dir,
            keys_reload_interval: config.keys_reload_interval,
            purge_interval: config.purge_interval,
            limits: http::serve::Limits {
                max_connections: config.max_connections,
                header_read_timeout: config.header_read_timeout,
                ..Default::default()
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Where `--metrics-bind` listens, if it was given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn issuer(&self) -> &str {
        self.state.oauth.issuer()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The hasher (the command line's `serve --demo` hashes its user's password).
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// The brute-force throttle (tests look at its memory).
    pub fn throttle(&self) -> &Arc<Throttle> {
        &self.throttle
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish. Meanwhile the
    /// keys dir is watched: a change is picked up within the reload interval, or at once on
    /// SIGHUP.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let watcher = tokio::spawn(watch_keys(
            self.state.oauth.keys().clone(),
            self.keys_dir.clone(),
            self.keys_reload_interval,
            self.state.clock.clone(),
        ));
        let purger = tokio::spawn(purge_expired(
            self.store.clone(),
            self.state.clock.clone(),
            self.purge_interval,
        ));
        let probe = tokio::spawn(self.store.clone().watch_health());
        // Memory freed while idle (start-up's, the hashing threads') goes back to the OS.
        let housekeeping = tokio::spawn(crate::memory::housekeeping());
        let logouts = tokio::spawn(
            self.state
                .oauth
                .clone()
                .deliver_logout_tokens(self.state.clock.clone()),
        );
        tracing::info!(issuer = self.issuer(), addr = %self.local_addr(), "ferrid is serving");
        let separate_metrics = self.metrics_listener.is_some();
        // The metrics listener stops with the main one.
        let (stopped, stop_metrics) = tokio::sync::watch::channel(());
        let metrics_server = self.metrics_listener.map(|listener| {
            let router = http::metrics_service(self.state.clone());
            let mut stop = stop_metrics;
            tracing::info!(addr = ?listener.local_addr().ok(), "serving /metrics on its own listener");
            tokio::spawn(http::serve::serve(
                listener,
                router,
                http::serve::Limits {
                    max_connections: 64,
                    ..self.limits
                },
                async move {
                    let _ = stop.changed().await;
                },
            ))
        });
        // Both listeners begin their graceful stop at once.
        let shutdown = async move {
            shutdown.await;
            drop(stopped);
        };
        http::serve::serve(
            self.listener,
            http::service(self.state, !separate_metrics),
            self.limits,
            shutdown,
        )
        .await;
        if let Some(server) = metrics_server {
            let _ = server.await;
        }
        watcher.abort();
        purger.abort();
        logouts.abort();
        probe.abort();
        housekeeping.abort();
        Ok(())
    }
}

/// Deletes expired refresh-token families and revocation records every `interval`. The
/// deletes go in small batches, so requests waiting for the database are never held long.
async fn purge_expired(store: Store, clock: Clock, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        match store.purge_expired(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "purged expired refresh tokens and revocations"),
            Err(e) => tracing::warn!(error = %e, "purging expired tokens failed; will retry"),
        }
    }
}

/// Keeps the key ring current: rebuilds it when the keys dir changes (checked every
/// `interval`, and at once on SIGHUP) and when a staged key's start or an old key's
/// retirement comes; rotates on the schedule, if there is one. A dir that fails to load keeps
/// the keys already served, and says why in the log.
async fn watch_keys(keys: Keys, dir: PathBuf, interval: Duration, clock: Clock) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let fingerprint = |dir: PathBuf| async move {
        tokio::task::spawn_blocking(move || keys::fingerprint(&dir))
            .await
            .ok()
            .and_then(Result::ok)
    };
    let mut last = fingerprint(dir.clone()).await;
    // A rotation that failed (a read-only dir, say) is retried after a minute, not every tick;
    // so is a timed rebuild of a dir that fails to load (a change to the dir retries at once).
    let mut retry_rotation_at = i64::MIN;
    let mut retry_load_at = i64::MIN;
    loop {
        let forced = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => true,
        };
        let now = clock.now();
        let ring = keys.current();
        let policy = ring.policy();
        let mut rotated = false;
        if let Some(schedule) = policy.schedule
            && now >= ring.next_scheduled_publish(schedule)
            && now >= retry_rotation_at
        {
            let rotate_dir = dir.clone();
            match tokio::task::spawn_blocking(move || keys::rotate_if_due(&rotate_dir, now, policy))
                .await
            {
                Ok(Ok(Some(kid))) => {
                    rotated = true;
                    tracing::info!(
                        event = "key_rotated",
                        kid,
                        signs_from = now + schedule.publish_ahead,
                        "scheduled rotation: a new key is published and signs after --key-publish-ahead"
                    );
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    retry_rotation_at = now + 60;
                    tracing::error!(error = %e, "scheduled key rotation failed; retrying in a minute (the keys dir must be writable by ferrid for --key-rotation-interval)");
                }
                Err(e) => tracing::error!(error = %e, "key rotation task failed"),
            }
        }
        let fresh = fingerprint(dir.clone()).await;
        let due = ring.next_change().is_some_and(|t| now >= t) && now >= retry_load_at;
        if !forced && !rotated && !due && fresh == last {
            continue;
        }
        last = fresh;
        let load_dir = dir.clone();
        // The key this server signed with until now stops signing no earlier than now.
        let previous = keys::SignedUntil {
            kid: ring.signing(now).0.to_owned(),
            until: now,
        };
        match tokio::task::spawn_blocking(move || {
            keys::load(&load_dir, now, policy, Some(&previous))
        })
        .await
        {
            Ok(Ok(ring)) => {
                tracing::info!(
                    signing_kid = ring.signing_kid(),
                    keys = ring.keys().len(),
                    "signing keys reloaded"
                );
                keys.replace(ring);
            }
            Ok(Err(e)) => {
                retry_load_at = now + 60;
                tracing::error!(error = %e, "keys dir changed but cannot be loaded; still serving the previous keys")
            }
            Err(e) => tracing::error!(error = %e, "key reload task failed"),
        }
    }
}
