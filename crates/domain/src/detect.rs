//! Event detection (SPEC §3): pure functions, no I/O and no clock — every time is passed in.
//!
//! # Change detection (`detect_changes`)
//! Snapshots of one prospect are totally ordered by `(observed_at, fingerprint)`; the current
//! state is always the greatest snapshot seen so far, so ingesting any permutation of a
//! prospect's snapshots ends in the same current state.
//! * no current state → [`Outcome::Baseline`]: becomes current, no event;
//! * same fingerprint as the current state (identical content, `observed_at` included) →
//!   [`Outcome::Unchanged`]: not current (it already is), no event;
//! * `observed_at` earlier than the current state's, or equal with a smaller fingerprint (the
//!   same-instant tie-break) → [`Outcome::Older`]: not current, no event;
//! * otherwise → [`Outcome::Changed`]: becomes current; events are computed against the previous
//!   current state and may be empty (e.g. only `observed_at` advanced, or only casing changed).
//!
//! Company comparison: by `company_id` when both sides have one; otherwise by normalized
//! `company_name` when both sides have one; otherwise the comparison is unknown and no company
//! event fires (a side with only an id against a side with only a name is unknown too).
//! Role comparison: normalized `job_title`, both sides known. Both events can fire on one move.
//! The state is never merged: a snapshot lacking company fields still becomes current.
//!
//! Change `event_time`: the new `job_start_date` (midnight UTC) when present and its date is not
//! before the **UTC date** of the previous state's `observed_at` (a job starting on the day of
//! the last observation counts as new), else the new `observed_at`. A start date in the future is
//! kept as is.
//!
//! # Anniversaries (`anniversaries`)
//! Every anniversary `D` of the current `job_start_date` with `after < D <= until` and years ≥ 1;
//! a 29 February start has its anniversary on 28 February in non-leap years. The caller chooses
//! the window (e.g. `after` = last scan's `until`, `until` = today + lead days), so a service down
//! for years fires each missed anniversary exactly once, and ids make re-scans idempotent.
//!
//! # Event ids
//! [`event_id`]: first 32 hex of SHA-256 over length-prefixed parts (prospect id hex, event name,
//! facts...). Change events: facts = new `observed_at` (RFC 3339 UTC), previous compared value,
//! new compared value (company: `id:<hex>` or `name:<normalized>`; role: normalized title).
//! Anniversaries: facts = `job_start_date` (`YYYY-MM-DD`) and the anniversary year.

use crate::ids::{EventType, ProspectId};
use crate::snapshot::{format_date, format_timestamp, normalize, Snapshot};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::{Date, Duration, Month, OffsetDateTime};

/// An event produced by detection, ready to be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectedEvent {
    /// 32 lowercase hex characters, deterministic.
    pub event_id: String,
    pub event_type: EventType,
    /// UTC.
    pub event_time: OffsetDateTime,
    pub prospect_id: ProspectId,
    /// JSON object, keys in SPEC order, starting with `event_name`.
    pub data: Value,
}

/// What a new snapshot is relative to the prospect's current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// First snapshot of the prospect.
    Baseline,
    /// Older than the current state (or lost the same-`observed_at` tie-break).
    Older,
    /// Identical to the current state.
    Unchanged,
    /// Became the new current state (may or may not carry events).
    Changed,
}

/// Result of [`detect_changes`].
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub outcome: Outcome,
    /// Whether the new snapshot replaces the current state (Baseline or Changed).
    pub becomes_current: bool,
    /// Change events (role first, then company), empty unless `outcome == Changed`.
    pub events: Vec<DetectedEvent>,
}

/// Compares a new snapshot with the prospect's current state (see the module docs).
/// `current` and `new` are expected to belong to the same prospect; events use `new.prospect_id`.
pub fn detect_changes(current: Option<&Snapshot>, new: &Snapshot) -> Detection {
    let Some(cur) = current else {
        return Detection {
            outcome: Outcome::Baseline,
            becomes_current: true,
            events: vec![],
        };
    };
    // The fingerprint (a SHA-256) is only needed for the same-instant tie-break; equal
    // fingerprints mean equal content, so the common cases compare fields directly.
    let not_current = |outcome| Detection {
        outcome,
        becomes_current: false,
        events: vec![],
    };
    if new.observed_at < cur.observed_at {
        return not_current(Outcome::Older);
    }
    if new.observed_at == cur.observed_at {
        if new == cur {
            return not_current(Outcome::Unchanged);
        }
        if new.fingerprint() < cur.fingerprint() {
            return not_current(Outcome::Older);
        }
    }

    // Compared values are formatted (normalized, prefixed) only when the stored fields differ:
    // a move that changes neither (most moves of a feed) allocates nothing here.
    let moved: Vec<(EventType, String, String)> = [
        (EventType::ChangedRole, role_change(cur, new)),
        (EventType::ChangedCompany, company_change(cur, new)),
    ]
    .into_iter()
    .filter_map(|(t, change)| change.map(|(a, b)| (t, a, b)))
    .collect();
    let events = if moved.is_empty() {
        Vec::new()
    } else {
        let event_time = change_event_time(cur, new);
        let observed = format_timestamp(new.observed_at);
        moved
            .iter()
            .map(|(t, a, b)| change_event(*t, cur, new, event_time, &observed, a, b))
            .collect()
    };
    Detection {
        outcome: Outcome::Changed,
        becomes_current: true,
        events,
    }
}

/// The previous and new compared titles (normalized) when the role changed: both known and
/// unequal once normalized.
fn role_change(cur: &Snapshot, new: &Snapshot) -> Option<(String, String)> {
    let (a, b) = (cur.job_title.as_ref()?, new.job_title.as_ref()?);
    if a == b {
        return None;
    }
    let (na, nb) = (normalize(a), normalize(b));
    (na != nb).then_some((na, nb))
}

/// The previous and new company keys ([`company_key`]) when the company changed: both known
/// and unequal. Fields equal as stored give equal keys, so those are not formatted.
fn company_change(cur: &Snapshot, new: &Snapshot) -> Option<(String, String)> {
    let same = match (&cur.company_id, &new.company_id) {
        (Some(x), Some(y)) => x == y,
        _ => cur.company_name == new.company_name,
    };
    if same {
        return None;
    }
    let (a, b) = (company_key(cur, new)?, company_key(new, cur)?);
    (a != b).then_some((a, b))
}

/// The value of `s` used to compare companies with `other`: the id when both have one, else the
/// normalized name when both have one, else unknown.
fn company_key(s: &Snapshot, other: &Snapshot) -> Option<String> {
    if let (Some(id), Some(_)) = (&s.company_id, &other.company_id) {
        return Some(format!("id:{id}"));
    }
    match (&s.company_name, &other.company_name) {
        (Some(n), Some(_)) => Some(format!("name:{}", normalize(n))),
        _ => None,
    }
}

fn change_event_time(prev: &Snapshot, new: &Snapshot) -> OffsetDateTime {
    match new.job_start_date {
        Some(d) if d >= prev.observed_at.date() => d.midnight().assume_utc(),
        _ => new.observed_at,
    }
}

fn opt(v: &Option<String>) -> Value {
    v.clone().map_or(Value::Null, Value::String)
}

fn change_event(
    t: EventType,
    prev: &Snapshot,
    new: &Snapshot,
    event_time: OffsetDateTime,
    observed: &str,
    prev_key: &str,
    new_key: &str,
) -> DetectedEvent {
    let mut m = Map::new();
    m.insert("event_name".into(), Value::String(t.as_str().into()));
    m.insert("current_company_name".into(), opt(&new.company_name));
    m.insert("current_company_id".into(), opt(&new.company_id));
    m.insert("current_job_title".into(), opt(&new.job_title));
    m.insert("previous_company_name".into(), opt(&prev.company_name));
    m.insert("previous_company_id".into(), opt(&prev.company_id));
    m.insert("previous_job_title".into(), opt(&prev.job_title));
    DetectedEvent {
        event_id: event_id(&new.prospect_id, t, &[observed, prev_key, new_key]),
        event_type: t,
        event_time,
        prospect_id: new.prospect_id,
        data: Value::Object(m),
    }
}

/// The `years`-th anniversary of `start` (29 Feb → 28 Feb in non-leap years); `None` when the
/// year is out of range.
pub fn anniversary_date(start: Date, years: i32) -> Option<Date> {
    let y = start.year().checked_add(years)?;
    Date::from_calendar_date(y, start.month(), start.day())
        .ok()
        .or_else(|| {
            (start.month() == Month::February && start.day() == 29)
                .then(|| Date::from_calendar_date(y, Month::February, 28).ok())
                .flatten()
        })
}

/// The first anniversary (years ≥ 1) of `start` strictly after `after`, if representable.
pub fn next_anniversary(start: Date, after: Date) -> Option<Date> {
    let first = (after.year() - start.year()).max(1);
    (first..=first + 1).find_map(|n| anniversary_date(start, n).filter(|d| *d > after))
}

/// Anniversaries of the current job whose date `D` satisfies `after < D <= until` (years ≥ 1),
/// in chronological order. Empty without a `job_start_date` or when `until <= after`.
pub fn anniversaries(state: &Snapshot, after: Date, until: Date) -> Vec<DetectedEvent> {
    let Some(start) = state.job_start_date else {
        return vec![];
    };
    if until <= after {
        return vec![];
    }
    let t = EventType::JobStartAnniversary;
    let start_s = format_date(start);
    let first = (after.year() - start.year()).max(1);
    let last = until.year() - start.year();
    let mut out = Vec::new();
    for n in first..=last {
        let Some(d) = anniversary_date(start, n) else {
            continue;
        };
        if d <= after || d > until {
            continue;
        }
        let date_s = format_date(d);
        let mut m = Map::new();
        m.insert("event_name".into(), Value::String(t.as_str().into()));
        m.insert("full_name".into(), opt(&state.full_name));
        m.insert("company_name".into(), opt(&state.company_name));
        m.insert("years_at_company".into(), Value::from(n));
        m.insert("job_title".into(), opt(&state.job_title));
        m.insert("job_anniversary_date".into(), Value::String(date_s));
        m.insert("linkedin_url".into(), opt(&state.linkedin_url));
        out.push(DetectedEvent {
            event_id: event_id(&state.prospect_id, t, &[&start_s, &d.year().to_string()]),
            event_type: t,
            event_time: d.midnight().assume_utc(),
            prospect_id: state.prospect_id,
            data: Value::Object(m),
        });
    }
    out
}

/// First 32 hex of SHA-256 over the prospect id (hex), the event name and the facts, each part
/// prefixed by its length (u64 big-endian) so that no two part lists collide.
pub fn event_id(prospect: &ProspectId, event_type: EventType, facts: &[&str]) -> String {
    let mut h = Sha256::new();
    let pid = prospect.to_string();
    for part in [pid.as_str(), event_type.as_str()]
        .into_iter()
        .chain(facts.iter().copied())
    {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// The anniversaries a pass may fire: those dated in `(after, until]`.
///
/// Ingestion checks [`AnniversaryWindow::at_ingestion`] (due today or within the lead days);
/// the scanner checks [`AnniversaryWindow::since`] (from where its last pass stopped), so each
/// anniversary fires once however long the service was down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnniversaryWindow {
    /// Exclusive.
    pub after: Date,
    /// Inclusive.
    pub until: Date,
}

impl AnniversaryWindow {
    /// The window checked when a snapshot changes a prospect's start date: due today (UTC) or
    /// within `lead_days`.
    pub fn at_ingestion(now: OffsetDateTime, lead_days: u32) -> Self {
        let today = now.date();
        AnniversaryWindow {
            after: today - Duration::days(1),
            until: today + Duration::days(i64::from(lead_days)),
        }
    }

    /// The scanner's window: from the `until` of its last pass (or, on the first pass, from
    /// today) to today plus `lead_days`. Empty when the last pass already went that far.
    pub fn since(last_until: Option<Date>, now: OffsetDateTime, lead_days: u32) -> Self {
        let AnniversaryWindow { after, until } = Self::at_ingestion(now, lead_days);
        AnniversaryWindow {
            after: last_until.unwrap_or(after),
            until,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.until <= self.after
    }

    /// The anniversaries of `state`'s current job in this window (see [`anniversaries`]).
    pub fn due(&self, state: &Snapshot) -> Vec<DetectedEvent> {
        anniversaries(state, self.after, self.until)
    }

    /// Which job-start month-days can have an anniversary in this window: the filter each
    /// backend turns into its own SQL over the stored [`month_day`] of the start date.
    pub fn month_days(&self) -> MonthDayFilter {
        if (self.until - self.after).whole_days() >= 366 {
            return MonthDayFilter::Any;
        }
        let first = self.after + Duration::days(1);
        let (from, to) = (month_day(first), month_day(self.until));
        if first.year() != self.until.year() {
            MonthDayFilter::Wrapping { from, to }
        } else {
            MonthDayFilter::Between { from, to }
        }
    }
}

/// The month-day (`month * 100 + day`, e.g. 229 for 29 February) stored beside a job start
/// date so that anniversary scans filter without parsing dates.
pub fn month_day(d: Date) -> i32 {
    d.month() as i32 * 100 + d.day() as i32
}

/// [`month_day`] of 29 February: such a start has its anniversary on 28 February in non-leap
/// years, so every bounded filter also accepts it (the candidates are then checked exactly).
pub const LEAP_DAY: i32 = 229;

/// The job-start month-days a scan must consider (a superset: candidates are checked exactly
/// with [`AnniversaryWindow::due`]). Bounded variants also accept [`LEAP_DAY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonthDayFilter {
    /// A year or more: every prospect with a start date.
    Any,
    /// `from <= md <= to`, within one calendar year.
    Between { from: i32, to: i32 },
    /// Across New Year: `md >= from` or `md <= to`.
    Wrapping { from: i32, to: i32 },
}

impl MonthDayFilter {
    /// The two bounds as query parameters (unused by `Any`, whose SQL still binds them).
    pub fn bounds(&self) -> (i32, i32) {
        match *self {
            MonthDayFilter::Any => (0, 0),
            MonthDayFilter::Between { from, to } | MonthDayFilter::Wrapping { from, to } => {
                (from, to)
            }
        }
    }
}

/// How a snapshot is counted in an ingestion report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    /// The prospect's first snapshot.
    Baseline,
    /// Older, identical, or newer without any event.
    Unchanged,
    /// Became current with at least one event.
    Changed,
}

/// Everything one snapshot does to a prospect (the per-snapshot ingestion decision, the same
/// for every backend): result of [`apply`].
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub outcome: Outcome,
    /// Whether the snapshot replaces the stored state.
    pub becomes_current: bool,
    /// Change events, then the anniversaries due in the window when the start date changed.
    pub events: Vec<DetectedEvent>,
    pub tally: Tally,
}

/// Applies a snapshot to the prospect's `current` state: change detection, then (when the
/// snapshot becomes current with a new job start date) the anniversaries due in `window`.
pub fn apply(current: Option<&Snapshot>, snap: &Snapshot, window: AnniversaryWindow) -> Applied {
    let Detection {
        outcome,
        becomes_current,
        mut events,
    } = detect_changes(current, snap);
    if becomes_current && current.map(|c| c.job_start_date) != Some(snap.job_start_date) {
        events.extend(window.due(snap));
    }
    let tally = match (outcome, events.is_empty()) {
        (Outcome::Baseline, _) => Tally::Baseline,
        (_, true) => Tally::Unchanged,
        (_, false) => Tally::Changed,
    };
    Applied {
        outcome,
        becomes_current,
        events,
        tally,
    }
}
