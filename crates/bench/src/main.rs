//! Load generator for the prospect-events HTTP API: N keep-alive HTTP/1.1 connections, each
//! sending requests back to back for a fixed duration; reports throughput and latency
//! percentiles. Deliberately minimal (hand-written HTTP/1.1 over TCP) so the generator costs as
//! little CPU as possible next to the server on a small machine.

mod cpu;
mod wal;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser, Clone)]
#[command(about = "HTTP load generator for prospect-events")]
struct Args {
    /// Server address (host:port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// API key.
    #[arg(long, env = "BENCH_API_KEY")]
    key: String,
    /// Operation to load.
    #[arg(long, value_enum)]
    op: Op,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// A process whose CPU time over the measured seconds is reported per request (`LABEL=PID`,
    /// its children counted with it: give PostgreSQL's postmaster); repeatable.
    #[arg(long = "cpu")]
    cpu: Vec<cpu::Watched>,
    /// PostgreSQL URL of the server's cluster: the WAL it wrote over the measured seconds is
    /// reported per request (`wal_kb_per_request`; null without it).
    #[arg(long)]
    wal: Option<String>,
    /// Unmeasured warm-up in seconds.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Enrollments created before a PATCH or GET run (PATCH picks one at random per request).
    #[arg(long, default_value_t = 1000)]
    enrollments: usize,
    /// Prospect ids per enrollment body.
    #[arg(long, default_value_t = 20)]
    ids: usize,
    /// Query string of the GET load (a page of the partner's enrollments).
    #[arg(long, default_value = "?limit=100")]
    get_query: String,
    /// Prospect ids (one per line) the `events` load asks about (`--ids` random ones a request).
    #[arg(long)]
    prospect_file: Option<String>,
    /// `timestamp_from` of the `events` load (empty: none, the default 3-month window).
    #[arg(long, default_value = "2000-01-01")]
    events_from: String,
    /// PATCH: how many of the enrollment's prospect ids each request replaces, keeping the
    /// others (default: all of them, the worst case). Each connection PATCHes its own share of
    /// the enrollments so it knows their current ids.
    #[arg(long)]
    changed_ids: Option<usize>,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Post,
    Patch,
    Get,
    /// `POST /v1/prospects/events` for `--ids` random prospects of `--prospect-file`.
    Events,
}

const PATH: &str = "/v1/prospects/events/enrollments";
const TYPES: [&str; 3] = [
    "prospect_changed_role",
    "prospect_changed_company",
    "prospect_job_start_anniversary",
];

struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    line: String,
    body: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> Result<Self> {
        let s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting {addr}"))?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(Self {
            reader: BufReader::new(r),
            writer: w,
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// Sends one request and reads the whole response; returns the status code.
    async fn call(&mut self, req: &[u8]) -> Result<u16> {
        self.writer.write_all(req).await?;
        self.line.clear();
        self.reader.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("bad status line")?;
        let mut len = 0usize;
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line).await? == 0 {
                bail!("connection closed");
            }
            let l = self.line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse()?;
                }
            }
        }
        self.body.resize(len, 0);
        self.reader.read_exact(&mut self.body).await?;
        Ok(status)
    }
}

fn request(method: &str, key: &str, body: Option<&str>) -> Vec<u8> {
    request_to(method, PATH, key, body)
}

fn request_to(method: &str, path: &str, key: &str, body: Option<&str>) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: bench\r\napi_key: {key}\r\n");
    if let Some(b) = body {
        r.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        r.push_str("\r\n");
    }
    r.into_bytes()
}

fn body(rng: &mut impl Rng, ids: usize, enrollment_id: Option<&str>) -> String {
    let prospects: Vec<String> = (0..ids)
        .map(|_| hex::encode(rng.random::<[u8; 20]>()))
        .collect();
    body_with(rng, &prospects, enrollment_id)
}

fn body_with(rng: &mut impl Rng, prospects: &[String], enrollment_id: Option<&str>) -> String {
    let n = rng.random_range(1..=3);
    let types: Vec<&str> = TYPES[..n].to_vec();
    let mut v = serde_json::json!({
        "enrollment_key": format!("bench_{}", rng.random_range(0..100)),
        "event_types": types,
        "prospect_ids": prospects,
    });
    if let Some(id) = enrollment_id {
        v["enrollment_id"] = serde_json::Value::String(id.to_string());
    }
    v.to_string()
}

async fn setup(args: &Args) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut conn = Conn::open(&args.addr).await?;
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let mut ids = Vec::with_capacity(args.enrollments);
    let mut lists = Vec::with_capacity(args.enrollments);
    for _ in 0..args.enrollments {
        let prospects: Vec<String> = (0..args.ids)
            .map(|_| hex::encode(rng.random::<[u8; 20]>()))
            .collect();
        let req = request(
            "POST",
            &args.key,
            Some(&body_with(&mut rng, &prospects, None)),
        );
        lists.push(prospects);
        let status = conn.call(&req).await?;
        if status != 200 {
            bail!(
                "setup POST answered {status}: {}",
                String::from_utf8_lossy(&conn.body)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&conn.body)?;
        ids.push(
            v["enrollment_id"]
                .as_str()
                .context("no enrollment_id")?
                .to_string(),
        );
    }
    Ok((ids, lists))
}

struct Report {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

fn events_body(rng: &mut impl Rng, prospects: &[String], ids: usize, from: &str) -> String {
    let chosen: Vec<&str> = (0..ids.clamp(1, 40))
        .map(|_| prospects[rng.random_range(0..prospects.len())].as_str())
        .collect();
    let mut v = serde_json::json!({"event_types": TYPES, "prospect_ids": chosen});
    if !from.is_empty() {
        v["timestamp_from"] = serde_json::Value::String(from.to_string());
    }
    v.to_string()
}

async fn worker(
    args: Arc<Args>,
    ids: Arc<Vec<String>>,
    lists: Arc<Vec<Vec<String>>>,
    me: usize,
    measure_from: Instant,
    stop: Arc<AtomicBool>,
) -> Result<Report> {
    // This connection's share of the enrollments and their current prospect ids.
    let mut mine: Vec<(usize, Vec<String>)> = lists
        .iter()
        .enumerate()
        .filter(|(i, _)| i % args.connections == me)
        .map(|(i, l)| (i, l.clone()))
        .collect();
    let mut conn = Conn::open(&args.addr).await?;
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let mut rep = Report {
        latencies_us: Vec::with_capacity(200_000),
        errors: 0,
        first_error: None,
    };
    let get = request_to("GET", &format!("{PATH}{}", args.get_query), &args.key, None);
    while !stop.load(Ordering::Relaxed) {
        let req = match args.op {
            Op::Get => get.clone(),
            Op::Events => request_to(
                "POST",
                "/v1/prospects/events",
                &args.key,
                Some(&events_body(&mut rng, &ids, args.ids, &args.events_from)),
            ),
            Op::Post => request("POST", &args.key, Some(&body(&mut rng, args.ids, None))),
            Op::Patch => match args.changed_ids {
                Some(n) if !mine.is_empty() => {
                    let k = rng.random_range(0..mine.len());
                    let (idx, list) = &mut mine[k];
                    for _ in 0..n.min(list.len()) {
                        let at = rng.random_range(0..list.len());
                        list[at] = hex::encode(rng.random::<[u8; 20]>());
                    }
                    let id = &ids[*idx];
                    request(
                        "PATCH",
                        &args.key,
                        Some(&body_with(&mut rng, list, Some(id))),
                    )
                }
                _ => {
                    let id = &ids[rng.random_range(0..ids.len())];
                    request(
                        "PATCH",
                        &args.key,
                        Some(&body(&mut rng, args.ids, Some(id))),
                    )
                }
            },
        };
        let t = Instant::now();
        let status = conn.call(&req).await?;
        let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
        if t >= measure_from {
            if status == 200 {
                rep.latencies_us.push(us);
            } else {
                rep.errors += 1;
                if rep.first_error.is_none() {
                    rep.first_error =
                        Some(format!("{status}: {}", String::from_utf8_lossy(&conn.body)));
                }
            }
        }
    }
    Ok(rep)
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    let mut lists = Vec::new();
    let ids = if args.op == Op::Events {
        let path = args
            .prospect_file
            .as_deref()
            .context("--op events needs --prospect-file")?;
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        let ids: Vec<String> = text
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if ids.is_empty() {
            bail!("{path} holds no prospect ids");
        }
        ids
    } else if args.op == Op::Post {
        Vec::new()
    } else {
        let (ids, l) = setup(&args).await?;
        lists = l;
        ids
    };
    let ids = Arc::new(ids);
    let lists = Arc::new(lists);
    let stop = Arc::new(AtomicBool::new(false));
    let measure_from = Instant::now() + Duration::from_secs(args.warmup);
    let mut tasks = Vec::new();
    for me in 0..args.connections {
        tasks.push(tokio::spawn(worker(
            args.clone(),
            ids.clone(),
            lists.clone(),
            me,
            measure_from,
            stop.clone(),
        )));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_from: Vec<f64> = args.cpu.iter().map(|w| cpu::seconds(w.pid)).collect();
    let wal_from = match args.wal.as_deref() {
        Some(url) => Some((url, wal::position(url).await?)),
        None => None,
    };
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let wal_written = match wal_from {
        Some((url, from)) => Some(wal::position(url).await? - from),
        None => None,
    };
    let cpu_spent: Vec<f64> = args
        .cpu
        .iter()
        .zip(cpu_from)
        .map(|(w, from)| cpu::seconds(w.pid) - from)
        .collect();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let r = t.await??;
        all.extend(r.latencies_us);
        errors += r.errors;
        first_error = first_error.or(r.first_error);
    }
    all.sort_unstable();
    let secs = args.seconds as f64;
    let requests = all.len().max(1) as f64;
    // CPU milliseconds a measured request cost each watched process.
    let cpu_ms: Vec<String> = args
        .cpu
        .iter()
        .zip(cpu_spent)
        .map(|(w, s)| format!("\"{}\":{:.3}", w.label, s * 1000.0 / requests))
        .collect();
    // WAL kilobytes a measured request cost the cluster.
    let wal_kb = wal_written.map_or("null".to_string(), |b| {
        format!("{:.1}", b as f64 / 1024.0 / requests)
    });
    println!(
        "{{\"op\":\"{:?}\",\"changed_ids\":{},\"connections\":{},\"seconds\":{},\"ok\":{},\"errors\":{},\"rps\":{:.0},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3},\"cpu_ms_per_request\":{{{}}},\"wal_kb_per_request\":{}}}",
        args.op,
        args.changed_ids.unwrap_or(args.ids),
        args.connections,
        args.seconds,
        all.len(),
        errors,
        all.len() as f64 / secs,
        pct(&all, 0.50),
        pct(&all, 0.90),
        pct(&all, 0.99),
        pct(&all, 0.999),
        pct(&all, 1.0),
        cpu_ms.join(","),
        wal_kb,
    );
    if let Some(e) = first_error {
        eprintln!("first error: {e}");
    }
    Ok(())
}
