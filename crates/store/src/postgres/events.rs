//! Snapshot ingestion (state, detection, events, outbox fan-out in one transaction), the events
//! query, the anniversary scanner and retention for PostgreSQL. The detection logic is the
//! domain's, applied exactly as the SQLite backend applies it.

use super::{is_retryable, pg, PostgresStore};
use crate::model::*;
use crate::rules::{parked_sql, payload_json, stored_event, stored_prospect_id};
use crate::{SnapshotBatch, StoreResult};
use deadpool_postgres::{Object, Transaction};
use domain::detect::{apply, month_day, AnniversaryWindow, DetectedEvent, MonthDayFilter};
use domain::instant::{from_unix_nanos, to_unix_nanos};
use domain::snapshot::{format_date, parse_date, Snapshot};
use domain::{PartnerId, ProspectId, TenantId};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;
use tokio_postgres::Row;

const SCAN_JOB: &str = "anniversary_scan";
const SCAN_CHUNK: i64 = 2000;
/// `observed_at` of the placeholder row inserted for a prospect seen for the first time, so that
/// concurrent ingestions of a new prospect serialize on its row lock. Never committed: the same
/// transaction always overwrites it with the prospect's baseline.
const PLACEHOLDER: i64 = i64::MIN;
/// Attempts of a transaction that failed with a deadlock or serialization failure.
const TX_ATTEMPTS: u32 = 5;

const STATE_COLS: &str = "prospect_id, observed_at, full_name, linkedin_url, company_id,
    company_name, job_title, job_start_date";

/// A state row (columns as in `STATE_COLS`); `None` for a placeholder.
fn state_row(r: &Row) -> StoreResult<Option<Snapshot>> {
    let pid = stored_prospect_id(r.get(0), "prospect_state")?;
    let nanos: i64 = r.get(1);
    if nanos == PLACEHOLDER {
        return Ok(None);
    }
    let start: Option<&str> = r.get(7);
    Ok(Some(Snapshot {
        prospect_id: pid,
        observed_at: from_unix_nanos(nanos),
        full_name: r.get(2),
        linkedin_url: r.get(3),
        company_id: r.get(4),
        company_name: r.get(5),
        job_title: r.get(6),
        job_start_date: start.and_then(parse_date),
    }))
}

impl PostgresStore {
    pub(super) async fn ingest(
        &self,
        batch: SnapshotBatch,
        opts: IngestOptions,
    ) -> StoreResult<IngestCounts> {
        batch.check_storable()?;
        let batch = batch.snapshots();
        if batch.is_empty() {
            return Ok(IngestCounts::default());
        }
        let mut attempt = 0;
        loop {
            let mut c = self.conn().await?;
            match ingest_once(&mut c, batch, opts).await {
                Err(e) if is_retryable(&e) && attempt + 1 < TX_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "retrying ingestion transaction");
                    tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
                }
                other => return other,
            }
        }
    }

    pub(super) async fn events(&self, q: &EventQuery) -> StoreResult<Vec<StoredEvent>> {
        if q.prospect_ids.is_empty() || q.event_types.is_empty() {
            return Ok(vec![]);
        }
        let c = self.conn().await?;
        let s = c
            .prepare_cached(
                "SELECT event_id, prospect_id, event_type, event_time, data FROM events
                 WHERE prospect_id = ANY($1::BYTEA[]) AND event_type = ANY($2::INTEGER[])
                   AND event_time >= $3 AND event_time <= $4
                 ORDER BY event_time DESC, id DESC",
            )
            .await
            .map_err(pg)?;
        let pids: Vec<&[u8]> = q.prospect_ids.iter().map(|p| &p.as_bytes()[..]).collect();
        let types: Vec<i32> = q.event_types.iter().map(|t| t.bit() as i32).collect();
        let from = q.from.unix_timestamp();
        let to = q.to.map(|t| t.unix_timestamp()).unwrap_or(i64::MAX);
        let rows = c
            .query(&s, &[&pids, &types, &from, &to])
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                let bit: i32 = r.get(2);
                let pid = stored_prospect_id(r.get(1), "events")?;
                stored_event(r.get(0), pid, i64::from(bit), r.get(3), r.get(4))
            })
            .collect()
    }

    /// Runs the scan while holding the scanner's session advisory lock; another replica's scan
    /// in progress means there is nothing to do here (an empty report).
    pub(super) async fn scan(&self, opts: IngestOptions) -> StoreResult<ScanReport> {
        let conn = self.conn().await?;
        let got: bool = conn
            .query_one("SELECT pg_try_advisory_lock($1)", &[&self.scan_lock_key])
            .await
            .map_err(pg)?
            .get(0);
        if !got {
            tracing::debug!("anniversary scan skipped: another replica is scanning");
            return Ok(ScanReport::default());
        }
        let mut guard = SessionLock {
            conn: Some(conn),
            key: self.scan_lock_key,
        };
        let res = scan_locked(guard.conn.as_mut().expect("held"), opts).await;
        guard.release().await;
        res
    }

    pub(super) async fn prune(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let cutoff = before.unix_timestamp();
        let c = self.conn().await?;
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

    pub(super) async fn outbox_rows(
        &self,
        scope: Option<&Scope>,
        limit: u32,
    ) -> StoreResult<Vec<OutboxRow>> {
        let c = self.conn().await?;
        let cols = "delivery_id, event_id, event_name, tenant_id, partner_id, enrollment_id,
                    enrollment_key, payload, status, attempts";
        let limit = limit as i64;
        let rows = match scope {
            Some(sc) => {
                let s = c
                    .prepare_cached(&format!(
                        "SELECT {cols} FROM notifications WHERE tenant_id = $1 AND partner_id = $2
                         ORDER BY id LIMIT $3"
                    ))
                    .await
                    .map_err(pg)?;
                c.query(&s, &[&sc.tenant.0, &sc.partner.0, &limit]).await
            }
            None => {
                let s = c
                    .prepare_cached(&format!(
                        "SELECT {cols} FROM notifications ORDER BY id LIMIT $1"
                    ))
                    .await
                    .map_err(pg)?;
                c.query(&s, &[&limit]).await
            }
        }
        .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| OutboxRow {
                delivery_id: r.get(0),
                event_id: r.get(1),
                event_name: r.get(2),
                tenant: TenantId(r.get(3)),
                partner: PartnerId(r.get(4)),
                enrollment_id: r.get(5),
                enrollment_key: r.get(6),
                payload: payload_json(r.get(7)),
                status: DeliveryStatus::from_code(r.get::<_, i32>(8) as i64),
                attempts: r.get::<_, i32>(9) as u32,
            })
            .collect())
    }
}

/// A held session advisory lock. Released explicitly; when that fails or never happens (an
/// error, a cancelled future), the connection is detached from the pool and closed, which
/// releases the lock, instead of going back to the pool still holding it.
struct SessionLock {
    conn: Option<Object>,
    key: i64,
}

impl SessionLock {
    async fn release(&mut self) {
        if let Some(c) = self.conn.as_ref() {
            let ok = c
                .query_one("SELECT pg_advisory_unlock($1)", &[&self.key])
                .await
                .map(|r| r.get::<_, bool>(0))
                .unwrap_or(false);
            if ok {
                self.conn = None; // back to the pool, unlocked
            }
        }
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            drop(Object::take(c));
        }
    }
}

async fn ingest_once(
    c: &mut Object,
    batch: &[Snapshot],
    opts: IngestOptions,
) -> StoreResult<IngestCounts> {
    let now_s = opts.now.unix_timestamp();
    let tx = c.transaction().await.map_err(pg)?;

    // Lock every prospect of the batch, in id order: placeholders for the unseen ones first
    // (so a concurrent first ingestion of the same prospect waits for us), then all rows.
    let mut pids: Vec<&[u8]> = batch
        .iter()
        .map(|s| &s.prospect_id.as_bytes()[..])
        .collect();
    pids.sort_unstable();
    pids.dedup();
    let s = tx
        .prepare_cached(
            "INSERT INTO prospect_state (prospect_id, observed_at, updated_at)
             SELECT p, $2, $3 FROM unnest($1::BYTEA[]) AS p ORDER BY p
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg)?;
    tx.execute(&s, &[&pids, &PLACEHOLDER, &now_s])
        .await
        .map_err(pg)?;
    let s = tx
        .prepare_cached(&format!(
            "SELECT {STATE_COLS} FROM prospect_state WHERE prospect_id = ANY($1::BYTEA[])
             ORDER BY prospect_id FOR UPDATE"
        ))
        .await
        .map_err(pg)?;
    let rows = tx.query(&s, &[&pids]).await.map_err(pg)?;
    let mut states: HashMap<ProspectId, Option<Snapshot>> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let raw: &[u8] = r.get(0);
        if let Some(pid) = ProspectId::from_bytes(raw) {
            states.insert(pid, state_row(r)?);
        }
    }

    let mut counts = IngestCounts::default();
    let mut dirty: Vec<ProspectId> = Vec::new();
    let mut dirty_set: std::collections::HashSet<ProspectId> = Default::default();
    let mut events: Vec<DetectedEvent> = Vec::new();
    let window = AnniversaryWindow::at_ingestion(opts.now, opts.anniversary_lead_days);
    for snap in batch {
        let pid = snap.prospect_id;
        let current = states.get(&pid).and_then(|s| s.as_ref());
        let applied = apply(current, snap, window);
        counts.tally(applied.tally);
        events.extend(applied.events);
        if applied.becomes_current {
            if dirty_set.insert(pid) {
                dirty.push(pid);
            }
            states.insert(pid, Some(snap.clone()));
        }
    }

    counts.events_beyond_retention = opts.drop_beyond_retention(&mut events);
    let (created, queued) = store_events(&tx, events, opts.now).await?;
    counts.events_created = created;
    counts.notifications_queued = queued;

    if !dirty.is_empty() {
        let mut ids: Vec<&[u8]> = Vec::with_capacity(dirty.len());
        let mut observed: Vec<i64> = Vec::with_capacity(dirty.len());
        let mut full_name: Vec<Option<&str>> = Vec::with_capacity(dirty.len());
        let mut linkedin: Vec<Option<&str>> = Vec::with_capacity(dirty.len());
        let mut company_id: Vec<Option<&str>> = Vec::with_capacity(dirty.len());
        let mut company_name: Vec<Option<&str>> = Vec::with_capacity(dirty.len());
        let mut job_title: Vec<Option<&str>> = Vec::with_capacity(dirty.len());
        let mut start: Vec<Option<String>> = Vec::with_capacity(dirty.len());
        let mut anniv: Vec<Option<i32>> = Vec::with_capacity(dirty.len());
        for pid in &dirty {
            let Some(Some(s)) = states.get(pid) else {
                continue;
            };
            ids.push(&s.prospect_id.as_bytes()[..]);
            observed.push(to_unix_nanos(s.observed_at)?);
            full_name.push(s.full_name.as_deref());
            linkedin.push(s.linkedin_url.as_deref());
            company_id.push(s.company_id.as_deref());
            company_name.push(s.company_name.as_deref());
            job_title.push(s.job_title.as_deref());
            start.push(s.job_start_date.map(format_date));
            anniv.push(s.job_start_date.map(month_day));
        }
        let s = tx
            .prepare_cached(
                "INSERT INTO prospect_state (prospect_id, observed_at, full_name, linkedin_url,
                    company_id, company_name, job_title, job_start_date, anniv_md, updated_at)
                 SELECT x.*, $10 FROM unnest($1::BYTEA[], $2::BIGINT[], $3::TEXT[], $4::TEXT[],
                    $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::INTEGER[]) AS x
                 ON CONFLICT (prospect_id) DO UPDATE SET observed_at = excluded.observed_at,
                    full_name = excluded.full_name, linkedin_url = excluded.linkedin_url,
                    company_id = excluded.company_id, company_name = excluded.company_name,
                    job_title = excluded.job_title, job_start_date = excluded.job_start_date,
                    anniv_md = excluded.anniv_md, updated_at = excluded.updated_at",
            )
            .await
            .map_err(pg)?;
        tx.execute(
            &s,
            &[
                &ids,
                &observed,
                &full_name,
                &linkedin,
                &company_id,
                &company_name,
                &job_title,
                &start,
                &anniv,
                &now_s,
            ],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(counts)
}

/// Stores events whose ids are not known yet and queues one notification per enrollment
/// covering each new event (with the enrollment's key as of now), in the caller's transaction.
/// Returns (events created, notifications queued). Three round trips whatever the count.
async fn store_events(
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

    // Fan-out: the covering enrollments of every new event, in event order then enrollment order.
    let pids: Vec<&[u8]> = new.iter().map(|e| &e.prospect_id.as_bytes()[..]).collect();
    let bits: Vec<i32> = new.iter().map(|e| e.event_type.bit() as i32).collect();
    let s = tx
        .prepare_cached(
            "SELECT x.o, e.tenant_id, e.partner_id, e.enrollment_id, e.enrollment_key
             FROM unnest($1::BYTEA[], $2::INTEGER[]) WITH ORDINALITY AS x(p, b, o)
             JOIN enrollment_prospects ep ON ep.prospect_id = x.p
             JOIN enrollments e ON e.id = ep.enrollment_ref
             WHERE (e.event_mask & x.b) <> 0
             ORDER BY x.o, e.id",
        )
        .await
        .map_err(pg)?;
    let rows = tx.query(&s, &[&pids, &bits]).await.map_err(pg)?;
    if rows.is_empty() {
        return Ok((new.len() as u64, 0));
    }
    let n = rows.len();
    let mut delivery: Vec<String> = Vec::with_capacity(n);
    let mut event_id: Vec<&str> = Vec::with_capacity(n);
    let mut event_name: Vec<&str> = Vec::with_capacity(n);
    let mut event_time: Vec<i64> = Vec::with_capacity(n);
    let mut tenant: Vec<String> = Vec::with_capacity(n);
    let mut partner: Vec<String> = Vec::with_capacity(n);
    let mut enrollment: Vec<String> = Vec::with_capacity(n);
    let mut key: Vec<String> = Vec::with_capacity(n);
    let mut payload: Vec<String> = Vec::with_capacity(n);
    for r in &rows {
        let ord: i64 = r.get(0);
        let ev = new[(ord - 1) as usize];
        let to = CoveringEnrollment {
            tenant: TenantId(r.get(1)),
            partner: PartnerId(r.get(2)),
            enrollment_id: domain::EnrollmentId(r.get(3)),
            enrollment_key: r.get(4),
        };
        payload.push(notification_payload(ev, &to).to_string());
        delivery.push(delivery_id_for(&ev.event_id, &to.enrollment_id.0));
        event_id.push(&ev.event_id);
        event_name.push(ev.event_type.as_str());
        event_time.push(ev.event_time.unix_timestamp());
        tenant.push(to.tenant.0);
        partner.push(to.partner.0);
        enrollment.push(to.enrollment_id.0);
        key.push(to.enrollment_key);
    }
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let s = tx
        .prepare_cached(concat!(
            "INSERT INTO notifications (delivery_id, event_id, event_name, event_time,
                tenant_id, partner_id, enrollment_id, enrollment_key, payload, next_attempt_at,
                created_at)
             SELECT x.d, x.e, x.n, x.t, x.tn, x.pa, x.en, x.k, x.pl,
                CASE WHEN EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant_id = x.tn AND w.partner_id = x.pa AND w.enabled) THEN $10 ELSE ",
            parked_sql!(),
            " END, $11
             FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[],
                         $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[])
                  WITH ORDINALITY AS x(d, e, n, t, tn, pa, en, k, pl, o)
             ORDER BY x.o
             ON CONFLICT DO NOTHING",
        ))
        .await
        .map_err(pg)?;
    let queued = tx
        .execute(
            &s,
            &[
                &delivery,
                &event_id,
                &event_name,
                &event_time,
                &tenant,
                &partner,
                &enrollment,
                &key,
                &payload,
                &now_ms,
                &now_s,
            ],
        )
        .await
        .map_err(pg)?;
    Ok((new.len() as u64, queued))
}

async fn scan_locked(c: &mut Object, opts: IngestOptions) -> StoreResult<ScanReport> {
    let stored: Option<String> = c
        .query_opt("SELECT value FROM job_state WHERE name = $1", &[&SCAN_JOB])
        .await
        .map_err(pg)?
        .map(|r| r.get(0));
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
    let month_days = window.month_days();
    let (lo, hi) = month_days.bounds();
    // 229 (LEAP_DAY): a 29 February start has its anniversary on 28 February in non-leap years.
    let filter = match month_days {
        MonthDayFilter::Any => {
            "anniv_md IS NOT NULL AND $1::INTEGER IS NOT NULL AND $2::INTEGER IS NOT NULL"
        }
        MonthDayFilter::Wrapping { .. } => "(anniv_md >= $1 OR anniv_md <= $2 OR anniv_md = 229)",
        MonthDayFilter::Between { .. } => "(anniv_md BETWEEN $1 AND $2 OR anniv_md = 229)",
    };
    let sql = format!(
        "SELECT {STATE_COLS} FROM prospect_state WHERE {filter} AND prospect_id > $3
         ORDER BY prospect_id LIMIT $4 FOR UPDATE"
    );
    let mut from: Vec<u8> = Vec::new();
    loop {
        let mut attempt = 0;
        let (n, last, e, q) = loop {
            match scan_chunk(c, &sql, lo, hi, &from, window, opts).await {
                Err(e) if is_retryable(&e) && attempt + 1 < TX_ATTEMPTS => attempt += 1,
                other => break other?,
            }
        };
        let Some(last) = last else {
            break;
        };
        report.candidates += n;
        report.events_created += e;
        report.notifications_queued += q;
        from = last;
    }
    c.execute(
        "INSERT INTO job_state (name, value, updated_at)
         VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        &[&SCAN_JOB, &format_date(window.until)],
    )
    .await
    .map_err(pg)?;
    Ok(report)
}

/// One page of candidates, locked, with their anniversaries stored: (candidates, last id,
/// events created, notifications queued).
async fn scan_chunk(
    c: &mut Object,
    sql: &str,
    lo: i32,
    hi: i32,
    from: &[u8],
    window: AnniversaryWindow,
    opts: IngestOptions,
) -> StoreResult<(u64, Option<Vec<u8>>, u64, u64)> {
    let tx = c.transaction().await.map_err(pg)?;
    let s = tx.prepare_cached(sql).await.map_err(pg)?;
    let rows = tx
        .query(&s, &[&lo, &hi, &from, &SCAN_CHUNK])
        .await
        .map_err(pg)?;
    let Some(last) = rows.last().map(|r| r.get::<_, Vec<u8>>(0)) else {
        return Ok((0, None, 0, 0));
    };
    let mut events = Vec::new();
    for r in &rows {
        if let Some(state) = state_row(r)? {
            events.extend(window.due(&state));
        }
    }
    opts.drop_beyond_retention(&mut events);
    let (e, q) = store_events(&tx, events, opts.now).await?;
    tx.commit().await.map_err(pg)?;
    Ok((rows.len() as u64, Some(last), e, q))
}
