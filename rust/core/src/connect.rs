//! A client's way to its server: name resolution and a TCP connect to each address in turn until
//! one answers. The reactor drives it on readiness events; the connection's handshake timer
//! covers it.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// A TCP connect under way, with the addresses left to try.
pub(crate) struct Connecting {
    stream: TcpStream,
    addr: SocketAddr,
    rest: Vec<SocketAddr>,
    /// Why each address tried so far failed.
    errors: Vec<String>,
}

/// Where a connect stands after a readiness event.
pub(crate) enum Progress {
    /// Still connecting (maybe to the next address).
    Pending(Connecting),
    /// Connected to this address.
    Connected(TcpStream, SocketAddr),
    /// No address could be connected to; why.
    Failed(String),
}

/// The addresses of `host` (on the I/O thread: a name lookup may take time).
pub(crate) fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    (host, port).to_socket_addrs().map(Iterator::collect).map_err(|err| format!("host '{host}' cannot be resolved: {err}"))
}

impl Connecting {
    /// Starts a connect to the first address that takes one, registered under `token`.
    pub(crate) fn start(addrs: Vec<SocketAddr>, registry: &Registry, token: Token) -> Progress {
        Connecting::next(addrs, Vec::new(), registry, token)
    }

    fn next(mut addrs: Vec<SocketAddr>, mut errors: Vec<String>, registry: &Registry, token: Token) -> Progress {
        addrs.reverse();
        while let Some(addr) = addrs.pop() {
            match TcpStream::connect(addr) {
                Ok(mut stream) => match registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
                    Ok(()) => {
                        addrs.reverse();
                        return Progress::Pending(Connecting { stream, addr, rest: addrs, errors });
                    }
                    Err(err) => errors.push(format!("{addr}: {err}")),
                },
                Err(err) => errors.push(format!("{addr}: {err}")),
            }
        }
        Progress::Failed(format!("could not connect ({})", errors.join("; ")))
    }

    /// Checks the connect after a readiness event; on failure moves on to the next address.
    pub(crate) fn check(mut self, registry: &Registry, token: Token) -> Progress {
        let failure = match self.stream.take_error() {
            Ok(Some(err)) | Err(err) => err,
            Ok(None) => match self.stream.peer_addr() {
                Ok(_) => return Progress::Connected(self.stream, self.addr),
                Err(err) if err.kind() == io::ErrorKind::NotConnected => return Progress::Pending(self),
                Err(err) => err,
            },
        };
        let _ = registry.deregister(&mut self.stream);
        self.errors.push(format!("{}: {failure}", self.addr));
        Connecting::next(self.rest, self.errors, registry, token)
    }

    /// The socket, to deregister when the connection is dropped while connecting.
    pub(crate) fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}
