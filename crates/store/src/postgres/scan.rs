//! The anniversary scanner for PostgreSQL: one replica at a time (a session advisory lock), pages
//! of candidates locked and settled in their own transactions. The window and the month-day
//! filter are `domain::detect`'s; this module turns the filter into SQL.

use super::ingest::{state_row, store_events, STATE_COLS, TX_ATTEMPTS};
use super::{is_retryable, pg, PostgresStore};
use crate::model::*;
use crate::rules::{scan_start, SCAN_JOB, SCAN_PAGE};
use crate::StoreResult;
use deadpool_postgres::Object;
use domain::detect::{AnniversaryWindow, MonthDayFilter};
use domain::snapshot::format_date;

/// Runs the scan while holding the scanner's session advisory lock; another replica's scan
/// in progress means there is nothing to do here (an empty report).
pub(super) async fn scan_anniversaries(
    store: &PostgresStore,
    opts: IngestOptions,
) -> StoreResult<ScanReport> {
    let conn = store.conn().await?;
    let got: bool = conn
        .query_one("SELECT pg_try_advisory_lock($1)", &[&store.scan_lock_key])
        .await
        .map_err(pg)?
        .get(0);
    if !got {
        tracing::debug!("anniversary scan skipped: another replica is scanning");
        return Ok(ScanReport::default());
    }
    let mut guard = SessionLock {
        conn: Some(conn),
        key: store.scan_lock_key,
    };
    let res = scan_locked(guard.conn.as_mut().expect("held"), opts).await;
    guard.release().await;
    res
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

async fn scan_locked(c: &mut Object, opts: IngestOptions) -> StoreResult<ScanReport> {
    let stored: Option<String> = c
        .query_opt("SELECT value FROM job_state WHERE name = $1", &[&SCAN_JOB])
        .await
        .map_err(pg)?
        .map(|r| r.get(0));
    let (window, mut report) = scan_start(stored.as_deref(), &opts);
    let Some(window) = window else {
        return Ok(report);
    };
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
        .query(&s, &[&lo, &hi, &from, &(SCAN_PAGE as i64)])
        .await
        .map_err(pg)?;
    let Some(last) = rows.last().map(|r| r.get::<_, Vec<u8>>(0)) else {
        return Ok((0, None, 0, 0));
    };
    let mut events = Vec::new();
    for r in &rows {
        events.extend(window.due(&state_row(r)?));
    }
    opts.drop_beyond_retention(&mut events);
    let (e, q) = store_events(&tx, events, opts.now).await?;
    tx.commit().await.map_err(pg)?;
    Ok((rows.len() as u64, Some(last), e, q))
}
