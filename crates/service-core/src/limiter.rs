//! The per-member rate limiter: one token bucket per member, refilled at
//! the configured rate up to the burst. In memory, per process: a limit on
//! what one replica accepts, not a network-wide quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token buckets, one per member.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` tokens a second per member, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The sustained rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes a token for `member`, or says how long until one is free.
    pub fn take(&self, member: &str) -> Result<(), Duration> {
        self.take_at(member, Instant::now())
    }

    fn take_at(&self, member: &str, now: Instant) -> Result<(), Duration> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = b.entry(member.to_owned()).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *last = now.max(*last);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            // A zero rate never refills: "forever", not an overflow panic.
            let secs = (1.0 - *tokens) / self.rate.max(f64::MIN_POSITIVE);
            Err(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_member() {
        let l = RateLimiter::new(10.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take_at("uk-aisi", t0).is_ok());
        }
        let wait = l.take_at("uk-aisi", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another member has its own bucket.
        assert!(l.take_at("jp-aisi", t0).is_ok());
        // A tenth of a second refills one token, and no more than the burst.
        assert!(
            l.take_at("uk-aisi", t0 + Duration::from_millis(100))
                .is_ok()
        );
        assert!(
            l.take_at("uk-aisi", t0 + Duration::from_millis(100))
                .is_err()
        );
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.take_at("uk-aisi", later).is_ok());
        }
        assert!(l.take_at("uk-aisi", later).is_err());
    }

    #[test]
    fn a_zero_rate_never_divides_by_zero() {
        let l = RateLimiter::new(0.0, 1.0);
        let t0 = Instant::now();
        assert!(l.take_at("m", t0).is_ok());
        assert!(l.take_at("m", t0).unwrap_err() > Duration::from_secs(1_000_000));
    }
}
