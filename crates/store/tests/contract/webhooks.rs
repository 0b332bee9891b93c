//! Contract: Webhook registrations, their health (disabled by 410 or continuous failure) and parked notifications.

use super::*;

pub(crate) async fn webhook_put_get_delete(s: DynStore) {
    let a = scope("t1", "pa");
    assert!(s.get_webhook(&a).await.unwrap().is_none());
    let w = s
        .put_webhook(&a, "https://example.com/hook", "secret-1", at_ms(1_000))
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
        .put_webhook(&a, "https://example.com/other", "secret-2", at_ms(2_000))
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

pub(crate) async fn webhook_disabled_by_gone_and_by_continuous_failure(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t1", "pb");
    queue_changes(&s, &a, 1, 1).await;
    queue_changes(&s, &b, 10, 2).await;
    let now = ms(NOW) + 1_000;
    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", at_ms(now))
        .await
        .unwrap();
    s.put_webhook(&b, "http://127.0.0.1:9/b", "sb", at_ms(now))
        .await
        .unwrap();

    // 410: the webhook is disabled, the notification waits, nothing is claimable.
    let c = s
        .claim_due(
            at_ms(now),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::excluding(&[legacy(&b)]),
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
        .get_delivery(&legacy(&a), &c[0].delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, DeliveryStatus::Pending);
    assert!(s
        .claim_due(
            at_ms(now + 1),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::excluding(&[legacy(&b)])
        )
        .await
        .unwrap()
        .is_empty());
    // Re-registering enables it again (new generation) and the notification flows.
    let w = s
        .put_webhook(&a, "http://127.0.0.1:9/a2", "sa2", at_ms(now + 2))
        .await
        .unwrap();
    assert!(w.enabled && w.generation == 2 && w.disabled_reason.is_none());
    assert_eq!(w.disabled_at, None);
    assert_eq!(s.get_webhook(&a).await.unwrap().unwrap(), w);
    let c2 = s
        .claim_due(
            at_ms(now + 2),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::excluding(&[legacy(&b)]),
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
            at_ms(now),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::excluding(&[legacy(&a)]),
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
            at_ms(now + 5 * day),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::excluding(&[legacy(&a)])
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
pub(crate) async fn notifications_without_a_webhook_wait_parked(s: DynStore) {
    let a = scope("t1", "pa");
    queue_changes(&s, &a, 1, 3).await;
    let now = ms(NOW) + 1_000;
    let page = s
        .list_deliveries(
            &legacy(&a),
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
        .claim_due(
            at_ms(i64::MAX - 1),
            Duration::from_millis(1),
            10,
            &ClaimRoom::any()
        )
        .await
        .unwrap()
        .is_empty());

    s.put_webhook(&a, "http://127.0.0.1:9/a", "sa", at_ms(now))
        .await
        .unwrap();
    let got = s
        .claim_due(
            at_ms(now),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 3, "registration makes them due now");
    // Renewing a lease moves it; the old lease no longer matches.
    assert!(s
        .set_lease(got[0].row, got[0].lease_until, Some(at_ms(now + 60_000)))
        .await
        .unwrap());
    assert!(!s
        .set_lease(got[0].row, got[0].lease_until, Some(at_ms(now + 70_000)))
        .await
        .unwrap());
    assert!(
        s.claim_due(
            at_ms(now + 40_000),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any()
        )
        .await
        .unwrap()
        .len()
            == 2
    );
    let got: Vec<Claimed> = {
        let mut g = got.clone();
        g[0].lease_until = at_ms(now + 60_000);
        g[1].lease_until = at_ms(now + 40_000 + 30_000);
        g[2].lease_until = at_ms(now + 40_000 + 30_000);
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
        .claim_due(
            at_ms(now + 10),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any()
        )
        .await
        .unwrap()
        .is_empty());
    // Re-registration: all three flow again.
    s.put_webhook(&a, "http://127.0.0.1:9/a2", "sa2", at_ms(now + 20))
        .await
        .unwrap();
    let got = s
        .claim_due(
            at_ms(now + 30),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
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
        .claim_due(
            at_ms(i64::MAX - 1),
            Duration::from_millis(1),
            10,
            &ClaimRoom::any()
        )
        .await
        .unwrap()
        .is_empty());
}

pub(crate) async fn webhook_url_update_keeps_the_secret(s: DynStore) {
    let a = scope("t1", "pa");
    let r = s
        .update_webhook_url(&a, "http://127.0.0.1:9/x", at_ms(1_000))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert!(
        s.get_webhook(&a).await.unwrap().is_none(),
        "never creates one"
    );
    queue_changes(&s, &a, 1, 1).await;
    let now = ms(NOW) + 1_000;
    let w = s
        .put_webhook(&a, "http://127.0.0.1:9/a", "sa", at_ms(now))
        .await
        .unwrap();
    // The same partner id in another tenant: not found there, ours untouched.
    let r = s
        .update_webhook_url(&scope("t2", "pa"), "http://127.0.0.1:9/evil", at_ms(now))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(s.get_webhook(&a).await.unwrap(), Some(w.clone()));
    // A 410 disables it; its notification waits.
    let c = s
        .claim_due(
            at_ms(now),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::excluding(&[]),
        )
        .await
        .unwrap();
    assert_eq!(c.len(), 1);
    s.record_attempt(attempt(&c[0], now, AttemptOutcome::Gone, Some(410)))
        .await
        .unwrap();
    assert!(!s.get_webhook(&a).await.unwrap().unwrap().enabled);
    // The new URL keeps the secret, starts a generation, enables it; the notification flows.
    let w2 = s
        .update_webhook_url(&a, "http://127.0.0.1:9/a2", at_ms(now + 5))
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
        .claim_due(
            at_ms(now + 5),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::excluding(&[]),
        )
        .await
        .unwrap();
    assert_eq!(c2.len(), 1);
    assert_eq!(
        (c2[0].webhook_url.as_str(), c2[0].secret.as_str()),
        ("http://127.0.0.1:9/a2", "sa")
    );
    assert_eq!(c2[0].generation, w2.generation);
}
