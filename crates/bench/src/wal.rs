//! The write-ahead log a PostgreSQL cluster has written (its insert position), so a run can
//! report the log bytes a measured request cost: a write that dirties a page for the first
//! time since a checkpoint logs the whole page, which a request rate alone does not show.

use anyhow::{Context, Result};

/// Bytes of WAL the cluster of `url` has inserted since its beginning (one connection of its
/// own, with the URL's TLS and options as the store's).
pub async fn position(url: &str) -> Result<i64> {
    let rows = store::postgres::test_rows(
        url,
        "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::BIGINT",
    )
    .await
    .with_context(|| format!("reading the WAL position of {}", store::redact_url(url)))?;
    let row = rows
        .first()
        .context("pg_current_wal_insert_lsn() returned no row")?;
    row.parse()
        .with_context(|| format!("a WAL position as bytes, got {row:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs with `PROSPECT_EVENTS_TEST_POSTGRES_URL` set.
    #[tokio::test]
    async fn a_write_moves_the_position_by_its_size() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        let from = position(&url).await.unwrap();
        store::postgres::test_rows(
            &url,
            "SELECT pg_logical_emit_message(false, 'bench', repeat('x', 100000))::TEXT",
        )
        .await
        .unwrap();
        let moved = position(&url).await.unwrap() - from;
        assert!(moved >= 100_000, "the WAL moved {moved} bytes");
    }
}
