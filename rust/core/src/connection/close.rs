//! How a connection closes: the close state of an open connection, how it ended, and the close
//! code owed for each error (RFC 6455 sections 7.1.7 and 7.4).

use super::protocol::Violation;

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
    /// has stopped. A close frame with this code and reason goes out when the game answers
    /// `Fail` (or at the close timer), so that its answers to those messages go out first;
    /// `error` says why, for the game.
    Failing { code: u16, reason: String, error: String },
}

impl CloseState {
    /// The state of a connection failing for `violation` (RFC 6455 section 7.1.7), with the
    /// close code owed (section 7.4.1).
    pub(crate) fn failing(violation: &Violation) -> CloseState {
        let code = violation.close_code();
        let mut reason = violation.to_string();
        // A close reason fits a control frame with its code: at most 123 bytes.
        while reason.len() > 123 {
            reason.pop();
        }
        CloseState::Failing { code, error: format!("closed with {code}: {violation}"), reason }
    }

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
