//! A client's reconnect policy: when a lost connection is made again, how long to wait before
//! each attempt (exponential backoff with jitter) and when to give up. The state machine that
//! uses it is in `client.rs`; this file is pure arithmetic, tested without a clock.

use std::time::{Duration, Instant};

use crate::Error;

/// How a client makes a lost connection again (`ConnectionConfig::reconnect`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReconnectPolicy {
    /// Whether a connection that was open and then lost is made again (off by default).
    pub enabled: bool,
    /// The delay before the first attempt, before jitter; each further attempt doubles it.
    pub initial_delay: Duration,
    /// No delay, before jitter, is longer than this.
    pub max_delay: Duration,
    /// Attempts after one loss before the client gives up (0: no limit).
    pub max_attempts: u32,
    /// Whether a clean close by the server (a close frame it sent first) is also followed by
    /// reconnecting; a lost connection always is.
    pub after_clean_close: bool,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            enabled: false,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_attempts: 10,
            after_clean_close: false,
        }
    }
}

impl ReconnectPolicy {
    /// Checks that the delays can be used: the initial delay is not zero and the maximum is not below it.
    pub fn validate(&self) -> Result<(), Error> {
        if self.initial_delay.is_zero() {
            return Err(Error::InvalidSetting { name: "reconnect_delay".into(), problem: "must be greater than 0".into() });
        }
        if self.max_delay < self.initial_delay {
            return Err(Error::InvalidSetting {
                name: "reconnect_max_delay".into(),
                problem: format!(
                    "must not be less than reconnect_delay ({:?} < {:?})",
                    self.max_delay, self.initial_delay
                ),
            });
        }
        Ok(())
    }

    /// The wait before attempt `attempt` (1 for the first): `min(max_delay, initial_delay *
    /// 2^(attempt-1))` times a jitter factor `0.5 + 0.5 * random`, where `random` is in `[0, 1)`
    /// (so the wait lies between half the backoff and the backoff).
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(63);
        let backoff = self.initial_delay.as_secs_f64() * 2f64.powi(doublings as i32);
        let capped = backoff.min(self.max_delay.as_secs_f64());
        let factor = 0.5 + 0.5 * random.clamp(0.0, 1.0);
        Duration::from_secs_f64(capped * factor)
    }

    /// Whether `attempt` attempts have used up the allowance.
    pub(crate) fn exhausted(&self, attempt: u32) -> bool {
        self.max_attempts != 0 && attempt >= self.max_attempts
    }
}

/// Where a client is in making a lost connection again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Reconnect {
    /// Not reconnecting: connecting for the first time, open, or closed.
    #[default]
    Idle,
    /// Waiting until `at` to start attempt `attempt`.
    Waiting {
        /// The attempt that starts at `at` (1 for the first).
        attempt: u32,
        /// When it starts.
        at: Instant,
    },
    /// Attempt `attempt` is connecting.
    Attempting {
        /// Which attempt (1 for the first).
        attempt: u32,
    },
}

impl Reconnect {
    /// Whether a lost connection is being made again (waiting or connecting).
    pub(crate) fn is_under_way(&self) -> bool {
        !matches!(self, Reconnect::Idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(initial_ms: u64, max_ms: u64) -> ReconnectPolicy {
        ReconnectPolicy {
            enabled: true,
            initial_delay: Duration::from_millis(initial_ms),
            max_delay: Duration::from_millis(max_ms),
            ..ReconnectPolicy::default()
        }
    }

    #[test]
    fn the_delay_doubles_each_attempt_up_to_the_maximum() {
        let policy = policy(100, 1000);
        // random = 1.0 (clamped to the top of the range) gives the backoff itself.
        let delays: Vec<u128> = (1..=6).map(|attempt| policy.delay(attempt, 1.0).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_keeps_the_delay_between_half_the_backoff_and_the_backoff() {
        let policy = policy(1000, 30_000);
        assert_eq!(policy.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(policy.delay(3, 0.5), Duration::from_millis(3000));
        let mut random = fastrand::Rng::with_seed(7);
        for attempt in 1..=20 {
            let backoff = Duration::from_millis(1000 * (1u64 << (attempt - 1).min(20))).min(Duration::from_secs(30));
            let delay = policy.delay(attempt, random.f64());
            assert!(delay >= backoff / 2 && delay <= backoff, "attempt {attempt}: {delay:?} not within {backoff:?}");
        }
    }

    #[test]
    fn very_many_attempts_do_not_overflow() {
        let policy = policy(1000, 30_000);
        assert_eq!(policy.delay(u32::MAX, 1.0), Duration::from_secs(30));
        assert_eq!(policy.delay(0, 1.0), Duration::from_secs(1));
    }

    #[test]
    fn zero_attempts_means_no_limit() {
        let mut policy = policy(10, 10);
        policy.max_attempts = 0;
        assert!(!policy.exhausted(1_000_000));
        policy.max_attempts = 3;
        assert!(!policy.exhausted(2));
        assert!(policy.exhausted(3));
    }

    #[test]
    fn a_maximum_below_the_initial_delay_is_refused() {
        assert!(policy(0, 1000).validate().is_err());
        assert!(policy(1000, 500).validate().is_err());
        assert!(policy(1000, 1000).validate().is_ok());
    }
}
