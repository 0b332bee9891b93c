//! Delivery counters for the `/metrics` endpoint: attempts by outcome, attempt latency, and the
//! work in flight. Process-wide atomics, so the worker needs no handle to the API.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub struct DeliveryMetrics {
    delivered: AtomicU64,
    retry: AtomicU64,
    gave_up: AtomicU64,
    gone: AtomicU64,
    latency_ms_sum: AtomicU64,
    in_flight: AtomicI64,
}

pub static METRICS: DeliveryMetrics = DeliveryMetrics {
    delivered: AtomicU64::new(0),
    retry: AtomicU64::new(0),
    gave_up: AtomicU64::new(0),
    gone: AtomicU64::new(0),
    latency_ms_sum: AtomicU64::new(0),
    in_flight: AtomicI64::new(0),
};

impl DeliveryMetrics {
    pub(crate) fn attempt(&self, outcome: &store::AttemptOutcome, latency_ms: u64) {
        let c = match outcome {
            store::AttemptOutcome::Delivered => &self.delivered,
            store::AttemptOutcome::RetryAt(_) => &self.retry,
            store::AttemptOutcome::GiveUp => &self.gave_up,
            store::AttemptOutcome::Gone => &self.gone,
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.latency_ms_sum.fetch_add(latency_ms, Ordering::Relaxed);
    }

    pub(crate) fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// Prometheus text exposition of the delivery counters.
    pub fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let total = get(&self.delivered) + get(&self.retry) + get(&self.gave_up) + get(&self.gone);
        out.push_str("# HELP webhook_attempts_total Delivery attempts by outcome.\n");
        out.push_str("# TYPE webhook_attempts_total counter\n");
        for (name, v) in [
            ("delivered", &self.delivered),
            ("retry", &self.retry),
            ("failed", &self.gave_up),
            ("gone", &self.gone),
        ] {
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "webhook_attempts_total{{outcome=\"{name}\"}} {}",
                get(v)
            );
        }
        out.push_str("# HELP webhook_attempt_latency_ms_sum Total attempt latency (ms).\n");
        out.push_str("# TYPE webhook_attempt_latency_ms_sum counter\n");
        let _ = writeln!(
            out,
            "webhook_attempt_latency_ms_sum {}",
            get(&self.latency_ms_sum)
        );
        let _ = writeln!(out, "webhook_attempt_latency_ms_count {total}");
        out.push_str(
            "# HELP webhook_notifications_in_flight Claimed notifications not yet recorded.\n",
        );
        out.push_str("# TYPE webhook_notifications_in_flight gauge\n");
        let _ = writeln!(
            out,
            "webhook_notifications_in_flight {}",
            self.in_flight.load(Ordering::Relaxed).max(0)
        );
    }
}
