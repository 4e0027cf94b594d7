//! Several ferrid processes on one database and one keys dir behave as one provider; a
//! database outage is answered 503 quickly and healed by itself; `ferrid db copy` moves a
//! SQLite deployment over without logging anyone out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Server, TestDir, ferrid_cli, postgres_url, stderr, stdout};

const PASSWORD: &str = "replica test password";
const ISSUER: [&str; 2] = ["--issuer", "http://ferrid.test"];

/// Registers a client for password + refresh_token and a user; returns the client secret.
fn provision(dir: &Path) -> String {
    let secret = crate::support::cli_add_client(
        dir,
        "app",
        &[
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid",
            "--scope",
            "items:read",
        ],
    );
    let out = ferrid_cli(
        dir,
        &["user", "add", "ada", "--scope", "items:read"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    secret
}

struct Rp {
    http: reqwest::Client,
    secret: String,
}

impl Rp {
    fn new(secret: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        Rp { http, secret }
    }

    async fn token(&self, base: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{base}/token"))
            .basic_auth("app", Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self, base: &str) -> (u16, Value) {
        self.token(
            base,
            &[
                ("grant_type", "password"),
                ("username", "ada"),
                ("password", PASSWORD),
                ("scope", "openid items:read"),
            ],
        )
        .await
    }

    async fn refresh(&self, base: &str, token: &str) -> (u16, Value) {
        self.token(
            base,
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        )
        .await
    }

    async fn userinfo(&self, base: &str, access: &str) -> u16 {
        self.http
            .get(format!("{base}/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn introspect(&self, base: &str, token: &str) -> Value {
        self.http
            .post(format!("{base}/introspect"))
            .basic_auth("app", Some(&self.secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn kids(&self, base: &str) -> usize {
        let jwks: Value = self
            .http
            .get(format!("{base}/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks["keys"].as_array().unwrap().len()
    }
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no {k} in {v}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_behave_as_one_provider() {
    let dir = TestDir::new();
    let rp = Rp::new(provision(dir.path()));
    let a = Server::start(dir.path(), &ISSUER, &[]);
    let b = Server::start(dir.path(), &ISSUER, &[]);

    // A token from A works at B.
    let (status, at_a) = rp.login(&a.base).await;
    assert_eq!(status, 200);
    assert_eq!(rp.userinfo(&b.base, &s(&at_a, "access_token")).await, 200);
    assert_eq!(
        rp.introspect(&b.base, &s(&at_a, "access_token")).await["active"],
        true
    );

    // A's refresh token refreshes at B; a replay at A then revokes the family at B too.
    let (status, at_b) = rp.refresh(&b.base, &s(&at_a, "refresh_token")).await;
    assert_eq!(status, 200);
    let (status, _) = rp.refresh(&a.base, &s(&at_a, "refresh_token")).await;
    assert_eq!(status, 400, "a replay at A");
    let (status, body) = rp.refresh(&b.base, &s(&at_b, "refresh_token")).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant"),
        "the family is dead at B"
    );

    // The same refresh token at A and at B at once: exactly one success, every time.
    for round in 0..10 {
        let (_, fresh) = rp
            .login(if round % 2 == 0 { &a.base } else { &b.base })
            .await;
        let token = s(&fresh, "refresh_token");
        let (ra, rb) = tokio::join!(rp.refresh(&a.base, &token), rp.refresh(&b.base, &token));
        let wins = [ra.0, rb.0].iter().filter(|s| **s == 200).count();
        assert_eq!(wins, 1, "round {round}: {ra:?} {rb:?}");
        assert!([ra.0, rb.0].contains(&400));
    }

    // A user disabled through the command line is refused by both.
    let (_, before) = rp.login(&a.base).await;
    assert!(
        ferrid_cli(dir.path(), &["user", "disable", "ada"], "")
            .status
            .success()
    );
    for base in [&a.base, &b.base] {
        assert_eq!(rp.login(base).await.0, 400);
        assert_eq!(rp.userinfo(base, &s(&before, "access_token")).await, 401);
    }
    assert_eq!(
        rp.refresh(&b.base, &s(&before, "refresh_token")).await.0,
        400
    );
    assert!(
        ferrid_cli(dir.path(), &["user", "enable", "ada"], "")
            .status
            .success()
    );

    // A key rotation reaches both replicas' JWKS within 10 seconds, without a restart.
    assert_eq!((rp.kids(&a.base).await, rp.kids(&b.base).await), (1, 1));
    assert!(
        ferrid_cli(dir.path(), &["keys", "rotate"], "")
            .status
            .success()
    );
    let start = Instant::now();
    while rp.kids(&a.base).await != 2 || rp.kids(&b.base).await != 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "rotation did not reach both replicas"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // New tokens from either replica verify at the other.
    let (_, fresh) = rp.login(&b.base).await;
    assert_eq!(rp.userinfo(&a.base, &s(&fresh, "access_token")).await, 200);
    assert!(a.stop() && b.stop());
}

/// A PostgreSQL cluster of this test's own, on a free port, to stop and start at will.
struct Cluster {
    bin: PathBuf,
    data: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn start(bin: PathBuf) -> Cluster {
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster { bin, data, port };
        if cluster.as_root() {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(cluster.data.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let db = cluster.data.path().join("db");
        cluster.run(
            "initdb",
            &["-D", db.to_str().unwrap(), "-A", "trust", "-U", "ferrid"],
        );
        cluster.pg_ctl("start");
        cluster
    }

    fn as_root(&self) -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl(&self, action: &str) {
        let db = self.data.path().join("db");
        let log = self.data.path().join("log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.data.path().display()
        );
        let mut args = vec![
            "-D",
            db.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-o",
            &opts,
        ];
        if action == "stop" {
            args.extend(["-m", "immediate"]);
        }
        args.push(action);
        self.run("pg_ctl", &args);
    }

    fn url(&self) -> String {
        format!("postgres://ferrid@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let db = self.data.path().join("db");
        let _ = Command::new(self.bin.join("pg_ctl")).args([
            "-D",
            db.to_str().unwrap(),
            "-m",
            "immediate",
            "stop",
        ]);
        if self.as_root() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", db.to_str().unwrap(), "-m", "immediate", "stop"])
                .output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_fast_and_heals_by_itself() {
    // This one stops its database: it needs a PostgreSQL server of its own.
    if postgres_url().is_none() {
        eprintln!("PostgreSQL-only: runs when FERRID_TEST_DATABASE is set (as .ci/run does)");
        return;
    }
    let bin = std::env::var("FERRID_TEST_PG_BIN")
        .expect("FERRID_TEST_PG_BIN: the PostgreSQL bin dir (.ci/postgres.sh prints it)");
    let cluster = Cluster::start(PathBuf::from(bin));
    let dir = TestDir::sqlite();
    std::fs::write(dir.path().join(".database_url"), cluster.url()).unwrap();
    let rp = Rp::new(provision(dir.path()));
    let server = Server::start(dir.path(), &ISSUER, &[]);
    let base = server.base.clone();

    let (status, before) = rp.login(&base).await;
    assert_eq!(status, 200);
    let (status, rotated) = rp.refresh(&base, &s(&before, "refresh_token")).await;
    assert_eq!(status, 200, "committed before the outage");

    cluster.pg_ctl("stop");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    for _ in 0..3 {
        let start = Instant::now();
        let (status, body) = rp.login(&base).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "temporarily_unavailable");
        let (status, _) = rp.refresh(&base, &s(&rotated, "refresh_token")).await;
        assert_eq!(status, 503);
        assert_eq!(rp.userinfo(&base, &s(&rotated, "access_token")).await, 503);
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "requests must fail fast, took {:?}",
            start.elapsed()
        );
        // What needs no database keeps working.
        assert_eq!(
            http.get(format!("{base}/jwks.json"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            http.get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }

    cluster.pg_ctl("start");
    let start = Instant::now();
    loop {
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        if ready.status() == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Everything committed before the outage is intact.
    let (status, _) = rp.refresh(&base, &s(&rotated, "refresh_token")).await;
    assert_eq!(
        status, 200,
        "the refresh token rotated before the outage still works"
    );
    assert_eq!(
        rp.refresh(&base, &s(&before, "refresh_token")).await.0,
        400,
        "and its predecessor stays dead"
    );
    assert_eq!(rp.login(&base).await.0, 200);
    assert!(server.stop());
}

#[tokio::test]
async fn db_copy_moves_users_clients_and_live_sessions() {
    let source = TestDir::sqlite();
    let rp = Rp::new(provision(source.path()));
    let server = Server::start(source.path(), &ISSUER, &[]);
    let (_, first) = rp.login(&server.base).await;
    let (_, live) = rp.refresh(&server.base, &s(&first, "refresh_token")).await;
    assert!(server.stop());

    // The target: PostgreSQL when the suite runs on it, another SQLite file otherwise.
    let target = TestDir::new();
    let out = ferrid_cli(
        source.path(),
        &["db", "copy", "--to", target.database_url()],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("copied 1 users, 1 clients, 1 live refresh tokens"),
        "{}",
        stdout(&out)
    );
    // The keys go along as files, as an operator would copy them.
    std::fs::create_dir_all(target.path().join("keys")).unwrap();
    for entry in std::fs::read_dir(source.path().join("keys")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            target.path().join("keys").join(entry.file_name()),
        )
        .unwrap();
    }

    let server = Server::start(target.path(), &ISSUER, &[]);
    assert_eq!(
        rp.userinfo(&server.base, &s(&live, "access_token")).await,
        200,
        "access tokens still verify"
    );
    let (status, body) = rp.refresh(&server.base, &s(&live, "refresh_token")).await;
    assert_eq!(status, 200, "nobody has to log in again: {body}");
    assert_eq!(
        rp.refresh(&server.base, &s(&first, "refresh_token"))
            .await
            .0,
        400,
        "rotated tokens stay dead"
    );
    let (status, again) = rp.login(&server.base).await;
    assert_eq!(status, 200);
    let sub = |t: &Value| crate::token::insecure_claims(&s(t, "access_token"))["sub"].clone();
    assert_eq!(sub(&again), sub(&first), "the same user, the same sub");
    assert!(server.stop());

    // Copying into a database that has data is refused.
    let out = ferrid_cli(
        source.path(),
        &["db", "copy", "--to", target.database_url()],
        "",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
}
