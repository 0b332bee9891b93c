//! `ingest FILE|-`: streams snapshots into the database directly, or to a running server
//! (`--server URL --api-key K`). Rejected lines are printed to stderr one by one as JSON
//! `{"line","error"}`; the summary is printed to stdout as JSON. Exit 0 when every line was
//! accepted, 2 when some were rejected, 1 on a fatal error.

use crate::config::{DbArgs, DbConfig, IngestSettings};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ingest::{Format, LineError, Progress, Summary};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct IngestArgs {
    /// NDJSON or CSV file, or `-` for standard input.
    pub file: String,
    /// Input format (default: by extension, `.csv` is CSV, anything else NDJSON).
    #[arg(long)]
    pub format: Option<String>,
    /// Send to a running server's admin endpoint instead of the database.
    #[arg(long, env = "PROSPECT_EVENTS_SERVER")]
    pub server: Option<String>,
    /// Admin API key for --server.
    #[arg(long, env = "PROSPECT_EVENTS_API_KEY")]
    pub api_key: Option<String>,
    /// Days ahead an anniversary is announced.
    #[arg(
        long,
        env = "PROSPECT_EVENTS_ANNIVERSARY_LEAD_DAYS",
        default_value_t = domain::defaults::ANNIVERSARY_LEAD_DAYS
    )]
    pub anniversary_lead_days: u32,
    /// Snapshots parsed and applied at a time (held in memory).
    #[arg(long, default_value_t = 40_000)]
    pub batch_size: usize,
    /// Snapshots per transaction when writing to the database directly (a multiple of
    /// --batch-size in effect; a crash loses at most this many, and re-running is safe).
    /// Other writers to the same SQLite file wait while a transaction is open.
    #[arg(long, default_value_t = 500_000)]
    pub commit_every: usize,
    /// Longest accepted line, in bytes: a longer one is rejected (a line
    /// error) without being held in memory. With --server the server's own limit applies.
    #[arg(long, env = "PROSPECT_EVENTS_MAX_LINE_BYTES")]
    pub max_line_bytes: Option<usize>,
    /// Events older than this (by event time) are not created nor notified, as `serve`'s
    /// retention would delete them. With --server the server's retention applies.
    #[arg(long, env = "PROSPECT_EVENTS_EVENT_RETENTION")]
    pub event_retention: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

pub async fn run(args: IngestArgs) -> Result<ExitCode> {
    let format = match &args.format {
        Some(f) => Format::parse(f).ok_or_else(|| anyhow!("--format must be ndjson or csv"))?,
        None => Format::from_path(&args.file),
    };
    let summary = match &args.server {
        Some(server) => to_server(&args, server, format).await?,
        None => to_database(&args, format).await?,
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(if summary.rejected > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_error(e: &LineError) {
    // stderr is the report channel for rejected lines; a closed stderr is not worth dying for.
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}",
        serde_json::to_string(e).unwrap_or_default()
    );
}

async fn to_database(args: &IngestArgs, format: Format) -> Result<Summary> {
    let cfg = DbConfig::load(&args.db)?;
    let settings =
        IngestSettings::load(&args.db, args.event_retention.clone(), args.max_line_bytes)?;
    crate::config::init_tracing(cfg.log_format);
    let store = store::open(&cfg.database_url)
        .await
        .map_err(|e| anyhow!("opening {}: {e}", store::redact_url(&cfg.database_url)))?;
    let (source, total): (Box<dyn std::io::Read + Send>, Option<u64>) = if args.file == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f =
            std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file))?;
        let len = f.metadata().map(|m| m.len()).ok();
        (Box::new(f), len)
    };
    let opts = ingest::Options {
        batch_size: args.batch_size,
        commit_every: Some(args.commit_every),
        anniversary_lead_days: args.anniversary_lead_days,
        max_line_bytes: settings.max_line_bytes,
        event_retention: Some(settings.event_retention),
        ..Default::default()
    };
    let mut reporter = Reporter::new(total);
    let summary = ingest::ingest(&store, source, format, &opts, print_error, |p| {
        reporter.update(p)
    })
    .await
    .map_err(|e| anyhow!("ingestion stopped: {e} (what was committed before this point stays; re-running the file is safe)"))?;
    reporter.finish(&summary);
    Ok(summary)
}

async fn to_server(args: &IngestArgs, server: &str, format: Format) -> Result<Summary> {
    let Some(key) = &args.api_key else {
        bail!("--server needs --api-key (an admin key)");
    };
    let body = if args.file == "-" {
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(tokio::io::stdin()))
    } else {
        let f = tokio::fs::File::open(&args.file)
            .await
            .with_context(|| format!("opening {}", args.file))?;
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f))
    };
    let url = format!(
        "{}/v1/admin/prospects/snapshots",
        server.trim_end_matches('/')
    );
    let ct = match format {
        Format::Csv => "text/csv",
        Format::Ndjson => "application/x-ndjson",
    };
    // An https:// server is checked against the public roots and the system's store (which
    // honours SSL_CERT_FILE, for a private CA).
    let tls = tls::web_client_config(vec![])?;
    let resp = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .context("building the HTTP client")?
        .post(&url)
        .header("api_key", key)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .with_context(|| format!("sending to {url}"))?;
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.context("reading the server's answer")?;
    if !status.is_success() {
        bail!("the server answered {status}: {}", v["detail"]);
    }
    for e in v["errors"].as_array().into_iter().flatten() {
        if let Ok(e) = serde_json::from_value::<LineErrorIn>(e.clone()) {
            print_error(&LineError {
                line: e.line,
                error: e.error,
            });
        }
    }
    if v["errors_truncated"] == true {
        eprintln!("(more rejected lines than the server lists; see summary.rejected)");
    }
    serde_json::from_value::<SummaryIn>(v["summary"].clone())
        .map(Into::into)
        .context("the server's summary is malformed")
}

#[derive(serde::Deserialize)]
struct LineErrorIn {
    line: u64,
    error: String,
}

#[derive(serde::Deserialize)]
struct SummaryIn {
    lines: u64,
    accepted: u64,
    rejected: u64,
    baselines: u64,
    unchanged: u64,
    changed: u64,
    events_created: u64,
    notifications_queued: u64,
    /// Absent from servers before this field existed.
    #[serde(default)]
    events_beyond_retention: u64,
}

impl From<SummaryIn> for Summary {
    fn from(s: SummaryIn) -> Self {
        Summary {
            lines: s.lines,
            accepted: s.accepted,
            rejected: s.rejected,
            baselines: s.baselines,
            unchanged: s.unchanged,
            changed: s.changed,
            events_created: s.events_created,
            notifications_queued: s.notifications_queued,
            events_beyond_retention: s.events_beyond_retention,
        }
    }
}

/// Progress on stderr: a redrawn bar with rate and ETA on a terminal, a plain line every
/// 10 seconds otherwise.
struct Reporter {
    tty: bool,
    total: Option<u64>,
    started: Instant,
    last: Instant,
}

impl Reporter {
    fn new(total: Option<u64>) -> Self {
        let now = Instant::now();
        Self {
            tty: std::io::stderr().is_terminal(),
            total,
            started: now,
            last: now,
        }
    }

    fn line(&self, p: &Progress) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = p.summary.lines as f64 / secs;
        let mut s = format!(
            "{} lines ({} rejected, {} events) {:.0} lines/s",
            p.summary.lines, p.summary.rejected, p.summary.events_created, rate
        );
        if let Some(total) = self.total.filter(|t| *t > 0) {
            let frac = (p.bytes_read as f64 / total as f64).min(1.0);
            let eta = if frac > 0.0 {
                secs * (1.0 - frac) / frac
            } else {
                0.0
            };
            let filled = (frac * 30.0) as usize;
            s = format!(
                "[{}{}] {:>3.0}% {s} ETA {:.0}s",
                "#".repeat(filled),
                "-".repeat(30 - filled),
                frac * 100.0,
                eta
            );
        }
        s
    }

    fn update(&mut self, p: &Progress) {
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        };
        if self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let line = self.line(p);
        let mut err = std::io::stderr().lock();
        // Progress output is best effort.
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
    }

    fn finish(&self, s: &Summary) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!(
            "done: {} lines in {:.1}s ({:.0} lines/s): {} accepted, {} rejected, {} events, {} notifications",
            s.lines,
            secs,
            s.lines as f64 / secs,
            s.accepted,
            s.rejected,
            s.events_created,
            s.notifications_queued
        );
        if s.events_beyond_retention > 0 {
            eprintln!(
                "{} events older than the retention (--event-retention) were not created",
                s.events_beyond_retention
            );
        }
    }
}
