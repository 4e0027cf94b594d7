//! The `ferrid` command line, run as the real binary against a running server's files.

use serde_json::Value;

use crate::support::{Server, TestApp, ferrid_cli, stderr, stdout};

const JOHNDOE_HASH: &str = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";

fn add_client(dir: &std::path::Path, id: &str) -> String {
    crate::support::cli_add_client(dir, id, &["--grant-type", "password", "--scope", "openid"])
}

#[tokio::test]
async fn users_are_managed_from_the_command_line() {
    let app = TestApp::spawn_empty().await;
    let dir = app.dir.path();
    let secret = add_client(dir, "web");
    assert_eq!(secret.len(), 43, "256-bit secret, base64url");
    let client = ("web", secret.as_str());

    let out = ferrid_cli(
        dir,
        &[
            "user",
            "add",
            "bob",
            "--email",
            "bob@example.com",
            "--scope",
            "items:read",
        ],
        "first password\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        app.api
            .as_client(client.0, client.1)
            .login("bob", "first password", Some("openid"))
            .await
            .0,
        200
    );

    let out = ferrid_cli(dir, &["user", "passwd", "bob"], "second password\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        app.api
            .as_client(client.0, client.1)
            .login("bob", "first password", Some("openid"))
            .await
            .0,
        400
    );
    assert_eq!(
        app.api
            .as_client(client.0, client.1)
            .login("bob", "second password", Some("openid"))
            .await
            .0,
        200
    );

    assert!(
        ferrid_cli(dir, &["user", "disable", "bob"], "")
            .status
            .success()
    );
    assert_eq!(
        app.api
            .as_client(client.0, client.1)
            .login("bob", "second password", Some("openid"))
            .await
            .0,
        400
    );
    assert!(
        ferrid_cli(dir, &["user", "enable", "bob"], "")
            .status
            .success()
    );
    assert_eq!(
        app.api
            .as_client(client.0, client.1)
            .login("bob", "second password", Some("openid"))
            .await
            .0,
        200
    );

    let list = stdout(&ferrid_cli(dir, &["user", "list"], ""));
    assert!(
        list.contains("bob") && list.contains("items:read"),
        "{list}"
    );
    assert!(!list.contains("$argon2"), "no hashes in listings");
    let clients = stdout(&ferrid_cli(dir, &["client", "list"], ""));
    assert!(
        clients.contains("web") && clients.contains("password"),
        "{clients}"
    );
    assert!(!clients.contains(&secret), "the secret is shown once only");

    // Errors say what to do, with a non-zero status.
    let out = ferrid_cli(dir, &["user", "add", "carol"], "short\n");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at least 8 characters"),
        "{}",
        stderr(&out)
    );
    let out = ferrid_cli(dir, &["user", "add", "bob"], "long enough password\n");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    let out = ferrid_cli(dir, &["user", "passwd", "nobody"], "long enough password\n");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ferrid user list"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn clients_are_registered_with_explicit_grants() {
    let app = TestApp::spawn_empty().await;
    let dir = app.dir.path();
    // A public client needs a grant type; a confidential one without any is a resource
    // server that only introspects.
    let out = ferrid_cli(dir, &["client", "add", "web", "--public"], "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--grant-type"), "{}", stderr(&out));
    let out = ferrid_cli(dir, &["client", "add", "resource-server", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    // A public client cannot use client_credentials (RFC 6749 §4.4).
    let out = ferrid_cli(
        dir,
        &[
            "client",
            "add",
            "spa",
            "--public",
            "--grant-type",
            "client_credentials",
        ],
        "",
    );
    assert!(!out.status.success());
    // Unknown grant types and bad ids are refused.
    let out = ferrid_cli(
        dir,
        &["client", "add", "web", "--grant-type", "implicit"],
        "",
    );
    assert!(!out.status.success() && stderr(&out).contains("unknown grant type"));
    let out = ferrid_cli(
        dir,
        &["client", "add", "we b", "--grant-type", "password"],
        "",
    );
    assert!(!out.status.success());

    // A secret from stdin is used and not echoed; a short one is refused.
    let out = ferrid_cli(
        dir,
        &[
            "client",
            "add",
            "api",
            "--grant-type",
            "password",
            "--secret-stdin",
        ],
        "short\n",
    );
    assert!(!out.status.success());
    let own = "my-own-secret-that-is-long-enough-0123456789";
    let out = ferrid_cli(
        dir,
        &[
            "client",
            "add",
            "api",
            "--grant-type",
            "password",
            "--scope",
            "openid",
            "--secret-stdin",
        ],
        &format!("{own}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(own));
    app.add_user("ada", "correct horse battery staple", "")
        .await;
    assert_eq!(
        app.api
            .as_client(("api", own).0, ("api", own).1)
            .login("ada", "correct horse battery staple", Some("openid"))
            .await
            .0,
        200
    );

    // A public client authenticates by client_id alone.
    let out = ferrid_cli(
        dir,
        &[
            "client",
            "add",
            "spa",
            "--public",
            "--grant-type",
            "password",
            "--json",
        ],
        "",
    );
    assert!(out.status.success());
    let printed: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(printed["client_secret"].is_null());
    let res = app
        .token(
            &[
                ("grant_type", "password"),
                ("username", "ada"),
                ("password", "correct horse battery staple"),
                ("client_id", "spa"),
            ],
            None,
        )
        .await;
    assert_eq!(res.status(), 200);

    let out = ferrid_cli(
        dir,
        &[
            "client",
            "add",
            "spa",
            "--public",
            "--grant-type",
            "password",
        ],
        "",
    );
    assert!(!out.status.success() && stderr(&out).contains("exists already"));
}

#[tokio::test]
async fn fastapi_users_import_with_bcrypt_and_upgrade_to_argon2id_on_login() {
    let dir = crate::support::TestDir::new();
    let file = dir.path().join("users.json");
    let users = serde_json::json!({
        "johndoe": {
            "username": "johndoe",
            "full_name": "John Doe",
            "email": "johndoe@example.com",
            "hashed_password": JOHNDOE_HASH,
            "disabled": false,
        },
        "alice": {
            "username": "alice",
            "full_name": "Alice Wonderson",
            "email": "alice@example.com",
            "hashed_password": "fakehashedsecret2",
            "disabled": true,
        },
        "mallory": {"username": "eve", "hashed_password": JOHNDOE_HASH},
    });
    std::fs::write(&file, users.to_string()).unwrap();
    let out = ferrid_cli(dir.path(), &["user", "import", file.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("created  johndoe"), "{report}");
    assert!(
        report.contains("skipped  alice: hashed_password is neither bcrypt nor argon2"),
        "{report}"
    );
    assert!(report.contains("skipped  mallory"), "{report}");
    assert!(report.contains("1 created, 2 skipped"), "{report}");
    // Idempotent per username.
    let again = stdout(&ferrid_cli(
        dir.path(),
        &["user", "import", file.to_str().unwrap()],
        "",
    ));
    assert!(
        again.contains("skipped  johndoe: a user with this username exists already"),
        "{again}"
    );
    assert!(again.contains("0 created, 3 skipped"), "{again}");

    let issuer = |c: &mut ferrid::config::ServeConfig| c.issuer = Some("http://ferrid.test".into());
    let app = TestApp::spawn_with(dir, ferrid::clock::Clock::system(), issuer).await;
    let secret = add_client(app.dir.path(), "web");
    let client = ("web", secret.as_str());
    let before = app
        .store
        .user_by_username("johndoe")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.password_hash.expose(), JOHNDOE_HASH);
    assert_eq!(before.name.as_deref(), Some("John Doe"));

    assert_eq!(
        app.api
            .as_client(client.0, client.1)
            .login("johndoe", "wrong", Some("openid"))
            .await
            .0,
        400
    );
    assert_eq!(
        app.api
            .as_client(client.0, client.1)
            .login("johndoe", "secret", Some("openid"))
            .await
            .0,
        200
    );
    let after = app
        .store
        .user_by_username("johndoe")
        .await
        .unwrap()
        .unwrap();
    assert!(
        after
            .password_hash
            .expose()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "upgraded"
    );
    assert_eq!(after.id, before.id, "same user, same sub");

    let dir = app.stop().await;
    let app = TestApp::spawn_with(dir, ferrid::clock::Clock::system(), issuer).await;
    assert_eq!(
        app.api
            .as_client(client.0, client.1)
            .login("johndoe", "secret", Some("openid"))
            .await
            .0,
        200,
        "works after a restart"
    );
    assert_eq!(
        app.api
            .as_client(client.0, client.1)
            .login("johndoe", "Secret", Some("openid"))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn serve_demo_prints_curl_commands_that_work_as_printed() {
    let dir = crate::support::TestDir::new();
    let server = Server::start(dir.path(), &["--demo"], &[]);
    let printed = server.stdout();
    assert!(
        printed.contains("demo-app") && printed.contains("alice"),
        "{printed}"
    );
    let commands: Vec<&str> = printed
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl") || l.starts_with("TOKEN="))
        .collect();
    assert_eq!(commands.len(), 3, "{printed}");

    let sh = |script: &str| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("this test runs the printed curl commands: install curl (.ci/run does)");
    }
    let token: Value = serde_json::from_str(&sh(commands[0])).unwrap();
    assert_eq!(token["token_type"], "Bearer", "{token}");
    assert!(token["id_token"].is_string());
    let info: Value =
        serde_json::from_str(&sh(&format!("{}\n{}", commands[1], commands[2]))).unwrap();
    assert_eq!(info["preferred_username"], "alice", "{info}");
    assert_eq!(info["email"], "alice@example.com");
    assert!(server.stop());

    // The next start does not create anything, and says so.
    let server = Server::start(dir.path(), &["--demo"], &[]);
    assert!(
        server.stdout().contains("already has users"),
        "{}",
        server.stdout()
    );
    assert!(server.stop());
}
