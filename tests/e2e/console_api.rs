//! The read endpoints the console is built on (`GET /v1/webhooks`, `…/stats`, `…/daily`), and
//! the console's own files (`GET /console`, its assets): tenant-scoped, validated, with the
//! console's security headers.

use crate::webhooks::{enroll, one_event_each, register};
use prospect_events_e2e::receiver::{Receiver, Reply};
use prospect_events_e2e::{test_delivery, TestApp, P1, P2};
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

async fn get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let resp = app.with_key(Method::GET, path, key).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn webhook_list_stats_and_daily_counts_are_tenant_scoped() {
    let (s, mut w) = test_delivery();
    w.retry = delivery::RetryPolicy::new(vec![Duration::from_millis(100)], 0.0);
    let app = TestApp::spawn_with_worker(s, w).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let other = app.new_key("con_other", "partner_z", false).await;
    let rx = Receiver::start(Reply::Status(200)).await;
    rx.script([Reply::Status(500)]);
    register(&app, &app.key, "partner_a", &rx.url).await;
    enroll(&app, &app.key, "execs", &[P1, P2]).await;
    one_event_each(&app, &admin, &[P1, P2], 0).await;
    rx.wait_for(3, Duration::from_secs(10)).await;

    let (status, list) = get(&app, &app.key, "/v1/webhooks").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["partners"], serde_json::json!(["partner_a"]));
    assert_eq!(list["webhooks"][0]["partner_id"], "partner_a");
    assert_eq!(list["webhooks"][0]["status"], "active");
    assert!(
        list["webhooks"][0].get("webhook_secret").is_none(),
        "{list}"
    );
    let (_, theirs) = get(&app, &other, "/v1/webhooks").await;
    assert_eq!(theirs["webhooks"], serde_json::json!([]), "{theirs}");
    assert_eq!(theirs["partners"], serde_json::json!(["partner_z"]));

    // Two notifications: one delivered at once, one after a 500 and a retry.
    let mut stats = Value::Null;
    for _ in 0..50 {
        stats = get(&app, &app.key, "/v1/webhooks/partner_a/stats").await.1;
        if stats["pending"] == 0 && stats["attempts"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats["window_hours"], 24, "{stats}");
    assert_eq!(stats["attempts"], 3, "{stats}");
    assert_eq!(stats["succeeded"], 2);
    assert_eq!(stats["failed"], 1);
    assert!((stats["success_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert!(stats["latency_p50_ms"].is_u64() && stats["latency_p99_ms"].is_u64());
    assert_eq!(stats["pending"], 0);
    assert_eq!(stats["oldest_pending_at"], Value::Null);

    let (status, daily) = get(&app, &app.key, "/v1/webhooks/partner_a/daily?days=3").await;
    assert_eq!(status, 200, "{daily}");
    let days = daily["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[2]["total"], 2, "today is last: {daily}");
    assert_eq!(days[2]["counts"]["prospect_changed_role"], 2);
    assert_eq!(days[0]["total"], 0);

    // Another tenant's key cannot read them (its tenant owns no partner_a), and bad windows
    // are 422 with the query loc.
    for path in [
        "/v1/webhooks/partner_a/stats",
        "/v1/webhooks/partner_a/daily",
    ] {
        assert_eq!(get(&app, &other, path).await.0, 404, "{path}");
    }
    let (status, err) = get(
        &app,
        &app.key,
        "/v1/webhooks/partner_a/stats?window_hours=0",
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        err["detail"][0]["loc"],
        serde_json::json!(["query", "window_hours"])
    );
    let (status, err) = get(&app, &app.key, "/v1/webhooks/partner_a/daily?days=91").await;
    assert_eq!(status, 422);
    assert_eq!(err["detail"][0]["type"], "less_than_equal");
    assert_eq!(get(&app, "nope", "/v1/webhooks").await.0, 401);
}

/// Stats and daily counts are per webhook: a v2 webhook's traffic shows under
/// `/v2/webhooks/{id}/stats|daily` (extensions), not in the partner's v1 webhook numbers, and
/// another scope's key gets 404.
#[tokio::test]
async fn stats_and_daily_counts_are_per_webhook() {
    let app = TestApp::spawn().await;
    let admin = app.new_key("con_test", "partner_a", true).await;
    let other = app.new_key("con_test", "partner_b", false).await;
    let body = serde_json::json!({"name": "crm", "webhook_url": "https://example.com/crm"});
    let resp = app
        .with_key(Method::POST, "/v2/webhooks", &app.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["webhook_id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = serde_json::json!({"enrollment_key": "v2-key", "webhook_id": id,
        "event_types": ["prospect_changed_role"], "prospect_ids": [P1, P2]});
    let resp = app
        .with_key(Method::POST, "/v2/prospects/events/enrollments", &app.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    enroll(&app, &app.key, "v1-key", &[P1]).await;
    one_event_each(&app, &admin, &[P1, P2], 0).await;

    let (status, v2) = get(&app, &app.key, &format!("/v2/webhooks/{id}/stats")).await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(
        (v2["webhook_id"].as_str(), &v2["pending"]),
        (Some(id.as_str()), &serde_json::json!(2))
    );
    assert!(
        v2["response_context"]["time_taken_in_seconds"].is_number(),
        "{v2}"
    );
    let (_, v1) = get(&app, &app.key, "/v1/webhooks/partner_a/stats").await;
    assert_eq!(
        v1["pending"], 1,
        "only the v1 enrollment's notification: {v1}"
    );
    let (status, daily) = get(&app, &app.key, &format!("/v2/webhooks/{id}/daily?days=2")).await;
    assert_eq!(status, 200, "{daily}");
    assert_eq!(daily["days"][1]["total"], 2, "{daily}");
    let (_, v1_daily) = get(&app, &app.key, "/v1/webhooks/partner_a/daily?days=2").await;
    assert_eq!(v1_daily["days"][1]["total"], 1, "{v1_daily}");
    for path in [
        format!("/v2/webhooks/{id}/stats"),
        format!("/v2/webhooks/{id}/daily"),
    ] {
        assert_eq!(get(&app, &other, &path).await.0, 404, "{path}");
    }
    let (status, err) = get(
        &app,
        &app.key,
        &format!("/v2/webhooks/{id}/stats?window_hours=169"),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(
        get(&app, &app.key, "/v2/webhooks/wh_nope/daily").await.0,
        404
    );
}

#[tokio::test]
async fn console_files_are_served_with_a_strict_policy() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/console")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-cache");
    let body = page.text().await.unwrap();
    assert!(body.contains("<label for=\"api-key\">API key</label>"));
    let slash = app.client.get(app.url("/console/")).send().await.unwrap();
    assert_eq!(slash.status(), 200);
    assert_eq!(slash.text().await.unwrap(), body);
    let js = app
        .client
        .get(app.url("/console/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let etag = js.headers()["etag"].clone();
    let again = app
        .client
        .get(app.url("/console/assets/app.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let missing = app
        .client
        .get(app.url("/console/assets/secret.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
