//! Group writes of the delivery worker: attempt records and lease changes that arrive while a
//! batch is being written queue up and go together in the next one (`Store::record_attempts`,
//! `Store::change_leases`: one transaction, and on PostgreSQL a few set statements whatever the
//! count), instead of a transaction each. Each caller still waits until its own item is
//! committed (or failed) and learns its own answer, so nothing about leases or at-least-once
//! changes: a record that fails leaves its notification to its lease.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use store::{AttemptRecord, DynStore, LeaseChange, StoreError, StoreResult};
use tokio::sync::oneshot;

/// One batch written: an answer per item, in order.
type Written<R> = Pin<Box<dyn Future<Output = StoreResult<Vec<R>>> + Send>>;
/// Writes one batch (tests count the calls).
type WriteBatch<T, R> = Arc<dyn Fn(Vec<T>) -> Written<R> + Send + Sync>;

/// Most items written in one batch.
pub(crate) const MAX_BATCH: usize = 512;

type Waiter<R> = oneshot::Sender<Result<R, String>>;

/// Attempt-record batches written at once: while one waits for its commit, the next is
/// already on its way (the database flushes both commits' log together).
pub(crate) const FLUSHERS: usize = 2;

/// Lease-change batches written at once: renewals and hand-backs are rare next to records (a
/// claim that waited long for its send slot, a shutdown), so one batch at a time.
pub(crate) const LEASE_FLUSHERS: usize = 1;

/// Records attempts in batches (`Store::record_attempts`).
pub(crate) type Recorder = Batcher<AttemptRecord, ()>;

/// Renews and hands back leases in batches (`Store::change_leases`): the answer says whether
/// the lease was still the claim's own.
pub(crate) type Leases = Batcher<LeaseChange, bool>;

impl Recorder {
    pub(crate) fn new(store: DynStore) -> Self {
        Self::writing_with(
            FLUSHERS,
            Arc::new(move |records: Vec<AttemptRecord>| {
                let store = store.clone();
                Box::pin(async move {
                    let n = records.len();
                    store.record_attempts(records).await.map(|()| vec![(); n])
                })
            }),
        )
    }
}

impl Leases {
    pub(crate) fn new(store: DynStore) -> Self {
        Self::writing_with(
            LEASE_FLUSHERS,
            Arc::new(move |changes: Vec<LeaseChange>| {
                let store = store.clone();
                Box::pin(async move { store.change_leases(changes).await })
            }),
        )
    }
}

struct Queue<T, R> {
    items: Vec<(T, Waiter<R>)>,
    /// Flusher tasks running (each takes whatever is queued until nothing is left).
    flushers: usize,
}

/// Shared by every attempt of one worker; cheap to clone.
pub(crate) struct Batcher<T, R> {
    write: WriteBatch<T, R>,
    queue: Arc<Mutex<Queue<T, R>>>,
    /// Most batches written at once.
    max_flushers: usize,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            write: self.write.clone(),
            queue: self.queue.clone(),
            max_flushers: self.max_flushers,
        }
    }
}

impl<T: Clone + Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Writes batches with `write`, at most `flushers` at once.
    pub(crate) fn writing_with(flushers: usize, write: WriteBatch<T, R>) -> Self {
        Self {
            write,
            queue: Arc::new(Mutex::new(Queue {
                items: Vec::new(),
                flushers: 0,
            })),
            max_flushers: flushers.max(1),
        }
    }

    /// Queues the item and waits until the batch holding it is committed: its answer, or the
    /// error text when the batch failed.
    pub(crate) async fn submit(&self, item: T) -> Result<R, String> {
        let (tx, rx) = oneshot::channel();
        let start_flusher = {
            let mut q = self.lock();
            q.items.push((item, tx));
            let start = q.flushers < self.max_flushers;
            q.flushers += usize::from(start);
            start
        };
        if start_flusher {
            // A task of its own: cancelling the caller that started it must not strand the
            // items queued behind it.
            tokio::spawn(self.clone().flush());
        }
        rx.await
            .unwrap_or_else(|_| Err("the batch writer stopped".into()))
    }

    /// Writes batches until the queue is empty, answering each batch's waiters.
    async fn flush(self) {
        let mut out = FlusherOut {
            queue: self.queue.clone(),
            counted_out: false,
        };
        while let Some(batch) = self.next_batch(&mut out) {
            let (items, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let copy = (items.len() > 1).then(|| items.clone());
            let result = self.write_batch(items).await;
            match (result, copy) {
                // One item the database refuses must not fail the others (their notifications
                // would be sent again after their leases): each is written alone and learns its
                // own result. Not when the database is unavailable: that fails them all alike.
                (Err(e), Some(items)) if !matches!(e, StoreError::Unavailable(_)) => {
                    for (item, w) in items.into_iter().zip(waiters) {
                        let alone = self.write_batch(vec![item]).await;
                        let answer = alone.map(|mut a| a.remove(0));
                        let _ = w.send(answer.map_err(|e| e.to_string()));
                    }
                }
                (Ok(answers), _) => {
                    for (w, answer) in waiters.into_iter().zip(answers) {
                        // The caller may have been cancelled meanwhile; nobody to tell then.
                        let _ = w.send(Ok(answer));
                    }
                }
                (Err(e), _) => {
                    let e = e.to_string();
                    for w in waiters {
                        let _ = w.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One write, checked to answer every item.
    async fn write_batch(&self, items: Vec<T>) -> StoreResult<Vec<R>> {
        let n = items.len();
        let answers = (self.write)(items).await?;
        if answers.len() != n {
            return Err(StoreError::internal(format!(
                "a batch of {n} was answered {} times",
                answers.len()
            )));
        }
        Ok(answers)
    }

    /// The oldest queued items (at most [`MAX_BATCH`]), or None (and this flusher stops) when
    /// nothing is queued.
    fn next_batch(&self, out: &mut FlusherOut<T, R>) -> Option<Vec<(T, Waiter<R>)>> {
        let mut q = self.lock();
        if q.items.is_empty() {
            // Under the lock that found the queue empty: an item queued after this starts a
            // new flusher.
            q.flushers -= 1;
            out.counted_out = true;
            return None;
        }
        let take = q.items.len().min(MAX_BATCH);
        let rest = q.items.split_off(take);
        Some(std::mem::replace(&mut q.items, rest))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<T, R>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Counts a flusher out if it ends without finding the queue empty (a panic in the store), so
/// that later items still start flushers.
struct FlusherOut<T, R> {
    queue: Arc<Mutex<Queue<T, R>>>,
    counted_out: bool,
}

impl<T, R> Drop for FlusherOut<T, R> {
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
        let rec = Recorder::writing_with(
            FLUSHERS,
            Arc::new(|records: Vec<AttemptRecord>| {
                Box::pin(async move {
                    assert!(records.iter().all(|r| r.row != 7), "store bug");
                    Ok(vec![(); records.len()])
                })
            }),
        );
        for _ in 0..FLUSHERS + 1 {
            assert!(rec.submit(record(7)).await.is_err());
        }
        let later = tokio::time::timeout(std::time::Duration::from_secs(5), rec.submit(record(8)));
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
        let rec = Recorder::writing_with(
            FLUSHERS,
            Arc::new(move |records: Vec<AttemptRecord>| {
                let seen = seen.clone();
                Box::pin(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    let rows: Vec<i64> = records.iter().map(|r| r.row).collect();
                    let failed = rows.contains(&fail_row);
                    seen.lock().unwrap().push(rows);
                    if failed {
                        Err(error())
                    } else {
                        Ok(vec![(); records.len()])
                    }
                })
            }),
        );
        (rec, batches)
    }

    #[tokio::test]
    async fn concurrent_attempts_share_batches_and_each_learns_its_batch_result() {
        let (rec, batches) = slow_recorder(-1);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..(MAX_BATCH as i64 + 300) {
            let rec = rec.clone();
            set.spawn(async move { rec.submit(record(i)).await });
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
            rec.submit(record(7)),
            rec.submit(record(8)),
            rec.submit(record(9))
        );
        assert!(a.is_err() && b.is_err() && c.is_err());
        assert!(rec.submit(record(10)).await.is_ok());
        let (d, e) = tokio::join!(rec.submit(record(7)), rec.submit(record(11)));
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
        let (a, b) = tokio::join!(rec.submit(record(7)), rec.submit(record(8)));
        assert!(a.is_err(), "{a:?}");
        assert!(b.is_ok(), "{b:?}");
        assert_eq!(*batches.lock().unwrap(), vec![vec![7, 8], vec![7], vec![8]]);
    }

    #[tokio::test]
    async fn each_item_learns_its_own_answer() {
        let batches = Arc::new(AtomicUsize::new(0));
        let seen = batches.clone();
        let even: Batcher<i64, bool> = Batcher::writing_with(
            1,
            Arc::new(move |rows: Vec<i64>| {
                seen.fetch_add(1, Ordering::Relaxed);
                Box::pin(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    Ok(rows.iter().map(|r| r % 2 == 0).collect())
                })
            }),
        );
        let mut set = tokio::task::JoinSet::new();
        for row in 0..100i64 {
            let even = even.clone();
            set.spawn(async move { (row, even.submit(row).await) });
        }
        while let Some(r) = set.join_next().await {
            let (row, answer) = r.unwrap();
            assert_eq!(answer, Ok(row % 2 == 0), "row {row}");
        }
        assert!(batches.load(Ordering::Relaxed) < 10);

        // A write that does not answer every item fails its batch, never shifts answers.
        let short: Batcher<i64, bool> = Batcher::writing_with(
            1,
            Arc::new(|rows: Vec<i64>| Box::pin(async move { Ok(vec![true; rows.len() - 1]) })),
        );
        assert!(short.submit(1).await.is_err());
    }
}
