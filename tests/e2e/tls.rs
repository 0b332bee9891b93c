//! TLS end to end: HTTPS webhook receivers behind a private CA given with `--webhook-ca-file`
//! (connectivity check, signed notifications, retries, connection reuse), receivers whose
//! certificate is not trusted (refused with a plain message, nothing sent), and the API itself
//! served over HTTPS (`--tls-cert`/`--tls-key`).

use crate::serve_crash::{binary_or_skip, enroll_many, ingest_moves, register, req};
use crate::webhooks;
use prospect_events_e2e::process::{command, free_port, keys_create, Serve};
use prospect_events_e2e::receiver::{Receiver, Reply};
use prospect_events_e2e::{test_database_url, test_delivery, TestApp, P1};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tls::test_pki::TestCa;

const TENANT: &str = "con_tls";
const PARTNER: &str = "partner_tls";
const ENROLL: &str = "/v1/prospects/events/enrollments";

/// Every delivery of the partner's log, once each has settled (delivered or failed).
async fn delivery_log(client: &reqwest::Client, s: &Serve, key: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = req(
            client,
            s,
            Method::GET,
            &format!("/v1/webhooks/{PARTNER}/deliveries?limit=1000"),
            key,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let list = v["deliveries"].as_array().cloned().unwrap_or_default();
        if list.len() >= n && list.iter().all(|d| d["status"] == "delivered") {
            return list;
        }
        assert!(Instant::now() < deadline, "log not settled: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_receivers_behind_a_private_ca_get_checks_notifications_and_retries() {
    let _bin = binary_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let db = test_database_url(&dir).await;
    let ca = TestCa::new("receivers' private CA");
    let ca_file = ca.write(dir.path(), "receivers-ca");
    let (rx, handshakes) = Receiver::start_tls(Reply::Status(200), &ca.issue(&["localhost"])).await;
    rx.set_check_reply(Reply::Status(200));
    // The first notification attempt fails: it must be retried, over HTTPS too.
    rx.script([Reply::Status(500)]);

    let key = keys_create(dir.path(), &db, TENANT, PARTNER, false);
    let admin = keys_create(dir.path(), &db, "con_ops", "ops", true);
    let serve = Serve::start(
        dir.path(),
        &db,
        free_port(),
        &[
            "--allow-private-targets",
            "--webhook-ca-file",
            ca_file.to_str().unwrap(),
            "--retry-schedule",
            "1s,1s,1s",
            // Few attempts in flight, so 40 notifications must share connections: the
            // handshake count below then shows reuse instead of the concurrency.
            "--delivery-per-webhook",
            "4",
        ],
        "tls-webhooks",
    )
    .await;
    let client = reqwest::Client::new();
    let secret = register(&client, &serve, &key, PARTNER, &rx.url).await;

    let check: Value = req(
        &client,
        &serve,
        Method::POST,
        "/v1/webhooks/check_connectivity",
        &key,
    )
    .json(&json!({"partner_id": PARTNER}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        check["response_context"]["request_status"], "success",
        "{check}"
    );
    assert_eq!(check["webhook_response"]["status_code"], 200, "{check}");

    const PROSPECTS: usize = 20;
    enroll_many(&client, &serve, &key, PROSPECTS).await;
    ingest_moves(&client, &serve, &admin, PROSPECTS).await;
    let notifications = 2 * PROSPECTS;
    let log = delivery_log(&client, &serve, &key, notifications).await;
    assert_eq!(log.len(), notifications);
    let retried: Vec<&Value> = log.iter().filter(|d| d["attempts"] == 2).collect();
    assert_eq!(retried.len(), 1, "exactly the scripted failure was retried");

    let got = rx.notifications();
    assert_eq!(
        got.len(),
        notifications + 1,
        "every notification, one twice"
    );
    assert!(got.iter().all(|r| r.signature_valid(&secret)));
    let distinct: HashSet<&str> = got.iter().map(|r| r.header("x-delivery-id")).collect();
    assert_eq!(distinct.len(), notifications);
    // Connections (and their TLS sessions) are pooled: far fewer handshakes than requests.
    // Ideally the per-webhook concurrency (4) plus the connectivity check's; on a loaded
    // machine the pool may open a few more when an attempt starts before a finished one's
    // connection is back in the pool, so the bound is 3 requests per connection on average
    // (a handshake per delivery, the defect this guards against, makes 41).
    assert!(
        handshakes.count() <= 14,
        "{} TLS handshakes for {} requests",
        handshakes.count(),
        got.len() + 1
    );
}

#[tokio::test]
async fn a_receiver_certificate_from_another_ca_is_refused_and_said_plainly() {
    let ours = TestCa::new("our CA");
    let dir = tempfile::tempdir().unwrap();
    let (mut sender, worker) = test_delivery();
    sender.extra_ca_files = vec![ours.write(dir.path(), "ours")];
    let app = TestApp::spawn_full(prospect_events_e2e::test_config(), Some((sender, worker))).await;
    let admin = app.new_key("con_ops", "ops", true).await;
    let theirs = TestCa::new("a CA nobody configured");
    let (rx, handshakes) =
        Receiver::start_tls(Reply::Status(200), &theirs.issue(&["localhost"])).await;
    webhooks::register(&app, &app.key, "partner_a", &rx.url).await;

    let check = webhooks::check_connectivity(&app, "partner_a").await;
    assert_eq!(check["response_context"]["request_status"], "failure");
    assert_eq!(
        check["error"], "TLS: certificate not trusted (unknown issuer)",
        "{check}"
    );

    // A real notification: its attempt fails with the same words in the delivery log.
    webhooks::enroll(&app, &app.key, "tls_refusal", &[P1]).await;
    webhooks::one_event_each(&app, &admin, &[P1], 0).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let log = loop {
        let log: Value = app
            .req(Method::GET, "/v1/webhooks/partner_a/deliveries")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if log["deliveries"][0]["attempts"].as_u64().unwrap_or(0) >= 1 {
            break log;
        }
        assert!(Instant::now() < deadline, "no attempt recorded: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let d = &log["deliveries"][0];
    assert_eq!(d["status"], "pending", "retried per schedule: {d}");
    assert_eq!(
        d["last_error"], "TLS: certificate not trusted (unknown issuer)",
        "{d}"
    );
    assert_eq!(rx.count(), 0, "nothing was sent");
    assert_eq!(handshakes.count(), 0);
}

/// A client that trusts only `ca_file` (for the HTTPS API).
fn client_trusting(ca_file: &Path) -> reqwest::Client {
    let config = tls::client_config(
        &tls::Anchors::Only(ca_file.to_path_buf()),
        tls::Verification::Full,
        None,
        &[b"http/1.1"],
    )
    .unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_https_answers_clients_that_trust_its_certificate() {
    let _bin = binary_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let db = test_database_url(&dir).await;
    let ca = TestCa::new("API CA");
    let ca_file = ca.write(dir.path(), "api-ca");
    let (cert, key) = ca
        .issue(&["localhost", "127.0.0.1"])
        .write(dir.path(), "api");
    let api_key = keys_create(dir.path(), &db, TENANT, PARTNER, false);
    let client = client_trusting(&ca_file);
    let serve = Serve::start_https(
        dir.path(),
        &db,
        free_port(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        "https-api",
        client.clone(),
    )
    .await;
    assert!(serve.url("/").starts_with("https://localhost:"));

    // A client that trusts the CA: several requests on its keep-alive connection.
    for _ in 0..3 {
        let resp = req(&client, &serve, Method::GET, ENROLL, &api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert!(v["enrollments"].is_array(), "{v}");
    }
    // curl, as an operator would try it.
    match Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&ca_file)
        .arg(serve.url("/healthcheck/ready"))
        .output()
    {
        Ok(out) => {
            assert!(out.status.success(), "curl: {out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "\"OK\"");
        }
        Err(e) => eprintln!("curl not available ({e}); checked with reqwest only"),
    }
    // Clients that do not trust the certificate, or speak plain HTTP, get nothing.
    let e = reqwest::Client::new()
        .get(serve.url("/healthcheck/http"))
        .send()
        .await
        .unwrap_err();
    let tls_error = tls::find_tls_error(&e).expect("a TLS error");
    assert_eq!(
        tls::HandshakeFailure {
            error: tls_error,
            host: "localhost"
        }
        .to_string(),
        "TLS: certificate not trusted (unknown issuer)"
    );
    let plain = serve
        .url("/healthcheck/http")
        .replace("https://", "http://");
    assert!(reqwest::Client::new().get(plain).send().await.is_err());
}

#[test]
fn a_certificate_and_key_that_do_not_match_stop_serve_at_start_up() {
    let bin = binary_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("API CA");
    let (cert, _) = ca.issue(&["localhost"]).write(dir.path(), "a");
    let (_, other_key) = ca.issue(&["localhost"]).write(dir.path(), "b");
    let mut child = command(&bin, dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&other_key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with a key that does not match its certificate");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("--tls-cert"), "{stderr}");
    assert!(stderr.contains("certificate and key"), "{stderr}");
}
