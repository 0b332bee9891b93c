//! The HTTP API of prospect-events. Every route is listed in [`router`]; handlers are thin:
//! extract (auth, body), validate into domain types, one store call, shape the response.
//! Cross-cutting wire conventions (correlation id, rate limit, error bodies, metrics, request
//! logs) live in `context`.

mod admin;
mod auth;
mod body;
mod conn;
mod connectivity;
mod console;
mod context;
mod enrollments;
mod error;
mod events;
mod idempotency;
mod meta;
mod metrics;
mod query;
mod ratelimit;
mod simulation;
mod v2;
mod webhook_reads;
mod webhooks;

pub use auth::Caller;
pub use conn::{accept_tcp, serve_connection, ConnLimits, Transport};
pub use context::{RequestCtx, ResponseContext, V2ResponseContext};
pub use error::ApiError;
pub use metrics::Metrics;

use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use store::DynStore;

/// Settings of the API layer.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Requests per minute per key; 0 turns the limiter off.
    pub rate_limit_per_minute: u32,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a resolved API key is cached (revocations take effect within this time).
    pub key_cache_ttl: Duration,
    /// Largest snapshot upload accepted by the admin ingestion endpoint (streamed).
    pub max_ingest_bytes: usize,
    /// Anniversaries due within this many days fire at ingestion.
    pub anniversary_lead_days: u32,
    /// Longest snapshot line the admin ingestion endpoint accepts (a longer one is a line
    /// error, and costs at most this much memory).
    pub max_line_bytes: usize,
    /// Events older than this are not created at ingestion (the retention `serve` prunes
    /// with); `None` keeps every event.
    pub event_retention: Option<Duration>,
    /// Connection limits: header-read and idle timeouts, connections served at once.
    pub connections: ConnLimits,
    /// After `rotate_secret`, how long the replaced secret still signs `webhook-signature`.
    pub secret_rotation_grace: Duration,
}

impl Default for ApiConfig {
    /// The operator-facing values come from [`domain::defaults`].
    fn default() -> Self {
        use domain::defaults;
        Self {
            rate_limit_per_minute: defaults::RATE_LIMIT_PER_MINUTE,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            key_cache_ttl: Duration::from_secs(1),
            max_ingest_bytes: 1024 * 1024 * 1024,
            anniversary_lead_days: defaults::ANNIVERSARY_LEAD_DAYS,
            max_line_bytes: defaults::MAX_LINE_BYTES,
            event_retention: None,
            secret_rotation_grace: defaults::SECRET_ROTATION_GRACE,
            connections: ConnLimits {
                header_read_timeout: defaults::HTTP_HEADER_TIMEOUT,
                idle_timeout: defaults::HTTP_IDLE_TIMEOUT,
                max_connections: defaults::MAX_CONNECTIONS,
            },
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub config: Arc<ApiConfig>,
    pub(crate) keys: Arc<auth::KeyCache>,
    pub(crate) limiter: Arc<ratelimit::RateLimiter>,
    pub metrics: Arc<Metrics>,
    /// Outbound client for connectivity checks (same SSRF guard as the worker).
    pub sender: delivery::Sender,
    /// Wakes this process's delivery worker when notifications were queued here.
    pub wake: Option<delivery::Wake>,
    /// What "now" is for every handler (tests set it with [`AppState::with_clock`]).
    pub clock: domain::clock::Clock,
}

impl AppState {
    /// State with a default outbound sender (SSRF guard on) and no worker to wake.
    pub fn new(store: DynStore, config: ApiConfig) -> Self {
        let sender = delivery::Sender::new(delivery::SenderConfig::default())
            .expect("the default HTTP client configuration is valid");
        Self::with_delivery(store, config, sender, None)
    }

    pub fn with_delivery(
        store: DynStore,
        config: ApiConfig,
        sender: delivery::Sender,
        wake: Option<delivery::Wake>,
    ) -> Self {
        Self {
            sender,
            wake,
            clock: domain::clock::Clock::system(),
            keys: Arc::new(auth::KeyCache::new(config.key_cache_ttl)),
            limiter: Arc::new(ratelimit::RateLimiter::new(config.rate_limit_per_minute)),
            metrics: Arc::new(Metrics::default()),
            store,
            config: Arc::new(config),
        }
    }
}

impl AppState {
    /// The same state on another clock.
    pub fn with_clock(mut self, clock: domain::clock::Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthcheck/http", get(meta::healthcheck))
        .route("/healthcheck/ready", get(meta::ready))
        .route("/version/", get(meta::version))
        .route("/openapi.json", get(meta::openapi))
        .route("/metrics", get(meta::metrics))
        .route("/console", get(console::page))
        .route("/console/", get(console::page))
        .route("/console/assets/{name}", get(console::asset))
        .route(
            "/v1/prospects/events/enrollments",
            get(enrollments::list)
                .post(enrollments::create)
                .patch(enrollments::update)
                .delete(enrollments::delete),
        )
        .route("/v1/prospects/events", post(events::fetch))
        .route("/v2/prospects/events", post(v2::events::fetch))
        .merge(v2::routes())
        .route(
            "/v1/admin/prospects/snapshots",
            post(admin::ingest_snapshots),
        )
        .route("/v1/webhooks", get(webhook_reads::list).post(webhooks::add))
        .route(
            "/v1/webhooks/check_connectivity",
            post(webhooks::check_connectivity),
        )
        .route(
            "/v1/webhooks/{partner_id}",
            get(webhooks::get_one)
                .put(webhooks::update_url)
                .delete(webhooks::delete),
        )
        .route(
            "/v1/webhooks/{partner_id}/deliveries",
            get(webhooks::list_deliveries),
        )
        .route(
            "/v1/webhooks/{partner_id}/deliveries/{delivery_id}",
            get(webhooks::get_delivery),
        )
        .route(
            "/v1/webhooks/{partner_id}/deliveries/{delivery_id}/retry",
            post(webhooks::retry_delivery),
        )
        .route("/v1/webhooks/{partner_id}/replay", post(webhooks::replay))
        .route("/v1/webhooks/{partner_id}/stats", get(webhook_reads::stats))
        .route("/v1/webhooks/{partner_id}/daily", get(webhook_reads::daily))
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotency,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            context::wire_conventions,
        ))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.connections;
    accept_tcp(listener, router(state), limits, Transport::Plain, shutdown).await
}

/// [`serve`] over HTTPS with `tls` (see `tls::server_config`).
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Arc<tls::rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.connections;
    let transport = Transport::Tls(tokio_rustls::TlsAcceptor::from(tls));
    accept_tcp(listener, router(state), limits, transport, shutdown).await
}

#[cfg(test)]
mod clock_tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// Handlers take "now" from the state's clock, not the machine's: a webhook registered on
    /// a clock set to 2001 says it was created then.
    #[tokio::test]
    async fn handlers_read_the_injected_clock() {
        let dir = std::env::temp_dir().join(format!("pe-api-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let store = store::open(&url).await.unwrap();
        let (key, record) = store::NewApiKey::issue(
            domain::TenantId("t1".into()),
            domain::PartnerId("p1".into()),
            false,
            time::OffsetDateTime::UNIX_EPOCH,
        );
        store.create_key(record).await.unwrap();
        let at = time::macros::datetime!(2001-02-03 04:05:06 UTC);
        let state =
            AppState::new(store, ApiConfig::default()).with_clock(domain::clock::Clock::fixed(at));
        let req = Request::post("/v1/webhooks")
            .header("api_key", key)
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"partner_id":"p1","webhook_url":"https://example.com/hook"}"#,
            ))
            .unwrap();
        let resp = router(state).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["created_at"], "2001-02-03T04:05:06Z", "{v}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
