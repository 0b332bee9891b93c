//! Test harness: a real server on 127.0.0.1:0 over a fresh database, and an HTTP client.

use api::{ApiConfig, AppState};
use domain::{PartnerId, TenantId};
use std::time::Duration;
use store::DynStore;

pub const P1: &str = "20ae6cbf564ee683e66685e429844a5ff8ffc30f";
pub const P2: &str = "4c485f009d59e319dc039cdf3e935b85014e6a33";
pub const P3: &str = "0000000000000000000000000000000000000003";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// Key of tenant `con_test`, default partner `partner_a`.
    pub key: String,
    pub store: DynStore,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
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
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = store::open(&url).await.expect("open store");
        let state = AppState::new(store.clone(), config);
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
            _dir: dir,
            _shutdown: tx,
        };
        app.key = app.new_key("con_test", "partner_a", false).await;
        app
    }

    /// Creates a key exactly as `prospect-events keys create` does.
    pub async fn new_key(&self, tenant: &str, partner: &str, admin: bool) -> String {
        let key = domain::keys::format_key(rand_bytes());
        self.store
            .create_key(store::NewApiKey {
                key_hash: domain::keys::hash_key(key.as_bytes()),
                prefix: domain::keys::display_prefix(&key),
                tenant: TenantId(tenant.into()),
                partner: PartnerId(partner.into()),
                admin,
                created_at: 0,
            })
            .await
            .expect("create key");
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

fn rand_bytes() -> [u8; 24] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    // Unique and unpredictable enough for tests: time-seeded counter hashed.
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let h = domain::keys::hash_key(format!("{n}-{t}-{}", std::process::id()).as_bytes());
    let mut out = [0u8; 24];
    out.copy_from_slice(&h[..24]);
    out
}
