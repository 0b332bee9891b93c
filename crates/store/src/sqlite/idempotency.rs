//! Idempotency keys for SQLite: the SQL of `crate::idempotency` (the rule lives there). Every
//! function runs inside the single writer's transaction, so a read followed by a write here is
//! atomic.

use super::internal;
use crate::idempotency::IDEMPOTENCY_LEASE_MS;
use crate::idempotency::{decide, new_token, IdemAnswer, IdemBegin, IdemFence, IdemRow, IdemStep};
use crate::model::Scope;
use crate::{StoreError, StoreResult};
use rusqlite::{params, Connection, OptionalExtension};

pub(super) fn begin(
    c: &Connection,
    scope: &Scope,
    key: &str,
    fingerprint: &[u8],
    now: time::OffsetDateTime,
) -> StoreResult<IdemBegin> {
    let now_ms = domain::clock::unix_millis(now);
    let (t, p) = (&scope.tenant.0, &scope.partner.0);
    let row = c
        .prepare_cached(
            "SELECT fingerprint, created_at, lease_until, executed, status_code, answer_detail,
                response_body
             FROM idempotency_keys WHERE tenant_id = ?1 AND partner_id = ?2 AND idem_key = ?3",
        )
        .and_then(|mut s| {
            s.query_row(params![t, p, key], |r| {
                let status: Option<u16> = r.get(4)?;
                Ok(IdemRow {
                    fingerprint: r.get(0)?,
                    created_at: r.get(1)?,
                    lease_until: r.get(2)?,
                    executed: r.get(3)?,
                    answer: match status {
                        Some(status) => Some(IdemAnswer {
                            status,
                            detail: r.get(5)?,
                            body: r.get::<_, Option<Vec<u8>>>(6)?.unwrap_or_default(),
                        }),
                        None => None,
                    },
                })
            })
            .optional()
        })
        .map_err(internal)?;
    let token = new_token();
    let lease_until = now_ms + IDEMPOTENCY_LEASE_MS;
    match decide(row, fingerprint, now_ms) {
        IdemStep::Answer(a) => return Ok(a),
        IdemStep::Reserve => c
            .prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys
                    (tenant_id, partner_id, idem_key, fingerprint, token, lease_until, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![t, p, key, fingerprint, token, lease_until, now_ms])
            }),
        IdemStep::TakeOver => c
            .prepare_cached(
                "UPDATE idempotency_keys SET token = ?4, lease_until = ?5
                 WHERE tenant_id = ?1 AND partner_id = ?2 AND idem_key = ?3",
            )
            .and_then(|mut s| s.execute(params![t, p, key, token, lease_until])),
    }
    .map_err(internal)?;
    Ok(IdemBegin::Execute(IdemFence {
        scope: scope.clone(),
        key: key.to_string(),
        token,
    }))
}

/// Stores the answer of a held reservation; false when the key was taken over meanwhile.
pub(super) fn finish(c: &Connection, f: &IdemFence, answer: &IdemAnswer) -> StoreResult<bool> {
    c.prepare_cached(
        "UPDATE idempotency_keys SET status_code = ?5, answer_detail = ?6, response_body = ?7,
            lease_until = 0
         WHERE tenant_id = ?1 AND partner_id = ?2 AND idem_key = ?3 AND token = ?4",
    )
    .and_then(|mut s| {
        s.execute(params![
            f.scope.tenant.0,
            f.scope.partner.0,
            f.key,
            f.token,
            answer.status,
            answer.detail,
            answer.body
        ])
    })
    .map(|n| n == 1)
    .map_err(internal)
}

/// Gives a reservation up without an answer: forgotten when nothing was written (a retry
/// executes afresh), else settled as executed-without-answer.
pub(super) fn release(c: &Connection, f: &IdemFence) -> StoreResult<()> {
    let args = params![f.scope.tenant.0, f.scope.partner.0, f.key, f.token];
    c.prepare_cached(
        "DELETE FROM idempotency_keys
         WHERE tenant_id = ?1 AND partner_id = ?2 AND idem_key = ?3 AND token = ?4
           AND executed = 0",
    )
    .and_then(|mut s| s.execute(args))
    .and_then(|_| {
        c.prepare_cached(
            "UPDATE idempotency_keys SET lease_until = 0
             WHERE tenant_id = ?1 AND partner_id = ?2 AND idem_key = ?3 AND token = ?4",
        )
    })
    .and_then(|mut s| s.execute(args))
    .map(|_| ())
    .map_err(internal)
}

/// Checks, before a fenced job writes, that its reservation still holds the key. Fails cleanly
/// (nothing written) with `Conflict` when it was taken over.
pub(super) fn check_fence(c: &Connection, f: &IdemFence) -> StoreResult<()> {
    let held = c
        .prepare_cached(
            "SELECT 1 FROM idempotency_keys
             WHERE tenant_id = ?1 AND partner_id = ?2 AND idem_key = ?3 AND token = ?4
               AND status_code IS NULL",
        )
        .and_then(|mut s| {
            s.query_row(
                params![f.scope.tenant.0, f.scope.partner.0, f.key, f.token],
                |_| Ok(()),
            )
            .optional()
        })
        .map_err(internal)?;
    held.ok_or_else(|| StoreError::Conflict("the idempotency key was taken over".into()))
}

/// Marks the reservation executed, in the transaction of the job that just wrote.
pub(super) fn mark_executed(c: &Connection, f: &IdemFence) -> StoreResult<()> {
    c.prepare_cached(
        "UPDATE idempotency_keys SET executed = 1
         WHERE tenant_id = ?1 AND partner_id = ?2 AND idem_key = ?3 AND token = ?4",
    )
    .and_then(|mut s| s.execute(params![f.scope.tenant.0, f.scope.partner.0, f.key, f.token]))
    .map(|_| ())
    .map_err(internal)
}

/// Deletes keys created before `before` (they are ignored from 24 h on anyway).
pub(super) fn prune(c: &Connection, before: time::OffsetDateTime) -> StoreResult<u64> {
    let before_ms = domain::clock::unix_millis(before);
    c.prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")
        .and_then(|mut s| s.execute(params![before_ms]))
        .map(|n| n as u64)
        .map_err(internal)
}
