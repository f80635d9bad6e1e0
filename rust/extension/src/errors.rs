//! The one place where a core error becomes a Godot `Error` and a `push_error` message. The
//! core's texts speak Rust; the GDScript calls that help are added here.

use godot::global::{godot_error, Error as GodotError};
use websocket_rs_core::Error;

/// The Godot `Error` code for a core error.
pub(crate) fn godot_code(err: &Error) -> GodotError {
    match err {
        Error::InvalidSetting { .. }
        | Error::InvalidHeader(_)
        | Error::InvalidSubProtocol(_)
        | Error::InvalidPort(_)
        | Error::InvalidBindAddress(_)
        | Error::InvalidCloseCode(_)
        | Error::CloseReasonTooLong(_)
        | Error::TextNotUtf8
        | Error::NoPacket
        | Error::InvalidArgument(_)
        | Error::InvalidUrl { .. } => GodotError::ERR_INVALID_PARAMETER,
        Error::AlreadyListening | Error::AlreadyConnected => GodotError::ERR_ALREADY_IN_USE,
        Error::AddressInUse(_) => GodotError::ERR_ALREADY_IN_USE,
        Error::NotActive => GodotError::ERR_UNCONFIGURED,
        Error::UnknownPeer(_) | Error::NoHandshake(_) => GodotError::ERR_DOES_NOT_EXIST,
        // The first refusal's code (there is at least one).
        Error::NotDelivered(failures) => failures.first().map_or(GodotError::FAILED, |(_, err)| godot_code(err)),
        Error::PeerNotOpen(_) | Error::Unsupported(_) => GodotError::ERR_UNAVAILABLE,
        Error::OutboundFull { .. } => GodotError::ERR_OUT_OF_MEMORY,
        Error::Protocol(_) => GodotError::ERR_INVALID_DATA,
        Error::Io(_) => GodotError::ERR_CANT_CREATE,
    }
}

/// What a GDScript user can do about `err`, in GDScript's terms ("" when the text says it all).
fn hint(err: &Error) -> &'static str {
    match err {
        Error::AlreadyListening => "; call stop() first",
        Error::AlreadyConnected => "; call disconnect_from_host() first",
        Error::OutboundFull { .. } => ", poll() and try again",
        Error::NotDelivered(failures) if failures.iter().any(|(_, err)| matches!(err, Error::OutboundFull { .. })) => {
            "; for a full queue, poll() and try again"
        }
        Error::InvalidCloseCode(_) => " (or -1 to drop at once)",
        Error::InvalidBindAddress(_) => " or \"*\"",
        _ => "",
    }
}

/// Pushes `context: error` to Godot's error output and returns the matching code.
pub(crate) fn report(context: &str, err: &Error) -> GodotError {
    godot_error!("{context}: {err}{}", hint(err));
    godot_code(err)
}

/// `OK` for `Ok`, else the reported error's code.
pub(crate) fn to_godot<T>(context: &str, result: Result<T, Error>) -> GodotError {
    match result {
        Ok(_) => GodotError::OK,
        Err(err) => report(context, &err),
    }
}
