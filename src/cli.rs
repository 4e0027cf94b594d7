//! The `ferrid` command line. Results go to stdout, errors to stderr with a non-zero exit
//! status and a sentence that says what to do. Never prints a secret, except the client
//! secret `client add` generates (once) and the demo credentials of `serve --demo`.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde::Deserialize;

use crate::app::App;
use crate::clock::Clock;
use crate::config::{ServeArgs, ServeConfig, StorageArgs, available_cores};
use crate::model::{Client, GrantType, RedirectUriPolicy, ScopeSet, Secret, check_redirect_uri};
use crate::oauth::client_auth;
use crate::password::{self, HashParams, MAX_PASSWORD_BYTES, Passwords};
use crate::store::{NewUser, Store, StoreError};
use crate::tokens::keys;

/// Shortest password `user add` and `user passwd` accept (NIST SP 800-63B §3.1.1.2).
const MIN_PASSWORD_CHARS: usize = 8;
/// Shortest client secret `client add --secret-stdin` accepts: secrets are stored as a fast
/// SHA-256, which is safe only for high-entropy values.
const MIN_CLIENT_SECRET_CHARS: usize = 32;

#[derive(Parser, Debug)]
#[command(
    name = "ferrid",
    version,
    about = "An OAuth 2.0 / OpenID Connect identity provider"
)]
pub struct Cli {
    #[command(flatten)]
    pub storage: StorageArgs,

    /// Write logs as JSON lines instead of text.
    #[arg(long, global = true, env = "FERRID_LOG_JSON")]
    pub log_json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the identity provider.
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Copy users, clients and live refresh tokens from --database-url into an empty
    /// database (e.g. from SQLite to PostgreSQL), so nobody has to log in again.
    Copy {
        /// The target database URL, e.g. postgres://ferrid@db.internal/ferrid.
        #[arg(long)]
        to: String,
    },
}

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
        /// Create the account disabled.
        #[arg(long)]
        disabled: bool,
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
    /// Import users from a FastAPI `fake_users_db`-shaped JSON file (bcrypt hashes kept).
    Import { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client. Confidential by default: a secret is generated and printed once.
    Add {
        client_id: String,
        /// A public client (no secret; e.g. a mobile or single-page app).
        #[arg(long)]
        public: bool,
        /// A scope the client may request (repeat for more). Default: openid profile email.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A grant type the client may use (repeat for more; at least one).
        #[arg(long = "grant-type", required = true)]
        grant_types: Vec<String>,
        /// A redirect URI for the authorization-code flow (repeat for more).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// `aud` of the access tokens this client gets (repeat for more). Default: its id.
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// Read the client secret from standard input instead of generating one.
        #[arg(long)]
        secret_stdin: bool,
        /// Print `{"client_id": …, "client_secret": …}`.
        #[arg(long)]
        json: bool,
        /// Also accept plain-http redirect URIs on hosts other than this machine. For
        /// development only: codes would cross the network unencrypted.
        #[arg(long)]
        dev_allow_http_redirect_uri: bool,
    },
    /// List clients.
    List,
    /// Remove a client; its refresh tokens stop working at once.
    Remove { client_id: String },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List the keys in the keys dir; the signing key is marked.
    List,
    /// Generate a new key that signs from now on; older keys stay in the JWKS.
    Rotate,
    /// Remove a key that no longer signs from the JWKS (tokens it signed stop verifying).
    Retire {
        /// The key's kid, as `keys list` shows it (it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(ServeConfig::from_args(args, cli.storage)?).await,
        Command::User(cmd) => user(cmd, &cli.storage).await,
        Command::Client(cmd) => client(cmd, &cli.storage).await,
        Command::Keys(cmd) => keys_command(cmd, &cli.storage.keys_dir).await,
        Command::Db(DbCommand::Copy { to }) => copy_database(&cli.storage.database_url, &to).await,
    }
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let demo = config.demo;
    let app = App::build(config).await?;
    if demo {
        println!("{}", app.seed_demo().await?);
    }
    app.run_until_stopped(shutdown_signal()).await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// The hasher, built off the async workers (it computes its dummy hash).
async fn passwords() -> anyhow::Result<Passwords> {
    let built =
        tokio::task::spawn_blocking(|| Passwords::new(HashParams::default(), available_cores(), 0));
    Ok(built.await??)
}

fn scopes_from_flags(flags: &[String]) -> anyhow::Result<ScopeSet> {
    ScopeSet::parse(&flags.join(" ")).map_err(|e| anyhow::anyhow!("--scope: {e}"))
}

/// Reads a password (or secret) from stdin: the first line, without echo on a terminal.
/// Terminal and stdin reads block, so they run off the async workers.
async fn read_secret_line(prompt: String) -> anyhow::Result<Secret> {
    tokio::task::spawn_blocking(move || read_secret_line_blocking(&prompt)).await?
}

fn read_secret_line_blocking(prompt: &str) -> anyhow::Result<Secret> {
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        rpassword::prompt_password(prompt).context("cannot read from the terminal")?
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    Ok(Secret::new(line))
}

async fn read_new_password(username: &str) -> anyhow::Result<Secret> {
    let password = read_secret_line(format!("Password for {username}: ")).await?;
    let chars = password.expose().chars().count();
    if chars < MIN_PASSWORD_CHARS {
        bail!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters; pass it on \
             standard input, e.g. `printf '%s\\n' \"$PASSWORD\" | ferrid user add {username}`"
        );
    }
    if password.expose().len() > MAX_PASSWORD_BYTES {
        bail!("the password may be at most {MAX_PASSWORD_BYTES} bytes long");
    }
    Ok(password)
}

async fn user(cmd: UserCommand, storage: &StorageArgs) -> anyhow::Result<()> {
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
            disabled,
        } => {
            validate_username(&username)?;
            let scopes = scopes_from_flags(&scopes)?;
            let password = read_new_password(&username).await?;
            let hash = passwords().await?.hash(password).await?;
            let new = NewUser {
                username,
                password_hash: hash,
                name,
                email,
                email_verified: false,
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
            if !store.delete_user(&username).await? {
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
        UserCommand::Import { file } => import_users(store, &file, now).await?,
    }
    Ok(())
}

fn validate_username(username: &str) -> anyhow::Result<()> {
    if username.is_empty() || username.len() > 255 || username.chars().any(char::is_control) {
        bail!("a username must be 1 to 255 bytes without control characters");
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
}

async fn import_users(store: &Store, file: &Path, now: i64) -> anyhow::Result<()> {
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
        let reason = match import_one(store, &key, &username, u, now).await {
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
    now: i64,
) -> Result<(), String> {
    if username != key {
        return Err(format!("its key differs from its username {username:?}"));
    }
    validate_username(username).map_err(|e| e.to_string())?;
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
        email_verified: false,
        scopes,
        disabled: u.disabled.unwrap_or(false),
    };
    match store.insert_user(&new, now).await {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict) => Err("a user with this username exists already".into()),
        Err(e) => Err(e.to_string()),
    }
}

async fn client(cmd: ClientCommand, storage: &StorageArgs) -> anyhow::Result<()> {
    let store = Store::connect(&storage.database_url, 2).await?;
    let result = client_command(cmd, &store).await;
    store.close().await;
    result
}

async fn client_command(cmd: ClientCommand, store: &Store) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add {
            client_id,
            public,
            scopes,
            grant_types,
            redirect_uris,
            audiences,
            secret_stdin,
            json,
            dev_allow_http_redirect_uri,
        } => {
            validate_client_id(&client_id)?;
            let grant_types = grant_types
                .iter()
                .flat_map(|g| g.split([',', ' ']))
                .filter(|g| !g.is_empty())
                .map(|g| g.parse::<GrantType>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("--grant-type: {e}"))?;
            if public && grant_types.contains(&GrantType::ClientCredentials) {
                // RFC 6749 §4.4: client_credentials is for confidential clients only.
                bail!("a public client cannot use client_credentials; drop --public or that grant");
            }
            if public && secret_stdin {
                bail!("a public client has no secret; drop --public or --secret-stdin");
            }
            let policy = RedirectUriPolicy {
                allow_http_anywhere: dev_allow_http_redirect_uri,
            };
            for uri in &redirect_uris {
                check_redirect_uri(uri, policy)
                    .map_err(|e| anyhow::anyhow!("--redirect-uri {e}"))?;
            }
            if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
                bail!(
                    "the authorization_code grant needs at least one --redirect-uri (where the \
                     browser returns with the code; also accepted as post_logout_redirect_uri)"
                );
            }
            let scopes = if scopes.is_empty() {
                ScopeSet::parse("openid profile email")?
            } else {
                scopes_from_flags(&scopes)?
            };
            let secret = match (public, secret_stdin) {
                (true, _) => None,
                (false, true) => {
                    let s = read_secret_line("Client secret: ".into()).await?;
                    if s.expose().chars().count() < MIN_CLIENT_SECRET_CHARS {
                        bail!(
                            "a client secret must have at least {MIN_CLIENT_SECRET_CHARS} characters \
                             (it is stored as a SHA-256 digest, which is safe only for random secrets); \
                             leave out --secret-stdin to have one generated"
                        );
                    }
                    Some(s)
                }
                (false, false) => Some(client_auth::new_client_secret()?),
            };
            let mut grants = grant_types;
            grants.sort();
            grants.dedup();
            let client = Client {
                id: client_id.clone(),
                secret_hash: secret
                    .as_ref()
                    .map(|s| client_auth::hash_client_secret(s.expose())),
                grant_types: grants,
                scopes,
                redirect_uris,
                audiences,
                created_at: Clock::system().now(),
            };
            match store.insert_client(&client).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => bail!("a client with id {client_id:?} exists already"),
                Err(e) => return Err(e.into()),
            }
            tracing::info!(event = "client_created", client_id = %client_id);
            // Only a generated secret is printed: a secret read from stdin is the caller's own.
            let shown = if secret_stdin {
                None
            } else {
                secret.as_ref().map(Secret::expose)
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"client_id": client_id, "client_secret": shown})
                );
            } else {
                println!("client_id:     {client_id}");
                match shown {
                    Some(s) => {
                        println!("client_secret: {s}");
                        println!(
                            "Store the secret now: ferrid keeps only a hash of it and cannot show it again."
                        );
                    }
                    None if public => {
                        println!("public client: it authenticates with its client_id alone")
                    }
                    None => println!("client secret: the one read from standard input"),
                }
            }
        }
        ClientCommand::Remove { client_id } => {
            if !store.delete_client(&client_id).await? {
                bail!("no client with id {client_id:?}; `ferrid client list` shows the clients");
            }
            tracing::info!(event = "client_removed", %client_id);
            println!("client {client_id} removed");
        }
        ClientCommand::List => {
            let clients = store.list_clients().await?;
            if clients.is_empty() {
                println!("no clients; add one with `ferrid client add ID --grant-type password`");
            }
            for c in clients {
                let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
                println!(
                    "{:<20} {}  grants=[{}]  scopes=[{}]",
                    c.id,
                    if c.is_public() {
                        "public      "
                    } else {
                        "confidential"
                    },
                    grants.join(" "),
                    c.scopes
                );
            }
        }
    }
    Ok(())
}

/// Client ids stay within RFC 3986 unreserved characters, so they need no escaping anywhere
/// (Basic credentials, URLs, logs).
fn validate_client_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !ok {
        bail!("a client id must be 1 to 128 characters of A-Z a-z 0-9 - . _ ~");
    }
    // A client's own tokens (client_credentials) carry its id as `sub`; user subjects are
    // UUIDs, so a UUID-shaped client id could pass for a user at a resource server.
    if uuid::Uuid::parse_str(id).is_ok() {
        bail!(
            "a client id may not look like a UUID (users' ids are UUIDs); choose a name such as my-app"
        );
    }
    Ok(())
}

async fn copy_database(from: &str, to: &str) -> anyhow::Result<()> {
    if from == to {
        bail!("--to names the same database as --database-url");
    }
    let source = Store::connect(from, 2)
        .await
        .context("the source (--database-url)")?;
    let target = Store::connect(to, 2).await.context("the target (--to)")?;
    let report = source.copy_into(&target, Clock::system().now()).await;
    source.close().await;
    target.close().await;
    let report = report?;
    println!(
        "copied {} users, {} clients, {} live refresh tokens and {} access-token revocations \
         from {} to {}",
        report.users,
        report.clients,
        report.refresh_tokens,
        report.revoked_access_tokens,
        source.engine(),
        target.engine()
    );
    println!("Point every server at the new database (--database-url) and restart it.");
    Ok(())
}

async fn keys_command(cmd: KeysCommand, dir: &Path) -> anyhow::Result<()> {
    let dir = dir.to_owned();
    // Key files and RSA work stay off the async workers.
    tokio::task::spawn_blocking(move || keys_blocking(cmd, &dir)).await?
}

fn keys_blocking(cmd: KeysCommand, dir: &Path) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List => {
            let ring = keys::load(dir)?;
            let signing = ring.signing_kid().to_owned();
            for k in ring.keys() {
                let file = k
                    .file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let role = if k.kid == signing {
                    "signing"
                } else {
                    "verify-only"
                };
                println!("{}  {:<11}  RSA-{}  {}", k.kid, role, k.bits, file);
            }
        }
        KeysCommand::Rotate => {
            let kid = keys::generate(dir)?;
            tracing::info!(event = "key_rotated", %kid);
            println!("new signing key {kid}");
            println!(
                "Running servers switch to it within 10 seconds (at once on SIGHUP); older keys stay in the JWKS."
            );
        }
        KeysCommand::Retire { kid } => {
            let file = keys::retire(dir, &kid)?;
            tracing::info!(event = "key_retired", %kid);
            println!("retired key {kid} (removed {})", file.display());
        }
    }
    Ok(())
}
