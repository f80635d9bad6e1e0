//! The one place where a core error becomes a Godot `Error` and a `push_error` message.

use godot::global::{godot_error, Error as GodotError};
use websocket_rs_core::Error;

/// The Godot `Error` code for a core error.
pub(crate) fn godot_code(err: &Error) -> GodotError {
    match err {
        Error::InvalidArgument(_) | Error::InvalidUrl { .. } => GodotError::ERR_INVALID_PARAMETER,
        Error::AlreadyListening | Error::AlreadyConnected => GodotError::ERR_ALREADY_IN_USE,
        Error::AddressInUse(_) => GodotError::ERR_ALREADY_IN_USE,
        Error::NotActive => GodotError::ERR_UNCONFIGURED,
        Error::UnknownPeer(_) => GodotError::ERR_DOES_NOT_EXIST,
        Error::PeerNotOpen(_) | Error::Unsupported(_) => GodotError::ERR_UNAVAILABLE,
        Error::OutboundFull { .. } => GodotError::ERR_OUT_OF_MEMORY,
        Error::Protocol(_) => GodotError::ERR_INVALID_DATA,
        Error::Io(_) => GodotError::ERR_CANT_CREATE,
    }
}

/// Pushes `context: error` to Godot's error output and returns the matching code.
pub(crate) fn report(context: &str, err: &Error) -> GodotError {
    godot_error!("{context}: {err}");
    godot_code(err)
}

/// `OK` for `Ok`, else the reported error's code.
pub(crate) fn to_godot<T>(context: &str, result: Result<T, Error>) -> GodotError {
    match result {
        Ok(_) => GodotError::OK,
        Err(err) => report(context, &err),
    }
}
