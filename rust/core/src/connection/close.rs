//! How a connection closes: the close state of an open connection, how it ended, and the close
//! code owed for each error (RFC 6455 sections 7.1.7 and 7.4).

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;

use crate::utf8_guard;

/// Where an open connection is in the close handshake. Each state holds what it needs and no
/// more, so that no mix of "we closed", "they closed" and "failing" can be written.
#[derive(Debug)]
pub(crate) enum CloseState {
    /// No close frame sent or received: messages flow both ways.
    Active,
    /// We sent a close frame; waiting (until the close timer) for the other side's.
    ClosedByUs,
    /// The other side sent this close frame first; our reply is queued. Ends when the reply is
    /// out (server) or the other side closes TCP (client).
    ClosedByPeer { code: u16, reason: String },
    /// We closed first and the other side answered with this frame; ends when TCP closes.
    Acknowledged { code: u16, reason: String },
    /// The other side broke the protocol or a limit after the messages reported so far; reading
    /// has stopped. This close frame goes out when the game answers `Fail` (or at the close
    /// timer), so that its answers to those messages go out first.
    Failing { frame: CloseFrame, error: String },
}

impl CloseState {
    /// How the connection ends if the transport closes now.
    pub(crate) fn ending_on_transport_close(&self) -> Ending {
        match self {
            CloseState::ClosedByPeer { code, reason } | CloseState::Acknowledged { code, reason } => {
                Ending::Clean { code: *code, reason: reason.clone() }
            }
            _ => Ending::Lost,
        }
    }
}

/// How a connection ended, as reported to the game.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The close handshake completed; the other side's close code and reason.
    Clean { code: u16, reason: String },
    /// The connection was lost or dropped without a close handshake.
    Lost,
    /// We dropped it because the other side broke the protocol, a limit or the heartbeat; why.
    Failed { error: String },
}

/// A readable cause for a failed handshake (TLS causes spelled out).
pub(crate) fn describe_error(err: &tungstenite::Error) -> String {
    match err {
        tungstenite::Error::Io(io) => crate::tls::describe_io_error(io),
        other => other.to_string(),
    }
}

/// The close code owed to a peer that broke the protocol or a limit, if any.
pub(crate) fn close_code_for_error(err: &tungstenite::Error) -> Option<CloseCode> {
    match err {
        tungstenite::Error::Capacity(_) => Some(CloseCode::Size),
        tungstenite::Error::Utf8(_) => Some(CloseCode::Invalid),
        tungstenite::Error::Io(err) if utf8_guard::is_invalid_utf8(err) => Some(CloseCode::Invalid),
        // The TCP connection ended without a close frame: a lost connection, not a violation.
        tungstenite::Error::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => None,
        tungstenite::Error::Protocol(_) => Some(CloseCode::Protocol),
        _ => None,
    }
}

/// The close frame owed for `err` and how the connection ends, or `None` when the error is a
/// lost connection rather than the other side's fault.
pub(crate) fn failure_for_error(err: &tungstenite::Error) -> Option<(CloseFrame, String)> {
    let code = close_code_for_error(err)?;
    let number = u16::from(code);
    let hint = if matches!(err, tungstenite::Error::Capacity(_)) { " (over max_message_size)" } else { "" };
    let frame = CloseFrame { code, reason: short_reason(err).into() };
    Some((frame, format!("closed with {number}: {err}{hint}")))
}

/// How a connection ends after `err`.
pub(crate) fn ending_for_error(err: &tungstenite::Error) -> Ending {
    match failure_for_error(err) {
        Some((_, error)) => Ending::Failed { error },
        None => Ending::Lost,
    }
}

/// A close reason that fits a close frame (at most 123 bytes).
fn short_reason(err: &tungstenite::Error) -> String {
    let mut text = err.to_string();
    while text.len() > 123 {
        text.pop();
    }
    text
}
