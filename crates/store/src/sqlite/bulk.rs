//! Bulk ingestion for a process that has the database to itself (the CLI's `ingest`): its own
//! connection, one transaction per ~`commit_every` snapshots instead of one per batch.
//!
//! Why: a batch in prospect order touches most leaf pages of `prospect_state`, and each commit
//! writes every dirty page to the WAL (and a checkpoint writes it again). Committing every
//! `commit_every` snapshots (the CLI: 500,000, over a dozen batches) writes each page that much
//! less often, while only the batches in flight are held in memory (docs/decisions.md D19).
//! The connection is `synchronous=FULL`, so a finished session is durable; other writers wait
//! (busy timeout) while a transaction is open, which is why the server never uses this mode.
//! When another process has the database open (a running `serve`, seen through
//! `super::presence`), a transaction is also committed once it has been open
//! `SHARED_TX_BUDGET`, and the session pauses `SHARED_YIELD` after each commit so that the
//! other process's writer takes the lock in between: its writes then wait a fraction of a
//! second instead of a whole `commit_every` transaction (docs/decisions.md D42).

use super::presence::Presence;
use super::{internal, open_conn};
use crate::model::{IngestCounts, IngestOptions};
use crate::{BulkIngest, SnapshotBatch, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// With another process on the database: longest a transaction stays open before the batch
/// that ends it (checked between batches; a 40,000-line batch takes ~150 ms here).
const SHARED_TX_BUDGET: Duration = Duration::from_millis(250);
/// With another process on the database: the pause after each commit, long enough for its
/// writer (which polls the lock every millisecond) to take the lock.
const SHARED_YIELD: Duration = Duration::from_millis(10);

/// The store's checkpointer thread copies the WAL into the database while this session writes
/// (on the other core); the session itself only checkpoints once the WAL has grown past this
/// (256 MiB), to bound it — by then little is left to copy.
const BULK_AUTOCHECKPOINT_PAGES: i64 = 65_536;

pub(super) struct SqliteBulk {
    /// Taken while a blocking task uses it; `None` afterwards only if that task panicked.
    conn: Option<Connection>,
    commit_every: usize,
    /// Snapshots applied since the last COMMIT (0: no transaction open).
    pending: usize,
    /// When the open transaction began (None: none open).
    began: Option<Instant>,
    /// Tells whether another process shares the database.
    presence: Arc<Presence>,
}

impl SqliteBulk {
    pub(super) fn open(
        path: &Path,
        commit_every: usize,
        presence: Arc<Presence>,
    ) -> StoreResult<Self> {
        let conn = open_conn(path, false)?;
        conn.pragma_update(None, "wal_autocheckpoint", BULK_AUTOCHECKPOINT_PAGES)
            .map_err(internal)?;
        Ok(Self {
            conn: Some(conn),
            commit_every: commit_every.max(1),
            pending: 0,
            began: None,
            presence,
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with_conn<T, F>(&mut self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| StoreError::Internal("bulk ingestion connection lost".into()))?;
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let out = f(&conn);
            (conn, out)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("bulk ingestion task: {e}")))?;
        self.conn = Some(conn);
        out
    }
}

#[async_trait]
impl BulkIngest for SqliteBulk {
    async fn apply(
        &mut self,
        batch: SnapshotBatch,
        opts: IngestOptions,
    ) -> StoreResult<IngestCounts> {
        let n = batch.len();
        let by_count = self.pending + n >= self.commit_every;
        // Another process waiting for the lock is only known to be possible, not that it
        // waits; its presence is enough to bound the transaction.
        let budget = self.presence.others_present().then_some(SHARED_TX_BUDGET);
        let began = self.began;
        let res = self
            .with_conn(move |c| {
                let began = match began {
                    Some(t) => t,
                    None => {
                        c.execute_batch("BEGIN IMMEDIATE").map_err(internal)?;
                        Instant::now()
                    }
                };
                let counts = super::events::ingest(c, batch, opts)?;
                let commit = by_count || budget.is_some_and(|b| began.elapsed() >= b);
                if commit {
                    c.execute_batch("COMMIT").map_err(internal)?;
                }
                Ok((counts, began, commit))
            })
            .await;
        match res {
            Ok((counts, _, true)) => {
                self.pending = 0;
                self.began = None;
                if budget.is_some() {
                    tokio::time::sleep(SHARED_YIELD).await;
                }
                Ok(counts)
            }
            Ok((counts, began, false)) => {
                self.pending += n;
                self.began = Some(began);
                Ok(counts)
            }
            Err(e) => {
                // Everything since the last COMMIT is undone; the caller stops here.
                self.pending = 0;
                self.began = None;
                let _ = self
                    .with_conn(|c| c.execute_batch("ROLLBACK").map_err(internal))
                    .await;
                Err(e)
            }
        }
    }

    async fn finish(mut self: Box<Self>) -> StoreResult<()> {
        let commit = std::mem::take(&mut self.pending) > 0;
        self.began = None;
        self.with_conn(move |c| {
            if commit {
                c.execute_batch("COMMIT").map_err(internal)?;
            }
            // Copy what the checkpointer has not yet and leave a short WAL behind. Best effort:
            // with another process reading or writing, it is left to later checkpoints.
            if let Err(e) = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "final bulk checkpoint skipped");
            }
            Ok(())
        })
        .await
    }
}
