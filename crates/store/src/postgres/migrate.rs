//! Forward-only migrations for PostgreSQL, embedded in the binary and applied in order at open.
//! One transaction under `pg_advisory_xact_lock`, so replicas starting together apply each
//! migration exactly once (the others wait, then find nothing left to do).

use super::pg;
use crate::StoreError;
use deadpool_postgres::Object;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "enrollments",
        include_str!("../../migrations/postgres/0001_enrollments.sql"),
    ),
    (
        2,
        "events",
        include_str!("../../migrations/postgres/0002_events.sql"),
    ),
    (
        3,
        "webhooks",
        include_str!("../../migrations/postgres/0003_webhooks.sql"),
    ),
    (
        4,
        "claim_by_webhook",
        include_str!("../../migrations/postgres/0004_claim_by_webhook.sql"),
    ),
    (
        5,
        "webhook_disabled_at",
        include_str!("../../migrations/postgres/0005_webhook_disabled_at.sql"),
    ),
    (
        6,
        "idempotency_keys",
        include_str!("../../migrations/postgres/0006_idempotency_keys.sql"),
    ),
    (
        7,
        "console_stats",
        include_str!("../../migrations/postgres/0007_console_stats.sql"),
    ),
    (
        8,
        "v2_webhooks",
        include_str!("../../migrations/postgres/0008_v2_webhooks.sql"),
    ),
    (
        9,
        "console_stats_per_webhook",
        include_str!("../../migrations/postgres/0009_console_stats_per_webhook.sql"),
    ),
    (
        10,
        "delivery_hot_claims",
        include_str!("../../migrations/postgres/0010_delivery_hot_claims.sql"),
    ),
    (
        11,
        "state_hot_updates",
        include_str!("../../migrations/postgres/0011_state_hot_updates.sql"),
    ),
    (
        12,
        "state_content_hash",
        include_str!("../../migrations/postgres/0012_state_content_hash.sql"),
    ),
];

/// Applies the migrations not yet applied, up to version `last` (tests build older schemas).
pub(super) async fn run_up_to(conn: &mut Object, last: i64) -> Result<(), StoreError> {
    let tx = conn.transaction().await.map_err(pg)?;
    // The key is per database and schema (tests use one schema each).
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(
            current_database() || '/' || current_schema() || '/schema_migrations', 0))",
        &[],
    )
    .await
    .map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await
    .map_err(pg)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > newest {
        return Err(StoreError::internal(format!(
            "database schema version {current} is newer than this binary ({newest})"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current && m.0 <= last) {
        tracing::info!(
            migration.version = version,
            migration.name = name,
            "applying migration"
        );
        tx.batch_execute(sql).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)",
            &[version, name],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

#[cfg(test)]
mod tests {
    use crate::postgres::{create_test_schema, drop_test_schema, PostgresOptions, PostgresStore};
    use crate::upgrade_tests::{check_upgraded, pre_v2_rows, PROSPECT};

    /// A database from before v2 (migrations up to 6, with a v1 webhook, an enrollment and a
    /// pending notification) upgrades in place when the store opens it. Runs with
    /// `PROSPECT_EVENTS_TEST_POSTGRES_URL` set.
    #[tokio::test]
    async fn pre_v2_database_upgrades_in_place() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        let schema = format!("upgrade_v2_{}", std::process::id());
        let schema_url = create_test_schema(&url, &schema).await.unwrap();
        {
            let old = PostgresStore::open_up_to(&schema_url, PostgresOptions::default(), 6)
                .await
                .unwrap();
            let c = old.conn().await.unwrap();
            c.batch_execute(&pre_v2_rows(&format!("'\\x{PROSPECT}'::BYTEA"), true))
                .await
                .unwrap();
        }
        let store = PostgresStore::open(&schema_url, PostgresOptions::default())
            .await
            .unwrap();
        check_upgraded(&store).await;
        drop(store);
        drop_test_schema(&url, &schema).await.unwrap();
    }
}
