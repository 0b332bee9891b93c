//! `demo`: a self-contained tour for a newcomer. A temporary database, the real API and
//! delivery worker on a free local port, and a local receiver that verifies every signature.
//! It enrolls prospects, patches the enrollment, registers the webhook, then does the v2 flow
//! (a named webhook with a custom header and the `stringified_json` format, an enrollment
//! bound to it), ingests snapshots with changes, prints the verified notifications (v2's
//! checked with both signature schemes), and exits 0 when all expected arrived.

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::http::HeaderMap;
use delivery::{Limiter, Sender, SenderConfig, Worker, WorkerConfig};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ALICE: &str = "a11ce00000000000000000000000000000000001";
const BOB: &str = "b0b0000000000000000000000000000000000002";
const CAROL: &str = "ca40100000000000000000000000000000000003";

type Inbox = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

pub async fn run() -> Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("prospect-events-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = tour(&dir).await;
    // Best effort: the demo database lives in a temporary directory.
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The narrated tour: database and keys → local receiver → the service → a client's calls →
/// what the receiver got, verified.
async fn tour(dir: &std::path::Path) -> Result<ExitCode> {
    let db = format!("sqlite://{}", dir.join("demo.db").display());
    println!("1. Temporary database: {db}");
    let store = store::open(&db).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = new_key(&store, "con_demo", "partner_demo", false).await?;
    let admin = new_key(&store, "con_demo", "ops", true).await?;
    let (receiver_url, inbox) = start_receiver().await?;
    let (v2_url, v2_inbox) = start_receiver().await?;
    let (base, stop_tx, worker_task) = start_service(store).await?;
    let secret = client_calls(&base, &key, &receiver_url).await?;
    let v2_secret = v2_calls(&base, &key, &v2_url).await?;
    ingest(&base, &admin).await?;
    // Alice changed role and Carol changed company; Bob is no longer enrolled in v1's.
    let (got, verified) = received(&inbox, &secret, 2).await?;
    // Bob changed role: his v2 enrollment's webhook gets it.
    let (got_v2, verified_v2) = received_v2(&v2_inbox, &v2_secret, 1).await?;
    // Stopping: the worker finishes in-flight attempts; a send error means it already stopped.
    let _ = stop_tx.send(true);
    let _ = worker_task.await;
    let expected = 3;
    let (got, verified) = (got.len() + got_v2, verified + verified_v2);
    if got == expected && verified == expected {
        println!("Done: {verified} signed notifications delivered and verified.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("Expected {expected} verified notifications, got {got} ({verified} verified).");
        Ok(ExitCode::from(1))
    }
}

/// The receiver a client would run: it keeps what it is sent, for the tour to verify.
async fn start_receiver() -> Result<(String, Inbox)> {
    let inbox: Inbox = Default::default();
    let rx_inbox = inbox.clone();
    let receiver = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let inbox = rx_inbox.clone();
        async move {
            inbox.lock().map(|mut v| v.push((headers, body))).ok();
            "ok"
        }
    });
    let rl = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_url = format!("http://{}/webhook", rl.local_addr()?);
    tokio::spawn(async move { axum::serve(rl, receiver).await });
    println!("2. Local webhook receiver: {receiver_url}");

    Ok((receiver_url, inbox))
}

/// The service itself: API + worker. Private targets are allowed for this local tour only.
async fn start_service(
    store: store::DynStore,
) -> Result<(
    String,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
)> {
    let sender = Sender::new(SenderConfig {
        allow_private_targets: true,
        ..SenderConfig::default()
    })?;
    let worker = Worker::new(
        store.clone(),
        sender.clone(),
        Arc::new(Limiter::default()),
        WorkerConfig::default(),
    );
    let state = api::AppState::with_delivery(
        store.clone(),
        api::ApiConfig::default(),
        sender,
        Some(worker.wake_handle()),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker_task = tokio::spawn(worker.run(stop_rx));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut api_stop = stop_tx.subscribe();
    tokio::spawn(api::serve(listener, state, async move {
        // Any change (or a dropped sender) means stop.
        let _ = api_stop.changed().await;
    }));
    println!("3. prospect-events API: {base}");

    Ok((base, stop_tx, worker_task))
}

/// What a v1 client does: enroll, patch the enrollment, register the webhook. Returns the
/// webhook secret.
async fn client_calls(base: &str, key: &str, receiver_url: &str) -> Result<String> {
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, key: &str, body: Value| {
        http.request(method, format!("{base}{path}"))
            .header("api_key", key)
            .json(&body)
            .send()
    };

    let r: Value = call(
        reqwest::Method::POST,
        "/v1/prospects/events/enrollments",
        key,
        json!({"enrollment_key": "sales_leaders", "prospect_ids": [ALICE, BOB],
               "event_types": ["prospect_changed_role"]}),
    )
    .await?
    .json()
    .await?;
    let enrollment_id = r["enrollment_id"]
        .as_str()
        .context("no enrollment_id")?
        .to_string();
    println!("4. POST enrollment → {enrollment_id} (alice, bob; role changes)");

    let r = call(
        reqwest::Method::PATCH,
        "/v1/prospects/events/enrollments",
        key,
        json!({"enrollment_key": "tech_executives_monitor", "enrollment_id": enrollment_id,
               "prospect_ids": [ALICE, CAROL],
               "event_types": ["prospect_changed_role", "prospect_changed_company"]}),
    )
    .await?;
    if !r.status().is_success() {
        bail!("PATCH failed: {}", r.text().await?);
    }
    println!("5. PATCH enrollment → key tech_executives_monitor, prospects alice + carol, role and company changes");

    let r: Value = call(
        reqwest::Method::POST,
        "/v1/webhooks",
        key,
        json!({"partner_id": "partner_demo", "webhook_url": receiver_url}),
    )
    .await?
    .json()
    .await?;
    let secret = r["webhook_secret"]
        .as_str()
        .context("no webhook_secret")?
        .to_string();
    println!("6. POST webhook → secret {}…", &secret[..8]);
    Ok(secret)
}

/// What a v2 client does: create a named webhook (custom header, `stringified_json`) and bind
/// an enrollment to it. Returns that webhook's secret.
async fn v2_calls(base: &str, key: &str, receiver_url: &str) -> Result<String> {
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .header("api_key", key)
            .json(&body)
            .send()
    };
    let r: Value = post(
        "/v2/webhooks",
        json!({"name": "crm", "webhook_url": receiver_url, "headers": ["X-Team: sales-ops"],
               "payload_format": "stringified_json"}),
    )
    .await?
    .json()
    .await?;
    let (Some(id), Some(secret)) = (r["webhook_id"].as_str(), r["webhook_secret"].as_str()) else {
        bail!("POST /v2/webhooks failed: {r}");
    };
    println!("6b. POST /v2/webhooks → {id} (header X-Team, stringified_json)");
    let r: Value = post(
        "/v2/prospects/events/enrollments",
        json!({"enrollment_key": "crm_watch", "webhook_id": id, "prospect_ids": [BOB],
               "event_types": ["prospect_changed_role"]}),
    )
    .await?
    .json()
    .await?;
    println!(
        "6c. POST /v2/prospects/events/enrollments → {} (bob, on {id})",
        r["enrollment_id"].as_str().context("no v2 enrollment_id")?
    );
    Ok(secret.to_string())
}

/// The admin's snapshot upload: first snapshots, then changes for alice, bob and carol.
async fn ingest(base: &str, admin: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let snapshots = [
        json!({"prospect_id": ALICE, "observed_at": "2026-01-05", "full_name": "Alice Adams", "company_name": "Acme", "job_title": "Sales Manager"}),
        json!({"prospect_id": BOB, "observed_at": "2026-01-05", "full_name": "Bob Brown", "company_name": "Globex", "job_title": "Engineer"}),
        json!({"prospect_id": CAROL, "observed_at": "2026-01-05", "full_name": "Carol Chen", "company_name": "Initech", "job_title": "CTO"}),
        json!({"prospect_id": ALICE, "observed_at": "2026-03-01", "full_name": "Alice Adams", "company_name": "Acme", "job_title": "VP Sales"}),
        json!({"prospect_id": BOB, "observed_at": "2026-03-01", "full_name": "Bob Brown", "company_name": "Globex", "job_title": "Staff Engineer"}),
        json!({"prospect_id": CAROL, "observed_at": "2026-03-01", "full_name": "Carol Chen", "company_name": "Umbrella", "job_title": "CTO", "job_start_date": "2026-02-15"}),
    ];
    let body: String = snapshots.iter().map(|s| format!("{s}\n")).collect();
    let r: Value = http
        .post(format!("{base}/v1/admin/prospects/snapshots"))
        .header("api_key", admin)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await?
        .json()
        .await?;
    println!("7. Ingested 6 snapshots → {}", r["summary"]);
    Ok(())
}

/// Waits for `expected` notifications at the v2 webhook (20 s at most) and checks each with
/// both schemes (`X-Signature`, Standard Webhooks' `webhook-signature`) and its custom header;
/// returns how many arrived and how many passed.
async fn received_v2(inbox: &Inbox, secret: &str, expected: usize) -> Result<(usize, usize)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while inbox.lock().map(|v| v.len()).unwrap_or(0) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = inbox.lock().map(|v| v.clone()).unwrap_or_default();
    println!("9. Notifications received by the v2 webhook:");
    let now = time::OffsetDateTime::now_utc();
    let mut verified = 0;
    for (headers, body) in &got {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (ts, tol) = (now.unix_timestamp(), Duration::from_secs(300));
        let x = domain::signing::verify(secret, h("x-timestamp"), h("x-signature"), body, ts, 300);
        let std = domain::signing::standard::verify(
            secret,
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
            body,
            now,
            tol,
        );
        let ok = x && std && h("x-team") == "sales-ops";
        verified += usize::from(ok);
        let outer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let n: Value = serde_json::from_str(outer["text"].as_str().unwrap_or("null"))?;
        println!(
            "   {} {} prospect {} webhook {} — X-Signature {}, webhook-signature {}, X-Team {}",
            if ok { "✔" } else { "✘" },
            n["event_name"].as_str().unwrap_or("?"),
            &n["prospect_id"].as_str().unwrap_or("?")[..8],
            n["webhook_id"].as_str().unwrap_or("?"),
            if x { "verified" } else { "INVALID" },
            if std { "verified" } else { "INVALID" },
            h("x-team")
        );
    }
    Ok((got.len(), verified))
}

/// Waits for `expected` notifications (20 s at most), prints each with its signature checked
/// against `secret`; returns them and how many verified.
async fn received(
    inbox: &Inbox,
    secret: &str,
    expected: usize,
) -> Result<(Vec<(HeaderMap, Bytes)>, usize)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while inbox.lock().map(|v| v.len()).unwrap_or(0) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = inbox.lock().map(|v| v.clone()).unwrap_or_default();
    println!("8. Notifications received by the local receiver:");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let mut verified = 0;
    for (headers, body) in &got {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        let ok =
            domain::signing::verify(secret, h("x-timestamp"), h("x-signature"), body, now, 300);
        verified += usize::from(ok);
        let n: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        println!(
            "   {} {} prospect {} enrollment_key={} signature {}",
            if ok { "✔" } else { "✘" },
            n["event_name"].as_str().unwrap_or("?"),
            &n["entity_id"].as_str().unwrap_or("?")[..8],
            n["enrollment_key"].as_str().unwrap_or("?"),
            if ok { "verified" } else { "INVALID" }
        );
        println!("     data: {}", n["data"]);
    }
    Ok((got, verified))
}

async fn new_key(
    store: &store::DynStore,
    tenant: &str,
    partner: &str,
    admin: bool,
) -> Result<String> {
    let (key, record) = store::NewApiKey::issue(
        domain::TenantId(tenant.into()),
        domain::PartnerId(partner.into()),
        admin,
        domain::clock::Clock::system().now(),
    );
    store
        .create_key(record)
        .await
        .map_err(|e| anyhow::anyhow!("creating a demo key: {e}"))?;
    Ok(key)
}
