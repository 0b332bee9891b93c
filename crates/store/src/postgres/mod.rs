//! The PostgreSQL backend (scale-out: any number of `serve` replicas share one database).
//!
//! Same data model and semantics as the SQLite backend (see `crate::sqlite`); the differences are
//! in how concurrency is handled, because several processes write at once:
//! * every multi-row change runs in one transaction (READ COMMITTED);
//! * ingestion holds transaction-level advisory locks on the buckets of the prospects it
//!   touches (taken in bucket order, so replicas never deadlock), so two ingestions of a common
//!   prospect — stored or new — serialize, without writing a row to lock it;
//! * the anniversary scanner holds a session advisory lock while it runs (one replica at a time);
//! * notification claims use `FOR UPDATE SKIP LOCKED` with leases;
//! * migrations run under a transaction-level advisory lock.
//!
//! Connections come from a pool with short timeouts: while PostgreSQL is unreachable every call
//! fails within a few seconds with [`StoreError::Unavailable`], and the pool reconnects by itself
//! once the server is back (closed connections are discarded when recycled).

mod connect;
mod enrollments;
mod idempotency;
mod ingest;
mod keys;
mod migrate;
mod outbox;
mod scan;
mod stats;
mod store;
mod webhooks;

use crate::{Failure, StoreError};
pub use connect::{ConnectParams, SslMode, DEFAULT_CONNECT_TIMEOUT};

use connect::Connector;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// Tuning knobs of the PostgreSQL backend.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Most connections this process opens.
    pub max_connections: usize,
    /// Longest wait for a pooled connection, and for opening a new one.
    pub acquire_timeout: Duration,
    /// Transactions one ingestion batch is applied in at once (D93), at most
    /// `max_connections`.
    pub ingest_lanes: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: domain::defaults::POSTGRES_POOL_SIZE,
            acquire_timeout: domain::defaults::POSTGRES_ACQUIRE_TIMEOUT,
            ingest_lanes: domain::defaults::POSTGRES_INGEST_LANES,
        }
    }
}

pub struct PostgresStore {
    pool: Pool,
    /// Key of the scanner's session advisory lock (derived from database and schema, so tests
    /// running in separate schemas do not exclude each other).
    scan_lock_key: i64,
    /// [`PostgresOptions::ingest_lanes`], within the pool.
    ingest_lanes: usize,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db?...`, one host or several),
    /// runs migrations and keeps a pool. URL parameters understood here (removed before the
    /// driver sees the URL): `pool_size`, `ingest_lanes`, and libpq's `sslmode`, `sslrootcert`, `sslcert`,
    /// `sslkey`, `connect_timeout` (see [`connect`](self::connect)).
    pub async fn open(url: &str, opts: PostgresOptions) -> Result<Self, StoreError> {
        Self::open_up_to(url, opts, i64::MAX).await
    }

    /// [`Self::open`] with the schema migrated up to version `last` only (upgrade tests).
    pub(crate) async fn open_up_to(
        url: &str,
        mut opts: PostgresOptions,
        last: i64,
    ) -> Result<Self, StoreError> {
        let (url, params) = take_params(url, &mut opts)?;
        let connector = Connector::new(&url, &params, tune)?;
        // Start-up says why no host can be used (certificate, TLS refused, password, …).
        connector.check().await?;
        // Opening a connection may take every host's budget (a silent first host, then the
        // live one), so the pool's creation budget covers them all.
        let create_timeout = match connector.total_budget() {
            Duration::MAX => opts.acquire_timeout,
            all_hosts => opts
                .acquire_timeout
                .max(all_hosts.saturating_add(Duration::from_secs(1))),
        };
        let mgr = Manager::from_connect(
            // The connector holds each host's configuration; this one is only for the pool.
            tokio_postgres::Config::new(),
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(opts.max_connections.max(1))
            .wait_timeout(Some(opts.acquire_timeout))
            .create_timeout(Some(create_timeout))
            .recycle_timeout(Some(opts.acquire_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::internal(format!("building the pool: {e}")))?;
        let mut conn = get(&pool).await?;
        migrate::run_up_to(&mut conn, last).await?;
        let scan_lock_key: i64 = conn
            .query_one(
                "SELECT hashtextextended(current_database() || '/' || current_schema()
                    || '/anniversary_scan', 0)",
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        drop(conn);
        Ok(Self {
            pool,
            scan_lock_key,
            ingest_lanes: opts.ingest_lanes.clamp(1, opts.max_connections.max(1)),
        })
    }

    pub(crate) async fn conn(&self) -> Result<Object, StoreError> {
        get(&self.pool).await
    }

    pub(crate) fn ingest_lanes(&self) -> usize {
        self.ingest_lanes
    }
}

async fn get(pool: &Pool) -> Result<Object, StoreError> {
    pool.get().await.map_err(|e| match e {
        PoolError::Timeout(t) => StoreError::unavailable(format!(
            "no PostgreSQL connection within the timeout ({t:?})"
        )),
        PoolError::Backend(e) => pg(e),
        PoolError::Closed => StoreError::unavailable("the connection pool is closed"),
        other => StoreError::internal(format!("connection pool: {other}")),
    })
}

/// Settings of every connection: a name in `pg_stat_activity`, JIT compilation off (unless the
/// URL's `options` set `jit`: D121), and TCP keepalives so that a vanished server is noticed on
/// idle and busy connections within seconds.
fn tune(cfg: &mut tokio_postgres::Config) {
    if cfg.get_application_name().is_none() {
        cfg.application_name("prospect-events");
    }
    let options = cfg.get_options().unwrap_or_default();
    if !sets(options, "jit") {
        let with_jit = format!("{options} -c jit=off");
        cfg.options(with_jit.trim_start());
    }
    cfg.keepalives(true);
    cfg.keepalives_idle(Duration::from_secs(10));
    cfg.keepalives_interval(Duration::from_secs(2));
    cfg.keepalives_retries(3);
    cfg.tcp_user_timeout(Duration::from_secs(20));
}

/// Whether server `options` (`-c name=value`, `-cname=value` or `--name=value`, separated by
/// spaces) set the parameter `name`.
fn sets(options: &str, name: &str) -> bool {
    let mut words = options.split_whitespace();
    while let Some(w) = words.next() {
        let setting = match w {
            "-c" => words.next().unwrap_or_default(),
            _ => w
                .strip_prefix("--")
                .or_else(|| w.strip_prefix("-c"))
                .unwrap_or_default(),
        };
        if setting.split_once('=').map(|(n, _)| n.trim()) == Some(name) {
            return true;
        }
    }
    false
}

/// Removes the parameters this crate understands (the pool's and [`ConnectParams`]) from the
/// URL's query string; the rest is the driver's.
fn take_params(
    url: &str,
    opts: &mut PostgresOptions,
) -> Result<(String, ConnectParams), StoreError> {
    let mut params = ConnectParams::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "pool_size" => opts.max_connections = url_count(k, v)?,
            "ingest_lanes" => opts.ingest_lanes = url_count(k, v)?,
            _ if params.take(k, v)? => {}
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, params))
}

/// A count given as a URL parameter (0 counts as 1 where it is used).
fn url_count(name: &str, v: &str) -> Result<usize, StoreError> {
    v.parse()
        .map_err(|_| StoreError::internal(format!("invalid {name} in the database URL: {v}")))
}

/// Test support: creates the empty schema `schema` in the database at `base_url` and returns a
/// URL whose connections use it (`options=-csearch_path=…`), so that each test (or each test
/// server) gets its own tables in one shared throwaway database. `schema` must be a plain
/// lowercase identifier (`[a-z0-9_]`, not starting with a digit).
pub async fn create_test_schema(base_url: &str, schema: &str) -> Result<String, StoreError> {
    check_schema_name(schema)?;
    admin_exec(base_url, &format!("CREATE SCHEMA {schema}")).await?;
    let sep = if base_url.contains('?') { '&' } else { '?' };
    Ok(format!("{base_url}{sep}options=-csearch_path%3D{schema}"))
}

/// Test support: drops a schema made by [`create_test_schema`], with everything in it.
pub async fn drop_test_schema(base_url: &str, schema: &str) -> Result<(), StoreError> {
    check_schema_name(schema)?;
    admin_exec(base_url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await
}

/// Test support: creates the empty database `name` (a plain identifier, as for
/// [`create_test_schema`]) on the server of `base_url` and returns its URL (the same
/// parameters). For a test that must not share its database with the others: opportunistic
/// pruning, for one, waits for the transactions of the whole database.
pub async fn create_test_database(base_url: &str, name: &str) -> Result<String, StoreError> {
    check_schema_name(name)?;
    admin_exec(base_url, &format!("CREATE DATABASE {name}")).await?;
    let (base, params) = match base_url.split_once('?') {
        Some((b, p)) => (b, format!("?{p}")),
        None => (base_url, String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    Ok(format!("{server}/{name}{params}"))
}

/// Test support: drops a database made by [`create_test_database`], closing its connections.
pub async fn drop_test_database(base_url: &str, name: &str) -> Result<(), StoreError> {
    check_schema_name(name)?;
    admin_exec(
        base_url,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await
}

/// Test support: a store on a fresh schema `{label}_{pid}` of the database at `base_url`, and
/// that schema's name (for [`drop_test_schema`]).
#[cfg(test)]
pub(crate) async fn test_store(
    base_url: &str,
    label: &str,
    opts: PostgresOptions,
) -> (PostgresStore, String) {
    let schema = format!("{label}_{}", std::process::id());
    let schema_url = create_test_schema(base_url, &schema).await.unwrap();
    let store = PostgresStore::open(&schema_url, opts).await.unwrap();
    (store, schema)
}

/// Test support: the plan PostgreSQL prints for `EXPLAIN …` (`sql` starts with EXPLAIN), one
/// string.
#[cfg(test)]
pub(crate) async fn plan_of(
    c: &Object,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> String {
    let rows = c.query(sql, params).await.unwrap();
    let lines: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    lines.join("\n")
}

fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() < 64
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::internal(format!(
            "invalid schema name: {schema}"
        )))
    }
}

async fn admin_exec(base_url: &str, sql: &str) -> Result<(), StoreError> {
    let (client, task) = one_connection(base_url).await?;
    let res = client.batch_execute(sql).await.map_err(pg);
    drop(client);
    let _ = task.await;
    res
}

/// One connection to `url` outside any pool (its TLS, schema and options as the store's), and
/// the task that drives it.
async fn one_connection(
    url: &str,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), StoreError> {
    let (url, params) = take_params(url, &mut PostgresOptions::default())?;
    let connector = Connector::new(&url, &params, |_| {})?;
    deadpool_postgres::Connect::connect(&connector, &tokio_postgres::Config::new())
        .await
        .map_err(pg)
}

/// Test support: the rows `sql` returns on a connection of `url` (a test schema's URL reads
/// that schema), each as its columns' text joined by `|` (`NULL` for a null), in the order
/// returned — for comparing what two databases hold.
pub async fn test_rows(url: &str, sql: &str) -> Result<Vec<String>, StoreError> {
    let (client, task) = one_connection(url).await?;
    let res = client.simple_query(sql).await.map_err(pg);
    drop(client);
    let _ = task.await;
    Ok(res?
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect())
}

/// Whether retrying the whole transaction is safe and may succeed: the database reported a
/// serialization failure or a deadlock (decided by SQLSTATE in [`pg`], never by message text).
pub(crate) fn is_retryable(e: &StoreError) -> bool {
    e.retries_transaction()
}

/// Maps a driver error to the store's error kinds, keeping it as the source: connection
/// trouble, overload, shutdown, deadlocks and serialization failures are `Unavailable` (a prompt
/// 503; the last two also retry the transaction); the rest is `Internal`. Unique violations are
/// mapped to `Conflict` by the callers that expect them.
pub(crate) fn pg(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let msg = format!("[{}] {}", code.code(), db.message());
        let retry_transaction = *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED;
        let class = &code.code()[..2];
        let transient = retry_transaction
            || class == "08" // connection exception
            || class == "53" // insufficient resources (too many connections, …)
            || code.code().starts_with("57P") // admin/crash shutdown, cannot connect now
            || *code == SqlState::QUERY_CANCELED // statement timeout
            || *code == SqlState::LOCK_NOT_AVAILABLE;
        let failure = Failure::caused_by(msg, e);
        return if retry_transaction {
            StoreError::Unavailable(failure.retry_transaction())
        } else if transient {
            StoreError::Unavailable(failure)
        } else {
            StoreError::Internal(failure)
        };
    }
    let text = e.to_string();
    let unavailable = e.is_closed()
        || text.starts_with("error communicating")
        || text.starts_with("error connecting")
        || text.starts_with("timeout")
        || text.starts_with("connection closed")
        || text.starts_with("unexpected message");
    let detail = match std::error::Error::source(&e) {
        Some(s) if unavailable => format!("{text}: {s}"),
        _ => text,
    };
    let failure = Failure::caused_by(detail, e);
    if unavailable {
        StoreError::Unavailable(failure)
    } else {
        StoreError::Internal(failure)
    }
}

/// True when the driver error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().map(|d| d.code().code()) == Some("23505")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_that_set_a_parameter() {
        assert!(sets("-c jit=on", "jit"));
        assert!(sets("-csearch_path=x -cjit=off", "jit"));
        assert!(sets("--jit=on", "jit"));
        assert!(!sets("-csearch_path=jit_1", "jit"));
        assert!(!sets("-c jit_above_cost=0", "jit"));
        assert!(!sets("", "jit"));
    }

    /// JIT compilation is off on the store's connections — a claim's plan, estimated far above
    /// `jit_above_cost`, was compiled with inlining and optimization at each claim, ~600 ms
    /// (D121) — unless the URL's `options` set `jit`.
    #[tokio::test]
    async fn connections_run_without_jit_unless_asked() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        let schema = format!("jit_{}", std::process::id());
        let schema_url = create_test_schema(&url, &schema).await.unwrap();
        let jit = |u: String| async move {
            let store = PostgresStore::open(&u, PostgresOptions::default())
                .await
                .unwrap();
            let c = store.conn().await.unwrap();
            let row = c.query_one("SHOW jit", &[]).await.unwrap();
            let path = c.query_one("SHOW search_path", &[]).await.unwrap();
            (row.get::<_, String>(0), path.get::<_, String>(0))
        };
        let mine = (String::from("off"), schema.clone());
        assert_eq!(jit(schema_url).await, mine, "the store's own setting");
        let sep = if url.contains('?') { '&' } else { '?' };
        let asked = format!("{url}{sep}options=-csearch_path%3D{schema}%20-cjit%3Don");
        let theirs = (String::from("on"), schema.clone());
        assert_eq!(jit(asked).await, theirs, "the URL's setting");
        drop_test_schema(&url, &schema).await.unwrap();
    }

    /// Retries follow the SQLSTATE recorded when the driver error was mapped, not the text: a
    /// message that merely mentions a serialization failure's code is not retried.
    #[test]
    fn transaction_retries_follow_the_code_not_the_text() {
        let lookalike = StoreError::unavailable("[40001] could not serialize access");
        assert!(!is_retryable(&lookalike));
        let marked = StoreError::Unavailable(Failure::new("x").retry_transaction());
        assert!(is_retryable(&marked));
        assert!(!is_retryable(&StoreError::Internal(
            Failure::new("x").retry_transaction()
        )));
    }

    #[test]
    fn pool_params_are_taken_from_the_url() {
        let mut o = PostgresOptions::default();
        let (u, p) = take_params(
            "postgres://u@h/db?pool_size=40&connect_timeout=3&sslmode=require&application_name=x",
            &mut o,
        )
        .unwrap();
        assert_eq!(u, "postgres://u@h/db?application_name=x");
        assert_eq!(o.max_connections, 40);
        assert_eq!(p.ssl_mode, SslMode::Require);
        assert_eq!(p.connect_timeout, Some(Duration::from_secs(3)));
        let (u, _) = take_params("postgres://u@h/db?pool_size=4", &mut o).unwrap();
        assert_eq!(u, "postgres://u@h/db");
        assert!(take_params("postgres://u@h/db?pool_size=x", &mut o).is_err());
        assert_eq!(o.ingest_lanes, domain::defaults::POSTGRES_INGEST_LANES);
        let (u, _) = take_params("postgres://u@h/db?ingest_lanes=3&x=1", &mut o).unwrap();
        assert_eq!((u.as_str(), o.ingest_lanes), ("postgres://u@h/db?x=1", 3));
        assert!(take_params("postgres://u@h/db?ingest_lanes=-1", &mut o).is_err());
        assert!(take_params("postgres://u@h/db?sslmode=verify-everything", &mut o).is_err());
        assert_eq!(
            take_params("postgres://u@h/db", &mut o).unwrap().0,
            "postgres://u@h/db"
        );
    }
}
