//! The store contract: one suite written against `DynStore`, run for every backend.
//! SQLite always (a temporary file per test); PostgreSQL when `PROSPECT_EVENTS_TEST_POSTGRES_URL`
//! is set (a fresh schema per test; `scripts/pg-test-cluster.sh` starts a throwaway server).
//!
//!     eval "$(scripts/pg-test-cluster.sh)" && cargo test -p prospect-events-store --test contract

extern crate prospect_events_store as store;

mod support;

use domain::snapshot::Snapshot;
use domain::{EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use serde_json::json;
use std::collections::HashSet;
use store::*;
use time::macros::{date, datetime};
use time::OffsetDateTime;

/// Declares each contract test once per backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let b = crate::support::Backend::sqlite().await;
                    crate::$name(b.store.clone()).await;
                    b.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(b) = crate::support::Backend::postgres().await else {
                        return;
                    };
                    crate::$name(b.store.clone()).await;
                    b.finish().await;
                }
            )*
        }
    };
}

contract!(
    backend_answers_ping,
    keys_create_list_revoke_principal,
    enrollments_create_list_filter_paginate,
    enrollment_update_replaces_atomically,
    enrollment_delete_and_scope,
    concurrent_updates_keep_the_prospect_index_exact,
    covering_enrollments_by_event_type,
    ingest_counts_events_and_outbox,
    ingest_is_idempotent_and_keeps_key_at_queue_time,
    ingest_fires_anniversaries_due_at_ingestion,
    concurrent_ingestion_of_new_prospects,
    bulk_ingest_commits_in_groups,
    repeated_snapshots_still_advance_the_state_time,
    stored_times_round_trip_exactly_and_out_of_range_ones_are_refused,
    query_events_order_and_window,
    anniversary_scan_remembers_its_window,
    anniversary_scan_after_a_long_gap_fires_each_once,
    concurrent_scans_fire_once,
    prune_deletes_old_events,
    events_beyond_the_retention_are_neither_stored_nor_notified,
    webhook_put_get_delete,
    webhook_url_update_keeps_the_secret,
    claims_leases_and_attempts,
    claims_respect_each_webhooks_room,
    notifications_without_a_webhook_wait_parked,
    concurrent_claims_never_overlap,
    delivery_log_retry_replay_and_direct,
    webhook_disabled_by_gone_and_by_continuous_failure,
    idempotency_keys_reserve_fence_replay_and_expire,
);

// --- helpers ---------------------------------------------------------------------------------

fn scope(t: &str, p: &str) -> Scope {
    Scope {
        tenant: TenantId(t.into()),
        partner: PartnerId(p.into()),
    }
}

fn pid(n: u32) -> ProspectId {
    ProspectId::parse(&format!("{n:040x}")).unwrap()
}

fn eid(s: &str) -> EnrollmentId {
    EnrollmentId(s.into())
}

fn spec(key: &str, types: &[EventType], ids: &[ProspectId]) -> EnrollmentSpec {
    EnrollmentSpec {
        enrollment_key: key.into(),
        event_types: types.to_vec(),
        prospect_ids: ids.to_vec(),
    }
}

async fn enroll(s: &DynStore, sc: &Scope, id: &str, sp: EnrollmentSpec) {
    s.create_enrollment(
        sc,
        NewEnrollment {
            enrollment_id: eid(id),
            spec: sp,
            now: 1_700_000_000,
        },
    )
    .await
    .unwrap();
}

const ALL: [EventType; 3] = EventType::ALL;
const ROLE: EventType = EventType::ChangedRole;
const COMPANY: EventType = EventType::ChangedCompany;
const ANNIV: EventType = EventType::JobStartAnniversary;

fn company(n: u32) -> String {
    format!("{n:032x}")
}

/// A snapshot of prospect `p` observed at `at`, with a title, company id and job start.
fn snap(p: u32, at: &str, title: &str, company_n: u32, start: Option<&str>) -> Snapshot {
    Snapshot::from_json(&json!({
        "prospect_id": pid(p).to_string(),
        "observed_at": at,
        "full_name": format!("Person {p}"),
        "job_title": title,
        "company_id": company(company_n),
        "company_name": format!("Company {company_n}"),
        "job_start_date": start,
    }))
    .unwrap()
}

fn opts(now: OffsetDateTime) -> IngestOptions {
    IngestOptions {
        now,
        anniversary_lead_days: 7,
        event_retention: None,
    }
}

const NOW: OffsetDateTime = datetime!(2024-06-01 12:00 UTC);

/// Ingests one batch as of `NOW`.
async fn ingest_now(s: &DynStore, batch: Vec<Snapshot>) -> IngestCounts {
    s.ingest_snapshots(batch.into(), opts(NOW)).await.unwrap()
}

fn ids(page: &EnrollmentPage) -> Vec<String> {
    page.enrollments
        .iter()
        .map(|e| e.enrollment_id.0.clone())
        .collect()
}

fn covering_ids(c: &[CoveringEnrollment]) -> Vec<String> {
    c.iter().map(|e| e.enrollment_id.0.clone()).collect()
}

async fn list(s: &DynStore, sc: &Scope, q: EnrollmentQuery) -> EnrollmentPage {
    s.list_enrollments(sc, &q).await.unwrap()
}

async fn all_events(s: &DynStore, pids: &[ProspectId]) -> Vec<StoredEvent> {
    s.query_events(&EventQuery {
        prospect_ids: pids.to_vec(),
        event_types: ALL.to_vec(),
        from: OffsetDateTime::UNIX_EPOCH,
        to: None,
    })
    .await
    .unwrap()
}

// --- keys ------------------------------------------------------------------------------------

async fn backend_answers_ping(s: DynStore) {
    s.ping().await.unwrap();
    assert!(["sqlite", "postgres"].contains(&s.backend()));
}

async fn keys_create_list_revoke_principal(s: DynStore) {
    let key = |h: u8, prefix: &str, t: &str, p: &str, admin: bool, at: i64| NewApiKey {
        key_hash: [h; 32],
        prefix: prefix.into(),
        tenant: TenantId(t.into()),
        partner: PartnerId(p.into()),
        admin,
        created_at: at,
    };
    s.create_key(key(1, "pe_aaa1", "t1", "p2", false, 100))
        .await
        .unwrap();
    s.create_key(key(2, "pe_aab2", "t1", "p1", true, 101))
        .await
        .unwrap();
    s.create_key(key(3, "pe_bbb3", "t2", "p9", false, 102))
        .await
        .unwrap();
    // A second key for an existing tenant/partner creates neither again.
    s.create_key(key(4, "pe_ccc4", "t1", "p2", false, 103))
        .await
        .unwrap();

    let keys = s.list_keys().await.unwrap();
    let prefixes: Vec<&str> = keys.iter().map(|k| k.prefix.as_str()).collect();
    assert_eq!(prefixes, ["pe_aaa1", "pe_aab2", "pe_bbb3", "pe_ccc4"]);
    assert_eq!(keys[1].tenant.0, "t1");
    assert_eq!(keys[1].partner.0, "p1");
    assert!(keys[1].admin && !keys[0].admin);
    assert_eq!(keys[2].created_at, 102);
    assert!(keys.iter().all(|k| k.revoked_at.is_none()));

    let p = s.principal(&[1; 32]).await.unwrap().expect("active key");
    assert_eq!(p.tenant.0, "t1");
    assert_eq!(p.default_partner.0, "p2");
    assert!(!p.admin);
    let mut owned: Vec<String> = p.partners.iter().map(|x| x.0.clone()).collect();
    owned.sort();
    assert_eq!(owned, ["p1", "p2"]);
    let p = s.principal(&[3; 32]).await.unwrap().unwrap();
    assert_eq!(p.partners, vec![PartnerId("p9".into())]);
    assert!(s.principal(&[9; 32]).await.unwrap().is_none());

    // Prefix matching is literal: "pe_aa" revokes two keys, "pe_a%" none.
    assert_eq!(s.revoke_keys("pe_a%").await.unwrap(), 0);
    assert_eq!(s.revoke_keys("pe_aa").await.unwrap(), 2);
    assert_eq!(s.revoke_keys("pe_aa").await.unwrap(), 0);
    assert!(s.principal(&[1; 32]).await.unwrap().is_none());
    assert!(s.principal(&[2; 32]).await.unwrap().is_none());
    assert!(s.principal(&[4; 32]).await.unwrap().is_some());
    let keys = s.list_keys().await.unwrap();
    assert!(keys[0].revoked_at.is_some() && keys[1].revoked_at.is_some());
    assert!(keys[2].revoked_at.is_none() && keys[3].revoked_at.is_none());
}

// --- enrollments -----------------------------------------------------------------------------

async fn enrollments_create_list_filter_paginate(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t1", "pb");
    let (p1, p2, p3) = (pid(1), pid(2), pid(3));
    // Client order of types and ids is kept.
    let s1 = spec("k1", &[COMPANY, ROLE], &[p2, p1]);
    enroll(&s, &a, "enr_1", s1.clone()).await;
    enroll(&s, &a, "enr_2", spec("k2", &[ANNIV], &[p2, p3])).await;
    enroll(&s, &b, "enr_3", spec("k1", &ALL, &[p1])).await;
    enroll(&s, &a, "enr_4", spec("k1", &[ROLE], &[p3])).await;

    let dup = s
        .create_enrollment(
            &a,
            NewEnrollment {
                enrollment_id: eid("enr_1"),
                spec: spec("x", &[ROLE], &[p1]),
                now: 1,
            },
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let page = list(&s, &a, EnrollmentQuery::default()).await;
    assert_eq!(ids(&page), ["enr_1", "enr_2", "enr_4"]);
    assert_eq!(page.next_cursor, None);
    assert_eq!(page.enrollments[0].spec, s1);
    assert_eq!(
        ids(&list(&s, &b, EnrollmentQuery::default()).await),
        ["enr_3"]
    );
    assert!(list(&s, &scope("t2", "pa"), EnrollmentQuery::default())
        .await
        .enrollments
        .is_empty());

    let by_key = |k: &str| EnrollmentQuery {
        enrollment_key: Some(k.into()),
        ..Default::default()
    };
    let by_prospect = |p: ProspectId| EnrollmentQuery {
        prospect_id: Some(p),
        ..Default::default()
    };
    assert_eq!(ids(&list(&s, &a, by_key("k1")).await), ["enr_1", "enr_4"]);
    assert_eq!(ids(&list(&s, &a, by_key("k2")).await), ["enr_2"]);
    assert!(list(&s, &a, by_key("nope")).await.enrollments.is_empty());
    assert_eq!(
        ids(&list(&s, &a, by_prospect(p2)).await),
        ["enr_1", "enr_2"]
    );
    assert_eq!(ids(&list(&s, &a, by_prospect(p1)).await), ["enr_1"]);
    assert_eq!(ids(&list(&s, &b, by_prospect(p1)).await), ["enr_3"]);
    let both = EnrollmentQuery {
        enrollment_key: Some("k1".into()),
        prospect_id: Some(p3),
        ..Default::default()
    };
    assert_eq!(ids(&list(&s, &a, both).await), ["enr_4"]);

    // Pages of two: a cursor while more may follow.
    let first = list(
        &s,
        &a,
        EnrollmentQuery {
            limit: Some(2),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&first), ["enr_1", "enr_2"]);
    let cursor = first.next_cursor.expect("a next page");
    let second = list(
        &s,
        &a,
        EnrollmentQuery {
            limit: Some(2),
            cursor: Some(cursor),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&second), ["enr_4"]);
    assert_eq!(second.next_cursor, None);
    // Exactly `limit` rows left: no cursor.
    let exact = list(
        &s,
        &a,
        EnrollmentQuery {
            limit: Some(3),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(exact.enrollments.len(), 3);
    assert_eq!(exact.next_cursor, None);
    // Filters and cursors combine.
    let q = EnrollmentQuery {
        enrollment_key: Some("k1".into()),
        limit: Some(1),
        ..Default::default()
    };
    let p = list(&s, &a, q.clone()).await;
    assert_eq!(ids(&p), ["enr_1"]);
    let p = list(
        &s,
        &a,
        EnrollmentQuery {
            cursor: p.next_cursor,
            ..q.clone()
        },
    )
    .await;
    assert_eq!(ids(&p), ["enr_4"]);
    let q = EnrollmentQuery {
        prospect_id: Some(p2),
        limit: Some(1),
        ..Default::default()
    };
    let p = list(&s, &a, q.clone()).await;
    assert_eq!(ids(&p), ["enr_1"]);
    let p = list(
        &s,
        &a,
        EnrollmentQuery {
            cursor: p.next_cursor,
            ..q
        },
    )
    .await;
    assert_eq!(ids(&p), ["enr_2"]);
    // Cursors round-trip through their text form.
    assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
}

async fn enrollment_update_replaces_atomically(s: DynStore) {
    let a = scope("t1", "pa");
    let (p1, p2, p3, p4) = (pid(1), pid(2), pid(3), pid(4));
    enroll(&s, &a, "enr_1", spec("k1", &[ROLE, COMPANY], &[p1, p2])).await;
    enroll(&s, &a, "enr_2", spec("k2", &[ANNIV], &[p3])).await;

    let new = spec("k1b", &[ANNIV], &[p4, p3, p2]);
    s.update_enrollment(&a, "enr_1", new.clone()).await.unwrap();
    let page = list(&s, &a, EnrollmentQuery::default()).await;
    assert_eq!(ids(&page), ["enr_1", "enr_2"], "the creation order is kept");
    assert_eq!(page.enrollments[0].spec, new);

    // The prospect index follows: p1 is gone, p3/p4 are in, event types changed.
    let by = |p: ProspectId| EnrollmentQuery {
        prospect_id: Some(p),
        ..Default::default()
    };
    assert!(list(&s, &a, by(p1)).await.enrollments.is_empty());
    assert_eq!(ids(&list(&s, &a, by(p2)).await), ["enr_1"]);
    assert_eq!(ids(&list(&s, &a, by(p3)).await), ["enr_1", "enr_2"]);
    assert_eq!(ids(&list(&s, &a, by(p4)).await), ["enr_1"]);
    assert!(s.covering_enrollments(&p1, ROLE).await.unwrap().is_empty());
    assert!(s.covering_enrollments(&p2, ROLE).await.unwrap().is_empty());
    let cov = s.covering_enrollments(&p3, ANNIV).await.unwrap();
    assert_eq!(covering_ids(&cov), ["enr_1", "enr_2"]);
    assert_eq!(cov[0].enrollment_key, "k1b");
    let by_key = |k: &str| EnrollmentQuery {
        enrollment_key: Some(k.into()),
        ..Default::default()
    };
    assert!(list(&s, &a, by_key("k1")).await.enrollments.is_empty());
    assert_eq!(ids(&list(&s, &a, by_key("k1b")).await), ["enr_1"]);

    // Updating to an empty prospect list empties the index too.
    s.update_enrollment(&a, "enr_2", spec("k2", &[ANNIV], &[]))
        .await
        .unwrap();
    assert_eq!(ids(&list(&s, &a, by(p3)).await), ["enr_1"]);

    // Outside the scope (or missing): NotFound, and nothing changes.
    for (sc, id) in [
        (scope("t1", "pb"), "enr_1"),
        (scope("t2", "pa"), "enr_1"),
        (a.clone(), "enr_404"),
    ] {
        let r = s
            .update_enrollment(&sc, id, spec("evil", &ALL, &[p1]))
            .await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }
    assert_eq!(
        list(&s, &a, EnrollmentQuery::default()).await.enrollments[0].spec,
        new
    );
    assert!(s.covering_enrollments(&p1, ROLE).await.unwrap().is_empty());
}

async fn enrollment_delete_and_scope(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t1", "pb");
    let p1 = pid(1);
    enroll(&s, &a, "enr_1", spec("k", &ALL, &[p1])).await;
    enroll(&s, &a, "enr_2", spec("k", &ALL, &[p1])).await;
    let r = s.delete_enrollment(&b, "enr_1").await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    s.delete_enrollment(&a, "enr_1").await.unwrap();
    let r = s.delete_enrollment(&a, "enr_1").await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(
        ids(&list(&s, &a, EnrollmentQuery::default()).await),
        ["enr_2"]
    );
    let cov = s.covering_enrollments(&p1, ROLE).await.unwrap();
    assert_eq!(covering_ids(&cov), ["enr_2"]);
    let by = EnrollmentQuery {
        prospect_id: Some(p1),
        ..Default::default()
    };
    assert_eq!(ids(&list(&s, &a, by).await), ["enr_2"]);
    // The id is free again once deleted.
    enroll(&s, &b, "enr_1", spec("k", &[ROLE], &[p1])).await;
    let cov = s.covering_enrollments(&p1, ROLE).await.unwrap();
    assert_eq!(covering_ids(&cov), ["enr_2", "enr_1"]);
}

async fn concurrent_updates_keep_the_prospect_index_exact(s: DynStore) {
    // PATCHes of one enrollment racing each other (replicas): the prospect index always ends
    // up exactly the stored list of the last one.
    let a = scope("t1", "pa");
    enroll(
        &s,
        &a,
        "enr_1",
        spec("k", &ALL, &(1..=5).map(pid).collect::<Vec<_>>()),
    )
    .await;
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let s = s.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10u32 {
                let start = (t * 3 + i * 7) % 20;
                let ids: Vec<ProspectId> = (start..start + 1 + (t + i) % 6).map(pid).collect();
                s.update_enrollment(&a, "enr_1", spec(&format!("k{t}"), &ALL, &ids))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let page = list(&s, &a, EnrollmentQuery::default()).await;
    let stored: HashSet<ProspectId> = page.enrollments[0]
        .spec
        .prospect_ids
        .iter()
        .copied()
        .collect();
    assert!(!stored.is_empty());
    for n in 0..=26 {
        let p = pid(n);
        let listed = list(
            &s,
            &a,
            EnrollmentQuery {
                prospect_id: Some(p),
                ..Default::default()
            },
        )
        .await;
        let covering = s.covering_enrollments(&p, ROLE).await.unwrap();
        let expected = usize::from(stored.contains(&p));
        assert_eq!(listed.enrollments.len(), expected, "prospect {n}");
        assert_eq!(covering.len(), expected, "prospect {n}");
    }
    s.delete_enrollment(&a, "enr_1").await.unwrap();
    for n in 0..=26 {
        assert!(s
            .covering_enrollments(&pid(n), ROLE)
            .await
            .unwrap()
            .is_empty());
    }
}

async fn covering_enrollments_by_event_type(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t2", "pb");
    let (p1, p2) = (pid(1), pid(2));
    enroll(&s, &a, "enr_a", spec("ka", &[ROLE, COMPANY], &[p1, p2])).await;
    enroll(&s, &b, "enr_b", spec("kb", &[COMPANY], &[p1])).await;
    enroll(&s, &a, "enr_c", spec("kc", &[ANNIV], &[p1])).await;

    let cov = s.covering_enrollments(&p1, COMPANY).await.unwrap();
    assert_eq!(
        cov,
        vec![
            CoveringEnrollment {
                tenant: TenantId("t1".into()),
                partner: PartnerId("pa".into()),
                enrollment_id: eid("enr_a"),
                enrollment_key: "ka".into(),
            },
            CoveringEnrollment {
                tenant: TenantId("t2".into()),
                partner: PartnerId("pb".into()),
                enrollment_id: eid("enr_b"),
                enrollment_key: "kb".into(),
            },
        ]
    );
    assert_eq!(
        covering_ids(&s.covering_enrollments(&p1, ROLE).await.unwrap()),
        ["enr_a"]
    );
    assert_eq!(
        covering_ids(&s.covering_enrollments(&p1, ANNIV).await.unwrap()),
        ["enr_c"]
    );
    assert_eq!(
        covering_ids(&s.covering_enrollments(&p2, ROLE).await.unwrap()),
        ["enr_a"]
    );
    assert!(s.covering_enrollments(&p2, ANNIV).await.unwrap().is_empty());
    assert!(s
        .covering_enrollments(&pid(3), ROLE)
        .await
        .unwrap()
        .is_empty());
}

// --- ingestion -------------------------------------------------------------------------------

async fn ingest_counts_events_and_outbox(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t2", "pb");
    enroll(&s, &a, "enr_a", spec("key-a", &ALL, &[pid(1)])).await;
    enroll(
        &s,
        &b,
        "enr_b",
        spec("key-b", &[COMPANY], &[pid(1), pid(2)]),
    )
    .await;

    let c = ingest_now(
        &s,
        vec![
            snap(1, "2024-01-01T00:00:00Z", "Engineer", 1, Some("2020-03-10")),
            snap(2, "2024-01-01T00:00:00Z", "Analyst", 5, None),
        ],
    )
    .await;
    assert_eq!(
        c,
        IngestCounts {
            baselines: 2,
            ..Default::default()
        }
    );
    assert!(s.outbox(None, 100).await.unwrap().is_empty());

    // P1 changes role and company; P2's snapshot is older; P3 is new.
    let c = ingest_now(
        &s,
        vec![
            snap(1, "2024-05-01T00:00:00Z", "CTO", 2, Some("2024-05-01")),
            snap(2, "2023-01-01T00:00:00Z", "Intern", 6, None),
            snap(3, "2024-05-01T00:00:00Z", "Chef", 7, None),
        ],
    )
    .await;
    assert_eq!(
        c,
        IngestCounts {
            baselines: 1,
            unchanged: 1,
            changed: 1,
            events_created: 2,
            notifications_queued: 3,
            events_beyond_retention: 0,
        }
    );
    // P1's new state is current; the older P2 snapshot is not (a later identical one is
    // unchanged).
    let c = ingest_now(
        &s,
        vec![
            snap(1, "2024-05-01T00:00:00Z", "CTO", 2, Some("2024-05-01")),
            snap(2, "2024-01-01T00:00:00Z", "Analyst", 5, None),
        ],
    )
    .await;
    assert_eq!(
        c,
        IngestCounts {
            unchanged: 2,
            ..Default::default()
        }
    );

    let events = all_events(&s, &[pid(1), pid(2), pid(3)]).await;
    assert_eq!(events.len(), 2);
    let types: HashSet<EventType> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(types, HashSet::from([ROLE, COMPANY]));
    assert!(events.iter().all(|e| e.prospect_id == pid(1)));

    let all = s.outbox(None, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    let oa = s.outbox(Some(&a), 100).await.unwrap();
    assert_eq!(oa.len(), 2);
    let ob = s.outbox(Some(&b), 100).await.unwrap();
    assert_eq!(ob.len(), 1);
    assert_eq!(ob[0].event_name, "prospect_changed_company");
    assert_eq!(ob[0].enrollment_key, "key-b");
    assert_eq!(s.outbox(Some(&a), 1).await.unwrap().len(), 1);
    for row in &all {
        let ev = events.iter().find(|e| e.event_id == row.event_id).unwrap();
        assert_eq!(row.event_name, ev.event_type.as_str());
        assert_eq!(row.status, DeliveryStatus::Pending);
        assert_eq!(row.attempts, 0);
        assert_eq!(
            row.delivery_id,
            delivery_id_for(&row.event_id, row.enrollment_id.as_deref().unwrap())
        );
        let p = &row.payload;
        assert_eq!(p["tenant_id"], row.tenant.0.as_str());
        assert_eq!(p["partner_id"], row.partner.0.as_str());
        assert_eq!(p["event_id"], row.event_id.as_str());
        assert_eq!(p["event_name"], row.event_name.as_str());
        assert_eq!(p["entity_id"], pid(1).to_string());
        assert_eq!(p["entity_type"], "prospect");
        assert_eq!(p["enrollment_key"], row.enrollment_key.as_str());
        assert_eq!(p["enrollment_id"], row.enrollment_id.as_deref().unwrap());
        assert_eq!(p["data"], ev.data_value());
    }
    // Oldest first: within one event, enrollments in creation order; role before company.
    assert_eq!(oa[0].event_name, "prospect_changed_role");
    assert_eq!(oa[1].event_name, "prospect_changed_company");
    let company_rows: Vec<_> = all
        .iter()
        .filter(|r| r.event_name == "prospect_changed_company")
        .map(|r| r.enrollment_id.clone().unwrap())
        .collect();
    assert_eq!(company_rows, ["enr_a", "enr_b"]);
}

async fn ingest_is_idempotent_and_keeps_key_at_queue_time(s: DynStore) {
    let a = scope("t1", "pa");
    enroll(&s, &a, "enr_a", spec("old-key", &ALL, &[pid(1)])).await;
    let batch = vec![
        snap(1, "2024-01-01T00:00:00Z", "Engineer", 1, None),
        snap(1, "2024-02-01T00:00:00Z", "Manager", 1, None),
        snap(1, "2024-03-01T00:00:00Z", "Director", 2, None),
    ];
    let first = ingest_now(&s, batch.clone()).await;
    assert_eq!(
        first,
        IngestCounts {
            baselines: 1,
            changed: 2,
            events_created: 3,
            notifications_queued: 3,
            ..Default::default()
        }
    );
    s.update_enrollment(&a, "enr_a", spec("new-key", &ALL, &[pid(1)]))
        .await
        .unwrap();
    // The same file again: nothing new, in any order.
    let again = ingest_now(&s, batch.clone()).await;
    assert_eq!(again.events_created, 0);
    assert_eq!(again.notifications_queued, 0);
    assert_eq!(again.baselines + again.changed, 0);
    let mut reversed = batch.clone();
    reversed.reverse();
    let again = ingest_now(&s, reversed).await;
    assert_eq!(again.events_created, 0);
    assert_eq!(all_events(&s, &[pid(1)]).await.len(), 3);
    let rows = s.outbox(None, 100).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.enrollment_key == "old-key"));
    assert!(rows
        .iter()
        .all(|r| r.payload["enrollment_key"] == "old-key"));

    // A later change is queued with the key as it is now.
    let c = ingest_now(&s, vec![snap(1, "2024-04-01T00:00:00Z", "VP", 2, None)]).await;
    assert_eq!(c.notifications_queued, 1);
    let rows = s.outbox(Some(&a), 100).await.unwrap();
    assert_eq!(rows.last().unwrap().enrollment_key, "new-key");
    assert_eq!(rows.last().unwrap().payload["enrollment_key"], "new-key");

    // An empty batch is fine.
    assert_eq!(ingest_now(&s, vec![]).await, IngestCounts::default());
}

async fn ingest_fires_anniversaries_due_at_ingestion(s: DynStore) {
    let a = scope("t1", "pa");
    enroll(&s, &a, "enr_a", spec("k", &[ANNIV], &[pid(1), pid(2)])).await;
    // NOW = 2024-06-01: the ingestion window is (05-31, 06-08].
    let c = ingest_now(
        &s,
        vec![
            snap(1, "2024-01-01T00:00:00Z", "Engineer", 1, Some("2019-06-03")),
            snap(2, "2024-01-01T00:00:00Z", "Engineer", 1, Some("2019-06-20")),
            snap(3, "2024-01-01T00:00:00Z", "Engineer", 1, Some("2021-06-01")),
        ],
    )
    .await;
    assert_eq!(c.baselines, 3);
    assert_eq!(c.events_created, 2);
    assert_eq!(c.notifications_queued, 1);
    let ev = all_events(&s, &[pid(1)]).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].event_type, ANNIV);
    assert_eq!(ev[0].event_time, datetime!(2024-06-03 0:00 UTC));
    assert_eq!(ev[0].data_value()["years_at_company"], 5);
    // Same start date in a newer snapshot: no second anniversary.
    let c = ingest_now(
        &s,
        vec![snap(
            1,
            "2024-02-01T00:00:00Z",
            "Lead",
            1,
            Some("2019-06-03"),
        )],
    )
    .await;
    assert_eq!((c.changed, c.events_created), (1, 1)); // the role change only
    assert_eq!(all_events(&s, &[pid(1)]).await.len(), 2);
}

async fn concurrent_ingestion_of_new_prospects(s: DynStore) {
    // Several writers ingest overlapping batches of new prospects at once (replicas): every
    // prospect has exactly one baseline, and each change is detected exactly once.
    let a = scope("t1", "pa");
    enroll(
        &s,
        &a,
        "enr_a",
        spec("k", &ALL, &(1..=40).map(pid).collect::<Vec<_>>()),
    )
    .await;
    let mut tasks = Vec::new();
    for w in 0..6u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut total = IngestCounts::default();
            for round in 0..3u32 {
                // Every writer sends the same snapshots, prospects in a different order (each
                // prospect's own snapshots in time order).
                let mut order: Vec<u32> = (1..=40).collect();
                order.rotate_left(((w * 7 + round * 13) % 40) as usize);
                if w % 2 == 1 {
                    order.reverse();
                }
                let batch: Vec<Snapshot> = order
                    .into_iter()
                    .flat_map(|p| {
                        [
                            snap(p, "2024-01-01T00:00:00Z", "Engineer", 1, None),
                            snap(p, "2024-02-01T00:00:00Z", "Manager", 1, None),
                        ]
                    })
                    .collect();
                total += ingest_now(&s, batch).await;
            }
            total
        }));
    }
    let mut total = IngestCounts::default();
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total.baselines, 40);
    assert_eq!(total.changed, 40);
    assert_eq!(total.events_created, 40);
    assert_eq!(total.notifications_queued, 40);
    let events = all_events(&s, &(1..=40).map(pid).collect::<Vec<_>>()).await;
    assert_eq!(events.len(), 40);
    assert!(events
        .iter()
        .all(|e| e.data_value()["current_job_title"] == "Manager"));
    assert_eq!(s.outbox(None, 1000).await.unwrap().len(), 40);
}

// --- events ----------------------------------------------------------------------------------

/// A snapshot of prospect `p` with only a title, observed at `at` (any instant, unchecked).
fn titled(p: u32, at: OffsetDateTime, title: &str) -> Snapshot {
    Snapshot {
        prospect_id: pid(p),
        observed_at: at,
        full_name: None,
        linkedin_url: None,
        company_id: None,
        company_name: None,
        job_title: Some(title.into()),
        job_start_date: None,
    }
}

/// Every `observed_at` in the supported range is stored and read back to the nanosecond: a
/// snapshot 1 ns older than the stored one is older, 1 ns newer is a change (random instants
/// plus the edges). One outside the range fails the batch before anything is stored: it used to
/// wrap around the i64 nanoseconds (1600-01-01 was stored as 2184, 9999-12-31 as 1816).
async fn stored_times_round_trip_exactly_and_out_of_range_ones_are_refused(s: DynStore) {
    use domain::instant::{EARLIEST, LATEST};
    use proptest::strategy::{Strategy, ValueTree};
    let ns = time::Duration::nanoseconds(1);
    let mut times = vec![EARLIEST + ns, LATEST - ns, OffsetDateTime::UNIX_EPOCH];
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let nanos = (EARLIEST + ns).unix_timestamp_nanos()..(LATEST - ns).unix_timestamp_nanos();
    for _ in 0..20 {
        let n = nanos.new_tree(&mut runner).unwrap().current();
        times.push(OffsetDateTime::from_unix_timestamp_nanos(n).unwrap());
    }
    for (i, t) in times.into_iter().enumerate() {
        let p = 5000 + i as u32;
        assert_eq!(ingest_now(&s, vec![titled(p, t, "Dev")]).await.baselines, 1);
        let older = ingest_now(&s, vec![titled(p, t - ns, "Older")]).await;
        assert_eq!((older.unchanged, older.events_created), (1, 0), "{t}");
        let newer = ingest_now(&s, vec![titled(p, t + ns, "CTO")]).await;
        assert_eq!((newer.changed, newer.events_created), (1, 1), "{t}");
        let q = EventQuery {
            prospect_ids: vec![pid(p)],
            event_types: ALL.to_vec(),
            from: EARLIEST,
            to: Some(LATEST),
        };
        let evs = s.query_events(&q).await.unwrap();
        assert_eq!(evs.len(), 1, "{t}");
        assert_eq!(
            evs[0].event_time.unix_timestamp(),
            (t + ns).unix_timestamp()
        );
    }

    let start = |d: time::Date| Snapshot {
        job_start_date: Some(d),
        ..titled(6000, NOW, "Dev")
    };
    for bad in [
        titled(6000, datetime!(1600-01-01 0:00 UTC), "Dev"),
        titled(6000, datetime!(9999-12-31 23:59:59 UTC), "Dev"),
        titled(6000, EARLIEST - ns, "Dev"),
        titled(6000, LATEST + ns, "Dev"),
        start(date!(1600 - 01 - 01)),
        start(date!(2201 - 01 - 01)),
    ] {
        // In a batch with a valid snapshot: nothing of it is stored.
        let batch = vec![titled(6001, NOW, "Dev"), bad.clone()];
        let r = s.ingest_snapshots(batch.into(), opts(NOW)).await;
        assert!(matches!(r, Err(StoreError::Internal(_))), "{bad:?}: {r:?}");
    }
    let later = NOW + time::Duration::days(1);
    let first = ingest_now(
        &s,
        vec![titled(6000, later, "Dev"), titled(6001, later, "Dev")],
    )
    .await;
    assert_eq!(
        first.baselines, 2,
        "nothing of the refused batches was stored"
    );
}

async fn repeated_snapshots_still_advance_the_state_time(s: DynStore) {
    ingest_now(
        &s,
        vec![snap(1, "2024-01-01T00:00:00Z", "Engineer", 1, None)],
    )
    .await;
    // The same prospect as it was, observed later: nothing to report, but the state is newer.
    let c = ingest_now(
        &s,
        vec![snap(1, "2024-03-01T00:00:00Z", "Engineer", 1, None)],
    )
    .await;
    assert_eq!((c.unchanged, c.events_created), (1, 0));
    // So a snapshot from between the two is out of order: no role change from it.
    let c = ingest_now(
        &s,
        vec![snap(1, "2024-02-01T00:00:00Z", "Manager", 1, None)],
    )
    .await;
    assert_eq!(c.events_created, 0);
    // A newer one is compared with the stored Engineer.
    let c = ingest_now(
        &s,
        vec![snap(1, "2024-04-01T00:00:00Z", "Manager", 1, None)],
    )
    .await;
    assert_eq!(c.events_created, 1);
    let ev = all_events(&s, &[pid(1)]).await;
    assert_eq!(ev[0].data_value()["previous_job_title"], "Engineer");
}

async fn bulk_ingest_commits_in_groups(s: DynStore) {
    let Some(mut bulk) = s.bulk_ingest(4).await.unwrap() else {
        return; // this backend ingests batch by batch
    };
    let change = |p: u32| {
        vec![
            snap(p, "2024-01-01T00:00:00Z", "Engineer", 1, None),
            snap(p, "2024-02-01T00:00:00Z", "Manager", 1, None),
        ]
    };
    // Two snapshots applied: below the commit size, so not visible to others yet.
    let c = bulk.apply(change(1).into(), opts(NOW)).await.unwrap();
    assert_eq!(c.events_created, 1);
    assert!(all_events(&s, &[pid(1)]).await.is_empty());
    // Four: committed together.
    bulk.apply(change(2).into(), opts(NOW)).await.unwrap();
    assert_eq!(all_events(&s, &[pid(1), pid(2)]).await.len(), 2);
    // Dropped before finishing: the uncommitted batch is rolled back.
    bulk.apply(change(3).into(), opts(NOW)).await.unwrap();
    drop(bulk);
    assert!(all_events(&s, &[pid(3)]).await.is_empty());
    // A finished session commits the rest; re-applying creates nothing new.
    let mut bulk = s.bulk_ingest(100).await.unwrap().unwrap();
    bulk.apply(change(3).into(), opts(NOW)).await.unwrap();
    let again = bulk.apply(change(1).into(), opts(NOW)).await.unwrap();
    assert_eq!(again.events_created, 0);
    bulk.finish().await.unwrap();
    assert_eq!(all_events(&s, &[pid(1), pid(2), pid(3)]).await.len(), 3);
}

async fn query_events_order_and_window(s: DynStore) {
    ingest_now(
        &s,
        vec![
            snap(1, "2024-01-01T00:00:00Z", "Engineer", 1, None),
            snap(2, "2024-01-01T00:00:00Z", "Engineer", 1, None),
            snap(1, "2024-02-01T00:00:00Z", "Manager", 1, None),
            snap(2, "2024-03-01T00:00:00Z", "Manager", 2, None),
            snap(1, "2024-04-01T00:00:00Z", "Director", 3, None),
        ],
    )
    .await;
    let q = |pids: Vec<ProspectId>, types: Vec<EventType>, from, to| EventQuery {
        prospect_ids: pids,
        event_types: types,
        from,
        to,
    };
    let all = s
        .query_events(&q(
            vec![pid(1), pid(2)],
            ALL.to_vec(),
            OffsetDateTime::UNIX_EPOCH,
            None,
        ))
        .await
        .unwrap();
    let got: Vec<(u32, EventType, OffsetDateTime)> = all
        .iter()
        .map(|e| {
            (
                if e.prospect_id == pid(1) { 1 } else { 2 },
                e.event_type,
                e.event_time,
            )
        })
        .collect();
    let t = |s: &str| domain::snapshot::parse_timestamp(s).unwrap();
    // Newest first; one snapshot's role and company events share a time: the later stored first.
    assert_eq!(
        got,
        vec![
            (1, COMPANY, t("2024-04-01T00:00:00Z")),
            (1, ROLE, t("2024-04-01T00:00:00Z")),
            (2, COMPANY, t("2024-03-01T00:00:00Z")),
            (2, ROLE, t("2024-03-01T00:00:00Z")),
            (1, ROLE, t("2024-02-01T00:00:00Z")),
        ]
    );
    let first = &all[0];
    assert_eq!(first.data_value()["event_name"], "prospect_changed_company");
    assert_eq!(first.data_value()["current_job_title"], "Director");
    assert_eq!(first.data_value()["previous_job_title"], "Manager");

    // Filters by type and prospect; the window bounds are inclusive.
    let roles = s
        .query_events(&q(
            vec![pid(1)],
            vec![ROLE],
            OffsetDateTime::UNIX_EPOCH,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(roles.len(), 2);
    let w = s
        .query_events(&q(
            vec![pid(1), pid(2)],
            ALL.to_vec(),
            t("2024-02-01T00:00:00Z"),
            Some(t("2024-03-01T00:00:00Z")),
        ))
        .await
        .unwrap();
    assert_eq!(w.len(), 3);
    let w = s
        .query_events(&q(
            vec![pid(1), pid(2)],
            ALL.to_vec(),
            t("2024-02-01T00:00:01Z"),
            Some(t("2024-02-29T23:59:59Z")),
        ))
        .await
        .unwrap();
    assert!(w.is_empty());
    let none = s
        .query_events(&q(
            vec![pid(9)],
            ALL.to_vec(),
            OffsetDateTime::UNIX_EPOCH,
            None,
        ))
        .await
        .unwrap();
    assert!(none.is_empty());
    let none = s
        .query_events(&q(
            vec![pid(2)],
            vec![ANNIV],
            OffsetDateTime::UNIX_EPOCH,
            None,
        ))
        .await
        .unwrap();
    assert!(none.is_empty());
}

// --- anniversary scanner ---------------------------------------------------------------------

const LONG_AGO: OffsetDateTime = datetime!(2024-01-01 0:00 UTC);

async fn anniversary_scan_remembers_its_window(s: DynStore) {
    let a = scope("t1", "pa");
    enroll(&s, &a, "enr_a", spec("k", &[ANNIV], &[pid(1)])).await;
    // Ingested long before: the ingestion window then was (2023-12-31, 2024-01-08].
    s.ingest_snapshots(
        vec![
            snap(1, "2023-12-01T00:00:00Z", "Engineer", 1, Some("2015-06-10")),
            snap(2, "2023-12-01T00:00:00Z", "Engineer", 1, Some("2015-09-10")),
            snap(3, "2023-12-01T00:00:00Z", "Engineer", 1, None),
        ]
        .into(),
        opts(LONG_AGO),
    )
    .await
    .unwrap();
    assert!(s.outbox(None, 10).await.unwrap().is_empty());

    let now = datetime!(2024-06-05 08:00 UTC);
    let r = s.scan_anniversaries(opts(now)).await.unwrap();
    assert_eq!(r.after, Some(date!(2024 - 06 - 04)));
    assert_eq!(r.until, Some(date!(2024 - 06 - 12)));
    assert!(r.candidates >= 1);
    assert_eq!((r.events_created, r.notifications_queued), (1, 1));
    let ev = all_events(&s, &[pid(1)]).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].event_time, datetime!(2024-06-10 0:00 UTC));
    assert_eq!(ev[0].data_value()["years_at_company"], 9);
    assert_eq!(ev[0].data_value()["job_anniversary_date"], "2024-06-10");
    let rows = s.outbox(Some(&a), 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].event_name, "prospect_job_start_anniversary");

    // Scanning again the same day finds nothing new: the window starts where the last ended.
    let r = s.scan_anniversaries(opts(now)).await.unwrap();
    assert_eq!(r.after, Some(date!(2024 - 06 - 12)));
    assert_eq!((r.events_created, r.notifications_queued), (0, 0));
    let r = s
        .scan_anniversaries(opts(datetime!(2024-06-06 08:00 UTC)))
        .await
        .unwrap();
    assert_eq!(r.after, Some(date!(2024 - 06 - 12)));
    assert_eq!(r.until, Some(date!(2024 - 06 - 13)));
    assert_eq!(r.events_created, 0);
    assert_eq!(all_events(&s, &[pid(1), pid(2), pid(3)]).await.len(), 1);
}

async fn anniversary_scan_after_a_long_gap_fires_each_once(s: DynStore) {
    let a = scope("t1", "pa");
    let enrolled: Vec<ProspectId> = (1..=4).map(pid).collect();
    enroll(&s, &a, "enr_a", spec("k", &[ANNIV], &enrolled)).await;
    s.ingest_snapshots(
        vec![
            snap(1, "2023-12-01T00:00:00Z", "Engineer", 1, Some("2015-06-10")),
            // 29 February: 28 February in non-leap years.
            snap(2, "2023-12-01T00:00:00Z", "Engineer", 1, Some("2016-02-29")),
            // Around the turn of the year.
            snap(3, "2023-12-01T00:00:00Z", "Engineer", 1, Some("2020-01-02")),
            snap(4, "2023-12-01T00:00:00Z", "Engineer", 1, Some("2020-12-31")),
        ]
        .into(),
        opts(LONG_AGO),
    )
    .await
    .unwrap();
    let r = s
        .scan_anniversaries(opts(datetime!(2024-06-05 08:00 UTC)))
        .await
        .unwrap();
    assert_eq!(r.events_created, 1); // P1's 2024-06-10
                                     // Down for three years.
    let r = s
        .scan_anniversaries(opts(datetime!(2027-07-01 08:00 UTC)))
        .await
        .unwrap();
    assert_eq!(r.after, Some(date!(2024 - 06 - 12)));
    assert_eq!(r.until, Some(date!(2027 - 07 - 08)));
    // P1: 2025, 2026, 2027-06-10; P2: 2025-02-28, 2026-02-28, 2027-02-28;
    // P3: 2025, 2026, 2027-01-02; P4: 2024, 2025, 2026-12-31.
    assert_eq!(r.candidates, 4);
    assert_eq!((r.events_created, r.notifications_queued), (12, 12));
    let p2: Vec<OffsetDateTime> = all_events(&s, &[pid(2)])
        .await
        .iter()
        .map(|e| e.event_time)
        .collect();
    assert_eq!(
        p2,
        vec![
            datetime!(2027-02-28 0:00 UTC),
            datetime!(2026-02-28 0:00 UTC),
            datetime!(2025-02-28 0:00 UTC),
        ]
    );
    let r = s
        .scan_anniversaries(opts(datetime!(2027-07-01 08:00 UTC)))
        .await
        .unwrap();
    assert_eq!(r.events_created, 0);
    // A window across the new year (wrapping month/day range).
    let r = s
        .scan_anniversaries(opts(datetime!(2027-12-28 08:00 UTC)))
        .await
        .unwrap();
    assert_eq!(r.after, Some(date!(2027 - 07 - 08)));
    assert_eq!(r.until, Some(date!(2028 - 01 - 04)));
    assert_eq!(r.events_created, 2); // P4 2027-12-31, P3 2028-01-02
                                     // P3's 2024-01-02 fired at ingestion (its window then was (2023-12-31, 2024-01-08]).
    let total = all_events(&s, &enrolled).await.len();
    assert_eq!(total, 16);
    assert_eq!(s.outbox(None, 100).await.unwrap().len(), 16);
    let ids: HashSet<String> = all_events(&s, &enrolled)
        .await
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids.len(), 16);
}

async fn concurrent_scans_fire_once(s: DynStore) {
    let a = scope("t1", "pa");
    let enrolled: Vec<ProspectId> = (1..=30).map(pid).collect();
    enroll(&s, &a, "enr_a", spec("k", &[ANNIV], &enrolled)).await;
    let batch: Vec<_> = (1..=30)
        .map(|p| snap(p, "2023-12-01T00:00:00Z", "Engineer", 1, Some("2015-06-10")))
        .collect();
    s.ingest_snapshots(batch.into(), opts(LONG_AGO))
        .await
        .unwrap();
    let now = datetime!(2024-06-05 08:00 UTC);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.scan_anniversaries(opts(now)).await.unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += t.await.unwrap().events_created;
    }
    assert_eq!(created, 30);
    assert_eq!(all_events(&s, &enrolled).await.len(), 30);
    assert_eq!(s.outbox(None, 100).await.unwrap().len(), 30);
    let r = s.scan_anniversaries(opts(now)).await.unwrap();
    assert_eq!(r.events_created, 0);
}

// --- retention -------------------------------------------------------------------------------

async fn prune_deletes_old_events(s: DynStore) {
    ingest_now(
        &s,
        vec![
            snap(1, "2020-01-01T00:00:00Z", "Engineer", 1, None),
            snap(1, "2021-01-01T00:00:00Z", "Manager", 1, None),
            snap(1, "2022-01-01T00:00:00Z", "Director", 1, None),
            snap(1, "2023-01-01T00:00:00Z", "VP", 1, None),
        ],
    )
    .await;
    assert_eq!(all_events(&s, &[pid(1)]).await.len(), 3);
    assert_eq!(
        s.prune_events(datetime!(2020-06-01 0:00 UTC))
            .await
            .unwrap(),
        0
    );
    // Strictly before: the event at exactly 2022-01-01 stays.
    assert_eq!(
        s.prune_events(datetime!(2022-01-01 0:00 UTC))
            .await
            .unwrap(),
        1
    );
    let left: Vec<String> = all_events(&s, &[pid(1)])
        .await
        .iter()
        .map(|e| {
            e.data_value()["current_job_title"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(left, ["VP", "Director"]);
    assert_eq!(
        s.prune_events(datetime!(2030-01-01 0:00 UTC))
            .await
            .unwrap(),
        2
    );
    assert!(all_events(&s, &[pid(1)]).await.is_empty());
}

/// With a retention, an event whose time is before `now - retention` is neither stored nor
/// notified, at ingestion and by the anniversary scanner (it is counted): it used to be created
/// and notified, then deleted by the next prune (at the next start). So a prune with the same
/// retention right after deletes nothing: what a client was told about still exists.
async fn events_beyond_the_retention_are_neither_stored_nor_notified(s: DynStore) {
    let a = scope("t1", "pa");
    enroll(&s, &a, "enr_a", spec("k", &ALL, &[pid(1), pid(2)])).await;
    let retention = std::time::Duration::from_secs(400 * 86_400);
    let kept = |now| IngestOptions {
        event_retention: Some(retention),
        ..opts(now)
    };
    // NOW is 2024-06-01: the cutoff is 2023-04-28 12:00.
    let old = vec![
        snap(1, "2022-01-01T00:00:00Z", "Engineer", 1, None),
        snap(1, "2022-06-01T00:00:00Z", "Manager", 2, None),
    ];
    let c = s.ingest_snapshots(old.into(), kept(NOW)).await.unwrap();
    assert_eq!((c.changed, c.events_created), (1, 0), "{c:?}");
    assert_eq!((c.events_beyond_retention, c.notifications_queued), (2, 0));
    assert!(all_events(&s, &[pid(1)]).await.is_empty());
    // The state moved on all the same: a recent change is compared with "Manager".
    let recent = vec![snap(1, "2024-05-01T00:00:00Z", "Director", 2, None)];
    let c = s.ingest_snapshots(recent.into(), kept(NOW)).await.unwrap();
    assert_eq!(
        (
            c.events_created,
            c.notifications_queued,
            c.events_beyond_retention
        ),
        (1, 1, 0)
    );
    let ev = &all_events(&s, &[pid(1)]).await[0];
    assert_eq!(ev.data_value()["previous_job_title"], "Manager");
    let cutoff = store::retention_cutoff(NOW, retention).unwrap();
    assert_eq!(cutoff, datetime!(2023-04-28 12:00 UTC));
    assert_eq!(s.prune_events(cutoff).await.unwrap(), 0);

    // The scanner after a long gap: of the anniversaries missed since 2022, only those within
    // the retention fire.
    let start = vec![snap(
        2,
        "2021-12-01T00:00:00Z",
        "Engineer",
        1,
        Some("2015-01-10"),
    )];
    let first = datetime!(2022-01-01 08:00 UTC);
    s.ingest_snapshots(start.into(), kept(first)).await.unwrap();
    s.scan_anniversaries(kept(first)).await.unwrap();
    let r = s.scan_anniversaries(kept(NOW)).await.unwrap();
    assert_eq!(r.after, Some(date!(2022 - 01 - 08)));
    assert_eq!((r.events_created, r.notifications_queued), (1, 1), "{r:?}");
    let evs = all_events(&s, &[pid(2)]).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].event_time, datetime!(2024-01-10 0:00 UTC));
    assert_eq!(s.prune_events(cutoff).await.unwrap(), 0);
}

// --- webhooks and delivery -------------------------------------------------------------------

async fn webhook_put_get_delete(s: DynStore) {
    let a = scope("t1", "pa");
    assert!(s.get_webhook(&a).await.unwrap().is_none());
    let w = s
        .put_webhook(&a, "https://example.com/hook", "secret-1", 1_000)
        .await
        .unwrap();
    assert_eq!(w.webhook_url, "https://example.com/hook");
    assert_eq!(w.secret, "secret-1");
    assert_eq!(w.generation, 1);
    assert!(w.enabled);
    assert_eq!(w.disabled_reason, None);
    assert_eq!((w.created_at, w.last_modified_time), (1_000, 1_000));
    assert_eq!(s.get_webhook(&a).await.unwrap(), Some(w));
    let w2 = s
        .put_webhook(&a, "https://example.com/other", "secret-2", 2_000)
        .await
        .unwrap();
    assert_eq!(w2.generation, 2);
    assert_eq!((w2.created_at, w2.last_modified_time), (1_000, 2_000));
    assert_eq!(w2.secret, "secret-2");
    assert!(s.get_webhook(&scope("t1", "pb")).await.unwrap().is_none());
    let r = s.delete_webhook(&scope("t1", "pb")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    s.delete_webhook(&a).await.unwrap();
    assert!(s.get_webhook(&a).await.unwrap().is_none());
    let r = s.delete_webhook(&a).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
}

/// `PUT /v1/webhooks/{partner_id}`: a new URL, the same secret, enabled again like a
/// re-registration; never creates a webhook; scoped to the tenant.
async fn webhook_url_update_keeps_the_secret(s: DynStore) {
    let a = scope("t1", "pa");
    let r = s
        .update_webhook_url(&a, "http://127.0.0.1:9/x", 1_000)
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert!(
        s.get_webhook(&a).await.unwrap().is_none(),
        "never creates one"
    );
    queue_changes(&s, &a, 1, 1).await;
    let now = ms(NOW) + 1_000;
    let w = s
        .put_webhook(&a, "http://127.0.0.1:9/a", "sa", now)
        .await
        .unwrap();
    // The same partner id in another tenant: not found there, ours untouched.
    let r = s
        .update_webhook_url(&scope("t2", "pa"), "http://127.0.0.1:9/evil", now)
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(s.get_webhook(&a).await.unwrap(), Some(w.clone()));
    // A 410 disables it; its notification waits.
    let c = s
        .claim_due(now, 30_000, 10, &ClaimRoom::excluding(&[]))
        .await
        .unwrap();
    assert_eq!(c.len(), 1);
    s.record_attempt(attempt(&c[0], now, AttemptOutcome::Gone, Some(410)))
        .await
        .unwrap();
    assert!(!s.get_webhook(&a).await.unwrap().unwrap().enabled);
    // The new URL keeps the secret, starts a generation, enables it; the notification flows.
    let w2 = s
        .update_webhook_url(&a, "http://127.0.0.1:9/a2", now + 5)
        .await
        .unwrap();
    assert_eq!(w2.webhook_url, "http://127.0.0.1:9/a2");
    assert_eq!(w2.secret, "sa");
    assert_eq!(w2.generation, w.generation + 1);
    assert!(w2.enabled);
    assert_eq!(
        (w2.disabled_reason.as_deref(), w2.disabled_at),
        (None, None)
    );
    assert_eq!((w2.created_at, w2.last_modified_time), (now, now + 5));
    assert_eq!(s.get_webhook(&a).await.unwrap(), Some(w2.clone()));
    let c2 = s
        .claim_due(now + 5, 30_000, 10, &ClaimRoom::excluding(&[]))
        .await
        .unwrap();
    assert_eq!(c2.len(), 1);
    assert_eq!(
        (c2[0].webhook_url.as_str(), c2[0].secret.as_str()),
        ("http://127.0.0.1:9/a2", "sa")
    );
    assert_eq!(c2[0].generation, w2.generation);
}

/// Enrolls `n` prospects for scope `sc` and ingests one role change for each: `n`
/// notifications queued at `NOW`.
async fn queue_changes(s: &DynStore, sc: &Scope, first: u32, n: u32) {
    let ps: Vec<ProspectId> = (first..first + n).map(pid).collect();
    enroll(
        s,
        sc,
        &format!("enr_{}_{first}", sc.partner.0),
        spec("k", &ALL, &ps),
    )
    .await;
    let batch: Vec<_> = (first..first + n)
        .flat_map(|p| {
            [
                snap(p, "2024-01-01T00:00:00Z", "Engineer", 1, None),
                snap(p, "2024-02-01T00:00:00Z", "Manager", 1, None),
            ]
        })
        .collect();
    let c = ingest_now(s, batch).await;
    assert_eq!(c.notifications_queued, n as u64);
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn attempt(c: &Claimed, at: i64, outcome: AttemptOutcome, code: Option<u16>) -> AttemptRecord {
    AttemptRecord {
        row: c.row,
        lease_until: c.lease_until,
        scope: c.scope.clone(),
        generation: c.generation,
        attempted_at: at,
        status_code: code,
        error: None,
        latency_ms: 12,
        response_body: "ok".into(),
        outcome,
        disable_after_ms: 5 * 24 * 3600 * 1000,
    }
}

async fn claims_leases_and_attempts(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t1", "pb");
    queue_changes(&s, &a, 1, 2).await;
    queue_changes(&s, &b, 10, 1).await;
    let now = ms(NOW) + 1_000;
    // No webhook, nothing to claim.
    assert!(s
        .claim_due(now, 30_000, 10, &ClaimRoom::any())
        .await
        .unwrap()
        .is_empty());
    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", now)
        .await
        .unwrap();
    s.put_webhook(&b, "http://127.0.0.1:9/b", "sb", now)
        .await
        .unwrap();
    // Excluded scopes are skipped.
    let got = s
        .claim_due(
            now,
            30_000,
            10,
            &ClaimRoom::excluding(std::slice::from_ref(&a)),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].scope, b);
    assert_eq!(got[0].webhook_url, "http://127.0.0.1:9/b");
    assert_eq!(got[0].secret, "sb");
    assert_eq!(got[0].lease_until, now + 30_000);
    let got = s
        .claim_due(now, 30_000, 10, &ClaimRoom::any())
        .await
        .unwrap();
    assert_eq!(got.len(), 2, "b's row is leased");
    assert!(got.iter().all(|c| c.scope == a && c.cycle_attempts == 0));
    assert!(got[0].row < got[1].row);
    let payload: serde_json::Value = serde_json::from_str(&got[0].payload).unwrap();
    assert_eq!(payload["event_id"], got[0].event_id.as_str());
    assert_eq!(payload["tenant_id"], "t1");
    // Leased rows are not claimed again until the lease expires.
    assert!(s
        .claim_due(now + 1, 30_000, 10, &ClaimRoom::any())
        .await
        .unwrap()
        .is_empty());
    let later = now + 30_001;
    let again = s
        .claim_due(later, 30_000, 10, &ClaimRoom::any())
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    let first = again.iter().find(|c| c.row == got[0].row).unwrap().clone();
    let second = again.iter().find(|c| c.row == got[1].row).unwrap().clone();

    // A stale lease: the attempt is logged but the state stays.
    s.record_attempt(attempt(
        &got[0],
        later,
        AttemptOutcome::Delivered,
        Some(200),
    ))
    .await
    .unwrap();
    let (info, attempts) = s
        .get_delivery(&a, &first.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, DeliveryStatus::Pending);
    assert_eq!(attempts.len(), 1);
    // The current lease: delivered.
    s.record_attempt(attempt(
        &first,
        later + 5,
        AttemptOutcome::Delivered,
        Some(200),
    ))
    .await
    .unwrap();
    let (info, attempts) = s
        .get_delivery(&a, &first.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, DeliveryStatus::Delivered);
    // Both attempts really happened, so both count; only the lease holder moved the state.
    assert_eq!(info.attempts, 2);
    assert_eq!(info.last_attempt_at, Some(later + 5));
    assert_eq!(info.last_status_code, Some(200));
    assert_eq!(info.next_attempt_at, None);
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1].status_code, Some(200));
    assert_eq!(attempts[1].latency_ms, 12);
    assert_eq!(attempts[1].response_body.as_deref(), Some("ok"));
    assert!(s
        .get_delivery(&b, &first.delivery_id)
        .await
        .unwrap()
        .is_none());

    // A retry: pending until its time, then claimable with the cycle count.
    let retry_at = later + 60_000;
    let mut rec = attempt(
        &second,
        later + 6,
        AttemptOutcome::RetryAt(retry_at),
        Some(500),
    );
    rec.error = Some("HTTP 500".into());
    s.record_attempt(rec).await.unwrap();
    let (info, _) = s
        .get_delivery(&a, &second.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, DeliveryStatus::Pending);
    assert_eq!(info.next_attempt_at, Some(retry_at));
    assert_eq!(info.last_error.as_deref(), Some("HTTP 500"));
    let none = s
        .claim_due(
            retry_at - 1,
            30_000,
            10,
            &ClaimRoom::excluding(std::slice::from_ref(&b)),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    let c = s
        .claim_due(
            retry_at,
            30_000,
            10,
            &ClaimRoom::excluding(std::slice::from_ref(&b)),
        )
        .await
        .unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].cycle_attempts, 1);
    s.record_attempt(attempt(
        &c[0],
        retry_at + 1,
        AttemptOutcome::GiveUp,
        Some(500),
    ))
    .await
    .unwrap();
    let (info, attempts) = s
        .get_delivery(&a, &second.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, DeliveryStatus::Failed);
    assert_eq!(info.attempts, 2);
    assert_eq!(attempts.len(), 2);
    let rows = s.outbox(Some(&a), 10).await.unwrap();
    let st: Vec<DeliveryStatus> = rows.iter().map(|r| r.status).collect();
    assert_eq!(st, [DeliveryStatus::Delivered, DeliveryStatus::Failed]);
    assert_eq!(rows[1].attempts, 2);
}

async fn claims_respect_each_webhooks_room(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t1", "pb");
    queue_changes(&s, &a, 1, 4).await;
    queue_changes(&s, &b, 10, 3).await;
    let now = ms(NOW) + 1_000;
    for (sc, url) in [(&a, "http://127.0.0.1:9/a"), (&b, "http://127.0.0.1:9/b")] {
        s.put_webhook(sc, url, "s", now).await.unwrap();
    }
    // a has room for one more, b (not listed) for the default two.
    let room = ClaimRoom {
        per_scope: 2,
        scopes: vec![(a.clone(), 1)],
    };
    let got = s.claim_due(now, 30_000, 10, &room).await.unwrap();
    let of = |c: &[Claimed], sc: &Scope| c.iter().filter(|c| &c.scope == sc).count();
    assert_eq!((of(&got, &a), of(&got, &b)), (1, 2));
    // The overall limit still applies; a webhook without room is skipped whatever its backlog.
    let none_for_a = ClaimRoom {
        per_scope: 10,
        scopes: vec![(a.clone(), 0)],
    };
    let got = s.claim_due(now, 30_000, 10, &none_for_a).await.unwrap();
    assert_eq!((of(&got, &a), of(&got, &b)), (0, 1));
    let got = s
        .claim_due(now, 30_000, 2, &ClaimRoom::any())
        .await
        .unwrap();
    assert_eq!(of(&got, &a), 2);
    let got = s
        .claim_due(now, 30_000, 10, &ClaimRoom::any())
        .await
        .unwrap();
    assert_eq!((of(&got, &a), of(&got, &b)), (1, 0));
}

async fn concurrent_claims_never_overlap(s: DynStore) {
    let a = scope("t1", "pa");
    queue_changes(&s, &a, 1, 60).await;
    let now = ms(NOW) + 1_000;
    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", now)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .claim_due(now, 60_000, 7, &ClaimRoom::any())
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|c| c.delivery_id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 60, "each notification claimed exactly once");
    assert_eq!(distinct.len(), 60);
}

async fn delivery_log_retry_replay_and_direct(s: DynStore) {
    let a = scope("t1", "pa");
    queue_changes(&s, &a, 1, 3).await;
    let now = ms(NOW) + 1_000;
    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", now)
        .await
        .unwrap();
    let claimed = s
        .claim_due(now, 30_000, 10, &ClaimRoom::any())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    s.record_attempt(attempt(
        &claimed[0],
        now,
        AttemptOutcome::Delivered,
        Some(204),
    ))
    .await
    .unwrap();
    s.record_attempt(attempt(&claimed[1], now, AttemptOutcome::GiveUp, Some(500)))
        .await
        .unwrap();

    let page = s
        .list_deliveries(
            &a,
            &DeliveryQuery {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = page
        .deliveries
        .iter()
        .map(|d| d.delivery_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            claimed[0].delivery_id.as_str(),
            claimed[1].delivery_id.as_str()
        ]
    );
    let next = s
        .list_deliveries(
            &a,
            &DeliveryQuery {
                limit: 2,
                cursor: page.next_cursor,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(next.deliveries.len(), 1);
    assert_eq!(next.next_cursor, None);
    let failed = s
        .list_deliveries(
            &a,
            &DeliveryQuery {
                status: Some(DeliveryStatus::Failed),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.deliveries.len(), 1);
    assert_eq!(failed.deliveries[0].delivery_id, claimed[1].delivery_id);
    let by_name = s
        .list_deliveries(
            &a,
            &DeliveryQuery {
                event_name: Some("prospect_changed_company".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(by_name.deliveries.is_empty());
    let other = s
        .list_deliveries(
            &scope("t1", "pb"),
            &DeliveryQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(other.deliveries.is_empty());

    // Manual retry: pending again with a fresh cycle; NotFound outside the scope.
    let r = s
        .retry_delivery(&scope("t1", "pb"), &claimed[1].delivery_id, now + 10)
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let r = s.retry_delivery(&a, "dl_nope", now + 10).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    s.retry_delivery(&a, &claimed[1].delivery_id, now + 10)
        .await
        .unwrap();
    let (info, _) = s
        .get_delivery(&a, &claimed[1].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, DeliveryStatus::Pending);
    assert_eq!(info.next_attempt_at, Some(now + 10));
    let c = s
        .claim_due(now + 10, 30_000, 10, &ClaimRoom::any())
        .await
        .unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].cycle_attempts, 0);

    // Replay by event window and name.
    let t = NOW
        .replace_date(date!(2024 - 02 - 01))
        .replace_time(time::Time::MIDNIGHT);
    let q = |names: Option<Vec<String>>| ReplayQuery {
        from: t.unix_timestamp(),
        to: Some(t.unix_timestamp()),
        event_names: names,
    };
    assert_eq!(s.replay(&a, &q(None), now + 20).await.unwrap(), 3);
    assert_eq!(
        s.replay(&a, &q(Some(vec!["prospect_changed_role".into()])), now + 20)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        s.replay(
            &a,
            &q(Some(vec!["prospect_changed_company".into()])),
            now + 20
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        s.replay(
            &a,
            &ReplayQuery {
                from: t.unix_timestamp() + 1,
                to: None,
                event_names: None
            },
            now + 20
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        s.replay(&scope("t9", "pa"), &q(None), now).await.unwrap(),
        0
    );
    let (info, _) = s
        .get_delivery(&a, &claimed[0].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, DeliveryStatus::Pending);

    // Direct (simulated) notifications: idempotent by delivery id, without an enrollment.
    let item = |n: u32| DirectNotification {
        delivery_id: format!("dl_sim_{n}"),
        event_id: format!("sim_{n}"),
        event_name: "prospect_changed_role".into(),
        event_time: 1_700_000_000,
        enrollment_key: "sim".into(),
        payload: json!({"simulated": true, "n": n}),
    };
    assert_eq!(
        s.queue_direct(&a, vec![item(1), item(2)], now)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.queue_direct(&a, vec![item(2), item(3)], now)
            .await
            .unwrap(),
        1
    );
    let (info, attempts) = s.get_delivery(&a, "dl_sim_1").await.unwrap().unwrap();
    assert_eq!(info.enrollment_id, None);
    assert_eq!(info.status, DeliveryStatus::Pending);
    assert!(attempts.is_empty());
    let rows = s.outbox(Some(&a), 100).await.unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[3].payload, json!({"simulated": true, "n": 1}));
    assert_eq!(rows[3].enrollment_id, None);
}

async fn webhook_disabled_by_gone_and_by_continuous_failure(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t1", "pb");
    queue_changes(&s, &a, 1, 1).await;
    queue_changes(&s, &b, 10, 2).await;
    let now = ms(NOW) + 1_000;
    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", now)
        .await
        .unwrap();
    s.put_webhook(&b, "http://127.0.0.1:9/b", "sb", now)
        .await
        .unwrap();

    // 410: the webhook is disabled, the notification waits, nothing is claimable.
    let c = s
        .claim_due(
            now,
            30_000,
            10,
            &ClaimRoom::excluding(std::slice::from_ref(&b)),
        )
        .await
        .unwrap();
    assert_eq!(c.len(), 1);
    s.record_attempt(attempt(&c[0], now, AttemptOutcome::Gone, Some(410)))
        .await
        .unwrap();
    let w = s.get_webhook(&a).await.unwrap().unwrap();
    assert!(!w.enabled);
    assert_eq!(
        w.disabled_reason.as_deref(),
        Some("receiver answered 410 Gone")
    );
    assert_eq!(w.disabled_at, Some(now), "disabled at the 410's attempt");
    let (info, _) = s
        .get_delivery(&a, &c[0].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, DeliveryStatus::Pending);
    assert!(s
        .claim_due(
            now + 1,
            30_000,
            10,
            &ClaimRoom::excluding(std::slice::from_ref(&b))
        )
        .await
        .unwrap()
        .is_empty());
    // Re-registering enables it again (new generation) and the notification flows.
    let w = s
        .put_webhook(&a, "http://127.0.0.1:9/a2", "sa2", now + 2)
        .await
        .unwrap();
    assert!(w.enabled && w.generation == 2 && w.disabled_reason.is_none());
    assert_eq!(w.disabled_at, None);
    assert_eq!(s.get_webhook(&a).await.unwrap().unwrap(), w);
    let c2 = s
        .claim_due(
            now + 2,
            30_000,
            10,
            &ClaimRoom::excluding(std::slice::from_ref(&b)),
        )
        .await
        .unwrap();
    assert_eq!(c2.len(), 1);
    assert_eq!(c2[0].generation, 2);
    assert_eq!(c2[0].webhook_url, "http://127.0.0.1:9/a2");
    // An attempt against the old generation does not disable the new registration.
    s.record_attempt(attempt(&c[0], now + 3, AttemptOutcome::Gone, Some(410)))
        .await
        .unwrap();
    assert!(s.get_webhook(&a).await.unwrap().unwrap().enabled);

    // Continuous failure for longer than disable_after: disabled.
    let day = 24 * 3600 * 1000;
    let c = s
        .claim_due(
            now,
            30_000,
            10,
            &ClaimRoom::excluding(std::slice::from_ref(&a)),
        )
        .await
        .unwrap();
    assert_eq!(c.len(), 2);
    let mut r = attempt(&c[0], now, AttemptOutcome::RetryAt(now + day), Some(500));
    r.disable_after_ms = 2 * day;
    s.record_attempt(r).await.unwrap();
    assert!(s.get_webhook(&b).await.unwrap().unwrap().enabled);
    let mut r = attempt(
        &c[1],
        now + 3 * day,
        AttemptOutcome::RetryAt(now + 4 * day),
        Some(500),
    );
    r.disable_after_ms = 2 * day;
    s.record_attempt(r).await.unwrap();
    let w = s.get_webhook(&b).await.unwrap().unwrap();
    assert!(!w.enabled);
    assert_eq!(w.disabled_reason.as_deref(), Some("failing continuously"));
    assert_eq!(w.disabled_at, Some(now + 3 * day));
    assert!(s
        .claim_due(
            now + 5 * day,
            30_000,
            10,
            &ClaimRoom::excluding(std::slice::from_ref(&a))
        )
        .await
        .unwrap()
        .is_empty());
    // A late failure of an attempt that was in flight keeps the time it was disabled at.
    let mut r = attempt(&c[0], now + 6 * day, AttemptOutcome::GiveUp, Some(500));
    r.disable_after_ms = 2 * day;
    s.record_attempt(r).await.unwrap();
    let late = s.get_webhook(&b).await.unwrap().unwrap();
    assert_eq!(late.disabled_at, Some(now + 3 * day));
}

/// Notifications of a partner without an enabled webhook are parked out of the claim range
/// (so claims never scan them) and flow again from the moment the webhook is registered.
async fn notifications_without_a_webhook_wait_parked(s: DynStore) {
    let a = scope("t1", "pa");
    queue_changes(&s, &a, 1, 3).await;
    let now = ms(NOW) + 1_000;
    let page = s
        .list_deliveries(
            &a,
            &DeliveryQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.deliveries.len(), 3);
    assert!(page
        .deliveries
        .iter()
        .all(|d| d.status == DeliveryStatus::Pending));
    assert!(
        page.deliveries.iter().all(|d| d.next_attempt_at.is_none()),
        "parked: no time"
    );
    assert!(s
        .claim_due(i64::MAX - 1, 1, 10, &ClaimRoom::any())
        .await
        .unwrap()
        .is_empty());

    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", now)
        .await
        .unwrap();
    let got = s
        .claim_due(now, 30_000, 10, &ClaimRoom::any())
        .await
        .unwrap();
    assert_eq!(got.len(), 3, "registration makes them due now");
    // Renewing a lease moves it; the old lease no longer matches.
    assert!(s
        .set_lease(got[0].row, got[0].lease_until, Some(now + 60_000))
        .await
        .unwrap());
    assert!(!s
        .set_lease(got[0].row, got[0].lease_until, Some(now + 70_000))
        .await
        .unwrap());
    assert!(
        s.claim_due(now + 40_000, 30_000, 10, &ClaimRoom::any())
            .await
            .unwrap()
            .len()
            == 2
    );
    let got: Vec<Claimed> = {
        let mut g = got.clone();
        g[0].lease_until = now + 60_000;
        g[1].lease_until = now + 40_000 + 30_000;
        g[2].lease_until = now + 40_000 + 30_000;
        g
    };

    // A 410 disables the webhook: the notification goes back to waiting, parked.
    s.record_attempt(attempt(&got[0], now + 1, AttemptOutcome::Gone, Some(410)))
        .await
        .unwrap();
    // Releasing the other claims (shutdown) while disabled keeps nothing claimable.
    for c in &got[1..] {
        assert!(s.set_lease(c.row, c.lease_until, None).await.unwrap());
    }
    assert!(s
        .claim_due(now + 10, 30_000, 10, &ClaimRoom::any())
        .await
        .unwrap()
        .is_empty());
    // Re-registration: all three flow again.
    s.put_webhook(&a, "http://127.0.0.1:9/a2", "sa2", now + 20)
        .await
        .unwrap();
    let got = s
        .claim_due(now + 30, 30_000, 10, &ClaimRoom::any())
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|c| c.webhook_url.ends_with("/a2")));

    // Deleting the webhook parks what is pending and not held.
    for c in &got {
        assert!(s.set_lease(c.row, c.lease_until, None).await.unwrap());
    }
    s.delete_webhook(&a).await.unwrap();
    assert!(s
        .claim_due(i64::MAX - 1, 1, 10, &ClaimRoom::any())
        .await
        .unwrap()
        .is_empty());
}

/// Idempotency keys: one reservation at a time, writes fenced by it (a taken-over reservation
/// writes nothing), answers replayed, other requests refused, scopes apart, expiry after 24 h.
async fn idempotency_keys_reserve_fence_replay_and_expire(s: DynStore) {
    use store::idempotency::{fenced, IDEMPOTENCY_LEASE_MS as LEASE, IDEMPOTENCY_TTL_MS as TTL};
    let a = scope("t1", "pa");
    let now = ms(NOW);
    let (fa, fb) = (b"request a".as_slice(), b"request b".as_slice());
    let execute = |b: IdemBegin| match b {
        IdemBegin::Execute(f) => f,
        other => panic!("expected a reservation, got {other:?}"),
    };
    let create = |s: &DynStore, id: &str| {
        let (s, sc, id) = (s.clone(), a.clone(), id.to_string());
        async move {
            let new = NewEnrollment {
                enrollment_id: eid(&id),
                spec: spec("idem", &[ROLE], &[pid(1)]),
                now: 1_700_000_000,
            };
            s.create_enrollment(&sc, new).await
        }
    };

    // Reserve, execute fenced, store the answer; then the same request is replayed.
    let f1 = execute(s.idempotency_begin(&a, "k1", fa, now).await.unwrap());
    assert_eq!(
        s.idempotency_begin(&a, "k1", fa, now + 1).await.unwrap(),
        IdemBegin::InProgress
    );
    assert_eq!(
        s.idempotency_begin(&a, "k1", fb, now + 1).await.unwrap(),
        IdemBegin::Mismatch
    );
    fenced(f1.clone(), create(&s, "en_idem1")).await.unwrap();
    let answer = IdemAnswer {
        status: 200,
        detail: false,
        body: br#"{"enrollment_id":"en_idem1"}"#.to_vec(),
    };
    assert!(s.idempotency_finish(&f1, &answer).await.unwrap());
    assert_eq!(
        s.idempotency_begin(&a, "k1", fa, now + 2).await.unwrap(),
        IdemBegin::Replay(answer.clone())
    );
    assert_eq!(
        s.idempotency_begin(&a, "k1", fb, now + 2).await.unwrap(),
        IdemBegin::Mismatch
    );
    // The same key of another partner is another key.
    execute(
        s.idempotency_begin(&scope("t1", "pb"), "k1", fa, now)
            .await
            .unwrap(),
    );

    // A reservation abandoned past its lease with nothing written is taken over; the old
    // holder's write is then refused (nothing written), the new holder's goes through.
    let old = execute(s.idempotency_begin(&a, "k2", fa, now).await.unwrap());
    let new = execute(
        s.idempotency_begin(&a, "k2", fa, now + LEASE)
            .await
            .unwrap(),
    );
    assert!(matches!(
        fenced(old.clone(), create(&s, "en_idem2")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        fenced(
            old.clone(),
            s.put_webhook(&a, "http://127.0.0.1:9/x", "sx", now)
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_webhook(&a).await.unwrap(), None);
    fenced(new.clone(), create(&s, "en_idem3")).await.unwrap();
    assert!(!s.idempotency_finish(&old, &answer).await.unwrap());
    let ids: Vec<String> = s
        .list_enrollments(&a, &EnrollmentQuery::default())
        .await
        .unwrap()
        .enrollments
        .into_iter()
        .map(|e| e.enrollment_id.0)
        .collect();
    assert_eq!(ids, ["en_idem1", "en_idem3"]);

    // Executed but never answered (a crash between the write and the answer): never executed
    // again, whether the lease ran out or the request released the key.
    let f3 = execute(s.idempotency_begin(&a, "k3", fa, now).await.unwrap());
    fenced(f3.clone(), create(&s, "en_idem4")).await.unwrap();
    assert_eq!(
        s.idempotency_begin(&a, "k3", fa, now + LEASE)
            .await
            .unwrap(),
        IdemBegin::ExecutedWithoutAnswer
    );
    s.idempotency_release(&f3).await.unwrap();
    assert_eq!(
        s.idempotency_begin(&a, "k3", fa, now + 1).await.unwrap(),
        IdemBegin::ExecutedWithoutAnswer
    );

    // A request that wrote nothing (a clean NotFound) and released its key: a retry executes.
    let f4 = execute(s.idempotency_begin(&a, "k4", fa, now).await.unwrap());
    let missing = s.update_enrollment(&a, "en_missing", spec("idem", &[ROLE], &[pid(1)]));
    assert!(matches!(
        fenced(f4.clone(), missing).await,
        Err(StoreError::NotFound)
    ));
    s.idempotency_release(&f4).await.unwrap();
    execute(s.idempotency_begin(&a, "k4", fa, now + 1).await.unwrap());

    // After 24 h a key is free again (another request may use it), and pruning deletes it.
    execute(s.idempotency_begin(&a, "k1", fb, now + TTL).await.unwrap());
    let pruned = s.prune_idempotency_keys(now + 2).await.unwrap();
    assert_eq!(pruned, 4, "k2, k3, k4 and pb's k1 (k1 of pa was renewed)");
    assert_eq!(
        s.idempotency_begin(&a, "k1", fb, now + TTL + 1)
            .await
            .unwrap(),
        IdemBegin::InProgress
    );
}
