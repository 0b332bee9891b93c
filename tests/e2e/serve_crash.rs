//! At-least-once delivery across a crash, with a real `prospect-events serve` child process:
//! 2,000 notifications flow to a local receiver, the server is SIGKILLed while deliveries are in
//! flight, restarted on the same database with the same flags, and then every notification is
//! received at least once and ends `delivered`. Duplicates are allowed only for the notifications
//! that were claimed (leased) but not recorded at the kill.
//!
//! The binary is `target/<profile>/prospect-events` (see `prospect_events_e2e::cli_binary`);
//! without it the test prints a notice and passes without running — build it with
//! `cargo build -p prospect-events` (or run `cargo test --workspace`).
//!
//! The helpers here (a child `serve` that is killed when dropped, `keys create`, a receiver that
//! answers after a delay) are shared with `graceful.rs`.

pub(crate) use prospect_events_e2e::process::{free_port, keys_create, register_webhook, Serve};
use prospect_events_e2e::receiver::{Received, Receiver, Reply};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

macro_rules! binary_or_skip {
    () => {
        match prospect_events_e2e::cli_binary() {
            Some(b) => b,
            None => {
                eprintln!(
                    "SKIPPED: target/<profile>/prospect-events is not built; run \
                     `cargo build -p prospect-events` (or `cargo test --workspace`) first"
                );
                return;
            }
        }
    };
}
pub(crate) use binary_or_skip;

const ENROLL: &str = "/v1/prospects/events/enrollments";

/// A webhook receiver answering 200 after `delay` (`check_delay` for connectivity checks).
/// Requests are recorded on arrival, before the answer, so a request whose answer the sender
/// never saw (because it was killed) still counts as received.
pub(crate) async fn slow_receiver(delay: Duration, check_delay: Duration) -> Receiver {
    let rx = Receiver::start(Reply::Slow(200, delay.as_millis() as u64)).await;
    rx.set_check_reply(Reply::Slow(200, check_delay.as_millis() as u64));
    rx
}

/// `api_key` request against a child server.
pub(crate) fn req(
    client: &reqwest::Client,
    s: &Serve,
    method: Method,
    path: &str,
    key: &str,
) -> reqwest::RequestBuilder {
    client.request(method, s.url(path)).header("api_key", key)
}

/// Registers `url` as the partner's webhook; returns its secret.
pub(crate) async fn register(
    client: &reqwest::Client,
    s: &Serve,
    key: &str,
    partner: &str,
    url: &str,
) -> String {
    register_webhook(client, &s.url(""), key, partner, url).await
}

pub(crate) fn prospect(i: usize) -> String {
    format!("{:040x}", 0x00c0_ffee_0000_usize + i)
}

/// Enrolls `n` prospects (20 per enrollment) for role and company changes.
pub(crate) async fn enroll_many(client: &reqwest::Client, s: &Serve, key: &str, n: usize) {
    let ids: Vec<String> = (0..n).map(prospect).collect();
    for chunk in ids.chunks(20) {
        let resp = req(client, s, Method::POST, ENROLL, key)
            .json(&json!({"enrollment_key": "crash", "prospect_ids": chunk,
                "event_types": ["prospect_changed_role", "prospect_changed_company"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

/// A baseline then a move (new company and new title) for each of `n` prospects, through the
/// admin endpoint: two events, hence two notifications, per enrolled prospect.
pub(crate) async fn ingest_moves(
    client: &reqwest::Client,
    s: &Serve,
    admin: &str,
    n: usize,
) -> Value {
    let mut body = String::new();
    for i in 0..n {
        let p = prospect(i);
        body.push_str(
            &json!({"prospect_id": p, "observed_at": "2026-01-01", "full_name": "Ada",
                "company_name": "Acme", "job_title": "Engineer"})
            .to_string(),
        );
        body.push('\n');
        body.push_str(
            &json!({"prospect_id": p, "observed_at": "2026-01-02", "full_name": "Ada",
                "company_name": "Globex", "job_title": "Lead"})
            .to_string(),
        );
        body.push('\n');
    }
    let resp = req(
        client,
        s,
        Method::POST,
        "/v1/admin/prospects/snapshots",
        admin,
    )
    .header("content-type", "application/x-ndjson")
    .body(body)
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["summary"].clone()
}

/// Pending notifications holding a lease: claimed by a worker, attempt not recorded.
pub(crate) fn leased_pending(db_path: &Path) -> HashSet<String> {
    let c = rusqlite::Connection::open(db_path).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut s = c
        .prepare(
            "SELECT delivery_id FROM notifications WHERE status = 0 AND lease_until IS NOT NULL",
        )
        .unwrap();
    s.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Delivery id → number of times received.
fn receipts(got: &[Received]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in got {
        *m.entry(r.header("x-delivery-id").to_string()).or_default() += 1;
    }
    m
}

const NOTIFICATIONS: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_with_deliveries_in_flight_then_restart_delivers_everything() {
    let _bin = binary_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db_path = d.join("crash.db");
    let db = format!("sqlite://{}", db_path.display());
    let port = free_port();
    // A short lease so the notifications claimed at the kill come back within seconds (the
    // lease must exceed the delivery timeout).
    let flags = [
        "--allow-private-targets",
        "--rate-limit",
        "0",
        "--retry-schedule",
        "1s,1s,1s",
        "--delivery-timeout",
        "2s",
        "--delivery-lease",
        "3s",
        "--no-scanner",
    ];

    let key = keys_create(d, &db, "con_crash", "partner_a", false);
    let admin = keys_create(d, &db, "con_ops", "ops", true);
    // 5 ms per notification: with 4 concurrent sends per webhook, 2,000 take ~2.5 s, so the
    // kill lands mid-stream.
    let rx = slow_receiver(Duration::from_millis(5), Duration::ZERO).await;
    let client = reqwest::Client::new();

    let mut serve = Serve::start(d, &db, port, &flags, "serve-1.log").await;
    let secret = register(&client, &serve, &key, "partner_a", &rx.url).await;
    enroll_many(&client, &serve, &key, NOTIFICATIONS / 2).await;
    let summary = ingest_moves(&client, &serve, &admin, NOTIFICATIONS / 2).await;
    assert_eq!(
        summary["notifications_queued"], NOTIFICATIONS as u64,
        "{summary}"
    );

    // Kill once the receiver has some, but not all.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.count() < 400 {
        assert!(
            Instant::now() < deadline,
            "only {} notifications received:\n{}",
            rx.count(),
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let status = serve.kill();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
    let at_kill = receipts(&rx.received());
    let in_flight = leased_pending(&db_path);
    eprintln!(
        "at the kill: {} distinct notifications received, {} claimed but not recorded",
        at_kill.len(),
        in_flight.len()
    );
    assert!(
        at_kill.len() < NOTIFICATIONS,
        "the kill came too late: everything was already received"
    );
    assert!(
        !in_flight.is_empty(),
        "nothing was in flight at the kill: the test proves nothing"
    );
    assert!(
        in_flight.len() <= 1024,
        "more in flight than the worker allows"
    );

    // Restart on the same database with the same flags; everything arrives.
    let mut serve = Serve::start(d, &db, port, &flags, "serve-2.log").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    loop {
        let got = receipts(&rx.received());
        // Everything received, and nothing still pending (the notifications in flight at the
        // kill were received once already and are re-sent when their lease expires).
        if got.len() >= NOTIFICATIONS {
            let pending: serde_json::Value = http
                .get(serve.url("/v1/webhooks/partner_a/deliveries?status=pending&limit=1"))
                .header("api_key", &key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if pending["deliveries"]
                .as_array()
                .is_some_and(|d| d.is_empty())
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "after the restart only {} of {NOTIFICATIONS} notifications were received:\n{}",
            got.len(),
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Clean shutdown, so every attempt is recorded before the database is read.
    serve.terminate();
    let status = serve.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}:\n{}", serve.log_text());

    let got = rx.received();
    for r in &got {
        assert!(
            r.signature_valid(&secret),
            "a notification failed signature verification"
        );
    }
    let counts = receipts(&got);
    let store = store::open(&db).await.unwrap();
    let scope = store::Scope {
        tenant: domain::TenantId("con_crash".into()),
        partner: domain::PartnerId("partner_a".into()),
    };
    let outbox = store.outbox(Some(&scope), 100_000).await.unwrap();
    assert_eq!(outbox.len(), NOTIFICATIONS);
    let ids: HashSet<&str> = outbox.iter().map(|r| r.delivery_id.as_str()).collect();
    for row in &outbox {
        assert!(
            counts.contains_key(&row.delivery_id),
            "{} was never received",
            row.delivery_id
        );
        assert_eq!(
            row.status,
            store::DeliveryStatus::Delivered,
            "{} ended {:?}",
            row.delivery_id,
            row.status
        );
        assert!(row.attempts >= 1);
    }
    assert!(
        counts.keys().all(|id| ids.contains(id.as_str())),
        "the receiver got a delivery id the outbox does not have"
    );
    let dups: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "received {} requests for {} notifications: {} duplicates (in flight at the kill: {}, \
         received before it: {})",
        got.len(),
        counts.len(),
        dups.len(),
        in_flight.len(),
        in_flight
            .iter()
            .filter(|id| at_kill.contains_key(*id))
            .count(),
    );
    for (id, n) in &dups {
        assert!(
            in_flight.contains(*id) && at_kill.contains_key(*id),
            "{id} received {n} times but was not received and unrecorded at the kill"
        );
        assert_eq!(**n, 2, "{id} received {n} times");
    }
    assert!(dups.len() <= in_flight.len());
}
