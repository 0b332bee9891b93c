//! Several `serve` replicas on one PostgreSQL database (SPEC §5, issue 5), as real child
//! processes of the `prospect-events` binary with a real local webhook receiver:
//!
//! * two replicas share the outbox: 10,000 notifications, each delivered exactly once (leases
//!   are 120 s, so none expires during the test), and both replicas' workers deliver some;
//! * PostgreSQL restarted under a serving replica while notifications flow: requests during the
//!   outage answer a prompt 503 (JSON `detail` + `correlation_id`, no internal text), the
//!   replica recovers by itself, and every committed notification is delivered (at least once;
//!   a repeat is allowed only for an attempt that was in flight when the server went away).
//!
//! They need PostgreSQL: `eval "$(scripts/pg-test-cluster.sh)"` exports
//! `PROSPECT_EVENTS_TEST_POSTGRES_URL`; without it they print a notice and pass without running.
//! The restart test starts (and removes) a cluster of its own with the same script, so it never
//! disturbs the shared one; it needs the PostgreSQL server binaries on this machine.
//! The `prospect-events` binary must be built (`cargo test --workspace` builds it; see
//! `prospect_events_e2e::cli_binary`).

use prospect_events_e2e::cli_binary;
use prospect_events_e2e::process::register_webhook;
use prospect_events_e2e::process::{free_port, keys_create, Serve};
use prospect_events_e2e::receiver::{Receiver, Reply};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ENROLL: &str = "/v1/prospects/events/enrollments";
const TENANT: &str = "con_replicas";
const PARTNER: &str = "partner_a";

/// The PostgreSQL base URL and the binary, or a printed notice and an early return.
macro_rules! pg_and_binary_or_skip {
    ($what:expr) => {{
        let Ok(base) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            eprintln!(
                "SKIPPED {}: needs PostgreSQL; run `eval \"$(scripts/pg-test-cluster.sh)\"` \
                 (exports PROSPECT_EVENTS_TEST_POSTGRES_URL) and test again",
                $what
            );
            return;
        };
        let Some(bin) = cli_binary() else {
            eprintln!(
                "SKIPPED {}: target/<profile>/prospect-events is not built; run \
                 `cargo build -p prospect-events` (or `cargo test --workspace`) first",
                $what
            );
            return;
        };
        (base, bin)
    }};
}

// --- child processes ------------------------------------------------------------------------

/// Delivery attempts a replica's worker made (its debug log has one line per attempt).
fn attempts_logged(r: &Serve) -> usize {
    r.log_text().matches("delivery attempt").count()
}

/// Starts `serve` on a free port with the replica flags; waits until it answers.
async fn spawn_replica(name: &str, dir: &Path, db: &str, extra: &[&str]) -> Serve {
    let mut flags = vec![
        "--allow-private-targets",
        "--rate-limit",
        "0",
        "--retry-schedule",
        "1s,1s,1s",
    ];
    flags.extend_from_slice(extra);
    Serve::start_logging(
        dir,
        db,
        free_port(),
        &flags,
        &format!("{name}.log"),
        "warn,prospect_events_delivery::worker=debug",
    )
    .await
}

/// A fresh schema in the database at `base` (one per test run).
async fn fresh_schema(base: &str, tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!(
        "rep_{tag}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    store::postgres::create_test_schema(base, &schema)
        .await
        .expect("create a test schema")
}

// --- API helpers ----------------------------------------------------------------------------

fn prospect(i: usize) -> String {
    format!("{:040x}", 0xabc0_0000_0000usize + i)
}

fn snapshot(p: &str, day: u32, title: &str) -> String {
    json!({"prospect_id": p, "observed_at": format!("2026-01-{day:02}"), "full_name": "Ada",
        "company_name": "Acme", "job_title": title})
    .to_string()
}

/// Enrolls prospects [0, n) for role changes, 20 ids per enrollment, `parallel` requests at a
/// time, all on `base`.
async fn enroll_all(client: &reqwest::Client, base: &str, key: &str, n: usize, parallel: usize) {
    let enrollments = n.div_ceil(20);
    let mut set = tokio::task::JoinSet::new();
    for k in 0..parallel {
        let (client, base, key) = (client.clone(), base.to_string(), key.to_string());
        set.spawn(async move {
            for e in (k..enrollments).step_by(parallel) {
                let ids: Vec<String> = (e * 20..((e + 1) * 20).min(n)).map(prospect).collect();
                let resp = client
                    .post(format!("{base}{ENROLL}"))
                    .header("api_key", &key)
                    .json(
                        &json!({"enrollment_key": format!("batch_{e}"), "prospect_ids": ids,
                        "event_types": ["prospect_changed_role"]}),
                    )
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                assert_eq!(status, 200, "enroll: {}", resp.text().await.unwrap());
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

async fn register(client: &reqwest::Client, base: &str, key: &str, url: &str) -> String {
    register_webhook(client, base, key, PARTNER, url).await
}

/// `POST /v1/admin/prospects/snapshots`; the status, the answer and the latency.
async fn ingest(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    lines: &[String],
) -> (u16, Value, Duration) {
    let t = Instant::now();
    let resp = client
        .post(format!("{base}/v1/admin/prospects/snapshots"))
        .header("api_key", admin)
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n"))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v = resp.json().await.unwrap_or(Value::Null);
    (status, v, t.elapsed())
}

/// Every delivery of the partner, from the delivery log (pages of 1000).
async fn delivery_log(client: &reqwest::Client, base: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/webhooks/{PARTNER}/deliveries?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let resp = client.get(url).header("api_key", key).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        out.extend(v["deliveries"].as_array().unwrap().iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Waits until the delivery log holds `n` deliveries and none is pending.
async fn wait_all_recorded(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let log = delivery_log(client, base, key).await;
        let pending = log.iter().filter(|d| d["status"] == "pending").count();
        if log.len() >= n && pending == 0 {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "delivery log: {} deliveries, {pending} pending after {timeout:?}",
            log.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the receiver got `n` distinct delivery ids.
async fn wait_distinct(rx: &Receiver, n: usize, timeout: Duration) -> HashSet<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let ids: HashSet<String> = rx
            .received()
            .iter()
            .map(|r| r.header("x-delivery-id").to_string())
            .collect();
        if ids.len() >= n {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "receiver got {} of {n} distinct notifications within {timeout:?}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// --- two replicas, one outbox ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_deliver_10000_notifications_exactly_once() {
    let (base_url, _bin) = pg_and_binary_or_skip!("two_replicas_deliver_10000_notifications");
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_schema(&base_url, "two").await;
    let key = keys_create(dir.path(), &db, TENANT, PARTNER, false);
    let admin = keys_create(dir.path(), &db, "con_ops", "ops", true);
    // Both start at once (their migrations serialize on the database's advisory lock).
    let (a, b) = tokio::join!(
        spawn_replica("a", dir.path(), &db, &[]),
        spawn_replica("b", dir.path(), &db, &[])
    );
    let client = reqwest::Client::new();
    let rx = Receiver::start(Reply::Status(200)).await;
    let secret = register(&client, &a.base, &key, &rx.url).await;

    let t = Instant::now();
    enroll_all(&client, &a.base, &key, N, 8).await;
    eprintln!("enrolled {N} prospects on replica a in {:?}", t.elapsed());

    // Baseline + one role change per prospect, in chunks of 500 prospects, alternately on a and
    // b, so that both replicas queue notifications while both workers deliver.
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (k, r) in [&a, &b].into_iter().enumerate() {
        let (client, base, admin) = (client.clone(), r.base.clone(), admin.clone());
        set.spawn(async move {
            for chunk in (k..N / 500).step_by(2) {
                let mut lines = Vec::with_capacity(1000);
                for i in chunk * 500..(chunk + 1) * 500 {
                    lines.push(snapshot(&prospect(i), 1, "Engineer"));
                    lines.push(snapshot(&prospect(i), 2, "Lead"));
                }
                let (status, v, _) = ingest(&client, &base, &admin, &lines).await;
                assert_eq!(status, 200, "{v}");
                assert_eq!(v["summary"]["events_created"], 500, "{v}");
                assert_eq!(v["summary"]["notifications_queued"], 500, "{v}");
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    eprintln!("ingested 20,000 snapshots on a and b in {:?}", t.elapsed());

    let ids = wait_distinct(&rx, N, Duration::from_secs(300)).await;
    eprintln!(
        "receiver got {N} distinct notifications {:?} after ingestion began",
        t.elapsed()
    );
    let log = wait_all_recorded(&client, &b.base, &key, N, Duration::from_secs(60)).await;

    // Nothing arrives twice: a short grace period for any stray duplicate, then exact counts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.received();
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for r in &got {
        *per_id.entry(r.header("x-delivery-id")).or_default() += 1;
    }
    let dupes: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "delivered more than once: {dupes:?}");
    assert_eq!(got.len(), N, "one request per notification");
    assert_eq!(ids.len(), N);
    assert!(
        got.iter().all(|r| r.signature_valid(&secret)),
        "every notification is signed with the current secret"
    );

    // The delivery log agrees: N notifications, each delivered at its first attempt.
    assert_eq!(log.len(), N);
    let logged: HashSet<String> = log
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        logged, ids,
        "the receiver got exactly the logged deliveries"
    );
    for d in &log {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attempts"], 1, "{d}");
    }

    // Both replicas' workers took part (each logs one line per attempt).
    let (na, nb) = (attempts_logged(&a), attempts_logged(&b));
    eprintln!("attempts: replica a {na}, replica b {nb}");
    assert_eq!(
        na + nb,
        N,
        "one attempt per notification across the replicas"
    );
    assert!(na > 0 && nb > 0, "both replicas delivered (a {na}, b {nb})");
    drop((a, b));
    let _ = store::postgres::drop_test_schema(&base_url, schema_of(&db)).await;
}

/// The schema name inside a URL made by `create_test_schema`.
fn schema_of(url: &str) -> &str {
    url.rsplit("search_path%3D").next().unwrap_or("")
}

// --- PostgreSQL restarted mid-run -------------------------------------------------------------

/// A PostgreSQL cluster of this test's own (scripts/pg-test-cluster.sh with a private state
/// file), stopped and removed when dropped.
struct Cluster {
    url: String,
    dir: String,
    state: PathBuf,
}

fn cluster_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-test-cluster.sh")
}

impl Cluster {
    fn start(state: PathBuf) -> Self {
        let out = Command::new("bash")
            .arg(cluster_script())
            .env("PG_TEST_STATE", &state)
            .env_remove("PG_TEST_PORT")
            .env_remove("PG_TEST_CLUSTER_DIR")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/pg-test-cluster.sh");
        assert!(
            out.status.success(),
            "starting a dedicated PostgreSQL cluster failed (the PostgreSQL server binaries are \
             needed: apt-get install postgresql)"
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("{name} not in the script's output: {text}"))
                .trim_matches('\'')
                .to_string()
        };
        Cluster {
            url: var("PROSPECT_EVENTS_TEST_POSTGRES_URL"),
            dir: var("PG_TEST_CLUSTER_DIR"),
            state,
        }
    }

    fn run(&self, action: &str) {
        let st = Command::new("bash")
            .arg(cluster_script())
            .args([action, &self.dir])
            .env("PG_TEST_STATE", &self.state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run scripts/pg-test-cluster.sh");
        assert!(st.success(), "pg-test-cluster.sh {action} failed");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(cluster_script())
            .args(["stop", &self.dir])
            .env("PG_TEST_STATE", &self.state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Asserts a prompt, clean 503: JSON with `detail` and `correlation_id` and nothing internal.
fn assert_clean_503(status: u16, body: &str, took: Duration, what: &str) {
    assert_eq!(status, 503, "{what} during the outage: {body}");
    assert!(took < Duration::from_secs(5), "{what} took {took:?}");
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: not JSON: {body}"));
    assert!(v["detail"].is_string(), "{what}: {body}");
    assert!(v["correlation_id"].is_string(), "{what}: {body}");
    let lower = body.to_lowercase();
    for internal in [
        "postgres", "connect", "sqlstate", "pool", "tcp", "refused", "[08", "[57",
    ] {
        assert!(
            !lower.contains(internal),
            "{what} leaks {internal:?}: {body}"
        );
    }
}

/// `GET /healthcheck/ready`: status and body.
async fn readiness(client: &reqwest::Client, base: &str) -> (u16, String) {
    let resp = client
        .get(format!("{base}/healthcheck/ready"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_mid_run_answers_503_then_recovers_without_loss() {
    let (_shared, _bin) = pg_and_binary_or_skip!("postgres_restart_mid_run");
    const N: usize = 2_000;
    const BATCH: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path().join("pg-state"));
    let db = cluster.url.clone();
    let key = keys_create(dir.path(), &db, TENANT, PARTNER, false);
    let admin = keys_create(dir.path(), &db, "con_ops", "ops", true);
    // A short lease, so an attempt whose outcome could not be recorded during the outage is
    // retried within the test (it must exceed the delivery timeout).
    let r = spawn_replica(
        "solo",
        dir.path(),
        &db,
        &["--delivery-lease", "12s", "--delivery-timeout", "5s"],
    )
    .await;
    let client = reqwest::Client::new();
    let rx = Receiver::start(Reply::Status(200)).await;
    register(&client, &r.base, &key, &rx.url).await;
    enroll_all(&client, &r.base, &key, N, 8).await;
    let baselines: Vec<String> = (0..N)
        .map(|i| snapshot(&prospect(i), 1, "Engineer"))
        .collect();
    let (status, v, _) = ingest(&client, &r.base, &admin, &baselines).await;
    assert_eq!(status, 200, "{v}");

    // A client ingesting one batch of role changes every 100 ms, retrying a batch until it is
    // accepted (as a real feeder would); it records every answer.
    let feeder = {
        let (client, base, admin) = (client.clone(), r.base.clone(), admin.clone());
        tokio::spawn(async move {
            let mut answers: Vec<(u16, Value, Duration)> = Vec::new();
            for b in 0..N / BATCH {
                let lines: Vec<String> = (b * BATCH..(b + 1) * BATCH)
                    .map(|i| snapshot(&prospect(i), 2, "Lead"))
                    .collect();
                loop {
                    let a = ingest(&client, &base, &admin, &lines).await;
                    let ok = a.0 == 200;
                    answers.push(a);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if ok {
                        break;
                    }
                }
            }
            answers
        })
    };

    // Let notifications flow, then take the server away.
    rx.wait_for(200, Duration::from_secs(60)).await;
    assert_eq!(readiness(&client, &r.base).await.0, 200);
    cluster.run("pg-stop");
    let stopped_at = Instant::now();
    eprintln!(
        "PostgreSQL stopped with {} notifications received",
        rx.received().len()
    );

    // During the outage: prompt, clean 503s (the key cache may hold the key; the store call
    // still fails), several times over a few seconds.
    let mut outage_answers = 0;
    while stopped_at.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let resp = client
            .get(r.url(ENROLL))
            .header("api_key", &key)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_clean_503(status, &body, t.elapsed(), "GET enrollments");
        outage_answers += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let lines = vec![snapshot(&prospect(0), 3, "Lead")];
    let (status, v, took) = ingest(&client, &r.base, &admin, &lines).await;
    assert_clean_503(status, &v.to_string(), took, "POST snapshots");
    assert!(outage_answers >= 3);
    // The load balancer's view: not ready, while liveness still answers.
    let t = Instant::now();
    let (status, body) = readiness(&client, &r.base).await;
    assert_clean_503(status, &body, t.elapsed(), "GET /healthcheck/ready");
    let live = client.get(r.url("/healthcheck/http")).send().await.unwrap();
    assert_eq!(live.status(), 200);

    cluster.run("pg-start");
    let started_at = Instant::now();
    // The replica recovers by itself: the same process answers 200 again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = client
            .get(r.url(ENROLL))
            .header("api_key", &key)
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recovered 30 s after PostgreSQL came back: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "recovered {:?} after PostgreSQL came back",
        started_at.elapsed()
    );
    assert_eq!(readiness(&client, &r.base).await.0, 200);

    // The feeder got every batch accepted; its failures were all prompt, clean 503s.
    let answers = feeder.await.unwrap();
    let failures: Vec<_> = answers.iter().filter(|a| a.0 != 200).collect();
    eprintln!(
        "feeder: {} requests, {} answered 503 during the outage",
        answers.len(),
        failures.len()
    );
    for (status, v, took) in &failures {
        assert_clean_503(*status, &v.to_string(), *took, "feeder POST snapshots");
    }
    assert!(
        answers.iter().filter(|a| a.0 == 200).count() == N / BATCH,
        "every batch accepted once"
    );

    // Nothing committed is lost: every notification arrives, and the log records it delivered.
    let ids = wait_distinct(&rx, N, Duration::from_secs(120)).await;
    assert_eq!(ids.len(), N);
    let log = wait_all_recorded(&client, &r.base, &key, N, Duration::from_secs(60)).await;
    assert_eq!(log.len(), N);
    assert!(log.iter().all(|d| d["status"] == "delivered"));
    let logged: HashSet<String> = log
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged, ids);

    // At-least-once, not more: a notification arrives twice only when its first attempt was
    // in flight while the server was away (its outcome could not be recorded).
    let got = rx.received();
    let mut first: HashMap<String, Instant> = HashMap::new();
    let mut count: HashMap<String, usize> = HashMap::new();
    for g in &got {
        let id = g.header("x-delivery-id").to_string();
        first.entry(id.clone()).or_insert(g.at);
        *count.entry(id).or_default() += 1;
    }
    let repeated: Vec<&String> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    eprintln!(
        "{} notifications, {} requests, {} delivered again after the outage",
        N,
        got.len(),
        repeated.len()
    );
    for id in &repeated {
        assert!(
            first[*id] < started_at,
            "{id} was delivered twice although its first attempt came after the restart"
        );
    }
    drop(r);
    drop(cluster);
}
