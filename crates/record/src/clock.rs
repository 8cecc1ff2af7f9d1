//! How far the time a record or an order claims (created-at, ordered-at)
//! may lie from the time a service receives it. One rule for every
//! service that accepts signed things: intake and evals (records, erasure
//! orders) and audit (directory changes). With the rule that the signing
//! key must be valid at both times, a key whose window has ended, or that
//! was revoked, signs nothing new however it is dated.

use time::{Duration, OffsetDateTime};

/// The bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockBounds {
    /// How far ahead of the receive time (clock skew).
    pub max_future: Duration,
    /// How far behind it.
    pub max_age: Duration,
}

impl Default for ClockBounds {
    /// 5 minutes ahead, 7 days back.
    fn default() -> Self {
        Self {
            max_future: Duration::minutes(5),
            max_age: Duration::days(7),
        }
    }
}

/// Why a claimed time is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skew {
    /// Later than the receive time plus the allowed skew.
    InFuture,
    /// Older than the receive time minus `max_days`.
    TooOld {
        /// The limit, in days.
        max_days: i64,
    },
}

impl ClockBounds {
    /// Whether `claimed` may be accepted when received at `now`.
    pub fn check(&self, claimed: OffsetDateTime, now: OffsetDateTime) -> Result<(), Skew> {
        if claimed > now + self.max_future {
            return Err(Skew::InFuture);
        }
        if claimed < now - self.max_age {
            return Err(Skew::TooOld {
                max_days: self.max_age.whole_days(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_are_inclusive_and_name_the_limit() {
        let b = ClockBounds::default();
        let now = OffsetDateTime::now_utc();
        assert_eq!(b.check(now, now), Ok(()));
        assert_eq!(b.check(now + Duration::minutes(5), now), Ok(()));
        assert_eq!(b.check(now - Duration::days(7), now), Ok(()));
        assert_eq!(
            b.check(now + Duration::minutes(6), now),
            Err(Skew::InFuture)
        );
        assert_eq!(
            b.check(now - Duration::days(8), now),
            Err(Skew::TooOld { max_days: 7 })
        );
    }
}
