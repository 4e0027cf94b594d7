//! Crash consistency: refresh-token rotation survives SIGKILL. While clients refresh in a
//! tight loop, the server is killed (no graceful anything) and restarted on the same files,
//! several times over.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::ConnectOptions;

use crate::support::{Api, Server, field};

const CHAINS: usize = 4;
const CYCLES: usize = 6;
const PASSWORD: &str = "crash test password";

struct Chain {
    current: String,
    /// Tokens this chain saw replaced by a successor: must stay dead forever.
    rotated_away: Vec<String>,
    /// The token of the request that was in flight when the server died, if any: its
    /// rotation may or may not have been committed.
    in_flight: Option<String>,
}

/// Refreshes until the server dies; every token accepted is recorded in `accepted`.
async fn refresh_until_killed(
    ctx: &Api,
    base: &str,
    chain: &mut Chain,
    accepted: &mut Vec<String>,
) {
    loop {
        let presented = chain.current.clone();
        chain.in_flight = Some(presented.clone());
        match ctx.at(base).try_refresh(&presented, None).await {
            Ok((200, body)) => {
                accepted.push(presented.clone());
                chain.rotated_away.push(presented);
                chain.current = body["refresh_token"].as_str().unwrap().to_owned();
                chain.in_flight = None;
            }
            Ok((status, body)) => {
                panic!("refresh refused while the server was up: {status} {body}")
            }
            Err(_) => return, // the server is gone; the fate of `in_flight` is unknown
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotation_survives_sigkill_and_restart() {
    let dir = crate::support::TestDir::new();
    let secret = crate::support::provision(
        dir.path(),
        "app",
        &["--grant-type", "password", "--grant-type", "refresh_token"],
        &[("ada", PASSWORD, &[])],
    );
    let ctx = Api::new("").as_client("app", &secret);
    let serve_args = ["--issuer", "http://ferrid.test"];

    let mut server = Server::start(dir.path(), &serve_args, &[]);
    let mut chains = Vec::new();
    for _ in 0..CHAINS {
        chains.push(Chain {
            current: field(
                &ctx.at(&server.base).login("ada", PASSWORD, None).await.1,
                "refresh_token",
            ),
            rotated_away: vec![],
            in_flight: None,
        });
    }
    let mut accepted: Vec<String> = Vec::new();
    let mut uncertain_rotations = 0;

    for cycle in 0..CYCLES {
        let base = server.base.clone();
        let mut child = server.take_child();
        // Kill at a different moment each cycle, while every chain is mid-loop.
        let kill_after = Duration::from_millis(150 + 70 * cycle as u64);
        let killer = tokio::spawn(async move {
            tokio::time::sleep(kill_after).await;
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        });
        let mut results = Vec::new();
        let loops = chains.iter_mut().map(|chain| {
            let ctx = &ctx;
            let base = base.clone();
            async move {
                let mut accepted = Vec::new();
                refresh_until_killed(ctx, &base, chain, &mut accepted).await;
                accepted
            }
        });
        for a in futures_util::future::join_all(loops).await {
            results.extend(a);
        }
        killer.await.unwrap();
        assert!(
            !results.is_empty(),
            "cycle {cycle}: no refresh happened before the kill"
        );
        accepted.extend(results);

        server = Server::start(dir.path(), &serve_args, &[]);
        for chain in &mut chains {
            // Everything rotated away stays dead after the crash.
            for old in &chain.rotated_away {
                assert!(
                    !(ctx.at(&server.base).introspect(old).await["active"] == true),
                    "cycle {cycle}: a rotated-away token came back"
                );
            }
            if ctx.at(&server.base).introspect(&chain.current).await["active"] == true {
                chain.in_flight = None;
                continue;
            }
            // The newest delivered token is dead only if its rotation was committed but the
            // answer never arrived: the request in flight at the kill presented it.
            assert_eq!(
                chain.in_flight.as_deref(),
                Some(chain.current.as_str()),
                "cycle {cycle}: a delivered token was lost"
            );
            uncertain_rotations += 1;
            let (status, _) = ctx
                .at(&server.base)
                .try_refresh(&chain.current, None)
                .await
                .unwrap();
            assert_eq!(
                status, 400,
                "a token whose rotation was committed is refused"
            );
            chain.rotated_away.push(chain.current.clone());
            chain.current = field(
                &ctx.at(&server.base).login("ada", PASSWORD, None).await.1,
                "refresh_token",
            );
            chain.in_flight = None;
        }
    }

    // None was accepted twice.
    let unique: HashSet<&String> = accepted.iter().collect();
    assert_eq!(
        unique.len(),
        accepted.len(),
        "a refresh token was accepted twice"
    );
    assert!(
        accepted.len() >= CYCLES * CHAINS,
        "only {} refreshes in all",
        accepted.len()
    );
    eprintln!(
        "{} rotations across {CYCLES} kills; {uncertain_rotations} committed but unanswered",
        accepted.len()
    );

    // The newest delivered token of each chain still works; a replay of an older one fails.
    for chain in &chains {
        let (status, _) = ctx
            .at(&server.base)
            .try_refresh(&chain.current, None)
            .await
            .unwrap();
        assert_eq!(
            status, 200,
            "the newest delivered token works after the crashes"
        );
        let old = chain.rotated_away.last().unwrap();
        let (status, body) = ctx.at(&server.base).try_refresh(old, None).await.unwrap();
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (400, "invalid_grant")
        );
    }
    assert!(server.stop());

    // SQLite's own check of the file ferrid was killed over (PostgreSQL, a separate server,
    // was never killed here).
    if dir.is_postgres() {
        return;
    }
    let db = dir.path().join("ferrid.db");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .connect()
        .await
        .unwrap();
    let (check,): (String,) = sqlx::query_as("pragma integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}
