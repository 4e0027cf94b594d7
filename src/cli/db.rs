//! `ferrid db copy`: move everything that matters to another (empty) database.

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::clock::Clock;
use crate::config::StorageArgs;
use crate::store::Store;

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

pub(super) async fn run(cmd: DbCommand, storage: &StorageArgs) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Copy { to } => copy_database(&storage.database_url, &to).await,
    }
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
        "copied {} users, {} clients, {} live refresh tokens, {} access-token revocations and \
         {} consents from {} to {}",
        report.users,
        report.clients,
        report.refresh_tokens,
        report.revoked_access_tokens,
        report.consents,
        source.engine(),
        target.engine()
    );
    println!("Point every server at the new database (--database-url) and restart it.");
    Ok(())
}
