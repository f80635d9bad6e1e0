//! Statistics as GDScript sees them: the core's snapshots turned into `Dictionary`s.

use godot::prelude::*;
use websocket_rs_core::{PeerStatistics, QueueTotals, ServerStatistics, TrafficTotals};

/// Godot integers are 64-bit signed; counts beyond that (never in practice) stay at the top.
fn int(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// The keys both dictionaries share: messages and bytes each way, and the queues.
fn set_traffic_and_queues(out: &mut VarDictionary, traffic: &TrafficTotals, queued: &QueueTotals) {
    out.set("messages_sent", int(traffic.messages_sent));
    out.set("messages_received", int(traffic.messages_received));
    out.set("bytes_sent", int(traffic.bytes_sent));
    out.set("bytes_received", int(traffic.bytes_received));
    out.set("wire_bytes_sent", int(traffic.wire_bytes_sent));
    out.set("wire_bytes_received", int(traffic.wire_bytes_received));
    out.set("queued_inbound_messages", int(queued.inbound_messages));
    out.set("queued_inbound_bytes", int(queued.inbound_bytes));
    out.set("queued_outbound_messages", int(queued.outbound_messages));
    out.set("queued_outbound_bytes", int(queued.outbound_bytes));
}

/// One peer's statistics: the keys of `WebSocketConnection.get_statistics()`.
pub(crate) fn peer_dictionary(stats: &PeerStatistics) -> VarDictionary {
    let mut out = VarDictionary::new();
    out.set("rtt_ms", stats.rtt_ms);
    out.set("rtt_last_ms", stats.rtt_last_ms);
    out.set("rtt_variance_ms", stats.rtt_variance_ms);
    set_traffic_and_queues(&mut out, &stats.traffic, &stats.queued);
    out.set("connected_seconds", stats.connected_seconds);
    out.set("idle_seconds", stats.idle_seconds);
    out
}

/// A server's totals: the keys of `WebSocketServer.get_statistics()`.
pub(crate) fn server_dictionary(stats: &ServerStatistics) -> VarDictionary {
    let mut refused = VarDictionary::new();
    for (why, count) in &stats.refused {
        refused.set(why.name(), int(*count));
    }
    let mut out = VarDictionary::new();
    out.set("open", int(stats.open));
    out.set("handshaking", int(stats.handshaking));
    out.set("accepted", int(stats.accepted));
    out.set("opened", int(stats.opened));
    out.set("refused", &refused);
    out.set("failed_handshakes", int(stats.failed_handshakes));
    out.set("health_checks", int(stats.health_checks));
    out.set("out_of_descriptors", int(stats.out_of_descriptors));
    set_traffic_and_queues(&mut out, &stats.traffic, &stats.queued);
    out.set("messages_sent_per_second", stats.messages_sent_per_second);
    out.set("messages_received_per_second", stats.messages_received_per_second);
    out.set("bytes_sent_per_second", stats.bytes_sent_per_second);
    out.set("bytes_received_per_second", stats.bytes_received_per_second);
    out.set("mean_rtt_ms", stats.mean_rtt_ms);
    out
}
