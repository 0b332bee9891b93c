//! The one clock: what "now" is for the API, the delivery worker and ingestion. Production runs
//! on [`Clock::system`]; tests pass [`Clock::fixed`] or their own function. Domain rules never
//! read it: they take the instant as an argument.

use std::sync::Arc;
use time::OffsetDateTime;

/// A source of the current instant, cheap to clone and shared across tasks.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    /// The machine's clock.
    pub fn system() -> Self {
        Self(Arc::new(OffsetDateTime::now_utc))
    }

    /// Always `at` (tests).
    pub fn fixed(at: OffsetDateTime) -> Self {
        Self(Arc::new(move || at))
    }

    /// Whatever `now` answers (tests that move time along).
    pub fn from_fn(now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.0)()
    }

    /// Now as unix milliseconds: the store's form of wall-clock stamps (`created_at`,
    /// `next_attempt_at`, …).
    pub fn unix_millis(&self) -> i64 {
        unix_millis(self.now())
    }

    /// Now as unix seconds: the store's form of event and enrollment times.
    pub fn unix_seconds(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// `t` as unix milliseconds (the store's wall-clock form).
pub fn unix_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds as a time, saturating at the ends of what `OffsetDateTime` holds (only
/// a parked notification's "never" is stored beyond them, and it is never read as a time).
pub fn from_unix_millis(ms: i64) -> OffsetDateTime {
    let lowest = unix_millis(time::PrimitiveDateTime::MIN.assume_utc());
    let highest = unix_millis(time::PrimitiveDateTime::MAX.assume_utc());
    OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms.clamp(lowest, highest))
}

/// `t` truncated to whole milliseconds: a time made this way reads back from the store equal
/// to itself (leases are compared for equality).
pub fn whole_millis(t: OffsetDateTime) -> OffsetDateTime {
    from_unix_millis(unix_millis(t))
}

/// `t + span` in whole milliseconds, saturating instead of overflowing.
pub fn millis_after(t: OffsetDateTime, span: std::time::Duration) -> OffsetDateTime {
    let span = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
    from_unix_millis(unix_millis(t).saturating_add(span))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fixed_clock_answers_its_instant_in_every_unit() {
        let c = Clock::fixed(datetime!(2024-06-10 12:00:00.250 UTC));
        assert_eq!(c.unix_seconds(), 1_718_020_800);
        assert_eq!(c.unix_millis(), 1_718_020_800_250);
        let t = Clock::system().now();
        assert!(t > datetime!(2024-01-01 0:00 UTC));
    }

    #[test]
    fn whole_milliseconds_round_trip_and_saturate() {
        let t = datetime!(2024-06-10 12:00:00.250_999 UTC);
        assert_eq!(whole_millis(t), datetime!(2024-06-10 12:00:00.250 UTC));
        assert_eq!(
            from_unix_millis(unix_millis(whole_millis(t))),
            whole_millis(t)
        );
        let later = millis_after(t, std::time::Duration::from_micros(30_000_900));
        assert_eq!(later, datetime!(2024-06-10 12:00:30.250 UTC));
        let end = millis_after(t, std::time::Duration::MAX);
        assert_eq!(end, whole_millis(time::PrimitiveDateTime::MAX.assume_utc()));
        assert_eq!(from_unix_millis(i64::MAX), end);
    }
}
