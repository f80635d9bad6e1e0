//! Godot 4's `WebSocketMultiplayerPeer` wire format. Once a connection is open the server sends
//! the client its peer id as one binary message of four bytes (little-endian int32); every
//! message after that is a raw SceneMultiplayer packet with no header of ours.

use crate::packet::Packet;
use crate::{Bytes, Error, PeerId};

/// The message that tells a client its peer id.
pub fn id_message(id: PeerId) -> Packet {
    Packet { data: Bytes::copy_from_slice(&id.to_le_bytes()), is_text: false }
}

/// Reads a peer id message. Godot's client refuses anything but four bytes holding an id of 2
/// or more (1 is the server; 0 and negative ids mean "all" and "all but").
pub fn parse_id_message(data: &[u8]) -> Result<PeerId, Error> {
    let bytes: [u8; 4] = data.try_into().map_err(|_| {
        Error::Protocol(format!("the first multiplayer message must be a 4-byte peer id, it has {} bytes", data.len()))
    })?;
    let id = PeerId::from_le_bytes(bytes);
    if id < 2 {
        return Err(Error::Protocol(format!("the server assigned peer id {id}; ids below 2 are not valid")));
    }
    Ok(id)
}

/// Which connected peers a multiplayer packet goes to, given MultiplayerPeer's target peer: 0 is
/// every peer, a positive id that peer, a negative id every peer but that one.
pub fn targets(target: PeerId, peers: impl Iterator<Item = PeerId>) -> Vec<PeerId> {
    match target {
        0 => peers.collect(),
        t if t > 0 => vec![t],
        t => peers.filter(|&p| p != t.saturating_neg()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_round_trip() {
        let packet = id_message(0x1234_5678);
        assert_eq!(&packet.data[..], &[0x78, 0x56, 0x34, 0x12]);
        assert!(!packet.is_text);
        assert_eq!(parse_id_message(&packet.data).ok(), Some(0x1234_5678));
    }

    #[test]
    fn bad_ids_are_refused() {
        assert!(parse_id_message(&[2, 0, 0]).is_err());
        assert!(parse_id_message(&[2, 0, 0, 0, 0]).is_err());
        assert!(parse_id_message(&1i32.to_le_bytes()).is_err());
        assert!(parse_id_message(&0i32.to_le_bytes()).is_err());
        assert!(parse_id_message(&(-5i32).to_le_bytes()).is_err());
        assert_eq!(parse_id_message(&2i32.to_le_bytes()).ok(), Some(2));
    }

    #[test]
    fn target_selection() {
        let peers = || [2, 3, 4].into_iter();
        assert_eq!(targets(0, peers()), vec![2, 3, 4]);
        assert_eq!(targets(3, peers()), vec![3]);
        assert_eq!(targets(-3, peers()), vec![2, 4]);
        assert_eq!(targets(i32::MIN, peers()), vec![2, 3, 4]);
    }
}
