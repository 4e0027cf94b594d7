//! No secret reaches a log line, even at `RUST_LOG=debug`.

use base64::Engine;
use serde_json::Value;

use crate::support::{Server, ferrid_cli, stderr, stdout};

#[tokio::test]
async fn a_debug_log_of_a_whole_session_holds_no_secret() {
    let dir = crate::support::TestDir::new();
    let secret = crate::support::cli_add_client(dir.path(), "web", &["--grant-type", "password"]);
    let password = "Tr0ub4dor&3-horse-battery";
    let wrong_password = "Wr0ng-P4ssw0rd-guess";
    let wrong_secret = "wrong-client-secret-value-1234567890";
    let out = ferrid_cli(
        dir.path(),
        &["user", "add", "ada", "--email", "ada@example.com"],
        &format!("{password}\n"),
    );
    assert!(out.status.success());
    assert!(!stdout(&out).contains(password) && !stderr(&out).contains(password));

    let server = Server::start(dir.path(), &[], &[("RUST_LOG", "debug")]);
    let http = reqwest::Client::new();
    let token = |user: &'static str, pw: &str, id: &'static str, sec: &str, basic: bool| {
        let http = http.clone();
        let url = server.url("/token");
        let mut form = vec![
            ("grant_type", "password".to_owned()),
            ("username", user.to_owned()),
            ("password", pw.to_owned()),
            ("scope", "openid profile".to_owned()),
        ];
        let mut req = http.post(url);
        if basic {
            req = req.basic_auth(id, Some(sec));
        } else {
            form.push(("client_id", id.to_owned()));
            form.push(("client_secret", sec.to_owned()));
        }
        async move { req.form(&form).send().await.unwrap() }
    };
    let good = token("ada", password, "web", &secret, true).await;
    assert_eq!(good.status(), 200);
    let good: Value = good.json().await.unwrap();
    let access = good["access_token"].as_str().unwrap().to_owned();
    let id_token = good["id_token"].as_str().unwrap().to_owned();
    assert_eq!(
        token("ada", password, "web", &secret, false).await.status(),
        200
    );
    assert_eq!(
        token("ada", wrong_password, "web", &secret, true)
            .await
            .status(),
        400
    );
    assert_eq!(
        token("nobody", wrong_password, "web", &secret, false)
            .await
            .status(),
        400
    );
    assert_eq!(
        token("ada", password, "web", wrong_secret, true)
            .await
            .status(),
        401
    );
    assert_eq!(
        token("ada", password, "web", wrong_secret, false)
            .await
            .status(),
        401
    );
    let userinfo = |t: String| {
        let req = http.get(server.url("/userinfo")).bearer_auth(t);
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(userinfo(access.clone()).await, 200);
    let bogus = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2d1cyJ9.bogus-signature-value";
    assert_eq!(userinfo(bogus.to_owned()).await, 401);
    let log_file = server.log_file.clone();
    assert!(server.stop(), "clean exit on SIGTERM");

    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("DEBUG"), "the log really is at debug level");
    assert!(
        log.contains("login_succeeded") && log.contains("login_failed"),
        "logins are logged"
    );

    let basic = |id: &str, sec: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{sec}"))
    };
    let signature = |jwt: &str| jwt.rsplit('.').next().unwrap().to_owned();
    let mut secrets = vec![
        ("password", password.to_owned()),
        ("wrong password", wrong_password.to_owned()),
        ("client secret", secret.clone()),
        ("wrong client secret", wrong_secret.to_owned()),
        ("Basic header", basic("web", &secret)),
        ("wrong Basic header", basic("web", wrong_secret)),
        ("access token", access.clone()),
        ("access token signature", signature(&access)),
        ("ID token signature", signature(&id_token)),
        ("bogus token", bogus.to_owned()),
    ];
    // Every line of base64 in the private key file.
    for entry in std::fs::read_dir(dir.path().join("keys")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 32)
        {
            secrets.push(("private key", line.to_owned()));
        }
    }
    assert!(secrets.len() > 20);
    for (what, value) in secrets {
        assert!(!log.contains(&value), "the {what} is in the log");
    }
}

#[tokio::test]
async fn a_refresh_token_replay_is_logged_as_a_security_event() {
    let dir = crate::support::TestDir::new();
    let secret = crate::support::cli_add_client(
        dir.path(),
        "app",
        &["--grant-type", "password", "--grant-type", "refresh_token"],
    );
    assert!(
        ferrid_cli(
            dir.path(),
            &["user", "add", "ada"],
            "long enough password\n"
        )
        .status
        .success()
    );
    // With the retry window, at debug level: the retry is logged, and no refresh token (nor
    // the sealed successor) reaches the log.
    let server = Server::start(
        dir.path(),
        &["--refresh-retry-window", "5s"],
        &[("RUST_LOG", "debug")],
    );
    let http = reqwest::Client::new();
    let post = |form: Vec<(&'static str, String)>| {
        let req = http
            .post(server.url("/token"))
            .basic_auth("app", Some(&secret))
            .form(&form);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let login = post(vec![
        ("grant_type", "password".into()),
        ("username", "ada".into()),
        ("password", "long enough password".into()),
    ])
    .await;
    let first = login["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |t: String| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", t),
        ]
    };
    let second = post(refresh(first.clone())).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sealed = crate::support::sealed_successor(&dir, &first)
        .await
        .expect("kept for a retry");
    // The answer was lost: the retry gets the same successor; a third time is a replay.
    assert_eq!(post(refresh(first.clone())).await["refresh_token"], second);
    assert_eq!(post(refresh(first.clone())).await["error"], "invalid_grant");
    let log_file = server.log_file.clone();
    assert!(server.stop());
    let log = std::fs::read_to_string(log_file).unwrap();
    let event = log
        .lines()
        .find(|l| l.contains("event=\"refresh_token_reuse\""))
        .expect("a reuse event");
    assert!(
        event.contains("WARN")
            && event.contains("family_id=")
            && event.contains("client_id=\"app\""),
        "{event}"
    );
    assert!(
        log.contains("event=\"refresh_token_retry\""),
        "the retry is logged"
    );
    assert!(!log.contains(&first), "the token itself is never logged");
    assert!(!log.contains(&second), "nor its successor");
    assert!(!log.contains(&sealed), "nor the sealed successor");
}
