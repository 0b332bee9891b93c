//! `serve`: opens the store (running migrations), then runs the API, the delivery worker and
//! the anniversary scanner (each can be switched off) until SIGINT/SIGTERM; on shutdown it stops
//! accepting, finishes in-flight requests and delivery attempts, then exits.

use crate::config::ServeConfig;
use anyhow::{Context, Result};
use delivery::{Limiter, RetryPolicy, Sender, SenderConfig, Worker, WorkerConfig};
use domain::clock::Clock;
use std::sync::Arc;
use std::time::Duration;
use store::DynStore;
use tokio::sync::watch;

pub async fn run(cfg: ServeConfig) -> Result<()> {
    // Files named by flags (certificates, CAs) are read first: a bad one stops us before the
    // database is touched or any task starts.
    let server_tls = api_tls(&cfg)?;
    let sender = webhook_sender(&cfg)?;
    // The worker's own connections come on top of the pool's default, for the API.
    let worker_connections = if cfg.worker {
        delivery::DATABASE_CONNECTIONS
    } else {
        0
    };
    let store = store::open_with_extra_connections(&cfg.db.database_url, worker_connections)
        .await
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", store::redact_url(&cfg.db.database_url)))?;
    tracing::info!(database = %store::redact_url(&cfg.db.database_url), backend = store.backend(), "store ready");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    let mut wake = None;
    if cfg.worker {
        let worker = delivery_worker(&cfg, store.clone(), sender.clone());
        wake = Some(worker.wake_handle());
        tasks.spawn(worker.run(stop_rx.clone()));
    }
    if cfg.scanner {
        tasks.spawn(scanner(
            store.clone(),
            Clock::system(),
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
        let state = api::AppState::with_delivery(store, api_config(&cfg), sender, wake);
        serve_api(&cfg, server_tls, state, stop_signal).await?;
    } else {
        tracing::info!("API disabled (--no-api)");
        stop_signal.await;
    }
    while tasks.join_next().await.is_some() {}
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The outbound HTTP client every notification leaves through.
fn webhook_sender(cfg: &ServeConfig) -> Result<Sender> {
    let sender = Sender::new(SenderConfig {
        timeout: cfg.delivery_timeout,
        allow_private_targets: cfg.allow_private_targets,
        extra_ca_files: cfg.webhook_ca_file.iter().cloned().collect(),
        // Every attempt in flight may go to one host: keep as many connections to reuse.
        pool_max_idle_per_host: cfg.delivery_concurrency,
        ..SenderConfig::default()
    })
    .context("building the webhook HTTP client")?;
    if cfg.allow_private_targets {
        tracing::warn!(
            "--allow-private-targets: webhooks may target loopback and private networks"
        );
    }
    Ok(sender)
}

fn delivery_worker(cfg: &ServeConfig, store: DynStore, sender: Sender) -> Worker {
    Worker::new(
        store,
        sender,
        Arc::new(Limiter::new(
            cfg.delivery_concurrency,
            cfg.delivery_per_webhook,
        )),
        WorkerConfig {
            retry: RetryPolicy::new(cfg.retry_schedule.clone(), domain::defaults::RETRY_JITTER),
            disable_after: cfg.disable_after,
            lease: cfg.delivery_lease,
            ..WorkerConfig::default()
        }
        .sized_for(cfg.delivery_concurrency, cfg.delivery_per_webhook),
    )
}

fn api_config(cfg: &ServeConfig) -> api::ApiConfig {
    api::ApiConfig {
        rate_limit_per_minute: cfg.rate_limit,
        max_body_bytes: cfg.max_body_bytes,
        anniversary_lead_days: cfg.anniversary_lead_days,
        max_line_bytes: cfg.max_line_bytes,
        event_retention: Some(cfg.event_retention),
        secret_rotation_grace: cfg.secret_rotation_grace,
        connections: api::ConnLimits {
            header_read_timeout: cfg.http_header_timeout,
            idle_timeout: cfg.http_idle_timeout,
            max_connections: cfg.max_connections,
        },
        ..api::ApiConfig::default()
    }
}

/// The HTTPS API's configuration with `--tls-cert`/`--tls-key`; a certificate and key that do
/// not go together are an error.
fn api_tls(cfg: &ServeConfig) -> Result<Option<Arc<tls::rustls::ServerConfig>>> {
    let Some(t) = &cfg.tls else {
        return Ok(None);
    };
    let config = tls::server_config(&t.cert, &t.key).with_context(|| {
        format!(
            "--tls-cert {} / --tls-key {}",
            t.cert.display(),
            t.key.display()
        )
    })?;
    Ok(Some(Arc::new(config)))
}

/// Binds `--listen` and serves the API (over HTTPS with `server_tls`) until `stop_signal`.
async fn serve_api(
    cfg: &ServeConfig,
    server_tls: Option<Arc<tls::rustls::ServerConfig>>,
    state: api::AppState,
    stop_signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let scheme = if server_tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(listen = %listener.local_addr()?, scheme, "serving the API");
    match server_tls {
        Some(t) => api::serve_tls(listener, state, t, stop_signal).await,
        None => api::serve(listener, state, stop_signal).await,
    }
    .context("serving")
}

/// Fires due anniversaries at start and then every `interval`, and applies event retention and
/// the idempotency keys' expiry.
async fn scanner(
    store: DynStore,
    clock: Clock,
    lead_days: u32,
    interval: Duration,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let now = clock.now();
        let opts = store::IngestOptions {
            now,
            anniversary_lead_days: lead_days,
            event_retention: Some(retention),
        };
        match store.scan_anniversaries(opts).await {
            Ok(r) => tracing::info!(
                scan.candidates = r.candidates,
                scan.events_created = r.events_created,
                scan.notifications_queued = r.notifications_queued,
                "anniversary scan done"
            ),
            Err(e) => tracing::warn!(error = %e, "anniversary scan failed; retrying next interval"),
        }
        // The same cutoff ingestion applies: what it refuses to create is what is deleted.
        if let Some(cutoff) = store::retention_cutoff(now, retention) {
            match store.prune_events(cutoff).await {
                Ok(n) => tracing::info!(events.pruned = n, "event retention applied"),
                Err(e) => tracing::warn!(error = %e, "event retention failed"),
            }
        }
        // Idempotency keys are ignored from 24 h on; this only frees their rows.
        let key_cutoff = now - store::idempotency::IDEMPOTENCY_TTL;
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
