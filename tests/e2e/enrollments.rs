use prospect_events_e2e::{TestApp, P1, P2, P3};
use reqwest::Method;
use serde_json::{json, Value};

async fn create(app: &TestApp, key: &str, ids: &[&str], types: &[&str]) -> String {
    let resp = app
        .req(Method::POST, "/v1/prospects/events/enrollments")
        .json(&json!({"enrollment_key": key, "prospect_ids": ids, "event_types": types}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["enrollment_id"].as_str().unwrap().to_string()
}

async fn list(app: &TestApp, query: &str) -> Value {
    let resp = app
        .req(
            Method::GET,
            &format!("/v1/prospects/events/enrollments{query}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn create_patch_list_delete_flow() {
    let app = TestApp::spawn().await;
    let resp = app
        .req(Method::POST, "/v1/prospects/events/enrollments")
        .json(&json!({
            "request_context": null,
            "enrollment_key": "tech_executives_monitor",
            "prospect_ids": [P1, P2, P1],
            "event_types": ["prospect_changed_role", "prospect_changed_company", "prospect_changed_role"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let header_cid = resp.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = resp.json().await.unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        ["response_context", "enrollment_key", "enrollment_id"]
    );
    assert_eq!(body["enrollment_key"], "tech_executives_monitor");
    let id = body["enrollment_id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("en_") && id.len() >= 19 && id[3..].bytes().all(|b| b.is_ascii_hexdigit())
    );
    let rc = &body["response_context"];
    assert_eq!(rc["request_status"], "success");
    assert_eq!(rc["correlation_id"], header_cid.as_str());
    assert_eq!(header_cid.len(), 32);
    assert!(rc["time_took_in_seconds"].as_f64().unwrap() >= 0.0);

    // Duplicates inside the request are stored once, in first-seen order.
    let listed = list(&app, "").await;
    assert_eq!(
        listed["enrollments"],
        json!([{
            "enrollment_id": id,
            "enrollment_key": "tech_executives_monitor",
            "event_types": ["prospect_changed_role", "prospect_changed_company"],
            "prospect_ids": [P1, P2]
        }])
    );
    assert!(
        listed.get("next_cursor").is_none(),
        "no next_cursor without limit"
    );

    // PATCH replaces key, ids and types.
    let resp = app
        .req(Method::PATCH, "/v1/prospects/events/enrollments")
        .json(&json!({
            "enrollment_key": "renamed",
            "enrollment_id": id,
            "prospect_ids": [P3],
            "event_types": ["prospect_job_start_anniversary"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["enrollment_key"], "renamed");
    assert_eq!(body["enrollment_id"], id.as_str());
    assert_eq!(
        list(&app, "").await["enrollments"],
        json!([{
            "enrollment_id": id,
            "enrollment_key": "renamed",
            "event_types": ["prospect_job_start_anniversary"],
            "prospect_ids": [P3]
        }])
    );

    // The fan-out lookup follows the committed state.
    let p1 = domain::ProspectId::parse(P1).unwrap();
    let p3 = domain::ProspectId::parse(P3).unwrap();
    use domain::EventType::*;
    assert!(app
        .store
        .covering_enrollments(&p1, ChangedRole)
        .await
        .unwrap()
        .is_empty());
    assert!(app
        .store
        .covering_enrollments(&p3, ChangedRole)
        .await
        .unwrap()
        .is_empty());
    let cov = app
        .store
        .covering_enrollments(&p3, JobStartAnniversary)
        .await
        .unwrap();
    assert_eq!(cov.len(), 1);
    assert_eq!(cov[0].enrollment_key, "renamed");
    assert_eq!(cov[0].enrollment_id.0, id);

    // DELETE, then the enrollment is gone everywhere.
    let resp = app
        .req(Method::DELETE, "/v1/prospects/events/enrollments")
        .json(&json!({"enrollment_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "success");
    assert_eq!(body["response_context"]["request_status"], "success");
    assert_eq!(list(&app, "").await["enrollments"], json!([]));
    assert!(app
        .store
        .covering_enrollments(&p3, JobStartAnniversary)
        .await
        .unwrap()
        .is_empty());

    let patch = json!({
        "enrollment_key": "renamed", "enrollment_id": id,
        "prospect_ids": [P3], "event_types": ["prospect_changed_role"]
    });
    let delete = json!({"enrollment_id": id});
    for (method, body) in [(Method::PATCH, patch), (Method::DELETE, delete)] {
        let resp = app
            .req(method, "/v1/prospects/events/enrollments")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let cid = resp.headers()["x-correlation-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            json!({"detail": "Enrollment not found", "correlation_id": cid})
        );
    }
}

#[tokio::test]
async fn unknown_enrollment_id_is_404() {
    let app = TestApp::spawn().await;
    let resp = app
        .req(Method::PATCH, "/v1/prospects/events/enrollments")
        .json(&json!({
            "enrollment_key": "abcd", "enrollment_id": "en_8d52c3f1",
            "prospect_ids": [P1], "event_types": ["prospect_changed_role"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["detail"], "Enrollment not found");
}

#[tokio::test]
async fn list_filters_and_pages() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let key = if i % 2 == 0 { "even" } else { "odd_" };
        let prospects: Vec<&str> = if i == 3 { vec![P1, P3] } else { vec![P2] };
        ids.push(create(&app, key, &prospects, &["prospect_changed_role"]).await);
    }
    let all = list(&app, "").await;
    let got: Vec<&str> = all["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["enrollment_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids, "oldest first");

    let even = list(&app, "?enrollment_key=even").await;
    assert_eq!(even["enrollments"].as_array().unwrap().len(), 3);
    let by_p = list(&app, &format!("?prospect_id={P3}")).await;
    assert_eq!(by_p["enrollments"].as_array().unwrap().len(), 1);
    assert_eq!(by_p["enrollments"][0]["enrollment_id"], ids[3].as_str());
    let both = list(&app, &format!("?prospect_id={P2}&enrollment_key=odd_")).await;
    assert_eq!(both["enrollments"].as_array().unwrap().len(), 1);
    assert_eq!(both["enrollments"][0]["enrollment_id"], ids[1].as_str());

    // Pages of 2: 2 + 2 + 1, then next_cursor null.
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_string();
    loop {
        let page = list(&app, &query).await;
        let items = page["enrollments"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|e| e["enrollment_id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=2&cursor={c}"),
            None => {
                assert!(
                    page["next_cursor"].is_null(),
                    "next_cursor present and null at the end"
                );
                break;
            }
        }
    }
    assert_eq!(seen, ids);

    let bad = app
        .req(
            Method::GET,
            "/v1/prospects/events/enrollments?limit=0&prospect_id=XYZ",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["query", "prospect_id"]));
    assert_eq!(body["detail"][1]["loc"], json!(["query", "limit"]));
    assert_eq!(
        body["detail"][1]["msg"],
        "Input should be greater than or equal to 1"
    );
}

/// Concurrent PATCHes of one enrollment: the final state is exactly one of the bodies, in the
/// listing and in the fan-out index alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_never_mix_bodies() {
    let app = TestApp::spawn().await;
    let id = create(&app, "start", &[P1], &["prospect_changed_role"]).await;
    let ids_a: Vec<String> = (0..20).map(|i| format!("{:040x}", 0xa000 + i)).collect();
    let ids_b: Vec<String> = (0..20).map(|i| format!("{:040x}", 0xb000 + i)).collect();
    let body_a = json!({"enrollment_key": "body_a", "enrollment_id": id, "prospect_ids": ids_a,
        "event_types": ["prospect_changed_role"]});
    let body_b = json!({"enrollment_key": "body_b", "enrollment_id": id, "prospect_ids": ids_b,
        "event_types": ["prospect_changed_company", "prospect_job_start_anniversary"]});
    let mut tasks = Vec::new();
    for i in 0..200 {
        let req = app
            .req(Method::PATCH, "/v1/prospects/events/enrollments")
            .json(if i % 2 == 0 { &body_a } else { &body_b });
        tasks.push(tokio::spawn(
            async move { req.send().await.unwrap().status() },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let listed = list(&app, "").await;
    let e = &listed["enrollments"][0];
    let (winner, loser_ids, types) = if e["enrollment_key"] == "body_a" {
        (&body_a, &ids_b, json!(["prospect_changed_role"]))
    } else {
        (
            &body_b,
            &ids_a,
            json!(["prospect_changed_company", "prospect_job_start_anniversary"]),
        )
    };
    assert_eq!(e["prospect_ids"], winner["prospect_ids"]);
    assert_eq!(e["event_types"], types);
    // The index agrees with the listing: the winner's prospects are covered, the loser's not.
    for p in winner["prospect_ids"].as_array().unwrap() {
        let p = domain::ProspectId::parse(p.as_str().unwrap()).unwrap();
        let mut any = false;
        for t in domain::EventType::ALL {
            any |= !app
                .store
                .covering_enrollments(&p, t)
                .await
                .unwrap()
                .is_empty();
        }
        assert!(any);
    }
    for p in loser_ids {
        let p = domain::ProspectId::parse(p).unwrap();
        for t in domain::EventType::ALL {
            assert!(app
                .store
                .covering_enrollments(&p, t)
                .await
                .unwrap()
                .is_empty());
        }
    }
}
