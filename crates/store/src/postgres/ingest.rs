//! Snapshot ingestion for PostgreSQL (state, events and their notifications in one
//! transaction, retried on serialization failures), the events query and retention. What a
//! snapshot means is `domain::detect::apply`; this module holds the SQL.

use super::{is_retryable, outbox, pg, PostgresStore};
use crate::model::*;
use crate::rules::{ingest_lanes, lock_bucket, newest_first, stored_event, stored_prospect_id};
use crate::{SnapshotBatch, StoreError, StoreResult};
use deadpool_postgres::{Object, Transaction};
use domain::detect::{apply, month_day, AnniversaryWindow, DetectedEvent};
use domain::instant::{from_unix_nanos, to_unix_nanos};
use domain::snapshot::{format_date, parse_date, Snapshot};
use domain::ProspectId;
use futures_util::future::join_all;
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// Attempts of a transaction that failed with a deadlock or serialization failure.
pub(super) const TX_ATTEMPTS: u32 = 5;

pub(super) const STATE_COLS: &str = "prospect_id, observed_at, full_name, linkedin_url, company_id,
    company_name, job_title, job_start_date";

/// A state row (columns as in `STATE_COLS`).
pub(super) fn state_row(r: &Row) -> StoreResult<Snapshot> {
    let pid = stored_prospect_id(r.get(0), "prospect_state")?;
    let nanos: i64 = r.get(1);
    let start: Option<&str> = r.get(7);
    Ok(Snapshot {
        prospect_id: pid,
        observed_at: from_unix_nanos(nanos),
        full_name: r.get(2),
        linkedin_url: r.get(3),
        company_id: r.get(4),
        company_name: r.get(5),
        job_title: r.get(6),
        job_start_date: start.and_then(parse_date),
    })
}

/// Applies a batch in its lanes (D93), each in a transaction of its own on its own connection,
/// all at once; returns once every lane has committed or failed (the first failure is the
/// answer; the lanes that committed stay committed, re-ingestion settles the rest).
pub(super) async fn ingest_snapshots(
    store: &PostgresStore,
    mut batch: SnapshotBatch,
    opts: IngestOptions,
) -> StoreResult<IngestCounts> {
    batch.check_storable()?;
    // Grouped (a no-op for the CLI's batches, grouped by their producer): each lane is in
    // prospect order, which `ingest_once` relies on.
    let lanes = ingest_lanes(batch.grouped(), store.ingest_lanes());
    let done = join_all(lanes.iter().map(|lane| ingest_lane(store, lane, opts))).await;
    let mut counts = IngestCounts::default();
    let mut failed = None;
    for lane in done {
        match lane {
            Ok(c) => counts += c,
            Err(e) if failed.is_none() => failed = Some(e),
            Err(e) => tracing::warn!(error = %e, "another ingestion lane failed too"),
        }
    }
    failed.map_or(Ok(counts), Err)
}

/// One lane in its transaction, retried on deadlocks and serialization failures.
async fn ingest_lane(
    store: &PostgresStore,
    lane: &[(&Snapshot, i64)],
    opts: IngestOptions,
) -> StoreResult<IngestCounts> {
    let mut attempt = 0;
    loop {
        let mut c = store.conn().await?;
        match ingest_once(&mut c, lane, opts).await {
            Err(e) if is_retryable(&e) && attempt + 1 < TX_ATTEMPTS => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "retrying ingestion transaction");
                tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
            }
            other => return other,
        }
    }
}

pub(super) async fn query_events(c: &mut Object, q: &EventQuery) -> StoreResult<Vec<StoredEvent>> {
    if q.prospect_ids.is_empty() || q.event_types.is_empty() {
        return Ok(vec![]);
    }
    // One range scan per prospect over events_by_prospect, the wanted types filtered in the
    // scan (as SQLite does); unordered: `newest_first` sorts the few rows a request returns.
    let s = c
        .prepare_cached(
            "SELECT id, event_id, prospect_id, event_type, event_time, data FROM events
             WHERE prospect_id = ANY($1::BYTEA[]) AND event_type & $2 <> 0
               AND event_time >= $3 AND event_time <= $4",
        )
        .await
        .map_err(pg)?;
    let pids: Vec<&[u8]> = q.prospect_ids.iter().map(|p| &p.as_bytes()[..]).collect();
    let (from, to) = q.unix_bounds();
    let rows = c
        .query(&s, &[&pids, &q.type_mask(), &from, &to])
        .await
        .map_err(pg)?;
    let rows = rows
        .iter()
        .map(|r| {
            let bit: i32 = r.get(3);
            let pid = stored_prospect_id(r.get(2), "events")?;
            Ok((
                r.get(0),
                stored_event(r.get(1), pid, i64::from(bit), r.get(4), r.get(5))?,
            ))
        })
        .collect::<StoreResult<_>>()?;
    Ok(newest_first(rows))
}

pub(super) async fn prune_events(c: &mut Object, before: OffsetDateTime) -> StoreResult<u64> {
    let cutoff = before.unix_timestamp();
    let s = c
        .prepare_cached(
            "DELETE FROM events WHERE id IN
               (SELECT id FROM events WHERE event_time < $1 LIMIT 5000)",
        )
        .await
        .map_err(pg)?;
    let mut total = 0;
    loop {
        let n = c.execute(&s, &[&cutoff]).await.map_err(pg)?;
        total += n;
        if n < 5000 {
            return Ok(total);
        }
    }
}

/// A lane in one transaction: its buckets locked, its repeats settled by their hashes, the
/// rest compared with their stored states, then events, notifications and new states written.
/// The lane is in prospect order (each prospect's snapshots together, in input order).
async fn ingest_once(
    c: &mut Object,
    lane: &[(&Snapshot, i64)],
    opts: IngestOptions,
) -> StoreResult<IngestCounts> {
    debug_assert!(
        lane.windows(2)
            .all(|w| w[0].0.prospect_id <= w[1].0.prospect_id),
        "an ingestion lane out of prospect order"
    );
    let tx = c.transaction().await.map_err(pg)?;
    lock_buckets(&tx, lane).await?;
    probe_by_key(&tx, true).await?;
    let settled = settle_repeats(&tx, lane, opts.now).await?;
    let rest: Vec<(&Snapshot, i64)> = lane
        .iter()
        .filter(|(s, _)| !settled.contains(&s.prospect_id))
        .copied()
        .collect();
    let stored = read_states(&tx, &rest).await?;
    probe_by_key(&tx, false).await?;
    let decided = decide(&stored, &rest, &opts);
    let mut counts = decided.counts;
    counts.unchanged += settled.len() as u64;
    let (created, queued) = store_events(&tx, decided.events, opts.now).await?;
    counts.events_created = created;
    counts.notifications_queued = queued;
    probe_by_key(&tx, true).await?;
    write_states(&tx, &decided.dirty, opts.now).await?;
    tx.commit().await.map_err(pg)?;
    Ok(counts)
}

/// Takes the advisory locks of the buckets $1 (sorted, distinct) in bucket order, until the
/// transaction ends.
const LOCK_BUCKETS_SQL: &str = "SELECT count(pg_advisory_xact_lock(
        hashtext(current_database() || '/' || current_schema() || '/prospect_state'), b))
     FROM (SELECT b FROM unnest($1::INTEGER[]) AS b ORDER BY b) AS sorted";

/// Takes the advisory locks of the lane's buckets in bucket order: ingestions touching a common
/// prospect run one after the other (never deadlocking), those touching none may overlap, and a
/// prospect not stored yet needs no row to lock. The locks live in memory (no row is written to
/// lock it); what the transaction reads next sees every ingestion that held them before.
async fn lock_buckets(tx: &Transaction<'_>, lane: &[(&Snapshot, i64)]) -> StoreResult<()> {
    let mut buckets: Vec<i32> = lane
        .iter()
        .map(|(s, _)| lock_bucket(&s.prospect_id) as i32)
        .collect();
    buckets.sort_unstable();
    buckets.dedup();
    let s = tx.prepare_cached(LOCK_BUCKETS_SQL).await.map_err(pg)?;
    tx.query_one(&s, &[&buckets]).await.map_err(pg)?;
    Ok(())
}

/// The repeats of the lane (D123): a prospect seen once in the lane whose stored state has the
/// same content hash and an earlier `observed_at` only moves its `observed_at` forward — what
/// the full comparison would decide (a move with no event, counted unchanged) — so one
/// statement settles them all without reading a row back. Returns the prospects settled.
async fn settle_repeats(
    tx: &Transaction<'_>,
    lane: &[(&Snapshot, i64)],
    now: OffsetDateTime,
) -> StoreResult<HashSet<ProspectId>> {
    // The lane is in prospect order: a prospect seen once is a group of one, and the rows are
    // updated in id order, as `write_states` and the anniversary scanner lock them.
    let once: Vec<(&Snapshot, i64)> = lane
        .chunk_by(|a, b| a.0.prospect_id == b.0.prospect_id)
        .filter_map(|group| match group {
            [one] => Some(*one),
            _ => None,
        })
        .collect();
    if once.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<&[u8]> = once
        .iter()
        .map(|(s, _)| &s.prospect_id.as_bytes()[..])
        .collect();
    let observed = once
        .iter()
        .map(|(s, _)| to_unix_nanos(s.observed_at))
        .collect::<Result<Vec<i64>, _>>()?;
    let hashes: Vec<i64> = once.iter().map(|&(_, h)| h).collect();
    let s = tx.prepare_cached(SETTLE_REPEATS).await.map_err(pg)?;
    let rows = tx
        .query(&s, &[&ids, &observed, &hashes, &now.unix_timestamp()])
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|r| stored_prospect_id(r.get(0), "prospect_state"))
        .collect()
}

/// Until `probe_by_key(tx, false)` or the transaction's end, statements are planned to find
/// `prospect_state` rows by primary key, one probe per row of the batch's arrays, whatever the
/// estimates (D120, D123): a generic plan (a custom plan for thousands of rows hashed a
/// sequential scan of the table) with no sequential scan, hash or merge join to choose (a
/// connection keeps its generic plan until the table's statistics change, and one made while a
/// fresh database's table was nearly empty chose to scan it). The statements between, events
/// and notifications, keep the server's planning.
async fn probe_by_key(tx: &Transaction<'_>, on: bool) -> StoreResult<()> {
    tx.batch_execute(if on {
        "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off;
         SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
    } else {
        "SET LOCAL plan_cache_mode = DEFAULT; SET LOCAL enable_seqscan = DEFAULT;
         SET LOCAL enable_hashjoin = DEFAULT; SET LOCAL enable_mergejoin = DEFAULT"
    })
    .await
    .map_err(pg)
}

/// `$1`–`$3`: prospect ids, their new `observed_at` and content hashes; `$4` `updated_at`.
const SETTLE_REPEATS: &str = "UPDATE prospect_state s SET observed_at = x.o, updated_at = $4
     FROM unnest($1::BYTEA[], $2::BIGINT[], $3::BIGINT[]) AS x(id, o, h)
     WHERE s.prospect_id = x.id AND s.content_hash = x.h AND s.observed_at < x.o
     RETURNING s.prospect_id";

/// The stored state of every prospect of `rest` that has one (the lane's buckets locked).
async fn read_states(
    tx: &Transaction<'_>,
    rest: &[(&Snapshot, i64)],
) -> StoreResult<HashMap<ProspectId, Snapshot>> {
    if rest.is_empty() {
        return Ok(HashMap::new());
    }
    // In prospect order: each prospect once.
    let mut pids: Vec<&[u8]> = rest
        .iter()
        .map(|(s, _)| &s.prospect_id.as_bytes()[..])
        .collect();
    pids.dedup();
    let s = tx
        .prepare_cached(&format!(
            "SELECT {STATE_COLS} FROM prospect_state WHERE prospect_id = ANY($1::BYTEA[])"
        ))
        .await
        .map_err(pg)?;
    let rows = tx.query(&s, &[&pids]).await.map_err(pg)?;
    let mut states: HashMap<ProspectId, Snapshot> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let state = state_row(r)?;
        states.insert(state.prospect_id, state);
    }
    Ok(states)
}

/// What a batch decides: its counts so far, the events to store and the prospects whose state
/// moved (in prospect order, each once), each with its new state (the batch's snapshot) and
/// whether it had a stored row.
struct Decided<'a> {
    counts: IngestCounts,
    events: Vec<DetectedEvent>,
    dirty: Vec<Moved<'a>>,
}

/// A prospect's state after the batch (with its content hash), and whether a row of it was
/// stored before.
struct Moved<'a> {
    state: &'a Snapshot,
    hash: i64,
    stored: bool,
}

/// Applies each snapshot of the lane (in prospect order) to the state it finds
/// (`domain::detect::apply`): the stored one, then the lane's own snapshots as they become
/// current (borrowed, not copied); drops the events beyond retention.
fn decide<'a>(
    stored: &'a HashMap<ProspectId, Snapshot>,
    lane: &[(&'a Snapshot, i64)],
    opts: &IngestOptions,
) -> Decided<'a> {
    let mut counts = IngestCounts::default();
    let mut dirty: Vec<Moved<'a>> = Vec::new();
    let mut events: Vec<DetectedEvent> = Vec::new();
    let window = AnniversaryWindow::at_ingestion(opts.now, opts.anniversary_lead_days);
    for &(snap, hash) in lane {
        let pid = snap.prospect_id;
        // The prospect's move in this lane, if any, is the last one made (prospect order).
        let moved_here = dirty.last_mut().filter(|m| m.state.prospect_id == pid);
        let current = match &moved_here {
            Some(m) => Some(m.state),
            None => stored.get(&pid),
        };
        let applied = apply(current, snap, window);
        counts.tally(applied.tally);
        events.extend(applied.events);
        if applied.becomes_current {
            let now = Moved {
                state: snap,
                hash,
                stored: stored.contains_key(&pid),
            };
            match moved_here {
                Some(m) => *m = now,
                None => dirty.push(now),
            }
        }
    }
    counts.events_beyond_retention = opts.drop_beyond_retention(&mut events);
    Decided {
        counts,
        events,
        dirty,
    }
}

/// Writes the new state of each `dirty` prospect: one UPDATE for the stored rows, one INSERT
/// for the new ones, rows in id order as the anniversary scanner locks them (D120). The batch's
/// bucket locks make the split exact: no other ingestion stores or changes these prospects
/// until this transaction ends.
async fn write_states(
    tx: &Transaction<'_>,
    dirty: &[Moved<'_>],
    now: OffsetDateTime,
) -> StoreResult<()> {
    let now_s = now.unix_timestamp();
    let rows = |stored: bool| {
        let of_kind = dirty.iter().filter(move |m| m.stored == stored);
        StateColumns::of(of_kind.map(|m| (m.state, m.hash)))
    };
    let stored = rows(true)?;
    if !stored.ids.is_empty() {
        let s = tx.prepare_cached(UPDATE_STATES).await.map_err(pg)?;
        let n = tx.execute(&s, &stored.params(&now_s)).await.map_err(pg)?;
        if n != stored.ids.len() as u64 {
            return Err(StoreError::internal(format!(
                "{} of {} locked state rows were found to update",
                n,
                stored.ids.len()
            )));
        }
    }
    let new = rows(false)?;
    if !new.ids.is_empty() {
        let s = tx.prepare_cached(INSERT_STATES).await.map_err(pg)?;
        tx.execute(&s, &new.params(&now_s)).await.map_err(pg)?;
    }
    Ok(())
}

/// The state rows of `$1` (stored ones) rewritten; `$1`–`$10` as in [`StateColumns`].
const UPDATE_STATES: &str = "UPDATE prospect_state s SET observed_at = x.o,
        full_name = x.fname, linkedin_url = x.li, company_id = x.cid, company_name = x.cname,
        job_title = x.title, job_start_date = x.start, anniv_md = x.anniv, content_hash = x.h,
        updated_at = $11
     FROM unnest($1::BYTEA[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
        $7::TEXT[], $8::TEXT[], $9::INTEGER[], $10::BIGINT[])
        AS x(id, o, fname, li, cid, cname, title, start, anniv, h)
     WHERE s.prospect_id = x.id";

/// State rows of prospects not stored yet.
const INSERT_STATES: &str = "INSERT INTO prospect_state (prospect_id, observed_at, full_name,
        linkedin_url, company_id, company_name, job_title, job_start_date, anniv_md,
        content_hash, updated_at)
     SELECT x.*, $11 FROM unnest($1::BYTEA[], $2::BIGINT[], $3::TEXT[], $4::TEXT[],
        $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::INTEGER[], $10::BIGINT[]) AS x";

/// State rows as the arrays `UPDATE_STATES` and `INSERT_STATES` unnest ($1–$10).
#[derive(Default)]
struct StateColumns<'a> {
    ids: Vec<&'a [u8]>,
    observed: Vec<i64>,
    full_name: Vec<Option<&'a str>>,
    linkedin: Vec<Option<&'a str>>,
    company_id: Vec<Option<&'a str>>,
    company_name: Vec<Option<&'a str>>,
    job_title: Vec<Option<&'a str>>,
    start: Vec<Option<String>>,
    anniv: Vec<Option<i32>>,
    hash: Vec<i64>,
}

impl<'a> StateColumns<'a> {
    fn of(states: impl Iterator<Item = (&'a Snapshot, i64)>) -> StoreResult<Self> {
        let mut c = Self::default();
        for (s, h) in states {
            c.ids.push(&s.prospect_id.as_bytes()[..]);
            c.observed.push(to_unix_nanos(s.observed_at)?);
            c.full_name.push(s.full_name.as_deref());
            c.linkedin.push(s.linkedin_url.as_deref());
            c.company_id.push(s.company_id.as_deref());
            c.company_name.push(s.company_name.as_deref());
            c.job_title.push(s.job_title.as_deref());
            c.start.push(s.job_start_date.map(format_date));
            c.anniv.push(s.job_start_date.map(month_day));
            c.hash.push(h);
        }
        Ok(c)
    }

    /// The statements' parameters, with `now_s` as `updated_at` ($11).
    fn params<'p>(&'p self, now_s: &'p i64) -> [&'p (dyn ToSql + Sync); 11] {
        [
            &self.ids,
            &self.observed,
            &self.full_name,
            &self.linkedin,
            &self.company_id,
            &self.company_name,
            &self.job_title,
            &self.start,
            &self.anniv,
            &self.hash,
            now_s,
        ]
    }
}

/// Stores events whose ids are not known yet and queues one notification per enrollment
/// covering each new event (with the enrollment's key as of now), in the caller's transaction.
/// Returns (events created, notifications queued). Three round trips whatever the count.
pub(super) async fn store_events(
    tx: &Transaction<'_>,
    events: Vec<DetectedEvent>,
    now: OffsetDateTime,
) -> StoreResult<(u64, u64)> {
    if events.is_empty() {
        return Ok((0, 0));
    }
    let now_s = now.unix_timestamp();
    // The same event may be detected twice in one batch: the first one counts.
    let mut seen = HashSet::with_capacity(events.len());
    let events: Vec<DetectedEvent> = events
        .into_iter()
        .filter(|e| seen.insert(e.event_id.clone()))
        .collect();
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let pids: Vec<&[u8]> = events
        .iter()
        .map(|e| &e.prospect_id.as_bytes()[..])
        .collect();
    let types: Vec<i32> = events.iter().map(|e| e.event_type.bit() as i32).collect();
    let times: Vec<i64> = events
        .iter()
        .map(|e| e.event_time.unix_timestamp())
        .collect();
    let data: Vec<String> = events.iter().map(|e| e.data.to_string()).collect();
    let s = tx
        .prepare_cached(
            "INSERT INTO events (event_id, prospect_id, event_type, event_time, data, created_at)
             SELECT x.e, x.p, x.t, x.tm, x.d, $6
             FROM unnest($1::TEXT[], $2::BYTEA[], $3::INTEGER[], $4::BIGINT[], $5::TEXT[])
                  WITH ORDINALITY AS x(e, p, t, tm, d, o)
             ORDER BY x.o
             ON CONFLICT DO NOTHING
             RETURNING event_id",
        )
        .await
        .map_err(pg)?;
    let rows = tx
        .query(&s, &[&ids, &pids, &types, &times, &data, &now_s])
        .await
        .map_err(pg)?;
    let created: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    if created.is_empty() {
        return Ok((0, 0));
    }
    let new: Vec<&DetectedEvent> = events
        .iter()
        .filter(|e| created.contains(&e.event_id))
        .collect();

    let queued = outbox::queue_for_events(tx, &new, now).await?;
    Ok((new.len() as u64, queued))
}

#[cfg(test)]
mod tests {
    use super::LOCK_BUCKETS_SQL;
    use crate::postgres::{
        create_test_database, drop_test_database, drop_test_schema, test_store, PostgresOptions,
        PostgresStore,
    };
    use crate::rules::{lock_bucket, LOCK_BUCKETS};
    use crate::{IngestOptions, SnapshotBatch, Store};
    use domain::snapshot::Snapshot;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Ingestion as of now, anniversaries a week ahead, no retention.
    fn ingest_options() -> IngestOptions {
        IngestOptions {
            now: time::OffsetDateTime::now_utc(),
            anniversary_lead_days: 7,
            event_retention: None,
        }
    }

    fn baseline(n: u32) -> Snapshot {
        Snapshot::from_json(&serde_json::json!({
            "prospect_id": format!("{n:040x}"),
            "observed_at": "2024-01-01T00:00:00Z",
            "job_title": "Engineer",
        }))
        .unwrap()
    }

    /// The lanes of a batch commit on their own (D93): while another transaction holds the
    /// buckets of lane 0, lane 1's prospects are stored and the call waits for lane 0 only.
    /// Runs with `PROSPECT_EVENTS_TEST_POSTGRES_URL` set.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_lane_commits_on_its_own() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        let opts = PostgresOptions {
            ingest_lanes: 2,
            ..PostgresOptions::default()
        };
        let (store, schema) = test_store(&url, "ingest_lanes", opts).await;
        let store = Arc::new(store);
        let batch: Vec<Snapshot> = (0..64).map(baseline).collect();
        let lane_of = |s: &Snapshot| lock_bucket(&s.prospect_id) % 2;
        let in_lane_1 = batch.iter().filter(|s| lane_of(s) == 1).count() as i64;
        assert!(
            in_lane_1 > 0 && in_lane_1 < 64,
            "the batch spans both lanes"
        );

        // Another transaction holds every bucket of lane 0.
        let mut holder = store.conn().await.unwrap();
        let tx = holder.transaction().await.unwrap();
        let lane_0: Vec<i32> = (0..LOCK_BUCKETS as i32).filter(|b| b % 2 == 0).collect();
        tx.query_one(LOCK_BUCKETS_SQL, &[&lane_0]).await.unwrap();

        let s = store.clone();
        let ingest = tokio::spawn(async move {
            s.ingest_snapshots(SnapshotBatch::from(batch), ingest_options())
                .await
        });
        let stored = || async {
            let c = store.conn().await.unwrap();
            let r = c.query_one("SELECT count(*) FROM prospect_state", &[]);
            r.await.unwrap().get::<_, i64>(0)
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while stored().await < in_lane_1 {
            assert!(
                Instant::now() < deadline,
                "lane 1 did not commit while lane 0 waited"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(stored().await, in_lane_1, "lane 0 went ahead of the lock");
        assert!(
            !ingest.is_finished(),
            "the call returned before lane 0 committed"
        );

        tx.commit().await.unwrap();
        let counts = ingest.await.unwrap().unwrap();
        assert_eq!(counts.baselines, 64);
        assert_eq!(stored().await, 64);
        drop(holder);
        drop(store);
        drop_test_schema(&url, &schema).await.unwrap();
    }

    /// Sequential scans of this schema's `prospect_state` reported so far (flushing this
    /// session's pending statistics first).
    async fn state_seq_scans(c: &deadpool_postgres::Object) -> i64 {
        c.batch_execute("SELECT pg_stat_force_next_flush()")
            .await
            .unwrap();
        c.query_one(
            "SELECT seq_scan FROM pg_stat_user_tables
             WHERE relname = 'prospect_state' AND schemaname = current_schema()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    }

    /// The stored rows of a batch are read, settled and rewritten by primary key, whatever the
    /// batch's size (D120, D123): a custom plan for 10,000 of 200,000 rows hashes them against a
    /// scan of the table, and a generic plan made while the table was nearly empty (a fresh
    /// database's first batches; plain inserts never invalidate it) scans it.
    #[tokio::test]
    async fn a_big_batch_never_scans_the_states() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        let (store, schema) = test_store(&url, "state_scan", PostgresOptions::default()).await;
        let mut c = store.conn().await.unwrap();
        // A dozen small batches on the empty table: every statement is planned on this
        // connection, past the five custom plans after which the server's default keeps a
        // generic one (a state read left to it scanned the big batches' table).
        let titles = [
            "Engineer", "Manager", "Manager", "Engineer", "Engineer", "Manager",
        ];
        for (day, title) in (1..).zip(titles.into_iter().cycle().take(12)) {
            let few: Vec<Snapshot> = (300_000..300_003)
                .map(|n| observed(n, day, title))
                .collect();
            super::ingest_once(&mut c, &lane_of(&few), ingest_options())
                .await
                .unwrap();
        }
        c.batch_execute(
            "INSERT INTO prospect_state (prospect_id, observed_at, full_name, linkedin_url,
                company_id, company_name, job_title, job_start_date, anniv_md, updated_at)
             SELECT decode(lpad(to_hex(g), 40, '0'), 'hex'), 1704067200000000000,
                'Person ' || g, 'https://www.linkedin.com/in/p' || g, md5(g::TEXT),
                'Company ' || g, 'Engineer', '2019-06-01', 601, 0
             FROM generate_series(0, 199999) AS g",
        )
        .await
        .unwrap();
        let before = state_seq_scans(&c).await;
        // Rows without a content hash: each is read and rewritten whole.
        let changes: Vec<Snapshot> = (0..10_000).map(|n| observed(n, 2, "Manager")).collect();
        let counts = super::ingest_once(&mut c, &lane_of(&changes), ingest_options())
            .await
            .unwrap();
        assert_eq!(counts.changed, 10_000, "every stored row was rewritten");
        // Then repeats of them: settled by their hashes in one UPDATE (D123).
        let repeats: Vec<Snapshot> = (0..10_000).map(|n| observed(n, 3, "Manager")).collect();
        let counts = super::ingest_once(&mut c, &lane_of(&repeats), ingest_options())
            .await
            .unwrap();
        assert_eq!(counts.unchanged, 10_000, "every repeat was settled");
        assert_eq!(
            state_seq_scans(&c).await,
            before,
            "a batch scanned prospect_state"
        );
        drop(c);
        drop(store);
        drop_test_schema(&url, &schema).await.unwrap();
    }

    /// Snapshots as a lane holds them, each with its content hash.
    fn lane_of(batch: &[Snapshot]) -> Vec<(&Snapshot, i64)> {
        batch.iter().map(|s| (s, s.content_hash())).collect()
    }

    /// The stored `(observed_at, full_name, content_hash)` of prospect `n`.
    async fn stored_state(store: &PostgresStore, n: u32) -> (i64, String, Option<i64>) {
        let c = store.conn().await.unwrap();
        let id = hex::decode(format!("{n:040x}")).unwrap();
        let r = c
            .query_one(
                "SELECT observed_at, full_name, content_hash FROM prospect_state
                 WHERE prospect_id = $1",
                &[&id],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    }

    /// A line that repeats a prospect's stored state with a newer `observed_at` is settled by
    /// the content hash alone (D123): the row is not read back, only `observed_at` moves. A row
    /// without a hash (stored before migration 0012) takes the full comparison and gets one;
    /// a change stores the new snapshot's hash.
    #[tokio::test]
    async fn a_repeat_is_settled_by_its_content_hash() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        let (store, schema) = test_store(&url, "state_hash", PostgresOptions::default()).await;
        let ingest =
            |s: Snapshot| store.ingest_snapshots(SnapshotBatch::from(vec![s]), ingest_options());
        let nanos = |s: &Snapshot| domain::instant::to_unix_nanos(s.observed_at).unwrap();
        let first = observed(7, 1, "Engineer");
        assert_eq!(ingest(first.clone()).await.unwrap().baselines, 1);
        assert_eq!(stored_state(&store, 7).await.2, Some(first.content_hash()));

        // A field changed behind ingestion's back, the hash kept: the repeat trusts the hash.
        let c = store.conn().await.unwrap();
        c.batch_execute("UPDATE prospect_state SET full_name = 'Tampered'")
            .await
            .unwrap();
        let repeat = observed(7, 2, "Engineer");
        assert_eq!(ingest(repeat.clone()).await.unwrap().unchanged, 1);
        assert_eq!(
            stored_state(&store, 7).await,
            (
                nanos(&repeat),
                "Tampered".to_string(),
                Some(repeat.content_hash())
            ),
            "only observed_at moved"
        );

        // No hash: the full comparison rewrites the row, with its hash.
        c.batch_execute("UPDATE prospect_state SET content_hash = NULL")
            .await
            .unwrap();
        let again = observed(7, 3, "Engineer");
        assert_eq!(ingest(again.clone()).await.unwrap().unchanged, 1);
        assert_eq!(
            stored_state(&store, 7).await,
            (
                nanos(&again),
                "Person 7".to_string(),
                Some(again.content_hash())
            )
        );

        // A change is detected and stores the new hash.
        let moved = observed(7, 4, "Manager");
        let counts = ingest(moved.clone()).await.unwrap();
        assert_eq!((counts.changed, counts.events_created), (1, 1));
        assert_eq!(stored_state(&store, 7).await.2, Some(moved.content_hash()));
        drop(c);
        drop(store);
        drop_test_schema(&url, &schema).await.unwrap();
    }

    /// A prospect's snapshot with fields of a real feed's size (the state row is ~200 bytes).
    fn observed(n: u32, day: u32, title: &str) -> Snapshot {
        Snapshot::from_json(&serde_json::json!({
            "prospect_id": format!("{n:040x}"),
            "observed_at": format!("2024-01-{day:02}T00:00:00Z"),
            "full_name": format!("Person {n}"),
            "linkedin_url": format!("https://www.linkedin.com/in/p{n}"),
            "company_id": format!("{n:032x}"),
            "company_name": format!("Company {n}"),
            "job_title": title,
            "job_start_date": "2019-06-01",
        }))
        .unwrap()
    }

    /// A feed re-observes every prospect round after round, so each line rewrites its state
    /// row. The table leaves room on its pages (D119): a row's next version stays on its page —
    /// a HOT update, no new index entry — round after round; at least 90 % of them here (the
    /// last row of a page may find no room; with full pages nearly every row moves).
    #[tokio::test]
    async fn state_rows_stay_on_their_pages() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        // A database of its own, and VACUUM after each round: the old row versions are freed
        // once no transaction that began before they died is running — opportunistic pruning
        // also waits for those of other databases, VACUUM for those of its own only — and
        // other tests run meanwhile.
        let db = format!("state_pages_{}", std::process::id());
        let db_url = create_test_database(&url, &db).await.unwrap();
        let store = PostgresStore::open(&db_url, PostgresOptions::default())
            .await
            .unwrap();
        let ingest = |day: u32| {
            let title = if day.is_multiple_of(2) {
                "Engineer"
            } else {
                "Manager"
            };
            let batch: Vec<Snapshot> = (0..400).map(|n| observed(n, day, title)).collect();
            store.ingest_snapshots(SnapshotBatch::from(batch), ingest_options())
        };
        let pages = || async {
            let c = store.conn().await.unwrap();
            c.batch_execute("VACUUM prospect_state").await.unwrap();
            let rows = c
                .query(
                    "SELECT prospect_id, (ctid::TEXT::POINT)[0]::BIGINT FROM prospect_state
                     ORDER BY prospect_id",
                    &[],
                )
                .await
                .unwrap();
            rows.iter()
                .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, i64>(1)))
                .collect::<Vec<_>>()
        };
        ingest(1).await.unwrap();
        let first = pages().await;
        assert_eq!(first.len(), 400);
        assert!(
            first.iter().map(|p| p.1).max() >= Some(4),
            "the rows span several pages"
        );
        for day in 2..6 {
            let counts = ingest(day).await.unwrap();
            assert_eq!(counts.changed, 400, "round {day} rewrote every state row");
            let now = pages().await;
            let stayed = now.iter().zip(&first).filter(|(a, b)| a == b).count();
            assert!(
                stayed >= 360,
                "round {day}: {stayed} of 400 rows stayed on their page"
            );
        }
        drop(store);
        drop_test_database(&url, &db).await.unwrap();
    }
}
