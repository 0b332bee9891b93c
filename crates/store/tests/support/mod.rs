#![allow(dead_code)] // each test binary uses part of it
//! Backends for the store contract tests: a fresh SQLite file, or a fresh schema in the
//! PostgreSQL database named by `PROSPECT_EVENTS_TEST_POSTGRES_URL`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use store::DynStore;

pub const PG_ENV: &str = "PROSPECT_EVENTS_TEST_POSTGRES_URL";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// A store under test plus what to clean up afterwards.
pub struct Backend {
    pub store: DynStore,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Schema { admin_url: String, schema: String },
}

impl Backend {
    pub async fn sqlite() -> Backend {
        let dir = std::env::temp_dir().join(unique("pe-contract"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.db");
        let store = store::open(&format!("sqlite://{}", path.display()))
            .await
            .expect("open sqlite store");
        Backend {
            store,
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// `None` (after saying once how to enable them) when no PostgreSQL URL is configured.
    pub async fn postgres() -> Option<Backend> {
        let Some(url) = std::env::var(PG_ENV).ok().filter(|u| !u.is_empty()) else {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                // Written straight to the process's stderr: libtest captures print macros.
                let _ = writeln!(
                    std::io::stderr(),
                    "PostgreSQL contract tests skipped: set {PG_ENV} \
                     (scripts/pg-test-cluster.sh starts one)"
                );
            });
            return None;
        };
        let schema = unique("contract");
        let schema_url = store::postgres::create_test_schema(&url, &schema)
            .await
            .unwrap_or_else(|e| panic!("creating a schema via {PG_ENV}: {e}"));
        let store = store::open(&schema_url).await.expect("open postgres store");
        Some(Backend {
            store,
            cleanup: Cleanup::Schema {
                admin_url: url,
                schema,
            },
        })
    }

    /// Removes the test's database after a passing test (a failing one keeps it to look at).
    pub async fn finish(self) {
        let Backend { store, cleanup } = self;
        drop(store);
        match cleanup {
            Cleanup::Dir(d) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Cleanup::Schema { admin_url, schema } => {
                let _ = store::postgres::drop_test_schema(&admin_url, &schema).await;
            }
        }
    }
}
