//! Snapshot ingestion (state, detection, events, outbox fan-out in one transaction), the events
//! query, the anniversary scanner and retention for SQLite.

use super::{internal, SqliteStore};
use crate::model::*;
use crate::rules::{payload_json, stored_event};
use crate::{SnapshotBatch, StoreResult};
use domain::detect::{apply, month_day, AnniversaryWindow, DetectedEvent, MonthDayFilter, Outcome};
use domain::instant::{from_unix_nanos, to_unix_nanos};
use domain::snapshot::{format_date, parse_date, Snapshot};
use domain::{PartnerId, ProspectId, TenantId};
use rusqlite::{params, Connection, OptionalExtension};
use std::borrow::Cow;
use time::OffsetDateTime;

const SCAN_JOB: &str = "anniversary_scan";
const SCAN_CHUNK: usize = 2000;

pub(super) fn ingest(
    c: &Connection,
    mut batch: SnapshotBatch,
    opts: IngestOptions,
) -> StoreResult<IngestCounts> {
    let mut counts = IngestCounts::default();
    let window = AnniversaryWindow::at_ingestion(opts.now, opts.anniversary_lead_days);
    let now_s = opts.now.unix_timestamp();
    let mut load = c.prepare_cached(LOAD_STATE).map_err(internal)?;
    let mut insert = c.prepare_cached(INSERT_STATE).map_err(internal)?;
    let mut update = c.prepare_cached(UPDATE_STATE).map_err(internal)?;
    let mut touch = c.prepare_cached(TOUCH_STATE).map_err(internal)?;
    let mut fast = FastPaths {
        touch_if_same: c.prepare_cached(TOUCH_IF_SAME).map_err(internal)?,
        insert_new: c.prepare_cached(INSERT_NEW_STATE).map_err(internal)?,
        insert_first: false,
    };

    // Grouped by prospect id, each prospect's snapshots in input order: the state and index
    // B-trees are walked in key order instead of at random, and a prospect seen several times
    // in the batch is read and written once.
    let mut snaps = batch.grouped().peekable();
    while let Some(&(first, _)) = snaps.peek() {
        let pid = first.prospect_id;
        // While the prospect's state is only in the database, settle each snapshot with one
        // statement if it is one of the two common cases.
        while let Some(&(snap, hash)) = snaps.peek() {
            if snap.prospect_id != pid {
                break;
            }
            match fast.apply(snap, hash, window, now_s)? {
                Some(Outcome::Baseline) => counts.baselines += 1,
                Some(_) => counts.unchanged += 1,
                None => break,
            }
            snaps.next();
        }
        if snaps.peek().is_none_or(|(s, _)| s.prospect_id != pid) {
            continue;
        }
        let stored = load_state_with(&mut load, &pid)?;
        let existed = stored.is_some();
        fast.insert_first = !existed;
        let mut current: Option<Cow<'_, Snapshot>> = stored.map(Cow::Owned);
        let mut current_hash = 0;
        let mut changed_state = false;
        // Whether anything but observed_at differs from the stored row (most snapshots of a
        // feed repeat the prospect as it was: only the time of the observation moves).
        let mut changed_fields = !existed;
        while let Some((snap, hash)) = snaps.next_if(|(s, _)| s.prospect_id == pid) {
            let applied = apply(current.as_deref(), snap, window);
            counts.tally(applied.tally);
            let mut events = applied.events;
            counts.events_beyond_retention += opts.drop_beyond_retention(&mut events);
            for ev in &events {
                if insert_event(c, ev, now_s)? {
                    counts.events_created += 1;
                    counts.notifications_queued += fan_out(c, ev, opts.now)?;
                }
            }
            if applied.becomes_current {
                changed_fields |= !current.as_deref().is_some_and(|c| c.same_content(snap));
                current = Some(Cow::Borrowed(snap));
                current_hash = hash;
                changed_state = true;
            }
        }
        let Some(s) = current.filter(|_| changed_state) else {
            continue;
        };
        if changed_fields {
            let stmt = if existed { &mut update } else { &mut insert };
            stmt.execute(state_params!(s, now_s, current_hash))
                .map_err(internal)?;
        } else {
            touch
                .execute(params![
                    &pid.as_bytes()[..],
                    to_unix_nanos(s.observed_at)?,
                    now_s,
                    current_hash
                ])
                .map_err(internal)?;
        }
    }
    Ok(counts)
}

/// The parameters of the state statements, in column order (?1 … ?11).
macro_rules! state_params {
    ($s:expr, $now_s:expr, $hash:expr) => {
        params![
            &$s.prospect_id.as_bytes()[..],
            to_unix_nanos($s.observed_at)?,
            $s.full_name,
            $s.linkedin_url,
            $s.company_id,
            $s.company_name,
            $s.job_title,
            $s.job_start_date.map(format_date),
            $s.job_start_date.map(month_day),
            $now_s,
            $hash
        ]
    };
}
use state_params;

/// The two snapshots that need no read of the stored row: a prospect seen for the first time
/// (without an anniversary due), and a newer observation repeating every stored field.
struct FastPaths<'c> {
    touch_if_same: rusqlite::CachedStatement<'c>,
    insert_new: rusqlite::CachedStatement<'c>,
    /// Try the insert first: the last prospect was new (a new feed), so this one may be too.
    insert_first: bool,
}

impl FastPaths<'_> {
    /// `Some(Baseline)` when `snap` was stored as a first snapshot, `Some(Changed)` when it
    /// only advanced `observed_at`, `None` when it needs the full comparison (nothing written).
    fn apply(
        &mut self,
        snap: &Snapshot,
        hash: i64,
        window: AnniversaryWindow,
        now_s: i64,
    ) -> StoreResult<Option<Outcome>> {
        if self.insert_first
            && window.due(snap).is_empty()
            && self
                .insert_new
                .execute(state_params!(snap, now_s, hash))
                .map_err(internal)?
                == 1
        {
            return Ok(Some(Outcome::Baseline));
        }
        let touched = self
            .touch_if_same
            .execute(params![
                &snap.prospect_id.as_bytes()[..],
                to_unix_nanos(snap.observed_at)?,
                hash,
                now_s
            ])
            .map_err(internal)?;
        if touched == 1 {
            self.insert_first = false;
            return Ok(Some(Outcome::Changed));
        }
        // Not a repeat: the full comparison reads the row anyway, and tells whether the
        // prospect is new (then `insert_first` is set for the next one).
        Ok(None)
    }
}

/// Advances `observed_at` only when the snapshot is newer and repeats every stored field
/// (its content hash is the stored one).
const TOUCH_IF_SAME: &str = "UPDATE prospect_state SET observed_at = ?2, updated_at = ?4
     WHERE prospect_id = ?1 AND observed_at < ?2 AND content_hash = ?3";

const INSERT_NEW_STATE: &str = "INSERT INTO prospect_state (prospect_id, observed_at, full_name,
        linkedin_url, company_id, company_name, job_title, job_start_date, anniv_md, updated_at,
        content_hash)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
     ON CONFLICT (prospect_id) DO NOTHING";

const LOAD_STATE: &str = "SELECT observed_at, full_name, linkedin_url, company_id, company_name,
        job_title, job_start_date
     FROM prospect_state WHERE prospect_id = ?1";

const INSERT_STATE: &str = "INSERT INTO prospect_state (prospect_id, observed_at, full_name,
        linkedin_url, company_id, company_name, job_title, job_start_date, anniv_md, updated_at,
        content_hash)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

const UPDATE_STATE: &str = "UPDATE prospect_state SET observed_at = ?2, full_name = ?3,
        linkedin_url = ?4, company_id = ?5, company_name = ?6, job_title = ?7,
        job_start_date = ?8, anniv_md = ?9, updated_at = ?10, content_hash = ?11
     WHERE prospect_id = ?1";

/// Also sets the content hash, which rows from before migration 0006 lack.
const TOUCH_STATE: &str = "UPDATE prospect_state SET observed_at = ?2, updated_at = ?3,
        content_hash = ?4
     WHERE prospect_id = ?1";

fn load_state(c: &Connection, pid: &ProspectId) -> StoreResult<Option<Snapshot>> {
    let mut s = c.prepare_cached(LOAD_STATE).map_err(internal)?;
    load_state_with(&mut s, pid)
}

fn load_state_with(
    s: &mut rusqlite::CachedStatement<'_>,
    pid: &ProspectId,
) -> StoreResult<Option<Snapshot>> {
    s.query_row(params![&pid.as_bytes()[..]], |r| {
        let nanos: i64 = r.get(0)?;
        let start: Option<String> = r.get(6)?;
        Ok(Snapshot {
            prospect_id: *pid,
            observed_at: from_unix_nanos(nanos),
            full_name: r.get(1)?,
            linkedin_url: r.get(2)?,
            company_id: r.get(3)?,
            company_name: r.get(4)?,
            job_title: r.get(5)?,
            job_start_date: start.as_deref().and_then(parse_date),
        })
    })
    .optional()
    .map_err(internal)
}

/// Stores an event unless its id is known; true when it was new.
fn insert_event(c: &Connection, ev: &DetectedEvent, now_s: i64) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "INSERT OR IGNORE INTO events (event_id, prospect_id, event_type, event_time, data, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                ev.event_id,
                &ev.prospect_id.as_bytes()[..],
                ev.event_type.bit(),
                ev.event_time.unix_timestamp(),
                ev.data.to_string(),
                now_s
            ])
        })
        .map_err(internal)?;
    Ok(n == 1)
}

/// Queues one notification per enrollment covering the event's prospect and type, with the
/// enrollment's key as of now. Returns how many were queued.
fn fan_out(c: &Connection, ev: &DetectedEvent, now: OffsetDateTime) -> StoreResult<u64> {
    let covering = super::queries::covering(c, &ev.prospect_id, ev.event_type)?;
    if covering.is_empty() {
        return Ok(0);
    }
    let mut ins = c
        .prepare_cached(
            "INSERT OR IGNORE INTO notifications (delivery_id, event_id, event_name, event_time,
                tenant_id, partner_id, enrollment_id, enrollment_key, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(internal)?;
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut queued = 0;
    for to in covering {
        let payload = notification_payload(ev, &to);
        let scope = Scope {
            tenant: to.tenant.clone(),
            partner: to.partner.clone(),
        };
        // Without an enabled webhook the notification waits parked (out of the claim range).
        let due = if super::webhooks::webhook_enabled(c, &scope)? {
            now_ms
        } else {
            PARKED
        };
        let inserted = ins
            .execute(params![
                delivery_id_for(&ev.event_id, &to.enrollment_id.0),
                ev.event_id,
                ev.event_type.as_str(),
                ev.event_time.unix_timestamp(),
                to.tenant.0,
                to.partner.0,
                to.enrollment_id.0,
                to.enrollment_key,
                due,
                now.unix_timestamp()
            ])
            .map_err(internal)?;
        if inserted == 1 {
            super::webhooks::insert_payload(c, c.last_insert_rowid(), &payload.to_string())?;
            queued += 1;
        }
    }
    Ok(queued)
}

pub(super) fn query_events(c: &Connection, q: &EventQuery) -> StoreResult<Vec<StoredEvent>> {
    // One range scan per prospect over events_by_prospect (prospect_id, event_type, event_time),
    // the wanted types filtered in the scan: one seek instead of one per type.
    let mut s = c
        .prepare_cached(
            "SELECT id, event_id, event_type, event_time, data FROM events
             WHERE prospect_id = ?1 AND event_type & ?2 != 0
               AND event_time >= ?3 AND event_time <= ?4",
        )
        .map_err(internal)?;
    let mask: i64 = q.event_types.iter().fold(0, |m, t| m | i64::from(t.bit()));
    let from = q.from.unix_timestamp();
    let to = q.to.map(|t| t.unix_timestamp()).unwrap_or(i64::MAX);
    let mut out: Vec<(i64, StoredEvent)> = Vec::new();
    for pid in &q.prospect_ids {
        let rows = s
            .query_map(params![&pid.as_bytes()[..], mask, from, to], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(internal)?;
        for row in rows {
            let (id, event_id, bit, t, data) = row.map_err(internal)?;
            out.push((id, stored_event(event_id, *pid, bit, t, data)?));
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse((e.1.event_time, e.0)));
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

/// Candidate prospects whose job-start month/day can fall in (after, until], one page: a walk of
/// prospect_state in key order from `from_pid`, filtered on anniv_md (no index on it, see
/// migration 0007), so the pages of a whole scan read the table once.
fn scan_candidates(
    c: &Connection,
    window: AnniversaryWindow,
    from_pid: &[u8],
) -> StoreResult<Vec<Vec<u8>>> {
    let filter = window.month_days();
    let (lo, hi) = filter.bounds();
    // 229 (LEAP_DAY): a 29 February start has its anniversary on 28 February in non-leap years.
    let sql = match filter {
        MonthDayFilter::Any => {
            "SELECT prospect_id FROM prospect_state
             WHERE anniv_md IS NOT NULL AND ?1 = ?1 AND ?2 = ?2 AND prospect_id > ?3
             ORDER BY prospect_id LIMIT ?4"
        }
        MonthDayFilter::Wrapping { .. } => {
            "SELECT prospect_id FROM prospect_state
             WHERE (anniv_md >= ?1 OR anniv_md <= ?2 OR anniv_md = 229) AND prospect_id > ?3
             ORDER BY prospect_id LIMIT ?4"
        }
        MonthDayFilter::Between { .. } => {
            "SELECT prospect_id FROM prospect_state
             WHERE (anniv_md BETWEEN ?1 AND ?2 OR anniv_md = 229) AND prospect_id > ?3
             ORDER BY prospect_id LIMIT ?4"
        }
    };
    let mut s = c.prepare_cached(sql).map_err(internal)?;
    let rows = s
        .query_map(params![lo, hi, from_pid, SCAN_CHUNK as i64], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
}

fn scan_chunk(
    c: &Connection,
    pids: &[Vec<u8>],
    window: AnniversaryWindow,
    opts: IngestOptions,
) -> StoreResult<(u64, u64)> {
    let now = opts.now;
    let (mut events, mut queued) = (0, 0);
    for raw in pids {
        let Some(pid) = ProspectId::from_bytes(raw) else {
            continue;
        };
        let Some(state) = load_state(c, &pid)? else {
            continue;
        };
        let mut due = window.due(&state);
        opts.drop_beyond_retention(&mut due);
        for ev in due {
            if insert_event(c, &ev, now.unix_timestamp())? {
                events += 1;
                queued += fan_out(c, &ev, now)?;
            }
        }
    }
    Ok((events, queued))
}

impl SqliteStore {
    pub(super) async fn scan(&self, opts: IngestOptions) -> StoreResult<ScanReport> {
        let stored: Option<String> = self
            .read(|c| {
                c.query_row(
                    "SELECT value FROM job_state WHERE name = ?1",
                    params![SCAN_JOB],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)
            })
            .await?;
        let last_until = stored.as_deref().and_then(parse_date);
        let window = AnniversaryWindow::since(last_until, opts.now, opts.anniversary_lead_days);
        let mut report = ScanReport {
            after: Some(window.after),
            until: Some(window.until),
            ..Default::default()
        };
        if window.is_empty() {
            return Ok(report);
        }
        let mut from: Vec<u8> = Vec::new();
        loop {
            let start = from.clone();
            let pids = self
                .read(move |c| scan_candidates(c, window, &start))
                .await?;
            let Some(last) = pids.last().cloned() else {
                break;
            };
            report.candidates += pids.len() as u64;
            let (e, q) = self
                .write(move |c| scan_chunk(c, &pids, window, opts))
                .await?;
            report.events_created += e;
            report.notifications_queued += q;
            from = last;
        }
        let until_s = format_date(window.until);
        self.write(move |c| {
            c.execute(
                "INSERT INTO job_state (name, value, updated_at) VALUES (?1, ?2, unixepoch())
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![SCAN_JOB, until_s],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await?;
        Ok(report)
    }

    pub(super) async fn prune(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let cutoff = before.unix_timestamp();
        let mut total = 0;
        loop {
            let n = self
                .write(move |c| {
                    c.execute(
                        "DELETE FROM events WHERE id IN
                           (SELECT id FROM events WHERE event_time < ?1 LIMIT 5000)",
                        params![cutoff],
                    )
                    .map_err(internal)
                })
                .await?;
            total += n as u64;
            if n < 5000 {
                return Ok(total);
            }
        }
    }
}

pub(super) fn outbox(
    c: &Connection,
    scope: Option<&Scope>,
    limit: u32,
) -> StoreResult<Vec<OutboxRow>> {
    let (sql, scoped) = match scope {
        Some(_) => (
            "SELECT delivery_id, event_id, event_name, tenant_id, partner_id, enrollment_id,
                    enrollment_key, p.payload, status, attempts
             FROM notifications n JOIN notification_payloads p ON p.notification_id = n.id
             WHERE tenant_id = ?1 AND partner_id = ?2 ORDER BY id LIMIT ?3",
            true,
        ),
        None => (
            "SELECT delivery_id, event_id, event_name, tenant_id, partner_id, enrollment_id,
                    enrollment_key, p.payload, status, attempts
             FROM notifications n JOIN notification_payloads p ON p.notification_id = n.id
             WHERE ?1 IS NULL AND ?2 IS NULL ORDER BY id LIMIT ?3",
            false,
        ),
    };
    let (t, p) = match (scope, scoped) {
        (Some(s), true) => (Some(s.tenant.0.clone()), Some(s.partner.0.clone())),
        _ => (None, None),
    };
    let mut s = c.prepare_cached(sql).map_err(internal)?;
    let rows = s
        .query_map(params![t, p, limit], |r| {
            let payload: String = r.get(7)?;
            Ok(OutboxRow {
                delivery_id: r.get(0)?,
                event_id: r.get(1)?,
                event_name: r.get(2)?,
                tenant: TenantId(r.get(3)?),
                partner: PartnerId(r.get(4)?),
                enrollment_id: r.get(5)?,
                enrollment_key: r.get(6)?,
                payload: payload_json(&payload),
                status: DeliveryStatus::from_code(r.get(8)?),
                attempts: r.get(9)?,
            })
        })
        .map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn snap(observed_at: &str, title: &str) -> Snapshot {
        Snapshot::from_json_line(&format!(
            r#"{{"prospect_id":"{}","observed_at":"{observed_at}","full_name":"Ann",
                "company_name":"Acme","job_title":"{title}"}}"#,
            "ab".repeat(20)
        ))
        .unwrap()
    }

    fn state(c: &Connection) -> (i64, Option<i64>) {
        c.query_row(
            "SELECT observed_at, content_hash FROM prospect_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    }

    fn apply(c: &Connection, s: Snapshot) -> IngestCounts {
        let opts = IngestOptions {
            now: OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
            anniversary_lead_days: 7,
            event_retention: None,
        };
        ingest(c, vec![s].into(), opts).unwrap()
    }

    /// The one-statement paths rely on the stored content hash; a row without one (written
    /// before migration 0006) must still be compared in full, and gets its hash then.
    #[test]
    fn rows_without_a_content_hash_take_the_full_comparison() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrate::run(&mut c).unwrap();
        let first = snap("2024-01-01T00:00:00Z", "Engineer");
        assert_eq!(apply(&c, first.clone()).baselines, 1);
        assert_eq!(state(&c).1, Some(first.content_hash()));

        c.execute("UPDATE prospect_state SET content_hash = NULL", [])
            .unwrap();
        let later = snap("2024-02-01T00:00:00Z", "Engineer");
        assert_eq!(apply(&c, later.clone()).unchanged, 1);
        let nanos = later.observed_at.unix_timestamp_nanos() as i64;
        assert_eq!(state(&c), (nanos, Some(later.content_hash())));

        // With the hash back, a repeat is settled by the conditional update; a change is not.
        let again = snap("2024-03-01T00:00:00Z", "Engineer");
        assert_eq!(apply(&c, again.clone()).unchanged, 1);
        assert_eq!(state(&c).0, again.observed_at.unix_timestamp_nanos() as i64);
        let moved = snap("2024-04-01T00:00:00Z", "Manager");
        let counts = apply(&c, moved.clone());
        assert_eq!((counts.changed, counts.events_created), (1, 1));
        assert_eq!(state(&c).1, Some(moved.content_hash()));
        // An older repeat of the previous title changes nothing.
        let old = snap("2024-03-15T00:00:00Z", "Engineer");
        assert_eq!(apply(&c, old).unchanged, 1);
        assert_eq!(state(&c).1, Some(moved.content_hash()));
    }
}
