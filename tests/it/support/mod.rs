//! The test harness: a real ferrid on a loopback port 0, with a fresh database and keys dir
//! per test, driven over HTTP; and the real `ferrid` binary for command-line tests.
//!
//! The database is a SQLite file in the test's temp dir, or — when `FERRID_TEST_DATABASE`
//! holds a PostgreSQL URL (an account that may create databases) — a fresh PostgreSQL
//! database per test, dropped when the test's [`TestDir`] goes. An unreachable PostgreSQL
//! fails the test; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod api;
pub mod chrome;
pub mod code_flow;
pub mod receiver;

pub use api::{Api, at_header, field, insecure_claims, kid_of, kids, signing_key_pem};

use ferrid::app::App;
use ferrid::clock::Clock;
use ferrid::config::ServeConfig;
use ferrid::model::{Client, GrantType, ScopeSet, Secret};
use ferrid::oauth::client_auth::hash_client_secret;
use ferrid::password::{HashParams, Passwords};
use ferrid::store::{NewUser, Store};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A confidential client registered for the password grant, and its secret.
pub const CLIENT: &str = "web";
pub const CLIENT_SECRET: &str = "web-secret-0123456789-0123456789-0123456789";
/// A user with a password and the permission `items:read`.
pub const USER: &str = "ada";
pub const PASSWORD: &str = "correct horse battery staple";

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        ferrid::telemetry::init(false);
    }
}

/// The PostgreSQL server URL the suite runs against, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("FERRID_TEST_DATABASE")
        .ok()
        .filter(|u| u.starts_with("postgres"))
}

/// A test's temp dir (keys, logs, SQLite file) and its database.
pub struct TestDir {
    pub dir: TempDir,
    database_url: String,
    pg: Option<PgDatabase>,
}

impl TestDir {
    pub fn new() -> Self {
        tempfile::tempdir().expect("temp dir").into()
    }

    /// A dir whose database is SQLite whatever the suite runs against.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = format!("sqlite://{}", dir.path().join("ferrid.db").display());
        std::fs::write(dir.path().join(".database_url"), &database_url).expect("write url");
        TestDir {
            dir,
            database_url,
            pg: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }
}

impl From<TempDir> for TestDir {
    fn from(dir: TempDir) -> Self {
        let (database_url, pg) = match postgres_url() {
            Some(server) => {
                let db = PgDatabase::create(&server);
                (db.url.clone(), Some(db))
            }
            None => (
                format!("sqlite://{}", dir.path().join("ferrid.db").display()),
                None,
            ),
        };
        // The command-line helpers find the database through this file.
        std::fs::write(dir.path().join(".database_url"), &database_url).expect("write url");
        TestDir {
            dir,
            database_url,
            pg,
        }
    }
}

/// The database URL of a test dir (see [`TestDir`]).
pub fn database_url_for(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(".database_url"))
        .unwrap_or_else(|_| format!("sqlite://{}", dir.join("ferrid.db").display()))
}

/// A PostgreSQL database made for one test and dropped after it.
struct PgDatabase {
    server: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create(server: &str) -> Self {
        let name = format!("ferrid_test_{}", uuid::Uuid::new_v4().simple());
        let mut url = url::Url::parse(server).expect("FERRID_TEST_DATABASE is a URL");
        url.set_path(&name);
        let db = PgDatabase {
            server: server.to_owned(),
            name,
            url: url.to_string(),
        };
        db.admin(format!("create database \"{}\"", db.name));
        db
    }

    /// Runs one statement on the server, from a thread of its own (tests call this from
    /// inside a tokio runtime, and from `Drop`).
    fn admin(&self, sql: String) {
        let server = self.server.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&server)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("FERRID_TEST_DATABASE={server} is unreachable: {e}")
                    });
                sqlx::query(&sql)
                    .execute(&mut conn)
                    .await
                    .expect("admin statement");
            })
        })
        .join()
        .expect("admin thread");
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        self.admin(format!(
            "drop database if exists \"{}\" with (force)",
            self.name
        ));
    }
}

pub struct TestApp {
    pub base: String,
    /// `--metrics-bind`'s listener, when the test gave one.
    pub metrics_base: Option<String>,
    pub dir: TestDir,
    pub clock: Clock,
    pub store: Store,
    /// The server's brute-force throttle (to look at its memory).
    pub throttle: std::sync::Arc<ferrid::oauth::throttle::Throttle>,
    /// The typed client, with no client credentials (`api.as_client(…)` adds them).
    pub api: Api,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// A server on a fresh temp dir with the standard client and user.
    pub async fn spawn() -> Self {
        Self::spawn_empty()
            .await
            .with_standard_client_and_user()
            .await
    }

    /// Adds the standard client and user (what [`TestApp::spawn`] starts with).
    pub async fn with_standard_client_and_user(self) -> Self {
        let app = self;
        app.add_client(
            CLIENT,
            Some(CLIENT_SECRET),
            &["password"],
            "openid profile email items:read items:write",
        )
        .await;
        app.add_user(USER, PASSWORD, "items:read").await;
        app
    }

    /// A server on a fresh temp dir with no users or clients.
    pub async fn spawn_empty() -> Self {
        Self::spawn_in(TestDir::new(), Clock::system()).await
    }

    pub fn config_for(dir: &TestDir) -> ServeConfig {
        let mut config = ServeConfig::new(dir.database_url(), dir.path().join("keys"));
        config.bind = "127.0.0.1:0".parse().expect("addr");
        config.keys_reload_interval = Duration::from_millis(200);
        config
    }

    pub async fn spawn_in(dir: impl Into<TestDir>, clock: Clock) -> Self {
        Self::spawn_with(dir, clock, |_| {}).await
    }

    pub async fn spawn_with(
        dir: impl Into<TestDir>,
        clock: Clock,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        init_logs();
        let dir = dir.into();
        let mut config = Self::config_for(&dir);
        tweak(&mut config);
        let app = App::build_with_clock(config, clock.clone())
            .await
            .expect("app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
        let store = app.store().clone();
        let throttle = app.throttle().clone();
        let api = Api::new(&base);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Self {
            base,
            metrics_base,
            dir,
            clock,
            store,
            throttle,
            api,
            http,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server (gracefully) and hands back its files and database.
    pub async fn stop(mut self) -> TestDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
        self.store.close().await;
        std::mem::replace(&mut self.dir, TestDir::sqlite())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    pub async fn add_client(&self, id: &str, secret: Option<&str>, grants: &[&str], scopes: &str) {
        let client = Client {
            id: id.into(),
            secret_hash: secret.map(hash_client_secret),
            grant_types: grants
                .iter()
                .map(|g| g.parse::<GrantType>().expect("grant"))
                .collect(),
            scopes: ScopeSet::parse(scopes).expect("scopes"),
            redirect_uris: vec![],
            audiences: vec![],
            created_at: self.clock.now(),
            ..Default::default()
        };
        self.store
            .insert_client(&client)
            .await
            .expect("client inserted");
    }

    pub async fn add_user(&self, username: &str, password: &str, scopes: &str) {
        let hash = hash_password(password).await;
        let user = NewUser {
            username: username.into(),
            password_hash: hash,
            name: Some(format!("{username} Lovelace")),
            email: Some(format!("{username}@example.com")),
            email_verified: true,
            scopes: ScopeSet::parse(scopes).expect("scopes"),
            disabled: false,
        };
        self.store
            .insert_user(&user, self.clock.now())
            .await
            .expect("user inserted");
    }

    /// `POST /token` with a form body and, optionally, Basic client credentials: the raw
    /// response (for the tests that look at headers and error shapes).
    pub async fn token(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url("/token")).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().await.expect("token request")
    }

    /// The standard client.
    pub fn web(&self) -> Api {
        self.api.as_client(CLIENT, CLIENT_SECRET)
    }

    /// A password grant for the standard user and client; returns the JSON body.
    pub async fn login(&self, scope: &str) -> Value {
        let (status, body) = self.web().login(USER, PASSWORD, Some(scope)).await;
        assert_eq!(status, 200, "login failed: {body}");
        body
    }

    pub async fn userinfo(&self, token: &str) -> reqwest::Response {
        self.api.userinfo(token).await
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.http.get(self.url(path)).send().await.expect("request");
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.expect("json")
    }

    /// Polls until `check` holds, for at most `limit`.
    pub async fn eventually<F, Fut>(&self, limit: Duration, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while start.elapsed() < limit {
            if check().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// An argon2id hash with the production parameters, computed off the test's runtime workers.
pub async fn hash_password(password: &str) -> Secret {
    let password = Secret::new(password);
    tokio::task::spawn_blocking(move || {
        Passwords::new(HashParams::default(), 1, 0)
            .expect("hasher")
            .hash_blocking(&password)
            .expect("hash")
    })
    .await
    .expect("hash task")
}

/// The `ferrid` binary built for this test run.
pub fn ferrid() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrid"));
    cmd.env_remove("RUST_LOG")
        .env_remove("FERRID_DATABASE_URL")
        .env_remove("FERRID_KEYS_DIR");
    cmd
}

/// Runs `ferrid ARGS --database-url … --keys-dir …` on `dir`, with `stdin` as its input.
/// [`ferrid_cli`] off the runtime's workers: for tests whose server runs on them.
pub async fn ferrid_cli_async(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ferrid_cli(&dir, &args, &stdin)
    })
    .await
    .expect("the command ran")
}

pub fn ferrid_cli(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command = ferrid();
    command
        .args(args)
        .arg("--database-url")
        .arg(database_url_for(dir))
        .arg("--keys-dir")
        .arg(dir.join("keys"));
    run_with_stdin(command, stdin)
}

/// Runs `command` with `stdin` written to it, and collects what it printed.
pub fn run_with_stdin(mut command: std::process::Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} cannot start: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("the command finishes")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A `ferrid serve` process on a loopback port 0, its stderr in a file.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub stdout_file: PathBuf,
    pub log_file: PathBuf,
}

impl Server {
    /// Starts `ferrid serve` on `dir` and waits until it serves.
    pub fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        #[allow(clippy::disallowed_methods)] // only names the log file
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let log_file = dir.join(format!("serve-{n}.log"));
        let stdout_file = dir.join(format!("serve-{n}.out"));
        let mut cmd = ferrid();
        cmd.arg("serve")
            .args(["--bind", "127.0.0.1:0"])
            .arg("--database-url")
            .arg(database_url_for(dir))
            .arg("--keys-dir")
            .arg(dir.join("keys"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_file).expect("stdout file"))
            .stderr(std::fs::File::create(&log_file).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("ferrid serve starts");
        let start = Instant::now();
        loop {
            let log = std::fs::read_to_string(&log_file).unwrap_or_default();
            if let Some(addr) = log
                .lines()
                .find(|l| l.contains("ferrid is serving"))
                .and_then(|l| l.split("addr=").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
            {
                return Server {
                    child,
                    base: format!("http://{addr}"),
                    stdout_file,
                    log_file,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("ferrid serve exited with {status}: {log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "ferrid serve did not start: {log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Hands the process over (to kill it elsewhere); this `Server` then manages nothing.
    pub fn take_child(&mut self) -> Child {
        let placeholder = Command::new("true").spawn().expect("true runs");
        std::mem::replace(&mut self.child, placeholder)
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGTERM, then waits; returns whether it exited successfully.
    pub fn stop(mut self) -> bool {
        self.signal("TERM");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if start.elapsed() > Duration::from_secs(15) {
                let _ = self.child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_file).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user for [`provision`]: username, password, and more `ferrid user add` flags.
pub type NewCliUser<'a> = (&'a str, &'a str, &'a [&'a str]);

/// Sets up a test dir through the real command line: `ferrid client add CLIENT ARGS…` and
/// `ferrid user add` for each user; returns the client's secret.
pub fn provision(dir: &Path, client: &str, args: &[&str], users: &[NewCliUser<'_>]) -> String {
    let secret = cli_add_client(dir, client, args);
    for (username, password, flags) in users {
        let mut args = vec!["user", "add", username];
        args.extend_from_slice(flags);
        let out = ferrid_cli(dir, &args, &format!("{password}\n"));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    secret
}

/// `ferrid client add ID ARGS… --json` through the real binary; returns the secret it
/// generated and printed once.
pub fn cli_add_client(dir: &Path, id: &str, args: &[&str]) -> String {
    let mut all = vec!["client", "add", id];
    all.extend_from_slice(args);
    all.push("--json");
    let out = ferrid_cli(dir, &all, "");
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert_eq!(printed["client_id"], id);
    printed["client_secret"]
        .as_str()
        .expect("a secret")
        .to_owned()
}

/// The sealed successor stored for refresh token `token` (by its digest), read straight from
/// the database (the retry window).
pub async fn sealed_successor(dir: &TestDir, token: &str) -> Option<String> {
    let hash = ferrid::tokens::opaque::sha256_hex(token);
    let sql = "select successor_sealed from refresh_tokens where hash = $1";
    let url = dir.database_url();
    if dir.is_postgres() {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query_scalar(sql)
            .bind(hash)
            .fetch_one(&pool)
            .await
            .unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query_scalar(sql)
            .bind(hash)
            .fetch_one(&pool)
            .await
            .unwrap()
    }
}
