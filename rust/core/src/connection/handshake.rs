//! The settings every connection of a server or client shares, and what is known about a peer
//! once its handshake is done.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tungstenite::protocol::WebSocketConfig;

use crate::config::{ConnectionConfig, Limits};
use crate::deflate::{DeflateConfig, DeflateParams};
use crate::proxy::TrustedProxies;
use crate::stats::EndpointCounters;

/// What every connection of one server or client shares.
#[derive(Debug)]
pub(crate) struct Settings {
    /// Queue and message limits.
    pub(crate) limits: Limits,
    /// Time for the TCP connect (client) and the HTTP upgrade.
    pub(crate) handshake_timeout: Duration,
    /// Time for the other side to answer a close frame.
    pub(crate) close_timeout: Duration,
    /// Ping interval of a new connection (`None`: no pings).
    pub(crate) heartbeat_interval: Option<Duration>,
    /// tungstenite's settings for the HTTP upgrade (see [`handshake_config`]).
    pub(crate) websocket: WebSocketConfig,
    /// Server: sub-protocols supported, in order of preference.
    pub(crate) protocols: Vec<String>,
    /// Extra headers of the handshake response (server).
    pub(crate) extra_headers: Vec<(String, String)>,
    /// Server: browser origins allowed (empty: any).
    pub(crate) allowed_origins: Vec<String>,
    /// permessage-deflate: offered (client), accepted (server), and how messages are compressed.
    pub(crate) deflate: DeflateConfig,
    /// Server: every upgrade request waits for the game's `accept_handshake` or `reject_handshake`.
    pub(crate) verify_handshakes: bool,
    /// Server: peers whose forwarding headers (and PROXY protocol header) are believed.
    pub(crate) trusted_proxies: TrustedProxies,
    /// Server: a connection from a trusted proxy starts with a PROXY protocol header.
    pub(crate) proxy_protocol: bool,
    /// Server: the path answered as a health check ("" when off).
    pub(crate) health_check_path: String,
    /// Server: draining; new upgrades and health checks are answered with 503 (set by the
    /// reactor, read by every connection's upgrade).
    pub(crate) draining: AtomicBool,
    /// The endpoint's totals, which every connection adds to (`stats.rs`).
    pub(crate) counters: Arc<EndpointCounters>,
}

impl Settings {
    /// The settings of `config`.
    pub(crate) fn new(config: &ConnectionConfig) -> Self {
        Settings {
            limits: config.limits.clone(),
            handshake_timeout: config.handshake_timeout,
            close_timeout: config.close_timeout,
            heartbeat_interval: config.heartbeat_interval,
            websocket: handshake_config(),
            protocols: config.protocols.clone(),
            extra_headers: config.extra_headers.clone(),
            allowed_origins: config.allowed_origins.clone(),
            deflate: config.deflate.clone(),
            verify_handshakes: config.verify_handshakes,
            // `ConnectionConfig::validate` has checked the entries.
            trusted_proxies: TrustedProxies::parse(&config.trusted_proxies).unwrap_or_default(),
            proxy_protocol: config.proxy_protocol,
            health_check_path: config.health_check_path.clone(),
            draining: AtomicBool::new(false),
            counters: Arc::default(),
        }
    }
}

/// The tungstenite settings of the HTTP upgrade. tungstenite only does the upgrade; the
/// `WebSocket` it makes at the end is taken apart at once (our framing runs the open
/// connection), so its buffers are left empty.
pub(crate) fn handshake_config() -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 0;
    config.write_buffer_size = 0;
    config
}

/// Facts about a peer known once its handshake is done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OpenInfo {
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) protocol: String,
    pub(crate) resource_name: String,
    /// TCP_NODELAY as read back from the socket when it opened (set by the reactor).
    pub(crate) no_delay: bool,
    /// The permessage-deflate parameters agreed on, if compression was.
    pub(crate) deflate: Option<DeflateParams>,
    /// Server: the headers of the upgrade request, names in lower case, in the order received.
    pub(crate) request_headers: Vec<(String, String)>,
}
