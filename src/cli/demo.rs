//! `serve --demo`: a client and a user to try ferrid with, on an empty database.

use crate::app::App;
use crate::clock::Clock;
use crate::model::{Client, GrantType, ScopeSet, Secret};
use crate::oauth::client_auth;
use crate::store::NewUser;

/// `--demo`: on an empty database, creates a demo client and user, and returns the curl
/// commands that get and use a token. The credentials are random and shown only here.
pub(super) async fn seed(app: &App) -> anyhow::Result<String> {
    let store = app.store();
    if !store.is_empty().await? {
        return Ok(
            "ferrid --demo: the database already has users or clients, so no demo data \
                   was created (demo credentials are printed only on the first start)."
                .into(),
        );
    }
    let now = Clock::system().now();
    let secret = client_auth::new_client_secret()?;
    let client = Client {
        id: "demo-app".into(),
        secret_hash: Some(client_auth::hash_client_secret(secret.expose())),
        grant_types: vec![GrantType::Password],
        scopes: ScopeSet::parse("openid profile email items:read")?,
        created_at: now,
        name: Some("Demo app".into()),
        ..Client::default()
    };
    store.insert_client(&client).await?;
    let password: String = crate::tokens::opaque::random_token()?
        .chars()
        .take(20)
        .collect();
    let hash = app.passwords().hash(Secret::new(password.clone())).await?;
    store
        .insert_user(
            &NewUser {
                username: "alice".into(),
                password_hash: hash,
                name: Some("Alice Example".into()),
                email: Some("alice@example.com".into()),
                email_verified: true,
                scopes: ScopeSet::parse("items:read")?,
                disabled: false,
            },
            now,
        )
        .await?;
    let base = app.issuer().trim_end_matches('/');
    Ok(format!(
        "ferrid --demo: created client \"demo-app\" and user \"alice\". These credentials are \
         shown only once.\n\n\
         Get a token (password grant):\n\n  \
         curl -s -u 'demo-app:{secret}' -d grant_type=password -d username=alice \
         -d 'password={password}' -d 'scope=openid profile email items:read' {base}/token\n\n\
         Get a token and read userinfo with it:\n\n  \
         TOKEN=$(curl -s -u 'demo-app:{secret}' -d grant_type=password -d username=alice \
         -d 'password={password}' -d 'scope=openid profile email' {base}/token \
         | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" {base}/userinfo\n",
        secret = secret.expose(),
    ))
}
