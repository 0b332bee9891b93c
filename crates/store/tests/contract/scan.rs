//! Contract: The anniversary scanner: its remembered window, long gaps, concurrent scans.

use super::*;

pub(crate) const LONG_AGO: OffsetDateTime = datetime!(2024-01-01 0:00 UTC);

pub(crate) async fn anniversary_scan_remembers_its_window(s: DynStore) {
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

pub(crate) async fn anniversary_scan_after_a_long_gap_fires_each_once(s: DynStore) {
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

pub(crate) async fn concurrent_scans_fire_once(s: DynStore) {
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
