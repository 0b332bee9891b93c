//! Retry schedule (SPEC §4): after the n-th consecutive failure wait `schedule[n-1]` ± jitter;
//! after the last step give up (state `failed`).
//!
//! **Jitter and `Retry-After`.** Jitter is applied to the schedule value only:
//! `j = schedule[n-1] × (1 + U(-jitter, +jitter))`. When the receiver answered 429/503 with a
//! `Retry-After` of `r`, the delay is `min(max(j, r), 2 × schedule[n-1])`: the receiver's
//! request is honoured exactly (never shortened by jitter, never lengthened beyond what
//! jitter alone would give), and the cap is twice the *un-jittered* schedule value. With the
//! default jitter 0.2 every delay therefore lies in `[0.8 × s, 2 × s]`.

use std::time::{Duration, SystemTime};

use rand::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the 1st, 2nd, … failed attempt. Its length is the number of retries.
    pub schedule: Vec<Duration>,
    /// Relative jitter, e.g. 0.2 for ±20 %. Clamped to [0, 1].
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// [`domain::defaults::RETRY_SCHEDULE`] (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); ±20 %.
    fn default() -> Self {
        RetryPolicy {
            schedule: domain::defaults::RETRY_SCHEDULE.to_vec(),
            jitter: domain::defaults::RETRY_JITTER,
        }
    }
}

impl RetryPolicy {
    pub fn new(schedule: Vec<Duration>, jitter: f64) -> Self {
        RetryPolicy { schedule, jitter }
    }

    /// Total number of attempts before giving up (1 + retries).
    pub fn max_attempts(&self) -> u32 {
        self.schedule.len() as u32 + 1
    }

    /// Delay before the next attempt, given how many attempts of this notification have
    /// failed so far *including the one that just failed* (1 after the first failure; 0 is
    /// treated as 1). `retry_after` is the parsed `Retry-After` of a 429/503 answer (pass
    /// `AttemptResult::retry_after`, which is only set for those). `None` = give up.
    pub fn delay_after<R: Rng + ?Sized>(
        &self,
        failed_attempts: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Option<Duration> {
        let idx = failed_attempts.max(1) as usize - 1;
        let base = *self.schedule.get(idx)?;
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let factor = if jitter > 0.0 {
            1.0 + rng.random_range(-jitter..=jitter)
        } else {
            1.0
        };
        let jittered = base.mul_f64(factor.max(0.0));
        Some(match retry_after {
            None => jittered,
            Some(ra) => jittered.max(ra).min(base.saturating_mul(2)),
        })
    }
}

/// Parses a `Retry-After` header: delta-seconds (`"120"`) or an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, also the obsolete RFC 850 / asctime forms).
/// A date in the past gives zero. Anything else → `None`.
pub fn parse_retry_after(header: &str, now: SystemTime) -> Option<Duration> {
    let h = header.trim();
    if h.is_empty() {
        return None;
    }
    if h.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly large values saturate; the policy caps them anyway.
        return Some(Duration::from_secs(h.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(h).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn default_schedule() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.schedule,
            vec![
                secs(5),
                secs(300),
                secs(1800),
                secs(7200),
                secs(18000),
                secs(36000),
                secs(36000)
            ]
        );
        assert_eq!(p.jitter, 0.2);
        assert_eq!(p.max_attempts(), 8);
    }

    #[test]
    fn jitter_bounds_and_give_up() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        for (i, base) in p.schedule.iter().enumerate() {
            let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
            for _ in 0..2000 {
                let d = p.delay_after(i as u32 + 1, None, &mut rng).unwrap();
                assert!(
                    d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2),
                    "{d:?} vs {base:?}"
                );
                lo = lo.min(d);
                hi = hi.max(d);
            }
            // The jitter is actually used, in both directions.
            assert!(
                lo < base.mul_f64(0.9) && hi > base.mul_f64(1.1),
                "{lo:?}..{hi:?}"
            );
        }
        assert_eq!(
            p.delay_after(0, None, &mut rng).map(|d| d <= secs(6)),
            Some(true)
        );
        assert_eq!(p.delay_after(8, None, &mut rng), None);
        assert_eq!(p.delay_after(8, Some(secs(1)), &mut rng), None);
        assert_eq!(p.delay_after(u32::MAX, None, &mut rng), None);
    }

    #[test]
    fn no_jitter_is_exact_and_short_schedules_work() {
        let p = RetryPolicy::new(vec![secs(1), secs(2)], 0.0);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(p.delay_after(1, None, &mut rng), Some(secs(1)));
        assert_eq!(p.delay_after(2, None, &mut rng), Some(secs(2)));
        assert_eq!(p.delay_after(3, None, &mut rng), None);
        assert_eq!(
            RetryPolicy::new(vec![], 0.2).delay_after(1, None, &mut rng),
            None
        );
    }

    #[test]
    fn retry_after_bounds() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..500 {
            // Shorter than the schedule: schedule (jittered) wins.
            let d = p.delay_after(2, Some(secs(10)), &mut rng).unwrap();
            assert!(d >= secs(240) && d <= secs(360), "{d:?}");
            // Between 1.2× and 2× schedule: honoured exactly.
            assert_eq!(p.delay_after(2, Some(secs(500)), &mut rng), Some(secs(500)));
            // Beyond 2× schedule: capped at exactly 2× the un-jittered schedule.
            assert_eq!(
                p.delay_after(2, Some(secs(100_000)), &mut rng),
                Some(secs(600))
            );
            assert_eq!(
                p.delay_after(1, Some(Duration::MAX), &mut rng),
                Some(secs(10))
            );
            // Within the jitter band: never below the Retry-After.
            let d = p.delay_after(2, Some(secs(330)), &mut rng).unwrap();
            assert!(d >= secs(330) && d <= secs(360), "{d:?}");
        }
    }

    #[test]
    fn parse_retry_after_forms() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(secs(0)));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(secs(120))
        );
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now),
            Some(secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:30 2015", now),
            Some(secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(secs(0))
        );
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
