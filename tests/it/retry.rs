//! Retry-safe refresh (`--refresh-retry-window`): a client whose answer was lost presents its
//! refresh token again and gets the same successor; reuse detection stays for everything else
//! (RFC 9700 §4.14.2).

use std::time::Duration;

use ferrid::clock::Clock;
use serde_json::Value;

use crate::support::{Api, PASSWORD, TestApp, TestDir, USER, field, sealed_successor};

const APP: &str = "app";
const APP_SECRET: &str = "app-secret-0123456789-0123456789-0123456789";
const OTHER: &str = "other-app";
const OTHER_SECRET: &str = "other-secret-0123456789-0123456789-01234567";

/// A server with a 5 s retry window (`window` seconds), a refresh-capable client, another
/// one, and the standard user.
async fn spawn(window: u64) -> TestApp {
    let app = TestApp::spawn_with(TestDir::new(), Clock::system(), |c| {
        c.refresh_retry_window = Duration::from_secs(window);
    })
    .await;
    for (id, secret) in [(APP, APP_SECRET), (OTHER, OTHER_SECRET)] {
        app.add_client(id, Some(secret), &["password", "refresh_token"], "openid")
            .await;
    }
    app.add_user(USER, PASSWORD, "").await;
    app
}

fn client(app: &TestApp) -> Api {
    app.api.as_client(APP, APP_SECRET)
}

/// A login's refresh token (R1).
async fn first_refresh_token(app: &TestApp) -> String {
    let (status, body) = client(app).login(USER, PASSWORD, Some("openid")).await;
    assert_eq!(status, 200, "{body}");
    field(&body, "refresh_token")
}

/// A refresh that must succeed; its body.
async fn refreshed(api: &Api, token: &str) -> Value {
    let (status, body) = api.refresh(token, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A refresh that must be refused as RFC 6749 §5.2 `invalid_grant`.
async fn refused(api: &Api, token: &str) {
    let (status, body) = api.refresh(token, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

#[tokio::test]
async fn a_lost_answer_is_retried_for_the_same_successor_once() {
    let app = spawn(5).await;
    let api = client(&app);
    let r1 = first_refresh_token(&app).await;
    let lost = refreshed(&api, &r1).await;
    let r2 = field(&lost, "refresh_token");

    // The answer never arrived; the client presents R1 again.
    let retried = refreshed(&api, &r1).await;
    assert_eq!(field(&retried, "refresh_token"), r2, "the same successor");
    assert_ne!(
        field(&retried, "access_token"),
        field(&lost, "access_token"),
        "fresh tokens"
    );
    assert!(retried.get("id_token").is_some(), "openid: an ID token too");

    // Nothing readable was kept, and what was kept is gone once handed back.
    assert_eq!(sealed_successor(&app.dir, &r1).await, None);

    // A third presentation is a replay: the family is revoked, R2 with it.
    refused(&api, &r1).await;
    refused(&api, &r2).await;
}

/// After a retry the session carries on; a later lost answer is retried too. But the token a
/// retry handed out a second time cannot itself be retried: two lost answers in a row end the
/// session (the price of exposing a copied token at its next use).
#[tokio::test]
async fn the_session_carries_on_after_a_retry_but_a_retried_token_is_not_retried_again() {
    let app = spawn(5).await;
    let api = client(&app);
    let r1 = first_refresh_token(&app).await;
    let r2 = field(&refreshed(&api, &r1).await, "refresh_token");
    assert_eq!(field(&refreshed(&api, &r1).await, "refresh_token"), r2);
    let r3 = field(&refreshed(&api, &r2).await, "refresh_token");
    let r4 = field(&refreshed(&api, &r3).await, "refresh_token");
    assert_eq!(
        field(&refreshed(&api, &r3).await, "refresh_token"),
        r4,
        "a later lost answer is retried"
    );
    let r5 = field(&refreshed(&api, &r4).await, "refresh_token");
    // R4 came twice (by the retry): presenting it again is a replay, even in the window.
    refused(&api, &r4).await;
    refused(&api, &r5).await;
}

/// The thief presents the stolen R1 first: the client's own presentation, within the window,
/// gets the same R2; whoever uses R2 second exposes the copy.
#[tokio::test]
async fn a_thief_who_refreshes_first_shares_the_successor_and_is_exposed_at_its_next_use() {
    let app = spawn(5).await;
    let api = client(&app);
    let r1 = first_refresh_token(&app).await;
    let thief_r2 = field(&refreshed(&api, &r1).await, "refresh_token");
    let client_r2 = field(&refreshed(&api, &r1).await, "refresh_token");
    assert_eq!(thief_r2, client_r2);
    let thief_r3 = field(&refreshed(&api, &thief_r2).await, "refresh_token");
    refused(&api, &client_r2).await;
    refused(&api, &thief_r3).await;
}

#[tokio::test]
async fn once_the_successor_is_used_the_old_token_is_a_replay() {
    let app = spawn(5).await;
    let api = client(&app);
    let r1 = first_refresh_token(&app).await;
    let r2 = field(&refreshed(&api, &r1).await, "refresh_token");
    let r3 = field(&refreshed(&api, &r2).await, "refresh_token");
    refused(&api, &r1).await;
    refused(&api, &r3).await;
}

#[tokio::test]
async fn outside_the_window_a_second_presentation_is_a_replay() {
    let app = spawn(5).await;
    let api = client(&app);
    let r1 = first_refresh_token(&app).await;
    let r2 = field(&refreshed(&api, &r1).await, "refresh_token");
    app.clock.advance(6);
    refused(&api, &r1).await;
    refused(&api, &r2).await;

    // After the window (at most 60 s) the purge clears what was kept, even sealed.
    let r1 = first_refresh_token(&app).await;
    refreshed(&api, &r1).await;
    assert!(sealed_successor(&app.dir, &r1).await.is_some());
    app.clock.advance(61);
    app.store.purge_expired(app.clock.now()).await.unwrap();
    assert_eq!(sealed_successor(&app.dir, &r1).await, None, "cleared");
}

#[tokio::test]
async fn without_a_window_the_first_retry_is_a_replay_and_nothing_is_kept() {
    let app = spawn(0).await;
    let api = client(&app);
    let r1 = first_refresh_token(&app).await;
    let r2 = field(&refreshed(&api, &r1).await, "refresh_token");
    assert_eq!(
        sealed_successor(&app.dir, &r1).await,
        None,
        "strict mode stores nothing"
    );
    refused(&api, &r1).await;
    refused(&api, &r2).await;
}

/// What the README promises about a stolen R1 within the window: the thief gets at most what
/// the client has — the same R2 (and one access token) — and the next use of R2 by the other
/// party exposes the theft and ends the session for both.
#[tokio::test]
async fn a_thief_with_the_old_token_gains_the_same_successor_whose_next_use_exposes_it() {
    let app = spawn(5).await;
    let api = client(&app);
    let r1 = first_refresh_token(&app).await;
    let r2 = field(&refreshed(&api, &r1).await, "refresh_token");
    // Between the rotation and the window's end the sealed successor is kept, unreadable.
    let sealed = sealed_successor(&app.dir, &r1)
        .await
        .expect("kept for a retry");
    assert!(!sealed.contains(&r2));

    // Another client presenting R1 gets nothing, and that is a replay: the family ends.
    let other = app.api.as_client(OTHER, OTHER_SECRET);
    refused(&other, &r1).await;
    refused(&api, &r2).await;

    // Again, the thief being the same client (it stole the client's secret too).
    let r1 = first_refresh_token(&app).await;
    let client_r2 = field(&refreshed(&api, &r1).await, "refresh_token");
    let thief = refreshed(&api, &r1).await;
    assert_eq!(
        field(&thief, "refresh_token"),
        client_r2,
        "no more than the client has"
    );
    // The client refreshes first and gets R3; the thief's use of R2 is a replay...
    let r3 = field(&refreshed(&api, &client_r2).await, "refresh_token");
    refused(&api, &client_r2).await;
    // ...which revoked the family: the client's R3 is dead too, and the theft is in the log.
    refused(&api, &r3).await;
    refused(&api, &r1).await;
}

/// A client that sends its refresh twice at once (a double click, a retry racing the
/// original): one rotation and one retry, both with the same successor — never two.
#[tokio::test]
async fn two_concurrent_presentations_never_get_two_successors() {
    let app = spawn(5).await;
    let api = client(&app);
    for _ in 0..5 {
        let r1 = first_refresh_token(&app).await;
        let (a, b) = tokio::join!(api.refresh(&r1, None), api.refresh(&r1, None));
        let won: Vec<String> = [a, b]
            .into_iter()
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| field(&body, "refresh_token"))
            .collect();
        // Whichever order they reach the database in (one batch, or one after the other),
        // one rotates and the other is its retry: both answered, with one successor.
        assert_eq!(won.len(), 2, "both answered");
        assert_eq!(won[0], won[1], "one successor");
        // The family lives on with R2.
        refreshed(&api, &won[0]).await;
    }
}

/// A burst of presentations of one token (a thief racing the client, a client looping): one
/// rotation and at most one retry, all answers carrying the same successor; the rest are
/// replays, which end the family.
#[tokio::test]
async fn a_burst_of_presentations_of_one_token_never_yields_two_successors() {
    let app = spawn(5).await;
    let api = client(&app);
    let r1 = first_refresh_token(&app).await;
    let answers = futures_util::future::join_all((0..10).map(|_| api.refresh(&r1, None))).await;
    let won: Vec<String> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| field(body, "refresh_token"))
        .collect();
    assert!(!won.is_empty() && won.len() <= 2, "{won:?}");
    assert!(won.iter().all(|t| *t == won[0]), "one successor: {won:?}");
    for (status, body) in &answers {
        assert!(
            *status == 200 || body["error"] == "invalid_grant",
            "{status} {body}"
        );
    }
    // More than two presentations: replays, so the family has ended.
    refused(&api, &won[0]).await;
}

/// A password change ends the session: a retry after it gets nothing, however soon.
#[tokio::test]
async fn after_a_password_change_a_retry_gets_nothing() {
    let app = spawn(5).await;
    let api = client(&app);
    let r1 = first_refresh_token(&app).await;
    let r2 = field(&refreshed(&api, &r1).await, "refresh_token");
    let out = crate::support::ferrid_cli(
        app.dir.path(),
        &["user", "passwd", USER],
        "a brand new password\n",
    );
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    refused(&api, &r1).await;
    refused(&api, &r2).await;
}
