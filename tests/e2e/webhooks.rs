//! Webhooks end to end: registration, signed delivery to a real local receiver, retries on
//! schedule, 410, fairness, SSRF refusal, connectivity checks, simulations, log and replay.

use prospect_events_e2e::receiver::{Receiver, Reply};
use prospect_events_e2e::{test_delivery, TestApp, P1, P2};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const ENROLL: &str = "/v1/prospects/events/enrollments";

pub(crate) async fn register(app: &TestApp, key: &str, partner: &str, url: &str) -> Value {
    let resp = app
        .with_key(Method::POST, "/v1/webhooks", key)
        .json(&json!({"partner_id": partner, "webhook_url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// `POST /v1/webhooks/check_connectivity` for `partner` with the default key; the JSON answer.
pub(crate) async fn check_connectivity(app: &TestApp, partner: &str) -> Value {
    app.req(Method::POST, "/v1/webhooks/check_connectivity")
        .json(&json!({"partner_id": partner}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) async fn enroll(app: &TestApp, key: &str, ekey: &str, ids: &[&str]) -> String {
    let resp = app
        .with_key(Method::POST, ENROLL, key)
        .json(&json!({"enrollment_key": ekey, "prospect_ids": ids,
            "event_types": ["prospect_changed_role", "prospect_changed_company"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["enrollment_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn snapshot(p: &str, day: u32, company: &str, title: &str) -> String {
    json!({"prospect_id": p, "observed_at": format!("2026-01-{day:02}"), "full_name": "Ada",
        "company_name": company, "job_title": title})
    .to_string()
}

/// Ingests NDJSON lines through the admin endpoint and returns the summary.
async fn ingest(app: &TestApp, admin: &str, lines: &[String]) -> Value {
    let resp = app
        .with_key(Method::POST, "/v1/admin/prospects/snapshots", admin)
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["summary"].clone()
}

/// A baseline and one role change for each prospect: one event per prospect.
pub(crate) async fn one_event_each(app: &TestApp, admin: &str, ids: &[&str], tag: u32) {
    let mut lines = Vec::new();
    for p in ids {
        lines.push(snapshot(p, 1, "Acme", "Engineer"));
        lines.push(snapshot(p, 2 + tag, "Acme", &format!("Lead {tag}")));
    }
    ingest(app, admin, &lines).await;
}

#[tokio::test]
async fn registration_replaces_url_and_secret() {
    let app = TestApp::spawn().await;
    let first = register(&app, &app.key, "partner_a", "https://example.com/a").await;
    let secret = first["webhook_secret"].as_str().unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(secret)
        .unwrap();
    assert_eq!(raw.len(), 32);
    assert!(secret.ends_with('='), "padded URL-safe base64");
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "response_context",
            "created_at",
            "last_modified_time",
            "webhook_url",
            "webhook_secret"
        ]
    );

    let second = register(&app, &app.key, "partner_a", "https://example.com/b").await;
    assert_ne!(second["webhook_secret"], first["webhook_secret"]);
    assert_eq!(second["created_at"], first["created_at"]);
    assert_eq!(second["webhook_url"], "https://example.com/b");

    let got: Value = app
        .req(Method::GET, "/v1/webhooks/partner_a")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["webhook_secret"], second["webhook_secret"]);
    assert_eq!(got["webhook_url"], "https://example.com/b");
    // GET adds the delivery state after the reference's fields, which keep their values.
    let keys: Vec<&str> = got
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "response_context",
            "created_at",
            "last_modified_time",
            "webhook_url",
            "webhook_secret",
            "status",
            "disabled_reason",
            "disabled_at"
        ]
    );
    for k in [
        "created_at",
        "last_modified_time",
        "webhook_url",
        "webhook_secret",
    ] {
        assert_eq!(got[k], second[k], "{k}");
    }
    assert_eq!(got["status"], "active");
    assert_eq!(got["disabled_reason"], Value::Null);
    assert_eq!(got["disabled_at"], Value::Null);

    // A partner the tenant does not own is 404, for every verb.
    let other = app.new_key("con_other", "partner_x", false).await;
    let resp = app
        .with_key(Method::POST, "/v1/webhooks", &other)
        .json(&json!({"partner_id": "partner_a", "webhook_url": "https://evil.example/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        app.with_key(Method::GET, "/v1/webhooks/partner_a", &other)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        app.with_key(Method::DELETE, "/v1/webhooks/partner_a", &other)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Not an absolute http(s) URL → 422.
    let resp = app
        .req(Method::POST, "/v1/webhooks")
        .json(&json!({"partner_id": "partner_a", "webhook_url": "ftp://example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["body", "webhook_url"]));

    let resp = app
        .req(Method::DELETE, "/v1/webhooks/partner_a")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["response_context"]["request_status"], "success");
    assert_eq!(
        app.req(Method::GET, "/v1/webhooks/partner_a")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn notifications_are_signed_and_shaped_per_spec() {
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let rx = Receiver::start(Reply::Status(200)).await;
    let hook = register(&app, &app.key, "partner_a", &rx.url).await;
    let secret = hook["webhook_secret"].as_str().unwrap().to_string();
    let eid = enroll(&app, &app.key, "execs", &[P1]).await;
    one_event_each(&app, &admin, &[P1], 0).await;

    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    let n = &got[0];
    assert!(
        n.signature_valid(&secret),
        "signature verifies with the SPEC's algorithm"
    );
    assert!(!n.signature_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
    assert_eq!(n.header("content-type"), "application/json");
    let body = n.json();
    assert_eq!(n.header("x-event-id"), body["event_id"].as_str().unwrap());
    assert!(n.header("x-delivery-id").starts_with("dl_"));
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "tenant_id",
            "partner_id",
            "event_id",
            "event_name",
            "event_time",
            "entity_id",
            "entity_type",
            "enrollment_key",
            "enrollment_id",
            "data"
        ]
    );
    assert_eq!(body["tenant_id"], "con_test");
    assert_eq!(body["partner_id"], "partner_a");
    assert_eq!(body["event_name"], "prospect_changed_role");
    assert_eq!(body["entity_id"], P1);
    assert_eq!(body["entity_type"], "prospect");
    assert_eq!(body["enrollment_key"], "execs");
    assert_eq!(body["enrollment_id"], eid.as_str());
    assert_eq!(body["data"]["previous_job_title"], "Engineer");
    assert_eq!(body["data"]["current_job_title"], "Lead 0");

    // Recorded as delivered with one attempt.
    let log: Value = app
        .req(Method::GET, "/v1/webhooks/partner_a/deliveries")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log2: Value = app
        .req(
            Method::GET,
            "/v1/webhooks/partner_a/deliveries?status=delivered",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 1);
    let d = &log2["deliveries"][0];
    assert_eq!(d["delivery_id"], n.header("x-delivery-id"));
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_status_code"], 200);

    // The operator sees it in the metrics.
    let m = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let delivered: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("webhook_attempts_total{outcome=\"delivered\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(delivered >= 1, "{m}");
}

#[tokio::test]
async fn failures_are_retried_on_schedule_then_delivered() {
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let rx = Receiver::start(Reply::Status(200)).await;
    rx.script([Reply::Status(500), Reply::RetryAfter(503, 1)]);
    let hook = register(&app, &app.key, "partner_a", &rx.url).await;
    enroll(&app, &app.key, "execs", &[P1]).await;
    one_event_each(&app, &admin, &[P1], 0).await;

    let got = rx.wait_for(3, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 3);
    let ids: Vec<&str> = got.iter().map(|r| r.header("x-delivery-id")).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "X-Delivery-ID stable across retries"
    );
    for r in &got {
        assert!(r.signature_valid(hook["webhook_secret"].as_str().unwrap()));
    }
    // 1 s schedule with ±20 % jitter between attempts.
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(750),
            "retry came after {gap:?}"
        );
        assert!(gap <= Duration::from_secs(3), "retry came after {gap:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = ids[0];
    let detail: Value = app
        .req(
            Method::GET,
            &format!("/v1/webhooks/partner_a/deliveries/{id}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["delivery"]["status"], "delivered");
    assert_eq!(detail["delivery"]["attempts"], 3);
    let codes: Vec<Value> = detail["attempt_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(503), json!(200)]);
}

#[tokio::test]
async fn gone_disables_the_webhook_until_reregistered() {
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let rx = Receiver::start(Reply::Status(410)).await;
    register(&app, &app.key, "partner_a", &rx.url).await;
    enroll(&app, &app.key, "execs", &[P1, P2]).await;
    one_event_each(&app, &admin, &[P1, P2], 0).await;
    rx.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Disabled after the 410: nothing more is sent while notifications wait.
    let seen = rx.received().len();
    assert!(seen <= 2, "{seen}");
    let log: Value = app
        .req(
            Method::GET,
            "/v1/webhooks/partner_a/deliveries?status=pending",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        log["deliveries"].as_array().unwrap().len(),
        2,
        "both still pending"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.received().len(), seen, "no attempts while disabled");

    // GET shows the state, the reason and when, after the reference's fields.
    let got = get_webhook(&app, "partner_a").await;
    assert_eq!(got["status"], "disabled");
    assert_eq!(got["disabled_reason"], "receiver answered 410 Gone");
    let at = got["disabled_at"]
        .as_str()
        .expect("disabled_at is a timestamp");
    let at =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
    let age = time::OffsetDateTime::now_utc() - at;
    assert!(age.whole_seconds() >= 0 && age.whole_seconds() < 60, "{at}");

    rx.set_default(Reply::Status(200));
    register(&app, &app.key, "partner_a", &rx.url).await;
    rx.wait_for(seen + 2, Duration::from_secs(10)).await;
    let got = get_webhook(&app, "partner_a").await;
    assert_eq!(got["status"], "active");
    assert_eq!(got["disabled_reason"], Value::Null);
    assert_eq!(got["disabled_at"], Value::Null);
}

pub(crate) async fn get_webhook(app: &TestApp, partner: &str) -> Value {
    app.req(Method::GET, &format!("/v1/webhooks/{partner}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_hanging_receiver_does_not_delay_another_partner() {
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let slow_key = app.new_key("con_slow", "slow", false).await;
    let slow = Receiver::start(Reply::Hang).await;
    let fast = Receiver::start(Reply::Status(200)).await;
    register(&app, &slow_key, "slow", &slow.url).await;
    register(&app, &app.key, "partner_a", &fast.url).await;
    let many: Vec<String> = (0..20).map(|i| format!("{:040x}", 0x5000 + i)).collect();
    let many_ref: Vec<&str> = many.iter().map(String::as_str).collect();
    enroll(&app, &slow_key, "slow", &many_ref).await;
    one_event_each(&app, &admin, &many_ref, 0).await;
    slow.wait_for(1, Duration::from_secs(5)).await;

    enroll(&app, &app.key, "fast", &[P1]).await;
    let t = std::time::Instant::now();
    one_event_each(&app, &admin, &[P1], 0).await;
    fast.wait_for(1, Duration::from_secs(5)).await;
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "fast partner waited {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn private_targets_are_refused_by_default() {
    let (mut s, w) = test_delivery();
    s.allow_private_targets = false;
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let rx = Receiver::start(Reply::Status(200)).await;
    register(&app, &app.key, "partner_a", &rx.url).await;
    enroll(&app, &app.key, "execs", &[P1]).await;
    one_event_each(&app, &admin, &[P1], 0).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        rx.received().is_empty(),
        "nothing reached the loopback receiver"
    );
    let log: Value = app
        .req(Method::GET, "/v1/webhooks/partner_a/deliveries")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let err = log["deliveries"][0]["last_error"].as_str().unwrap_or("");
    assert!(err.contains("SSRF"), "{log}");

    let check = check_connectivity(&app, "partner_a").await;
    assert_eq!(check["response_context"]["request_status"], "failure");
    assert!(check["error"].as_str().unwrap().contains("SSRF"));
}

#[tokio::test]
async fn patch_removing_a_prospect_stops_its_notifications() {
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let rx = Receiver::start(Reply::Status(200)).await;
    register(&app, &app.key, "partner_a", &rx.url).await;
    let eid = enroll(&app, &app.key, "before", &[P1, P2]).await;
    one_event_each(&app, &admin, &[P1, P2], 0).await;
    rx.wait_for(2, Duration::from_secs(10)).await;

    let resp = app
        .req(Method::PATCH, ENROLL)
        .json(
            &json!({"enrollment_key": "after", "enrollment_id": eid, "prospect_ids": [P2],
            "event_types": ["prospect_changed_role"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    one_event_each(&app, &admin, &[P1, P2], 1).await;
    let got = rx.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_all = rx.received();
    assert_eq!(got_all.len(), 3, "P1 no longer notified");
    let last = got[2].json();
    assert_eq!(last["entity_id"], P2);
    assert_eq!(last["enrollment_key"], "after", "new key after the PATCH");
}

#[tokio::test]
async fn check_connectivity_reports_the_receivers_answer() {
    let app = TestApp::spawn_full(prospect_events_e2e::test_config(), Some(test_delivery())).await;
    let ok = Receiver::start(Reply::Status(200)).await;
    let hook = register(&app, &app.key, "partner_a", &ok.url).await;
    let body = check_connectivity(&app, "partner_a").await;
    assert_eq!(body["response_context"]["request_status"], "success");
    assert_eq!(body["webhook_response"]["status_code"], 200);
    let got = ok.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].signature_valid(hook["webhook_secret"].as_str().unwrap()));
    assert_eq!(got[0].json()["event_name"], "webhook_connectivity_check");

    let failing = Receiver::start(Reply::Status(500)).await;
    register(&app, &app.key, "partner_a", &failing.url).await;
    let body = check_connectivity(&app, "partner_a").await;
    assert_eq!(body["response_context"]["request_status"], "failure");
    assert_eq!(body["webhook_response"]["status_code"], 500);

    // Nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    register(
        &app,
        &app.key,
        "partner_a",
        &format!("http://127.0.0.1:{port}/x"),
    )
    .await;
    let body = check_connectivity(&app, "partner_a").await;
    assert_eq!(body["response_context"]["request_status"], "failure");
    assert!(body["error"].is_string());
    assert!(body.get("webhook_response").is_none());
}

#[tokio::test]
async fn simulations_flow_through_the_pipeline() {
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let rx = Receiver::start(Reply::Status(200)).await;
    register(&app, &app.key, "partner_a", &rx.url).await;
    let body: Value = app
        .req(Method::POST, "/v1/webhooks/check_connectivity")
        .json(&json!({"partner_id": "partner_a",
            "simulation": {"event_name": "new_funding_round", "number_of_events": 3}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["queued_events"], 3);
    let got = rx.wait_for(3, Duration::from_secs(10)).await;
    for r in &got {
        let n = r.json();
        assert_eq!(n["simulated"], true);
        assert_eq!(n["enrollment_key"], "simulation");
        assert!(n["enrollment_id"].is_null());
        assert_eq!(n["entity_type"], "business");
        assert_eq!(n["event_name"], "new_funding_round");
        assert_eq!(n["data"]["event_name"], "new_funding_round");
    }
    let resp = app
        .req(Method::POST, "/v1/webhooks/check_connectivity")
        .json(&json!({"partner_id": "partner_a", "simulation": {"event_name": "nope", "number_of_events": 11}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
}

/// `simulation: {}` follows the official schema (every field optional): one
/// `prospect_changed_role` now; a naive `event_time` is read as UTC.
#[tokio::test]
async fn simulation_fields_are_all_optional() {
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let rx = Receiver::start(Reply::Status(200)).await;
    register(&app, &app.key, "partner_a", &rx.url).await;
    let simulate = |sim: Value| {
        app.req(Method::POST, "/v1/webhooks/check_connectivity")
            .json(&json!({"partner_id": "partner_a", "simulation": sim}))
            .send()
    };
    let resp = simulate(json!({})).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["queued_events"], 1, "{body}");
    let n = rx.wait_for(1, Duration::from_secs(10)).await[0].json();
    assert_eq!(n["event_name"], "prospect_changed_role");
    assert_eq!(n["entity_type"], "prospect");
    assert_eq!(n["simulated"], true);
    let t = n["event_time"].as_str().unwrap();
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(
        (time::OffsetDateTime::now_utc() - t).whole_seconds().abs() < 60,
        "{t}"
    );

    let resp = simulate(json!({"number_of_events": 2, "event_time": "2026-09-01T00:00:00"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = rx.wait_for(3, Duration::from_secs(10)).await;
    for r in &got[1..] {
        assert_eq!(r.json()["event_name"], "prospect_changed_role");
        assert_eq!(r.json()["event_time"], "2026-09-01T00:00:00Z");
    }
    // A field that is present is still validated.
    let resp = simulate(json!({"event_name": null})).await.unwrap();
    assert_eq!(resp.status(), 422);
}

/// `PUT /v1/webhooks/{partner_id}` (beyond the reference): a new URL, the same secret; 404 when
/// there is no webhook (it never creates one) or it is another tenant's; URLs validated as on
/// registration.
#[tokio::test]
async fn put_changes_the_url_and_keeps_the_secret() {
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let (old_rx, new_rx) = (
        Receiver::start(Reply::Status(200)).await,
        Receiver::start(Reply::Status(200)).await,
    );
    let put = |key: &str, url: Value| {
        app.with_key(Method::PUT, "/v1/webhooks/partner_a", key)
            .json(&json!({"webhook_url": url}))
            .send()
    };
    let resp = put(&app.key, json!(new_rx.url)).await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["detail"],
        "Webhook not found"
    );
    assert_eq!(
        get_webhook(&app, "partner_a").await["detail"],
        "Webhook not found"
    );

    let first = register(&app, &app.key, "partner_a", &old_rx.url).await;
    let secret = first["webhook_secret"].as_str().unwrap().to_string();
    let resp = put(&app.key, json!(new_rx.url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["webhook_url"], new_rx.url.as_str());
    assert_eq!(updated["webhook_secret"], secret.as_str());
    assert_eq!(updated["created_at"], first["created_at"]);
    assert_eq!(updated["response_context"]["request_status"], "success");
    let got = get_webhook(&app, "partner_a").await;
    assert_eq!(
        (got["webhook_url"].as_str(), got["webhook_secret"].as_str()),
        (Some(new_rx.url.as_str()), Some(secret.as_str()))
    );

    // Registration's URL rule and 422 body; unknown fields are refused.
    let resp = put(&app.key, json!("ftp://example.com")).await.unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["detail"],
        json!([{"type": "value_error", "loc": ["body", "webhook_url"],
                "msg": "Value error, webhook_url must be an absolute http(s) URL",
                "input": "ftp://example.com", "ctx": {"error": {}}}])
    );
    // Another tenant with a partner of the same name sees no webhook and changes nothing.
    let other = app.new_key("con_other", "partner_a", false).await;
    let resp = put(&other, json!(old_rx.url)).await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        get_webhook(&app, "partner_a").await["webhook_url"],
        new_rx.url.as_str()
    );

    // Notifications go to the new URL, signed with the kept secret.
    enroll(&app, &app.key, "execs", &[P1]).await;
    one_event_each(&app, &admin, &[P1], 0).await;
    let got = new_rx.wait_for(1, Duration::from_secs(10)).await;
    assert!(got[0].signature_valid(&secret));
    assert!(old_rx.notifications().is_empty());

    // The served OpenAPI documents the extension.
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["paths"]["/v1/webhooks/{partner_id}"]["put"]["operationId"],
        "update_webhook_url"
    );
}

#[tokio::test]
async fn retry_and_replay_requeue_deliveries() {
    let (s, mut w) = test_delivery();
    w.retry = delivery::RetryPolicy::new(vec![Duration::from_millis(200)], 0.2);
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let rx = Receiver::start(Reply::Status(500)).await;
    register(&app, &app.key, "partner_a", &rx.url).await;
    enroll(&app, &app.key, "execs", &[P1]).await;
    one_event_each(&app, &admin, &[P1], 0).await;
    // Two attempts (one retry step), then failed.
    rx.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log: Value = app
        .req(
            Method::GET,
            "/v1/webhooks/partner_a/deliveries?status=failed",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = log["deliveries"][0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(log["deliveries"][0]["attempts"], 2);

    rx.set_default(Reply::Status(200));
    let resp = app
        .req(
            Method::POST,
            &format!("/v1/webhooks/partner_a/deliveries/{id}/retry"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    rx.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(
        app.req(
            Method::POST,
            "/v1/webhooks/partner_a/deliveries/dl_nope/retry"
        )
        .send()
        .await
        .unwrap()
        .status(),
        404
    );

    // Replay the window: the delivered notification is sent again.
    let resp: Value = app
        .req(Method::POST, "/v1/webhooks/partner_a/replay")
        .json(&json!({"timestamp_from": "2025-12-01", "event_types": ["prospect_changed_role"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["requeued"], 1);
    rx.wait_for(4, Duration::from_secs(10)).await;
    let none: Value = app
        .req(Method::POST, "/v1/webhooks/partner_a/replay")
        .json(&json!({"timestamp_from": "2030-01-01"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["requeued"], 0);
}

/// Claimed notifications waiting for a send slot longer than their lease are not sent twice:
/// the worker renews the lease before sending.
#[tokio::test]
async fn slow_receivers_get_each_notification_once() {
    let (s, mut w) = test_delivery();
    w.lease = Duration::from_secs(3);
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let rx = Receiver::start(Reply::Slow(200, 400)).await;
    register(&app, &app.key, "partner_a", &rx.url).await;
    let ids: Vec<String> = (0..40).map(|i| format!("{:040x}", 0x7000 + i)).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    enroll(&app, &app.key, "first_half", &refs[..20]).await;
    enroll(&app, &app.key, "second_half", &refs[20..]).await;
    one_event_each(&app, &admin, &refs, 0).await;
    // 40 sends, 4 at a time, 0.4 s each: about 4 s, longer than the 3 s lease.
    let got = rx.wait_for(40, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = rx.received();
    let mut distinct: Vec<&str> = all.iter().map(|r| r.header("x-delivery-id")).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 40);
    assert_eq!(
        all.len(),
        40,
        "no notification sent twice (got {})",
        all.len()
    );
    assert!(got.len() >= 40);
}
