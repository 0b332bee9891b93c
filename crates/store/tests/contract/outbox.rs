//! Contract: The outbox: claims, leases and attempts, per-webhook room, concurrent claims, the delivery log, retries, replays and direct notifications.

use super::*;

pub(crate) async fn claims_leases_and_attempts(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t1", "pb");
    queue_changes(&s, &a, 1, 2).await;
    queue_changes(&s, &b, 10, 1).await;
    let now = ms(NOW) + 1_000;
    // No webhook, nothing to claim.
    assert!(s
        .claim_due(
            at_ms(now),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any()
        )
        .await
        .unwrap()
        .is_empty());
    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", at_ms(now))
        .await
        .unwrap();
    s.put_webhook(&b, "http://127.0.0.1:9/b", "sb", at_ms(now))
        .await
        .unwrap();
    // Excluded scopes are skipped.
    let got = s
        .claim_due(
            at_ms(now),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::excluding(&[legacy(&a)]),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].scope, b);
    assert_eq!(got[0].webhook_url, "http://127.0.0.1:9/b");
    assert_eq!(got[0].secret, "sb");
    assert_eq!(got[0].lease_until, at_ms(now + 30_000));
    let got = s
        .claim_due(
            at_ms(now),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
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
        .claim_due(
            at_ms(now + 1),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any()
        )
        .await
        .unwrap()
        .is_empty());
    let later = now + 30_001;
    let again = s
        .claim_due(
            at_ms(later),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
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
        .get_delivery(&legacy(&a), &first.delivery_id)
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
        .get_delivery(&legacy(&a), &first.delivery_id)
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
        .get_delivery(&legacy(&b), &first.delivery_id)
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
        .get_delivery(&legacy(&a), &second.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, DeliveryStatus::Pending);
    assert_eq!(info.next_attempt_at, Some(retry_at));
    assert_eq!(info.last_error.as_deref(), Some("HTTP 500"));
    let none = s
        .claim_due(
            at_ms(retry_at - 1),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::excluding(&[legacy(&b)]),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    let c = s
        .claim_due(
            at_ms(retry_at),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::excluding(&[legacy(&b)]),
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
        .get_delivery(&legacy(&a), &second.delivery_id)
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

pub(crate) async fn claims_respect_each_webhooks_room(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t1", "pb");
    queue_changes(&s, &a, 1, 4).await;
    queue_changes(&s, &b, 10, 3).await;
    let now = ms(NOW) + 1_000;
    for (sc, url) in [(&a, "http://127.0.0.1:9/a"), (&b, "http://127.0.0.1:9/b")] {
        s.put_webhook(sc, url, "s", at_ms(now)).await.unwrap();
    }
    // a has room for one more, b (not listed) for the default two.
    let room = ClaimRoom {
        per_scope: 2,
        scopes: vec![(legacy(&a), 1)],
    };
    let got = s
        .claim_due(at_ms(now), Duration::from_millis(30_000), 10, &room)
        .await
        .unwrap();
    let of = |c: &[Claimed], sc: &Scope| c.iter().filter(|c| &c.scope == sc).count();
    assert_eq!((of(&got, &a), of(&got, &b)), (1, 2));
    // The overall limit still applies; a webhook without room is skipped whatever its backlog.
    let none_for_a = ClaimRoom {
        per_scope: 10,
        scopes: vec![(legacy(&a), 0)],
    };
    let got = s
        .claim_due(at_ms(now), Duration::from_millis(30_000), 10, &none_for_a)
        .await
        .unwrap();
    assert_eq!((of(&got, &a), of(&got, &b)), (0, 1));
    let got = s
        .claim_due(
            at_ms(now),
            Duration::from_millis(30_000),
            2,
            &ClaimRoom::any(),
        )
        .await
        .unwrap();
    assert_eq!(of(&got, &a), 2);
    let got = s
        .claim_due(
            at_ms(now),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
        .await
        .unwrap();
    assert_eq!((of(&got, &a), of(&got, &b)), (1, 0));
}

pub(crate) async fn concurrent_claims_never_overlap(s: DynStore) {
    let a = scope("t1", "pa");
    queue_changes(&s, &a, 1, 60).await;
    let now = ms(NOW) + 1_000;
    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", at_ms(now))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .claim_due(
                        at_ms(now),
                        Duration::from_millis(60_000),
                        7,
                        &ClaimRoom::any(),
                    )
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

pub(crate) async fn delivery_log_retry_replay_and_direct(s: DynStore) {
    let a = scope("t1", "pa");
    queue_changes(&s, &a, 1, 3).await;
    let now = ms(NOW) + 1_000;
    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", at_ms(now))
        .await
        .unwrap();
    let claimed = s
        .claim_due(
            at_ms(now),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
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
            &legacy(&a),
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
            &legacy(&a),
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
            &legacy(&a),
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
            &legacy(&a),
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
            &legacy(&scope("t1", "pb")),
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
        .retry_delivery(
            &legacy(&scope("t1", "pb")),
            &claimed[1].delivery_id,
            at_ms(now + 10),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let r = s
        .retry_delivery(&legacy(&a), "dl_nope", at_ms(now + 10))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    s.retry_delivery(&legacy(&a), &claimed[1].delivery_id, at_ms(now + 10))
        .await
        .unwrap();
    let (info, _) = s
        .get_delivery(&legacy(&a), &claimed[1].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, DeliveryStatus::Pending);
    assert_eq!(info.next_attempt_at, Some(now + 10));
    let c = s
        .claim_due(
            at_ms(now + 10),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
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
    assert_eq!(
        s.replay(&legacy(&a), &q(None), at_ms(now + 20))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        s.replay(
            &legacy(&a),
            &q(Some(vec!["prospect_changed_role".into()])),
            at_ms(now + 20)
        )
        .await
        .unwrap(),
        3
    );
    assert_eq!(
        s.replay(
            &legacy(&a),
            &q(Some(vec!["prospect_changed_company".into()])),
            at_ms(now + 20)
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        s.replay(
            &legacy(&a),
            &ReplayQuery {
                from: t.unix_timestamp() + 1,
                to: None,
                event_names: None
            },
            at_ms(now + 20)
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        s.replay(&legacy(&scope("t9", "pa")), &q(None), at_ms(now))
            .await
            .unwrap(),
        0
    );
    let (info, _) = s
        .get_delivery(&legacy(&a), &claimed[0].delivery_id)
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
        s.queue_direct(&legacy(&a), vec![item(1), item(2)], at_ms(now))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.queue_direct(&legacy(&a), vec![item(2), item(3)], at_ms(now))
            .await
            .unwrap(),
        1
    );
    let (info, attempts) = s
        .get_delivery(&legacy(&a), "dl_sim_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.enrollment_id, None);
    assert_eq!(info.status, DeliveryStatus::Pending);
    assert!(attempts.is_empty());
    let rows = s.outbox(Some(&a), 100).await.unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[3].payload, json!({"simulated": true, "n": 1}));
    assert_eq!(rows[3].enrollment_id, None);
}

pub(crate) async fn attempts_recorded_together_as_one_by_one(s: DynStore) {
    // One batch (as the worker's recorder sends it) means what its records mean one by one, in
    // order: a stale lease's attempt counts without moving the state, the same row may appear
    // twice, and webhook health follows the records' order.
    let a = scope("t1", "pa");
    queue_changes(&s, &a, 1, 3).await;
    let now = ms(NOW) + 1_000;
    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", at_ms(now))
        .await
        .unwrap();
    let stale = s
        .claim_due(
            at_ms(now),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
        .await
        .unwrap();
    assert_eq!(stale.len(), 3);
    let later = now + 30_001;
    let c = s
        .claim_due(
            at_ms(later),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
        .await
        .unwrap();
    assert_eq!(c.len(), 3);
    let failing = |c: &Claimed, at: i64| {
        let mut r = attempt(c, at, AttemptOutcome::RetryAt(at + 60_000), Some(500));
        r.disable_after_ms = 1;
        r
    };
    // Failing at `later`, recovered, failing again at `later + 2`: had the recovery not come
    // between them, the second failure (a streak older than 1 ms) would disable the webhook.
    s.record_attempts(vec![
        attempt(&stale[0], later, AttemptOutcome::Delivered, Some(200)),
        failing(&c[1], later),
        attempt(&c[0], later + 1, AttemptOutcome::Delivered, Some(200)),
        failing(&c[2], later + 2),
    ])
    .await
    .unwrap();
    let info = |n: usize| {
        let (s, id) = (s.clone(), c[n].delivery_id.clone());
        let a = a.clone();
        async move { s.get_delivery(&legacy(&a), &id).await.unwrap().unwrap() }
    };
    let (first, attempts) = info(0).await;
    assert_eq!(first.status, DeliveryStatus::Delivered);
    assert_eq!((first.attempts, attempts.len()), (2, 2));
    assert_eq!(first.last_attempt_at, Some(later + 1));
    for n in [1, 2] {
        let (i, attempts) = info(n).await;
        assert_eq!(i.status, DeliveryStatus::Pending);
        assert_eq!(i.last_status_code, Some(500));
        assert_eq!(attempts.len(), 1);
    }
    assert_eq!(info(2).await.0.next_attempt_at, Some(later + 2 + 60_000));
    let hook = s.get_webhook(&a).await.unwrap().unwrap();
    assert!(hook.enabled, "{hook:?}");
    // An empty batch is nothing.
    s.record_attempts(Vec::new()).await.unwrap();
}

pub(crate) async fn attempts_with_nul_text_are_recorded(s: DynStore) {
    // A receiver may answer with NUL bytes (and an error text may carry one): the batch holding
    // such a record is stored like any other, the NUL shown as U+FFFD, on both backends.
    let a = scope("t1", "pa");
    queue_changes(&s, &a, 1, 2).await;
    let now = ms(NOW) + 1_000;
    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", at_ms(now))
        .await
        .unwrap();
    let c = s
        .claim_due(
            at_ms(now),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
        .await
        .unwrap();
    assert_eq!(c.len(), 2);
    let mut odd = attempt(&c[0], now, AttemptOutcome::RetryAt(now + 60_000), Some(500));
    odd.response_body = "bad\0body".into();
    odd.error = Some("status 500\0".into());
    s.record_attempts(vec![
        odd,
        attempt(&c[1], now, AttemptOutcome::Delivered, Some(200)),
    ])
    .await
    .unwrap();
    let (info, attempts) = s
        .get_delivery(&legacy(&a), &c[0].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.attempts, 1);
    assert_eq!(
        attempts[0].response_body.as_deref(),
        Some("bad\u{FFFD}body")
    );
    assert_eq!(attempts[0].error.as_deref(), Some("status 500\u{FFFD}"));
    let (other, _) = s
        .get_delivery(&legacy(&a), &c[1].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.status, DeliveryStatus::Delivered);
}

/// A batch of lease changes (renewals and hand-backs) answers each change by whether its
/// expected lease was still the row's: stale ones (moved meanwhile, or settled) report lost and
/// leave their rows untouched; changes to one row apply in order.
pub(crate) async fn lease_changes_in_a_batch_report_stale_ones(s: DynStore) {
    let a = scope("t1", "pa");
    queue_changes(&s, &a, 1, 4).await;
    let now = ms(NOW) + 1_000;
    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", at_ms(now))
        .await
        .unwrap();
    let lease = Duration::from_secs(30);
    let got = s
        .claim_due(at_ms(now), lease, 10, &ClaimRoom::any())
        .await
        .unwrap();
    assert_eq!(got.len(), 4);
    // got[1]'s lease moves (its old one goes stale); got[3] is delivered (settled).
    assert!(s
        .set_lease(got[1].row, got[1].lease_until, Some(at_ms(now + 60_000)))
        .await
        .unwrap());
    s.record_attempt(attempt(
        &got[3],
        now + 1,
        AttemptOutcome::Delivered,
        Some(200),
    ))
    .await
    .unwrap();

    let change = |c: &Claimed, until: Option<i64>| LeaseChange {
        row: c.row,
        expected: c.lease_until,
        until: until.map(at_ms),
    };
    let answers = s
        .change_leases(vec![
            change(&got[0], Some(now + 90_000)),
            change(&got[1], Some(now + 90_000)),
            change(&got[2], None),
            change(&got[3], None),
        ])
        .await
        .unwrap();
    assert_eq!(answers, vec![true, false, true, false]);
    // The delivery log: a held notification is next tried when its lease ends; one handed
    // back is due again as it was before its claim (D98).
    let key = legacy(&a);
    let next_of = |c: &Claimed| {
        let (s, key, id) = (s.clone(), key.clone(), c.delivery_id.clone());
        async move {
            let (info, _) = s.get_delivery(&key, &id).await.unwrap().unwrap();
            info.next_attempt_at
        }
    };
    assert_eq!(next_of(&got[0]).await, Some(now + 90_000));
    assert_eq!(next_of(&got[2]).await, Some(now));

    // got[2] was handed back: due at once; got[0] is held until +90 s, got[1] (untouched)
    // until +60 s, got[3] stays delivered.
    let due = |at: i64| {
        let s = s.clone();
        async move {
            let c = s
                .claim_due(at_ms(at), lease, 10, &ClaimRoom::any())
                .await
                .unwrap();
            c.iter().map(|c| c.row).collect::<Vec<_>>()
        }
    };
    assert_eq!(due(now + 35_000).await, vec![got[2].row]);
    assert_eq!(due(now + 61_000).await, vec![got[1].row]);
    let (info, _) = s
        .get_delivery(&legacy(&a), &got[3].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, DeliveryStatus::Delivered);

    // One row twice in a batch: the changes apply in order, each against the lease the one
    // before left.
    let answers = s
        .change_leases(vec![
            LeaseChange {
                row: got[0].row,
                expected: at_ms(now + 90_000),
                until: Some(at_ms(now + 100_000)),
            },
            LeaseChange {
                row: got[0].row,
                expected: at_ms(now + 100_000),
                until: Some(at_ms(now + 110_000)),
            },
            LeaseChange {
                row: got[0].row,
                expected: at_ms(now + 100_000),
                until: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(answers, vec![true, true, false]);
    assert!(!due(now + 105_000).await.contains(&got[0].row));
    assert!(s.change_leases(Vec::new()).await.unwrap().is_empty());
}
