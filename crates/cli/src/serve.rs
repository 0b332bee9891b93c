//! `serve`: opens the store (running migrations), then runs the API, the delivery worker and
//! the anniversary scanner (each can be switched off) until SIGINT/SIGTERM; on shutdown it stops
//! accepting, finishes in-flight requests and delivery attempts, then exits.

use crate::config::ServeConfig;
use anyhow::{Context, Result};
use delivery::{Limiter, RetryPolicy, Sender, SenderConfig, Worker, WorkerConfig};
use std::sync::Arc;
use std::time::Duration;
use store::DynStore;
use tokio::sync::watch;

pub async fn run(cfg: ServeConfig) -> Result<()> {
    let store = store::open(&cfg.db.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", store::redact_url(&cfg.db.database_url)))?;
    tracing::info!(database = %store::redact_url(&cfg.db.database_url), backend = store.backend(), "store ready");

    let sender = Sender::new(SenderConfig {
        timeout: cfg.delivery_timeout,
        allow_private_targets: cfg.allow_private_targets,
        ..SenderConfig::default()
    })
    .context("building the webhook HTTP client")?;
    if cfg.allow_private_targets {
        tracing::warn!(
            "--allow-private-targets: webhooks may target loopback and private networks"
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    let mut wake = None;
    if cfg.worker {
        let worker = Worker::new(
            store.clone(),
            sender.clone(),
            Arc::new(Limiter::default()),
            WorkerConfig {
                retry: RetryPolicy::new(cfg.retry_schedule.clone(), 0.2),
                disable_after: cfg.disable_after,
                lease: cfg.delivery_lease,
                ..WorkerConfig::default()
            },
        );
        wake = Some(worker.wake_handle());
        tasks.spawn(worker.run(stop_rx.clone()));
    }
    if cfg.scanner {
        tasks.spawn(scanner(
            store.clone(),
            cfg.anniversary_lead_days,
            cfg.scan_interval,
            cfg.event_retention,
            stop_rx.clone(),
        ));
    }

    let stop_signal = async move {
        shutdown_signal().await;
        // Receivers only need the value; a send error means everyone already stopped.
        let _ = stop_tx.send(true);
    };
    if cfg.api {
        let api_cfg = api::ApiConfig {
            rate_limit_per_minute: cfg.rate_limit,
            max_body_bytes: cfg.max_body_bytes,
            anniversary_lead_days: cfg.anniversary_lead_days,
            ..api::ApiConfig::default()
        };
        let state = api::AppState::with_delivery(store, api_cfg, sender, wake);
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        tracing::info!(listen = %listener.local_addr()?, "serving the API");
        api::serve(listener, state, stop_signal)
            .await
            .context("serving")?;
    } else {
        tracing::info!("API disabled (--no-api)");
        stop_signal.await;
    }
    while tasks.join_next().await.is_some() {}
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Fires due anniversaries at start and then every `interval`, and applies event retention and
/// the idempotency keys' expiry.
async fn scanner(
    store: DynStore,
    lead_days: u32,
    interval: Duration,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let now = time::OffsetDateTime::now_utc();
        match store.scan_anniversaries(now, lead_days).await {
            Ok(r) => tracing::info!(
                scan.candidates = r.candidates,
                scan.events_created = r.events_created,
                scan.notifications_queued = r.notifications_queued,
                "anniversary scan done"
            ),
            Err(e) => tracing::warn!(error = %e, "anniversary scan failed; retrying next interval"),
        }
        let cutoff = now - time::Duration::seconds(retention.as_secs() as i64);
        match store.prune_events(cutoff).await {
            Ok(n) if n > 0 => tracing::info!(events.pruned = n, "event retention applied"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "event retention failed"),
        }
        // Idempotency keys are ignored from 24 h on; this only frees their rows.
        let key_cutoff = (now.unix_timestamp_nanos() / 1_000_000) as i64
            - store::idempotency::IDEMPOTENCY_TTL_MS;
        match store.prune_idempotency_keys(key_cutoff).await {
            Ok(n) if n > 0 => {
                tracing::info!(idempotency_keys.pruned = n, "old idempotency keys deleted")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning idempotency keys failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
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
    tracing::info!("shutdown signal received; finishing in-flight work");
}
