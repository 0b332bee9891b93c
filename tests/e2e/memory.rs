//! A real `prospect-events serve` gives memory back after a burst of hostile bodies (D35, D39):
//! its resident size after the burst stays near where it started. Linux only (reads /proc).
//!
//! Skipped (with a notice) when the binary is not built; see `serve_crash.rs`.

use super::serve_crash::{binary_or_skip, free_port, keys_create, Serve};
use std::time::Duration;

fn rss_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_returns_after_a_burst_of_hostile_bodies() {
    let _bin = binary_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = format!("sqlite://{}", d.join("memory.db").display());
    let key = keys_create(d, &db, "con_mem", "partner_a", false);
    let flags = ["--rate-limit", "0", "--no-worker", "--no-scanner"];
    let serve = Serve::start(d, &db, free_port(), &flags, "serve.log").await;
    let Some(before) = rss_mb(serve.pid()) else {
        eprintln!("SKIPPED: no /proc/PID/status here");
        return;
    };
    // Each answer echoes the 1 MB string five times (four `missing` errors and the extra key).
    let body = format!("{{\"x\": \"{}\"}}", "y".repeat(1_000_000));
    let client = reqwest::Client::new();
    for _ in 0..4 {
        let burst: Vec<_> = (0..16)
            .map(|_| {
                client
                    .patch(serve.url("/v1/prospects/events/enrollments"))
                    .header("api_key", &key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
            })
            .collect();
        for resp in futures_join(burst).await {
            let resp = resp.expect("answered");
            assert_eq!(resp.status(), 422);
            assert!(resp.bytes().await.unwrap().len() > 5_000_000);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_mb(serve.pid()).unwrap();
    eprintln!("serve RSS: {before} MB before the burst, {after} MB after");
    assert!(
        after < before + 25,
        "the burst left {} MB behind ({before} → {after} MB)",
        after - before
    );
}

/// Waits for all `futures`, in order (no extra dependency for one join).
async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
