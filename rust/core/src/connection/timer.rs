//! A connection's deadlines: one slot per kind, the earliest is what `poll_timeout` reports.

use std::time::Instant;

/// The kinds of deadline a connection has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The TCP connect (client) and HTTP upgrade must finish by then (`handshake_timeout`).
    Handshake,
    /// The close handshake must finish by then (`close_timeout`), or the failing close go out.
    Close,
    /// The next heartbeat: ping, or drop a peer that did not answer the last one.
    Heartbeat,
}

impl Timer {
    const ALL: [Timer; 3] = [Timer::Handshake, Timer::Close, Timer::Heartbeat];
}

/// When each [`Timer`] is due (`None`: not armed).
#[derive(Clone, Debug, Default)]
pub(crate) struct TimerTable([Option<Instant>; 3]);

impl TimerTable {
    /// Arms `timer` for `at`, replacing an earlier setting.
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.0[timer as usize] = Some(at);
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }

    /// When `timer` is due, if armed.
    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer as usize]
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// Disarms and returns the first timer due at `now`, in the order of [`Timer`].
    pub(crate) fn expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = Timer::ALL.into_iter().find(|&t| self.get(t).is_some_and(|at| at <= now))?;
        self.stop(timer);
        Some(timer)
    }

    /// Disarms every timer.
    pub(crate) fn clear(&mut self) {
        self.0 = [None; 3];
    }
}
