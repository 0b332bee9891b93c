//! Streaming snapshot ingestion shared by `prospect-events ingest` and the admin HTTP endpoint.
//! A parser thread reads NDJSON or CSV from any `Read`, turns lines into snapshots and sends
//! bounded batches to the store, so memory stays flat whatever the input size. Each batch is
//! applied atomically; invalid lines are reported one by one and never stop the valid ones.
//! Lines are capped at [`Options::max_line_bytes`] before parsing (see [`lines`]).

mod lines;

pub use lines::DEFAULT_MAX_LINE_BYTES;

use domain::snapshot::Snapshot;
use lines::{LineLimit, Oversized};
use serde::Serialize;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use store::{DynStore, IngestCounts, IngestOptions, SnapshotBatch, StoreError};
use time::OffsetDateTime;
use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    /// By file extension: `.csv` is CSV, anything else NDJSON.
    pub fn from_path(path: &str) -> Format {
        if path.to_ascii_lowercase().ends_with(".csv") {
            Format::Csv
        } else {
            Format::Ndjson
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// One rejected input line (1-based line number in the input).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: u64,
    pub error: String,
}

/// What an ingestion did, in the SPEC's words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub lines: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub baselines: u64,
    pub unchanged: u64,
    pub changed: u64,
    pub events_created: u64,
    pub notifications_queued: u64,
    /// Events detected but older than the retention ([`Options::event_retention`]): neither
    /// stored nor notified.
    pub events_beyond_retention: u64,
}

impl Summary {
    fn add(&mut self, c: IngestCounts) {
        self.baselines += c.baselines;
        self.unchanged += c.unchanged;
        self.changed += c.changed;
        self.events_created += c.events_created;
        self.notifications_queued += c.notifications_queued;
        self.events_beyond_retention += c.events_beyond_retention;
    }
}

/// Progress after each applied batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub bytes_read: u64,
    pub summary: Summary,
}

pub use domain::clock::Clock;

#[derive(Clone)]
pub struct Options {
    pub batch_size: usize,
    /// Commit about every this many snapshots through the store's bulk mode
    /// ([`store::Store::bulk_ingest`]) instead of once per batch. Only for a process that has
    /// the database to itself for a while (the CLI); `None` commits every batch.
    pub commit_every: Option<usize>,
    pub anniversary_lead_days: u32,
    /// Longest accepted line (NDJSON) or physical line of a CSV record, in bytes without the
    /// `\n`; a longer one is a line error, and at most this much of it is held in memory.
    pub max_line_bytes: usize,
    /// Events older than this (by event time) are not created: the retention that deletes
    /// them later (see [`store::IngestOptions::event_retention`]). `None` keeps every event.
    pub event_retention: Option<std::time::Duration>,
    /// Also the clock `observed_at` must not be ahead of (by more than
    /// [`domain::snapshot::MAX_OBSERVED_AHEAD`]).
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch_size: 20_000,
            commit_every: None,
            anniversary_lead_days: 7,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            event_retention: None,
            clock: Clock::system(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("reading the input: {0}")]
    Io(#[from] std::io::Error),
    #[error("CSV: {0}")]
    Csv(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Batch {
    snapshots: SnapshotBatch,
    errors: Vec<LineError>,
    lines: u64,
    bytes_read: u64,
}

/// Counts bytes pulled through a reader (for progress and ETA).
struct Counting<R> {
    inner: R,
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Ingests everything `source` yields. `on_error` sees each rejected line in input order;
/// `on_progress` runs after each applied batch (committed, unless `commit_every` groups
/// batches). Returns the summary once everything is committed, or the first fatal error (I/O,
/// store); what was committed before a fatal error stays committed.
pub async fn ingest(
    store: &DynStore,
    source: Box<dyn Read + Send>,
    format: Format,
    opts: &Options,
    mut on_error: impl FnMut(&LineError),
    mut on_progress: impl FnMut(&Progress),
) -> Result<Summary, IngestError> {
    // One batch waiting while one is applied and one parsed: enough to keep both threads busy,
    // and each batch held in memory counts against the peak RSS.
    let (tx, mut rx) = mpsc::channel::<Result<Batch, IngestError>>(1);
    let parser = spawn_parser(source, format, opts, tx)?;
    let mut bulk = match opts.commit_every {
        Some(n) => store.bulk_ingest(n).await?,
        None => None,
    };
    let mut progress = Progress::default();
    let mut outcome = Ok(());
    while let Some(msg) = rx.recv().await {
        let applied = match msg {
            Ok(batch) => {
                apply(
                    store,
                    bulk.as_mut(),
                    batch,
                    opts,
                    &mut progress,
                    &mut on_error,
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            outcome = Err(e);
            break;
        }
        on_progress(&progress);
    }
    drop(rx);
    // The parser ends once its channel is closed; a panic there is a bug worth surfacing.
    if parser.join().is_err() {
        return Err(IngestError::Csv("the parser thread panicked".into()));
    }
    outcome?;
    // On an error above, dropping the session rolled back its uncommitted batches.
    if let Some(b) = bulk {
        b.finish().await?;
    }
    Ok(progress.summary)
}

/// Parses `source` on its own thread, sending batches (or the fatal error that ends parsing)
/// on `tx`.
fn spawn_parser(
    source: Box<dyn Read + Send>,
    format: Format,
    opts: &Options,
    tx: Sender,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let batch_size = opts.batch_size.max(1);
    let (max_line, clock) = (opts.max_line_bytes.max(1), opts.clock.clone());
    std::thread::Builder::new()
        .name("ingest-parser".into())
        .spawn(move || {
            let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let counting = Counting {
                inner: source,
                read: read.clone(),
            };
            let mut out = Out::new(tx.clone(), batch_size, read, clock, max_line);
            let res = match format {
                Format::Ndjson => parse_ndjson(counting, &mut out),
                Format::Csv => parse_csv(counting, &mut out),
            };
            if let Err(e) = res {
                // The receiver may be gone after a store error; nothing else to tell then.
                let _ = tx.blocking_send(Err(e));
            }
        })
}

/// Applies one parsed batch (in the bulk session when there is one) and counts it.
async fn apply(
    store: &DynStore,
    bulk: Option<&mut Box<dyn store::BulkIngest>>,
    batch: Batch,
    opts: &Options,
    progress: &mut Progress,
    on_error: &mut impl FnMut(&LineError),
) -> Result<(), IngestError> {
    let s = &mut progress.summary;
    s.lines += batch.lines;
    s.rejected += batch.errors.len() as u64;
    let accepted = batch.snapshots.len() as u64;
    if !batch.snapshots.is_empty() {
        let o = IngestOptions {
            now: opts.clock.now(),
            anniversary_lead_days: opts.anniversary_lead_days,
            event_retention: opts.event_retention,
        };
        let counts = match bulk {
            Some(b) => b.apply(batch.snapshots, o).await,
            None => store.ingest_snapshots(batch.snapshots, o).await,
        }?;
        s.add(counts);
    }
    s.accepted += accepted;
    for e in &batch.errors {
        on_error(e);
    }
    progress.bytes_read = batch.bytes_read;
    Ok(())
}

type Sender = mpsc::Sender<Result<Batch, IngestError>>;

/// Lines in the first batch (see [`Out`]).
const FIRST_BATCH: usize = 1000;

/// The parser's side of the pipeline: the batch being filled, and the channel applied batches'
/// snapshots come back on, to be freed by this thread (see [`SnapshotBatch`]).
struct Out {
    tx: Sender,
    batch: Batch,
    /// Lines per batch: `FIRST_BATCH` at first, so the consumer starts at once, then the
    /// configured size.
    n: usize,
    full_size: usize,
    read: Arc<std::sync::atomic::AtomicU64>,
    home: std::sync::mpsc::Sender<Vec<Snapshot>>,
    returned: std::sync::mpsc::Receiver<Vec<Snapshot>>,
    clock: Clock,
    /// The clock as of the batch being filled (read once per batch).
    now: OffsetDateTime,
    max_line: usize,
    /// Lines cut by the [`LineLimit`] in front of the parser.
    oversized: Oversized,
}

impl Out {
    fn new(
        tx: Sender,
        n: usize,
        read: Arc<std::sync::atomic::AtomicU64>,
        clock: Clock,
        max_line: usize,
    ) -> Self {
        let (home, returned) = std::sync::mpsc::channel();
        let first = n.min(FIRST_BATCH);
        Self {
            tx,
            batch: Self::new_batch(first),
            n: first,
            full_size: n,
            read,
            home,
            returned,
            now: clock.now(),
            clock,
            max_line,
            oversized: Oversized::default(),
        }
    }

    /// `source` behind the line cap (see [`lines`]).
    fn limit_lines<R: Read>(&self, source: R) -> LineLimit<R> {
        LineLimit::new(source, self.max_line, self.oversized.clone())
    }

    /// The line error for a line (or record) longer than the cap.
    fn too_long(&self, line: u64) -> LineError {
        LineError {
            line,
            error: format!(
                "line longer than {} bytes (the limit, --max-line-bytes); skipped",
                self.max_line
            ),
        }
    }

    /// Takes a parsed line: the snapshot into the batch, or its error (a snapshot from the
    /// future is one, see [`Snapshot::check_not_ahead`]).
    fn accept(&mut self, line: u64, parsed: Result<Snapshot, String>) {
        match parsed.and_then(|s| s.check_not_ahead(self.now).map(|()| s)) {
            Ok(s) => self.batch.snapshots.push(s),
            Err(error) => self.batch.errors.push(LineError { line, error }),
        }
    }

    fn new_batch(n: usize) -> Batch {
        Batch {
            snapshots: SnapshotBatch::with_capacity(n),
            errors: Vec::new(),
            lines: 0,
            bytes_read: 0,
        }
    }

    /// Sends the batch once it is full; false when the consumer has stopped.
    fn flush_if_full(&mut self) -> bool {
        (self.batch.lines as usize) < self.n || self.flush()
    }

    /// Sends the batch (grouped, to come home when applied); false when the consumer has
    /// stopped.
    fn flush(&mut self) -> bool {
        // Free what the consumer has finished with, here where it was allocated.
        while self.returned.try_recv().is_ok() {}
        self.n = self.full_size;
        self.now = self.clock.now();
        let mut full = std::mem::replace(&mut self.batch, Self::new_batch(self.n));
        full.bytes_read = self.read.load(std::sync::atomic::Ordering::Relaxed);
        full.snapshots.group();
        full.snapshots.send_home_on_drop(self.home.clone());
        self.tx.blocking_send(Ok(full)).is_ok()
    }

    /// Sends what is left.
    fn finish(&mut self) {
        if self.batch.lines > 0 {
            self.flush();
        }
    }
}

/// The UTF-8 byte order mark some tools write at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn parse_ndjson<R: Read>(source: R, out: &mut Out) -> Result<(), IngestError> {
    let mut reader = BufReader::with_capacity(256 * 1024, out.limit_lines(source));
    let mut buf = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        if out.oversized.take_through(line_no).is_some() {
            out.batch.lines += 1;
            let e = out.too_long(line_no);
            out.batch.errors.push(e);
        } else {
            let line = match buf.strip_prefix(BOM) {
                Some(rest) if line_no == 1 => rest,
                _ => &buf[..],
            };
            ndjson_line(line, line_no, out);
        }
        if !out.flush_if_full() {
            return Ok(());
        }
    }
    out.finish();
    Ok(())
}

/// Parses one NDJSON line into the batch (blank lines are skipped, not counted).
fn ndjson_line(line: &[u8], line_no: u64, out: &mut Out) {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t.trim(),
        Err(_) => {
            out.batch.lines += 1;
            out.batch.errors.push(LineError {
                line: line_no,
                error: "line is not valid UTF-8".into(),
            });
            return;
        }
    };
    if !text.is_empty() {
        out.batch.lines += 1;
        out.accept(line_no, Snapshot::from_json_line(text));
    }
}

/// Turns CRLF line ends into LF. The csv reader counts a CRLF record end differently from an LF
/// one, which made reported line numbers of Excel/Windows exports one too small; values are
/// unaffected except a CRLF inside a quoted field, which becomes LF.
struct CrlfToLf<R> {
    inner: R,
    /// Converted bytes not yet handed out, from `pos`.
    buf: Vec<u8>,
    pos: usize,
    /// A `\r` held back because the input chunk ended right after it.
    pending_cr: bool,
}

impl<R> CrlfToLf<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            pos: 0,
            pending_cr: false,
        }
    }
}

impl<R: Read> Read for CrlfToLf<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            let mut chunk = [0u8; 64 * 1024];
            let n = self.inner.read(&mut chunk)?;
            self.buf.clear();
            self.pos = 0;
            if n == 0 {
                if std::mem::take(&mut self.pending_cr) {
                    self.buf.push(b'\r');
                    break;
                }
                return Ok(0);
            }
            let mut bytes = &chunk[..n];
            if std::mem::take(&mut self.pending_cr) && bytes[0] != b'\n' {
                self.buf.push(b'\r');
            }
            if bytes[bytes.len() - 1] == b'\r' {
                self.pending_cr = true;
                bytes = &bytes[..bytes.len() - 1];
            }
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                    continue;
                }
                self.buf.push(bytes[i]);
                i += 1;
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn parse_csv<R: Read>(source: R, out: &mut Out) -> Result<(), IngestError> {
    let source = out.limit_lines(CrlfToLf::new(source));
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(source);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| IngestError::Csv(format!("reading the header line: {e}")))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    if out.oversized.take_through(rdr.position().line()).is_some() {
        return Err(IngestError::Csv(format!(
            "the header line is longer than {} bytes (the limit, --max-line-bytes)",
            out.max_line
        )));
    }
    if !headers.iter().any(|h| h == "prospect_id") {
        return Err(IngestError::Csv(
            "the header line must name the columns, including prospect_id".into(),
        ));
    }
    let mut record = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        let read = rdr.read_record(&mut record);
        // The lines a record spans end before the reader's position after it.
        let end = rdr.position().line().saturating_sub(1).max(line);
        let cut = out.oversized.take_through(end).is_some();
        match read {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(line);
                csv_record(&headers, &record, line, cut, out);
            }
            Err(e) => {
                if let csv::ErrorKind::Io(_) = e.kind() {
                    if let csv::ErrorKind::Io(io) = e.into_kind() {
                        return Err(IngestError::Io(io));
                    }
                    return Err(IngestError::Csv("I/O error".into()));
                }
                out.batch.lines += 1;
                let e = match cut {
                    true => out.too_long(line),
                    false => LineError {
                        line,
                        error: format!("invalid CSV: {e}"),
                    },
                };
                out.batch.errors.push(e);
            }
        }
        if !out.flush_if_full() {
            return Ok(());
        }
    }
    out.finish();
    Ok(())
}

/// One CSV record (starting at `line`) into the batch; `cut` when one of its lines was too long.
fn csv_record(headers: &[String], record: &csv::StringRecord, line: u64, cut: bool, out: &mut Out) {
    out.batch.lines += 1;
    if cut {
        let e = out.too_long(line);
        out.batch.errors.push(e);
    } else if record.len() != headers.len() {
        out.batch.errors.push(LineError {
            line,
            error: format!(
                "expected {} fields like the header, found {}",
                headers.len(),
                record.len()
            ),
        });
    } else {
        let fields = headers.iter().map(String::as_str).zip(record.iter());
        out.accept(line, Snapshot::from_fields(fields));
    }
}

#[cfg(test)]
mod tests {
    use super::CrlfToLf;
    use std::io::Read;

    /// A reader that hands out one byte at a time, to split CRLF across reads.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn crlf_becomes_lf_even_across_reads() {
        for input in [&b"a,b\r\nc,d\r\n"[..], b"x\ry\r\n\r\nz\r", b"", b"\r\n"] {
            let expected = String::from_utf8_lossy(input).replace("\r\n", "\n");
            let mut out = String::new();
            CrlfToLf::new(Trickle(input))
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(out, expected, "{input:?}");
            let mut out = String::new();
            CrlfToLf::new(input).read_to_string(&mut out).unwrap();
            assert_eq!(out, expected, "{input:?}");
        }
    }
}
