//! The `prospect-events` binary: parses the command line, loads configuration, sets up
//! telemetry and runs one subcommand. All behaviour lives in the library crates.

mod alloc;
mod config;
mod demo;
mod ingest;
mod keys;
mod serve;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use config::{DbArgs, ServeArgs};

#[derive(Parser)]
#[command(
    name = "prospect-events",
    version,
    about = "Watches B2B prospects for career events and notifies clients by pull API and signed webhooks."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the `serve` variant (one field per option) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the API (and, as they land, the delivery worker and anniversary scanner).
    Serve(Box<ServeArgs>),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Ingest snapshots (NDJSON or CSV) from a file or standard input.
    Ingest(ingest::IngestArgs),
    /// A self-contained tour: temporary database, local receiver, enroll, patch, ingest,
    /// verified notifications.
    Demo,
}

fn main() -> std::process::ExitCode {
    // Usage errors exit 1: exit code 2 means "some lines rejected" for `ingest`.
    // The help texts show each option's default from `domain::defaults`.
    let parsed = config::document_defaults(Cli::command())
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            // Printing help or the error can only fail on a closed terminal.
            let _ = e.print();
            return std::process::ExitCode::from(code);
        }
    };
    if matches!(cli.command, Command::Serve(_)) {
        alloc::return_large_blocks_to_the_system();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let cfg = config::ServeConfig::load(*args)?;
            config::init_tracing(cfg.log_format);
            serve::run(cfg).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Keys { command } => keys::run(command).await,
        Command::Ingest(args) => ingest::run(args).await,
        Command::Demo => {
            config::init_tracing(config::LogFormat::Text);
            demo::run().await
        }
        Command::Migrate(db) => {
            let cfg = config::DbConfig::load(&db)?;
            config::init_tracing(cfg.log_format);
            store::open(&cfg.database_url).await.map_err(|e| {
                anyhow::anyhow!("migrating {}: {e}", store::redact_url(&cfg.database_url))
            })?;
            eprintln!(
                "migrations applied to {}",
                store::redact_url(&cfg.database_url)
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
