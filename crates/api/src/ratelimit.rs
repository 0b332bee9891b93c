//! Per-key sliding-window rate limit over 60 s: a log of the accepted requests' times per key,
//! so a refused client learns exactly when the oldest request leaves the window. Memory is
//! bounded by the limit per active key; idle keys are swept. In-process state: with several
//! replicas each enforces the limit on its own.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const WINDOW_MS: u64 = 60_000;

pub(crate) struct RateLimiter {
    limit: u32,
    logs: Mutex<HashMap<[u8; 32], VecDeque<u64>>>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds when the oldest request in the window leaves it (a slot frees up).
    pub reset_unix: u64,
    pub retry_after: u64,
}

impl RateLimiter {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            logs: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    pub fn check(&self, bucket: &[u8; 32]) -> Decision {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.check_at(bucket, now_ms)
    }

    pub fn check_at(&self, bucket: &[u8; 32], now_ms: u64) -> Decision {
        let mut logs = match self.logs.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if logs.len() > 50_000 {
            logs.retain(|_, l| l.back().is_some_and(|t| t + WINDOW_MS > now_ms));
        }
        let log = logs.entry(*bucket).or_default();
        while log.front().is_some_and(|t| t + WINDOW_MS <= now_ms) {
            log.pop_front();
        }
        let allowed = log.len() < self.limit as usize;
        if allowed {
            log.push_back(now_ms);
        }
        let oldest = log.front().copied().unwrap_or(now_ms);
        let frees_at = oldest + WINDOW_MS;
        Decision {
            allowed,
            limit: self.limit,
            remaining: (self.limit as usize).saturating_sub(log.len()) as u32,
            reset_unix: frees_at.div_ceil(1000),
            retry_after: if allowed {
                0
            } else {
                (frees_at - now_ms).div_ceil(1000).max(1)
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_limit_then_refuses() {
        let rl = RateLimiter::new(3);
        let k = [1u8; 32];
        let t = 120_000;
        assert_eq!(rl.check_at(&k, t).remaining, 2);
        assert_eq!(rl.check_at(&k, t + 10_000).remaining, 1);
        assert_eq!(rl.check_at(&k, t + 20_000).remaining, 0);
        let d = rl.check_at(&k, t + 30_000);
        assert!(!d.allowed);
        // The first request leaves the window 60 s after it was made.
        assert_eq!(d.retry_after, 30);
        assert_eq!(d.reset_unix, (t + 60_000) / 1000);
        // Another key is independent.
        assert!(rl.check_at(&[2u8; 32], t).allowed);
    }

    #[test]
    fn window_slides_instead_of_resetting() {
        let rl = RateLimiter::new(10);
        let k = [1u8; 32];
        for i in 0..10 {
            assert!(rl.check_at(&k, 100_000 + i * 1000).allowed);
        }
        assert!(!rl.check_at(&k, 159_999).allowed);
        // At 160 s the first request (at 100 s) has left the window: exactly one slot.
        assert!(rl.check_at(&k, 160_000).allowed);
        assert!(!rl.check_at(&k, 160_500).allowed);
        // Refused requests do not use up the window.
        assert!(rl.check_at(&k, 161_000).allowed);
    }
}
