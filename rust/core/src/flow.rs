//! The back-pressure protocol between the game thread and the I/O thread, for one connection.
//!
//! Both threads hold the same [`FlowControl`]:
//! - inbound: the I/O thread counts each message it delivers ([`FlowControl::delivered`]) and stops
//!   reading the socket when the game's queue is full ([`FlowControl::pause_if_full`]); the game
//!   counts each message it takes ([`FlowControl::taken`]), and the take that frees room after a
//!   pause asks the I/O thread to read again (`Command::ResumeRead`). TCP flow control then slows
//!   the sender; nothing is dropped.
//! - outbound: the game reserves room before it queues a message ([`FlowControl::reserve_outbound`],
//!   refused beyond the limits) and the I/O thread releases it once a flush has written it
//!   ([`FlowControl::release_outbound`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::config::Limits;
use crate::error::{Error, OutboundLimit};
use crate::stats::{PeerStatistics, QueueTotals, Traffic};
use crate::PeerId;

/// Counters shared by the game thread and the I/O thread for one connection: the queues'
/// back-pressure, and the traffic statistics the I/O thread keeps.
#[derive(Debug, Default)]
pub(crate) struct FlowControl {
    /// Messages, bytes and round-trip time, written by the connection (see `stats.rs`).
    pub(crate) traffic: Traffic,
    inbound_packets: AtomicUsize,
    inbound_bytes: AtomicUsize,
    read_paused: AtomicBool,
    outbound_packets: AtomicUsize,
    outbound_bytes: AtomicUsize,
}

impl FlowControl {
    /// Whether the inbound queue is at its limit (one packet always fits).
    fn inbound_full(&self, limits: &Limits) -> bool {
        let packets = self.inbound_packets.load(Ordering::SeqCst);
        packets > 0
            && (packets >= limits.inbound_max_packets
                || self.inbound_bytes.load(Ordering::SeqCst) >= limits.inbound_buffer_size)
    }

    /// I/O thread: a message of `len` bytes was handed to the game.
    pub(crate) fn delivered(&self, len: usize) {
        self.inbound_packets.fetch_add(1, Ordering::SeqCst);
        self.inbound_bytes.fetch_add(len, Ordering::SeqCst);
    }

    /// I/O thread, before reading: true when the game's queue is full, so the socket must be left
    /// unread until the game asks to resume. Marks the pause so that the game's next take does.
    pub(crate) fn pause_if_full(&self, limits: &Limits) -> bool {
        if !self.inbound_full(limits) {
            return false;
        }
        self.read_paused.store(true, Ordering::SeqCst);
        // The game may have taken packets in between; then the pause is undone here, not by it.
        self.inbound_full(limits) || !self.read_paused.swap(false, Ordering::SeqCst)
    }

    /// Game thread: a message of `len` bytes was taken from the queue. True when reading was
    /// paused and this take made room: the caller then sends `Command::ResumeRead`.
    pub(crate) fn taken(&self, len: usize, limits: &Limits) -> bool {
        self.taken_many(1, len, limits)
    }

    /// Game thread: `packets` messages of `bytes` bytes in all were taken from the queue; see
    /// [`FlowControl::taken`].
    pub(crate) fn taken_many(&self, packets: usize, bytes: usize, limits: &Limits) -> bool {
        self.inbound_packets.fetch_sub(packets, Ordering::SeqCst);
        self.inbound_bytes.fetch_sub(bytes, Ordering::SeqCst);
        // Checked with a load first: the swap writes a cache line the I/O thread uses, and a
        // paused read is rare.
        self.read_paused.load(Ordering::SeqCst)
            && !self.inbound_full(limits)
            && self.read_paused.swap(false, Ordering::SeqCst)
    }

    /// Game thread: makes room for a message of `len` bytes in the outbound queue of `peer`, or
    /// says which limit refuses it (one message always fits an empty queue).
    pub(crate) fn reserve_outbound(&self, peer: PeerId, len: usize, limits: &Limits) -> Result<(), Error> {
        self.reserve_outbound_many(peer, 1, len, limits)
    }

    /// Game thread: makes room for `packets` messages of `bytes` bytes in all in the outbound
    /// queue of `peer`, all or none, or says which limit refuses them (an empty queue takes any
    /// batch, so one batch always fits).
    pub(crate) fn reserve_outbound_many(&self, peer: PeerId, packets: usize, bytes: usize, limits: &Limits) -> Result<(), Error> {
        let queued_packets = self.outbound_packets.load(Ordering::SeqCst);
        let queued_bytes = self.outbound_bytes.load(Ordering::SeqCst);
        if queued_packets > 0 {
            let limit = if queued_packets + packets > limits.outbound_max_packets {
                Some(OutboundLimit::Packets { max: limits.outbound_max_packets })
            } else if queued_bytes + bytes > limits.outbound_buffer_size {
                Some(OutboundLimit::Bytes { max: limits.outbound_buffer_size, queued: queued_bytes, asked: bytes })
            } else {
                None
            };
            if let Some(limit) = limit {
                return Err(Error::OutboundFull { peer, limit });
            }
        }
        self.outbound_packets.fetch_add(packets, Ordering::SeqCst);
        self.outbound_bytes.fetch_add(bytes, Ordering::SeqCst);
        Ok(())
    }

    /// I/O thread: `packets` messages of `bytes` bytes in all reached the socket.
    pub(crate) fn release_outbound(&self, packets: usize, bytes: usize) {
        self.outbound_packets.fetch_sub(packets, Ordering::SeqCst);
        self.outbound_bytes.fetch_sub(bytes, Ordering::SeqCst);
    }

    /// Bytes queued for sending that have not reached the socket yet.
    pub(crate) fn outbound_bytes(&self) -> usize {
        self.outbound_bytes.load(Ordering::SeqCst)
    }

    /// Game thread: the traffic counters and the queues into `out`.
    pub(crate) fn read_into(&self, out: &mut PeerStatistics, now: std::time::Instant) {
        self.traffic.read_into(out, now);
        out.queued = QueueTotals {
            inbound_messages: self.inbound_packets.load(Ordering::Relaxed) as u64,
            inbound_bytes: self.inbound_bytes.load(Ordering::Relaxed) as u64,
            outbound_messages: self.outbound_packets.load(Ordering::Relaxed) as u64,
            outbound_bytes: self.outbound_bytes.load(Ordering::Relaxed) as u64,
        };
    }

    /// Payload bytes queued each way: waiting for the game, and waiting for the socket.
    pub(crate) fn queued_bytes(&self) -> (usize, usize) {
        (self.inbound_bytes.load(Ordering::Relaxed), self.outbound_bytes.load(Ordering::Relaxed))
    }

    /// Messages waiting for the game (as counted by the I/O thread).
    #[cfg(test)]
    pub(crate) fn inbound_packets(&self) -> usize {
        self.inbound_packets.load(Ordering::SeqCst)
    }
}
