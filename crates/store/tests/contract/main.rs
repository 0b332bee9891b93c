//! The store contract: one suite written against `DynStore`, run for every backend.
//! SQLite always (a temporary file per test); PostgreSQL when `PROSPECT_EVENTS_TEST_POSTGRES_URL`
//! is set (a fresh schema per test; `scripts/pg-test-cluster.sh` starts a throwaway server).
//! The tests live in one module per concern (keys, enrollments, ingest, scan, outbox, webhooks,
//! idempotency), the shared helpers here; `contract!` lists each test once as `module::name`.
//!
//!     eval "$(scripts/pg-test-cluster.sh)" && cargo test -p prospect-events-store --test contract

extern crate prospect_events_store as store;

#[path = "../support/mod.rs"]
mod support;
mod v2;

mod enrollments;
mod idempotency;
mod ingest;
mod keys;
mod outbox;
mod scan;
mod stats;
mod webhooks;

use domain::snapshot::Snapshot;
use domain::{EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use store::*;
use time::macros::{date, datetime};
use time::OffsetDateTime;

/// Declares each contract test once per backend.
macro_rules! contract {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let b = crate::support::Backend::sqlite().await;
                    crate::$module::$name(b.store.clone()).await;
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
                    crate::$module::$name(b.store.clone()).await;
                    b.finish().await;
                }
            )*
        }
    };
}

contract!(
    keys::backend_answers_ping,
    keys::keys_create_list_revoke_principal,
    enrollments::enrollments_create_list_filter_paginate,
    enrollments::enrollment_update_replaces_atomically,
    enrollments::enrollment_delete_and_scope,
    enrollments::concurrent_updates_keep_the_prospect_index_exact,
    enrollments::repeated_ids_are_indexed_once,
    enrollments::covering_enrollments_by_event_type,
    ingest::ingest_counts_events_and_outbox,
    ingest::ingest_is_idempotent_and_keeps_key_at_queue_time,
    ingest::ingest_fires_anniversaries_due_at_ingestion,
    ingest::concurrent_ingestion_of_new_prospects,
    ingest::bulk_ingest_commits_in_groups,
    ingest::repeated_snapshots_still_advance_the_state_time,
    ingest::stored_times_round_trip_exactly_and_out_of_range_ones_are_refused,
    ingest::query_events_order_and_window,
    scan::anniversary_scan_remembers_its_window,
    scan::anniversary_scan_after_a_long_gap_fires_each_once,
    scan::concurrent_scans_fire_once,
    ingest::prune_deletes_old_events,
    ingest::events_beyond_the_retention_are_neither_stored_nor_notified,
    webhooks::webhook_put_get_delete,
    outbox::claims_leases_and_attempts,
    outbox::attempts_recorded_together_as_one_by_one,
    outbox::claims_respect_each_webhooks_room,
    webhooks::notifications_without_a_webhook_wait_parked,
    outbox::concurrent_claims_never_overlap,
    outbox::delivery_log_retry_replay_and_direct,
    webhooks::webhook_disabled_by_gone_and_by_continuous_failure,
    webhooks::webhook_url_update_keeps_the_secret,
    idempotency::idempotency_keys_reserve_fence_replay_and_expire,
    stats::webhook_stats_window_percentiles_and_backlog,
    stats::daily_notifications_by_day_and_event,
    stats::stats_are_per_webhook,
    v2::v2_webhooks_cap_names_legacy_and_changes,
    v2::notifications_go_to_their_enrollments_webhook,
    v2::disabled_webhooks_wait_and_rotation_signs_with_both,
    v2::deleting_a_used_webhook_needs_force_and_pauses,
    v2::webhook_health_moves_per_webhook_in_batches,
    outbox::attempts_with_nul_text_are_recorded,
    outbox::lease_changes_in_a_batch_report_stale_ones,
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
            webhook_id: store::LEGACY_WEBHOOK_ID.to_string(),
            now: NOW,
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

/// The scope's v1 (legacy) webhook.
fn legacy(s: &Scope) -> WebhookKey {
    WebhookKey::legacy(s)
}

/// Unix milliseconds as a time.
fn at_ms(ms: i64) -> OffsetDateTime {
    domain::clock::from_unix_millis(ms)
}

fn attempt(c: &Claimed, at: i64, outcome: AttemptOutcome, code: Option<u16>) -> AttemptRecord {
    AttemptRecord {
        row: c.row,
        lease_until: c.lease_until,
        scope: c.scope.clone(),
        webhook_id: c.webhook_id.clone(),
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
