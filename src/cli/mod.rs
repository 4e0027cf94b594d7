//! The `ferrid` command line. Results go to stdout, errors to stderr with a non-zero exit
//! status and a sentence that says what to do. Never prints a secret, except the client
//! secret `client add` generates (once) and the demo credentials of `serve --demo`.
//!
//! One file per subject: `users`, `clients`, `keys`, `db`, and `demo` (`serve --demo`). The
//! rules they apply are the domain's (`model`), shared with every other door.

mod clients;
mod db;
mod demo;
mod keys;
mod users;

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::{ServeArgs, ServeConfig, StorageArgs, available_cores};
use crate::model::{MIN_PASSWORD_CHARS, ScopeSet, Secret, WeakPassword, check_new_password};
use crate::password::{HashParams, Passwords};

pub use clients::ClientCommand;
pub use db::DbCommand;
pub use keys::KeysCommand;
pub use users::UserCommand;

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

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(ServeConfig::from_args(args, cli.storage)?).await,
        Command::User(cmd) => users::run(cmd, &cli.storage).await,
        Command::Client(cmd) => clients::run(cmd, &cli.storage).await,
        Command::Keys(cmd) => keys::run(cmd, &cli.storage.keys_dir).await,
        Command::Db(cmd) => db::run(cmd, &cli.storage).await,
    }
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let demo = config.demo;
    let app = App::build(config).await?;
    if demo {
        println!("{}", demo::seed(&app).await?);
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
pub(super) async fn passwords() -> anyhow::Result<Passwords> {
    let built =
        tokio::task::spawn_blocking(|| Passwords::new(HashParams::default(), available_cores(), 0));
    Ok(built.await??)
}

/// An update's value flag and its `--no-…` flag: `Some(Some(v))` sets, `Some(None)` clears,
/// `None` keeps what is stored (clap refuses both at once).
pub(super) fn set_or_clear<T>(value: Option<T>, clear: bool) -> Option<Option<T>> {
    (clear || value.is_some()).then_some(value)
}

/// An update's switch (`--consent`) and its `--no-…` flag: `None` keeps what is stored.
pub(super) fn switch(on: bool, off: bool) -> Option<bool> {
    (on || off).then_some(on)
}

pub(super) fn scopes_from_flags(flags: &[String]) -> anyhow::Result<ScopeSet> {
    ScopeSet::parse(&flags.join(" ")).map_err(|e| anyhow::anyhow!("--scope: {e}"))
}

/// Reads a password (or secret) from stdin: the first line, without echo on a terminal.
/// Terminal and stdin reads block, so they run off the async workers.
pub(super) async fn read_secret_line(prompt: String) -> anyhow::Result<Secret> {
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

pub(super) async fn read_new_password(username: &str) -> anyhow::Result<Secret> {
    let password = read_secret_line(format!("Password for {username}: ")).await?;
    match check_new_password(&password) {
        Ok(()) => Ok(password),
        Err(WeakPassword::TooShort) => bail!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters; pass it on \
             standard input, e.g. `printf '%s\\n' \"$PASSWORD\" | ferrid user add {username}`"
        ),
        Err(e) => bail!("{e}"),
    }
}
