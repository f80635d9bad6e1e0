//! Work the game thread asks of the I/O thread, and the channel that carries it.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use mio::Waker;

use crate::packet::Packet;
use crate::reactor::Reactor;
use crate::PeerId;

/// Work the game thread asks of the I/O thread.
#[derive(Debug)]
pub(crate) enum Command {
    /// Work for one connection, done by its [`crate::connection::Connection`].
    Peer { id: PeerId, command: PeerCommand },
    /// Several messages for one connection, in order (their room was reserved at once): one
    /// command instead of one per message.
    SendMany { id: PeerId, packets: Vec<Packet> },
    /// TCP_NODELAY on one connection's socket.
    SetNoDelay { id: PeerId, enabled: bool },
    /// Server: turn new connections away at accept, or stop doing so.
    SetRefuseNew(bool),
    /// Server: answer new upgrades and health checks with 503 from now on.
    Drain,
    /// Server: new connections use this TLS key and certificate (open ones keep theirs).
    ReloadTls(crate::tls::ServerSide),
    /// Close every connection and end the I/O thread.
    Shutdown,
}

/// Work for one connection.
#[derive(Debug)]
pub(crate) enum PeerCommand {
    /// Queue a message (its room was reserved with `FlowControl::reserve_outbound`).
    Send(Packet),
    /// Queue a message that other peers are sent too (`Server::broadcast`; room reserved as for
    /// `Send`): compressed once for all peers with the same compression setting.
    SendShared(std::sync::Arc<crate::packet::SharedMessage>),
    /// Start the close handshake.
    Close { code: u16, reason: String },
    /// Drop the connection at once, without a close frame.
    Abort,
    /// The game made room in the inbound queue: read the socket again.
    ResumeRead,
    /// The game has handled everything that arrived before the peer broke the protocol: close
    /// it now (see `ConnectionEvent::Failing`).
    Fail,
    /// Ping every this often (`None`: never).
    SetHeartbeat(Option<Duration>),
    /// Server: the game accepts a held upgrade request; these headers join the 101 answer.
    AcceptHandshake { headers: Vec<(String, String)> },
    /// Server: the game refuses a held upgrade request with this HTTP status and body.
    RejectHandshake { status: u16, body: String },
}

/// How a command reaches the I/O thread's attention.
#[derive(Clone, Debug)]
pub(crate) enum Wake {
    /// An I/O thread that may sleep: wake it, once per batch of commands.
    Thread { waker: Arc<Waker>, pending: Arc<AtomicBool> },
    /// The sockets are served inside `poll()`: the next poll takes the command, nobody to wake.
    /// The flag says that commands wait; the reactor is there to write them at once
    /// ([`CommandSender::write_queued`]).
    Inline { queued: Rc<Cell<bool>>, reactor: Weak<RefCell<Box<Reactor>>> },
}

/// The game thread's end of the command channel; wakes the I/O thread only when it sleeps.
#[derive(Clone, Debug)]
pub(crate) struct CommandSender {
    tx: Sender<Command>,
    wake: Wake,
}

impl CommandSender {
    pub(crate) fn new(tx: Sender<Command>, wake: Wake) -> Self {
        CommandSender { tx, wake }
    }

    /// Queues a command; false when the I/O thread has ended.
    pub(crate) fn send(&self, command: Command) -> bool {
        if self.tx.send(command).is_err() {
            return false;
        }
        match &self.wake {
            Wake::Thread { waker, pending } => {
                if !pending.swap(true, Ordering::SeqCst) {
                    // A failed wake means the thread is gone; the command is then moot.
                    let _ = waker.wake();
                }
            }
            Wake::Inline { queued, .. } => queued.set(true),
        }
        true
    }

    /// Inline mode: carries out the commands queued since the last call (sends, closes) and
    /// writes what they owe now, instead of at the next `poll()`; nothing is read. Does nothing
    /// when none wait, when an I/O thread serves, or inside a `poll()` (which writes them itself).
    pub(crate) fn write_queued(&self) {
        let Wake::Inline { queued, reactor } = &self.wake else { return };
        if !queued.get() {
            return;
        }
        let Some(reactor) = reactor.upgrade() else { return };
        let Ok(mut serving) = reactor.try_borrow_mut() else { return };
        queued.set(false);
        serving.write_queued();
    }

    /// Inline mode: the next `poll()` takes every queued command.
    pub(crate) fn clear_queued(&self) {
        if let Wake::Inline { queued, .. } = &self.wake {
            queued.set(false);
        }
    }

    /// Queues work for the connection of peer `id`; false when the I/O thread has ended.
    pub(crate) fn to_peer(&self, id: PeerId, command: PeerCommand) -> bool {
        self.send(Command::Peer { id, command })
    }
}
