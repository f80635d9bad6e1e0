//! Settings of a server or client: queue limits, timeouts, sub-protocols, headers and compression.

use std::time::Duration;

use crate::Error;

/// Per-connection queue limits. The defaults are those of Godot 4's `WebSocketMultiplayerPeer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of received messages that may wait for the game before the socket stops being read
    /// (TCP back-pressure). One message is always accepted, whatever its size.
    pub inbound_buffer_size: usize,
    /// Received messages that may wait for the game before the socket stops being read.
    pub inbound_max_packets: usize,
    /// Bytes of messages the game may queue for sending before `send` returns
    /// [`Error::OutboundFull`]. One message is always accepted when the queue is empty.
    pub outbound_buffer_size: usize,
    /// Messages the game may queue for sending before `send` returns [`Error::OutboundFull`].
    pub outbound_max_packets: usize,
    /// Largest message accepted from the network; a larger one closes the peer with 1009.
    pub max_message_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            inbound_buffer_size: 65535,
            inbound_max_packets: 2048,
            outbound_buffer_size: 65535,
            outbound_max_packets: 2048,
            max_message_size: 64 << 20,
        }
    }
}

impl Limits {
    /// Checks that every limit is usable (non-zero).
    pub fn validate(&self) -> Result<(), Error> {
        for (name, value) in [
            ("inbound_buffer_size", self.inbound_buffer_size),
            ("inbound_max_packets", self.inbound_max_packets),
            ("outbound_buffer_size", self.outbound_buffer_size),
            ("outbound_max_packets", self.outbound_max_packets),
            ("max_message_size", self.max_message_size),
        ] {
            if value == 0 {
                return Err(Error::InvalidSetting { name: name.into(), problem: "must be greater than 0".into() });
            }
        }
        Ok(())
    }
}

/// Settings shared by both ends of a connection.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Queue limits of every connection.
    pub limits: Limits,
    /// Time a connection may take to finish the TCP connect and HTTP upgrade.
    pub handshake_timeout: Duration,
    /// Time to wait for the other side to answer a close frame before dropping the socket.
    pub close_timeout: Duration,
    /// Sub-protocols: the server's supported list, or the list the client offers.
    pub protocols: Vec<String>,
    /// Extra HTTP headers sent with the handshake, as `(name, value)`.
    pub extra_headers: Vec<(String, String)>,
    /// Whether TCP_NODELAY is set on new connections (on by default).
    pub no_delay: bool,
    /// Ping every this often; a peer that has not answered by the next ping is dropped.
    /// `None` sends no pings.
    pub heartbeat_interval: Option<Duration>,
    /// Godot multiplayer mode: the server sends each client its id when it opens, a client waits
    /// for that id before it counts as connected (see [`crate::multiplayer`]).
    pub multiplayer: bool,
    /// Server: connections (open or handshaking) beyond this many are answered with HTTP 503
    /// and closed (`None`: no limit).
    pub max_connections: Option<usize>,
    /// Server: when not empty, a client whose `Origin` header is not in this list is refused
    /// with HTTP 403 (browsers always send `Origin`; other clients usually send none and pass).
    pub allowed_origins: Vec<String>,
    /// Server: serve wss:// with this key and certificate (`None`: plain ws://).
    pub tls_server: Option<crate::TlsServerSettings>,
    /// Client: how a wss:// server's certificate is checked (ws:// URLs ignore it).
    pub tls_client: crate::TlsClientSettings,
    /// Whether the sockets are served by an I/O thread (the default) or inside `poll()` on the
    /// caller's thread. The I/O thread answers pings, finishes handshakes and sends while the game
    /// is busy; inline costs no thread hand-off, which wins when the game thread never sleeps.
    pub io_thread: bool,
    /// permessage-deflate (RFC 7692): whether a client offers it and a server accepts it, and how
    /// it compresses.
    pub deflate: crate::DeflateConfig,
    /// Server: every upgrade request waits for the game's verdict
    /// ([`crate::Server::accept_handshake`] or [`crate::Server::reject_handshake`]), reported as
    /// [`crate::ServerEvent::HandshakeRequested`]; one not answered within `handshake_timeout` is
    /// refused with HTTP 503.
    pub verify_handshakes: bool,
    /// Server: addresses and CIDR ranges of reverse proxies. From these peers only, the client's
    /// address is taken from `Forwarded` / `X-Forwarded-For` (or the PROXY protocol header).
    pub trusted_proxies: Vec<String>,
    /// Server: a connection from a trusted proxy starts with a PROXY protocol (v1 or v2) header
    /// giving the client's address; one without is closed.
    pub proxy_protocol: bool,
    /// Server: a plain GET (or HEAD) of this path is answered with HTTP 200, or 503 while draining
    /// ("" turns the health check off).
    pub health_check_path: String,
    /// Client: whether and how a lost connection is made again (off by default).
    pub reconnect: crate::ReconnectPolicy,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(3),
            close_timeout: Duration::from_secs(3),
            protocols: Vec::new(),
            extra_headers: Vec::new(),
            no_delay: true,
            heartbeat_interval: None,
            multiplayer: false,
            max_connections: None,
            allowed_origins: Vec::new(),
            tls_server: None,
            tls_client: crate::TlsClientSettings::default(),
            io_thread: true,
            deflate: crate::DeflateConfig::default(),
            verify_handshakes: false,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            health_check_path: String::new(),
            reconnect: crate::ReconnectPolicy::default(),
        }
    }
}

impl ConnectionConfig {
    /// Checks limits, protocol names and header lines before anything is opened.
    pub fn validate(&self) -> Result<(), Error> {
        self.limits.validate()?;
        self.deflate.validate()?;
        self.reconnect.validate()?;
        if self.handshake_timeout.is_zero() {
            return Err(Error::InvalidSetting {
                name: "handshake_timeout".into(),
                problem: "must be greater than 0".into(),
            });
        }
        for protocol in &self.protocols {
            validate_token("sub-protocol", protocol).map_err(Error::InvalidSubProtocol)?;
        }
        for (name, value) in &self.extra_headers {
            validate_header(name, value)?;
        }
        // The text names the setting and the entry.
        crate::proxy::TrustedProxies::parse(&self.trusted_proxies).map_err(Error::InvalidArgument)?;
        let path = &self.health_check_path;
        if !path.is_empty() && (!path.starts_with('/') || path.contains('?') || path.bytes().any(|b| !b.is_ascii_graphic())) {
            return Err(Error::InvalidSetting {
                name: "health_check_path".into(),
                problem: format!("'{}' is not a path (it starts with '/', has no query and no spaces)", path.escape_debug()),
            });
        }
        Ok(())
    }
}

/// Parses Godot-style header lines (`"Name: value"`) into pairs, rejecting malformed ones.
pub fn parse_header_lines<S: AsRef<str>>(lines: &[S]) -> Result<Vec<(String, String)>, Error> {
    lines
        .iter()
        .map(|line| {
            let line = line.as_ref();
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| Error::InvalidHeader(format!("header '{line}' is not of the form 'Name: value'")))?;
            let (name, value) = (name.trim().to_string(), value.trim().to_string());
            validate_header(&name, &value)?;
            Ok((name, value))
        })
        .collect()
}

/// A header name that is an HTTP token and a value without CR, LF or NUL.
pub(crate) fn validate_header(name: &str, value: &str) -> Result<(), Error> {
    validate_token("header name", name).map_err(Error::InvalidHeader)?;
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(Error::InvalidHeader(format!("header '{name}' has a value with CR, LF or NUL in it")));
    }
    Ok(())
}

/// An HTTP token (RFC 7230): what a header name or a sub-protocol name may be. The error says why
/// `token` is not one.
fn validate_token(what: &str, token: &str) -> Result<(), String> {
    const SEPARATORS: &[u8] = b"()<>@,;:\\\"/[]?={} \t";
    if token.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if let Some(bad) = token.bytes().find(|b| !b.is_ascii_graphic() || SEPARATORS.contains(b)) {
        return Err(format!(
            "{what} '{}' contains the character {:?}, which an HTTP token may not contain",
            token.escape_debug(),
            bad as char
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_are_split_and_trimmed() {
        let parsed = parse_header_lines(&["X-Game: chess", "Auth:token"]).unwrap();
        assert_eq!(parsed, vec![("X-Game".into(), "chess".into()), ("Auth".into(), "token".into())]);
    }

    #[test]
    fn header_lines_with_crlf_or_no_colon_are_refused() {
        assert!(parse_header_lines(&["X-Evil: a\r\nInjected: b"]).is_err());
        assert!(parse_header_lines(&["no colon here"]).is_err());
        assert!(parse_header_lines(&[": empty name"]).is_err());
    }

    #[test]
    fn protocol_names_must_be_tokens() {
        let mut config = ConnectionConfig { protocols: vec!["chat".into(), "bad name".into()], ..ConnectionConfig::default() };
        assert!(config.validate().is_err());
        config.protocols = vec!["".into()];
        assert!(config.validate().is_err());
        config.protocols = vec!["chat.v2".into()];
        assert!(config.validate().is_ok());
    }
}
