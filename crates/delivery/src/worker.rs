//! The delivery worker: claim due notifications with a lease (a short write transaction),
//! send each one outside any transaction, record the attempt (another short transaction,
//! shared with the attempts that finish meanwhile: see [`Recorder`]). Lease renewals and
//! hand-backs are batched the same way ([`Leases`]).
//! A crash between claim and record only delays the notification until the lease expires:
//! it is delivered again, never dropped (at-least-once).
//!
//! Fairness: a webhook never has more than `per_webhook_queue` notifications claimed at once
//! (it is excluded from claims beyond that), and sending goes through the [`Limiter`],
//! so one slow receiver holds at most its own slots.

use crate::batcher::{Leases, Recorder};
use crate::{Limiter, Outcome, RetryPolicy, Secrets, Sender};
use domain::clock::Clock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{
    AttemptOutcome, AttemptRecord, ClaimRoom, Claimed, DynStore, LeaseChange, Webhook, WebhookKey,
};
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub retry: RetryPolicy,
    /// How long a claim is ours; must exceed the worst wait + attempt of a claimed row.
    pub lease: Duration,
    /// Most notifications claimed in one transaction.
    pub batch: u32,
    /// Most notifications in flight (claimed, not yet recorded) in this process.
    pub max_in_flight: usize,
    /// Most notifications claimed at once for one webhook.
    pub per_webhook_queue: usize,
    /// Idle poll interval (new work from this process also wakes the worker at once).
    pub poll: Duration,
    /// Disable a webhook failing continuously for this long.
    pub disable_after: Duration,
    /// What "now" is for claims, leases, attempts and retry times.
    pub clock: Clock,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            lease: domain::defaults::DELIVERY_LEASE,
            batch: 256,
            max_in_flight: 0,
            per_webhook_queue: 0,
            poll: Duration::from_millis(20),
            disable_after: domain::defaults::DISABLE_AFTER,
            clock: Clock::system(),
        }
        .sized_for(
            domain::defaults::DELIVERY_CONCURRENCY,
            domain::defaults::DELIVERY_PER_WEBHOOK,
        )
    }
}

impl WorkerConfig {
    /// Claims sized for a [`Limiter`] of `concurrency` sends at once, `per_webhook` per webhook
    /// (`--delivery-concurrency`, `--delivery-per-webhook`). An attempt stays in flight from its
    /// claim to its record's commit — two transactions, each waiting for the database's log
    /// flush (milliseconds) — while its send slot is held only for the HTTP exchange, so more
    /// are claimed than are sent at once: 4× overall and 8× per webhook keep the send slots busy
    /// when commits, not receivers, are the slow part.
    pub fn sized_for(mut self, concurrency: usize, per_webhook: usize) -> Self {
        self.max_in_flight = concurrency.max(1).saturating_mul(4);
        self.per_webhook_queue = per_webhook.max(1).saturating_mul(8);
        self
    }
}

/// Database connections one worker uses at once: a claim, the recorder's batches, a batch of
/// lease renewals and hand-backs, and a waiting claim's webhook re-read (D113). Fixed, whatever
/// `--delivery-concurrency` says: attempts and lease changes are written in batches, not a
/// transaction each, and webhooks re-read at most once per [`REFRESH_AFTER`] each.
pub const DATABASE_CONNECTIONS: usize =
    2 + crate::batcher::FLUSHERS + crate::batcher::LEASE_FLUSHERS;

/// Handle to wake the worker when new notifications were queued in this process.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

pub struct Worker {
    store: DynStore,
    sender: Sender,
    limiter: Arc<Limiter>,
    cfg: WorkerConfig,
    wake: Wake,
    in_flight: Arc<Mutex<HashMap<WebhookKey, usize>>>,
    recorder: Recorder,
    leases: Leases,
    settings: Settings,
}

impl Worker {
    pub fn new(store: DynStore, sender: Sender, limiter: Arc<Limiter>, cfg: WorkerConfig) -> Self {
        Self {
            sender,
            limiter,
            cfg,
            wake: Wake::default(),
            in_flight: Default::default(),
            recorder: Recorder::new(store.clone()),
            leases: Leases::new(store.clone()),
            settings: Settings::default(),
            store,
        }
    }

    pub fn wake_handle(&self) -> Wake {
        self.wake.clone()
    }

    /// Claims once and delivers what was claimed, waiting for every attempt to be recorded.
    /// Returns how many notifications were attempted. (Tests drive delivery with this.)
    pub async fn run_once(&self) -> usize {
        let mut set = JoinSet::new();
        let (_keep, stop) = watch::channel(false);
        let n = self.claim_into(&mut set, &stop).await;
        while set.join_next().await.is_some() {}
        n
    }

    /// Runs until `shutdown` turns true, then finishes the attempts in flight.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut set = JoinSet::new();
        tracing::info!(
            retry.steps = self.cfg.retry.schedule.len(),
            "delivery worker started"
        );
        // Claim on every poll tick and wake-up, and after attempts finish only once a quarter of
        // a webhook's share has freed up: one claim per finished attempt would cost a write
        // transaction per delivery.
        let refill = (self.cfg.per_webhook_queue / 4).max(1);
        let (mut force, mut finished) = (true, 0usize);
        loop {
            if *shutdown.borrow() {
                break;
            }
            while set.try_join_next().is_some() {
                finished += 1;
            }
            let claimed = if set.len() < self.cfg.max_in_flight && (force || finished >= refill) {
                finished = 0;
                self.claim_into(&mut set, &shutdown).await
            } else {
                0
            };
            if claimed > 0 && set.len() < self.cfg.max_in_flight {
                force = true;
                continue;
            }
            force = false;
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.poll) => force = true,
                _ = self.wake.0.notified() => force = true,
                Some(_) = set.join_next(), if !set.is_empty() => finished += 1,
                _ = shutdown.changed() => {}
            }
        }
        let pending = set.len();
        if pending > 0 {
            tracing::info!(
                in_flight = pending,
                "finishing attempts already sending; handing back claims not yet started"
            );
        }
        while set.join_next().await.is_some() {}
        tracing::info!("delivery worker stopped");
    }

    async fn claim_into(&self, set: &mut JoinSet<()>, stop: &watch::Receiver<bool>) -> usize {
        let room_total = self.cfg.max_in_flight.saturating_sub(set.len());
        if room_total == 0 {
            return 0;
        }
        // Each webhook may have at most `per_webhook_queue` claimed at once.
        let share = self.cfg.per_webhook_queue as u32;
        let room = ClaimRoom {
            per_scope: share,
            scopes: match self.in_flight.lock() {
                Ok(m) => m
                    .iter()
                    .map(|(s, n)| (s.clone(), share.saturating_sub(*n as u32)))
                    .collect(),
                Err(_) => Vec::new(),
            },
        };
        let limit = (self.cfg.batch as usize).min(room_total) as u32;
        let claimed = match self
            .store
            .claim_due(self.cfg.clock.now(), self.cfg.lease, limit, &room)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming due notifications failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                return 0;
            }
        };
        let n = claimed.len();
        for c in claimed {
            if let Ok(mut m) = self.in_flight.lock() {
                *m.entry(c.webhook()).or_default() += 1;
            }
            let job = Attempt {
                store: self.store.clone(),
                sender: self.sender.clone(),
                limiter: self.limiter.clone(),
                retry: self.cfg.retry.clone(),
                disable_after: self.cfg.disable_after,
                lease: self.cfg.lease,
                clock: self.cfg.clock.clone(),
                stop: stop.clone(),
                in_flight: self.in_flight.clone(),
                recorder: self.recorder.clone(),
                leases: self.leases.clone(),
                settings: self.settings.clone(),
            };
            set.spawn(job.deliver(c));
        }
        n
    }
}

struct Attempt {
    store: DynStore,
    sender: Sender,
    limiter: Arc<Limiter>,
    retry: RetryPolicy,
    disable_after: Duration,
    lease: Duration,
    clock: Clock,
    stop: watch::Receiver<bool>,
    in_flight: Arc<Mutex<HashMap<WebhookKey, usize>>>,
    recorder: Recorder,
    leases: Leases,
    settings: Settings,
}

/// Webhooks as last re-read for waiting claims (unix ms of the read, and the row: None when
/// gone), shared by a worker's attempts so each webhook is read at most once per
/// [`REFRESH_AFTER`] however many of its claims wait.
#[derive(Clone, Default)]
struct Settings(Arc<Mutex<HashMap<WebhookKey, ReadAt>>>);

/// When a webhook was read (unix ms), and what was read.
type ReadAt = (i64, Option<Webhook>);

impl Settings {
    /// The webhook as read at `now_ms - REFRESH_AFTER` or later, reading it when the last read
    /// is older.
    async fn current(
        &self,
        store: &DynStore,
        key: &WebhookKey,
        now_ms: i64,
    ) -> store::StoreResult<Option<Webhook>> {
        let fresh_from = now_ms - REFRESH_AFTER.as_millis() as i64;
        if let Some((at, w)) = self.lock().get(key) {
            if *at >= fresh_from {
                return Ok(w.clone());
            }
        }
        let w = store.find_webhook(key).await?;
        let mut map = self.lock();
        if map.len() >= SETTINGS_SWEEP {
            map.retain(|_, (at, _)| *at >= fresh_from);
        }
        map.insert(key.clone(), (now_ms, w.clone()));
        Ok(w)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WebhookKey, ReadAt>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Re-read webhooks kept beyond this count trigger a sweep of stale ones.
const SETTINGS_SWEEP: usize = 1024;

/// A claim sent later than this after it was made (it waited for a send slot) re-reads its
/// webhook before signing (D113); sooner, the claim's copy is current enough.
const REFRESH_AFTER: Duration = Duration::from_millis(100);

/// How much longer than the send timeout a lease must last when an attempt starts.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Decrements the in-flight count of a webhook however an attempt ends.
struct InFlight {
    map: Arc<Mutex<HashMap<WebhookKey, usize>>>,
    webhook: WebhookKey,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        crate::metrics::METRICS.in_flight(-1);
        if let Ok(mut m) = self.map.lock() {
            if let Some(n) = m.get_mut(&self.webhook) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.webhook);
                }
            }
        }
    }
}

impl Attempt {
    /// One claimed notification: wait for a send slot → keep the lease long enough → sign and
    /// send → record what happened.
    #[tracing::instrument(skip_all, fields(delivery.id = %c.delivery_id, partner = %c.scope.partner))]
    async fn deliver(mut self, c: Claimed) {
        crate::metrics::METRICS.in_flight(1);
        let _in_flight = InFlight {
            map: self.in_flight.clone(),
            webhook: c.webhook(),
        };
        let Some(permit) = self.send_slot(&c).await else {
            return;
        };
        let Some(c) = self.fresh_claim(c).await else {
            return;
        };
        let Some(lease_until) = self.lease_for_attempt(&c).await else {
            return;
        };
        let record = self.attempt(&c, lease_until).await;
        drop(permit);
        crate::metrics::METRICS.attempt(&record.outcome, record.latency_ms);
        // Recorded together with the attempts finishing meanwhile (one transaction).
        if let Err(e) = self.recorder.submit(record).await {
            // The lease expires and the notification is delivered again: at-least-once.
            tracing::warn!(error = %e, "recording a delivery attempt failed");
        }
    }

    /// Waits for a send slot; on shutdown hands the claim back instead (None).
    async fn send_slot(&mut self, c: &Claimed) -> Option<crate::Permit> {
        let key = format!(
            "{}\u{1f}{}\u{1f}{}",
            c.scope.tenant.0, c.scope.partner.0, c.webhook_id
        );
        let permit = tokio::select! {
            p = self.limiter.acquire(&key) => Some(p),
            stopped = self.stop.wait_for(|s| *s) => {
                drop(stopped);
                None
            }
        };
        if permit.is_none() {
            self.hand_back(c).await;
        }
        permit
    }

    /// The claim as it is sent: one that waited for its slot longer than [`REFRESH_AFTER`]
    /// takes its webhook as read at most [`REFRESH_AFTER`] ago (read again if need be) first, so a secret rotation (or a new URL, headers or format) made
    /// meanwhile applies to it, as it does to claims made after it. None when the webhook is
    /// gone or disabled meanwhile: the claim is handed back, its notification left to the store
    /// (due again when the webhook is enabled; failed with a deleted one).
    async fn fresh_claim(&self, mut c: Claimed) -> Option<Claimed> {
        let claimed_at = c.lease_until - self.lease;
        if self.clock.now() - claimed_at < REFRESH_AFTER {
            return Some(c);
        }
        let now_ms = self.clock.unix_millis();
        match self
            .settings
            .current(&self.store, &c.webhook(), now_ms)
            .await
        {
            Ok(Some(w)) if w.enabled => {
                c.refresh(&w, self.clock.now());
                Some(c)
            }
            Ok(_) => {
                self.hand_back(&c).await;
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-reading a webhook failed; sending with the claim's settings");
                Some(c)
            }
        }
    }

    /// The lease must outlast this attempt: renewed when the wait for a slot used it up. None
    /// when meanwhile someone else claimed the notification (or renewing failed): leave it.
    async fn lease_for_attempt(&self, c: &Claimed) -> Option<OffsetDateTime> {
        let needed = self.sender.config().timeout + LEASE_MARGIN;
        let now = self.clock.now();
        if now + needed <= c.lease_until {
            return Some(c.lease_until);
        }
        let renewed = domain::clock::millis_after(now, self.lease.max(needed));
        let renewal = LeaseChange {
            row: c.row,
            expected: c.lease_until,
            until: Some(renewed),
        };
        // Renewed together with the other claims renewing or handed back meanwhile.
        match self.leases.submit(renewal).await {
            Ok(true) => Some(renewed),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(error = %e, "renewing a lease failed; leaving the notification to its lease");
                None
            }
        }
    }

    /// Hands an unsent claim back (due again at once), together with the other lease changes
    /// made meanwhile; when that fails, its lease expires instead.
    async fn hand_back(&self, c: &Claimed) {
        let release = LeaseChange {
            row: c.row,
            expected: c.lease_until,
            until: None,
        };
        if let Err(e) = self.leases.submit(release).await {
            tracing::debug!(error = %e, "handing back a claim failed; its lease will expire");
        }
    }

    /// Signs and sends once, and turns the result into the record of this attempt.
    async fn attempt(&self, c: &Claimed, lease_until: OffsetDateTime) -> AttemptRecord {
        let now = self.clock.now();
        let attempted_at = domain::clock::unix_millis(now);
        let record = |status_code, error, latency_ms, response_body, outcome| AttemptRecord {
            row: c.row,
            lease_until,
            scope: c.scope.clone(),
            webhook_id: c.webhook_id.clone(),
            generation: c.generation,
            attempted_at,
            status_code,
            error,
            latency_ms,
            response_body,
            outcome,
            disable_after_ms: self.disable_after.as_millis() as i64,
        };
        let sent = self
            .sender
            .send_signed(
                &c.webhook_url,
                Secrets {
                    current: &c.secret,
                    previous: c.previous_secret.as_deref(),
                },
                &c.headers,
                &c.delivery_id,
                &c.event_id,
                now,
                body_of(c),
            )
            .await;
        match sent {
            Ok(res) => {
                let outcome = self.next_step(c, &res);
                tracing::debug!(
                    delivery.status = res.status,
                    delivery.latency_ms = res.latency_ms,
                    delivery.outcome = ?outcome,
                    "delivery attempt"
                );
                record(
                    res.status,
                    res.error,
                    res.latency_ms,
                    res.response_body_prefix,
                    outcome,
                )
            }
            Err(e) => record(
                None,
                Some(format!("cannot sign with the stored secret: {e}")),
                0,
                String::new(),
                AttemptOutcome::GiveUp,
            ),
        }
    }

    /// Delivered, gone, another attempt at a time from the retry policy, or give up.
    fn next_step(&self, c: &Claimed, res: &crate::AttemptResult) -> AttemptOutcome {
        match res.outcome {
            Outcome::Delivered => AttemptOutcome::Delivered,
            Outcome::Gone => AttemptOutcome::Gone,
            Outcome::Retry => match self.retry.delay_after(
                c.cycle_attempts + 1,
                res.retry_after,
                &mut rand::rng(),
            ) {
                Some(d) => AttemptOutcome::RetryAt(self.clock.unix_millis() + d.as_millis() as i64),
                None => AttemptOutcome::GiveUp,
            },
        }
    }
}

/// The bytes a claim sends: the stored payload as it is (`json`), or wrapped as its webhook's
/// payload format says (`stringified_json`: `{"text": "<the same JSON>"}`).
fn body_of(c: &Claimed) -> Vec<u8> {
    match c.payload_format {
        store::PayloadFormat::Json => c.payload.clone().into_bytes(),
        format => match serde_json::from_str::<serde_json::Value>(&c.payload) {
            Ok(v) => format.render(&v),
            Err(_) => c.payload.clone().into_bytes(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batcher::LEASE_FLUSHERS;
    use crate::SenderConfig;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use store::{DirectNotification, Scope};

    /// Queues `n` notifications for a webhook at a port that refuses (attempts fail at once).
    async fn queued(n: usize) -> (tempfile::TempDir, DynStore, Scope) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let store = store::open(&url).await.unwrap();
        let scope = Scope {
            tenant: domain::TenantId("t1".into()),
            partner: domain::PartnerId("p1".into()),
        };
        let now = OffsetDateTime::now_utc();
        let secret = domain::signing::generate_secret([7; 32]);
        store
            .put_webhook(&scope, "http://127.0.0.1:9/hook", &secret, now)
            .await
            .unwrap();
        let items = (0..n)
            .map(|i| DirectNotification {
                delivery_id: format!("dl_{i:024}"),
                event_id: format!("ev_{i}"),
                event_name: "prospect_changed_role".into(),
                event_time: now.unix_timestamp(),
                enrollment_key: "k".into(),
                payload: serde_json::json!({ "i": i }),
            })
            .collect();
        let key = WebhookKey::legacy(&scope);
        store.queue_direct(&key, items, now).await.unwrap();
        (dir, store, scope)
    }

    /// Claims whose lease is too short for an attempt all renew it before sending: a burst of
    /// them costs a few batched store calls, not one each, and the renewed leases are the ones
    /// the attempts are recorded under.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_renewals_costs_few_store_calls() {
        const N: usize = 200;
        let (_dir, store, scope) = queued(N).await;
        let sender = Sender::new(SenderConfig {
            allow_private_targets: true,
            ..SenderConfig::default()
        })
        .unwrap();
        // Retried an hour later when recorded under the lease it holds; a record under a lost
        // lease would leave the renewal's end (seconds away) as the next attempt.
        let cfg = WorkerConfig {
            lease: Duration::from_secs(1),
            retry: RetryPolicy::new(vec![Duration::from_secs(3600)], 0.0),
            ..WorkerConfig::default()
        };
        let start = domain::clock::unix_millis(OffsetDateTime::now_utc());
        let mut worker = Worker::new(store.clone(), sender, Arc::new(Limiter::new(N, N)), cfg);
        let (calls, changes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (c, n, s) = (calls.clone(), changes.clone(), store.clone());
        worker.leases = Leases::writing_with(
            LEASE_FLUSHERS,
            Arc::new(move |batch: Vec<LeaseChange>| {
                c.fetch_add(1, Ordering::SeqCst);
                n.fetch_add(batch.len(), Ordering::SeqCst);
                assert!(batch.iter().all(|l| l.until.is_some()), "renewals only");
                let s = s.clone();
                Box::pin(async move { s.change_leases(batch).await })
            }),
        );
        assert_eq!(worker.run_once().await, N);
        assert_eq!(changes.load(Ordering::SeqCst), N, "every claim renewed");
        let calls = calls.load(Ordering::SeqCst);
        assert!(calls <= N / 10, "{calls} store calls for {N} renewals");
        // Each attempt held its renewed lease when recorded: all moved on to the retry.
        let rows = store.outbox(Some(&scope), N as u32 + 1).await.unwrap();
        assert_eq!(rows.len(), N);
        assert!(rows.iter().all(|r| r.attempts == 1));
        let page = store
            .list_deliveries(
                &WebhookKey::legacy(&scope),
                &store::DeliveryQuery {
                    limit: N as u32,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.deliveries.len(), N);
        assert!(page
            .deliveries
            .iter()
            .all(|d| d.next_attempt_at.is_some_and(|t| t > start + 3_000_000)));
    }
}
