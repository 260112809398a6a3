//! Time as a dependency, so that tests can move it.

use std::sync::atomic::{AtomicI64, Ordering};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The system clock moved by a fixed offset (`MAXIMIN_CLOCK_OFFSET`).
#[derive(Debug, Clone, Copy)]
pub struct ShiftedClock {
    offset: time::Duration,
}

impl ShiftedClock {
    pub fn new(offset: time::Duration) -> Self {
        ShiftedClock { offset }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    unix_nanos: AtomicI64,
}

impl ManualClock {
    pub fn new(at: OffsetDateTime) -> Self {
        ManualClock {
            unix_nanos: AtomicI64::new(nanos(at)),
        }
    }

    pub fn advance(&self, by: time::Duration) {
        let by = i64::try_from(by.whole_nanoseconds()).unwrap_or(i64::MAX);
        self.unix_nanos.fetch_add(by, Ordering::SeqCst);
    }
}

fn nanos(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(
            self.unix_nanos.load(Ordering::SeqCst),
        ))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// ISO 8601 / RFC 3339 in UTC with second precision, as every surface prints it.
pub fn iso8601(at: OffsetDateTime) -> String {
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

pub fn parse_iso8601(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}
