//! Reaching PostgreSQL: libpq's `sslmode` on rustls, start-up errors that name their cause, and
//! multi-host URLs that get past a silent first host.
//!
//! The tests without a server use local listeners that play a server's part (one that refuses
//! TLS, one that never answers). The others need `PROSPECT_EVENTS_TEST_POSTGRES_URL`; those
//! about certificates need a cluster that requires TLS, started with
//! `PG_TEST_TLS=1 scripts/pg-test-cluster.sh` (it exports `PROSPECT_EVENTS_TEST_POSTGRES_CA`),
//! as CI does.

extern crate prospect_events_store as store;

use std::io::Read;
use std::net::TcpListener;
use store::postgres::{PostgresOptions, PostgresStore};
use store::Store;
use tls::test_pki::TestCa;

const PG_ENV: &str = "PROSPECT_EVENTS_TEST_POSTGRES_URL";
const CA_ENV: &str = "PROSPECT_EVENTS_TEST_POSTGRES_CA";

fn env(name: &str) -> Option<String> {
    let v = std::env::var(name).ok().filter(|v| !v.is_empty());
    if v.is_none() {
        eprintln!("{name} not set: skipping (see this file's header)");
    }
    v
}

/// `url` with `key` set to `value` (replacing any earlier value).
fn with_param(url: &str, key: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(key))
        .map(str::to_string)
        .collect();
    pairs.push(format!("{key}={value}"));
    format!("{base}?{}", pairs.join("&"))
}

/// `url` with its `host:port` replaced.
fn with_authority(url: &str, authority: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let at = rest.find('@').map_or(0, |i| i + 1);
    let end = rest.find(['/', '?']).unwrap();
    format!("{scheme}://{}{authority}{}", &rest[..at], &rest[end..])
}

fn authority(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let at = rest.find('@').map_or(0, |i| i + 1);
    let end = rest.find(['/', '?']).unwrap();
    rest[at..end].to_string()
}

async fn open(url: &str) -> Result<PostgresStore, String> {
    PostgresStore::open(url, PostgresOptions::default())
        .await
        .map_err(|e| e.to_string())
}

/// A listener that answers PostgreSQL's SSLRequest with `N` (no TLS here), as a server
/// without `ssl = on` does.
fn server_without_tls() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut req = [0u8; 8];
            if s.read_exact(&mut req).is_ok() {
                let _ = std::io::Write::write_all(&mut s, b"N");
            }
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
    });
    port
}

/// A listener that never accepts: the kernel completes the TCP handshake, then nothing ever
/// answers (a hung or half-partitioned host).
fn silent_host() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    let port = server_without_tls();
    let e = open(&format!("postgres://u@127.0.0.1:{port}/db?sslmode=require"))
        .await
        .err()
        .expect("no TLS under require must fail");
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.contains("server does not support TLS"), "{e}");
}

#[tokio::test]
async fn a_silent_host_is_given_up_after_its_connect_timeout() {
    let (_l, port) = silent_host();
    let e = open(&format!("postgres://u@127.0.0.1:{port}/db?sslmode=disable"))
        .await
        .err()
        .expect("a silent host must fail");
    assert!(
        e.contains(&format!("127.0.0.1:{port}: no answer within 2000 ms")),
        "{e}"
    );
}

#[tokio::test]
async fn a_multi_host_url_reaches_the_live_host_behind_a_silent_one() {
    let Some(url) = env(PG_ENV) else { return };
    let (_l, port) = silent_host();
    let live = authority(&url);
    let url = with_param(
        &with_authority(&url, &format!("127.0.0.1:{port},{live}")),
        "target_session_attrs",
        "read-write",
    );
    let store = open(&url).await.expect("the second host answers");
    store.ping().await.unwrap();
}

#[tokio::test]
async fn verify_full_with_a_wrong_root_is_a_start_up_error_naming_it() {
    let (Some(url), Some(_)) = (env(PG_ENV), env(CA_ENV)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let other = TestCa::new("not the server's CA").write(dir.path(), "other");
    let url = with_param(&url, "sslrootcert", other.to_str().unwrap());
    let e = open(&url)
        .await
        .err()
        .expect("an untrusted server must fail");
    assert!(
        e.contains("TLS: certificate not trusted (unknown issuer)"),
        "{e}"
    );
}

#[tokio::test]
async fn verify_ca_checks_the_chain_and_verify_full_the_name_too() {
    let (Some(url), Some(_)) = (env(PG_ENV), env(CA_ENV)) else {
        return;
    };
    let port = authority(&url).rsplit_once(':').unwrap().1.to_string();
    // The certificate names 127.0.0.1 and localhost; ask for another name at the same address.
    let renamed = with_param(
        &with_authority(&url, &format!("db.example:{port}")),
        "hostaddr",
        "127.0.0.1",
    );
    let e = open(&with_param(&renamed, "sslmode", "verify-full"))
        .await
        .err()
        .expect("the name must be checked under verify-full");
    assert!(
        e.contains("TLS: certificate is for localhost, 127.0.0.1, not db.example"),
        "{e}"
    );
    let store = open(&with_param(&renamed, "sslmode", "verify-ca"))
        .await
        .expect("verify-ca does not check the name");
    store.ping().await.unwrap();

    let localhost = with_authority(&url, &format!("localhost:{port}"));
    open(&localhost).await.expect("verify-full by name");
}

#[tokio::test]
async fn require_without_a_root_encrypts_without_checking() {
    let (Some(url), Some(_)) = (env(PG_ENV), env(CA_ENV)) else {
        return;
    };
    let (base, _) = url.split_once('?').unwrap();
    let store = open(&format!("{base}?sslmode=require"))
        .await
        .expect("require accepts any certificate");
    store.ping().await.unwrap();
    // The cluster takes TCP connections over TLS only: `disable` is refused by the server.
    let e = open(&format!("{base}?sslmode=disable"))
        .await
        .err()
        .expect("the cluster requires TLS");
    assert!(
        e.contains("no encryption") || e.contains("pg_hba.conf"),
        "{e}"
    );
}
