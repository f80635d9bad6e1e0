//! The client as the game thread sees it: connect to a URL, poll for events, talk to peer 1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue, Uri};

use crate::command::PeerCommand;
use crate::connection::Ending;
use crate::flow::FlowControl;
use crate::multiplayer;
use crate::peer::PeerHandle;
use crate::reactor::{ReactorEvent, ReactorHandle, Start};
use crate::stats::EndpointStatistics;
use crate::{ConnectionConfig, Error, PeerId, SERVER_PEER_ID};

/// Something that happened on the client since the last `poll()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The handshake finished; messages can flow.
    ConnectionEstablished {
        /// The sub-protocol the server picked ("" when none).
        protocol: String,
    },
    /// A packet from the server is waiting in the queue.
    DataReceived,
    /// The server sent a close frame; keep polling until `ConnectionClosed`.
    CloseRequested {
        /// Its close code.
        code: u16,
        /// Its close reason.
        reason: String,
    },
    /// The connection is gone.
    ConnectionClosed {
        /// Whether the close handshake completed.
        was_clean: bool,
        /// Why the client dropped the connection, when the server broke the protocol, a limit or
        /// the heartbeat.
        error: Option<String>,
    },
    /// Connecting failed (TCP, handshake or timeout).
    ConnectionError {
        /// What went wrong, readable by a person.
        reason: String,
    },
}

/// A WebSocket client: one connection to one server, seen as peer 1.
#[derive(Debug, Default)]
pub struct Client {
    reactor: Option<ReactorHandle>,
    peer: Option<PeerHandle>,
    target: Option<(String, u16)>,
    /// Multiplayer mode (set by `connect`'s config).
    multiplayer: bool,
    /// Multiplayer mode: the id the server assigned (None until its id message arrives).
    unique_id: Option<PeerId>,
    /// Multiplayer mode: the socket is open but the id has not arrived yet; the sub-protocol to
    /// report once it does, and when to give up.
    awaiting_id: Option<(String, Instant)>,
    /// Whether `ConnectionEstablished` was reported for the current connection.
    established: bool,
    handshake_timeout: Duration,
    /// The server broke the protocol after the packets of the last `poll`: close at the next.
    failing: bool,
    /// The connection's totals, for the process registry (the editor's monitors).
    stats: Option<EndpointStatistics>,
}

impl Client {
    /// A client that is not connected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts connecting to `url` (`ws://host[:port][/path]`). Returns at once; the outcome comes
    /// from `poll()` as `ConnectionEstablished` or `ConnectionError`.
    pub fn connect(&mut self, url: &str, config: ConnectionConfig) -> Result<(), Error> {
        if self.reactor.is_some() {
            return Err(Error::AlreadyConnected);
        }
        config.validate()?;
        let invalid = |reason: &str| Error::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
        let uri: Uri = url.parse().map_err(|err| invalid(&format!("{err}")))?;
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            Some(other) => return Err(invalid(&format!("scheme '{other}' is not ws:// or wss://"))),
            None => return Err(invalid("it has no scheme; start it with ws:// or wss://")),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| invalid("it has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tls = if secure {
            Some(crate::tls::client(&config.tls_client, &host)?)
        } else {
            None
        };
        if port == 0 {
            return Err(invalid("port 0 cannot be connected to"));
        }
        let mut request = uri.clone().into_client_request().map_err(|err| invalid(&err.to_string()))?;
        if !config.protocols.is_empty() {
            let value = HeaderValue::from_str(&config.protocols.join(", "))
                .map_err(|err| Error::InvalidSubProtocol(format!("sub-protocols: {err}")))?;
            request.headers_mut().insert("Sec-WebSocket-Protocol", value);
        }
        if let Some(offer) = crate::deflate::client_offer(&config.deflate) {
            let value = HeaderValue::from_str(&offer).map_err(|err| {
                Error::InvalidHeader(format!("Sec-WebSocket-Extensions '{offer}': {err}"))
            })?;
            request
                .headers_mut()
                .insert("Sec-WebSocket-Extensions", value);
        }
        for (name, value) in &config.extra_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|err| Error::InvalidHeader(format!("header name '{name}': {err}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|err| Error::InvalidHeader(format!("header value '{value}': {err}")))?;
            request.headers_mut().append(name, value);
        }
        let flow = Arc::new(FlowControl::default());
        let start = Start::Connect { id: SERVER_PEER_ID, host: host.clone(), port, request: Box::new(request), flow: flow.clone(), tls };
        let reactor = ReactorHandle::spawn(start, &config)?;
        self.stats = Some(EndpointStatistics::new(reactor.counters.clone()));
        self.peer = Some(PeerHandle::new(SERVER_PEER_ID, flow, reactor.commands.clone(), &config, url.to_string()));
        self.reactor = Some(reactor);
        self.target = Some((host, port));
        self.multiplayer = config.multiplayer;
        self.unique_id = None;
        self.awaiting_id = None;
        self.established = false;
        self.handshake_timeout = config.handshake_timeout;
        Ok(())
    }

    /// Starts the close handshake (code and reason as in `PeerHandle::close`); keep polling until
    /// `ConnectionClosed`.
    pub fn disconnect(&mut self, code: u16, reason: &str) -> Result<(), Error> {
        let peer = self.peer.as_ref().ok_or(Error::NotActive)?;
        peer.close(code, reason)
    }

    /// Drops the connection at once, without a close frame; `ConnectionClosed` (or, before the
    /// handshake finished, `ConnectionError`) follows from `poll()`.
    pub fn abort(&mut self) -> Result<(), Error> {
        let peer = self.peer.as_ref().ok_or(Error::NotActive)?;
        peer.abort();
        Ok(())
    }
    /// Without an I/O thread ([`ConnectionConfig::io_thread`] off): writes what the game has sent
    /// since the last `poll()` now rather than at the next one (nothing is read). The Godot
    /// binding calls it at the end of its `poll()` (after the signals) and when the game has taken
    /// every waiting multiplayer packet, so that answers leave in the same frame. Does nothing
    /// with an I/O thread.
    pub fn write_queued(&self) {
        if let Some(reactor) = &self.reactor {
            reactor.write_queued();
        }
    }


    /// Takes in what the I/O thread did since the last call (or, without one, serves the socket
    /// now) and appends the events to `out`.
    pub fn poll(&mut self, out: &mut Vec<ClientEvent>) {
        if let (Some(stats), Some(peer), Some(_)) = (&mut self.stats, &self.peer, &self.reactor) {
            let established = self.established;
            stats.publish_if_due(|| {
                let (inbound, outbound) = peer.queued_bytes();
                (u64::from(established), inbound as u64, outbound as u64)
            });
        }
        let (Some(reactor), Some(peer)) = (&mut self.reactor, &self.peer) else { return };
        let mut ended = false;
        if std::mem::take(&mut self.failing) {
            reactor.commands.to_peer(SERVER_PEER_ID, PeerCommand::Fail);
        }
        reactor.serve_inline();
        while let Ok(event) = reactor.events.try_recv() {
            match event {
                ReactorEvent::Opened { info, .. } => {
                    let protocol = info.protocol.clone();
                    peer.mark_open(info);
                    if self.multiplayer {
                        // Connected only once the server has said which id we have.
                        self.awaiting_id = Some((protocol, Instant::now() + self.handshake_timeout));
                    } else {
                        self.established = true;
                        out.push(ClientEvent::ConnectionEstablished { protocol });
                    }
                }
                ReactorEvent::Packet { packet, .. } => {
                    peer.push_inbound(packet);
                    if let Some((protocol, _)) = self.awaiting_id.take() {
                        // The id message goes through the queue so its room is freed as usual.
                        let id_message = peer.recv().map(|p| p.data).unwrap_or_default();
                        match multiplayer::parse_id_message(&id_message) {
                            Ok(id) => {
                                self.unique_id = Some(id);
                                self.established = true;
                                out.push(ClientEvent::ConnectionEstablished { protocol });
                            }
                            Err(err) => {
                                peer.abort();
                                peer.mark_closed(&Ending::Lost);
                                out.push(ClientEvent::ConnectionError { reason: err.to_string() });
                                ended = true;
                                break;
                            }
                        }
                    } else {
                        out.push(ClientEvent::DataReceived);
                    }
                }
                ReactorEvent::CloseRequested { code, reason, .. } => {
                    peer.mark_close_requested(code, &reason);
                    out.push(ClientEvent::CloseRequested { code, reason });
                }
                ReactorEvent::Closed { ending, .. } => {
                    peer.mark_closed(&ending);
                    if self.established {
                        let was_clean = matches!(ending, Ending::Clean { .. });
                        let error = match ending {
                            Ending::Failed { error } => Some(error),
                            Ending::Clean { .. } | Ending::Lost => None,
                        };
                        out.push(ClientEvent::ConnectionClosed { was_clean, error });
                    } else {
                        let code = match &ending {
                            Ending::Clean { code, .. } => i32::from(*code),
                            Ending::Lost | Ending::Failed { .. } => -1,
                        };
                        let reason = format!("the connection closed before the server sent a multiplayer id (code {code})");
                        out.push(ClientEvent::ConnectionError { reason });
                    }
                    ended = true;
                }
                ReactorEvent::ConnectFailed { reason, .. } => {
                    peer.mark_closed(&Ending::Lost);
                    out.push(ClientEvent::ConnectionError { reason });
                    ended = true;
                }
                ReactorEvent::Failing { .. } => self.failing = true,
                // Only servers accept.
                // Server side only.
                ReactorEvent::HandshakeFailed { .. } | ReactorEvent::HandshakeRequested { .. } => {}
            }
        }
        if let Some((_, deadline)) = &self.awaiting_id {
            if !ended && Instant::now() >= *deadline {
                peer.abort();
                peer.mark_closed(&Ending::Lost);
                let timeout = self.handshake_timeout;
                out.push(ClientEvent::ConnectionError {
                    reason: format!("the server sent no multiplayer id within {timeout:?} (is it a Godot multiplayer server?)"),
                });
                ended = true;
            }
        }
        if ended {
            self.awaiting_id = None;
            self.established = false;
            // The connection is over: end its I/O thread. The peer stays readable until the next
            // connect, so packets that arrived before the close can still be taken.
            if let Some(mut reactor) = self.reactor.take() {
                reactor.shutdown();
            }
            if let Some(stats) = &mut self.stats {
                stats.retire();
            }
        }
    }

    /// Whether the connection is open and, in multiplayer mode, the server has sent our id.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// Multiplayer mode: the id the server assigned us, once it has arrived.
    pub fn unique_id(&self) -> Option<PeerId> {
        self.unique_id
    }

    /// Ends the connection at once: a 1001 close frame is sent (best effort), the socket closed,
    /// and no further event is reported for it.
    pub fn close_now(&mut self) {
        if let Some(mut reactor) = self.reactor.take() {
            reactor.shutdown();
        }
        if let Some(stats) = &mut self.stats {
            stats.retire();
        }
        if let Some(peer) = &self.peer {
            peer.mark_closed(&Ending::Lost);
        }
        self.awaiting_id = None;
        self.established = false;
        self.unique_id = None;
    }

    /// Whether a connection is being made or is open.
    pub fn is_active(&self) -> bool {
        self.reactor.is_some()
    }

    /// The server, as peer 1 (also after the connection ended, until the next connect).
    pub fn peer(&self) -> Option<&PeerHandle> {
        self.peer.as_ref()
    }

    /// Host and port given to the last `connect`.
    pub fn target(&self) -> Option<(&str, u16)> {
        self.target.as_ref().map(|(h, p)| (h.as_str(), *p))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(mut reactor) = self.reactor.take() {
            reactor.shutdown();
        }
    }
}
