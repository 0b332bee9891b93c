//! `keys create|list|revoke`. A new key is printed once, as the only line on stdout; only its
//! SHA-256 is stored.

use crate::config::{DbArgs, DbConfig};
use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use domain::snapshot::format_timestamp;
use domain::{PartnerId, TenantId};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key (and the tenant and partner when new); prints the key.
    Create {
        /// Tenant id, e.g. con_acme.
        #[arg(long)]
        tenant: String,
        /// Default partner id of the key (the tenant owns it from now on).
        #[arg(long)]
        partner: String,
        /// Admin keys may also ingest snapshots.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List keys (prefixes only).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke every key starting with KEY_PREFIX.
    Revoke {
        key_prefix: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

pub async fn run(cmd: KeysCommand) -> Result<ExitCode> {
    match cmd {
        KeysCommand::Create {
            tenant,
            partner,
            admin,
            db,
        } => {
            if !valid_name(&tenant) || !valid_name(&partner) {
                bail!("--tenant and --partner must be 1-128 characters of [A-Za-z0-9_.-]");
            }
            let store = open(&db).await?;
            let (key, record) = store::NewApiKey::issue(
                TenantId(tenant),
                PartnerId(partner),
                admin,
                domain::clock::Clock::system().now(),
            );
            store
                .create_key(record)
                .await
                .map_err(|e| anyhow!("creating the key: {e}"))?;
            println!("{key}");
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { db } => {
            let store = open(&db).await?;
            let keys = store
                .list_keys()
                .await
                .map_err(|e| anyhow!("listing keys: {e}"))?;
            println!(
                "{:<12} {:<24} {:<24} {:<6} {:<20} STATUS",
                "PREFIX", "TENANT", "PARTNER", "ADMIN", "CREATED"
            );
            for k in keys {
                println!(
                    "{:<12} {:<24} {:<24} {:<6} {:<20} {}",
                    k.prefix,
                    k.tenant.0,
                    k.partner.0,
                    if k.admin { "yes" } else { "no" },
                    format_timestamp(k.created_at),
                    match k.revoked_at {
                        Some(t) => format!("revoked at {}", format_timestamp(t)),
                        None => "active".into(),
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { key_prefix, db } => {
            if key_prefix.len() < 4 {
                bail!("give at least 4 characters of the key prefix");
            }
            let store = open(&db).await?;
            let n = store
                .revoke_keys(&key_prefix, domain::clock::Clock::system().now())
                .await
                .map_err(|e| anyhow!("revoking: {e}"))?;
            if n == 0 {
                eprintln!("no active key starts with {key_prefix}");
                return Ok(ExitCode::from(1));
            }
            eprintln!("revoked {n} key(s)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open(db: &DbArgs) -> Result<store::DynStore> {
    let cfg = DbConfig::load(db)?;
    crate::config::init_tracing(cfg.log_format);
    store::open(&cfg.database_url)
        .await
        .map_err(|e| anyhow!("opening {}: {e}", store::redact_url(&cfg.database_url)))
}
