//! The embedded SQLite backend (WAL; every answered write is fdatasync'ed).
//!
//! Writes go through one writer thread that commits in groups: the jobs queued meanwhile run in
//! one transaction. The writer commits without syncing (`synchronous=NORMAL`) and hands the
//! group's replies to a syncer thread, which fdatasyncs the WAL file and only then answers; while
//! it waits on the disk the writer already runs the next group, and one fdatasync covers every
//! group committed before it started. So one fsync per group (or fewer), and no write is answered
//! before it is on disk. Readers may see a group's rows up to one fdatasync before it is durable
//! (docs/decisions.md D10).
//!
//! Contract of a job: it may fail "cleanly" with `NotFound` or `Conflict` only before it has
//! written anything (decide, then write), so the others' writes commit unaffected. Any other
//! error may leave partial writes, so the whole group is rolled back and every job in it fails
//! with `Unavailable` (callers may retry). This avoids a SAVEPOINT per job, whose page copies
//! cost more than the work of a typical request.
//!
//! Checkpoints run mostly on their own thread and connection, so the writer rarely stalls
//! copying the WAL back into the database; the writer finishes a checkpoint itself only when
//! the WAL has grown past ~16 MiB, which keeps the WAL bounded under sustained load.
//! Reads use a small pool of connections on the blocking thread pool.

mod bulk;
mod enrollments;
mod idempotency;
mod ingest;
mod keys;
mod migrate;
mod outbox;
mod presence;
mod scan;
mod store;
mod webhooks;

use crate::{Failure, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Tuning knobs of the SQLite backend.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Read connections kept open.
    pub readers: usize,
    /// Most jobs committed in one transaction.
    pub max_group: usize,
    /// Pending write jobs before callers wait.
    pub queue: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            readers: domain::defaults::SQLITE_READERS,
            max_group: domain::defaults::SQLITE_MAX_GROUP,
            queue: domain::defaults::SQLITE_WRITE_QUEUE,
        }
    }
}

type JobResult = Result<Box<dyn Any + Send>, StoreError>;
type JobFn = Box<dyn FnOnce(&Connection) -> JobResult + Send>;

struct Job {
    run: JobFn,
    reply: oneshot::Sender<JobResult>,
}

pub struct SqliteStore {
    writer: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
    /// This process's shared lock on `<database>-lock` (see `presence`).
    presence: Arc<presence::Presence>,
    /// The checkpointer runs while this is alive.
    _alive: Arc<()>,
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `path`, runs migrations, starts the writer.
    /// `:memory:` is refused: readers and writer must share one database file.
    pub async fn open(path: &str, opts: SqliteOptions) -> Result<Self, StoreError> {
        let path = PathBuf::from(path);
        if path.as_os_str() == ":memory:" {
            return Err(StoreError::internal(
                "sqlite::memory: is not supported; use a file path",
            ));
        }
        let p = path.clone();
        let (writer_conn, readers, presence) = tokio::task::spawn_blocking(move || {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::internal(format!("creating {}: {e}", dir.display()))
                })?;
            }
            let presence = presence::Presence::announce(&p)?;
            let mut w = open_conn_with(&p, false, "NORMAL")?;
            migrate::run(&mut w)?;
            let readers = (0..opts.readers.max(1))
                .map(|_| open_conn(&p, true))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, StoreError>((w, readers, presence))
        })
        .await
        .map_err(|e| StoreError::internal(format!("open task: {e}")))??;

        let (tx, rx) = mpsc::channel(opts.queue.max(1));
        let max_group = opts.max_group.max(1);
        let checkpoint_conn = {
            let p = path.clone();
            tokio::task::spawn_blocking(move || open_conn(&p, false))
                .await
                .map_err(|e| StoreError::internal(format!("open task: {e}")))??
        };
        // The writer opened the database in WAL mode, so its `-wal` file exists now and stays
        // until the last connection closes; the writer keeps it open for the store's lifetime.
        let wal_path = {
            let mut s = path.clone().into_os_string();
            s.push("-wal");
            PathBuf::from(s)
        };
        let wal = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&wal_path)
            .map_err(|e| StoreError::internal(format!("opening {}: {e}", wal_path.display())))?;
        let alive = Arc::new(());
        let watch = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, watch))
            .map_err(|e| StoreError::internal(format!("spawning checkpointer: {e}")))?;
        let (sync_tx, sync_rx) = std::sync::mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let syncer_failed = failed.clone();
        std::thread::Builder::new()
            .name("sqlite-sync".into())
            .spawn(move || sync_loop(move || wal.sync_data(), sync_rx, syncer_failed))
            .map_err(|e| StoreError::internal(format!("spawning syncer: {e}")))?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx, sync_tx, failed, max_group))
            .map_err(|e| StoreError::internal(format!("spawning writer: {e}")))?;
        Ok(Self {
            writer: tx,
            readers: Arc::new(Mutex::new(readers)),
            path,
            presence: Arc::new(presence),
            _alive: alive,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn presence(&self) -> Arc<presence::Presence> {
        self.presence.clone()
    }

    /// Runs `f` inside the group-commit writer; resolves after the enclosing COMMIT. Inside a
    /// request fenced by an idempotency key, `f` runs only while the key is held.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        // A request carrying an idempotency key writes only while it holds the key, and marks
        // it executed in the same transaction (crate::idempotency).
        let fence = crate::idempotency::current_fence();
        let run: JobFn = Box::new(move |c| {
            if let Some(fence) = &fence {
                idempotency::check_fence(c, fence)?;
            }
            let out = f(c)?;
            if let Some(fence) = &fence {
                idempotency::mark_executed(c, fence)?;
            }
            Ok(Box::new(out) as Box<dyn Any + Send>)
        });
        self.writer
            .send(Job { run, reply })
            .await
            .map_err(|_| StoreError::unavailable("sqlite writer stopped"))?;
        let out = rx
            .await
            .map_err(|_| StoreError::unavailable("sqlite writer stopped"))??;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::internal("writer returned an unexpected type"))
    }

    /// Runs `f` on a pooled read connection on the blocking pool.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().map_err(|_| poisoned())?.pop();
            let conn = match conn {
                Some(c) => c,
                None => open_conn(&path, true)?,
            };
            let out = f(&conn);
            let mut guard = pool.lock().map_err(|_| poisoned())?;
            if guard.len() < 16 {
                guard.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::internal(format!("read task: {e}")))?
    }
}

fn poisoned() -> StoreError {
    StoreError::internal("reader pool lock poisoned")
}

/// Bytes of the database file each reader maps (~2 GiB; larger files are read normally past it).
const READER_MMAP_BYTES: i64 = 0x7fff_0000; // SQLITE_MAX_MMAP_SIZE, the bundled build's limit

/// Opens a connection; the writer's commits do not sync (the syncer thread does that, see the
/// module doc), every other connection is `synchronous=FULL`. Checkpoints sync the WAL and the
/// database file in either mode, so nothing unsynced is ever copied or overwritten.
fn open_conn(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    open_conn_with(path, read_only, "FULL")
}

fn open_conn_with(path: &Path, read_only: bool, sync: &str) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(internal)?;
    conn.busy_handler(Some(wait_for_lock)).map_err(internal)?;
    if !read_only {
        // WAL lets readers run beside the writer. Checkpoints are mostly the checkpointer
        // thread's job.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(internal)?;
        // The checkpointer thread copies the WAL continuously, but under sustained writes it
        // never catches up with the end, and the WAL only restarts from its beginning once fully
        // copied. So the writer also checkpoints past ~16 MiB of WAL: little is left to copy by
        // then, and with no writer running concurrently it completes, bounding the WAL.
        conn.pragma_update(None, "wal_autocheckpoint", 4000)
            .map_err(internal)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(internal)?;
    }
    // The writer keeps a larger page cache (hot prospect state and indexes); readers less.
    let cache_kib = if read_only { 16_384 } else { 65_536 };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync};
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{cache_kib};"
    ))
    .map_err(internal)?;
    if read_only {
        // Readers map the database file: a page read is a memory access instead of a pread
        // into SQLite's page cache (whose lookups and shared mutex dominated multi-id event
        // queries). Address space only; the kernel's page cache backs it either way.
        conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)
            .map_err(internal)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// How long a connection waits for a lock another process holds before failing with "database
/// is locked" (then a 503).
const BUSY_TIMEOUT_MS: i32 = 5_000;

/// The busy handler of every connection: tries again every millisecond, for about
/// `BUSY_TIMEOUT_MS`. SQLite's own (`busy_timeout`) sleeps up to 100 ms between tries, so a
/// waiter could miss the short gaps the CLI's bulk ingestion leaves between its transactions
/// (D42) and wait for several of them.
fn wait_for_lock(tries: i32) -> bool {
    if tries >= BUSY_TIMEOUT_MS {
        return false;
    }
    std::thread::sleep(std::time::Duration::from_millis(1));
    true
}

/// Copies the WAL back into the database in the background. PASSIVE never blocks the writer
/// or readers (FULL/RESTART/TRUNCATE would stall writes); once everything is copied the writer
/// restarts the WAL from its beginning, and `journal_size_limit` trims the file then.
fn checkpoint_loop(conn: Connection, alive: std::sync::Weak<()>) {
    while alive.strong_count() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "background checkpoint skipped");
        }
    }
    // Final checkpoint on close; the WAL is valid either way.
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::debug!(error = %e, "final checkpoint skipped");
    }
}

/// A committed group's replies, waiting for the fdatasync that makes them durable.
type Committed = Vec<(oneshot::Sender<JobResult>, JobResult)>;

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    syncer: std::sync::mpsc::Sender<Committed>,
    failed: Arc<AtomicBool>,
    max_group: usize,
) {
    let mut group: Vec<Job> = Vec::with_capacity(max_group);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        if failed.load(Ordering::Acquire) {
            fail_all(
                group.drain(..),
                "sqlite: syncing the WAL failed earlier; restart the service",
            );
            continue;
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            fail_all(group.drain(..), &format!("begin: {e}"));
            continue;
        }
        let mut replies = Vec::with_capacity(group.len());
        let mut dirty_failure = None;
        for job in group.drain(..) {
            let res = if dirty_failure.is_none() {
                (job.run)(&conn)
            } else {
                Err(StoreError::unavailable("group rolled back"))
            };
            if let Err(e) = &res {
                if !matches!(e, StoreError::NotFound | StoreError::Conflict(_))
                    && dirty_failure.is_none()
                {
                    dirty_failure = Some(e.to_string());
                }
            }
            replies.push((job.reply, res));
        }
        let commit = match &dirty_failure {
            None => conn.execute_batch("COMMIT"),
            Some(e) => {
                tracing::error!(error = %e, "a write failed mid-group; rolling back the group");
                Err(rusqlite::Error::InvalidQuery)
            }
        };
        if let Err(e) = commit {
            if dirty_failure.is_none() {
                tracing::error!(error = %e, "sqlite group commit failed; rolling back the group");
            }
            // Best effort: the transaction may already be gone.
            let _ = conn.execute_batch("ROLLBACK");
            let msg = match &dirty_failure {
                Some(f) => format!("group rolled back after: {f}"),
                None => format!("commit: {e}"),
            };
            for (reply, _) in replies {
                let _ = reply.send(Err(StoreError::unavailable(msg.clone())));
            }
            continue;
        }
        // Even a group that wrote nothing goes through the syncer: its answers may rest on
        // rows of earlier groups that are not yet durable, and the syncer answers in order.
        if let Err(std::sync::mpsc::SendError(replies)) = syncer.send(replies) {
            for (reply, _) in replies {
                let _ = reply.send(Err(StoreError::unavailable("sqlite syncer stopped")));
            }
        }
    }
}

fn fail_all(jobs: impl Iterator<Item = Job>, msg: &str) {
    for job in jobs {
        // The receiver may have gone away (client disconnected); nothing to do then.
        let _ = job
            .reply
            .send(Err(StoreError::unavailable(msg.to_string())));
    }
}

/// Makes committed groups durable and answers them: takes every group committed so far, one
/// `sync` (fdatasync of the WAL file), then all their replies. A failed fdatasync may have
/// dropped dirty pages (the kernel does not retry), so the store refuses all later writes.
fn sync_loop(
    mut sync: impl FnMut() -> std::io::Result<()>,
    rx: std::sync::mpsc::Receiver<Committed>,
    failed: Arc<AtomicBool>,
) {
    let mut batch: Vec<Committed> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        batch.extend(rx.try_iter());
        let synced = if failed.load(Ordering::Acquire) {
            Err("an earlier fdatasync failed".to_string())
        } else {
            sync().map_err(|e| e.to_string())
        };
        if let Err(e) = &synced {
            tracing::error!(error = %e, "fdatasync of the SQLite WAL failed; refusing writes");
            failed.store(true, Ordering::Release);
        }
        for committed in batch.drain(..) {
            for (reply, res) in committed {
                let res = match &synced {
                    Ok(()) => res,
                    Err(e) => Err(StoreError::unavailable(format!("fdatasync: {e}"))),
                };
                // A dropped receiver means the caller went away; the write is durable anyway.
                let _ = reply.send(res);
            }
        }
    }
}

pub(crate) fn internal(e: rusqlite::Error) -> StoreError {
    let busy = matches!(
        &e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
    );
    let failure = Failure::caused_by(e.to_string(), e);
    if busy {
        StoreError::Unavailable(failure)
    } else {
        StoreError::Internal(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store error keeps the driver error it came from, as its source.
    #[test]
    fn errors_keep_their_cause() {
        use std::error::Error;
        let e = internal(rusqlite::Error::QueryReturnedNoRows);
        assert!(matches!(e, StoreError::Internal(_)));
        let failure = e.source().expect("the failure");
        let cause = failure.source().expect("the driver error");
        assert!(matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::QueryReturnedNoRows)
        ));
        assert_eq!(e.to_string(), "database error: Query returned no rows");
    }

    fn committed(value: u8) -> (Committed, oneshot::Receiver<JobResult>) {
        let (tx, rx) = oneshot::channel();
        (vec![(tx, Ok(Box::new(value) as Box<dyn Any + Send>))], rx)
    }

    fn run_syncer(
        sync: impl FnMut() -> std::io::Result<()> + Send + 'static,
        groups: Vec<Committed>,
    ) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let f = failed.clone();
        for g in groups {
            tx.send(g).unwrap();
        }
        drop(tx);
        std::thread::spawn(move || sync_loop(sync, rx, f))
            .join()
            .unwrap();
        failed.load(Ordering::Acquire)
    }

    #[test]
    fn the_syncer_answers_only_after_a_successful_fdatasync() {
        let (group, reply) = committed(7);
        let reply = Arc::new(Mutex::new(reply));
        let seen = reply.clone();
        let answered_before_sync = Arc::new(AtomicBool::new(true));
        let before = answered_before_sync.clone();
        let path = std::env::temp_dir().join(format!("pe-syncer-test-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let sync = move || {
            before.store(seen.lock().unwrap().try_recv().is_ok(), Ordering::Release);
            file.sync_data()
        };
        assert!(!run_syncer(sync, vec![group]));
        let _ = std::fs::remove_file(&path);
        assert!(!answered_before_sync.load(Ordering::Acquire));
        let answer = reply.lock().unwrap().try_recv().unwrap().unwrap();
        assert_eq!(*answer.downcast::<u8>().unwrap(), 7);
    }

    #[test]
    fn a_failed_fdatasync_fails_the_answers_and_marks_the_store_failed() {
        // fdatasync of /dev/null fails (EINVAL on Linux): a stand-in for a failing disk.
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(file.sync_data().is_err(), "this platform syncs /dev/null");
        let (first, reply1) = committed(1);
        let (second, reply2) = committed(2);
        assert!(run_syncer(move || file.sync_data(), vec![first, second]));
        for reply in [reply1, reply2] {
            assert!(matches!(
                reply.blocking_recv().unwrap(),
                Err(StoreError::Unavailable(_))
            ));
        }
    }
}
