//! The store's own rules, shared by both backends: what an attempt outcome does to a
//! notification and its webhook, where pages end, how stored values map back to the model.
//! Backends call these and keep only their SQL and row access; nothing here touches a database.

use crate::model::*;
use crate::{StoreError, StoreResult};
use domain::{EventType, ProspectId};
use time::OffsetDateTime;

/// [`PARKED`] as SQL text, for statements that compare with it literally (a literal keeps the
/// claim index's range plain to the planner): `concat!("… = ", parked_sql!())`.
macro_rules! parked_sql {
    () => {
        "9223372036854775807"
    };
}
pub(crate) use parked_sql;

/// The `job_state` row where the anniversary scanner remembers how far it got (the stored
/// value is the `until` date of its last pass).
pub(crate) const SCAN_JOB: &str = "anniversary_scan";
/// Candidates the scanner settles per page (and per transaction).
pub(crate) const SCAN_PAGE: usize = 2000;

/// The scanner's window, from the stored `until` of its last pass (`YYYY-MM-DD`, if any), and
/// the report it starts; `None` when there is nothing to scan (the report is then final).
pub(crate) fn scan_start(
    last_until: Option<&str>,
    opts: &IngestOptions,
) -> (Option<domain::detect::AnniversaryWindow>, ScanReport) {
    let last = last_until.and_then(domain::snapshot::parse_date);
    let window =
        domain::detect::AnniversaryWindow::since(last, opts.now, opts.anniversary_lead_days);
    let report = ScanReport {
        after: Some(window.after),
        until: Some(window.until),
        ..Default::default()
    };
    ((!window.is_empty()).then_some(window), report)
}

/// `t` as whole seconds since the Unix epoch: the form of the `created_at`/`updated_at`
/// bookkeeping columns of tenants, partners, keys and enrollments.
pub(crate) fn unix_seconds(t: time::OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// The instant of a bookkeeping column written by [`unix_seconds`] (clamped into the supported
/// range, so a corrupt value reads as a boundary instead of failing the whole listing).
pub(crate) fn from_unix_seconds(s: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(s)
        .map(domain::instant::clamp)
        .unwrap_or(if s < 0 {
            domain::instant::EARLIEST
        } else {
            domain::instant::LATEST
        })
}

/// Rows fetched as `limit + 1` (keyed by their row id) → one page: the extra row only says
/// that another page follows, from the last returned id.
pub(crate) fn paginate<T>(mut rows: Vec<(i64, T)>, limit: Option<u32>) -> (Vec<T>, Option<Cursor>) {
    let next_cursor = match limit {
        Some(l) if rows.len() > l as usize => {
            rows.truncate(l as usize);
            rows.last().map(|(id, _)| Cursor(*id))
        }
        _ => None,
    };
    (rows.into_iter().map(|(_, t)| t).collect(), next_cursor)
}

pub(crate) fn enrollment_page(rows: Vec<(i64, Enrollment)>, limit: Option<u32>) -> EnrollmentPage {
    let (enrollments, next_cursor) = paginate(rows, limit);
    EnrollmentPage {
        enrollments,
        next_cursor,
    }
}

pub(crate) fn delivery_page(rows: Vec<(i64, DeliveryInfo)>, limit: u32) -> DeliveryPage {
    let (deliveries, next_cursor) = paginate(rows, Some(limit));
    DeliveryPage {
        deliveries,
        next_cursor,
    }
}

/// The prospect rows an enrollment update removes and adds (`current` as stored in its row),
/// each sorted by id, so only the difference is written.
pub(crate) fn prospect_diff(
    current: &[ProspectId],
    wanted: &[ProspectId],
) -> (Vec<ProspectId>, Vec<ProspectId>) {
    let mut cur = current.to_vec();
    cur.sort_unstable();
    cur.dedup();
    let mut want = wanted.to_vec();
    want.sort_unstable();
    want.dedup();
    let gone = cur
        .iter()
        .filter(|p| want.binary_search(p).is_err())
        .copied()
        .collect();
    let added = want
        .iter()
        .filter(|p| cur.binary_search(p).is_err())
        .copied()
        .collect();
    (gone, added)
}

/// What an attempt's outcome does to its notification (when the attempt still holds the
/// lease) and to its webhook's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AttemptEffect {
    pub status: DeliveryStatus,
    /// The new `next_attempt_at`; `None` keeps the stored one.
    pub next_attempt_at: Option<i64>,
    pub health: Health,
    /// Whether the scope's waiting notifications are parked afterwards if the webhook is (now)
    /// disabled.
    pub park_if_disabled: bool,
}

/// The webhook-health update of an attempt (only for the webhook generation it was sent to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// Delivered: the webhook is no longer failing.
    Recovered,
    /// Disabled at once with this reason (410 Gone).
    Disable(&'static str),
    /// Failing since the first failure of the streak (kept); disabled with
    /// [`FAILING_REASON`] once the streak lasts `disable_after_ms`.
    Failing,
}

pub(crate) const GONE_REASON: &str = "receiver answered 410 Gone";
pub(crate) const FAILING_REASON: &str = "failing continuously";

impl AttemptEffect {
    /// A 410 leaves the notification pending (due at once): it flows again once the partner
    /// re-registers the webhook, which is disabled meanwhile.
    pub(crate) fn of(outcome: AttemptOutcome, attempted_at: i64) -> Self {
        let (status, next_attempt_at, health) = match outcome {
            AttemptOutcome::Delivered => (DeliveryStatus::Delivered, None, Health::Recovered),
            AttemptOutcome::RetryAt(t) => (DeliveryStatus::Pending, Some(t), Health::Failing),
            AttemptOutcome::GiveUp => (DeliveryStatus::Failed, None, Health::Failing),
            AttemptOutcome::Gone => (
                DeliveryStatus::Pending,
                Some(attempted_at),
                Health::Disable(GONE_REASON),
            ),
        };
        AttemptEffect {
            status,
            next_attempt_at,
            health,
            park_if_disabled: outcome != AttemptOutcome::Delivered,
        }
    }
}

/// The `next_attempt_at` a delivery shows: only a pending, unparked one has one; while a lease
/// holds it (claims leave the due time as it was, D98), not before the lease ends.
pub(crate) fn shown_next_attempt(
    status: DeliveryStatus,
    stored: Option<i64>,
    lease_until: Option<i64>,
) -> Option<i64> {
    stored
        .filter(|t| status == DeliveryStatus::Pending && *t != PARKED)
        .map(|t| lease_until.map_or(t, |l| t.max(l)))
}

/// A stored notification payload as JSON (`null` if a row holds something unreadable: the
/// outbox view is for operators and tests, it must not fail on one row).
pub(crate) fn payload_json(stored: &str) -> serde_json::Value {
    serde_json::from_str(stored).unwrap_or(serde_json::Value::Null)
}

/// The events API's order: newest first, and of events at the same second the one stored last
/// first. Rows come with their storage id (the insertion order) in whatever order the backend
/// read them; sorting ~120 rows here costs less than the database's sort, which copies each row.
pub(crate) fn newest_first(mut rows: Vec<(i64, StoredEvent)>) -> Vec<StoredEvent> {
    rows.sort_unstable_by_key(|(id, e)| std::cmp::Reverse((e.event_time, *id)));
    rows.into_iter().map(|(_, e)| e).collect()
}

/// An events row (`event_type` as its bit, `event_time` in unix seconds, `data` as JSON text).
pub(crate) fn stored_event(
    event_id: String,
    prospect_id: ProspectId,
    bit: i64,
    event_time: i64,
    data: String,
) -> StoreResult<StoredEvent> {
    Ok(StoredEvent {
        event_id,
        prospect_id,
        event_type: EventType::from_bit(bit)
            .ok_or_else(|| StoreError::internal(format!("event type bit {bit}")))?,
        event_time: OffsetDateTime::from_unix_timestamp(event_time)
            .map_err(|e| StoreError::internal(format!("event time: {e}")))?,
        data: serde_json::value::RawValue::from_string(data)
            .map_err(|e| StoreError::internal(format!("event data: {e}")))?,
    })
}

/// A prospect id read back from a BLOB/BYTEA column.
pub(crate) fn stored_prospect_id(raw: &[u8], table: &str) -> StoreResult<ProspectId> {
    ProspectId::from_bytes(raw)
        .ok_or_else(|| StoreError::internal(format!("malformed prospect id in {table}")))
}

impl IngestCounts {
    /// Counts one applied snapshot.
    pub(crate) fn tally(&mut self, t: domain::detect::Tally) {
        use domain::detect::Tally;
        match t {
            Tally::Baseline => self.baselines += 1,
            Tally::Unchanged => self.unchanged += 1,
            Tally::Changed => self.changed += 1,
        }
    }
}

/// Seconds in a UTC day: the stats backends bucket a notification's `created_at` (unix
/// seconds) by `created_at / DAY_SECS`.
pub(crate) const DAY_SECS: i64 = 86_400;

/// The raw columns of a stats query, as both backends return them.
pub(crate) struct StatsRow {
    pub attempts: i64,
    pub succeeded: i64,
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub pending: i64,
    /// `created_at` of the oldest pending notification (unix seconds).
    pub oldest_pending_secs: Option<i64>,
}

/// A stats row as [`WebhookStats`] (counts never negative, latencies as durations).
pub(crate) fn webhook_stats(r: StatsRow) -> WebhookStats {
    let millis = |v: Option<i64>| v.map(|ms| std::time::Duration::from_millis(ms.max(0) as u64));
    WebhookStats {
        attempts: r.attempts.max(0) as u64,
        succeeded: r.succeeded.max(0) as u64,
        latency_p50: millis(r.p50_ms),
        latency_p99: millis(r.p99_ms),
        pending: r.pending.max(0) as u64,
        oldest_pending_at: r.oldest_pending_secs.map(from_unix_seconds),
    }
}

/// One `(day index, event name, count)` group of a daily query as a [`DailyCount`].
pub(crate) fn daily_count(day_index: i64, event_name: String, count: i64) -> DailyCount {
    DailyCount {
        day: from_unix_seconds(day_index.saturating_mul(DAY_SECS)).date(),
        event_name,
        count: count.max(0) as u64,
    }
}

/// A stored `headers` column (a JSON array of strings; anything else reads as none).
pub(crate) fn stored_headers(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_default()
}

/// The `headers` column for `headers`.
pub(crate) fn headers_column(headers: &[String]) -> String {
    serde_json::Value::from(headers.to_vec()).to_string()
}

/// A stored `payload_format` (the API validated it; an unknown one falls back to `json`).
pub(crate) fn stored_payload_format(stored: &str) -> PayloadFormat {
    PayloadFormat::parse(stored).unwrap_or_default()
}

/// A stored unix-milliseconds column as a time (None when NULL or out of range).
pub(crate) fn stored_millis(ms: Option<i64>) -> Option<OffsetDateTime> {
    ms.and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
}

/// The previous secret a delivery at `now_ms` still signs `webhook-signature` with: the one a
/// rotation replaced, until its grace ends.
pub(crate) fn live_previous_secret(
    previous: Option<String>,
    until: Option<OffsetDateTime>,
    now_ms: i64,
) -> Option<String> {
    let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000).ok()?;
    previous.filter(|_| rotation_grace_lasts(until, now))
}

/// When a secret replaced at `now` stops signing: `now + grace`, in unix milliseconds.
pub(crate) fn rotation_grace_end(now: OffsetDateTime, grace: std::time::Duration) -> i64 {
    domain::clock::unix_millis(now).saturating_add(grace.as_millis().min(i64::MAX as u128) as i64)
}

/// An enrollment after a v2 PATCH: the fields given replace the stored ones.
pub(crate) fn patched_spec(stored: EnrollmentSpec, patch: &EnrollmentPatch) -> EnrollmentSpec {
    EnrollmentSpec {
        enrollment_key: patch
            .enrollment_key
            .clone()
            .unwrap_or(stored.enrollment_key),
        event_types: patch.event_types.clone().unwrap_or(stored.event_types),
        prospect_ids: patch.prospect_ids.clone().unwrap_or(stored.prospect_ids),
    }
}

/// Whether an enrollment may go to a webhook whose row reads `state` (`None`: no such row,
/// else its `enabled`): a v2 webhook must exist (`NotFound`) and be active
/// ([`WEBHOOK_NOT_ACTIVE`]); the legacy webhook is always a valid target (its notifications
/// wait for a registration, as in v1).
pub(crate) fn target_verdict(webhook_id: &str, state: Option<bool>) -> StoreResult<()> {
    if webhook_id == LEGACY_WEBHOOK_ID {
        return Ok(());
    }
    match state {
        None => Err(StoreError::NotFound),
        Some(false) => Err(StoreError::Conflict(WEBHOOK_NOT_ACTIVE.into())),
        Some(true) => Ok(()),
    }
}

/// Attempt records as the stores keep them: a NUL in the receiver's body or in the error text
/// becomes U+FFFD (PostgreSQL's TEXT cannot hold NUL — one such record would fail its whole
/// batch —, and both backends store the same). Records without one are left as they are.
pub(crate) fn storable_records(mut records: Vec<AttemptRecord>) -> Vec<AttemptRecord> {
    fn without_nul(text: &mut String) {
        if text.contains('\0') {
            *text = text.replace('\0', "\u{FFFD}");
        }
    }
    for r in &mut records {
        without_nul(&mut r.response_body);
        if let Some(e) = &mut r.error {
            without_nul(e);
        }
    }
    records
}

/// The text stored as `disabled_reason` when a client disables a v2 webhook.
pub(crate) const CLIENT_DISABLED_REASON: &str = "disabled by the client";
/// The `last_error` of pending notifications of a deleted v2 webhook (they fail: the webhook
/// id never comes back).
pub(crate) const WEBHOOK_DELETED_ERROR: &str = "webhook deleted";

/// PostgreSQL ingestion's lock buckets (D92): prospects are spread over this many, and an
/// ingestion transaction holds the advisory locks of the buckets its prospects fall in.
pub(crate) const LOCK_BUCKETS: u32 = 128;

/// The lock bucket of a prospect (FNV-1a of its id, modulo [`LOCK_BUCKETS`]): the same in every
/// process and version that shares the database.
pub(crate) fn lock_bucket(p: &ProspectId) -> u32 {
    let h = p.as_bytes().iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    h % LOCK_BUCKETS
}

/// The lanes a batch is applied in, each in a transaction of its own at the same time (D93): a
/// prospect's lane is its lock bucket modulo `lanes`, so every snapshot of a prospect is in
/// one lane, in batch order (a grouped batch gives lanes in prospect order), and two lanes
/// never hold the same bucket. Each snapshot travels with its content hash, as
/// [`crate::SnapshotBatch::grouped`] gives them. Empty lanes are left out (`lanes` is at least 1
/// and at most [`LOCK_BUCKETS`] in effect).
pub(crate) fn ingest_lanes<'a>(
    batch: impl IntoIterator<Item = (&'a domain::snapshot::Snapshot, i64)>,
    lanes: usize,
) -> Vec<Vec<(&'a domain::snapshot::Snapshot, i64)>> {
    let n = lanes.clamp(1, LOCK_BUCKETS as usize);
    let mut out: Vec<Vec<(&domain::snapshot::Snapshot, i64)>> = vec![Vec::new(); n];
    for (s, h) in batch {
        out[lock_bucket(&s.prospect_id) as usize % n].push((s, h));
    }
    out.retain(|lane| !lane.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane_snapshot(p: u32, n: u32) -> domain::snapshot::Snapshot {
        domain::snapshot::Snapshot {
            prospect_id: ProspectId::parse(&format!("{p:040x}")).unwrap(),
            observed_at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i64::from(n)),
            full_name: None,
            linkedin_url: None,
            company_id: None,
            company_name: None,
            job_title: None,
            job_start_date: None,
        }
    }

    #[test]
    fn lanes_keep_each_prospect_whole_and_in_order() {
        // 300 prospects, each observed 3 times, interleaved (as a file's rounds are).
        let batch: Vec<_> = (0..3)
            .flat_map(|n| (0..300).map(move |p| lane_snapshot(p, n)))
            .collect();
        let hashes: Vec<i64> = (0..batch.len() as i64).collect();
        for lanes in [1, 2, 3, 16, 500] {
            let split = ingest_lanes(batch.iter().zip(hashes.iter().copied()), lanes);
            assert_eq!(split.len(), lanes.min(LOCK_BUCKETS as usize));
            assert_eq!(split.iter().map(Vec::len).sum::<usize>(), batch.len());
            let mut lane_of = std::collections::HashMap::new();
            for (i, lane) in split.iter().enumerate() {
                let mut buckets = std::collections::HashSet::new();
                for &(s, h) in lane {
                    // each snapshot with its own hash
                    assert!(std::ptr::eq(s, &batch[h as usize]));
                    // one lane per prospect, and per bucket
                    assert_eq!(*lane_of.entry(s.prospect_id).or_insert(i), i);
                    buckets.insert(lock_bucket(&s.prospect_id));
                }
                for other in &split[i + 1..] {
                    assert!(other
                        .iter()
                        .all(|(s, _)| !buckets.contains(&lock_bucket(&s.prospect_id))));
                }
                // a lane is the batch's order restricted to its prospects
                let expect: Vec<_> = batch
                    .iter()
                    .filter(|s| lane_of.get(&s.prospect_id) == Some(&i))
                    .collect();
                let got: Vec<_> = lane.iter().map(|&(s, _)| s).collect();
                assert_eq!(got, expect);
            }
        }
        assert!(ingest_lanes([], 2).is_empty());
        // a prospect's bucket is stable (stored databases depend on it)
        assert_eq!(
            lock_bucket(&ProspectId([0; 20])),
            0xb9fe_e455_u32 % LOCK_BUCKETS
        );
    }

    #[test]
    fn parked_sql_is_parked() {
        assert_eq!(parked_sql!().parse::<i64>(), Ok(PARKED));
    }

    #[test]
    fn scans_start_where_the_last_one_stopped() {
        let opts = IngestOptions {
            now: time::macros::datetime!(2025-03-10 12:00 UTC),
            anniversary_lead_days: 7,
            event_retention: None,
        };
        let (w, r) = scan_start(None, &opts);
        let w = w.expect("a first scan has a window");
        assert_eq!((r.after, r.until), (Some(w.after), Some(w.until)));
        assert_eq!(w.after, time::macros::date!(2025 - 03 - 09));
        let (w, r) = scan_start(Some("2025-01-01"), &opts);
        assert_eq!(
            w.map(|w| w.after),
            Some(time::macros::date!(2025 - 01 - 01))
        );
        assert_eq!(r.candidates, 0);
        let (w, r) = scan_start(Some("2025-03-17"), &opts);
        assert!(w.is_none(), "already scanned up to today + lead days");
        assert_eq!(r.until, Some(time::macros::date!(2025 - 03 - 17)));
    }

    #[test]
    fn pages_end_at_the_limit() {
        let rows = |n: i64| (1..=n).map(|i| (i * 10, i)).collect::<Vec<_>>();
        assert_eq!(paginate(rows(3), Some(2)), (vec![1, 2], Some(Cursor(20))));
        assert_eq!(paginate(rows(2), Some(2)), (vec![1, 2], None));
        assert_eq!(paginate(rows(3), None), (vec![1, 2, 3], None));
    }

    #[test]
    fn prospect_diff_touches_only_the_difference() {
        let p = |b: u8| ProspectId([b; 20]);
        let (gone, added) = prospect_diff(&[p(3), p(1), p(2)], &[p(4), p(2), p(2), p(1)]);
        assert_eq!((gone, added), (vec![p(3)], vec![p(4)]));
    }

    #[test]
    fn attempt_effects() {
        let e = AttemptEffect::of(AttemptOutcome::Gone, 7);
        assert_eq!(
            (e.status, e.next_attempt_at, e.health, e.park_if_disabled),
            (
                DeliveryStatus::Pending,
                Some(7),
                Health::Disable(GONE_REASON),
                true
            )
        );
        let e = AttemptEffect::of(AttemptOutcome::Delivered, 7);
        assert_eq!(
            (e.status, e.next_attempt_at, e.park_if_disabled),
            (DeliveryStatus::Delivered, None, false)
        );
        assert_eq!(
            AttemptEffect::of(AttemptOutcome::GiveUp, 7).status,
            DeliveryStatus::Failed
        );
        assert_eq!(
            AttemptEffect::of(AttemptOutcome::RetryAt(9), 7).next_attempt_at,
            Some(9)
        );
        assert_eq!(
            shown_next_attempt(DeliveryStatus::Pending, Some(PARKED), None),
            None
        );
        assert_eq!(
            shown_next_attempt(DeliveryStatus::Failed, Some(5), None),
            None
        );
        assert_eq!(
            shown_next_attempt(DeliveryStatus::Pending, Some(5), None),
            Some(5)
        );
        // Claimed: due since 5, leased until 9.
        assert_eq!(
            shown_next_attempt(DeliveryStatus::Pending, Some(5), Some(9)),
            Some(9)
        );
    }
}
