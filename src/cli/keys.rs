//! `ferrid keys …`: list, rotate, retire. Key files and RSA work stay off the async workers.

use std::path::Path;

use clap::Subcommand;

use crate::tokens::keys;

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

pub(super) async fn run(cmd: KeysCommand, dir: &Path) -> anyhow::Result<()> {
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
