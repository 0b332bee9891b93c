//! What ingestion refuses and accepts at its edges, through the real `prospect-events` binary
//! (`ingest` to the database and `serve` + `ingest --server`) and the admin endpoint: a byte
//! order mark before the first NDJSON line, lines over `--max-line-bytes`, `observed_at` outside
//! the supported range or from the future.

use super::serve_crash::{binary_or_skip, free_port, keys_create, Serve};
use prospect_events_e2e::{TestApp, P1, P2};
use serde_json::Value;
use std::path::Path;
use std::process::{Output, Stdio};

fn ingest(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    prospect_events_e2e::process::command(bin, dir)
        .env("RUST_LOG", "warn")
        .arg("ingest")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run prospect-events ingest")
}

/// (exit code, summary on stdout, `(line, error)` on stderr).
fn outcome(o: &Output) -> (i32, Value, Vec<(u64, String)>) {
    let summary = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let errors = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("line").is_some())
        .map(|v| {
            (
                v["line"].as_u64().unwrap(),
                v["error"].as_str().unwrap().into(),
            )
        })
        .collect();
    (o.status.code().unwrap_or(-1), summary, errors)
}

/// `YYYY-MM-DD`, `n` days before today (`ingest` applies a 400-day retention by default).
fn days_ago(n: i64) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    domain::snapshot::format_date(today - time::Duration::days(n))
}

fn line(pid: &str, observed_at: &str, title: &str) -> String {
    serde_json::json!({"prospect_id": pid, "observed_at": observed_at, "job_title": title})
        .to_string()
}

/// Saved as UTF-8 "with BOM" (Windows editors, some exports): the first line used to be
/// rejected as invalid JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_order_mark_before_the_first_ndjson_line_is_accepted() {
    let body = format!(
        "\u{feff}{}\n{}\n",
        line(P1, "2024-01-01", "Dev"),
        line(P2, "2024-01-01", "Dev")
    );
    let app = TestApp::spawn().await;
    let admin = app.new_key("con_test", "ops", true).await;
    let (status, v) = app.ingest_snapshots(&admin, None, body.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    assert_eq!(v["summary"]["baselines"], 2, "{v}");

    let bin = binary_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bom.ndjson");
    std::fs::write(&f, &body).unwrap();
    let db = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let (code, s, errors) = outcome(&ingest(
        &bin,
        dir.path(),
        &[f.to_str().unwrap(), "--database-url", &db],
    ));
    assert_eq!((code, errors.len()), (0, 0), "{s} {errors:?}");
    assert_eq!(
        (s["accepted"].as_u64(), s["baselines"].as_u64()),
        (Some(2), Some(2))
    );
}

/// A line over `--max-line-bytes` is one line error (on the CLI and on the server with its
/// own `--max-line-bytes`); the lines around it are applied. Without a flag the limit is
/// 1 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_over_max_line_bytes_are_rejected_on_the_cli_and_the_server() {
    let bin = binary_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long = |n: usize| line(P2, &days_ago(2), &"x".repeat(n));
    let body = [
        line(P1, &days_ago(3), "Dev"),
        long(2 * 1024 * 1024),
        long(1000),
        line(P1, &days_ago(1), "CTO"),
    ]
    .join("\n");
    let f = d.join("long.ndjson");
    std::fs::write(&f, &body).unwrap();
    let f = f.to_str().unwrap();
    let too_long =
        |n: u64| format!("line longer than {n} bytes (the limit, --max-line-bytes); skipped");

    // The CLI, default limit (1 MiB): only the 2 MiB line is refused.
    let db = format!("sqlite://{}", d.join("cli.db").display());
    let (code, s, errors) = outcome(&ingest(&bin, d, &[f, "--database-url", &db]));
    assert_eq!(code, 2, "{s}");
    assert_eq!(errors, [(2, too_long(1024 * 1024))]);
    assert_eq!(
        (s["accepted"].as_u64(), s["events_created"].as_u64()),
        (Some(3), Some(1))
    );

    // The CLI with --max-line-bytes 500: the 1000-byte line too.
    let db2 = format!("sqlite://{}", d.join("cli2.db").display());
    let args = [f, "--database-url", &db2, "--max-line-bytes", "500"];
    let (code, s, errors) = outcome(&ingest(&bin, d, &args));
    assert_eq!(code, 2, "{s}");
    assert_eq!(errors, [(2, too_long(500)), (3, too_long(500))]);
    assert_eq!(s["accepted"].as_u64(), Some(2));

    // `serve --max-line-bytes 500` behind `ingest --server`: the server's limit applies.
    let db3 = format!("sqlite://{}", d.join("serve.db").display());
    let admin = keys_create(d, &db3, "con_ops", "ops", true);
    let serve = Serve::start(
        d,
        &db3,
        free_port(),
        &["--max-line-bytes", "500"],
        "serve.log",
    )
    .await;
    let base = serve.base.clone();
    let (bin2, d2, f2) = (bin.clone(), d.to_path_buf(), f.to_string());
    let o = tokio::task::spawn_blocking(move || {
        ingest(&bin2, &d2, &[&f2, "--server", &base, "--api-key", &admin])
    })
    .await
    .unwrap();
    let (code, s, errors) = outcome(&o);
    assert_eq!(code, 2, "{s} {o:?}");
    assert_eq!(errors, [(2, too_long(500)), (3, too_long(500))]);
    assert_eq!(
        (s["accepted"].as_u64(), s["events_created"].as_u64()),
        (Some(2), Some(1))
    );
}

/// `observed_at` outside 1900-01-01..2200-12-31 used to wrap around (1600-01-01 was stored as
/// 2184 and froze the prospect); one more than an hour ahead of the clock made the prospect
/// ignore all real data until then. Both are line errors now, and later real snapshots work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_at_out_of_range_or_from_the_future_is_a_line_error() {
    let app = TestApp::spawn().await;
    let admin = app.new_key("con_test", "ops", true).await;
    let body = [
        line(P1, "2024-01-01", "Dev"),
        line(P1, "1600-01-01", "Ghost"),
        line(P1, "9999-12-31T23:59:59Z", "Ghost"),
        line(P1, "2099-01-01", "Ghost"),
        line(P1, "2024-03-01", "CTO"),
    ]
    .join("\n");
    let (status, v) = app.ingest_snapshots(&admin, None, body).await;
    assert_eq!(status, 200, "{v}");
    let range = "is outside the supported range (1900-01-01 to 2200-12-31, UTC)";
    assert_eq!(v["errors"][0]["line"], 2, "{v}");
    assert_eq!(
        v["errors"][0]["error"],
        format!("observed_at: 1600-01-01T00:00:00Z {range}")
    );
    assert_eq!(
        v["errors"][1]["error"],
        format!("observed_at: 9999-12-31T23:59:59Z {range}")
    );
    assert_eq!(v["errors"][2]["line"], 4, "{v}");
    let future = v["errors"][2]["error"].as_str().unwrap();
    assert!(
        future.starts_with("observed_at: 2099-01-01T00:00:00Z is in the future (more than 60 minutes after this machine's clock"),
        "{future}"
    );
    // The real snapshot after them is a change: the prospect is not frozen.
    assert_eq!(v["summary"]["events_created"], 1, "{v}");
    assert_eq!(v["summary"]["rejected"], 3, "{v}");
}

/// One retention rule, the same before and after a restart: events whose time is older than
/// `--event-retention` (400 days by default) are neither created nor notified at ingestion
/// (counted as `events_beyond_retention`), on the CLI and through `serve`; they used to be
/// created, notified, and deleted by the prune at the next start. A restarted `serve` (whose
/// scanner prunes with the same retention at start) deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_older_than_the_retention_are_not_created_and_a_restart_keeps_the_rest() {
    let bin = binary_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let day = days_ago;
    // P1 changes 500 days ago and 30 days ago; P2 only 500 days ago.
    let body = [
        line(P1, &day(600), "Dev"),
        line(P1, &day(500), "Lead"),
        line(P1, &day(30), "CTO"),
        line(P2, &day(600), "Dev"),
        line(P2, &day(500), "Lead"),
    ]
    .join("\n");
    let f = d.join("backfill.ndjson");
    std::fs::write(&f, &body).unwrap();
    let f = f.to_str().unwrap().to_string();
    let counts = |s: &Value| {
        [
            "events_created",
            "notifications_queued",
            "events_beyond_retention",
        ]
        .map(|k| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}")))
    };

    // The CLI to the database, default retention.
    let db = format!("sqlite://{}", d.join("cli.db").display());
    let o = ingest(&bin, d, &[&f, "--database-url", &db]);
    let (code, s, _) = outcome(&o);
    assert_eq!(code, 0, "{o:?}");
    assert_eq!(counts(&s), [1, 0, 2], "{s}");
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("2 events older than the retention (--event-retention) were not created"),
        "{o:?}"
    );

    // serve --event-retention 400d, an enrollment of both prospects, `ingest --server`.
    let db = format!("sqlite://{}", d.join("serve.db").display());
    let admin = keys_create(d, &db, "con_ops", "ops", true);
    let key = keys_create(d, &db, "con_a", "partner_a", false);
    let port = free_port();
    let flags = ["--event-retention", "400d", "--no-worker"];
    let serve = Serve::start(d, &db, port, &flags, "serve-1.log").await;
    let http = reqwest::Client::new();
    let r = http
        .post(serve.url("/v1/prospects/events/enrollments"))
        .header("api_key", &key)
        .json(
            &serde_json::json!({"enrollment_key": "both", "prospect_ids": [P1, P2],
            "event_types": ["prospect_changed_role"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (bin2, d2, base) = (bin.clone(), d.to_path_buf(), serve.base.clone());
    let o = tokio::task::spawn_blocking(move || {
        ingest(&bin2, &d2, &[&f, "--server", &base, "--api-key", &admin])
    })
    .await
    .unwrap();
    let (code, s, _) = outcome(&o);
    assert_eq!(code, 0, "{o:?}");
    assert_eq!(counts(&s), [1, 1, 2], "{s}");

    let events = |serve: &Serve| {
        let req = http
            .post(serve.url("/v1/prospects/events"))
            .header("api_key", &key)
            .json(
                &serde_json::json!({"event_types": ["prospect_changed_role"],
                "prospect_ids": [P1, P2], "timestamp_from": day(1000)}),
            );
        async move {
            let v: Value = req.send().await.unwrap().json().await.unwrap();
            v["output_events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["data"]["current_job_title"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(events(&serve).await, ["CTO"]);

    // Restart: the scanner prunes with the same retention at start, and finds nothing to do.
    let mut serve = serve;
    serve.terminate();
    serve.wait_exit(std::time::Duration::from_secs(30)).await;
    let serve = Serve::start(d, &db, port, &flags, "serve-2.log").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !serve.log_text().contains("event retention applied") {
        assert!(std::time::Instant::now() < deadline, "{}", serve.log_text());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        serve.log_text().contains("events.pruned=0"),
        "{}",
        serve.log_text()
    );
    assert_eq!(events(&serve).await, ["CTO"]);
}
