//! `ferrid user …`: add, update, passwd, disable, enable, remove, list, import.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Deserialize;

use super::{passwords, read_new_password, scopes_from_flags, set_or_clear, switch};
use crate::clock::Clock;
use crate::config::StorageArgs;
use crate::model::{ScopeSet, Secret, Username};
use crate::password;
use crate::store::{NewUser, ProfileChanges, Store, StoreError};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (first line).
    Add {
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// Full name (the `name` claim).
        #[arg(long)]
        name: Option<String>,
        /// A permission the user may be granted (repeat the flag for more).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The email address has been verified (the `email_verified` claim).
        #[arg(long)]
        email_verified: bool,
        /// Create the account disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Change a user's profile or permissions. What is given replaces what is stored (a
    /// list of --scope replaces the stored list); the rest is kept. A new --email is
    /// unverified unless --email-verified is given too. Tokens already issued keep their
    /// claims until they are refreshed.
    Update {
        username: String,
        #[arg(long, conflicts_with = "no_email")]
        email: Option<String>,
        /// Remove the email address.
        #[arg(long)]
        no_email: bool,
        /// Full name (the `name` claim).
        #[arg(long, conflicts_with = "no_name")]
        name: Option<String>,
        /// Remove the full name.
        #[arg(long)]
        no_name: bool,
        /// The email address has been verified.
        #[arg(long, conflicts_with = "no_email_verified")]
        email_verified: bool,
        /// The email address has not been verified.
        #[arg(long)]
        no_email_verified: bool,
        /// A permission the user may be granted (repeat for more; replaces the stored list).
        #[arg(long = "scope", conflicts_with = "no_scope")]
        scopes: Vec<String>,
        /// Remove every permission.
        #[arg(long)]
        no_scope: bool,
    },
    /// Set a user's password; the new one is read from standard input (first line). Ends the
    /// user's sessions, refresh tokens and access tokens (at ferrid's own endpoints).
    Passwd { username: String },
    /// Refuse the user's logins; ends the user's sessions and tokens, for good.
    Disable { username: String },
    /// Allow a disabled user again.
    Enable { username: String },
    /// Remove a user and everything of theirs: sessions, refresh tokens, access tokens (at
    /// ferrid's own endpoints). The user's id is never reused.
    Remove { username: String },
    /// List users.
    List,
    /// Import users from a FastAPI `fake_users_db`-shaped JSON file (bcrypt hashes kept). A
    /// user's `email_verified` field is read when present.
    Import {
        file: PathBuf,
        /// Mark every imported email address verified (unless the file says otherwise).
        #[arg(long)]
        email_verified: bool,
    },
}

pub(super) async fn run(cmd: UserCommand, storage: &StorageArgs) -> anyhow::Result<()> {
    let store = Store::connect(&storage.database_url, 2).await?;
    let now = Clock::system().now();
    let result = user_command(cmd, &store, now).await;
    store.close().await;
    result
}

async fn user_command(cmd: UserCommand, store: &Store, now: i64) -> anyhow::Result<()> {
    let missing =
        |u: &str| anyhow::anyhow!("no user named {u:?}; `ferrid user list` shows the users");
    match cmd {
        UserCommand::Add {
            username,
            email,
            name,
            scopes,
            email_verified,
            disabled,
        } => {
            let username = Username::parse(&username)?.into_string();
            let scopes = scopes_from_flags(&scopes)?;
            let password = read_new_password(&username).await?;
            let hash = passwords().await?.hash(password).await?;
            let new = NewUser {
                username,
                password_hash: hash,
                name,
                email,
                email_verified,
                scopes,
                disabled,
            };
            match store.insert_user(&new, now).await {
                Ok(user) => {
                    tracing::info!(event = "user_created", user_id = %user.id, username = %user.username);
                    println!("created user {} (id {})", user.username, user.id)
                }
                Err(StoreError::Conflict) => {
                    bail!("a user named {:?} exists already", new.username)
                }
                Err(e) => return Err(e.into()),
            }
        }
        UserCommand::Update {
            username,
            email,
            no_email,
            name,
            no_name,
            email_verified,
            no_email_verified,
            scopes,
            no_scope,
        } => {
            let changes = ProfileChanges {
                email: set_or_clear(email, no_email),
                name: set_or_clear(name, no_name),
                email_verified: switch(email_verified, no_email_verified),
                scopes: (no_scope || !scopes.is_empty())
                    .then(|| scopes_from_flags(&scopes))
                    .transpose()?,
            };
            if changes.is_empty() {
                bail!("nothing to change; see `ferrid user update --help`");
            }
            if !store.update_user_profile(&username, &changes, now).await? {
                return Err(missing(&username));
            }
            tracing::info!(event = "user_updated", %username);
            println!("user {username} updated");
        }
        UserCommand::Passwd { username } => {
            if store.user_by_username(&username).await?.is_none() {
                return Err(missing(&username));
            }
            let password = read_new_password(&username).await?;
            let hash = passwords().await?.hash(password).await?;
            if !store.set_password_hash(&username, &hash, now).await? {
                return Err(missing(&username));
            }
            tracing::info!(event = "user_password_changed", %username);
            println!("password of {username} changed");
        }
        UserCommand::Disable { username } => {
            if !store.set_user_disabled(&username, true, now).await? {
                return Err(missing(&username));
            }
            tracing::info!(event = "user_disabled", %username);
            println!("user {username} disabled");
        }
        UserCommand::Enable { username } => {
            if !store.set_user_disabled(&username, false, now).await? {
                return Err(missing(&username));
            }
            tracing::info!(event = "user_enabled", %username);
            println!("user {username} enabled");
        }
        UserCommand::Remove { username } => {
            if !store.delete_user(&username, now).await? {
                return Err(missing(&username));
            }
            tracing::info!(event = "user_removed", %username);
            println!("user {username} removed");
        }
        UserCommand::List => {
            let users = store.list_users().await?;
            if users.is_empty() {
                println!("no users; add one with `ferrid user add NAME`");
            }
            for u in users {
                println!(
                    "{:<20} {}  {}  email={}  scopes=[{}]",
                    u.username,
                    u.id,
                    if u.disabled { "disabled" } else { "enabled " },
                    u.email.as_deref().unwrap_or("-"),
                    u.scopes
                );
            }
        }
        UserCommand::Import {
            file,
            email_verified,
        } => import_users(store, &file, email_verified, now).await?,
    }
    Ok(())
}

/// One entry of a FastAPI `fake_users_db`.
#[derive(Deserialize)]
struct ImportedUser {
    username: Option<String>,
    full_name: Option<String>,
    email: Option<String>,
    hashed_password: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    email_verified: Option<bool>,
}

async fn import_users(
    store: &Store,
    file: &Path,
    email_verified: bool,
    now: i64,
) -> anyhow::Result<()> {
    let raw = tokio::fs::read(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    let users: std::collections::BTreeMap<String, ImportedUser> = serde_json::from_slice(&raw)
        .with_context(|| {
            format!(
                "{} is not a JSON object of users like FastAPI's fake_users_db \
                 ({{\"johndoe\": {{\"username\": …, \"hashed_password\": \"$2b$…\", …}}}})",
                file.display()
            )
        })?;
    let (mut created, mut skipped) = (0, 0);
    for (key, u) in users {
        let username = u.username.clone().unwrap_or_else(|| key.clone());
        let reason = match import_one(store, &key, &username, u, email_verified, now).await {
            Ok(()) => {
                created += 1;
                println!("created  {username}");
                continue;
            }
            Err(reason) => reason,
        };
        skipped += 1;
        println!("skipped  {key}: {reason}");
    }
    tracing::info!(event = "users_imported", created, skipped);
    println!("{created} created, {skipped} skipped");
    Ok(())
}

async fn import_one(
    store: &Store,
    key: &str,
    username: &str,
    u: ImportedUser,
    email_verified: bool,
    now: i64,
) -> Result<(), String> {
    if username != key {
        return Err(format!("its key differs from its username {username:?}"));
    }
    Username::parse(username).map_err(|e| e.to_string())?;
    let hash = u.hashed_password.ok_or("no hashed_password")?;
    if !password::is_supported_hash(&hash) {
        return Err(
            "hashed_password is neither bcrypt nor argon2 (with at most 256 MiB of memory)".into(),
        );
    }
    let scopes = ScopeSet::from_tokens(&u.scopes).map_err(|e| format!("scopes: {e}"))?;
    let new = NewUser {
        username: username.to_owned(),
        password_hash: Secret::new(hash),
        name: u.full_name,
        email: u.email,
        email_verified: u.email_verified.unwrap_or(email_verified),
        scopes,
        disabled: u.disabled.unwrap_or(false),
    };
    match store.insert_user(&new, now).await {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict) => Err("a user with this username exists already".into()),
        Err(e) => Err(e.to_string()),
    }
}
