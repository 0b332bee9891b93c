use prospect_events_e2e::{test_config, TestApp, P1};
use reqwest::Method;
use serde_json::{json, Value};

const PATH: &str = "/v1/prospects/events/enrollments";
const PARTNER_INVALID: &str = "Partner ID is invalid. Please set the Partner ID in one of these headers: X-Context-Partner-ID, partner-id, partner_id.";

fn add_body(key: &str) -> Value {
    json!({"enrollment_key": key, "prospect_ids": [P1], "event_types": ["prospect_changed_role"]})
}

async fn keys_listed(app: &TestApp, key: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let mut req = app.with_key(Method::GET, PATH, key);
    for (h, v) in headers {
        req = req.header(*h, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["enrollment_key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn missing_unknown_and_revoked_keys_are_401() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url(PATH)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let cid = resp.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"detail": "Not authenticated", "correlation_id": cid})
    );

    let resp = app
        .with_key(Method::GET, PATH, "pe_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["detail"], "Invalid API key");

    // Auth comes before body validation: a bad body without a key is still 401.
    let resp = app
        .client
        .post(app.url(PATH))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let key = app.new_key("con_test", "partner_a", false).await;
    assert_eq!(
        app.with_key(Method::GET, PATH, &key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let n = app
        .store
        .revoke_keys(
            &domain::keys::display_prefix(&key),
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        app.with_key(Method::GET, PATH, &key)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn api_key_header_name_is_case_insensitive() {
    let app = TestApp::spawn().await;
    for name in ["api_key", "API_KEY", "Api_Key"] {
        let resp = app
            .client
            .get(app.url(PATH))
            .header(name, &app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "header {name}");
    }
}

#[tokio::test]
async fn partner_headers_select_an_owned_partner() {
    let app = TestApp::spawn().await;
    // The tenant owns partner_a (default of app.key) and partner_b.
    let _b_key = app.new_key("con_test", "partner_b", false).await;
    let resp = app
        .req(Method::POST, PATH)
        .header("X-Context-Partner-ID", "partner_b")
        .json(&add_body("for_b"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(keys_listed(&app, &app.key, &[]).await, Vec::<String>::new());
    for h in ["X-Context-Partner-ID", "partner-id", "partner_id"] {
        assert_eq!(
            keys_listed(&app, &app.key, &[(h, "partner_b")]).await,
            ["for_b"],
            "{h}"
        );
    }
    // The first present header wins, in the documented order.
    assert_eq!(
        keys_listed(
            &app,
            &app.key,
            &[("partner_id", "partner_a"), ("partner-id", "partner_b")]
        )
        .await,
        ["for_b"]
    );
    assert_eq!(
        keys_listed(
            &app,
            &app.key,
            &[
                ("X-Context-Partner-ID", "partner_a"),
                ("partner-id", "partner_b")
            ]
        )
        .await,
        Vec::<String>::new()
    );

    for h in ["X-Context-Partner-ID", "partner-id", "partner_id"] {
        let resp = app
            .req(Method::GET, PATH)
            .header(h, "not_ours")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["detail"], PARTNER_INVALID);
    }

    // `tenant` header: accepted when it matches, 401 when it contradicts the key.
    let ok = app
        .req(Method::GET, PATH)
        .header("tenant", "con_test")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bad = app
        .req(Method::GET, PATH)
        .header("tenant", "con_other")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
}

/// Clients whose tenant setting is unset send `tenant: ` (empty): that names no tenant, so it
/// is ignored; a non-empty contradicting one stays 401.
#[tokio::test]
async fn empty_tenant_header_is_ignored() {
    let app = TestApp::spawn().await;
    let empty = app
        .req(Method::GET, PATH)
        .header("tenant", "")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 200);
    let created = app
        .req(Method::POST, PATH)
        .header("tenant", "")
        .json(&add_body("empty_tenant"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    assert_eq!(keys_listed(&app, &app.key, &[]).await, vec!["empty_tenant"]);
    let bad = app
        .req(Method::GET, PATH)
        .header("tenant", "con_other")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
}

#[tokio::test]
async fn other_tenants_enrollments_answer_like_missing_ones() {
    let app = TestApp::spawn().await;
    let other = app.new_key("con_other", "partner_x", false).await;
    let resp = app
        .req(Method::POST, PATH)
        .json(&add_body("mine"))
        .send()
        .await
        .unwrap();
    let id = resp.json::<Value>().await.unwrap()["enrollment_id"]
        .as_str()
        .unwrap()
        .to_string();

    assert!(keys_listed(&app, &other, &[]).await.is_empty());
    let by_prospect = app
        .with_key(Method::GET, &format!("{PATH}?prospect_id={P1}"), &other)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(by_prospect["enrollments"], json!([]));

    let patch = json!({"enrollment_key": "stolen", "enrollment_id": id, "prospect_ids": [P1],
        "event_types": ["prospect_changed_role"]});
    let resp = app
        .with_key(Method::PATCH, PATH, &other)
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["detail"],
        "Enrollment not found"
    );
    let resp = app
        .with_key(Method::DELETE, PATH, &other)
        .json(&json!({"enrollment_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // Naming the other tenant's partner does not help.
    let resp = app
        .with_key(Method::GET, PATH, &other)
        .header("partner_id", "partner_a")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The owner still sees it unchanged.
    assert_eq!(keys_listed(&app, &app.key, &[]).await, ["mine"]);
}

#[tokio::test]
async fn rate_limit_per_key_with_headers() {
    let mut cfg = test_config();
    cfg.rate_limit_per_minute = 3;
    let app = TestApp::spawn_with(cfg).await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let resp = app.req(Method::GET, PATH).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-ratelimit-limit"], "3");
        assert!(
            resp.headers()["x-ratelimit-reset"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 1_700_000_000
        );
        remaining.push(
            resp.headers()["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let resp = app.req(Method::GET, PATH).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&retry));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "error": "rate_limit_exceeded",
            "message": format!("API rate limit exceeded. Please retry after {retry} seconds."),
            "retry_after": retry
        })
    );
    // Another key has its own window.
    let other = app.new_key("con_test", "partner_a", false).await;
    assert_eq!(
        app.with_key(Method::GET, PATH, &other)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Health checks are not limited.
    assert_eq!(
        app.client
            .get(app.url("/healthcheck/http"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
