//! `serve`: opens the store (running migrations), then serves the API until SIGINT/SIGTERM,
//! finishing in-flight requests before exiting.

use crate::config::ServeConfig;
use anyhow::{Context, Result};
use std::time::Duration;

pub async fn run(cfg: ServeConfig) -> Result<()> {
    let store = store::open(&cfg.db.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", store::redact_url(&cfg.db.database_url)))?;
    tracing::info!(database = %store::redact_url(&cfg.db.database_url), backend = store.backend(), "store ready");
    if !cfg.api {
        tracing::info!("API disabled (--no-api); waiting for a shutdown signal");
        shutdown_signal().await;
        return Ok(());
    }
    let api_cfg = api::ApiConfig {
        rate_limit_per_minute: cfg.rate_limit,
        max_body_bytes: cfg.max_body_bytes,
        key_cache_ttl: Duration::from_secs(1),
        anniversary_lead_days: cfg.anniversary_lead_days,
        ..api::ApiConfig::default()
    };
    let state = api::AppState::new(store, api_cfg);
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "serving the API");
    api::serve(listener, state, shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
