//! [`Rate`]: how many calls a stage may start per period, and the limiter its workers share.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// A stage's rate limit: at most `count` calls started per `period`, spread evenly (one every
/// `period / count`), with up to [`burst`](Rate::burst) started at once after a pause.
///
/// It is a token bucket that holds `burst` tokens (one by default) and refills one every
/// `period / count`: a worker takes a token before it takes an item, and waits for one when
/// there is none. The wait is a checkpoint (a cancel or the deadline ends it at once), and it
/// is counted per stage as [`throttled`](crate::StageReport::throttled) time. The limit is the
/// stage's, shared by all its workers; a rate-limited worker takes its items one at a time.
///
/// ```
/// use std::time::Duration;
/// use ctxpipe::{Rate, StageOptions};
///
/// let api = StageOptions::new("charge").workers(8).rate(Rate::per_second(100).burst(10));
/// assert_eq!(Rate::per_minute(30).interval(), Duration::from_secs(2));
/// // A count of zero is taken as one.
/// assert_eq!(Rate::per_second(0), Rate::per_second(1));
/// # let _ = api;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    count: u32,
    period: Duration,
    burst: u32,
}

impl Rate {
    /// At most `count` calls per `period` (a `count` of zero is taken as one).
    pub fn new(count: u32, period: Duration) -> Rate {
        Rate {
            count: count.max(1),
            period,
            burst: 1,
        }
    }

    /// At most `count` calls per second.
    pub fn per_second(count: u32) -> Rate {
        Rate::new(count, Duration::from_secs(1))
    }

    /// At most `count` calls per minute.
    pub fn per_minute(count: u32) -> Rate {
        Rate::new(count, Duration::from_secs(60))
    }

    /// Lets up to `n` calls (at least one) start at once after the stage has been idle: the
    /// bucket holds `n` tokens. The rate over any longer span stays the same.
    pub fn burst(mut self, n: u32) -> Rate {
        self.burst = n.max(1);
        self
    }

    /// The time between two calls at the full rate: `period / count`.
    pub fn interval(&self) -> Duration {
        self.period / self.count
    }
}

/// The token bucket of one stage, shared by its workers, as a theoretical arrival time: the
/// moment the bucket would be empty if every token taken so far had been taken at the full
/// rate (the generic cell rate algorithm, which keeps one timestamp instead of a count).
pub(crate) struct Limiter {
    interval: Duration,
    /// How far ahead of now the arrival time may run: `(burst - 1) × interval`.
    tolerance: Duration,
    arrival: Mutex<Option<Instant>>,
}

impl Limiter {
    pub(crate) fn new(rate: Rate) -> Limiter {
        let interval = rate.interval();
        Limiter {
            interval,
            tolerance: interval.saturating_mul(rate.burst - 1),
            arrival: Mutex::new(None),
        }
    }

    /// Takes the next token: the moment the call it allows may start (now, or later).
    pub(crate) fn reserve(&self) -> Instant {
        let now = Instant::now();
        // No user code runs under this lock.
        let mut arrival = self.arrival.lock().unwrap_or_else(PoisonError::into_inner);
        let due = arrival.map_or(now, |at| at.max(now));
        *arrival = Some(due + self.interval);
        due.checked_sub(self.tolerance)
            .map_or(now, |at| at.max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokens_come_one_interval_apart_after_a_burst() {
        let limiter = Limiter::new(Rate::per_second(10).burst(3));
        let start = Instant::now();
        let offsets: Vec<_> = (0..6)
            .map(|_| limiter.reserve().duration_since(start).as_millis())
            .collect();
        assert_eq!(offsets, [0, 0, 0, 100, 200, 300]);
        // After a pause the bucket is full again, but holds no more than the burst.
        tokio::time::advance(Duration::from_secs(10)).await;
        let start = Instant::now();
        let offsets: Vec<_> = (0..4)
            .map(|_| limiter.reserve().duration_since(start).as_millis())
            .collect();
        assert_eq!(offsets, [0, 0, 0, 100]);
    }
}
