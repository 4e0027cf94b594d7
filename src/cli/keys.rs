//! `ferrid keys …`: list, rotate, retire. Key files and RSA work stay off the async workers.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use clap::Subcommand;

use crate::clock::Clock;
use crate::config::parse_publish_ahead;
use crate::tokens::keys::{self, KeyPolicy, KeyState};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List the keys in the keys dir: which signs, which are staged, which only verify.
    List,
    /// Stage a new key: published in the JWKS now, signing after --key-publish-ahead, so
    /// resource servers have it cached before its first token. Older keys stay in the JWKS
    /// until their tokens have expired.
    Rotate {
        /// Sign with the new key at once (a compromised key). Resource servers that cached
        /// the JWKS meet its unknown kid and must refetch; retire the compromised key with
        /// `ferrid keys retire` once you have.
        #[arg(long)]
        now: bool,
        /// How long the new key is published before it signs. At least 6m. Default: 1h.
        #[arg(long, env = "FERRID_KEY_PUBLISH_AHEAD", default_value = "1h", value_parser = parse_publish_ahead)]
        key_publish_ahead: Duration,
    },
    /// Remove a key that does not sign from the JWKS at once (tokens it signed stop verifying).
    Retire {
        /// The key's kid, as `keys list` shows it (it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

pub(super) async fn run(cmd: KeysCommand, dir: &Path) -> anyhow::Result<()> {
    let dir = dir.to_owned();
    let now = Clock::system().now();
    // Key files and RSA work stay off the async workers.
    tokio::task::spawn_blocking(move || keys_blocking(cmd, &dir, now)).await?
}

/// A time as RFC 3339 (UTC, seconds).
fn when(secs: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64))
        .to_string()
}

fn keys_blocking(cmd: KeysCommand, dir: &Path, now: i64) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List => {
            // The command line does not know the servers' token lifetimes, so it cannot say
            // when an old key leaves the JWKS; the servers do (and `keys list` there would
            // not be the same process). It shows what it knows.
            let ring = keys::load(dir, now, KeyPolicy::default(), None)?;
            for k in ring.keys() {
                let file = k
                    .file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let (role, detail) = match k.state {
                    KeyState::Signing { since } => ("signing", format!("since {}", when(since))),
                    KeyState::Staged { signs_from } => {
                        ("staged", format!("signs from {}", when(signs_from)))
                    }
                    KeyState::VerifyOnly { superseded, .. } => {
                        ("verify-only", format!("replaced {}", when(superseded)))
                    }
                    KeyState::Unpublished { since } => {
                        ("unpublished", format!("left the JWKS {}", when(since)))
                    }
                };
                println!(
                    "{}  {:<11}  RSA-{}  {}  ({detail})",
                    k.kid, role, k.bits, file
                );
            }
        }
        KeysCommand::Rotate {
            now: at_once,
            key_publish_ahead,
        } => {
            let signs_from = if at_once {
                now
            } else {
                now + key_publish_ahead.as_secs() as i64
            };
            let kid = keys::generate(dir, signs_from)?;
            tracing::info!(event = "key_rotated", %kid, signs_from, immediate = at_once);
            if at_once {
                println!("new signing key {kid}");
                println!(
                    "Running servers sign with it within 10 seconds (at once on SIGHUP); older keys stay in the JWKS."
                );
            } else {
                println!("new staged key {kid} signs from {}", when(signs_from));
                println!(
                    "Running servers publish it in the JWKS within 10 seconds (at once on SIGHUP) and sign with it from then on; older keys stay in the JWKS until their tokens have expired."
                );
            }
        }
        KeysCommand::Retire { kid } => {
            let file = keys::retire(dir, &kid, now)?;
            tracing::info!(event = "key_retired", %kid);
            println!("retired key {kid} (removed {})", file.display());
        }
    }
    Ok(())
}
