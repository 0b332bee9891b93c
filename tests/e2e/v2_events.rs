//! `POST /v2/prospects/events`: the v1 lookup with v2's typed answer and `V2ResponseContext`,
//! the same 422s, and the partner-API conventions (auth, rate limit, Idempotency-Key) that
//! every `/v2/...` route shares with v1.

use prospect_events_e2e::{test_config, TestApp, P1, P2};
use reqwest::Method;
use serde_json::{json, Value};

const ROLE: &str = "prospect_changed_role";
const COMPANY: &str = "prospect_changed_company";

async fn v2_events(app: &TestApp, body: &Value) -> (u16, Value) {
    let resp = app
        .req(Method::POST, "/v2/prospects/events")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json",
        "an events answer is JSON"
    );
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// Two events for P1 (role, then company) and none for P2.
async fn ingest_two_events(app: &TestApp) {
    let admin = app.new_key("con_test", "partner_a", true).await;
    let body = format!(
        "prospect_id,observed_at,job_title,company_id,company_name\n\
         {P1},2024-02-01T12:00:00Z,Dev,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,A\n\
         {P1},2024-03-01T12:00:00Z,CTO,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,A\n\
         {P1},2024-04-01T12:00:00Z,CTO,bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,B\n"
    );
    let (st, v) = app.ingest_snapshots(&admin, Some("text/csv"), body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["summary"]["events_created"], 2, "{v}");
}

#[tokio::test]
async fn v2_fetch_answers_the_v1_lookup_with_the_v2_envelope() {
    let app = TestApp::spawn().await;
    ingest_two_events(&app).await;
    let body = json!({"event_types": [ROLE, COMPANY], "prospect_ids": [P1, P2],
                      "timestamp_from": "2024-01-01"});
    let (st, v2) = v2_events(&app, &body).await;
    assert_eq!(st, 200, "{v2}");
    let (st, v1) = app.events(&body).await;
    assert_eq!(st, 200, "{v1}");

    assert_eq!(keys(&v2), ["response_context", "output_events"]);
    let ctx = &v2["response_context"];
    assert_eq!(
        keys(ctx),
        ["correlation_id", "request_status", "time_taken_in_seconds"]
    );
    assert_eq!(ctx["request_status"], "success");
    assert!(ctx["time_taken_in_seconds"].as_f64().unwrap() >= 0.0);
    let cid = ctx["correlation_id"].as_str().unwrap();
    assert!(cid.len() == 32 && cid.bytes().all(|b| b.is_ascii_hexdigit()));
    // v1 keeps its own spelling.
    assert!(v1["response_context"].get("time_took_in_seconds").is_some());
    assert!(v1["response_context"]
        .get("time_taken_in_seconds")
        .is_none());

    // ProspectsEventOutput[Any]: the same events, fields and order as v1, newest first.
    let events = v2["output_events"].as_array().unwrap();
    assert_eq!(events, v1["output_events"].as_array().unwrap());
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [COMPANY, ROLE]);
    for e in events {
        assert_eq!(
            keys(e),
            [
                "event_name",
                "event_time",
                "event_id",
                "data",
                "prospect_id"
            ]
        );
        assert_eq!(e["prospect_id"], P1);
        assert_eq!(e["data"]["event_name"], e["event_name"]);
        let id = e["event_id"].as_str().unwrap();
        assert!(id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    }
    assert_eq!(events[0]["event_time"], "2024-04-01T12:00:00Z");

    // Nothing found is a `miss` with an empty list.
    let (st, v) = v2_events(
        &app,
        &json!({"event_types": [ROLE], "prospect_ids": [P2], "timestamp_from": "2024-01-01"}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["response_context"]["request_status"], "miss");
    assert_eq!(v["output_events"], json!([]));
}

#[tokio::test]
async fn v2_fetch_rejects_what_v1_rejects_with_the_same_422() {
    let app = TestApp::spawn().await;
    let ids41: Vec<String> = (0..41).map(|i| format!("{i:040x}")).collect();
    for body in [
        json!({"event_types": [], "prospect_ids": [P1]}),
        json!({"event_types": [ROLE], "prospect_ids": ids41}),
        json!({"event_types": ["prospect_was_promoted"], "prospect_ids": [P1]}),
        json!({"event_types": [ROLE], "prospect_ids": [P1], "timestamp_from": "last week"}),
        json!({"event_types": [ROLE], "prospect_ids": [P1], "extra": 1}),
        json!({"prospect_ids": [P1]}),
    ] {
        let (st2, v2) = v2_events(&app, &body).await;
        let (st1, v1) = app.events(&body).await;
        assert_eq!((st2, st1), (422, 422), "{body} → {v2}");
        assert_eq!(v2["detail"], v1["detail"], "{body}");
    }
    // Without a key: the same 401 as v1.
    let resp = app
        .client
        .post(app.url("/v2/prospects/events"))
        .json(&json!({"event_types": [ROLE], "prospect_ids": [P1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn v2_routes_are_rate_limited_and_take_idempotency_keys() {
    let app = TestApp::spawn_with(api::ApiConfig {
        rate_limit_per_minute: 100,
        ..test_config()
    })
    .await;
    let body = json!({"event_types": [ROLE], "prospect_ids": [P1]});
    let send = || {
        app.req(Method::POST, "/v2/prospects/events")
            .header("idempotency-key", "v2-fetch-1")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit"], "100");
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
}
