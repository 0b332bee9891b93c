//! Test harness: a real server on 127.0.0.1:0 over a fresh database, and an HTTP client.

use api::{ApiConfig, AppState};
use domain::{PartnerId, TenantId};
use std::time::Duration;
use store::DynStore;

pub const P1: &str = "20ae6cbf564ee683e66685e429844a5ff8ffc30f";
pub const P2: &str = "4c485f009d59e319dc039cdf3e935b85014e6a33";
pub const P3: &str = "0000000000000000000000000000000000000003";

pub mod process;
pub mod receiver;
pub mod webdriver;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// Key of tenant `con_test`, default partner `partner_a`.
    pub key: String,
    pub store: DynStore,
    /// The URL of the server's database (for child processes that share it).
    pub database_url: String,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _worker_stop: Option<tokio::sync::watch::Sender<bool>>,
}

/// Delivery settings for tests: private targets allowed (receivers listen on 127.0.0.1), a
/// seconds-scale retry schedule and a short timeout.
pub fn test_delivery() -> (delivery::SenderConfig, delivery::WorkerConfig) {
    (
        delivery::SenderConfig {
            allow_private_targets: true,
            timeout: Duration::from_secs(2),
            ..Default::default()
        },
        delivery::WorkerConfig {
            retry: delivery::RetryPolicy::new(
                vec![
                    Duration::from_secs(1),
                    Duration::from_secs(1),
                    Duration::from_secs(1),
                ],
                0.2,
            ),
            poll: Duration::from_millis(10),
            ..Default::default()
        },
    )
}

/// The database of one test: a fresh SQLite file, or, when `PROSPECT_EVENTS_TEST_BACKEND` is
/// `postgres`, a fresh schema in the database at `PROSPECT_EVENTS_TEST_POSTGRES_URL` (start one
/// with `scripts/pg-test-cluster.sh`). The same suite thus runs against both backends.
pub async fn test_database_url(dir: &tempfile::TempDir) -> String {
    if std::env::var("PROSPECT_EVENTS_TEST_BACKEND").as_deref() == Ok("postgres") {
        let base = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL").expect(
            "PROSPECT_EVENTS_TEST_BACKEND=postgres needs PROSPECT_EVENTS_TEST_POSTGRES_URL \
             (eval \"$(scripts/pg-test-cluster.sh)\")",
        );
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let schema = format!(
            "e2e_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        store::postgres::create_test_schema(&base, &schema)
            .await
            .expect("create a test schema")
    } else {
        format!("sqlite://{}", dir.path().join("test.db").display())
    }
}

/// API settings for tests: no rate limit and no key cache unless a test asks for them.
pub fn test_config() -> ApiConfig {
    ApiConfig {
        rate_limit_per_minute: 0,
        key_cache_ttl: Duration::ZERO,
        ..ApiConfig::default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(test_config()).await
    }

    pub async fn spawn_with(config: ApiConfig) -> Self {
        Self::spawn_full(config, None).await
    }

    /// A server with a running delivery worker.
    pub async fn spawn_with_worker(
        sender: delivery::SenderConfig,
        worker: delivery::WorkerConfig,
    ) -> Self {
        Self::spawn_full(test_config(), Some((sender, worker))).await
    }

    pub async fn spawn_full(
        config: ApiConfig,
        delivery_cfg: Option<(delivery::SenderConfig, delivery::WorkerConfig)>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = test_database_url(&dir).await;
        let store = store::open(&url).await.expect("open store");
        let (sender_cfg, worker_cfg) = match delivery_cfg {
            Some((s, w)) => (s, Some(w)),
            None => (delivery::SenderConfig::default(), None),
        };
        let sender = delivery::Sender::new(sender_cfg).expect("sender");
        let mut worker_stop = None;
        let mut wake = None;
        if let Some(wc) = worker_cfg {
            let worker = delivery::Worker::new(
                store.clone(),
                sender.clone(),
                std::sync::Arc::new(delivery::Limiter::default()),
                wc,
            );
            wake = Some(worker.wake_handle());
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(worker.run(rx));
            worker_stop = Some(tx);
        }
        let state = AppState::with_delivery(store.clone(), config, sender, wake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = api::serve(listener, state, async {
                let _ = rx.await;
            })
            .await;
        });
        let mut app = TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            key: String::new(),
            store,
            database_url: url,
            _dir: dir,
            _shutdown: tx,
            _worker_stop: worker_stop,
        };
        app.key = app.new_key("con_test", "partner_a", false).await;
        app
    }

    /// Creates a key exactly as `prospect-events keys create` does.
    pub async fn new_key(&self, tenant: &str, partner: &str, admin: bool) -> String {
        let (key, record) = store::NewApiKey::issue(
            TenantId(tenant.into()),
            PartnerId(partner.into()),
            admin,
            domain::clock::Clock::system().now(),
        );
        self.store.create_key(record).await.expect("create key");
        key
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request authenticated with the default key.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("api_key", &self.key)
    }

    pub fn with_key(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("api_key", key)
    }
}

// --- Helpers for the events/ingestion tests ---------------------------------------------------

impl TestApp {
    /// `POST /v1/admin/prospects/snapshots` with `key`, the given content type (None: no header)
    /// and body; returns the status and the JSON answer.
    pub async fn ingest_snapshots(
        &self,
        key: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.with_key(reqwest::Method::POST, "/v1/admin/prospects/snapshots", key);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.body(body).send().await.expect("ingest request");
        let status = resp.status().as_u16();
        let v = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, v)
    }

    /// `POST /v1/prospects/events` with the default key; returns the status and the JSON answer.
    pub async fn events(&self, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let resp = self
            .req(reqwest::Method::POST, "/v1/prospects/events")
            .json(body)
            .send()
            .await
            .expect("events request");
        let status = resp.status().as_u16();
        assert_eq!(
            resp.headers()["content-type"],
            "application/json",
            "an events answer is JSON"
        );
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// The `prospect-events` binary built in the same target directory as the running test
/// (`target/<profile>/prospect-events`, found from the test executable's path, which is
/// `target/<profile>/deps/e2e-<hash>`). Cargo cannot give one package's tests another package's
/// binary (`CARGO_BIN_EXE_*` is per package), so tests needing it skip, with a message, when it
/// has not been built: `cargo test --workspace` (or `cargo build -p prospect-events` first)
/// builds it. `PROSPECT_EVENTS_BIN` overrides the lookup.
pub fn cli_binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("PROSPECT_EVENTS_BIN") {
        return Some(p.into());
    }
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let name = format!("prospect-events{}", std::env::consts::EXE_SUFFIX);
    let p = profile_dir.join(name);
    p.is_file().then_some(p)
}
