//! Forward-only migrations for SQLite, embedded in the binary and applied in order at open.

use super::internal;
use crate::StoreError;
use rusqlite::Connection;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "enrollments",
        include_str!("../../migrations/sqlite/0001_enrollments.sql"),
    ),
    (
        2,
        "events",
        include_str!("../../migrations/sqlite/0002_events.sql"),
    ),
    (
        3,
        "webhooks",
        include_str!("../../migrations/sqlite/0003_webhooks.sql"),
    ),
    (
        4,
        "notification_payloads",
        include_str!("../../migrations/sqlite/0004_notification_payloads.sql"),
    ),
    (
        5,
        "claim_by_webhook",
        include_str!("../../migrations/sqlite/0005_claim_by_webhook.sql"),
    ),
    (
        6,
        "state_content_hash",
        include_str!("../../migrations/sqlite/0006_state_content_hash.sql"),
    ),
    (
        7,
        "drop_state_anniv_index",
        include_str!("../../migrations/sqlite/0007_drop_state_anniv_index.sql"),
    ),
    (
        8,
        "webhook_disabled_at",
        include_str!("../../migrations/sqlite/0008_webhook_disabled_at.sql"),
    ),
    (
        9,
        "idempotency_keys",
        include_str!("../../migrations/sqlite/0009_idempotency_keys.sql"),
    ),
    (
        10,
        "console_stats",
        include_str!("../../migrations/sqlite/0010_console_stats.sql"),
    ),
    (
        11,
        "v2_webhooks",
        include_str!("../../migrations/sqlite/0011_v2_webhooks.sql"),
    ),
    (
        12,
        "console_stats_per_webhook",
        include_str!("../../migrations/sqlite/0012_console_stats_per_webhook.sql"),
    ),
];

pub(super) fn run(conn: &mut Connection) -> Result<(), StoreError> {
    run_up_to(conn, i64::MAX)
}

/// Applies the migrations not yet applied, up to version `last` (tests build older schemas).
pub(super) fn run_up_to(conn: &mut Connection, last: i64) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .map_err(internal)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(internal)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(internal)?;
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
        tx.execute_batch(sql).map_err(internal)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, unixepoch())",
            rusqlite::params![version, name],
        )
        .map_err(internal)?;
    }
    tx.commit().map_err(internal)
}

#[cfg(test)]
mod tests {
    use crate::sqlite::{SqliteOptions, SqliteStore};
    use crate::upgrade_tests::{check_upgraded, pre_v2_rows, PROSPECT};

    /// A database from before v2 (migrations up to 9, with a v1 webhook, an enrollment and a
    /// pending notification) upgrades in place when the store opens it.
    #[tokio::test]
    async fn pre_v2_database_upgrades_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut c = rusqlite::Connection::open(&path).unwrap();
            super::run_up_to(&mut c, 9).unwrap();
            c.execute_batch(&pre_v2_rows(&format!("X'{PROSPECT}'"), false))
                .unwrap();
            c.execute_batch(
                "INSERT INTO notification_payloads (notification_id, payload) VALUES (1, '{}')",
            )
            .unwrap();
        }
        let store = SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default())
            .await
            .unwrap();
        check_upgraded(&store).await;
    }
}
