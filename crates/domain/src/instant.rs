//! The instants the service stores, and their checked conversions to the storage forms.
//!
//! Supported range: `1900-01-01T00:00:00Z` to `2200-12-31T23:59:59.999999999Z` (UTC) for every
//! stored time that comes from outside: a snapshot's `observed_at` and `job_start_date` (so
//! every event time derived from them), a simulated event's `event_time`. Both backends hold
//! that range exactly: `observed_at` as i64 unix nanoseconds (which end at 1677-09-21 and
//! 2262-04-11 and used to wrap around beyond), event and job times as i64 unix seconds or
//! `YYYY-MM-DD` text. A value outside is rejected where it enters (a line error at ingestion,
//! a 422 in a request) and never converted; a bound of a query window is clamped instead, since
//! nothing outside the range is stored (see [`clamp`]).

use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

/// The earliest supported instant.
pub const EARLIEST: OffsetDateTime = datetime!(1900-01-01 0:00 UTC);
/// The latest supported instant.
pub const LATEST: OffsetDateTime = datetime!(2200-12-31 23:59:59.999_999_999 UTC);
/// The supported range in words, for error messages.
pub const RANGE_TEXT: &str = "1900-01-01 to 2200-12-31, UTC";

/// A time outside the supported range (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub struct OutOfRange(pub OffsetDateTime);

impl std::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let utc = self.0.checked_to_offset(UtcOffset::UTC);
        match utc.and_then(|t| t.format(&Rfc3339).ok()) {
            Some(s) => write!(f, "{s} is outside the supported range ({RANGE_TEXT})"),
            None => write!(f, "the time is outside the supported range ({RANGE_TEXT})"),
        }
    }
}

/// `t` in UTC when it lies in the supported range.
pub fn check(t: OffsetDateTime) -> Result<OffsetDateTime, OutOfRange> {
    if (EARLIEST..=LATEST).contains(&t) {
        Ok(t.to_offset(UtcOffset::UTC))
    } else {
        Err(OutOfRange(t))
    }
}

/// `d` when its midnight (UTC) lies in the supported range.
pub fn check_date(d: Date) -> Result<Date, OutOfRange> {
    check(d.midnight().assume_utc()).map(|_| d)
}

/// `t` moved into the supported range: for the bounds of a query window, where a bound beyond
/// the range (`0001-01-01`, `9999-12-31` as "forever") selects exactly what the clamped one
/// does.
pub fn clamp(t: OffsetDateTime) -> OffsetDateTime {
    t.clamp(EARLIEST, LATEST).to_offset(UtcOffset::UTC)
}

/// The first whole second at or after `t`: the lower bound of a query window over event times,
/// which are whole seconds (`timestamp_from` `12:00:00.5` must not select an event at
/// `12:00:00`). The upper bound needs nothing: truncation already keeps it inclusive.
pub fn window_start(t: OffsetDateTime) -> OffsetDateTime {
    match t.replace_nanosecond(0) {
        Ok(whole) if whole != t => whole.checked_add(Duration::SECOND).unwrap_or(whole),
        _ => t,
    }
}

/// The stored form of `observed_at`: unix nanoseconds, checked (no wrap-around).
pub fn to_unix_nanos(t: OffsetDateTime) -> Result<i64, OutOfRange> {
    let t = check(t)?;
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| OutOfRange(t))
}

/// Reads back [`to_unix_nanos`]. Every i64 is a representable instant, so this cannot fail
/// (a row stored before the range was enforced reads back as what it holds).
pub fn from_unix_nanos(nanos: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::nanoseconds(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn window_start_rounds_up_to_the_second() {
        let t = datetime!(2024-03-01 12:00:00 UTC);
        assert_eq!(window_start(t), t);
        assert_eq!(
            window_start(datetime!(2024-03-01 12:00:00.000_001 UTC)),
            datetime!(2024-03-01 12:00:01 UTC)
        );
        let last = datetime!(9999-12-31 23:59:59.5 UTC);
        assert_eq!(window_start(last), datetime!(9999-12-31 23:59:59 UTC));
    }

    #[test]
    fn edges_convert_exactly_and_neighbours_are_refused() {
        for t in [EARLIEST, LATEST, OffsetDateTime::UNIX_EPOCH] {
            assert_eq!(from_unix_nanos(to_unix_nanos(t).unwrap()), t);
        }
        let ns = Duration::nanoseconds(1);
        assert_eq!(to_unix_nanos(EARLIEST - ns), Err(OutOfRange(EARLIEST - ns)));
        assert_eq!(to_unix_nanos(LATEST + ns), Err(OutOfRange(LATEST + ns)));
        // The values that used to wrap: 1600 became 2184, 9999 became 1816.
        assert!(to_unix_nanos(datetime!(1600-01-01 0:00 UTC)).is_err());
        assert!(to_unix_nanos(datetime!(9999-12-31 23:59:59 UTC)).is_err());
        assert!(check_date(time::macros::date!(1899 - 12 - 31)).is_err());
        assert!(check_date(time::macros::date!(2200 - 12 - 31)).is_ok());
        assert_eq!(clamp(datetime!(0001-01-01 0:00 UTC)), EARLIEST);
        assert_eq!(clamp(datetime!(9999-12-31 0:00 UTC)), LATEST);
    }

    proptest! {
        #[test]
        fn in_range_round_trips_and_out_of_range_is_refused(
            nanos in (EARLIEST.unix_timestamp_nanos() - 10i128.pow(19))
                ..(LATEST.unix_timestamp_nanos() + 10i128.pow(19)),
        ) {
            let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            match to_unix_nanos(t) {
                Ok(n) => {
                    prop_assert!((EARLIEST..=LATEST).contains(&t));
                    prop_assert_eq!(from_unix_nanos(n), t);
                }
                Err(e) => {
                    prop_assert!(!(EARLIEST..=LATEST).contains(&t));
                    prop_assert_eq!(e, OutOfRange(t));
                }
            }
        }
    }
}
