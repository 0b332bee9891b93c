//! Contract: Snapshot ingestion (counts, events, notifications, anniversaries at ingestion, bulk sessions, stored times), the events query, retention and pruning.

use super::*;

pub(crate) async fn ingest_counts_events_and_outbox(s: DynStore) {
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

pub(crate) async fn ingest_is_idempotent_and_keeps_key_at_queue_time(s: DynStore) {
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
    s.update_enrollment(&a, "enr_a", spec("new-key", &ALL, &[pid(1)]), NOW)
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

pub(crate) async fn ingest_fires_anniversaries_due_at_ingestion(s: DynStore) {
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

pub(crate) async fn concurrent_ingestion_of_new_prospects(s: DynStore) {
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
pub(crate) fn titled(p: u32, at: OffsetDateTime, title: &str) -> Snapshot {
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
pub(crate) async fn stored_times_round_trip_exactly_and_out_of_range_ones_are_refused(s: DynStore) {
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

pub(crate) async fn repeated_snapshots_still_advance_the_state_time(s: DynStore) {
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

pub(crate) async fn bulk_ingest_commits_in_groups(s: DynStore) {
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

pub(crate) async fn query_events_order_and_window(s: DynStore) {
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

pub(crate) async fn prune_deletes_old_events(s: DynStore) {
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
pub(crate) async fn events_beyond_the_retention_are_neither_stored_nor_notified(s: DynStore) {
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
