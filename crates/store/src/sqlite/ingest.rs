//! Snapshot ingestion for SQLite (state, events and their notifications in one transaction),
//! the events query and retention. What a snapshot means is `domain::detect::apply`; this
//! module holds the SQL, and the two one-statement paths for the common snapshots.

use super::{internal, outbox, SqliteStore};
use crate::model::*;
use crate::rules::{newest_first, stored_event};
use crate::{SnapshotBatch, StoreResult};
use domain::detect::{apply, month_day, AnniversaryWindow, DetectedEvent, Outcome};
use domain::instant::{from_unix_nanos, to_unix_nanos};
use domain::snapshot::{format_date, parse_date, Snapshot};
use domain::ProspectId;
use rusqlite::{params, Connection, OptionalExtension};
use std::borrow::Cow;
use std::iter::Peekable;
use time::OffsetDateTime;

pub(super) fn ingest_snapshots(
    c: &Connection,
    mut batch: SnapshotBatch,
    opts: IngestOptions,
) -> StoreResult<IngestCounts> {
    let mut counts = IngestCounts::default();
    let window = AnniversaryWindow::at_ingestion(opts.now, opts.anniversary_lead_days);
    let now_s = opts.now.unix_timestamp();
    let mut load = c.prepare_cached(LOAD_STATE).map_err(internal)?;
    let mut writes = StateWrites {
        insert: c.prepare_cached(INSERT_STATE).map_err(internal)?,
        update: c.prepare_cached(UPDATE_STATE).map_err(internal)?,
        touch: c.prepare_cached(TOUCH_STATE).map_err(internal)?,
    };
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
        fast.insert_first = stored.is_none();
        let state = apply_prospect(c, stored, &mut snaps, pid, window, &opts, &mut counts)?;
        write_state(&mut writes, &pid, state, now_s)?;
    }
    Ok(counts)
}

/// Where one prospect's snapshots leave its state.
struct ProspectState<'b> {
    existed: bool,
    current: Option<Cow<'b, Snapshot>>,
    current_hash: i64,
    changed_state: bool,
    /// Whether anything but observed_at differs from the stored row (most snapshots of a feed
    /// repeat the prospect as it was: only the time of the observation moves).
    changed_fields: bool,
}

/// Applies the prospect's next snapshots (`domain::detect::apply`) to its `stored` state,
/// storing each new event with its notifications as it is detected.
fn apply_prospect<'b>(
    c: &Connection,
    stored: Option<Snapshot>,
    snaps: &mut Peekable<impl Iterator<Item = (&'b Snapshot, i64)>>,
    pid: ProspectId,
    window: AnniversaryWindow,
    opts: &IngestOptions,
    counts: &mut IngestCounts,
) -> StoreResult<ProspectState<'b>> {
    let now_s = opts.now.unix_timestamp();
    let existed = stored.is_some();
    let mut state = ProspectState {
        existed,
        current: stored.map(Cow::Owned),
        current_hash: 0,
        changed_state: false,
        changed_fields: !existed,
    };
    while let Some((snap, hash)) = snaps.next_if(|(s, _)| s.prospect_id == pid) {
        let applied = apply(state.current.as_deref(), snap, window);
        counts.tally(applied.tally);
        let mut events = applied.events;
        counts.events_beyond_retention += opts.drop_beyond_retention(&mut events);
        for ev in &events {
            if insert_event(c, ev, now_s)? {
                counts.events_created += 1;
                counts.notifications_queued += outbox::queue_for_event(c, ev, opts.now)?;
            }
        }
        if applied.becomes_current {
            state.changed_fields |= !state
                .current
                .as_deref()
                .is_some_and(|c| c.same_content(snap));
            state.current = Some(Cow::Borrowed(snap));
            state.current_hash = hash;
            state.changed_state = true;
        }
    }
    Ok(state)
}

/// The statements that write a prospect's state after its snapshots were applied.
struct StateWrites<'c> {
    insert: rusqlite::CachedStatement<'c>,
    update: rusqlite::CachedStatement<'c>,
    touch: rusqlite::CachedStatement<'c>,
}

/// Writes the prospect's new state, if it moved: the whole row when a field changed, else
/// only the time of the observation.
fn write_state(
    writes: &mut StateWrites<'_>,
    pid: &ProspectId,
    state: ProspectState<'_>,
    now_s: i64,
) -> StoreResult<()> {
    let Some(s) = state.current.filter(|_| state.changed_state) else {
        return Ok(());
    };
    let current_hash = state.current_hash;
    if state.changed_fields {
        let stmt = if state.existed {
            &mut writes.update
        } else {
            &mut writes.insert
        };
        stmt.execute(state_params!(s, now_s, current_hash))
            .map_err(internal)?;
    } else {
        writes
            .touch
            .execute(params![
                &pid.as_bytes()[..],
                to_unix_nanos(s.observed_at)?,
                now_s,
                current_hash
            ])
            .map_err(internal)?;
    }
    Ok(())
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

pub(super) fn load_state(c: &Connection, pid: &ProspectId) -> StoreResult<Option<Snapshot>> {
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
pub(super) fn insert_event(c: &Connection, ev: &DetectedEvent, now_s: i64) -> StoreResult<bool> {
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
    let mask = q.type_mask();
    let (from, to) = q.unix_bounds();
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
    Ok(newest_first(out))
}

pub(super) async fn prune_events(store: &SqliteStore, before: OffsetDateTime) -> StoreResult<u64> {
    let cutoff = before.unix_timestamp();
    let mut total = 0;
    loop {
        let n = store
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
        ingest_snapshots(c, vec![s].into(), opts).unwrap()
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
