//! The outbox for PostgreSQL: notifications queued, claimed (`FOR UPDATE SKIP LOCKED` and a
//! lease, so any number of replicas' workers share it), attempts recorded, the delivery log,
//! retries and replays. What an attempt does next is `rules::AttemptEffect`.

use super::idempotency::fence;
use super::webhooks::{lock_for_queuing, lock_one_for_queuing, park_if_disabled};
use super::{is_retryable, pg};
use crate::model::*;
use crate::rules::{
    delivery_page, live_previous_secret, parked_sql, payload_json, shown_next_attempt,
    stored_headers, stored_millis, stored_payload_format, AttemptEffect, Health, FAILING_REASON,
};
use crate::{StoreError, StoreResult};
use deadpool_postgres::{Object, Transaction};
use domain::clock::unix_millis;
use domain::detect::DetectedEvent;
use domain::{PartnerId, TenantId};
use time::OffsetDateTime;
use tokio_postgres::Row;

/// Queues one notification per enrollment covering each of `new` (just stored events), with the
/// enrollment's key as of now, in the caller's transaction: parked when the partner has no
/// enabled webhook. Two round trips whatever the count; returns how many were queued.
pub(super) async fn queue_for_events(
    tx: &Transaction<'_>,
    new: &[&DetectedEvent],
    now: OffsetDateTime,
) -> StoreResult<u64> {
    let covering = fan_out(tx, new).await?;
    if covering.is_empty() {
        return Ok(0);
    }
    insert_notifications(tx, &covering, now).await
}

/// The fan-out: each of `new` with every enrollment covering it, in event order then
/// enrollment order.
async fn fan_out<'e>(
    tx: &Transaction<'_>,
    new: &[&'e DetectedEvent],
) -> StoreResult<Vec<(&'e DetectedEvent, CoveringEnrollment)>> {
    let pids: Vec<&[u8]> = new.iter().map(|e| &e.prospect_id.as_bytes()[..]).collect();
    let bits: Vec<i32> = new.iter().map(|e| e.event_type.bit() as i32).collect();
    let s = tx
        .prepare_cached(
            "SELECT x.o, e.tenant_id, e.partner_id, e.enrollment_id, e.enrollment_key, e.webhook_id
             FROM unnest($1::BYTEA[], $2::INTEGER[]) WITH ORDINALITY AS x(p, b, o)
             JOIN enrollment_prospects ep ON ep.prospect_id = x.p
             JOIN enrollments e ON e.id = ep.enrollment_ref
             WHERE (e.event_mask & x.b) <> 0 AND NOT e.paused
             ORDER BY x.o, e.id",
        )
        .await
        .map_err(pg)?;
    let rows = tx.query(&s, &[&pids, &bits]).await.map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| {
            let ord: i64 = r.get(0);
            let to = CoveringEnrollment {
                tenant: TenantId(r.get(1)),
                partner: PartnerId(r.get(2)),
                enrollment_id: domain::EnrollmentId(r.get(3)),
                enrollment_key: r.get(4),
                webhook_id: r.get(5),
            };
            (new[(ord - 1) as usize], to)
        })
        .collect())
}

/// Inserts one notification per (event, enrollment) of the fan-out, parked when the partner
/// has no enabled webhook. Returns how many were queued (delivery ids already known are not).
async fn insert_notifications(
    tx: &Transaction<'_>,
    covering: &[(&DetectedEvent, CoveringEnrollment)],
    now: OffsetDateTime,
) -> StoreResult<u64> {
    let now_s = now.unix_timestamp();
    let n = covering.len();
    let mut delivery: Vec<String> = Vec::with_capacity(n);
    let mut event_id: Vec<&str> = Vec::with_capacity(n);
    let mut event_name: Vec<&str> = Vec::with_capacity(n);
    let mut event_time: Vec<i64> = Vec::with_capacity(n);
    let mut tenant: Vec<&str> = Vec::with_capacity(n);
    let mut partner: Vec<&str> = Vec::with_capacity(n);
    let mut enrollment: Vec<&str> = Vec::with_capacity(n);
    let mut key: Vec<&str> = Vec::with_capacity(n);
    let mut payload: Vec<String> = Vec::with_capacity(n);
    let mut webhook: Vec<&str> = Vec::with_capacity(n);
    let targets: Vec<(&str, &str, &str)> = covering
        .iter()
        .map(|(_, to)| {
            (
                to.tenant.0.as_str(),
                to.partner.0.as_str(),
                to.webhook_id.as_str(),
            )
        })
        .collect();
    lock_for_queuing(tx, &targets).await?;
    for (ev, to) in covering {
        webhook.push(&to.webhook_id);
        payload.push(notification_payload(ev, to).to_string());
        delivery.push(delivery_id_for(&ev.event_id, &to.enrollment_id.0));
        event_id.push(&ev.event_id);
        event_name.push(ev.event_type.as_str());
        event_time.push(ev.event_time.unix_timestamp());
        tenant.push(&to.tenant.0);
        partner.push(&to.partner.0);
        enrollment.push(&to.enrollment_id.0);
        key.push(&to.enrollment_key);
    }
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let s = tx
        .prepare_cached(concat!(
            "INSERT INTO notifications (delivery_id, event_id, event_name, event_time,
                tenant_id, partner_id, enrollment_id, enrollment_key, payload, next_attempt_at,
                created_at, webhook_id)
             SELECT x.d, x.e, x.n, x.t, x.tn, x.pa, x.en, x.k, x.pl,
                CASE WHEN EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant_id = x.tn AND w.partner_id = x.pa AND w.webhook_id = x.wh AND w.enabled) THEN $10 ELSE ",
            parked_sql!(),
            " END, $11, x.wh
             FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[],
                         $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $12::TEXT[])
                  WITH ORDINALITY AS x(d, e, n, t, tn, pa, en, k, pl, wh, o)
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
                &webhook,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(queued)
}

pub(super) async fn outbox(
    c: &mut Object,
    scope: Option<&Scope>,
    limit: u32,
) -> StoreResult<Vec<OutboxRow>> {
    let cols = "delivery_id, event_id, event_name, tenant_id, partner_id, enrollment_id,
                enrollment_key, payload, status, attempts, webhook_id";
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
            webhook_id: r.get(10),
            payload: payload_json(r.get(7)),
            status: DeliveryStatus::from_code(r.get::<_, i32>(8) as i64),
            attempts: r.get::<_, i32>(9) as u32,
        })
        .collect())
}

const DELIVERY_COLS: &str = "id, delivery_id, event_id, event_name, enrollment_id, status,
    attempts, last_attempt_at, next_attempt_at, last_status_code, last_error, lease_until";

fn delivery_row(r: &Row) -> (i64, DeliveryInfo) {
    let status = DeliveryStatus::from_code(r.get::<_, i32>(5) as i64);
    (
        r.get(0),
        DeliveryInfo {
            delivery_id: r.get(1),
            event_id: r.get(2),
            event_name: r.get(3),
            enrollment_id: r.get(4),
            status,
            attempts: r.get::<_, i32>(6) as u32,
            last_attempt_at: r.get(7),
            next_attempt_at: shown_next_attempt(status, r.get(8), r.get(11)),
            last_status_code: r.get::<_, Option<i32>>(9).map(|c| c as u16),
            last_error: r.get(10),
        },
    )
}

/// The claim (see [`claim_due`]): `$1` lease end, `$2` now (unix ms), `$3` limit, `$4`–`$6`,
/// `$8` the room's tenants, partners, room and webhook ids, `$7` the room of a webhook not listed.
const CLAIM_SQL: &str = "WITH room AS (
        SELECT * FROM unnest($4::TEXT[], $5::TEXT[], $6::BIGINT[], $8::TEXT[]) AS x(t, p, n, w)),
     due AS (
        SELECT d.id, d.next_attempt_at FROM webhooks w
        CROSS JOIN LATERAL (
            SELECT n.id, n.next_attempt_at FROM notifications n
            WHERE n.tenant_id = w.tenant_id AND n.partner_id = w.partner_id
              AND n.webhook_id = w.webhook_id
              AND n.status = 0 AND n.next_attempt_at <= $2
              AND (n.lease_until IS NULL OR n.lease_until < $2)
            ORDER BY n.next_attempt_at
            LIMIT LEAST($3, COALESCE(
                (SELECT room.n FROM room WHERE room.t = w.tenant_id AND room.p = w.partner_id
                   AND room.w = w.webhook_id),
                $7))
            FOR UPDATE OF n SKIP LOCKED) d
        WHERE w.enabled
        ORDER BY d.next_attempt_at
        LIMIT $3)
     UPDATE notifications n SET lease_until = $1
     FROM webhooks w
     WHERE n.id = ANY(ARRAY(SELECT id FROM due))
       AND w.tenant_id = n.tenant_id AND w.partner_id = n.partner_id
       AND w.webhook_id = n.webhook_id
     RETURNING n.id, n.delivery_id, n.event_id, n.payload, n.cycle_attempts,
        n.tenant_id, n.partner_id, w.webhook_url, w.secret, w.generation,
        w.webhook_id, w.previous_secret, w.previous_secret_until, w.headers,
        w.payload_format";

pub(super) async fn claim_due(
    c: &mut Object,
    now: OffsetDateTime,
    lease: std::time::Duration,
    limit: u32,
    room: &ClaimRoom,
) -> StoreResult<Vec<Claimed>> {
    let (r_t, r_p, r_w, r_n) = room_columns(room);
    let lease_until = domain::clock::millis_after(now, lease);
    let (now_ms, lease_ms) = (unix_millis(now), unix_millis(lease_until));
    // One statement: each enabled webhook's oldest due rows up to its room (one range scan
    // of notifications_due_webhook each), oldest first overall; rows locked by another
    // replica's claim are skipped, not waited for. Only the lease changes (no indexed column:
    // a HOT update, D98); rows held by a lease stay in the range and are stepped over.
    // The claimed rows are then found by primary key (`= ANY` of the array of their ids, an
    // index scan whatever the estimates): joined to `due` instead, a generic plan that guessed
    // thousands of due rows hashed them against a sequential scan of the whole table (D99).
    let s = c.prepare_cached(CLAIM_SQL).await.map_err(pg)?;
    let rows = c
        .query(
            &s,
            &[
                &lease_ms,
                &now_ms,
                &i64::from(limit),
                &r_t,
                &r_p,
                &r_n,
                &i64::from(room.per_scope),
                &r_w,
            ],
        )
        .await
        .map_err(pg)?;
    let mut out: Vec<Claimed> = rows
        .iter()
        .map(|r| claimed_row(r, lease_until, now_ms))
        .collect();
    out.sort_by_key(|c| c.row);
    Ok(out)
}

/// The listed webhooks' room as columns: tenants, partners, webhook ids, room.
fn room_columns(room: &ClaimRoom) -> (Vec<&str>, Vec<&str>, Vec<&str>, Vec<i64>) {
    let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, n) in &room.scopes {
        cols.0.push(k.scope.tenant.0.as_str());
        cols.1.push(k.scope.partner.0.as_str());
        cols.2.push(k.webhook_id.as_str());
        cols.3.push(i64::from(*n));
    }
    cols
}

/// A row the claim returned (columns as in its `RETURNING`), leased until `lease_until`.
fn claimed_row(r: &Row, lease_until: OffsetDateTime, now_ms: i64) -> Claimed {
    Claimed {
        row: r.get(0),
        delivery_id: r.get(1),
        event_id: r.get(2),
        payload: r.get(3),
        cycle_attempts: r.get::<_, i32>(4) as u32,
        lease_until,
        scope: Scope {
            tenant: TenantId(r.get(5)),
            partner: PartnerId(r.get(6)),
        },
        webhook_url: r.get(7),
        secret: r.get(8),
        generation: r.get(9),
        webhook_id: r.get(10),
        previous_secret: live_previous_secret(r.get(11), stored_millis(r.get(12)), now_ms),
        headers: stored_headers(r.get(13)),
        payload_format: stored_payload_format(r.get(14)),
    }
}

/// [`crate::Store::change_leases`]: one `UPDATE … FROM unnest(…) RETURNING id` per run of
/// distinct rows (a batch normally is one), in one transaction when there are several; a
/// deadlock or serialization failure re-runs the whole batch.
pub(super) async fn change_leases(
    c: &mut Object,
    changes: &[LeaseChange],
) -> StoreResult<Vec<bool>> {
    let mut attempt = 0;
    loop {
        match change_leases_once(c, changes).await {
            Err(e) if is_retryable(&e) && attempt + 1 < TX_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

async fn change_leases_once(c: &mut Object, changes: &[LeaseChange]) -> StoreResult<Vec<bool>> {
    let parts = distinct_rows(changes.len(), |i| changes[i].row);
    let mut kept = vec![false; changes.len()];
    if let [part] = parts.as_slice() {
        mark_kept(
            &move_leases(&*c, changes, part).await?,
            part,
            changes,
            &mut kept,
        );
        return Ok(kept);
    }
    let tx = c.transaction().await.map_err(pg)?;
    for part in &parts {
        mark_kept(
            &move_leases(&tx, changes, part).await?,
            part,
            changes,
            &mut kept,
        );
    }
    tx.commit().await.map_err(pg)?;
    Ok(kept)
}

/// Moves the leases of `changes[part]` (distinct rows) still as expected; the rows moved.
async fn move_leases<C: deadpool_postgres::GenericClient>(
    c: &C,
    changes: &[LeaseChange],
    part: &[usize],
) -> StoreResult<std::collections::HashSet<i64>> {
    let s = c
        .prepare_cached(
            "UPDATE notifications n SET lease_until = x.u
             FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS x(id, e, u)
             WHERE n.id = x.id AND n.lease_until = x.e AND n.status = 0
             RETURNING n.id",
        )
        .await
        .map_err(pg)?;
    let of = || part.iter().map(|&i| &changes[i]);
    let rows = c
        .query(
            &s,
            &[
                &column(of(), |l| l.row),
                &column(of(), |l| unix_millis(l.expected)),
                &column(of(), |l| l.until.map(unix_millis)),
            ],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Marks the changes of `part` whose row `moved` holds.
fn mark_kept(
    moved: &std::collections::HashSet<i64>,
    part: &[usize],
    changes: &[LeaseChange],
    kept: &mut [bool],
) {
    for &i in part {
        kept[i] = moved.contains(&changes[i].row);
    }
}

/// Records a batch of attempts in one transaction: the attempts logged with one multi-row
/// insert, the notifications settled with one `UPDATE … FROM unnest(…)`, the webhooks that
/// recovered with one more; only failures (rare) move webhook health a statement each, in
/// order. A deadlock or serialization failure re-runs the whole batch.
pub(super) async fn record_attempts(c: &mut Object, records: &[AttemptRecord]) -> StoreResult<()> {
    let mut attempt = 0;
    loop {
        match record_attempts_once(c, records).await {
            Err(e) if is_retryable(&e) && attempt + 1 < TX_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// Times a batch of attempts is tried when the database asks for a retry.
const TX_ATTEMPTS: usize = 3;

async fn record_attempts_once(c: &mut Object, records: &[AttemptRecord]) -> StoreResult<()> {
    let tx = c.transaction().await.map_err(pg)?;
    insert_attempts(&tx, records).await?;
    let effects: Vec<AttemptEffect> = records
        .iter()
        .map(|r| AttemptEffect::of(r.outcome, r.attempted_at))
        .collect();
    for part in distinct_rows(records.len(), |i| records[i].row) {
        settle_notifications(&tx, &part, records, &effects).await?;
    }
    settle_health(&tx, records, &effects).await?;
    tx.commit().await.map_err(pg)
}

/// Splits `0..n` into runs in which no row repeats (one `UPDATE … FROM` sees each row once);
/// a batch normally is one run.
fn distinct_rows(n: usize, row: impl Fn(usize) -> i64) -> Vec<Vec<usize>> {
    let mut parts: Vec<(std::collections::HashSet<i64>, Vec<usize>)> = Vec::new();
    for i in 0..n {
        match parts.last_mut() {
            Some((seen, part)) if !seen.contains(&row(i)) => {
                seen.insert(row(i));
                part.push(i);
            }
            _ => parts.push(([row(i)].into_iter().collect(), vec![i])),
        }
    }
    parts.into_iter().map(|(_, part)| part).collect()
}

/// One array parameter of a set statement: `f` of each of `items`.
fn column<I, T>(items: impl IntoIterator<Item = I>, f: impl Fn(I) -> T) -> Vec<T> {
    items.into_iter().map(f).collect()
}

/// Logs the attempts in `delivery_attempts`, in order.
async fn insert_attempts(tx: &Transaction<'_>, records: &[AttemptRecord]) -> StoreResult<()> {
    let s = tx
        .prepare_cached(
            "INSERT INTO delivery_attempts (notification_id, attempted_at, status_code, error,
                latency_ms, response_body)
             SELECT x.n, x.at, x.code, x.err, x.lat, x.body
             FROM unnest($1::BIGINT[], $2::BIGINT[], $3::INTEGER[], $4::TEXT[], $5::BIGINT[],
                         $6::TEXT[]) WITH ORDINALITY AS x(n, at, code, err, lat, body, o)
             ORDER BY x.o",
        )
        .await
        .map_err(pg)?;
    tx.execute(
        &s,
        &[
            &column(records, |r| r.row),
            &column(records, |r| r.attempted_at),
            &column(records, |r| r.status_code.map(i32::from)),
            &column(records, |r| r.error.as_deref()),
            &column(records, |r| r.latency_ms as i64),
            &column(records, |r| r.response_body.as_str()),
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Counts each attempt on its notification and, where the attempt still holds its lease, moves
/// the notification to the state the attempt's effect says (`part`: indexes into `records`,
/// no row twice).
async fn settle_notifications(
    tx: &Transaction<'_>,
    part: &[usize],
    records: &[AttemptRecord],
    effects: &[AttemptEffect],
) -> StoreResult<()> {
    // Every attempt counts; only the lease holder moves the notification's state (the right
    // sides all see the row as it was, so each CASE tests the lease before this update).
    let s = tx
        .prepare_cached(
            "UPDATE notifications n SET attempts = n.attempts + 1,
                last_attempt_at = x.at, last_status_code = x.code, last_error = x.err,
                status = CASE WHEN n.lease_until = x.lease THEN x.status ELSE n.status END,
                cycle_attempts = CASE WHEN n.lease_until = x.lease THEN n.cycle_attempts + 1
                    ELSE n.cycle_attempts END,
                next_attempt_at = CASE WHEN n.lease_until = x.lease
                    THEN COALESCE(x.next, n.next_attempt_at) ELSE n.next_attempt_at END,
                lease_until = CASE WHEN n.lease_until = x.lease THEN NULL ELSE n.lease_until END
             FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::INTEGER[], $5::TEXT[],
                         $6::INTEGER[], $7::BIGINT[]) AS x(id, lease, at, code, err, status, next)
             WHERE n.id = x.id",
        )
        .await
        .map_err(pg)?;
    let r = || part.iter().map(|&i| &records[i]);
    let e = || part.iter().map(|&i| &effects[i]);
    tx.execute(
        &s,
        &[
            &column(r(), |r| r.row),
            &column(r(), |r| unix_millis(r.lease_until)),
            &column(r(), |r| r.attempted_at),
            &column(r(), |r| r.status_code.map(i32::from)),
            &column(r(), |r| r.error.as_deref()),
            &column(e(), |e| e.status.code() as i32),
            &column(e(), |e| e.next_attempt_at),
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Moves webhook health as each attempt says, in order: runs of recoveries are one set
/// statement (flushed before any other change, so each webhook's changes keep their order);
/// failures, disables and the parking that follows them go one by one.
async fn settle_health(
    tx: &Transaction<'_>,
    records: &[AttemptRecord],
    effects: &[AttemptEffect],
) -> StoreResult<()> {
    let mut recovered: Vec<&AttemptRecord> = Vec::new();
    for (r, effect) in records.iter().zip(effects) {
        if effect.health == Health::Recovered && !effect.park_if_disabled {
            recovered.push(r);
            continue;
        }
        recover(tx, std::mem::take(&mut recovered)).await?;
        update_health(tx, r, effect.health).await?;
        if effect.park_if_disabled {
            park_if_disabled(tx, &WebhookKey::new(&r.scope, &r.webhook_id)).await?;
        }
    }
    recover(tx, recovered).await
}

/// Clears `failing_since` of the webhook generations these attempts reached (each webhook
/// once, in a fixed order so that concurrent batches lock webhooks alike). The webhook id is
/// part of the match: every v2 webhook starts at generation 1, so (tenant, partner, generation)
/// alone would let one webhook's success clear another's failing streak.
async fn recover(tx: &Transaction<'_>, records: Vec<&AttemptRecord>) -> StoreResult<()> {
    let mut hooks: Vec<(&str, &str, &str, i64)> = column(records, |r| {
        (
            r.scope.tenant.0.as_str(),
            r.scope.partner.0.as_str(),
            r.webhook_id.as_str(),
            r.generation,
        )
    });
    hooks.sort_unstable();
    hooks.dedup();
    if hooks.is_empty() {
        return Ok(());
    }
    let s = tx
        .prepare_cached(
            "UPDATE webhooks w SET failing_since = NULL
             FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[]) AS x(t, p, id, g)
             WHERE w.tenant_id = x.t AND w.partner_id = x.p AND w.webhook_id = x.id
               AND w.generation = x.g AND w.failing_since IS NOT NULL",
        )
        .await
        .map_err(pg)?;
    tx.execute(
        &s,
        &[
            &column(&hooks, |h| h.0),
            &column(&hooks, |h| h.1),
            &column(&hooks, |h| h.2),
            &column(&hooks, |h| h.3),
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Moves the health of the webhook generation the attempt went to: recovered, failing (and
/// disabled once it has failed for `disable_after_ms`) or disabled at once.
async fn update_health(tx: &Transaction<'_>, r: &AttemptRecord, health: Health) -> StoreResult<()> {
    let (t, p, g, w) = (
        &r.scope.tenant.0,
        &r.scope.partner.0,
        &r.generation,
        &r.webhook_id,
    );
    match health {
        Health::Recovered => {
            let s = tx
                .prepare_cached(
                    "UPDATE webhooks SET failing_since = NULL
                     WHERE tenant_id = $1 AND partner_id = $2 AND generation = $3
                       AND failing_since IS NOT NULL AND webhook_id = $4",
                )
                .await
                .map_err(pg)?;
            tx.execute(&s, &[t, p, g, w]).await.map_err(pg)?;
        }
        Health::Disable(reason) => {
            let s = tx
                .prepare_cached(
                    "UPDATE webhooks SET enabled = FALSE, disabled_reason = $5,
                        disabled_at = CASE WHEN enabled THEN $4 ELSE disabled_at END
                     WHERE tenant_id = $1 AND partner_id = $2 AND generation = $3
                       AND webhook_id = $6",
                )
                .await
                .map_err(pg)?;
            tx.execute(&s, &[t, p, g, &r.attempted_at, &reason, w])
                .await
                .map_err(pg)?;
        }
        Health::Failing => {
            let s = tx
                .prepare_cached(
                    "UPDATE webhooks SET failing_since = COALESCE(failing_since, $4),
                        enabled = CASE WHEN COALESCE(failing_since, $4) <= $4 - $5
                            THEN FALSE ELSE enabled END,
                        disabled_reason = CASE WHEN COALESCE(failing_since, $4) <= $4 - $5
                            THEN $6 ELSE disabled_reason END,
                        disabled_at = CASE WHEN enabled
                            AND COALESCE(failing_since, $4) <= $4 - $5
                            THEN $4 ELSE disabled_at END
                     WHERE tenant_id = $1 AND partner_id = $2 AND generation = $3
                       AND webhook_id = $7",
                )
                .await
                .map_err(pg)?;
            let reason = FAILING_REASON;
            tx.execute(
                &s,
                &[t, p, g, &r.attempted_at, &r.disable_after_ms, &reason, w],
            )
            .await
            .map_err(pg)?;
        }
    }
    Ok(())
}

pub(super) async fn queue_direct(
    c: &mut Object,
    webhook: &WebhookKey,
    items: &[DirectNotification],
    now: OffsetDateTime,
) -> StoreResult<u64> {
    if items.is_empty() {
        return Ok(0);
    }
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    let n = insert_direct(&tx, webhook, items, now).await?;
    tx.commit().await.map_err(pg)?;
    Ok(n)
}

/// The notifications of [`queue_direct`], in the caller's transaction (parked while the webhook
/// is missing or disabled, [`lock_one_for_queuing`] first).
async fn insert_direct(
    tx: &Transaction<'_>,
    webhook: &WebhookKey,
    items: &[DirectNotification],
    now: OffsetDateTime,
) -> StoreResult<u64> {
    let (scope, now_ms) = (&webhook.scope, domain::clock::unix_millis(now));
    lock_one_for_queuing(tx, webhook).await?;
    let delivery: Vec<&str> = items.iter().map(|i| i.delivery_id.as_str()).collect();
    let event: Vec<&str> = items.iter().map(|i| i.event_id.as_str()).collect();
    let name: Vec<&str> = items.iter().map(|i| i.event_name.as_str()).collect();
    let time: Vec<i64> = items.iter().map(|i| i.event_time).collect();
    let key: Vec<&str> = items.iter().map(|i| i.enrollment_key.as_str()).collect();
    let payload: Vec<String> = items.iter().map(|i| i.payload.to_string()).collect();
    let s = tx
        .prepare_cached(concat!(
            "INSERT INTO notifications (delivery_id, event_id, event_name, event_time,
                tenant_id, partner_id, enrollment_id, enrollment_key, payload,
                next_attempt_at, created_at, webhook_id)
             SELECT x.d, x.e, x.n, x.t, $7, $8, NULL, x.k, x.pl,
                CASE WHEN EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant_id = $7 AND w.partner_id = $8 AND w.webhook_id = $11 AND w.enabled) THEN $9 ELSE ",
            parked_sql!(),
            " END, $10, $11
             FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[],
                         $6::TEXT[]) WITH ORDINALITY AS x(d, e, n, t, k, pl, o)
             ORDER BY x.o
             ON CONFLICT DO NOTHING",
        ))
        .await
        .map_err(pg)?;
    tx.execute(
        &s,
        &[
            &delivery,
            &event,
            &name,
            &time,
            &key,
            &payload,
            &scope.tenant.0,
            &scope.partner.0,
            &now_ms,
            &now.unix_timestamp(),
            &webhook.webhook_id,
        ],
    )
    .await
    .map_err(pg)
}

pub(super) async fn list_deliveries(
    c: &mut Object,
    webhook: &WebhookKey,
    q: &DeliveryQuery,
) -> StoreResult<DeliveryPage> {
    let scope = &webhook.scope;
    let after = q.cursor.map(|c| c.0).unwrap_or(0);
    let s = c
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLS} FROM notifications
             WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $7 AND id > $3
               AND ($4::INTEGER IS NULL OR status = $4)
               AND ($5::TEXT IS NULL OR event_name = $5)
             ORDER BY id LIMIT $6"
        ))
        .await
        .map_err(pg)?;
    let status: Option<i32> = q.status.map(|s| s.code() as i32);
    let rows = c
        .query(
            &s,
            &[
                &scope.tenant.0,
                &scope.partner.0,
                &after,
                &status,
                &q.event_name,
                &(q.limit as i64 + 1),
                &webhook.webhook_id,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(delivery_page(
        rows.iter().map(delivery_row).collect(),
        q.limit,
    ))
}

pub(super) async fn get_delivery(
    c: &mut Object,
    webhook: &WebhookKey,
    delivery_id: &str,
) -> StoreResult<Option<(DeliveryInfo, Vec<AttemptInfo>)>> {
    let scope = &webhook.scope;
    let s = c
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLS} FROM notifications
             WHERE delivery_id = $1 AND tenant_id = $2 AND partner_id = $3 AND webhook_id = $4"
        ))
        .await
        .map_err(pg)?;
    let row = c
        .query_opt(
            &s,
            &[
                &delivery_id,
                &scope.tenant.0,
                &scope.partner.0,
                &webhook.webhook_id,
            ],
        )
        .await
        .map_err(pg)?;
    let Some((id, info)) = row.as_ref().map(delivery_row) else {
        return Ok(None);
    };
    let s = c
        .prepare_cached(
            "SELECT attempted_at, status_code, error, latency_ms, response_body
             FROM delivery_attempts WHERE notification_id = $1 ORDER BY id",
        )
        .await
        .map_err(pg)?;
    let attempts = c
        .query(&s, &[&id])
        .await
        .map_err(pg)?
        .iter()
        .map(|r| AttemptInfo {
            attempted_at: r.get(0),
            status_code: r.get::<_, Option<i32>>(1).map(|c| c as u16),
            error: r.get(2),
            latency_ms: r.get::<_, i64>(3) as u64,
            response_body: r.get(4),
        })
        .collect();
    Ok(Some((info, attempts)))
}

pub(super) async fn retry_delivery(
    c: &mut Object,
    webhook: &WebhookKey,
    delivery_id: &str,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let (scope, now_ms) = (&webhook.scope, domain::clock::unix_millis(now));
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    lock_one_for_queuing(&tx, webhook).await?;
    let s = tx
        .prepare_cached(concat!(
            "UPDATE notifications SET status = 0, cycle_attempts = 0,
                next_attempt_at = CASE WHEN EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant_id = $2 AND w.partner_id = $3 AND w.webhook_id = $5 AND w.enabled) THEN $4 ELSE ",
            parked_sql!(),
            " END,
                lease_until = NULL
             WHERE delivery_id = $1 AND tenant_id = $2 AND partner_id = $3 AND webhook_id = $5",
        ))
        .await
        .map_err(pg)?;
    let n = tx
        .execute(
            &s,
            &[
                &delivery_id,
                &scope.tenant.0,
                &scope.partner.0,
                &now_ms,
                &webhook.webhook_id,
            ],
        )
        .await
        .map_err(pg)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    tx.commit().await.map_err(pg)
}

pub(super) async fn replay(
    c: &mut Object,
    webhook: &WebhookKey,
    q: &ReplayQuery,
    now: OffsetDateTime,
) -> StoreResult<u64> {
    let (scope, now_ms) = (&webhook.scope, domain::clock::unix_millis(now));
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    lock_one_for_queuing(&tx, webhook).await?;
    let s = tx
        .prepare_cached(concat!(
            "UPDATE notifications SET status = 0, cycle_attempts = 0,
                next_attempt_at = CASE WHEN EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant_id = $1 AND w.partner_id = $2 AND w.webhook_id = $7 AND w.enabled) THEN $6 ELSE ",
            parked_sql!(),
            " END,
                lease_until = NULL
             WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $7 AND event_time >= $3
               AND ($4::BIGINT IS NULL OR event_time <= $4)
               AND ($5::TEXT[] IS NULL OR event_name = ANY($5))",
        ))
        .await
        .map_err(pg)?;
    let n = tx
        .execute(
            &s,
            &[
                &scope.tenant.0,
                &scope.partner.0,
                &q.from,
                &q.to,
                &q.event_names,
                &now_ms,
                &webhook.webhook_id,
            ],
        )
        .await
        .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::{drop_test_schema, plan_of, test_store, PostgresOptions, PostgresStore};
    use crate::Store;
    use domain::{PartnerId, TenantId};
    use std::sync::Arc;

    /// Enabling a webhook while a transaction is queuing a notification for it (parked: it was
    /// disabled when the queuing statement started) never leaves that notification parked:
    /// the enable waits for the queuing to commit, then unparks it. Runs with
    /// `PROSPECT_EVENTS_TEST_POSTGRES_URL` set.
    #[tokio::test]
    async fn enabling_during_queuing_leaves_nothing_parked() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        let (store, schema) = test_store(&url, "queue_race", PostgresOptions::default()).await;
        let store = Arc::new(store);
        let scope = Scope {
            tenant: TenantId("t1".into()),
            partner: PartnerId("pa".into()),
        };
        let now = OffsetDateTime::now_utc();
        let new = NewWebhook {
            webhook_id: "wh_race".into(),
            name: "race".into(),
            description: None,
            headers: vec![],
            payload_format: PayloadFormat::Json,
            webhook_url: "https://example.com/race".into(),
            secret: "s".into(),
        };
        store.create_webhook(&scope, new, now).await.unwrap();
        let key = WebhookKey::new(&scope, "wh_race");
        let switch = |enabled| WebhookChange {
            enabled: Some(enabled),
            ..Default::default()
        };
        store
            .change_webhook(&key, switch(false), now)
            .await
            .unwrap();

        let mut c = store.conn().await.unwrap();
        let tx = c.transaction().await.unwrap();
        let item = DirectNotification {
            delivery_id: "dl_race".into(),
            event_id: "ev_race".into(),
            event_name: "prospect_changed_role".into(),
            event_time: now.unix_timestamp(),
            enrollment_key: "k".into(),
            payload: serde_json::json!({"race": true}),
        };
        assert_eq!(insert_direct(&tx, &key, &[item], now).await.unwrap(), 1);
        let enabling = {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.change_webhook(&key, switch(true), now).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        tx.commit().await.unwrap();
        enabling.await.unwrap().unwrap();
        let later = now + std::time::Duration::from_secs(1);
        let got = store
            .claim_due(
                later,
                std::time::Duration::from_secs(30),
                10,
                &ClaimRoom::any(),
            )
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "the notification is due, not parked");
        drop(c);
        drop(store);
        drop_test_schema(&url, &schema).await.unwrap();
    }

    /// A store in a fresh test schema (under `url`), with the partner's v1 webhook and `n`
    /// direct notifications queued for it (`pad` bytes of payload each): (store, schema, now).
    async fn store_with_queued(
        url: &str,
        label: &str,
        n: usize,
        pad: usize,
    ) -> (PostgresStore, String, OffsetDateTime) {
        let (store, schema) = test_store(url, label, PostgresOptions::default()).await;
        let scope = Scope {
            tenant: TenantId("t1".into()),
            partner: PartnerId("pa".into()),
        };
        let now = OffsetDateTime::now_utc();
        store
            .put_webhook(&scope, &format!("https://example.com/{label}"), "s", now)
            .await
            .unwrap();
        let items: Vec<DirectNotification> = (0..n)
            .map(|i| DirectNotification {
                delivery_id: format!("dl_{label}_{i}"),
                event_id: format!("ev_{label}_{i}"),
                event_name: "prospect_changed_role".into(),
                event_time: now.unix_timestamp(),
                enrollment_key: "k".into(),
                payload: serde_json::json!({ "i": i, "pad": "x".repeat(pad) }),
            })
            .collect();
        let key = WebhookKey::legacy(&scope);
        assert_eq!(
            store.queue_direct(&key, items, now).await.unwrap(),
            n as u64
        );
        (store, schema, now)
    }

    /// The claim finds the rows it leases by primary key whatever the planner estimates: as a
    /// generic plan (what a prepared statement runs after five executions) on a table of
    /// 20,000 notifications, it never reads the whole table (D99). Joined to `due` instead, the
    /// generic plan guessed thousands of due rows and hashed them against a sequential scan of
    /// `notifications`, 50–260 ms a claim.
    #[tokio::test]
    async fn the_claim_never_scans_the_table() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        let (store, schema, _) = store_with_queued(&url, "claim_plan", 20_000, 0).await;
        let c = store.conn().await.unwrap();
        c.batch_execute(&format!(
            "ANALYZE notifications; SET plan_cache_mode = force_generic_plan;
             PREPARE claim_plan(BIGINT, BIGINT, BIGINT, TEXT[], TEXT[], BIGINT[], BIGINT, TEXT[])
             AS {CLAIM_SQL}"
        ))
        .await
        .unwrap();
        let plan = plan_of(
            &c,
            "EXPLAIN EXECUTE claim_plan(1, 2, 256, '{}', '{}', '{}', 256, '{}')",
            &[],
        )
        .await;
        assert!(
            !plan.contains("Seq Scan on notifications"),
            "the claim scans the table:\n{plan}"
        );
        c.batch_execute("DEALLOCATE claim_plan; RESET plan_cache_mode")
            .await
            .unwrap();
        drop(c);
        drop(store);
        drop_test_schema(&url, &schema).await.unwrap();
    }

    /// This session's updates of notifications not yet reported to the statistics: (all,
    /// HOT). Nothing is reported inside a transaction block, so differences taken there count
    /// that block's updates.
    async fn updates(c: &Object) -> (i64, i64) {
        let row = c
            .query_one(
                "SELECT pg_stat_get_xact_tuples_updated('notifications'::regclass),
                        pg_stat_get_xact_tuples_hot_updated('notifications'::regclass)",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    /// Claims write only `lease_until`, which no index holds, and the table leaves room on its
    /// pages for each row's next version: every claim is a HOT update (no new index entries;
    /// D98). (Lease changes write only `lease_until` too, but whether their page has room
    /// again depends on pruning, which other transactions running meanwhile can hold back.)
    #[tokio::test]
    async fn claims_are_hot_updates() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        // Rows of the size real notifications have (~800 bytes), several pages of them.
        let (store, schema, now) = store_with_queued(&url, "hot_claims", 60, 600).await;

        // In a transaction block, its updates counted before it commits.
        let mut c = store.conn().await.unwrap();
        let lease = std::time::Duration::from_secs(30);
        c.batch_execute("BEGIN").await.unwrap();
        let before = updates(&c).await;
        let got = claim_due(&mut c, now, lease, 100, &ClaimRoom::any())
            .await
            .unwrap();
        assert_eq!(got.len(), 60);
        let after = updates(&c).await;
        let hot = (after.0 - before.0, after.1 - before.1);
        assert_eq!(hot, (60, 60), "every claim is HOT");
        c.batch_execute("COMMIT").await.unwrap();
        drop(c);
        drop(store);
        drop_test_schema(&url, &schema).await.unwrap();
    }
}
