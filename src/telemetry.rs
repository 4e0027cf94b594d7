//! Logging: `tracing` with the filter from `RUST_LOG` (default `ferrid=info`).
//! Nothing secret is ever recorded: spans name routes, not URIs; secrets are `model::Secret`,
//! whose `Debug` is redacted; no header values are logged.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub const DEFAULT_FILTER: &str = "ferrid=info";

/// Installs the global subscriber, writing to stderr. `json` selects one JSON object a line.
pub fn init(json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // `try_init`: a second call (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
