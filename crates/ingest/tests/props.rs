//! Property tests of ingestion through the real pipeline and SQLite store:
//! * any permutation of the snapshots (of two interleaved prospects) ends in the same final
//!   state — the same `prospect_state` rows, and the same events for a later probe snapshot;
//! * ingesting again (in any order) creates no events, notifications or baselines;
//! * the batch size does not change what is stored (events and outbox, byte for byte).
//!
//! (That memory stays flat in the input size is measured by `bench/ingest.sh`, not here.)

use domain::{EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use ingest::{Format, Options, Summary};
use proptest::prelude::*;
use prospect_events_ingest as ingest;
use serde_json::json;
use std::path::{Path, PathBuf};
use store::DynStore;
use time::macros::datetime;

const PIDS: [&str; 2] = [
    "20ae6cbf564ee683e66685e429844a5ff8ffc30f",
    "4c485f009d59e319dc039cdf3e935b85014e6a33",
];
const ALL: [EventType; 3] = [
    EventType::ChangedRole,
    EventType::ChangedCompany,
    EventType::JobStartAnniversary,
];

/// One snapshot line; small value domains so that ties and near-duplicates are frequent.
fn arb_line() -> impl Strategy<Value = String> {
    (
        0usize..2,
        0i64..5,
        0i64..3,
        prop::option::of(prop::sample::select(vec!["Ann", "ann  lee"])),
        prop::option::of(prop::sample::select(vec![
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
        ])),
        prop::option::of(prop::sample::select(vec!["Acme", " ACME ", "Globex"])),
        prop::option::of(prop::sample::select(vec!["Dev", "dev", "CTO"])),
        // Anniversaries in the ingestion window (2024-06-09, 2024-06-17] for some starts.
        prop::option::of(prop::sample::select(vec![
            "2020-06-12",
            "2023-06-10",
            "2016-02-29",
            "2019-01-01",
        ])),
    )
        .prop_map(|(p, day, hour, name, cid, cname, title, start)| {
            json!({
                "prospect_id": PIDS[p],
                "observed_at": format!("2024-01-{:02}T{:02}:00:00Z", day + 1, hour * 6),
                "full_name": name, "company_id": cid, "company_name": cname,
                "job_title": title, "job_start_date": start,
            })
            .to_string()
        })
}

fn opts(batch_size: usize) -> Options {
    Options {
        batch_size,
        // Some runs group batches into larger transactions (the CLI's bulk mode): the final
        // state must not depend on it.
        commit_every: (batch_size % 2 == 1).then_some(batch_size * 3),
        anniversary_lead_days: 7,
        max_line_bytes: ingest::DEFAULT_MAX_LINE_BYTES,
        event_retention: None,
        clock: ingest::Clock::fixed(datetime!(2024-06-10 12:00 UTC)),
    }
}

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: DynStore,
}

/// A fresh database where one enrollment covers both prospects for every type.
async fn fresh() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let (tenant, partner) = (TenantId("con_p".into()), PartnerId("p".into()));
    store
        .create_key(store::NewApiKey {
            key_hash: [1; 32],
            prefix: "p".into(),
            tenant: tenant.clone(),
            partner: partner.clone(),
            admin: true,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        })
        .await
        .unwrap();
    store
        .create_enrollment(
            &store::Scope { tenant, partner },
            store::NewEnrollment {
                enrollment_id: EnrollmentId::from_random([9; 12]),
                spec: store::EnrollmentSpec {
                    enrollment_key: "props".into(),
                    event_types: ALL.to_vec(),
                    prospect_ids: PIDS.iter().map(|p| ProspectId::parse(p).unwrap()).collect(),
                },
                webhook_id: store::LEGACY_WEBHOOK_ID.to_string(),
                now: time::OffsetDateTime::UNIX_EPOCH,
            },
        )
        .await
        .unwrap();
    Db {
        _dir: dir,
        path,
        store,
    }
}

async fn run(db: &Db, lines: &[String], batch_size: usize) -> Summary {
    let body = lines.join("\n").into_bytes();
    ingest::ingest(
        &db.store,
        Box::new(std::io::Cursor::new(body)),
        Format::Ndjson,
        &opts(batch_size),
        |e| panic!("rejected {e:?}"),
        |_| {},
    )
    .await
    .unwrap()
}

fn rows(path: &Path, sql: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut s = c.prepare(sql).unwrap();
    let n = s.column_count();
    s.query_map([], |r| {
        Ok((0..n)
            .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The current state of every prospect (all columns but the wall-clock `updated_at`).
fn state(db: &Db) -> Vec<String> {
    rows(
        &db.path,
        "SELECT hex(prospect_id), observed_at, full_name, linkedin_url, company_id, company_name,
                job_title, job_start_date, anniv_md, content_hash FROM prospect_state
         ORDER BY prospect_id",
    )
}

/// Events and outbox rows, minus wall-clock columns, in a canonical order.
fn stored(db: &Db) -> (Vec<String>, Vec<String>) {
    (
        rows(
            &db.path,
            "SELECT event_id, hex(prospect_id), event_type, event_time, data FROM events
             ORDER BY event_id",
        ),
        rows(
            &db.path,
            "SELECT delivery_id, event_id, enrollment_id, enrollment_key, p.payload, status
             FROM notifications n JOIN notification_payloads p ON p.notification_id = n.id
             ORDER BY delivery_id",
        ),
    )
}

/// Ingests a probe snapshot per prospect (newer than anything generated, different company and
/// title) and returns the events it caused: they depend on each prospect's final state.
async fn probe(db: &Db) -> Vec<(String, String, serde_json::Value)> {
    let lines: Vec<String> = PIDS
        .iter()
        .map(|p| {
            json!({"prospect_id": p, "observed_at": "2024-06-01T00:00:00Z",
                   "company_id": "ffffffffffffffffffffffffffffffff", "company_name": "Probe Co",
                   "job_title": "Probe Title"})
            .to_string()
        })
        .collect();
    run(db, &lines, 10).await;
    let evs = db
        .store
        .query_events(&store::EventQuery {
            prospect_ids: PIDS.iter().map(|p| ProspectId::parse(p).unwrap()).collect(),
            event_types: ALL.to_vec(),
            from: datetime!(2024-12-31 00:00 UTC),
            to: None,
        })
        .await
        .unwrap();
    let mut out: Vec<_> = evs
        .into_iter()
        .map(|e| {
            (
                e.event_id.clone(),
                e.prospect_id.to_string(),
                e.data_value(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_permutation_same_final_state_and_reingestion_is_a_no_op(
        (lines, shuffled) in prop::collection::vec(arb_line(), 1..10)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        batch_a in 1usize..5,
        batch_b in 1usize..5,
    ) {
        runtime().block_on(async {
            let a = fresh().await;
            let b = fresh().await;
            let first = run(&a, &lines, batch_a).await;
            run(&b, &shuffled, batch_b).await;
            assert_eq!(first.lines, lines.len() as u64);
            assert_eq!(first.accepted, lines.len() as u64);

            // Same final state, whatever the order and the batching.
            let sa = state(&a);
            assert_eq!(sa, state(&b), "final state differs\n order a: {lines:#?}\n order b: {shuffled:#?}");
            let prospects = lines.iter().map(|l| &l[16..56]).collect::<std::collections::BTreeSet<_>>();
            assert_eq!(sa.len(), prospects.len());
            assert_eq!(first.baselines, prospects.len() as u64);

            // Ingesting again, in either order, adds nothing.
            let before = stored(&a);
            for again in [&shuffled, &lines] {
                let s = run(&a, again, batch_b).await;
                assert_eq!(
                    (s.baselines, s.events_created, s.notifications_queued, s.accepted, s.unchanged),
                    (0, 0, 0, lines.len() as u64, lines.len() as u64),
                    "{s:?}"
                );
            }
            assert_eq!(stored(&a), before);
            assert_eq!(state(&a), sa);

            // The final states behave identically afterwards.
            assert_eq!(probe(&a).await, probe(&b).await);
        });
    }

    #[test]
    fn batch_size_does_not_change_what_is_stored(
        lines in prop::collection::vec(arb_line(), 1..12),
        batch in 2usize..8,
    ) {
        runtime().block_on(async {
            let one = fresh().await;
            let many = fresh().await;
            let s1 = run(&one, &lines, 1).await;
            let s2 = run(&many, &lines, batch).await;
            assert_eq!(s1, s2);
            assert_eq!(stored(&one), stored(&many));
            assert_eq!(state(&one), state(&many));
            // Every stored event has exactly one notification (one enrollment covers all).
            let (events, outbox) = stored(&one);
            assert_eq!(events.len(), outbox.len());
            assert_eq!(s1.events_created, events.len() as u64);
            assert_eq!(s1.notifications_queued, outbox.len() as u64);
        });
    }
}
