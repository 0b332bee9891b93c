//! PostgreSQL restarted under a running store: calls during the outage fail promptly with
//! `Unavailable`, and the pool recovers by itself. It stops and starts the test cluster, so it
//! runs only when asked: `PROSPECT_EVENTS_TEST_PG_RESTART=1` with a cluster started by
//! `scripts/pg-test-cluster.sh` (which exports `PROSPECT_EVENTS_TEST_POSTGRES_URL` and
//! `PG_TEST_CLUSTER_DIR`). Run it alone: nothing else may use the cluster meanwhile.

extern crate prospect_events_store as store;

mod support;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};
use store::{NewApiKey, StoreError};

fn cluster(action: &str, dir: &str) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/pg-test-cluster.sh"
    );
    let st = Command::new("bash")
        .args([script, action, dir])
        .status()
        .expect("running pg-test-cluster.sh");
    assert!(st.success(), "pg-test-cluster.sh {action} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_fails_fast_and_recovers() {
    let (Ok("1"), Ok(dir)) = (
        std::env::var("PROSPECT_EVENTS_TEST_PG_RESTART").as_deref(),
        std::env::var("PG_TEST_CLUSTER_DIR"),
    ) else {
        let _ = writeln!(
            std::io::stderr(),
            "PostgreSQL restart test skipped: set PROSPECT_EVENTS_TEST_PG_RESTART=1 with a \
             cluster from scripts/pg-test-cluster.sh"
        );
        return;
    };
    let b = support::Backend::postgres()
        .await
        .expect("PROSPECT_EVENTS_TEST_POSTGRES_URL");
    let s = b.store.clone();
    s.create_key(NewApiKey {
        key_hash: [7; 32],
        prefix: "pe_outage".into(),
        tenant: domain::TenantId("t".into()),
        partner: domain::PartnerId("p".into()),
        admin: false,
        created_at: time::OffsetDateTime::UNIX_EPOCH,
    })
    .await
    .unwrap();
    // Warm several pooled connections, which the restart will break.
    let warm: Vec<_> = (0..4).map(|_| s.list_keys()).collect();
    for f in warm {
        f.await.unwrap();
    }

    cluster("pg-stop", &dir);
    for _ in 0..3 {
        let t = Instant::now();
        let r = s.principal(&[7; 32]).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
    cluster("pg-start", &dir);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match s.principal(&[7; 32]).await {
            Ok(p) => {
                assert!(p.is_some(), "the committed key survived the restart");
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "not recovered: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // Every pooled connection works again.
    let calls: Vec<_> = (0..8).map(|_| s.list_keys()).collect();
    for f in calls {
        assert_eq!(f.await.unwrap().len(), 1);
    }
    b.finish().await;
}
