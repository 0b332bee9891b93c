//! The worker's "now" is its injected clock: a notification due now is not claimed by a worker
//! whose clock says an hour ago, and is claimed once that clock reaches it.

use domain::clock::Clock;
use domain::notification::{random_delivery_id, Notification};
use domain::{PartnerId, TenantId};
use prospect_events_delivery::{Limiter, Sender, SenderConfig, Worker, WorkerConfig};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use store::{DirectNotification, Scope};
use time::OffsetDateTime;

#[tokio::test]
async fn claims_follow_the_injected_clock() {
    let dir = std::env::temp_dir().join(format!("pe-worker-clock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = store::open(&format!("sqlite://{}", dir.join("w.db").display()))
        .await
        .unwrap();
    let scope = Scope {
        tenant: TenantId("t1".into()),
        partner: PartnerId("p1".into()),
    };
    let now = OffsetDateTime::now_utc();
    let now_ms = domain::clock::unix_millis(now);
    let secret = domain::signing::generate_secret([7; 32]);
    // Port 9 (discard) refuses: the attempt fails fast and is recorded as a retry.
    store
        .put_webhook(&scope, "http://127.0.0.1:9/hook", &secret, now)
        .await
        .unwrap();
    let n = Notification::connectivity_check(&scope.tenant, &scope.partner, [1; 16], now);
    let item = DirectNotification {
        delivery_id: random_delivery_id([2; 12]),
        event_id: n.event_id().to_string(),
        event_name: n.event_name().to_string(),
        event_time: n.event_time().unix_timestamp(),
        enrollment_key: n.enrollment_key().to_string(),
        payload: n.to_json(),
    };
    store
        .queue_direct(&store::WebhookKey::legacy(&scope), vec![item], now)
        .await
        .unwrap();

    let clock_ms = Arc::new(AtomicI64::new(now_ms - 3_600_000));
    let read = clock_ms.clone();
    let clock = Clock::from_fn(move || {
        let ms = read.load(Ordering::SeqCst) as i128;
        OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).unwrap()
    });
    let sender = Sender::new(SenderConfig {
        allow_private_targets: true,
        ..SenderConfig::default()
    })
    .unwrap();
    let worker = Worker::new(
        store,
        sender,
        Arc::new(Limiter::default()),
        WorkerConfig {
            clock,
            ..WorkerConfig::default()
        },
    );
    assert_eq!(
        worker.run_once().await,
        0,
        "not due an hour before it was queued"
    );
    clock_ms.store(now_ms + 1_000, Ordering::SeqCst);
    assert_eq!(worker.run_once().await, 1, "due once the clock reaches it");
    std::fs::remove_dir_all(dir).unwrap();
}
