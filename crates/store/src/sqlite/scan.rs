//! The anniversary scanner for SQLite: pages of candidates read, then settled by the writer.
//! The window and the month-day filter are `domain::detect`'s; this module turns the filter
//! into SQL.

use super::ingest::{insert_event, load_state};
use super::{internal, outbox, SqliteStore};
use crate::model::*;
use crate::rules::{scan_start, SCAN_JOB, SCAN_PAGE};
use crate::StoreResult;
use domain::detect::{AnniversaryWindow, MonthDayFilter};
use domain::snapshot::format_date;
use domain::ProspectId;
use rusqlite::{params, Connection, OptionalExtension};

pub(super) async fn scan_anniversaries(
    store: &SqliteStore,
    opts: IngestOptions,
) -> StoreResult<ScanReport> {
    let stored: Option<String> = store
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
    let (window, mut report) = scan_start(stored.as_deref(), &opts);
    let Some(window) = window else {
        return Ok(report);
    };
    let mut from: Vec<u8> = Vec::new();
    loop {
        let start = from.clone();
        let pids = store
            .read(move |c| scan_candidates(c, window, &start))
            .await?;
        let Some(last) = pids.last().cloned() else {
            break;
        };
        report.candidates += pids.len() as u64;
        let (e, q) = store
            .write(move |c| scan_chunk(c, &pids, window, opts))
            .await?;
        report.events_created += e;
        report.notifications_queued += q;
        from = last;
    }
    let until_s = format_date(window.until);
    store.write(move |c| {
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
        .query_map(params![lo, hi, from_pid, SCAN_PAGE as i64], |r| {
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
                queued += outbox::queue_for_event(c, &ev, now)?;
            }
        }
    }
    Ok((events, queued))
}
