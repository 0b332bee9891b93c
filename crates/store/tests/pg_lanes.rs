//! PostgreSQL applies a batch in lanes (D93), split by prospect; SQLite in one transaction.
//! The same batches must leave the same counts, events, notifications and states on both.
//! Runs when `PROSPECT_EVENTS_TEST_POSTGRES_URL` is set (`scripts/pg-test-cluster.sh`).

extern crate prospect_events_store as store;

mod support;

use domain::snapshot::Snapshot;
use domain::{EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use std::collections::BTreeMap;
use store::*;
use time::macros::datetime;
use time::OffsetDateTime;

const PROSPECTS: u32 = 400;
const NOW: OffsetDateTime = datetime!(2024-06-01 12:00 UTC);

fn pid(n: u32) -> ProspectId {
    ProspectId::parse(&format!("{:040x}", 0x5eed_0000_u64 + u64::from(n) * 7919)).unwrap()
}

/// Observation `round` of prospect `p`: titles change every other round for half of them,
/// companies every third, a job start whose anniversary falls in the ingestion window for
/// some, and an observation time that goes back in round 3 for a tenth (an older snapshot).
fn snapshot(p: u32, round: u32) -> Snapshot {
    let day = if round == 3 && p.is_multiple_of(10) {
        1
    } else {
        1 + round * 3
    };
    let start = match p % 7 {
        0 => Some("2020-06-05"),
        1 if round >= 2 => Some("2019-06-03"),
        _ => None,
    };
    Snapshot::from_json(&serde_json::json!({
        "prospect_id": pid(p).to_string(),
        "observed_at": format!("2024-03-{day:02}T{:02}:00:00Z", p % 24),
        "full_name": format!("Person {p}"),
        "job_title": format!("Title {}", (round + p % 2) / 2),
        "company_id": format!("{:032x}", (p + round / 3) % 13),
        "company_name": format!("Company {}", (p + round / 3) % 13),
        "job_start_date": start,
    }))
    .unwrap()
}

/// Every prospect's rounds `rounds`, interleaved as a file's rounds are.
fn batch(rounds: std::ops::Range<u32>) -> Vec<Snapshot> {
    rounds
        .flat_map(|r| (0..PROSPECTS).map(move |p| snapshot(p, r)))
        .collect()
}

/// Three enrollments over overlapping ranges, with different event types.
async fn enroll(s: &DynStore) {
    let scope = Scope {
        tenant: TenantId("t".into()),
        partner: PartnerId("p".into()),
    };
    let plans: [(&str, std::ops::Range<u32>, Vec<EventType>); 3] = [
        ("en_all", 0..200, EventType::ALL.to_vec()),
        ("en_role", 100..300, vec![EventType::ChangedRole]),
        (
            "en_rest",
            150..PROSPECTS,
            vec![EventType::ChangedCompany, EventType::JobStartAnniversary],
        ),
    ];
    for (id, range, types) in plans {
        s.create_enrollment(
            &scope,
            NewEnrollment {
                enrollment_id: EnrollmentId(id.into()),
                spec: EnrollmentSpec {
                    enrollment_key: format!("key_{id}"),
                    event_types: types,
                    prospect_ids: range.map(pid).collect(),
                },
                webhook_id: LEGACY_WEBHOOK_ID.to_string(),
                now: NOW,
            },
        )
        .await
        .unwrap();
    }
}

/// What a store holds: the events (by id, and each prospect's in the order the events API
/// lists them) and the notifications (by delivery id).
#[derive(Debug, PartialEq)]
struct Held {
    events: BTreeMap<String, (String, EventType, OffsetDateTime, serde_json::Value)>,
    per_prospect: BTreeMap<String, Vec<String>>,
    outbox: BTreeMap<String, String>,
}

async fn held(s: &DynStore) -> Held {
    let all = s
        .query_events(&EventQuery {
            prospect_ids: (0..PROSPECTS).map(pid).collect(),
            event_types: EventType::ALL.to_vec(),
            from: OffsetDateTime::UNIX_EPOCH,
            to: None,
        })
        .await
        .unwrap();
    let mut per_prospect: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &all {
        let p = e.prospect_id.to_string();
        per_prospect.entry(p).or_default().push(e.event_id.clone());
    }
    let events = all
        .into_iter()
        .map(|e| {
            let v = (
                e.prospect_id.to_string(),
                e.event_type,
                e.event_time,
                e.data_value(),
            );
            (e.event_id, v)
        })
        .collect();
    let outbox = s
        .outbox(None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|n| {
            let row = format!(
                "{} {} {:?} {} {} {} {:?} {}",
                n.event_id,
                n.event_name,
                n.enrollment_id,
                n.enrollment_key,
                n.webhook_id,
                n.payload,
                n.status,
                n.attempts
            );
            (n.delivery_id, row)
        })
        .collect();
    Held {
        events,
        per_prospect,
        outbox,
    }
}

async fn ingest(s: &DynStore, b: Vec<Snapshot>) -> IngestCounts {
    let o = IngestOptions {
        now: NOW,
        anniversary_lead_days: 7,
        event_retention: None,
    };
    s.ingest_snapshots(b.into(), o).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_spanning_both_lanes_store_what_sqlite_stores() {
    let Some(pg) = support::Backend::postgres().await else {
        return;
    };
    let lite = support::Backend::sqlite().await;
    // 400 prospects over 128 lock buckets: both lanes get some (all in one would take
    // every prospect's bucket having the same parity).
    let stages = [
        batch(0..2),
        batch(2..4),
        batch(4..6),
        batch(0..6),
        batch(6..7),
        // Round 6 observed again an hour later: repeats, each settled by its content hash on
        // PostgreSQL (D123), by SQLite's conditional update (D20).
        batch(6..7)
            .into_iter()
            .map(|mut s| {
                s.observed_at += time::Duration::hours(1);
                s
            })
            .collect(),
    ];
    enroll(&lite.store).await;
    enroll(&pg.store).await;
    for (i, b) in stages.iter().enumerate() {
        let expect = ingest(&lite.store, b.clone()).await;
        let got = ingest(&pg.store, b.clone()).await;
        assert_eq!(got, expect, "counts of batch {i}");
        if i == 5 {
            assert_eq!(
                got.unchanged,
                u64::from(PROSPECTS),
                "batch 5 repeats every prospect"
            );
        }
    }
    let (h_lite, h_pg) = (held(&lite.store).await, held(&pg.store).await);
    assert!(
        h_lite.events.len() > 500 && h_lite.outbox.len() > 500,
        "{h_lite:?}"
    );
    assert_eq!(h_pg.events, h_lite.events);
    assert_eq!(h_pg.per_prospect, h_lite.per_prospect);
    assert_eq!(h_pg.outbox, h_lite.outbox);

    // Same states: a probe that changes every field of every prospect detects the same events
    // (each from the stored state), and a repeat of the last round is unchanged on both.
    let probe: Vec<Snapshot> = (0..PROSPECTS)
        .map(|p| {
            let mut s = snapshot(p, 9);
            s.observed_at = datetime!(2024-05-01 00:00 UTC);
            s.job_title = Some(format!("Probe {p}"));
            s.company_id = Some(format!("{:032x}", 99));
            s
        })
        .collect();
    assert_eq!(
        ingest(&pg.store, probe.clone()).await,
        ingest(&lite.store, probe).await
    );
    let (h_lite, h_pg) = (held(&lite.store).await, held(&pg.store).await);
    assert_eq!(h_pg, h_lite);
    let again = ingest(&pg.store, batch(0..7)).await;
    assert_eq!(again, ingest(&lite.store, batch(0..7)).await);
    assert_eq!((again.events_created, again.baselines), (0, 0));
    lite.finish().await;
    pg.finish().await;
}
