use prospect_events_e2e::TestApp;
use serde_json::Value;

#[tokio::test]
async fn health_version_openapi_metrics() {
    let app = TestApp::spawn().await;
    let h = app
        .client
        .get(app.url("/healthcheck/http"))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    assert_eq!(h.text().await.unwrap(), "\"OK\"");
    let ready = app
        .client
        .get(app.url("/healthcheck/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "\"OK\"");
    let v: Value = app
        .client
        .get(app.url("/version/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));

    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/prospects/events/enrollments",
        "/v2/prospects/events",
        "/v2/prospects/events/enrollments",
        "/v2/prospects/events/enrollments/{enrollment_id}",
        "/v2/webhooks",
        "/v2/webhooks/{webhook_id}",
        "/v2/webhooks/{webhook_id}/rotate_secret",
        "/v2/webhooks/{webhook_id}/check_connectivity",
        "/v2/webhooks/{webhook_id}/deliveries",
        "/v2/webhooks/{webhook_id}/replay",
        "/healthcheck/http",
        "/healthcheck/ready",
        "/version/",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} documented");
    }

    // A request shows up in the metrics.
    let _ = app
        .req(reqwest::Method::GET, "/v1/prospects/events/enrollments")
        .send()
        .await
        .unwrap();
    let m = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains(
        "http_requests_total{route=\"/v1/prospects/events/enrollments\",method=\"GET\",status=\"200\"} 1"
    ), "{m}");
    assert!(m.contains("http_request_duration_seconds_bucket"));
    assert!(m.contains("webhook_attempts_total{outcome=\"delivered\"}"));
    assert!(m.contains("webhook_notifications_in_flight"));
}

#[tokio::test]
async fn unknown_route_and_method_answer_json() {
    let app = TestApp::spawn().await;
    let r = app
        .req(reqwest::Method::GET, "/v1/nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let cid = r.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["detail"], "Not Found");
    assert_eq!(body["correlation_id"], cid.as_str());
    let r = app
        .req(reqwest::Method::PUT, "/v1/prospects/events/enrollments")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["detail"], "Method Not Allowed");
}

#[tokio::test]
async fn client_correlation_id_is_reused_when_valid() {
    let app = TestApp::spawn().await;
    let r = app
        .req(reqwest::Method::GET, "/v1/prospects/events/enrollments")
        .header("X-Correlation-ID", "my-trace_123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"], "my-trace_123");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response_context"]["correlation_id"], "my-trace_123");
    let long = "a".repeat(65);
    for bad in [long.as_str(), "has space", "semi;colon"] {
        let r = app
            .req(reqwest::Method::GET, "/v1/prospects/events/enrollments")
            .header("X-Correlation-ID", bad)
            .send()
            .await
            .unwrap();
        let got = r.headers()["x-correlation-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert_ne!(got, bad);
        assert_eq!(got.len(), 32);
    }
}
