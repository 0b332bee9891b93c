//! Enrollments and their prospect index for SQLite: SQL and row mapping only (which rows an
//! update touches is `rules::prospect_diff`). Every query filters by scope.

use super::internal;
use super::webhooks::check_target;
use crate::model::*;
use crate::rules::{enrollment_page, patched_spec, prospect_diff, unix_seconds};
use crate::{StoreError, StoreResult};
use domain::{event_mask, EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use rusqlite::{params, Connection, OptionalExtension};

pub(super) fn create_enrollment(
    c: &Connection,
    scope: &Scope,
    new: NewEnrollment,
) -> StoreResult<()> {
    check_target(c, &WebhookKey::new(scope, &new.webhook_id))?;
    let id: i64 = c
        .prepare_cached(
            "INSERT INTO enrollments (enrollment_id, tenant_id, partner_id, enrollment_key,
                event_types, event_mask, prospect_ids, created_at, updated_at, webhook_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9) RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    new.enrollment_id.as_str(),
                    scope.tenant.0,
                    scope.partner.0,
                    new.spec.enrollment_key,
                    encode_event_types(&new.spec.event_types),
                    event_mask(&new.spec.event_types),
                    encode_prospect_ids(&new.spec.prospect_ids),
                    unix_seconds(new.now),
                    new.webhook_id
                ],
                |r| r.get(0),
            )
        })
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict("enrollment id already exists".into())
            }
            other => internal(other),
        })?;
    insert_prospects(c, id, &new.spec.prospect_ids)
}

pub(super) fn update_enrollment(
    c: &Connection,
    scope: &Scope,
    enrollment_id: &str,
    spec: EnrollmentSpec,
    now: time::OffsetDateTime,
) -> StoreResult<()> {
    let now = unix_seconds(now);
    // Clean-failure contract of the writer: NotFound is decided before any write.
    let row: Option<(i64, String)> = c
        .prepare_cached(
            "SELECT id, prospect_ids FROM enrollments
             WHERE enrollment_id = ?1 AND tenant_id = ?2 AND partner_id = ?3",
        )
        .and_then(|mut s| {
            s.query_row(
                params![enrollment_id, scope.tenant.0, scope.partner.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .map_err(internal)?;
    let Some((id, old_ids)) = row else {
        return Err(StoreError::NotFound);
    };
    c.prepare_cached(
        "UPDATE enrollments SET enrollment_key = ?2, event_types = ?3, event_mask = ?4,
            prospect_ids = ?5, updated_at = ?6
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            spec.enrollment_key,
            encode_event_types(&spec.event_types),
            event_mask(&spec.event_types),
            encode_prospect_ids(&spec.prospect_ids),
            now
        ])
    })
    .map_err(internal)?;
    replace_prospects(c, id, &decode_prospect_ids(&old_ids), &spec.prospect_ids)
}

pub(super) fn delete_enrollment(
    c: &Connection,
    scope: &Scope,
    enrollment_id: &str,
) -> StoreResult<()> {
    let row: Option<(i64, String)> = c
        .prepare_cached(
            "DELETE FROM enrollments
             WHERE enrollment_id = ?1 AND tenant_id = ?2 AND partner_id = ?3
             RETURNING id, prospect_ids",
        )
        .and_then(|mut s| {
            s.query_row(
                params![enrollment_id, scope.tenant.0, scope.partner.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .map_err(internal)?;
    let Some((id, old_ids)) = row else {
        return Err(StoreError::NotFound);
    };
    replace_prospects(c, id, &decode_prospect_ids(&old_ids), &[])
}

pub(super) fn list_enrollments(
    c: &Connection,
    scope: &Scope,
    q: &EnrollmentQuery,
) -> StoreResult<EnrollmentPage> {
    let after = q.cursor.map(|c| c.0).unwrap_or(0);
    // Fetch one extra row to know whether another page follows.
    let fetch: i64 = q.limit.map(|l| l as i64 + 1).unwrap_or(-1);
    let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, Enrollment)> {
        Ok((
            r.get(0)?,
            Enrollment {
                enrollment_id: EnrollmentId(r.get(1)?),
                spec: EnrollmentSpec {
                    enrollment_key: r.get(2)?,
                    event_types: decode_event_types(&r.get::<_, String>(3)?),
                    prospect_ids: decode_prospect_ids(&r.get::<_, String>(4)?),
                },
                webhook_id: r.get(5)?,
                paused: r.get(6)?,
            },
        ))
    };
    let cols = "e.id, e.enrollment_id, e.enrollment_key, e.event_types, e.prospect_ids,
        e.webhook_id, e.paused";
    let rows: Vec<(i64, Enrollment)> = match (&q.prospect_id, &q.enrollment_key) {
        (Some(p), key) => {
            let sql = format!(
                "SELECT {cols} FROM enrollment_prospects ep JOIN enrollments e ON e.id = ep.enrollment_ref
                 WHERE ep.prospect_id = ?1 AND e.tenant_id = ?2 AND e.partner_id = ?3 AND e.id > ?4
                   AND (?5 IS NULL OR e.enrollment_key = ?5)
                 ORDER BY e.id LIMIT ?6"
            );
            let mut s = c.prepare_cached(&sql).map_err(internal)?;
            let rows = s
                .query_map(
                    params![
                        &p.as_bytes()[..],
                        scope.tenant.0,
                        scope.partner.0,
                        after,
                        key,
                        fetch
                    ],
                    map,
                )
                .map_err(internal)?;
            rows.collect::<Result<_, _>>().map_err(internal)?
        }
        (None, Some(key)) => {
            let sql = format!(
                "SELECT {cols} FROM enrollments e
                 WHERE e.tenant_id = ?1 AND e.partner_id = ?2 AND e.enrollment_key = ?3 AND e.id > ?4
                 ORDER BY e.id LIMIT ?5"
            );
            let mut s = c.prepare_cached(&sql).map_err(internal)?;
            let rows = s
                .query_map(
                    params![scope.tenant.0, scope.partner.0, key, after, fetch],
                    map,
                )
                .map_err(internal)?;
            rows.collect::<Result<_, _>>().map_err(internal)?
        }
        (None, None) => {
            let sql = format!(
                "SELECT {cols} FROM enrollments e
                 WHERE e.tenant_id = ?1 AND e.partner_id = ?2 AND e.id > ?3
                 ORDER BY e.id LIMIT ?4"
            );
            let mut s = c.prepare_cached(&sql).map_err(internal)?;
            let rows = s
                .query_map(params![scope.tenant.0, scope.partner.0, after, fetch], map)
                .map_err(internal)?;
            rows.collect::<Result<_, _>>().map_err(internal)?
        }
    };
    Ok(enrollment_page(rows, q.limit))
}

pub(super) fn covering_enrollments(
    c: &Connection,
    p: &ProspectId,
    et: EventType,
) -> StoreResult<Vec<CoveringEnrollment>> {
    let mut s = c
        .prepare_cached(
            "SELECT e.tenant_id, e.partner_id, e.enrollment_id, e.enrollment_key, e.webhook_id
             FROM enrollment_prospects ep JOIN enrollments e ON e.id = ep.enrollment_ref
             WHERE ep.prospect_id = ?1 AND (e.event_mask & ?2) != 0 AND NOT e.paused
             ORDER BY e.id",
        )
        .map_err(internal)?;
    let rows = s
        .query_map(params![&p.as_bytes()[..], et.bit()], |r| {
            Ok(CoveringEnrollment {
                tenant: TenantId(r.get(0)?),
                partner: PartnerId(r.get(1)?),
                enrollment_id: EnrollmentId(r.get(2)?),
                enrollment_key: r.get(3)?,
                webhook_id: r.get(4)?,
            })
        })
        .map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
}

/// A v2 PATCH: the fields given replace the stored ones in one transaction (the prospect index
/// by its difference); a `webhook_id` re-points the enrollment and makes it active again.
/// Refusals (`NotFound`, an inactive webhook) come before any write.
pub(super) fn patch_enrollment(
    c: &Connection,
    scope: &Scope,
    enrollment_id: &str,
    patch: &EnrollmentPatch,
    now: time::OffsetDateTime,
) -> StoreResult<Enrollment> {
    let row = c
        .prepare_cached(
            "SELECT id, enrollment_key, event_types, prospect_ids, webhook_id, paused FROM enrollments
             WHERE enrollment_id = ?1 AND tenant_id = ?2 AND partner_id = ?3",
        )
        .and_then(|mut s| {
            s.query_row(
                params![enrollment_id, scope.tenant.0, scope.partner.0],
                |r| {
                    let spec = EnrollmentSpec {
                        enrollment_key: r.get(1)?,
                        event_types: decode_event_types(&r.get::<_, String>(2)?),
                        prospect_ids: decode_prospect_ids(&r.get::<_, String>(3)?),
                    };
                    Ok((r.get::<_, i64>(0)?, spec, r.get::<_, String>(4)?, r.get(5)?))
                },
            )
            .optional()
        })
        .map_err(internal)?;
    let Some((id, stored, webhook_id, paused)) = row else {
        return Err(StoreError::NotFound);
    };
    if let Some(w) = &patch.webhook_id {
        check_target(c, &WebhookKey::new(scope, w))?;
    }
    let old_ids = stored.prospect_ids.clone();
    let spec = patched_spec(stored, patch);
    let (webhook_id, paused) = match &patch.webhook_id {
        Some(w) => (w.clone(), false),
        None => (webhook_id, paused),
    };
    c.prepare_cached(
        "UPDATE enrollments SET enrollment_key = ?2, event_types = ?3, event_mask = ?4,
            prospect_ids = ?5, updated_at = ?6, webhook_id = ?7, paused = ?8
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            spec.enrollment_key,
            encode_event_types(&spec.event_types),
            event_mask(&spec.event_types),
            encode_prospect_ids(&spec.prospect_ids),
            unix_seconds(now),
            webhook_id,
            paused
        ])
    })
    .map_err(internal)?;
    replace_prospects(c, id, &old_ids, &spec.prospect_ids)?;
    Ok(Enrollment {
        enrollment_id: EnrollmentId(enrollment_id.to_string()),
        spec,
        webhook_id,
        paused,
    })
}

fn insert_prospects(c: &Connection, id: i64, ids: &[ProspectId]) -> StoreResult<()> {
    let mut s = c
        .prepare_cached(
            "INSERT OR IGNORE INTO enrollment_prospects (prospect_id, enrollment_ref) VALUES (?1, ?2)",
        )
        .map_err(internal)?;
    for p in ids {
        s.execute(params![&p.as_bytes()[..], id])
            .map_err(internal)?;
    }
    Ok(())
}

/// Replaces the prospect rows of one enrollment (`current` as stored in its row), touching
/// only the difference.
fn replace_prospects(
    c: &Connection,
    id: i64,
    current: &[ProspectId],
    wanted: &[ProspectId],
) -> StoreResult<()> {
    let (gone, added) = prospect_diff(current, wanted);
    let mut del = c
        .prepare_cached(
            "DELETE FROM enrollment_prospects WHERE prospect_id = ?1 AND enrollment_ref = ?2",
        )
        .map_err(internal)?;
    for p in &gone {
        del.execute(params![&p.as_bytes()[..], id])
            .map_err(internal)?;
    }
    let mut ins = c
        .prepare_cached(
            "INSERT OR IGNORE INTO enrollment_prospects (prospect_id, enrollment_ref) VALUES (?1, ?2)",
        )
        .map_err(internal)?;
    for p in &added {
        ins.execute(params![&p.as_bytes()[..], id])
            .map_err(internal)?;
    }
    Ok(())
}
