//! v2 webhooks and enrollments end to end: webhooks as resources (201, cap, names, the
//! read-only legacy row), routing to each enrollment's webhook with its secret, headers and
//! payload format, rotation with both signature schemes (checked by code written from the
//! specs and by the Standard Webhooks Python library), 409 and force, pause and re-activation,
//! disabled webhooks waiting, per-webhook delivery logs, and tenant isolation of every route.

use crate::webhooks::{one_event_each, register};
use prospect_events_e2e::receiver::{Receiver, Reply};
use prospect_events_e2e::{test_config, test_delivery, TestApp, P1, P2, P3};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const HOOKS: &str = "/v2/webhooks";
const ENROLL: &str = "/v2/prospects/events/enrollments";
const WAIT: Duration = Duration::from_secs(10);

async fn call(
    app: &TestApp,
    key: &str,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.with_key(m, path, key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// Creates a webhook (201) and returns (id, secret).
async fn create(app: &TestApp, key: &str, body: Value) -> (String, String) {
    let (st, v) = call(app, key, Method::POST, HOOKS, Some(body)).await;
    assert_eq!(st, 201, "{v}");
    (
        v["webhook_id"].as_str().unwrap().to_string(),
        v["webhook_secret"].as_str().unwrap().to_string(),
    )
}

async fn enroll_v2(app: &TestApp, key: &str, webhook: &str, ids: &[&str]) -> (u16, Value) {
    let body = json!({"enrollment_key": "v2-key", "webhook_id": webhook, "prospect_ids": ids,
        "event_types": ["prospect_changed_role", "prospect_changed_company"]});
    call(app, key, Method::POST, ENROLL, Some(body)).await
}

async fn worker_app() -> (TestApp, String) {
    let (s, w) = test_delivery();
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_test", "partner_a", true).await;
    (app, admin)
}

#[tokio::test]
async fn two_webhooks_receive_only_their_enrollments_events() {
    let (app, admin) = worker_app().await;
    let (ra, rb) = (
        Receiver::start(Reply::Status(200)).await,
        Receiver::start(Reply::Status(200)).await,
    );
    let (a, sa) = create(
        &app,
        &app.key,
        json!({"name": "alpha", "webhook_url": ra.url,
        "headers": ["X-Team: alpha"]}),
    )
    .await;
    let (b, sb) = create(
        &app,
        &app.key,
        json!({"name": "beta", "webhook_url": rb.url,
        "headers": ["X-Team: beta", "Authorization: Bearer b-token"],
        "payload_format": "stringified_json"}),
    )
    .await;
    let (st, ea) = enroll_v2(&app, &app.key, &a, &[P1]).await;
    assert_eq!(st, 201, "{ea}");
    assert_eq!(
        keys(&ea),
        [
            "enrollment_key",
            "enrollment_id",
            "webhook_id",
            "status",
            "response_context"
        ]
    );
    assert_eq!(
        (ea["webhook_id"].as_str(), ea["status"].as_str()),
        (Some(a.as_str()), Some("active"))
    );
    let (st, eb) = enroll_v2(&app, &app.key, &b, &[P2]).await;
    assert_eq!(st, 201, "{eb}");
    one_event_each(&app, &admin, &[P1, P2, P3], 0).await;

    let got_a = ra.wait_for(1, WAIT).await;
    let got_b = rb.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (ra.count(), rb.count()),
        (1, 1),
        "each webhook gets only its enrollment's event"
    );
    let (qa, qb) = (&got_a[0], &got_b[0]);
    // Each verified with its own secret only, in both schemes, and carrying its headers.
    assert!(qa.signature_valid(&sa) && !qa.signature_valid(&sb));
    assert!(qb.signature_valid(&sb) && !qb.signature_valid(&sa));
    assert!(qa.standard_signature_valid(&sa) && qa.standard_library_accepts(&sa));
    assert!(qb.standard_signature_valid(&sb) && qb.standard_library_accepts(&sb));
    assert!(!qb.standard_library_accepts(&sa));
    assert_eq!(qa.header("x-team"), "alpha");
    assert_eq!(qb.header("x-team"), "beta");
    assert_eq!(qb.header("authorization"), "Bearer b-token");
    assert_eq!(qa.header("webhook-id"), qa.header("x-delivery-id"));
    // v2 payloads; B's stringified: {"text": "<the same JSON>"}.
    let pa = qa.json();
    assert_eq!(
        keys(&pa),
        [
            "webhook_id",
            "tenant_id",
            "partner_id",
            "event_id",
            "event_name",
            "enrollment_key",
            "enrollment_id",
            "entity_type",
            "prospect_id",
            "event_time",
            "data"
        ]
    );
    assert_eq!(
        (pa["webhook_id"].as_str(), pa["prospect_id"].as_str()),
        (Some(a.as_str()), Some(P1))
    );
    assert_eq!(pa["enrollment_id"], ea["enrollment_id"]);
    let outer = qb.json();
    assert_eq!(keys(&outer), ["text"]);
    let pb: Value = serde_json::from_str(outer["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        (pb["webhook_id"].as_str(), pb["prospect_id"].as_str()),
        (Some(b.as_str()), Some(P2))
    );
    assert_eq!(pb["entity_type"], "prospect");

    // Each webhook's own delivery log (beyond the reference), in the v2 envelope.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (st, log) = call(
            &app,
            &app.key,
            Method::GET,
            &format!("{HOOKS}/{a}/deliveries"),
            None,
        )
        .await;
        assert_eq!(st, 200, "{log}");
        assert!(log["response_context"]
            .get("time_taken_in_seconds")
            .is_some());
        let d = log["deliveries"].as_array().unwrap();
        assert_eq!(d.len(), 1);
        if d[0]["status"] == "delivered" || std::time::Instant::now() > deadline {
            assert_eq!(d[0]["status"], "delivered");
            let id = d[0]["delivery_id"].as_str().unwrap();
            let (st, _) = call(
                &app,
                &app.key,
                Method::GET,
                &format!("{HOOKS}/{b}/deliveries/{id}"),
                None,
            )
            .await;
            assert_eq!(st, 404, "another webhook's delivery");
            let (st, r) = call(
                &app,
                &app.key,
                Method::POST,
                &format!("{HOOKS}/{a}/deliveries/{id}/retry"),
                None,
            )
            .await;
            assert_eq!((st, r["status"].as_str()), (200, Some("pending")), "{r}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ra.wait_for(2, WAIT).await;
    let (st, r) = call(
        &app,
        &app.key,
        Method::POST,
        &format!("{HOOKS}/{b}/replay"),
        Some(json!({"timestamp_from": "2020-01-01"})),
    )
    .await;
    assert_eq!((st, r["requeued"].as_u64()), (200, Some(1)), "{r}");
    rb.wait_for(2, WAIT).await;
}

#[tokio::test]
async fn rotation_switches_x_signature_and_signs_both_for_standard_webhooks() {
    let app = TestApp::spawn_with_worker(test_delivery().0, test_delivery().1).await;
    let rx = Receiver::start(Reply::Status(200)).await;
    let (id, old) = create(
        &app,
        &app.key,
        json!({"name": "rot", "webhook_url": rx.url}),
    )
    .await;
    let (st, r) = call(
        &app,
        &app.key,
        Method::POST,
        &format!("{HOOKS}/{id}/rotate_secret"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        keys(&r),
        ["response_context", "webhook_id", "webhook_secret"]
    );
    let new = r["webhook_secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let (st, c) = call(
        &app,
        &app.key,
        Method::POST,
        &format!("{HOOKS}/{id}/check_connectivity"),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (st, c["response_context"]["request_status"].as_str()),
        (200, Some("success")),
        "{c}"
    );
    let q = &rx.wait_for(1, WAIT).await[0];
    assert!(
        q.signature_valid(&new) && !q.signature_valid(&old),
        "X-Signature: the new secret at once"
    );
    assert_eq!(q.header("webhook-signature").split(' ').count(), 2);
    for s in [&new, &old] {
        assert!(q.standard_signature_valid(s) && q.standard_library_accepts(s));
    }
    assert_eq!(q.json()["webhook_id"], id.as_str());

    // Without a grace, the old secret stops at once in both schemes.
    let mut cfg = test_config();
    cfg.secret_rotation_grace = Duration::ZERO;
    let app = TestApp::spawn_full(cfg, Some(test_delivery())).await;
    let rx = Receiver::start(Reply::Status(200)).await;
    let (id, old) = create(
        &app,
        &app.key,
        json!({"name": "rot", "webhook_url": rx.url}),
    )
    .await;
    let (_, r) = call(
        &app,
        &app.key,
        Method::POST,
        &format!("{HOOKS}/{id}/rotate_secret"),
        None,
    )
    .await;
    let new = r["webhook_secret"].as_str().unwrap().to_string();
    call(
        &app,
        &app.key,
        Method::POST,
        &format!("{HOOKS}/{id}/check_connectivity"),
        Some(json!({})),
    )
    .await;
    let q = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(q.header("webhook-signature").split(' ').count(), 1);
    assert!(q.standard_library_accepts(&new) && !q.standard_library_accepts(&old));
}

#[tokio::test]
async fn delete_conflicts_force_pauses_and_patch_reactivates() {
    let app = TestApp::spawn().await;
    let (a, _) = create(
        &app,
        &app.key,
        json!({"name": "a", "webhook_url": "https://example.com/a"}),
    )
    .await;
    let (_, e1) = enroll_v2(&app, &app.key, &a, &[P1]).await;
    let (_, e2) = enroll_v2(&app, &app.key, &a, &[P2]).await;
    let (id1, id2) = (
        e1["enrollment_id"].as_str().unwrap(),
        e2["enrollment_id"].as_str().unwrap(),
    );
    let (st, v) = call(
        &app,
        &app.key,
        Method::DELETE,
        &format!("{HOOKS}/{a}"),
        None,
    )
    .await;
    assert_eq!(st, 409, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains(id1) && detail.contains(id2), "{detail}");
    let (st, v) = call(
        &app,
        &app.key,
        Method::DELETE,
        &format!("{HOOKS}/{a}?force=true"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(keys(&v), ["response_context", "affected_enrollment_ids"]);
    assert_eq!(v["affected_enrollment_ids"], json!([id1, id2]));
    let (st, _) = call(&app, &app.key, Method::GET, &format!("{HOOKS}/{a}"), None).await;
    assert_eq!(st, 404);
    let (_, list) = call(&app, &app.key, Method::GET, ENROLL, None).await;
    let statuses: Vec<&str> = list["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["paused", "paused"]);

    // Unknown → 404, disabled → 422, active → re-activated.
    let (b, _) = create(
        &app,
        &app.key,
        json!({"name": "b", "webhook_url": "https://example.com/b"}),
    )
    .await;
    let path = format!("{ENROLL}/{id1}");
    let (st, v) = call(
        &app,
        &app.key,
        Method::PATCH,
        &path,
        Some(json!({"webhook_id": "wh_nope"})),
    )
    .await;
    assert_eq!(st, 404, "{v}");
    call(
        &app,
        &app.key,
        Method::PATCH,
        &format!("{HOOKS}/{b}"),
        Some(json!({"status": "disabled"})),
    )
    .await;
    let (st, v) = call(
        &app,
        &app.key,
        Method::PATCH,
        &path,
        Some(json!({"webhook_id": b})),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["detail"][0]["loc"], json!(["body", "webhook_id"]));
    let (st, v) = enroll_v2(&app, &app.key, &b, &[P3]).await;
    assert_eq!(st, 422, "{v}");
    let (st, v) = call(
        &app,
        &app.key,
        Method::PATCH,
        &format!("{HOOKS}/{b}"),
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("active")), "{v}");
    let (st, v) = call(
        &app,
        &app.key,
        Method::PATCH,
        &path,
        Some(json!({"webhook_id": b})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["webhook_id"].as_str(), v["status"].as_str()),
        (Some(b.as_str()), Some("active"))
    );
    assert_eq!(
        v["enrollment_key"], "v2-key",
        "a partial PATCH keeps the other fields"
    );
    // An unused webhook is deleted without force.
    let (st, v) = call(
        &app,
        &app.key,
        Method::DELETE,
        &format!("{ENROLL}/{id2}"),
        None,
    )
    .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("success")), "{v}");
    let (st, v) = call(
        &app,
        &app.key,
        Method::DELETE,
        &format!("{HOOKS}/{b}"),
        None,
    )
    .await;
    assert_eq!(st, 409, "{v}");
}

#[tokio::test]
async fn cap_names_legacy_row_and_reads() {
    let app = TestApp::spawn().await;
    register(&app, &app.key, "partner_a", "https://example.com/v1").await;
    for i in 0..10 {
        create(
            &app,
            &app.key,
            json!({"name": format!("n{i}"), "webhook_url": "https://example.com/x",
            "description": "d"}),
        )
        .await;
    }
    let (st, v) = call(
        &app,
        &app.key,
        Method::POST,
        HOOKS,
        Some(json!({"name": "n10", "webhook_url": "https://example.com/x"})),
    )
    .await;
    assert_eq!(st, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("at most 10"), "{v}");
    let (_, list) = call(&app, &app.key, Method::GET, HOOKS, None).await;
    let hooks = list["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 11);
    let legacy = &hooks[0];
    assert_eq!(
        (legacy["legacy"].as_bool(), legacy["webhook_id"].as_str()),
        (Some(true), Some("wh_legacy"))
    );
    assert_eq!(legacy["webhook_url"], "https://example.com/v1");
    assert!(legacy.get("webhook_secret").is_none() && hooks[1].get("webhook_secret").is_none());
    assert_eq!(
        keys(&hooks[1]),
        [
            "webhook_id",
            "scope",
            "name",
            "description",
            "webhook_url",
            "headers",
            "payload_format",
            "status",
            "created_at",
            "last_modified_time",
            "legacy"
        ]
    );
    // Read-only legacy row; names unique; GET one without the secret; the status filter.
    for (m, path, body) in [
        (
            Method::PATCH,
            format!("{HOOKS}/wh_legacy"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::DELETE,
            format!("{HOOKS}/wh_legacy?force=true"),
            None,
        ),
        (
            Method::POST,
            format!("{HOOKS}/wh_legacy/rotate_secret"),
            None,
        ),
    ] {
        let (st, v) = call(&app, &app.key, m, &path, body).await;
        assert_eq!(st, 409, "{path}: {v}");
    }
    let one = hooks[1]["webhook_id"].as_str().unwrap();
    call(
        &app,
        &app.key,
        Method::DELETE,
        &format!("{HOOKS}/{one}"),
        None,
    )
    .await;
    let (st, v) = call(
        &app,
        &app.key,
        Method::POST,
        HOOKS,
        Some(json!({"name": "n2", "webhook_url": "https://example.com/x"})),
    )
    .await;
    assert_eq!(st, 409, "duplicate name: {v}");
    let two = hooks[2]["webhook_id"].as_str().unwrap();
    let (st, v) = call(&app, &app.key, Method::GET, &format!("{HOOKS}/{two}"), None).await;
    assert_eq!(st, 200, "{v}");
    assert!(v.get("webhook_secret").is_none());
    assert_eq!(*keys(&v).last().unwrap(), "response_context");
    call(
        &app,
        &app.key,
        Method::PATCH,
        &format!("{HOOKS}/{two}"),
        Some(json!({"status": "disabled"})),
    )
    .await;
    let (_, d) = call(
        &app,
        &app.key,
        Method::GET,
        &format!("{HOOKS}?status=disabled"),
        None,
    )
    .await;
    assert_eq!(d["webhooks"].as_array().unwrap().len(), 1);
    let (st, v) = call(
        &app,
        &app.key,
        Method::GET,
        &format!("{HOOKS}?status=paused"),
        None,
    )
    .await;
    assert_eq!(
        (st, v["detail"][0]["type"].as_str()),
        (422, Some("enum")),
        "{v}"
    );
}

#[tokio::test]
async fn disabled_webhooks_wait_and_v1_v2_lists_show_each_other() {
    let (app, admin) = worker_app().await;
    let rx = Receiver::start(Reply::Status(200)).await;
    let (w, _) = create(&app, &app.key, json!({"name": "w", "webhook_url": rx.url})).await;
    let (_, e) = enroll_v2(&app, &app.key, &w, &[P1]).await;
    let (st, v) = call(
        &app,
        &app.key,
        Method::PATCH,
        &format!("{HOOKS}/{w}"),
        Some(json!({"status": "disabled"})),
    )
    .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("disabled")), "{v}");
    one_event_each(&app, &admin, &[P1], 0).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(rx.count(), 0, "a disabled webhook gets nothing");
    call(
        &app,
        &app.key,
        Method::PATCH,
        &format!("{HOOKS}/{w}"),
        Some(json!({"status": "active"})),
    )
    .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["enrollment_id"], e["enrollment_id"]);

    // A v1 enrollment goes to the legacy webhook; each list shows the other's enrollments.
    let v1 = crate::webhooks::enroll(&app, &app.key, "v1-key", &[P2]).await;
    let (_, l2) = call(&app, &app.key, Method::GET, ENROLL, None).await;
    let routes: Vec<(&str, &str)> = l2["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["enrollment_id"].as_str().unwrap(),
                e["webhook_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            (e["enrollment_id"].as_str().unwrap(), w.as_str()),
            (v1.as_str(), "wh_legacy")
        ]
    );
    let (_, l1) = call(
        &app,
        &app.key,
        Method::GET,
        "/v1/prospects/events/enrollments",
        None,
    )
    .await;
    assert_eq!(l1["enrollments"].as_array().unwrap().len(), 2);
    assert!(
        l1["enrollments"][0].get("webhook_id").is_none(),
        "v1's schema is unchanged"
    );
}

#[tokio::test]
async fn every_v2_route_is_tenant_isolated() {
    let app = TestApp::spawn().await;
    let admin = app.new_key("con_test", "partner_a", true).await;
    let (w, _) = create(
        &app,
        &app.key,
        json!({"name": "mine", "webhook_url": "https://example.com/m"}),
    )
    .await;
    let (_, e) = enroll_v2(&app, &app.key, &w, &[P1]).await;
    let eid = e["enrollment_id"].as_str().unwrap();
    // A real delivery of the owner's webhook (no worker: it stays pending), so the delivery
    // routes below are refused for the caller, not for a missing id.
    one_event_each(&app, &admin, &[P1], 0).await;
    let deliveries = format!("{HOOKS}/{w}/deliveries");
    let (st, log) = call(&app, &app.key, Method::GET, &deliveries, None).await;
    assert_eq!(st, 200, "{log}");
    let dl = log["deliveries"][0]["delivery_id"]
        .as_str()
        .expect("the owner's delivery")
        .to_string();
    let (st, before) = call(
        &app,
        &app.key,
        Method::GET,
        &format!("{deliveries}/{dl}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "the owner reads its delivery: {before}");
    // Another tenant's key for a partner of the same name, and a key of the same tenant for
    // another partner: neither reaches the webhook, its deliveries or the enrollment.
    let other_tenant = app.new_key("con_other", "partner_a", false).await;
    let other_partner = app.new_key("con_test", "partner_b", false).await;
    for other in [&other_tenant, &other_partner] {
        refused_everywhere(&app, other, &w, eid, &dl).await;
    }
    // The owner still has both, and its delivery is as it was (no retry went through).
    let (st, _) = call(&app, &app.key, Method::GET, &format!("{HOOKS}/{w}"), None).await;
    assert_eq!(st, 200);
    let (_, v) = call(&app, &app.key, Method::GET, ENROLL, None).await;
    assert_eq!(v["enrollments"].as_array().unwrap().len(), 1);
    let (_, d) = call(
        &app,
        &app.key,
        Method::GET,
        &format!("{deliveries}/{dl}"),
        None,
    )
    .await;
    assert_eq!(
        d["delivery"], before["delivery"],
        "untouched by the others' calls"
    );
}

/// Every v2 route naming the webhook `w`, the enrollment `eid` or the delivery `dl` answers
/// 404 to `other`, and its lists are empty.
async fn refused_everywhere(app: &TestApp, other: &str, w: &str, eid: &str, dl: &str) {
    let not_found = [
        (Method::GET, format!("{HOOKS}/{w}"), None),
        (
            Method::PATCH,
            format!("{HOOKS}/{w}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("{HOOKS}/{w}?force=true"), None),
        (Method::POST, format!("{HOOKS}/{w}/rotate_secret"), None),
        (
            Method::POST,
            format!("{HOOKS}/{w}/check_connectivity"),
            Some(json!({})),
        ),
        (Method::GET, format!("{HOOKS}/{w}/deliveries"), None),
        (Method::GET, format!("{HOOKS}/{w}/deliveries/{dl}"), None),
        (
            Method::POST,
            format!("{HOOKS}/{w}/deliveries/{dl}/retry"),
            None,
        ),
        (
            Method::POST,
            format!("{HOOKS}/{w}/replay"),
            Some(json!({"timestamp_from": "2020-01-01"})),
        ),
        (
            Method::PATCH,
            format!("{ENROLL}/{eid}"),
            Some(json!({"enrollment_key": "xxxx"})),
        ),
        (Method::DELETE, format!("{ENROLL}/{eid}"), None),
    ];
    for (m, path, body) in not_found {
        let (st, v) = call(app, other, m, &path, body).await;
        assert_eq!(st, 404, "{path}: {v}");
    }
    let (st, v) = enroll_v2(app, other, w, &[P1]).await;
    assert_eq!(st, 404, "{v}");
    let (_, v) = call(app, other, Method::GET, HOOKS, None).await;
    let ids: Vec<&Value> = v["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["webhook_id"])
        .collect();
    assert!(!ids.contains(&&json!(w)), "{v}");
    let (_, v) = call(app, other, Method::GET, ENROLL, None).await;
    assert_eq!(v["enrollments"], json!([]));
}

/// `prospect-events demo` walks the v2 flow too: a named webhook with a header and the
/// stringified format, an enrollment bound to it, its notification checked in both schemes.
#[tokio::test]
async fn demo_shows_the_v2_flow() {
    let Some(bin) = prospect_events_e2e::cli_binary() else {
        return;
    };
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .arg("demo")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for line in [
        "POST /v2/webhooks → wh_",
        "POST /v2/prospects/events/enrollments → en_",
        "X-Signature verified, webhook-signature verified, X-Team sales-ops",
        "Done: 3 signed notifications delivered and verified.",
    ] {
        assert!(text.contains(line), "{line} missing in:\n{text}");
    }
}

/// Fairness holds per webhook, not per tenant: a hanging v2 webhook holds only its own share
/// of sends, so another webhook of the same tenant still gets its notification at once.
#[tokio::test]
async fn a_hanging_webhook_does_not_delay_another_of_the_same_tenant() {
    let (app, admin) = worker_app().await;
    let slow = Receiver::start(Reply::Hang).await;
    let fast = Receiver::start(Reply::Status(200)).await;
    let (s, _) = create(
        &app,
        &app.key,
        json!({"name": "slow", "webhook_url": slow.url}),
    )
    .await;
    let (f, _) = create(
        &app,
        &app.key,
        json!({"name": "fast", "webhook_url": fast.url}),
    )
    .await;
    let many: Vec<String> = (0..20).map(|i| format!("{:040x}", 0x6000 + i)).collect();
    let many_ref: Vec<&str> = many.iter().map(String::as_str).collect();
    enroll_v2(&app, &app.key, &s, &many_ref).await;
    one_event_each(&app, &admin, &many_ref, 0).await;
    slow.wait_for(1, Duration::from_secs(5)).await;

    enroll_v2(&app, &app.key, &f, &[P1]).await;
    let t = std::time::Instant::now();
    one_event_each(&app, &admin, &[P1], 0).await;
    fast.wait_for(1, Duration::from_secs(5)).await;
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the fast webhook waited {:?}",
        t.elapsed()
    );
}

/// A retried create with the same `Idempotency-Key` answers the first 201 again (same id and
/// secret) instead of creating a second webhook.
#[tokio::test]
async fn create_is_idempotent_with_a_key() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "once", "webhook_url": "https://example.com/once"});
    let send = || {
        app.with_key(Method::POST, HOOKS, &app.key)
            .header("Idempotency-Key", "create-once-1")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["webhook_id"], first["webhook_id"]);
    assert_eq!(again["webhook_secret"], first["webhook_secret"]);
    let (_, list) = call(&app, &app.key, Method::GET, HOOKS, None).await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
}

/// A v2 enrollment may name the legacy webhook only while it is registered and active, as any
/// other webhook: after a 410 disabled it, POST and PATCH naming it answer 422.
#[tokio::test]
async fn enrollments_on_a_disabled_legacy_webhook_are_refused() {
    let (app, admin) = worker_app().await;
    let (st, v) = enroll_v2(&app, &app.key, "wh_legacy", &[P1]).await;
    assert_eq!(st, 404, "no v1 webhook registered yet: {v}");
    let rx = Receiver::start(Reply::Status(410)).await;
    crate::webhooks::register(&app, &app.key, "partner_a", &rx.url).await;
    let (st, v) = enroll_v2(&app, &app.key, "wh_legacy", &[P1]).await;
    assert_eq!(st, 201, "{v}");
    let eid = v["enrollment_id"].as_str().unwrap().to_string();
    one_event_each(&app, &admin, &[P1], 0).await;
    rx.wait_for(1, WAIT).await;
    let mut status = Value::Null;
    for _ in 0..50 {
        status = crate::webhooks::get_webhook(&app, "partner_a").await["status"].clone();
        if status == "disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "disabled");
    let (st, v) = enroll_v2(&app, &app.key, "wh_legacy", &[P2]).await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["detail"][0]["loc"], json!(["body", "webhook_id"]), "{v}");
    let (w, _) = create(&app, &app.key, json!({"name": "w", "webhook_url": rx.url})).await;
    let (_, moved) = call(
        &app,
        &app.key,
        Method::PATCH,
        &format!("{ENROLL}/{eid}"),
        Some(json!({"webhook_id": w})),
    )
    .await;
    assert_eq!(moved["webhook_id"], w.as_str(), "{moved}");
    let (st, v) = call(
        &app,
        &app.key,
        Method::PATCH,
        &format!("{ENROLL}/{eid}"),
        Some(json!({"webhook_id": "wh_legacy"})),
    )
    .await;
    assert_eq!(st, 422, "{v}");
}

/// A claim that waits for a send slot while its webhook's secret is rotated is signed with the
/// new secret when it is sent (X-Signature; webhook-signature with both during the grace).
#[tokio::test]
async fn rotation_reaches_claims_waiting_for_a_slot() {
    let app = TestApp::spawn().await;
    let admin = app.new_key("con_test", "partner_a", true).await;
    let rx = Receiver::start(Reply::Slow(200, 1_500)).await;
    let (id, old) = create(
        &app,
        &app.key,
        json!({"name": "rot", "webhook_url": rx.url}),
    )
    .await;
    let (st, v) = enroll_v2(&app, &app.key, &id, &[P1, P2]).await;
    assert_eq!(st, 201, "{v}");
    one_event_each(&app, &admin, &[P1, P2], 0).await;
    // One send at a time: both notifications are claimed together, the second waits.
    let (sender_cfg, worker_cfg) = test_delivery();
    let worker = delivery::Worker::new(
        app.store.clone(),
        delivery::Sender::new(sender_cfg).unwrap(),
        std::sync::Arc::new(delivery::Limiter::new(1, 1)),
        worker_cfg.sized_for(1, 1),
    );
    let run = tokio::spawn(async move { worker.run_once().await });
    let first = rx.wait_for(1, WAIT).await;
    let (st, r) = call(
        &app,
        &app.key,
        Method::POST,
        &format!("{HOOKS}/{id}/rotate_secret"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let new = r["webhook_secret"].as_str().unwrap().to_string();
    assert_eq!(run.await.unwrap(), 2, "both claimed in one go");
    let got = rx.wait_for(2, WAIT).await;
    assert!(first[0].signature_valid(&old), "sent before the rotation");
    let later = &got[1];
    assert!(
        later.signature_valid(&new) && !later.signature_valid(&old),
        "X-Signature of the waiting claim: the new secret"
    );
    for s in [&new, &old] {
        assert!(
            later.standard_signature_valid(s),
            "webhook-signature in the grace"
        );
    }
}
