//! Group recording of delivery attempts: attempts that finish while a batch is being written
//! queue up and go together in the next one (`Store::record_attempts`: one transaction, and on
//! PostgreSQL a few set statements whatever the count), instead of a transaction each. Each
//! attempt still waits until its own record is committed (or failed), so nothing about leases or
//! at-least-once changes: a record that fails leaves its notification to its lease.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use store::{AttemptRecord, DynStore, StoreError, StoreResult};
use tokio::sync::oneshot;

type Written = Pin<Box<dyn Future<Output = StoreResult<()>> + Send>>;
/// Writes one batch: `Store::record_attempts` (tests count the calls).
type WriteBatch = Arc<dyn Fn(Vec<AttemptRecord>) -> Written + Send + Sync>;

/// Most attempts written in one batch.
pub(crate) const MAX_BATCH: usize = 512;

type Waiter = oneshot::Sender<Result<(), String>>;

/// Batches written at once: while one waits for its commit, the next is already on its way
/// (the database flushes both commits' log together).
pub(crate) const FLUSHERS: usize = 2;

#[derive(Default)]
struct Queue {
    records: Vec<(AttemptRecord, Waiter)>,
    /// Flusher tasks running (each takes whatever is queued until nothing is left).
    flushers: usize,
}

/// Shared by every attempt of one worker; cheap to clone.
#[derive(Clone)]
pub(crate) struct Recorder {
    write: WriteBatch,
    queue: Arc<Mutex<Queue>>,
}

impl Recorder {
    pub(crate) fn new(store: DynStore) -> Self {
        Self::writing_with(Arc::new(move |records| {
            let store = store.clone();
            Box::pin(async move { store.record_attempts(records).await })
        }))
    }

    fn writing_with(write: WriteBatch) -> Self {
        Self {
            write,
            queue: Default::default(),
        }
    }

    /// Queues the record and waits until the batch holding it is committed; the error text
    /// when it failed.
    pub(crate) async fn record(&self, record: AttemptRecord) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        let start_flusher = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.records.push((record, tx));
            let start = q.flushers < FLUSHERS;
            q.flushers += usize::from(start);
            start
        };
        if start_flusher {
            // A task of its own: cancelling the attempt that started it must not strand the
            // records queued behind it.
            tokio::spawn(self.clone().flush());
        }
        rx.await
            .unwrap_or_else(|_| Err("the attempt recorder stopped".into()))
    }

    /// Writes batches until the queue is empty, answering each batch's waiters.
    async fn flush(self) {
        let mut out = FlusherOut {
            queue: self.queue.clone(),
            counted_out: false,
        };
        while let Some(batch) = self.next_batch(&mut out) {
            let (records, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let copy = (records.len() > 1).then(|| records.clone());
            let result = (self.write)(records).await;
            match (result, copy) {
                // One record the database refuses must not fail the others (they would be
                // sent again after their leases): each is written alone and learns its own
                // result. Not when the database is unavailable: that fails them all alike.
                (Err(e), Some(records)) if !matches!(e, StoreError::Unavailable(_)) => {
                    for (record, w) in records.into_iter().zip(waiters) {
                        let alone = (self.write)(vec![record]).await;
                        let _ = w.send(alone.map_err(|e| e.to_string()));
                    }
                }
                (result, _) => {
                    let result = result.map_err(|e| e.to_string());
                    for w in waiters {
                        // The attempt may have been cancelled meanwhile; nobody to tell then.
                        let _ = w.send(result.clone());
                    }
                }
            }
        }
    }

    /// The oldest queued records (at most [`MAX_BATCH`]), or None (and this flusher stops)
    /// when nothing is queued.
    fn next_batch(&self, out: &mut FlusherOut) -> Option<Vec<(AttemptRecord, Waiter)>> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.records.is_empty() {
            // Under the lock that found the queue empty: a record queued after this starts a
            // new flusher.
            q.flushers -= 1;
            out.counted_out = true;
            return None;
        }
        let take = q.records.len().min(MAX_BATCH);
        let rest = q.records.split_off(take);
        Some(std::mem::replace(&mut q.records, rest))
    }
}

/// Counts a flusher out if it ends without finding the queue empty (a panic in the store), so
/// that later records still start flushers.
struct FlusherOut {
    queue: Arc<Mutex<Queue>>,
    counted_out: bool,
}

impl Drop for FlusherOut {
    fn drop(&mut self) {
        if !self.counted_out {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.flushers -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use store::{AttemptOutcome, Scope};

    fn record(row: i64) -> AttemptRecord {
        AttemptRecord {
            row,
            lease_until: time::OffsetDateTime::UNIX_EPOCH,
            scope: Scope {
                tenant: domain::TenantId("t".into()),
                partner: domain::PartnerId("p".into()),
            },
            webhook_id: store::LEGACY_WEBHOOK_ID.into(),
            generation: 1,
            attempted_at: 0,
            status_code: Some(200),
            error: None,
            latency_ms: 1,
            response_body: String::new(),
            outcome: AttemptOutcome::Delivered,
            disable_after_ms: 1,
        }
    }

    #[tokio::test]
    async fn a_panicking_batch_fails_its_attempts_and_later_ones_are_still_recorded() {
        let rec = Recorder::writing_with(Arc::new(|records: Vec<AttemptRecord>| {
            Box::pin(async move {
                assert!(records.iter().all(|r| r.row != 7), "store bug");
                Ok(())
            })
        }));
        for _ in 0..FLUSHERS + 1 {
            assert!(rec.record(record(7)).await.is_err());
        }
        let later = tokio::time::timeout(std::time::Duration::from_secs(5), rec.record(record(8)));
        assert!(later.await.expect("recorded, not stranded").is_ok());
    }

    /// A recorder whose batches take 5 ms (so attempts queue up meanwhile), failing those
    /// holding row `fail_row` as the database unavailable; returns the rows written per batch.
    fn slow_recorder(fail_row: i64) -> (Recorder, Arc<Mutex<Vec<Vec<i64>>>>) {
        failing_recorder(fail_row, || StoreError::unavailable("boom"))
    }

    fn failing_recorder(
        fail_row: i64,
        error: fn() -> StoreError,
    ) -> (Recorder, Arc<Mutex<Vec<Vec<i64>>>>) {
        let batches: Arc<Mutex<Vec<Vec<i64>>>> = Default::default();
        let seen = batches.clone();
        let rec = Recorder::writing_with(Arc::new(move |records: Vec<AttemptRecord>| {
            let seen = seen.clone();
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                let rows: Vec<i64> = records.iter().map(|r| r.row).collect();
                let failed = rows.contains(&fail_row);
                seen.lock().unwrap().push(rows);
                if failed {
                    Err(error())
                } else {
                    Ok(())
                }
            })
        }));
        (rec, batches)
    }

    #[tokio::test]
    async fn concurrent_attempts_share_batches_and_each_learns_its_batch_result() {
        let (rec, batches) = slow_recorder(-1);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..(MAX_BATCH as i64 + 300) {
            let rec = rec.clone();
            set.spawn(async move { rec.record(record(i)).await });
        }
        let answered = AtomicUsize::new(0);
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
            answered.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(answered.load(Ordering::Relaxed), MAX_BATCH + 300);
        let batches = batches.lock().unwrap().clone();
        let mut rows: Vec<i64> = batches.iter().flatten().copied().collect();
        rows.sort_unstable();
        assert_eq!(rows, (0..(MAX_BATCH as i64 + 300)).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| b.len() <= MAX_BATCH));
        assert!(batches.len() < 20, "{} batches", batches.len());

        // A failed batch fails its own attempts only (7, 8 and 9 are queued before either
        // flusher runs: the first takes all three); once the queue ran dry a later attempt
        // starts a new flusher.
        let (rec, batches) = slow_recorder(7);
        let (a, b, c) = tokio::join!(
            rec.record(record(7)),
            rec.record(record(8)),
            rec.record(record(9))
        );
        assert!(a.is_err() && b.is_err() && c.is_err());
        assert!(rec.record(record(10)).await.is_ok());
        let (d, e) = tokio::join!(rec.record(record(7)), rec.record(record(11)));
        assert!(d.is_err() && e.is_err());
        assert_eq!(
            *batches.lock().unwrap(),
            vec![vec![7, 8, 9], vec![10], vec![7, 11]]
        );
    }

    #[tokio::test]
    async fn a_record_the_database_refuses_fails_alone() {
        // A batch refused for one record (e.g. text PostgreSQL cannot store) is written again
        // record by record: only that record's attempt learns the failure.
        let (rec, batches) = failing_recorder(7, || StoreError::internal("invalid byte sequence"));
        let (a, b) = tokio::join!(rec.record(record(7)), rec.record(record(8)));
        assert!(a.is_err(), "{a:?}");
        assert!(b.is_ok(), "{b:?}");
        assert_eq!(*batches.lock().unwrap(), vec![vec![7, 8], vec![7], vec![8]]);
    }
}
