//! Outbound concurrency bounds: a global semaphore plus one semaphore per webhook, so one
//! slow receiver can hold at most `per_webhook` of the `global` slots and never starves
//! the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Attempts in flight at once in the default limiter, all webhooks together
/// (`--delivery-concurrency`).
pub const DEFAULT_IN_FLIGHT: usize = domain::defaults::DELIVERY_CONCURRENCY;
/// Attempts in flight at once per webhook in the default limiter (`--delivery-per-webhook`).
pub const DEFAULT_IN_FLIGHT_PER_WEBHOOK: usize = domain::defaults::DELIVERY_PER_WEBHOOK;

/// Per-webhook semaphores beyond this count trigger a sweep of idle ones.
const SWEEP_THRESHOLD: usize = 1024;

#[derive(Debug)]
pub struct Limiter {
    global: Arc<Semaphore>,
    per_webhook_limit: usize,
    per_webhook: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Both permits; dropping it frees the slots.
#[derive(Debug)]
pub struct Permit {
    // Field order: the global slot is released first.
    _global: OwnedSemaphorePermit,
    _webhook: OwnedSemaphorePermit,
}

impl Default for Limiter {
    /// [`DEFAULT_IN_FLIGHT`] in flight overall, [`DEFAULT_IN_FLIGHT_PER_WEBHOOK`] per webhook.
    fn default() -> Self {
        Limiter::new(DEFAULT_IN_FLIGHT, DEFAULT_IN_FLIGHT_PER_WEBHOOK)
    }
}

impl Limiter {
    /// Limits are raised to at least 1.
    pub fn new(global: usize, per_webhook: usize) -> Self {
        Limiter {
            global: Arc::new(Semaphore::new(global.max(1))),
            per_webhook_limit: per_webhook.max(1),
            per_webhook: Mutex::new(HashMap::new()),
        }
    }

    fn webhook_semaphore(&self, key: &str) -> Arc<Semaphore> {
        let mut map = self.per_webhook.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(key) {
            return s.clone();
        }
        if map.len() >= SWEEP_THRESHOLD {
            // Only the map holds it: no permit outstanding, nobody waiting.
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        let s = Arc::new(Semaphore::new(self.per_webhook_limit));
        map.insert(key.to_string(), s.clone());
        s
    }

    /// Waits for a slot of this webhook, then for a global slot (in that order, so a webhook
    /// queued behind its own limit holds no global slot).
    pub async fn acquire(&self, webhook_key: &str) -> Permit {
        let sem = self.webhook_semaphore(webhook_key);
        let webhook = sem
            .acquire_owned()
            .await
            .expect("limiter semaphores are never closed");
        let global = self
            .global
            .clone()
            .acquire_owned()
            .await
            .expect("limiter semaphores are never closed");
        Permit {
            _global: global,
            _webhook: webhook,
        }
    }

    /// Non-blocking variant: `None` if either limit is exhausted right now.
    pub fn try_acquire(&self, webhook_key: &str) -> Option<Permit> {
        let webhook = self
            .webhook_semaphore(webhook_key)
            .try_acquire_owned()
            .ok()?;
        let global = self.global.clone().try_acquire_owned().ok()?;
        Some(Permit {
            _global: global,
            _webhook: webhook,
        })
    }

    /// Global slots currently free.
    pub fn available_global(&self) -> usize {
        self.global.available_permits()
    }

    /// Slots currently free for one webhook.
    pub fn available_for(&self, webhook_key: &str) -> usize {
        let map = self.per_webhook.lock().unwrap_or_else(|p| p.into_inner());
        map.get(webhook_key)
            .map_or(self.per_webhook_limit, |s| s.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn slow_webhook_does_not_block_others() {
        let l = Arc::new(Limiter::new(8, 2));
        let held: Vec<Permit> = vec![l.acquire("slow").await, l.acquire("slow").await];
        assert_eq!(l.available_for("slow"), 0);
        assert_eq!(l.available_global(), 6);
        // A third request for the slow webhook waits…
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.acquire("slow").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        // …without taking a global slot, and other webhooks proceed immediately.
        assert_eq!(l.available_global(), 6);
        let fast = tokio::time::timeout(Duration::from_millis(100), l.acquire("fast")).await;
        assert!(fast.is_ok());
        assert!(l.try_acquire("other").is_some());
        drop(fast);
        drop(held);
        let _p = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(l.available_for("slow"), 1);
    }

    #[tokio::test]
    async fn global_limit_applies() {
        let l = Limiter::new(2, 4);
        let _a = l.acquire("a").await;
        let _b = l.acquire("b").await;
        assert!(l.try_acquire("c").is_none());
        assert!(
            tokio::time::timeout(Duration::from_millis(20), l.acquire("c"))
                .await
                .is_err()
        );
        drop(_a);
        assert!(l.try_acquire("c").is_some());
    }

    #[tokio::test]
    async fn idle_semaphores_are_swept() {
        let l = Limiter::new(4, 1);
        let _keep = l.acquire("busy").await;
        for i in 0..(SWEEP_THRESHOLD + 5) {
            drop(l.acquire(&format!("w{i}")).await);
        }
        let n = l.per_webhook.lock().unwrap().len();
        assert!(n < SWEEP_THRESHOLD, "{n}");
        assert_eq!(l.available_for("busy"), 0);
    }
}
