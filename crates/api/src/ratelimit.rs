//! Per-key sliding-window rate limit (60 s), approximated with two fixed windows weighted by
//! overlap, as large API gateways do: O(1) memory per key, no burst at window edges.
//! In-process state: with several replicas each enforces the limit on its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const WINDOW_MS: u64 = 60_000;

pub(crate) struct RateLimiter {
    limit: u32,
    windows: Mutex<HashMap<[u8; 32], Window>>,
}

#[derive(Clone, Copy, Default)]
struct Window {
    index: u64,
    current: u32,
    previous: u32,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset_unix: u64,
    pub retry_after: u64,
}

impl RateLimiter {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
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
        let index = now_ms / WINDOW_MS;
        let into = now_ms % WINDOW_MS;
        let mut map = match self.windows.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() > 50_000 {
            map.retain(|_, w| w.index + 1 >= index);
        }
        let w = map.entry(*bucket).or_default();
        if w.index != index {
            w.previous = if w.index + 1 == index { w.current } else { 0 };
            w.current = 0;
            w.index = index;
        }
        let limit = self.limit as f64;
        let weight = (WINDOW_MS - into) as f64 / WINDOW_MS as f64;
        let estimate = w.previous as f64 * weight + w.current as f64;
        let reset_unix = (index + 1) * WINDOW_MS / 1000;
        if estimate + 1.0 > limit {
            return Decision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                reset_unix,
                retry_after: retry_after_ms(w, into, self.limit).div_ceil(1000).max(1),
            };
        }
        w.current += 1;
        let remaining = (limit - estimate - 1.0).floor().max(0.0) as u32;
        Decision {
            allowed: true,
            limit: self.limit,
            remaining,
            reset_unix,
            retry_after: 0,
        }
    }
}

/// Milliseconds until one more request fits under the limit.
fn retry_after_ms(w: &Window, into: u64, limit: u32) -> u64 {
    let room = limit as f64 - 1.0 - w.current as f64;
    if room < 0.0 || w.previous == 0 {
        // Only the next window frees capacity; from then the current count is the weight.
        let next = WINDOW_MS - into;
        if (w.current as f64) * 1.0 + 1.0 <= limit as f64 {
            return next;
        }
        return next + WINDOW_MS;
    }
    // previous * (WINDOW - t) / WINDOW <= room  ⇔  t >= WINDOW * (1 - room / previous)
    let t = (WINDOW_MS as f64 * (1.0 - room / w.previous as f64)).ceil() as u64;
    t.saturating_sub(into).max(1)
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
        assert_eq!(rl.check_at(&k, t).remaining, 1);
        assert_eq!(rl.check_at(&k, t).remaining, 0);
        let d = rl.check_at(&k, t);
        assert!(!d.allowed);
        assert!(d.retry_after >= 1 && d.retry_after <= 60, "{d:?}");
        // Another key is independent.
        assert!(rl.check_at(&[2u8; 32], t).allowed);
    }

    #[test]
    fn window_slides_instead_of_resetting() {
        let rl = RateLimiter::new(10);
        let k = [1u8; 32];
        for _ in 0..10 {
            assert!(rl.check_at(&k, 60_000 + 59_000).allowed);
        }
        // Just after the fixed boundary the previous window still weighs almost fully.
        assert!(!rl.check_at(&k, 120_000 + 1_000).allowed);
        // Half-way, about half the capacity is back.
        let mut ok = 0;
        for _ in 0..10 {
            if rl.check_at(&k, 120_000 + 30_000).allowed {
                ok += 1;
            }
        }
        assert!((4..=5).contains(&ok), "{ok}");
        // Two windows later everything is free again.
        assert!(rl.check_at(&k, 240_000 + 1).allowed);
    }
}
