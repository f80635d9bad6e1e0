//! Turns the properties a server or client exposes to GDScript into the core's
//! `ConnectionConfig`, checking each value. Both classes declare the same properties; this is
//! the one place that reads them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use godot::prelude::*;
use websocket_rs_core::{parse_header_lines, ConnectionConfig, DeflateConfig, Error, Limits, ReconnectPolicy};

/// The values of the connection properties shared by `WebSocketServer` and `WebSocketClient`.
pub(crate) struct ConnectionProperties<'a> {
    pub(crate) handshake_timeout: f64,
    pub(crate) supported_protocols: &'a PackedStringArray,
    pub(crate) handshake_headers: &'a PackedStringArray,
    pub(crate) inbound_buffer_size: i64,
    pub(crate) outbound_buffer_size: i64,
    pub(crate) inbound_max_packets: i64,
    pub(crate) outbound_max_packets: i64,
    pub(crate) max_message_size: i64,
    pub(crate) heartbeat_interval: f64,
    /// Whether an I/O thread serves the sockets (else `poll()` does).
    pub(crate) io_thread: bool,
    /// Godot multiplayer mode (`gd_mp_api`, `create_server`, `create_client`).
    pub(crate) multiplayer: bool,
    /// `permessage_deflate` and the `deflate_*` properties.
    pub(crate) deflate: DeflateProperties,
}

/// The values of the compression properties (`permessage_deflate`, `deflate_*`).
pub(crate) struct DeflateProperties {
    pub(crate) enabled: bool,
    pub(crate) level: i64,
    pub(crate) threshold: i64,
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_max_window_bits: i64,
    pub(crate) client_max_window_bits: i64,
}

impl DeflateProperties {
    /// The core's settings; numbers out of range give [`Error::InvalidSetting`] naming the property.
    fn to_config(&self) -> Result<DeflateConfig, Error> {
        let config = DeflateConfig {
            enabled: self.enabled,
            level: in_range("deflate_level", self.level, 0, 9)?,
            threshold: usize::try_from(self.threshold).map_err(|_| Error::InvalidSetting {
                name: "deflate_threshold".into(),
                problem: format!("must be 0 or more (is {})", self.threshold),
            })?,
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: in_range(
                "deflate_server_max_window_bits",
                self.server_max_window_bits,
                8,
                15,
            )?,
            client_max_window_bits: in_range(
                "deflate_client_max_window_bits",
                self.client_max_window_bits,
                8,
                15,
            )?,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The values of a client's reconnect properties (`auto_reconnect`, `reconnect_*`).
pub(crate) struct ReconnectProperties {
    pub(crate) enabled: bool,
    pub(crate) delay: f64,
    pub(crate) max_delay: f64,
    pub(crate) max_attempts: i64,
    pub(crate) after_clean_close: bool,
}

impl ReconnectProperties {
    /// The core's policy; a delay that is not a positive number, a maximum below the first
    /// delay or a negative attempt count gives an error naming the property.
    pub(crate) fn to_policy(&self) -> Result<ReconnectPolicy, Error> {
        let defaults = ReconnectPolicy::default();
        let policy = ReconnectPolicy {
            enabled: self.enabled,
            initial_delay: seconds("reconnect_delay", self.delay, false)?.unwrap_or(defaults.initial_delay),
            max_delay: seconds("reconnect_max_delay", self.max_delay, false)?.unwrap_or(defaults.max_delay),
            max_attempts: u32::try_from(self.max_attempts).map_err(|_| Error::InvalidSetting {
                name: "reconnect_max_attempts".into(),
                problem: format!("must be 0 (no limit) or a positive number (is {})", self.max_attempts),
            })?,
            after_clean_close: self.after_clean_close,
        };
        policy.validate()?;
        Ok(policy)
    }
}

/// `value` when it lies in `min..=max`, as the core's type.
fn in_range<T: TryFrom<i64>>(name: &str, value: i64, min: i64, max: i64) -> Result<T, Error> {
    (min..=max)
        .contains(&value)
        .then(|| T::try_from(value).ok())
        .flatten()
        .ok_or_else(|| Error::InvalidSetting {
            name: name.into(),
            problem: format!("must be {min}..{max} (is {value})"),
        })
}

impl ConnectionProperties<'_> {
    /// The checked configuration; `protocols` and `headers` replace the properties when not empty
    /// (the arguments of `listen` / `connect_to_url`).
    pub(crate) fn to_config(&self, protocols: &PackedStringArray, headers: &PackedStringArray) -> Result<ConnectionConfig, Error> {
        let protocols = if protocols.is_empty() { self.supported_protocols } else { protocols };
        let headers = if headers.is_empty() { self.handshake_headers } else { headers };
        let header_lines: Vec<String> = headers.as_slice().iter().map(GString::to_string).collect();
        let defaults = ConnectionConfig::default();
        let config = ConnectionConfig {
            limits: Limits {
                inbound_buffer_size: size("inbound_buffer_size", self.inbound_buffer_size)?,
                inbound_max_packets: size("max_queued_packets (inbound)", self.inbound_max_packets)?,
                outbound_buffer_size: size("outbound_buffer_size", self.outbound_buffer_size)?,
                outbound_max_packets: size("max_queued_packets (outbound)", self.outbound_max_packets)?,
                max_message_size: size("max_message_size", self.max_message_size)?,
            },
            handshake_timeout: seconds("handshake_timeout", self.handshake_timeout, false)?
                .unwrap_or(defaults.handshake_timeout),
            protocols: protocols.as_slice().iter().map(GString::to_string).collect(),
            extra_headers: parse_header_lines(&header_lines)?,
            heartbeat_interval: seconds("heartbeat_interval", self.heartbeat_interval, true)?,
            multiplayer: self.multiplayer,
            io_thread: self.io_thread,
            deflate: self.deflate.to_config()?,
            ..defaults
        };
        config.validate()?;
        Ok(config)
    }
}

/// A core size or count as the `int` GDScript sees (used for the properties' defaults, which are
/// the core's, so that each number is written once).
pub(crate) fn int(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A core interval as the seconds GDScript sees, 0 for none.
pub(crate) fn seconds_or_zero(interval: Option<Duration>) -> f64 {
    interval.map_or(0.0, |interval| interval.as_secs_f64())
}

/// A positive size limit.
fn size(name: &str, value: i64) -> Result<usize, Error> {
    usize::try_from(value)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| Error::InvalidArgument(format!("{name} must be a positive number, not {value}")))
}

/// A duration in seconds; 0 means `None` when `zero_is_off`, else it must be positive.
pub(crate) fn seconds(name: &str, value: f64, zero_is_off: bool) -> Result<Option<Duration>, Error> {
    if zero_is_off && value == 0.0 {
        return Ok(None);
    }
    if !value.is_finite() || value <= 0.0 || value > 1.0e9 {
        let allowed = if zero_is_off { "0 (off) or a positive number of seconds" } else { "a positive number of seconds" };
        return Err(Error::InvalidArgument(format!("{name} must be {allowed}, not {value}")));
    }
    Ok(Some(Duration::from_secs_f64(value)))
}

/// A GDScript peer id as the core's.
pub(crate) fn peer_id(id: i64) -> Result<websocket_rs_core::PeerId, Error> {
    websocket_rs_core::PeerId::try_from(id).map_err(|_| Error::InvalidArgument(format!("peer id {id} is out of range")))
}

/// The address to listen on: `bind_ip` is `"*"` (or "") for every interface, else an IP address.
pub(crate) fn bind_address(bind_ip: &str, port: i64) -> Result<SocketAddr, Error> {
    let port = u16::try_from(port).map_err(|_| Error::InvalidPort(port))?;
    let ip = match bind_ip {
        "*" | "" => IpAddr::from([0u16; 8]),
        other => other.parse().map_err(|_| Error::InvalidBindAddress(other.to_string()))?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// How GDScript asks a connection to close.
pub(crate) enum CloseRequest {
    /// A negative code (-1): drop the connection at once, without a close frame.
    Abort,
    /// Send a close frame with this code.
    Frame(u16),
}

impl CloseRequest {
    /// The request for a GDScript close code.
    pub(crate) fn from_code(code: i64) -> Result<CloseRequest, Error> {
        if code < 0 {
            return Ok(CloseRequest::Abort);
        }
        u16::try_from(code).map(CloseRequest::Frame).map_err(|_| Error::InvalidCloseCode(code))
    }
}

/// `set_buffers` of Godot 3: sizes in KiB, packet counts as given.
pub(crate) fn godot3_buffers(
    input_buffer_size_kb: i64,
    input_max_packets: i64,
    output_buffer_size_kb: i64,
    output_max_packets: i64,
) -> Result<(i64, i64, i64, i64), Error> {
    let kib = |name: &str, kb: i64| {
        size(name, kb)?;
        kb.checked_mul(1024).ok_or_else(|| Error::InvalidArgument(format!("{name} {kb} KiB is too large")))
    };
    size("input_max_packets", input_max_packets)?;
    size("output_max_packets", output_max_packets)?;
    Ok((
        kib("input_buffer_size_kb", input_buffer_size_kb)?,
        input_max_packets,
        kib("output_buffer_size_kb", output_buffer_size_kb)?,
        output_max_packets,
    ))
}

/// The optional `TLSOptions` argument of `create_server` / `create_client`. A newtype only so that
/// it can default to null (gdext allows defaults for immutable types alone; null is immutable).
#[derive(Clone, Debug)]
pub(crate) struct OptionalTls(pub(crate) Option<Gd<godot::classes::TlsOptions>>);

impl godot::meta::GodotConvert for OptionalTls {
    type Via = Option<Gd<godot::classes::TlsOptions>>;

    fn godot_shape() -> godot::meta::shape::GodotShape {
        <Option<Gd<godot::classes::TlsOptions>> as godot::meta::GodotConvert>::godot_shape()
    }
}

impl godot::meta::ToGodot for OptionalTls {
    type Pass = godot::meta::conv::ByValue;

    fn to_godot(&self) -> Self::Via {
        self.0.clone()
    }
}

impl godot::meta::FromGodot for OptionalTls {
    fn try_from_godot(via: Self::Via) -> Result<Self, godot::meta::error::ConvertError> {
        Ok(OptionalTls(via))
    }
}

// SAFETY: the only default ever made is `OptionalTls(None)`, which holds no object to mutate.
unsafe impl godot::meta::GodotImmutable for OptionalTls {}
