//! Contract: a webhook's delivery stats (attempts, successes and latency percentiles in a
//! window, pending backlog) and its notifications per day and event name, tenant-scoped.

use super::*;
use std::time::Duration;
use time::Duration as Span;

fn timed(c: &Claimed, at: OffsetDateTime, code: u16, latency_ms: u64) -> AttemptRecord {
    let outcome = if (200..300).contains(&code) {
        AttemptOutcome::Delivered
    } else {
        AttemptOutcome::RetryAt(ms(at) + 60_000)
    };
    AttemptRecord {
        latency_ms,
        ..attempt(c, ms(at), outcome, Some(code))
    }
}

pub(crate) async fn webhook_stats_window_percentiles_and_backlog(s: DynStore) {
    let a = scope("t1", "pa");
    let other_tenant = scope("t2", "pa");
    queue_changes(&s, &a, 1, 4).await;
    queue_changes(&s, &other_tenant, 50, 2).await;
    let empty = s.webhook_stats(&legacy(&a), NOW).await.unwrap();
    assert_eq!(
        empty,
        WebhookStats {
            pending: 4,
            oldest_pending_at: Some(NOW),
            ..Default::default()
        }
    );
    let start = NOW + Span::minutes(1);
    for sc in [&a, &other_tenant] {
        s.put_webhook(sc, "http://127.0.0.1:9/h", "s", start)
            .await
            .unwrap();
    }
    let claimed = s
        .claim_due(start, Duration::from_millis(30_000), 10, &ClaimRoom::any())
        .await
        .unwrap();
    let mine: Vec<_> = claimed.iter().filter(|c| c.scope == a).collect();
    let theirs: Vec<_> = claimed.iter().filter(|c| c.scope != a).collect();
    assert_eq!((mine.len(), theirs.len()), (4, 2));
    // An attempt before the window, then two failures and two successes inside it.
    let old = start - Span::hours(30);
    s.record_attempt(timed(mine[0], old, 500, 9_000))
        .await
        .unwrap();
    for (c, code, latency) in [
        (mine[0], 500, 40),
        (mine[1], 503, 10),
        (mine[2], 200, 30),
        (mine[3], 200, 20),
    ] {
        s.record_attempt(timed(c, start, code, latency))
            .await
            .unwrap();
    }
    for c in &theirs {
        s.record_attempt(timed(c, start, 200, 5_000)).await.unwrap();
    }
    let st = s
        .webhook_stats(&legacy(&a), start - Span::hours(24))
        .await
        .unwrap();
    assert_eq!(st.attempts, 4, "{st:?}");
    assert_eq!(st.succeeded, 2);
    // Nearest rank over 10, 20, 30, 40 ms: p50 is the 2nd, p99 the 4th.
    assert_eq!(st.latency_p50, Some(Duration::from_millis(20)));
    assert_eq!(st.latency_p99, Some(Duration::from_millis(40)));
    assert_eq!(st.pending, 2, "the two failures wait for a retry");
    assert_eq!(st.oldest_pending_at, Some(NOW));
    // A window that starts after every attempt sees none; the backlog is still there.
    let later = s
        .webhook_stats(&legacy(&a), start + Span::hours(1))
        .await
        .unwrap();
    assert_eq!(
        (later.attempts, later.latency_p50, later.pending),
        (0, None, 2)
    );
    // The other tenant's partner of the same name sees only its own.
    let theirs = s
        .webhook_stats(&legacy(&other_tenant), start - Span::hours(24))
        .await
        .unwrap();
    assert_eq!(
        (theirs.attempts, theirs.succeeded, theirs.pending),
        (2, 2, 0)
    );
    assert_eq!(theirs.latency_p99, Some(Duration::from_millis(5_000)));
}

pub(crate) async fn daily_notifications_by_day_and_event(s: DynStore) {
    let a = scope("t1", "pa");
    let other_tenant = scope("t2", "pa");
    queue_changes(&s, &a, 1, 3).await;
    queue_changes(&s, &other_tenant, 50, 5).await;
    let item = |n: u32, name: &str| DirectNotification {
        delivery_id: format!("dl_day_{n}"),
        event_id: format!("day_{n}"),
        event_name: name.into(),
        event_time: 1_700_000_000,
        enrollment_key: "sim".into(),
        payload: json!({"n": n}),
    };
    let two_days_later = NOW + Span::days(2);
    s.queue_direct(
        &legacy(&a),
        vec![
            item(1, "prospect_changed_company"),
            item(2, "prospect_changed_role"),
            item(3, "prospect_changed_company"),
        ],
        two_days_later,
    )
    .await
    .unwrap();
    let got = s
        .daily_notifications(&legacy(&a), NOW - Span::days(1), NOW + Span::days(3))
        .await
        .unwrap();
    let day = |d: OffsetDateTime, name: &str, count| DailyCount {
        day: d.date(),
        event_name: name.into(),
        count,
    };
    assert_eq!(
        got,
        vec![
            day(NOW, "prospect_changed_role", 3),
            day(two_days_later, "prospect_changed_company", 2),
            day(two_days_later, "prospect_changed_role", 1),
        ]
    );
    // The window's end is exclusive and its start inclusive.
    let first_day = s
        .daily_notifications(&legacy(&a), NOW, two_days_later)
        .await
        .unwrap();
    assert_eq!(first_day, vec![day(NOW, "prospect_changed_role", 3)]);
    let theirs = s
        .daily_notifications(
            &legacy(&other_tenant),
            NOW - Span::days(1),
            NOW + Span::days(3),
        )
        .await
        .unwrap();
    assert_eq!(theirs, vec![day(NOW, "prospect_changed_role", 5)]);
}

pub(crate) async fn stats_are_per_webhook(s: DynStore) {
    // A v2 webhook's traffic shows in its own stats and daily counts, not in the v1 (legacy)
    // webhook's of the same scope, and the other way round.
    let a = scope("t1", "pa");
    queue_changes(&s, &a, 1, 2).await;
    let v2 = WebhookKey::new(&a, "wh_stats");
    let new = NewWebhook {
        webhook_id: "wh_stats".into(),
        name: "stats".into(),
        description: None,
        headers: vec![],
        payload_format: PayloadFormat::Json,
        webhook_url: "https://example.com/stats".into(),
        secret: "s".into(),
    };
    s.create_webhook(&a, new, NOW).await.unwrap();
    let item = |n: u32| DirectNotification {
        delivery_id: format!("dl_v2_{n}"),
        event_id: format!("v2_{n}"),
        event_name: "prospect_changed_company".into(),
        event_time: 1_700_000_000,
        enrollment_key: "v2".into(),
        payload: json!({"n": n}),
    };
    s.queue_direct(&v2, vec![item(1), item(2), item(3)], NOW)
        .await
        .unwrap();
    let since = NOW - Span::hours(1);
    let v1_stats = s.webhook_stats(&legacy(&a), since).await.unwrap();
    let v2_stats = s.webhook_stats(&v2, since).await.unwrap();
    assert_eq!((v1_stats.pending, v2_stats.pending), (2, 3));
    let window = (NOW - Span::days(1), NOW + Span::days(1));
    let names = |d: Vec<DailyCount>| -> Vec<(String, u64)> {
        d.into_iter().map(|c| (c.event_name, c.count)).collect()
    };
    let v1_daily = s
        .daily_notifications(&legacy(&a), window.0, window.1)
        .await
        .unwrap();
    let v2_daily = s
        .daily_notifications(&v2, window.0, window.1)
        .await
        .unwrap();
    assert_eq!(names(v1_daily), [("prospect_changed_role".to_string(), 2)]);
    assert_eq!(
        names(v2_daily),
        [("prospect_changed_company".to_string(), 3)]
    );
}
