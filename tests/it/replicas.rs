//! Several ferrid processes on one database and one keys dir behave as one provider; a
//! database outage is answered 503 quickly and healed by itself; `ferrid db copy` moves a
//! SQLite deployment over without logging anyone out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Api, Server, TestDir, ferrid_cli, field, kids, postgres_url, stderr, stdout};

const PASSWORD: &str = "replica test password";
const ISSUER: [&str; 2] = ["--issuer", "http://ferrid.test"];

/// Registers a client for password + refresh_token and a user; returns the client secret.
fn provision(dir: &Path) -> String {
    crate::support::provision(
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
        &[("ada", PASSWORD, &["--scope", "items:read"])],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_behave_as_one_provider() {
    let dir = TestDir::new();
    let rp = Api::new("").as_client("app", &provision(dir.path()));
    let a = Server::start(dir.path(), &ISSUER, &[]);
    let b = Server::start(dir.path(), &ISSUER, &[]);

    // A token from A works at B.
    let (status, at_a) = rp
        .at(&a.base)
        .login("ada", PASSWORD, Some("openid items:read"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        rp.at(&b.base)
            .userinfo(&field(&at_a, "access_token"))
            .await
            .status(),
        200
    );
    assert_eq!(
        rp.at(&b.base)
            .introspect(&field(&at_a, "access_token"))
            .await["active"],
        true
    );

    // A's refresh token refreshes at B; a replay at A then revokes the family at B too.
    let (status, at_b) = rp
        .at(&b.base)
        .refresh(&field(&at_a, "refresh_token"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = rp
        .at(&a.base)
        .refresh(&field(&at_a, "refresh_token"), None)
        .await;
    assert_eq!(status, 400, "a replay at A");
    let (status, body) = rp
        .at(&b.base)
        .refresh(&field(&at_b, "refresh_token"), None)
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant"),
        "the family is dead at B"
    );

    // The same refresh token at A and at B at once: exactly one success, every time.
    for round in 0..10 {
        let (_, fresh) = rp
            .at(if round % 2 == 0 { &a.base } else { &b.base })
            .login("ada", PASSWORD, Some("openid items:read"))
            .await;
        let token = field(&fresh, "refresh_token");
        let (at_a, at_b) = (rp.at(&a.base), rp.at(&b.base));
        let (ra, rb) = tokio::join!(at_a.refresh(&token, None), at_b.refresh(&token, None));
        let wins = [ra.0, rb.0].iter().filter(|s| **s == 200).count();
        assert_eq!(wins, 1, "round {round}: {ra:?} {rb:?}");
        assert!([ra.0, rb.0].contains(&400));
    }

    // A user disabled through the command line is refused by both.
    let (_, before) = rp
        .at(&a.base)
        .login("ada", PASSWORD, Some("openid items:read"))
        .await;
    assert!(
        ferrid_cli(dir.path(), &["user", "disable", "ada"], "")
            .status
            .success()
    );
    for base in [&a.base, &b.base] {
        assert_eq!(
            rp.at(base)
                .login("ada", PASSWORD, Some("openid items:read"))
                .await
                .0,
            400
        );
        assert_eq!(
            rp.at(base)
                .userinfo(&field(&before, "access_token"))
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        rp.at(&b.base)
            .refresh(&field(&before, "refresh_token"), None)
            .await
            .0,
        400
    );
    assert!(
        ferrid_cli(dir.path(), &["user", "enable", "ada"], "")
            .status
            .success()
    );

    // A key rotation reaches both replicas' JWKS within 10 seconds, without a restart.
    assert_eq!(
        (
            kids(&rp.at(&a.base).jwks().await).len(),
            kids(&rp.at(&b.base).jwks().await).len()
        ),
        (1, 1)
    );
    assert!(
        ferrid_cli(dir.path(), &["keys", "rotate", "--now"], "")
            .status
            .success()
    );
    let start = Instant::now();
    while kids(&rp.at(&a.base).jwks().await).len() != 2
        || kids(&rp.at(&b.base).jwks().await).len() != 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "rotation did not reach both replicas"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // New tokens from either replica verify at the other.
    let (_, fresh) = rp
        .at(&b.base)
        .login("ada", PASSWORD, Some("openid items:read"))
        .await;
    assert_eq!(
        rp.at(&a.base)
            .userinfo(&field(&fresh, "access_token"))
            .await
            .status(),
        200
    );
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
    let rp = Api::new("").as_client("app", &provision(dir.path()));
    let server = Server::start(dir.path(), &ISSUER, &[]);
    let base = server.base.clone();

    let (status, before) = rp
        .at(&base)
        .login("ada", PASSWORD, Some("openid items:read"))
        .await;
    assert_eq!(status, 200);
    let (status, rotated) = rp
        .at(&base)
        .refresh(&field(&before, "refresh_token"), None)
        .await;
    assert_eq!(status, 200, "committed before the outage");

    cluster.pg_ctl("stop");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    // The first request that needs the database waits for a connection (the pool's 2 s)
    // and fails; meanwhile the server's probe (every second, 1 s timeout) finds the
    // database down. From then on nothing waits: 503 at once, until the probe gets an answer.
    let start = Instant::now();
    let (status, body) = rp
        .at(&base)
        .login("ada", PASSWORD, Some("openid items:read"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fast = |what: &str, start: Instant| {
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{what} took {:?} with the database known to be down",
            start.elapsed()
        );
    };
    for _ in 0..3 {
        let start = Instant::now();
        let (status, body) = rp
            .at(&base)
            .try_token(&[
                ("grant_type", "password"),
                ("username", "ada"),
                ("password", PASSWORD),
            ])
            .await
            .unwrap();
        fast("a login", start);
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("temporarily_unavailable"))
        );
        let start = Instant::now();
        let (status, _) = rp
            .at(&base)
            .refresh(&field(&rotated, "refresh_token"), None)
            .await;
        fast("a refresh", start);
        assert_eq!(status, 503);
        let start = Instant::now();
        let res = rp
            .at(&base)
            .userinfo(&field(&rotated, "access_token"))
            .await;
        fast("userinfo", start);
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
        let start = Instant::now();
        let page = http
            .get(format!("{base}/authorize?client_id=app"))
            .send()
            .await
            .unwrap();
        fast("the authorization endpoint", start);
        assert_eq!(page.status(), 503);
        assert!(page.text().await.unwrap().contains("Try again in a moment"));
        let start = Instant::now();
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        fast("readyz", start);
        assert_eq!(ready.status(), 503);
        // What needs no database keeps working.
        for path in [
            "/jwks.json",
            "/healthz",
            "/.well-known/openid-configuration",
        ] {
            let res = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
        }
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
    let (status, _) = rp
        .at(&base)
        .refresh(&field(&rotated, "refresh_token"), None)
        .await;
    assert_eq!(
        status, 200,
        "the refresh token rotated before the outage still works"
    );
    assert_eq!(
        rp.at(&base)
            .refresh(&field(&before, "refresh_token"), None)
            .await
            .0,
        400,
        "and its predecessor stays dead"
    );
    assert_eq!(
        rp.at(&base)
            .login("ada", PASSWORD, Some("openid items:read"))
            .await
            .0,
        200
    );
    assert!(server.stop());
}

#[tokio::test]
async fn db_copy_moves_users_clients_and_live_sessions() {
    let source = TestDir::sqlite();
    let rp = Api::new("").as_client("app", &provision(source.path()));
    let server = Server::start(source.path(), &ISSUER, &[]);
    let (_, first) = rp
        .at(&server.base)
        .login("ada", PASSWORD, Some("openid items:read"))
        .await;
    let (_, live) = rp
        .at(&server.base)
        .refresh(&field(&first, "refresh_token"), None)
        .await;
    assert!(server.stop());
    // A consent ada gave a third-party app goes along too (she is not asked again).
    let source_store = ferrid::store::Store::connect(source.database_url(), 1)
        .await
        .unwrap();
    let ada = source_store.user_by_username("ada").await.unwrap().unwrap();
    let allowed = ferrid::model::ScopeSet::parse("openid profile").unwrap();
    source_store
        .save_consent(&ada.id, "app", &allowed, 1)
        .await
        .unwrap();
    source_store.close().await;

    // The target: PostgreSQL when the suite runs on it, another SQLite file otherwise.
    let target = TestDir::new();
    let out = ferrid_cli(
        source.path(),
        &["db", "copy", "--to", target.database_url()],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("copied 1 users, 1 clients, 1 live refresh tokens")
            && stdout(&out).contains("and 1 consents"),
        "{}",
        stdout(&out)
    );
    let target_store = ferrid::store::Store::connect(target.database_url(), 1)
        .await
        .unwrap();
    assert_eq!(
        target_store.consent(&ada.id, "app").await.unwrap(),
        Some(allowed)
    );
    target_store.close().await;
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
        rp.at(&server.base)
            .userinfo(&field(&live, "access_token"))
            .await
            .status(),
        200,
        "access tokens still verify"
    );
    let (status, body) = rp
        .at(&server.base)
        .refresh(&field(&live, "refresh_token"), None)
        .await;
    assert_eq!(status, 200, "nobody has to log in again: {body}");
    assert_eq!(
        rp.at(&server.base)
            .refresh(&field(&first, "refresh_token"), None)
            .await
            .0,
        400,
        "rotated tokens stay dead"
    );
    let (status, again) = rp
        .at(&server.base)
        .login("ada", PASSWORD, Some("openid items:read"))
        .await;
    assert_eq!(status, 200);
    let sub = |t: &Value| crate::support::insecure_claims(&field(t, "access_token"))["sub"].clone();
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
