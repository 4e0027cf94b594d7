//! The `ferrid` binary: parse the command line, start logging, hand over to `ferrid::cli`.

use clap::Parser;

/// mimalloc: every request allocates and frees across the runtime's threads, where glibc's
/// malloc spent a sixth of /introspect's CPU (per-thread caches, no arena locks here).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = ferrid::cli::Cli::parse();
    ferrid::telemetry::init(cli.log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ferrid::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
