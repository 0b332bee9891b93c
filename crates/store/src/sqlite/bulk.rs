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
//! `super::presence`), a transaction is also committed before it would outlast
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

/// With another process on the database: how long a transaction may stay open. Batches are
/// then applied in pieces of `SHARED_PIECE` snapshots, and one more piece goes into the
/// transaction only if, taking as long as the last one, it ends within the budget.
const SHARED_TX_BUDGET: Duration = Duration::from_millis(250);
/// About 20 ms of work on an idle machine here (a 40,000-line batch is ~150 ms).
const SHARED_PIECE: usize = 5_000;
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
    /// Snapshots applied since the last COMMIT.
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
            .ok_or_else(|| StoreError::internal("bulk ingestion connection lost"))?;
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let out = f(&conn);
            (conn, out)
        })
        .await
        .map_err(|e| StoreError::internal(format!("bulk ingestion task: {e}")))?;
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
        batch.check_storable()?;
        // Whether another process waits for the lock cannot be seen; that it could is enough.
        let shared = self.presence.others_present();
        let pieces = if shared {
            batch.split_grouped(SHARED_PIECE)
        } else {
            vec![batch]
        };
        let (mut began, mut pending, commit_every) = (self.began, self.pending, self.commit_every);
        let res = self
            .with_conn(move |c| {
                let mut counts = IngestCounts::default();
                for piece in pieces {
                    let n = piece.len();
                    let start = match began {
                        Some(t) => t,
                        None => {
                            c.execute_batch("BEGIN IMMEDIATE").map_err(internal)?;
                            Instant::now()
                        }
                    };
                    began = Some(start);
                    let t = Instant::now();
                    counts += super::ingest::ingest_snapshots(c, piece, opts)?;
                    pending += n;
                    // Shared: one more piece as long as this one must still end in the budget.
                    let over = shared && start.elapsed() + t.elapsed() >= SHARED_TX_BUDGET;
                    if pending >= commit_every || over {
                        c.execute_batch("COMMIT").map_err(internal)?;
                        (began, pending) = (None, 0);
                        if shared {
                            std::thread::sleep(SHARED_YIELD);
                        }
                    }
                }
                Ok((counts, began, pending))
            })
            .await;
        match res {
            Ok((counts, began, pending)) => {
                (self.began, self.pending) = (began, pending);
                Ok(counts)
            }
            Err(e) => {
                // Everything since the last COMMIT is undone; the caller stops here.
                (self.began, self.pending) = (None, 0);
                let _ = self
                    .with_conn(|c| c.execute_batch("ROLLBACK").map_err(internal))
                    .await;
                Err(e)
            }
        }
    }

    async fn finish(mut self: Box<Self>) -> StoreResult<()> {
        let commit = self.began.take().is_some();
        self.pending = 0;
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
