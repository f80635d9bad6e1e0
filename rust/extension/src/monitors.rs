//! The addon's custom `Performance` monitors: the running game's WebSocket totals (peers,
//! handshakes, messages and bytes per second each way, mean round-trip time, queued bytes) as
//! graphs in the editor's Debugger > Monitors tab, group "WebSocket".
//!
//! They are added when Godot has started (the `MainLoop` stage) unless the project setting
//! `websocket_rs/monitors/enabled` is false, and removed at shutdown. The editor itself adds
//! none (its monitors are never shown); it only registers the setting so that Project Settings
//! lists it. Every value comes from `websocket_rs_core::stats::process_totals()`, which the
//! servers and clients publish from their `poll()` while monitoring is on: reading a monitor
//! costs no I/O thread round trip, and reads 0 while no server or client exists.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use godot::classes::performance::MonitorType;
use godot::classes::{Engine, Performance, ProjectSettings};
use godot::prelude::*;
use websocket_rs_core::stats::{self, ProcessTotals};

/// The project setting that turns the monitors off (`false`); read once at startup.
pub(crate) const ENABLED_SETTING: &str = "websocket_rs/monitors/enabled";

/// The shortest window a per-second rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// One monitor: its id (`group/name` in snake case, which the Monitors tab shows as
/// "WebSocket" > "Messages Received per Second"), how the editor formats it, and its value.
struct Monitor {
    id: &'static str,
    kind: MonitorType,
    value: fn(&ProcessTotals, &Rates) -> f64,
}

/// Every monitor, in the order the Monitors tab lists them.
const MONITORS: &[Monitor] = &[
    Monitor { id: "websocket/peers", kind: MonitorType::QUANTITY, value: |t, _| t.peers as f64 },
    Monitor { id: "websocket/handshaking", kind: MonitorType::QUANTITY, value: |t, _| t.handshaking as f64 },
    Monitor { id: "websocket/messages_received_per_second", kind: MonitorType::QUANTITY, value: |_, r| r.messages_received },
    Monitor { id: "websocket/messages_sent_per_second", kind: MonitorType::QUANTITY, value: |_, r| r.messages_sent },
    Monitor { id: "websocket/bytes_received_per_second", kind: MonitorType::MEMORY, value: |_, r| r.bytes_received },
    Monitor { id: "websocket/bytes_sent_per_second", kind: MonitorType::MEMORY, value: |_, r| r.bytes_sent },
    // TIME monitors are in seconds; the editor shows them as milliseconds.
    Monitor { id: "websocket/mean_round_trip_time", kind: MonitorType::TIME, value: |t, _| mean_rtt_seconds(t) },
    Monitor { id: "websocket/queued_outbound_bytes", kind: MonitorType::MEMORY, value: |t, _| t.queued_outbound_bytes as f64 },
    Monitor { id: "websocket/queued_inbound_bytes", kind: MonitorType::MEMORY, value: |t, _| t.queued_inbound_bytes as f64 },
];

/// The ids of every monitor (for tests and documentation).
#[cfg(test)]
fn monitor_ids() -> Vec<&'static str> {
    MONITORS.iter().map(|m| m.id).collect()
}

/// The mean smoothed round-trip time over the peers that have one, in seconds (0 when none has).
fn mean_rtt_seconds(totals: &ProcessTotals) -> f64 {
    if totals.rtt_peers == 0 {
        0.0
    } else {
        totals.rtt_sum_ms / totals.rtt_peers as f64 / 1000.0
    }
}

/// The cumulative counters a rate is computed from.
#[derive(Clone, Copy, Default, PartialEq, Debug)]
struct Counters {
    messages_received: u64,
    messages_sent: u64,
    bytes_received: u64,
    bytes_sent: u64,
}

impl Counters {
    fn of(totals: &ProcessTotals) -> Self {
        Counters {
            messages_received: totals.messages_received,
            messages_sent: totals.messages_sent,
            bytes_received: totals.bytes_received,
            bytes_sent: totals.bytes_sent,
        }
    }
}

/// Per-second rates of [`Counters`].
#[derive(Clone, Copy, Default, PartialEq, Debug)]
struct Rates {
    messages_received: f64,
    messages_sent: f64,
    bytes_received: f64,
    bytes_sent: f64,
}

/// Rates over the last window of at least [`RATE_WINDOW`]: the sample that opened the window
/// and the rates of the window before it.
#[derive(Default)]
struct RateMeter {
    window_start: Option<(Instant, Counters)>,
    rates: Rates,
}

impl RateMeter {
    /// Takes the counters seen at `now` and returns the current rates. The rates change when the
    /// window is at least [`RATE_WINDOW`] old; a counter that went down (a server or client with
    /// its totals was freed) counts as no traffic for that window.
    fn sample(&mut self, now: Instant, counters: Counters) -> Rates {
        let Some((start, before)) = self.window_start else {
            self.window_start = Some((now, counters));
            return self.rates;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed < RATE_WINDOW {
            return self.rates;
        }
        let seconds = elapsed.as_secs_f64();
        let rate = |after: u64, before: u64| after.saturating_sub(before) as f64 / seconds;
        self.rates = Rates {
            messages_received: rate(counters.messages_received, before.messages_received),
            messages_sent: rate(counters.messages_sent, before.messages_sent),
            bytes_received: rate(counters.bytes_received, before.bytes_received),
            bytes_sent: rate(counters.bytes_sent, before.bytes_sent),
        };
        self.window_start = Some((now, counters));
        self.rates
    }
}

thread_local! {
    /// The rates shared by every monitor (Godot reads them all on the main thread, one after another).
    static METER: RefCell<RateMeter> = RefCell::new(RateMeter::default());
    /// Whether this process added the monitors (so that shutdown removes only those).
    static ADDED: Cell<bool> = const { Cell::new(false) };
}

/// The current value of `monitor`.
fn read(monitor: &Monitor) -> f64 {
    let totals = stats::process_totals();
    let rates = METER.with(|meter| meter.borrow_mut().sample(Instant::now(), Counters::of(&totals)));
    (monitor.value)(&totals, &rates)
}

/// Registers the project setting and, in a game whose setting is not false, adds the monitors
/// and turns the publishing of totals on. Called once Godot has started.
pub(crate) fn add() {
    let enabled = register_setting();
    if !enabled || Engine::singleton().is_editor_hint() {
        return;
    }
    let mut performance = Performance::singleton();
    for monitor in MONITORS {
        // A reloaded library finds its earlier monitors still there.
        if performance.has_custom_monitor(monitor.id) {
            performance.remove_custom_monitor(monitor.id);
        }
        let callable = Callable::from_fn(monitor.id, move |_args: &[&Variant]| read(monitor));
        performance.add_custom_monitor_ex(monitor.id, &callable).type_(monitor.kind).done();
    }
    stats::set_monitoring(true);
    ADDED.set(true);
}

/// Removes the monitors [`add`] added and turns the publishing of totals off. Called at shutdown.
pub(crate) fn remove() {
    if !ADDED.replace(false) {
        return;
    }
    stats::set_monitoring(false);
    let mut performance = Performance::singleton();
    for monitor in MONITORS {
        if performance.has_custom_monitor(monitor.id) {
            performance.remove_custom_monitor(monitor.id);
        }
    }
}

/// Declares [`ENABLED_SETTING`] (default true, an advanced setting that needs a restart) and
/// returns its value. A value that is not a bool is reported and counts as true.
fn register_setting() -> bool {
    let mut settings = ProjectSettings::singleton();
    if !settings.has_setting(ENABLED_SETTING) {
        settings.set_setting(ENABLED_SETTING, &true.to_variant());
    }
    settings.set_initial_value(ENABLED_SETTING, &true.to_variant());
    settings.set_restart_if_changed(ENABLED_SETTING, true);
    let info = vdict! { "name" => ENABLED_SETTING, "type" => VariantType::BOOL.ord() };
    settings.add_property_info(&info);
    let value = settings.get_setting(ENABLED_SETTING);
    match value.try_to::<bool>() {
        Ok(enabled) => enabled,
        Err(_) => {
            godot_error!("{ENABLED_SETTING} must be true or false (is {value}); the WebSocket monitors stay on");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(messages: u64, bytes: u64) -> Counters {
        Counters { messages_received: messages, messages_sent: messages * 2, bytes_received: bytes, bytes_sent: bytes * 2 }
    }

    #[test]
    fn rates_change_once_a_window_of_a_second_has_passed() {
        let mut meter = RateMeter::default();
        let start = Instant::now();
        assert_eq!(meter.sample(start, counters(0, 0)), Rates::default());
        // Half a second later the window is still open: no rate yet.
        assert_eq!(meter.sample(start + Duration::from_millis(500), counters(5, 500)), Rates::default());
        let rates = meter.sample(start + Duration::from_secs(2), counters(20, 2000));
        assert_eq!(rates, Rates { messages_received: 10.0, messages_sent: 20.0, bytes_received: 1000.0, bytes_sent: 2000.0 });
        // The next window starts where that one ended; until it is a second old the rates stay.
        assert_eq!(meter.sample(start + Duration::from_millis(2500), counters(100, 9000)), rates);
        let idle = meter.sample(start + Duration::from_secs(3), counters(20, 2000));
        assert_eq!(idle, Rates::default(), "counters that went down (an endpoint freed) read as no traffic");
    }

    #[test]
    fn mean_rtt_is_zero_without_peers_that_have_one() {
        let mut totals = ProcessTotals::default();
        assert_eq!(mean_rtt_seconds(&totals), 0.0);
        totals.rtt_sum_ms = 30.0;
        totals.rtt_peers = 2;
        assert_eq!(mean_rtt_seconds(&totals), 0.015);
    }

    #[test]
    fn every_monitor_is_in_the_websocket_group_with_a_snake_case_name() {
        let ids = monitor_ids();
        assert_eq!(ids.len(), 9);
        for id in ids {
            let (group, name) = id.split_once('/').expect("group/name");
            assert_eq!(group, "websocket");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{id}");
        }
    }
}
