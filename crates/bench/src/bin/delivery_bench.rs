//! Delivery benchmark (issue 4): one process with a temporary SQLite database (or, with
//! `--database-url postgres://…`, an empty PostgreSQL database or schema), the real store, the
//! real worker and sender, and a local keep-alive receiver.
//!
//! * `throughput`: queue N notifications through ingestion (enrollments × changed prospects),
//!   then start the worker and time until the receiver got all of them and every attempt is
//!   recorded as delivered.
//! * `latency`: with the worker running, ingest changes at a fixed rate (events/s) and measure
//!   commit-to-receipt latency per notification.
//!
//! With `--tls` the receiver speaks HTTPS (a certificate from a CA made for the run, trusted by
//! the sender as `--webhook-ca-file` would be). Both modes report the connections the receiver
//! accepted.

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use clap::{Parser, Subcommand};
use delivery::{Limiter, Sender, SenderConfig, Worker, WorkerConfig};
use domain::snapshot::Snapshot;
use domain::{EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{DynStore, EnrollmentSpec, IngestOptions, NewEnrollment, Scope};
use time::OffsetDateTime;

#[derive(Parser)]
struct Args {
    /// Database to use instead of a temporary SQLite file, e.g. a fresh PostgreSQL schema
    /// (`postgres://…?options=-csearch_path%3Dbench`). It must be empty.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Deliver to an HTTPS receiver instead of plain HTTP.
    #[arg(long, global = true)]
    tls: bool,
    /// Partners, each with its own webhook (all on the one receiver); notifications are spread
    /// evenly over them.
    #[arg(long, global = true, default_value_t = 1)]
    webhooks: usize,
    /// Workers draining the outbox together, each with its own store (connection pool) and
    /// HTTP client, as replicas would.
    #[arg(long, global = true, default_value_t = 1)]
    replicas: usize,
    /// `--delivery-concurrency` of each worker.
    #[arg(long, global = true, default_value_t = domain::defaults::DELIVERY_CONCURRENCY)]
    concurrency: usize,
    /// `--delivery-per-webhook` of each worker.
    #[arg(long, global = true, default_value_t = domain::defaults::DELIVERY_PER_WEBHOOK)]
    per_webhook: usize,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Deliver N queued notifications as fast as possible.
    Throughput {
        #[arg(long, default_value_t = 100_000)]
        notifications: usize,
    },
    /// Ingest events at a fixed rate and measure commit-to-receipt latency.
    Latency {
        #[arg(long, default_value_t = 1000)]
        events_per_second: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
}

type Receipts = Arc<Mutex<Vec<(Instant, String)>>>;

/// The local receiver: its URL, what it received, how many connections it accepted.
struct Receiver {
    url: String,
    got: Receipts,
    connections: Arc<AtomicUsize>,
}

/// A keep-alive receiver answering 200, over HTTPS with `tls` (certificate and key files).
async fn receiver(tls: Option<(&Path, &Path)>) -> Result<Receiver> {
    let got: Receipts = Default::default();
    let g = got.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, _b: Bytes| {
        let g = g.clone();
        async move {
            let id = headers
                .get("x-event-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            if let Ok(mut v) = g.lock() {
                v.push((Instant::now(), id));
            }
            "ok"
        }
    });
    let acceptor = match tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            tls::server_config(cert, key)?,
        ))),
        None => None,
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    let url = match acceptor {
        Some(_) => format!("https://localhost:{port}/hook"),
        None => format!("http://127.0.0.1:{port}/hook"),
    };
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = l.accept().await {
            counted.fetch_add(1, Ordering::Relaxed);
            let (app, acceptor) = (app.clone(), acceptor.clone());
            tokio::spawn(async move {
                let service = hyper_util::service::TowerToHyperService::new(app);
                let http = hyper::server::conn::http1::Builder::new();
                let _ = match acceptor {
                    None => http.serve_connection(TokioIo::new(stream), service).await,
                    Some(a) => match a.accept(stream).await {
                        Ok(s) => http.serve_connection(TokioIo::new(s), service).await,
                        Err(_) => return,
                    },
                };
            });
        }
    });
    Ok(Receiver {
        url,
        got,
        connections,
    })
}

fn pid(n: u64) -> ProspectId {
    let mut b = [0u8; 20];
    b[12..].copy_from_slice(&n.to_be_bytes());
    b[0] = 0xbe;
    ProspectId(b)
}

fn snap(p: ProspectId, day: i64, title: &str) -> Snapshot {
    Snapshot {
        prospect_id: p,
        observed_at: OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000 + day),
        full_name: Some("Bench Person".into()),
        linkedin_url: None,
        company_id: None,
        company_name: Some("Acme".into()),
        job_title: Some(title.into()),
        job_start_date: None,
    }
}

/// Enrolls prospects [0, n) in enrollments of 20 ids each, spread evenly over the scopes.
async fn enroll(store: &DynStore, scopes: &[Scope], n: u64) -> Result<()> {
    let per = n.div_ceil(scopes.len() as u64);
    for (w, scope) in scopes.iter().enumerate() {
        let from = w as u64 * per;
        enroll_range(store, scope, from, (from + per).min(n)).await?;
    }
    Ok(())
}

/// Enrolls prospects [from, to) in enrollments of 20 ids each.
async fn enroll_range(store: &DynStore, scope: &Scope, from: u64, to: u64) -> Result<()> {
    let (mut i, n) = (from, to);
    while i < n {
        let ids: Vec<ProspectId> = (i..(i + 20).min(n)).map(pid).collect();
        store
            .create_enrollment(
                scope,
                NewEnrollment {
                    enrollment_id: EnrollmentId::from_random(rand::random()),
                    spec: EnrollmentSpec {
                        enrollment_key: "bench".into(),
                        event_types: vec![EventType::ChangedRole],
                        prospect_ids: ids,
                    },
                    webhook_id: store::LEGACY_WEBHOOK_ID.to_string(),
                    now: time::OffsetDateTime::UNIX_EPOCH,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        i += 20;
    }
    Ok(())
}

fn opts() -> IngestOptions {
    IngestOptions {
        now: OffsetDateTime::now_utc(),
        anniversary_lead_days: 7,
        event_retention: None,
    }
}

struct Setup {
    _dir: tempdir::Dir,
    url: String,
    store: DynStore,
    scopes: Vec<Scope>,
    receiver: Receiver,
    /// The CA file the sender trusts (with `--tls`).
    ca_file: Option<PathBuf>,
}

async fn setup(database_url: Option<&str>, tls: bool, webhooks: usize) -> Result<Setup> {
    let dir = tempdir::Dir::new()?;
    let url = match database_url {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}/bench.db", dir.0.display()),
    };
    let store = store::open(&url)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("backend: {}", store.backend());
    let scopes: Vec<Scope> = (0..webhooks.max(1))
        .map(|w| Scope {
            tenant: TenantId("con_bench".into()),
            partner: PartnerId(format!("bench{w}")),
        })
        .collect();
    for (w, scope) in scopes.iter().enumerate() {
        store
            .create_key(store::NewApiKey {
                key_hash: [w as u8; 32],
                prefix: format!("pe_bench{w}"),
                tenant: scope.tenant.clone(),
                partner: scope.partner.clone(),
                admin: true,
                created_at: time::OffsetDateTime::UNIX_EPOCH,
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let (receiver, ca_file) = if tls {
        let ca = tls::test_pki::TestCa::new("delivery bench CA");
        let (cert, key) = ca.issue(&["localhost"]).write(&dir.0, "receiver");
        (
            receiver(Some((&cert, &key))).await?,
            Some(ca.write(&dir.0, "ca")),
        )
    } else {
        (receiver(None).await?, None)
    };
    for (w, scope) in scopes.iter().enumerate() {
        let secret = domain::signing::generate_secret(rand::random());
        store
            .put_webhook(
                scope,
                &format!("{}/{w}", receiver.url),
                &secret,
                time::OffsetDateTime::UNIX_EPOCH,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(Setup {
        _dir: dir,
        url,
        store,
        scopes,
        receiver,
        ca_file,
    })
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> std::io::Result<Self> {
            let p = std::env::temp_dir().join(format!("pe-delivery-bench-{}", std::process::id()));
            std::fs::create_dir_all(&p)?;
            Ok(Dir(p))
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            // Best effort cleanup of the temporary database.
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A worker configured as `serve` configures it from `--delivery-concurrency` and
/// `--delivery-per-webhook`.
fn worker(store: &DynStore, ca_file: Option<&PathBuf>, args: &Args) -> Result<Worker> {
    let sender = Sender::new(SenderConfig {
        allow_private_targets: true,
        extra_ca_files: ca_file.into_iter().cloned().collect(),
        pool_max_idle_per_host: args.concurrency,
        ..SenderConfig::default()
    })?;
    Ok(Worker::new(
        store.clone(),
        sender,
        Arc::new(Limiter::new(args.concurrency, args.per_webhook)),
        WorkerConfig {
            poll: Duration::from_millis(5),
            ..WorkerConfig::default()
        }
        .sized_for(args.concurrency, args.per_webhook),
    ))
}

/// Whether every notification of the scopes has left `pending`.
async fn all_recorded(store: &DynStore, scopes: &[Scope]) -> Result<bool> {
    for scope in scopes {
        let page = store
            .list_deliveries(
                &store::WebhookKey::legacy(scope),
                &store::DeliveryQuery {
                    status: Some(store::DeliveryStatus::Pending),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if !page.deliveries.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let setup = setup(args.database_url.as_deref(), args.tls, args.webhooks).await?;
    let (store, scopes, got) = (&setup.store, &setup.scopes, &setup.receiver.got);
    let connections = || setup.receiver.connections.load(Ordering::Relaxed);
    match args.mode {
        Mode::Throughput { notifications } => {
            let n = notifications as u64;
            enroll(store, scopes, n).await?;
            let t = Instant::now();
            for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
                let mut batch = Vec::with_capacity(chunk.len() * 2);
                for &i in chunk {
                    batch.push(snap(pid(i), 0, "Engineer"));
                    batch.push(snap(pid(i), 1, "Lead"));
                }
                store
                    .ingest_snapshots(batch.into(), opts())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let queued = store
                .outbox(None, u32::MAX)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .len();
            if queued != notifications {
                bail!("expected {notifications} queued notifications, found {queued}");
            }
            eprintln!(
                "queued {queued} notifications in {:.1}s",
                t.elapsed().as_secs_f64()
            );
            // Replica 0 uses the setup's store; each other one opens its own.
            let mut workers = vec![worker(store, setup.ca_file.as_ref(), &args)?];
            for _ in 1..args.replicas {
                let own = store::open(&setup.url)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                workers.push(worker(&own, setup.ca_file.as_ref(), &args)?);
            }
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let started = Instant::now();
            let tasks: Vec<_> = workers
                .into_iter()
                .map(|w| tokio::spawn(w.run(stop_rx.clone())))
                .collect();
            loop {
                let n_got = got.lock().map(|v| v.len()).unwrap_or(0);
                if n_got >= notifications {
                    break;
                }
                if started.elapsed() > Duration::from_secs(600) {
                    bail!("timed out with {n_got} received");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let received_at = started.elapsed();
            // Wait until every attempt is recorded as delivered.
            while !all_recorded(store, scopes).await? {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let recorded_at = started.elapsed();
            let _ = stop_tx.send(true);
            for task in tasks {
                task.await.context("worker")?;
            }
            let dupes = {
                let v = got.lock().map(|v| v.clone()).unwrap_or_default();
                let mut ids: Vec<&String> = v.iter().map(|(_, id)| id).collect();
                ids.sort();
                ids.dedup();
                v.len() - ids.len()
            };
            println!(
                "{{\"mode\":\"throughput\",\"tls\":{},\"webhooks\":{},\"replicas\":{},\"concurrency\":{},\"per_webhook\":{},\"notifications\":{notifications},\"received_s\":{:.2},\"all_recorded_s\":{:.2},\"deliveries_per_s\":{:.0},\"duplicates\":{dupes},\"connections\":{},\"connections_per_100\":{:.2}}}",
                args.tls,
                args.webhooks,
                args.replicas,
                args.concurrency,
                args.per_webhook,
                received_at.as_secs_f64(),
                recorded_at.as_secs_f64(),
                notifications as f64 / recorded_at.as_secs_f64(),
                connections(),
                connections() as f64 * 100.0 / notifications as f64
            );
        }
        Mode::Latency {
            events_per_second,
            seconds,
        } => {
            let total = events_per_second as u64 * seconds;
            enroll(store, scopes, total).await?;
            // Baselines first, so each later snapshot produces exactly one event.
            for chunk in (0..total).collect::<Vec<_>>().chunks(5000) {
                let batch = chunk.iter().map(|&i| snap(pid(i), 0, "Engineer")).collect();
                store
                    .ingest_snapshots(batch, opts())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let w = worker(store, setup.ca_file.as_ref(), &args)?;
            let wake = w.wake_handle();
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(w.run(stop_rx));
            // 10 ingestion batches per second, each committed then timed.
            let per_tick = (events_per_second / 100).max(1) as u64;
            let mut committed: HashMap<u64, Instant> = HashMap::new();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut next = 0u64;
            let mut commit_times: Vec<(u64, u64, Instant)> = Vec::new();
            while next < total {
                tick.tick().await;
                let end = (next + per_tick).min(total);
                let batch = (next..end).map(|i| snap(pid(i), 1, "Lead")).collect();
                store
                    .ingest_snapshots(batch, opts())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let at = Instant::now();
                wake.notify();
                commit_times.push((next, end, at));
                next = end;
            }
            for (a, b, at) in commit_times {
                for i in a..b {
                    committed.insert(i, at);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while got.lock().map(|v| v.len()).unwrap_or(0) < total as usize
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = stop_tx.send(true);
            task.await.context("worker")?;
            // Map event ids back to prospects via the events store.
            let receipts = got.lock().map(|v| v.clone()).unwrap_or_default();
            let mut by_event: HashMap<String, Instant> = HashMap::new();
            for (at, id) in receipts {
                by_event.entry(id).or_insert(at);
            }
            let mut lat = Vec::new();
            for chunk in (0..total).collect::<Vec<_>>().chunks(40) {
                let evs = store
                    .query_events(&store::EventQuery {
                        prospect_ids: chunk.iter().map(|&i| pid(i)).collect(),
                        event_types: vec![EventType::ChangedRole],
                        from: OffsetDateTime::UNIX_EPOCH,
                        to: None,
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                for e in evs {
                    let i = u64::from_be_bytes(e.prospect_id.0[12..].try_into()?);
                    if let (Some(c), Some(r)) = (committed.get(&i), by_event.get(&e.event_id)) {
                        lat.push(r.saturating_duration_since(*c).as_secs_f64() * 1000.0);
                    }
                }
            }
            lat.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{{\"mode\":\"latency\",\"tls\":{},\"events_per_second\":{events_per_second},\"events\":{total},\"received\":{},\"p50_ms\":{:.1},\"p90_ms\":{:.1},\"p99_ms\":{:.1},\"max_ms\":{:.1},\"connections\":{}}}",
                args.tls,
                lat.len(),
                pct(&lat, 0.5),
                pct(&lat, 0.9),
                pct(&lat, 0.99),
                pct(&lat, 1.0),
                connections()
            );
        }
    }
    Ok(())
}
