//! `Idempotency-Key`: a retried write is replayed, not executed twice; the same key for another
//! request is 422; concurrent duplicates execute once (the others get 409 and retry).

use prospect_events_e2e::{TestApp, P1, P2};
use reqwest::Method;
use serde_json::{json, Value};

const ENROLLMENTS: &str = "/v1/prospects/events/enrollments";

fn enrollment(key: &str) -> Value {
    json!({"enrollment_key": key, "prospect_ids": [P1], "event_types": ["prospect_changed_role"]})
}

async fn post(app: &TestApp, idem: &str, body: &Value) -> reqwest::Response {
    app.req(Method::POST, ENROLLMENTS)
        .header("Idempotency-Key", idem)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn count_enrollments(app: &TestApp) -> usize {
    let list: Value = app
        .req(Method::GET, ENROLLMENTS)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["enrollments"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_retried_post_is_replayed_not_executed_again() {
    let app = TestApp::spawn().await;
    let first = post(&app, "retry-1", &enrollment("execs")).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = first.bytes().await.unwrap();

    let again = post(&app, "retry-1", &enrollment("execs")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["content-type"], "application/json");
    assert_eq!(
        again.bytes().await.unwrap(),
        first,
        "the first answer, byte for byte"
    );
    assert_eq!(count_enrollments(&app).await, 1, "one enrollment, not two");

    // Another key is another request; no key at all is the reference's behaviour.
    assert_eq!(
        post(&app, "retry-2", &enrollment("execs")).await.status(),
        200
    );
    let plain = app
        .req(Method::POST, ENROLLMENTS)
        .json(&enrollment("execs"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(count_enrollments(&app).await, 3);

    // Keys belong to the key's tenant/partner: another tenant's same key is its own.
    let other = app.new_key("con_other", "partner_x", false).await;
    let theirs = app
        .with_key(Method::POST, ENROLLMENTS, &other)
        .header("Idempotency-Key", "retry-1")
        .json(&enrollment("execs"))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 200);
    assert!(theirs.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn patch_delete_and_their_errors_are_replayed() {
    let app = TestApp::spawn().await;
    let created: Value = post(&app, "c", &enrollment("execs"))
        .await
        .json()
        .await
        .unwrap();
    let id = created["enrollment_id"].as_str().unwrap();
    let patch = json!({"enrollment_id": id, "enrollment_key": "execs2",
        "prospect_ids": [P2], "event_types": ["prospect_changed_company"]});
    for _ in 0..2 {
        let r = app
            .req(Method::PATCH, ENROLLMENTS)
            .header("Idempotency-Key", "p")
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A retried DELETE answers its first success again instead of 404.
    for _ in 0..2 {
        let r = app
            .req(Method::DELETE, ENROLLMENTS)
            .header("Idempotency-Key", "d")
            .json(&json!({"enrollment_id": id}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "success");
    }
    // An error answer is stored too, and replayed with the retry's correlation id.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = app
            .req(Method::DELETE, ENROLLMENTS)
            .header("Idempotency-Key", "d-missing")
            .json(&json!({"enrollment_id": id}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let cid = r.headers()["x-correlation-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["detail"], "Enrollment not found");
        assert_eq!(body["correlation_id"], cid);
        seen.push(cid);
    }
    assert_ne!(seen[0], seen[1]);
}

#[tokio::test]
async fn the_same_key_for_another_request_is_422_and_keys_are_bounded() {
    let app = TestApp::spawn().await;
    assert_eq!(post(&app, "k", &enrollment("execs")).await.status(), 200);
    let r = post(&app, "k", &enrollment("other")).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["detail"],
        "This Idempotency-Key was already used for a different request (method, path or body)"
    );
    assert!(body["correlation_id"].is_string());
    // Same body, another route: another request too.
    let r = app
        .req(Method::POST, "/v1/webhooks")
        .header("Idempotency-Key", "k")
        .json(&enrollment("execs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(count_enrollments(&app).await, 1);

    let r = post(&app, &"x".repeat(256), &enrollment("execs")).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["detail"],
        "Idempotency-Key must be 1 to 255 printable ASCII characters"
    );
    assert_eq!(
        post(&app, &"x".repeat(255), &enrollment("execs"))
            .await
            .status(),
        200
    );
    assert_eq!(count_enrollments(&app).await, 2);

    // Without a valid api_key the answer is 401 as always, and nothing is reserved.
    let r = app
        .with_key(Method::POST, ENROLLMENTS, "pe_nope")
        .header("Idempotency-Key", "k2")
        .json(&enrollment("execs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(post(&app, "k2", &enrollment("execs")).await.status(), 200);
}

#[tokio::test]
async fn concurrent_duplicates_execute_once() {
    let app = TestApp::spawn().await;
    let body = enrollment("execs");
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let req = app
            .req(Method::POST, ENROLLMENTS)
            .header("Idempotency-Key", "race")
            .json(&body);
        sends.spawn(async move { req.send().await.unwrap() });
    }
    let mut ok = Vec::new();
    let mut busy = 0;
    while let Some(r) = sends.join_next().await {
        let r = r.unwrap();
        match r.status().as_u16() {
            200 => ok.push(r.json::<Value>().await.unwrap()),
            409 => {
                assert_eq!(r.headers()["retry-after"], "1");
                let b: Value = r.json().await.unwrap();
                assert_eq!(
                    b["detail"],
                    "A request with this Idempotency-Key is in progress; retry later"
                );
                busy += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert!(!ok.is_empty(), "at least the first one executes");
    assert_eq!(ok.len() + busy, 16);
    for b in &ok {
        assert_eq!(b["enrollment_id"], ok[0]["enrollment_id"], "one execution");
    }
    // The ones told to retry get the same answer.
    let retried: Value = post(&app, "race", &body).await.json().await.unwrap();
    assert_eq!(retried["enrollment_id"], ok[0]["enrollment_id"]);
    assert_eq!(count_enrollments(&app).await, 1);
}
