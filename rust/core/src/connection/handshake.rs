//! The HTTP upgrade: the settings every connection of a server or client shares, and the
//! server's answer to an upgrade request (sub-protocol, permessage-deflate, extra headers,
//! allowed origins).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use tungstenite::handshake::client::Request;
use tungstenite::handshake::server::{ErrorResponse, Response};
use tungstenite::http::{HeaderName, HeaderValue, StatusCode};
use tungstenite::protocol::WebSocketConfig;

use crate::config::{ConnectionConfig, Limits};
use crate::deflate::{server_answer, DeflateConfig, DeflateParams};

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
}

/// The server's answer to an upgrade request: picks the sub-protocol, accepts or declines
/// permessage-deflate, adds the extra headers, refuses origins not allowed, and records what was
/// agreed in `accepted`.
pub(crate) struct AcceptCallback {
    pub(crate) settings: std::sync::Arc<Settings>,
    pub(crate) accepted: Rc<RefCell<OpenInfo>>,
}

impl tungstenite::handshake::server::Callback for AcceptCallback {
    fn on_request(self, request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
        let settings = &self.settings;
        let offered: Vec<&str> = request
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if !settings.allowed_origins.is_empty() {
            if let Some(origin) = request.headers().get("Origin") {
                let origin = origin.to_str().unwrap_or("");
                if !settings.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) {
                    return Err(refusal(StatusCode::FORBIDDEN, format!("origin '{origin}' is not allowed")));
                }
            }
        }
        let mut info = self.accepted.borrow_mut();
        info.resource_name =
            request.uri().path_and_query().map(|pq| pq.as_str().to_string()).unwrap_or_else(|| "/".into());
        if !offered.is_empty() && !settings.protocols.is_empty() {
            let Some(selected) = settings.protocols.iter().find(|p| offered.contains(&p.as_str())) else {
                let reason = format!("none of the offered sub-protocols ({}) is supported", offered.join(", "));
                return Err(refusal(StatusCode::BAD_REQUEST, reason));
            };
            info.protocol = selected.clone();
            if let Ok(value) = HeaderValue::from_str(selected) {
                response.headers_mut().insert("Sec-WebSocket-Protocol", value);
            }
        }
        let extension_offers: Vec<&str> = request
            .headers()
            .get_all("Sec-WebSocket-Extensions")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        match server_answer(&settings.deflate, &extension_offers) {
            Ok(Some((params, answer))) => {
                if let Ok(value) = HeaderValue::from_str(&answer) {
                    info.deflate = Some(params);
                    response
                        .headers_mut()
                        .insert("Sec-WebSocket-Extensions", value);
                }
            }
            Ok(None) => {}
            Err(err) => return Err(refusal(StatusCode::BAD_REQUEST, err.to_string())),
        }
        for (name, value) in &settings.extra_headers {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                response.headers_mut().append(name, value);
            }
        }
        Ok(response)
    }
}

/// An HTTP error response with `status` and `reason` as its body.
fn refusal(status: StatusCode, reason: String) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason));
    *response.status_mut() = status;
    response
}
