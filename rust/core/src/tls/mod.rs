//! TLS for wss://, independent of the backend: the settings a game gives, and [`NetStream`], the
//! byte stream the reactor runs WebSocket over (plain TCP, or TLS over it). The backend is rustls
//! (default, with the Mozilla roots of `webpki-roots`) or, with the cargo feature `native-tls`,
//! the platform's TLS library; both take the same settings and pass the same tests.

use std::fmt;
use std::io::{self, Read, Write};

use mio::net::TcpStream;

use crate::Error;

#[cfg(feature = "native-tls")]
#[path = "native_backend.rs"]
mod backend;
#[cfg(all(feature = "rustls", not(feature = "native-tls")))]
#[path = "rustls_backend.rs"]
mod backend;

#[cfg(any(feature = "rustls", feature = "native-tls"))]
pub(crate) use backend::{ClientTls, ServerTls};

/// The name of the TLS backend in this build.
pub const BACKEND: &str = if cfg!(feature = "native-tls") {
    "native-tls"
} else if cfg!(feature = "rustls") {
    "rustls"
} else {
    "none"
};

/// What a server needs to serve wss://: its private key and certificate chain, as PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsServerSettings {
    /// The private key (PKCS#1, PKCS#8 or SEC1 PEM).
    pub private_key_pem: String,
    /// The server's certificate, then any intermediate certificates (PEM).
    pub certificate_chain_pem: String,
}

impl fmt::Debug for TlsServerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("TlsServerSettings").field("certificate_chain_pem", &self.certificate_chain_pem).finish_non_exhaustive()
    }
}

/// How a client checks the server of a wss:// URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsClientSettings {
    /// Verify the certificate: against `trusted_chain_pem` when given (exact match or chain),
    /// else against the Mozilla roots; the name checked is `common_name_override` or the URL's host.
    Verify {
        /// Certificates to trust instead of the public roots (PEM), if any.
        trusted_chain_pem: Option<String>,
        /// The name the certificate must carry, when it differs from the URL's host.
        common_name_override: Option<String>,
    },
    /// Accept any certificate (testing only: an attacker can read and change the traffic).
    Unsafe,
}

impl Default for TlsClientSettings {
    fn default() -> Self {
        TlsClientSettings::Verify { trusted_chain_pem: None, common_name_override: None }
    }
}

/// A connection's byte stream: plain TCP, or TLS over it.
pub(crate) enum NetStream {
    /// ws://
    Plain(TcpStream),
    /// wss:// from a trusted proxy that sends a PROXY protocol header first, in plain bytes:
    /// the connection reads exactly that header, then [`NetStream::start_tls`] wraps the socket.
    /// Writing fails until then. `None` once a failed `start_tls` consumed it.
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    ProxyThenTls(Option<Box<(TcpStream, ServerSide)>>),
    /// wss://
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    Tls(backend::TlsStream),
}

impl NetStream {
    /// The TCP socket underneath (None only after a failed TLS handshake consumed it).
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            NetStream::Plain(tcp) => Some(tcp),
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            NetStream::ProxyThenTls(pending) => pending.as_ref().map(|pending| &pending.0),
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            NetStream::Tls(tls) => tls.tcp(),
        }
    }

    /// Whether a PROXY protocol header is to be read before TLS starts.
    pub(crate) fn tls_pending(&self) -> bool {
        #[cfg(any(feature = "rustls", feature = "native-tls"))]
        if let NetStream::ProxyThenTls(_) = self {
            return true;
        }
        false
    }

    /// Copies what the socket holds into `buf` without taking it (the PROXY header before TLS).
    pub(crate) fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?.peek(buf)
    }

    /// After the PROXY header: the TLS handshake starts on the socket (nothing for other
    /// streams).
    pub(crate) fn start_tls(&mut self) -> io::Result<()> {
        #[cfg(any(feature = "rustls", feature = "native-tls"))]
        if let NetStream::ProxyThenTls(pending) = self {
            let (tcp, tls) = *pending.take().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
            *self = tls.accept(tcp)?;
        }
        Ok(())
    }

    /// See [`NetStream::tcp`].
    pub(crate) fn tcp_mut(&mut self) -> Option<&mut TcpStream> {
        match self {
            NetStream::Plain(tcp) => Some(tcp),
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            NetStream::ProxyThenTls(pending) => pending.as_mut().map(|pending| &mut pending.0),
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            NetStream::Tls(tls) => tls.tcp_mut(),
        }
    }
}

impl Read for NetStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            NetStream::Plain(tcp) => tcp.read(buf),
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            NetStream::ProxyThenTls(pending) => match pending {
                Some(pending) => pending.0.read(buf),
                None => Err(io::ErrorKind::NotConnected.into()),
            },
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            NetStream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for NetStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            NetStream::Plain(tcp) => tcp.write(buf),
            // Nothing goes out in plain bytes on a wss:// connection.
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            NetStream::ProxyThenTls(_) => Err(io::ErrorKind::NotConnected.into()),
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            NetStream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            NetStream::Plain(tcp) => tcp.flush(),
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            NetStream::ProxyThenTls(_) => Ok(()),
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            NetStream::Tls(tls) => tls.flush(),
        }
    }
}

/// A ready server-side TLS setup, or the error that says why there is none.
pub(crate) fn server(settings: &TlsServerSettings) -> Result<ServerSide, Error> {
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    {
        ServerTls::new(settings).map(ServerSide)
    }
    #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
    {
        let _ = settings;
        Err(Error::Unsupported("this build has no TLS backend (cargo feature rustls or native-tls)".into()))
    }
}

/// A ready client-side TLS setup for a server reached as `host`.
pub(crate) fn client(settings: &TlsClientSettings, host: &str) -> Result<ClientSide, Error> {
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    {
        ClientTls::new(settings, host).map(ClientSide)
    }
    #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
    {
        let _ = (settings, host);
        Err(Error::Unsupported("this build has no TLS backend (cargo feature rustls or native-tls)".into()))
    }
}

/// Server-side TLS, shared by every accepted connection.
#[derive(Clone)]
pub(crate) struct ServerSide(#[cfg(any(feature = "rustls", feature = "native-tls"))] ServerTls);

impl fmt::Debug for ServerSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Holds the private key: never printed.
        f.write_str("ServerSide(..)")
    }
}

impl ServerSide {
    /// Wraps an accepted socket; the handshake goes on as the stream is read and written.
    pub(crate) fn accept(&self, tcp: TcpStream) -> io::Result<NetStream> {
        #[cfg(any(feature = "rustls", feature = "native-tls"))]
        {
            self.0.accept(tcp).map(NetStream::Tls)
        }
        #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
        {
            Ok(NetStream::Plain(tcp))
        }
    }
}

/// Client-side TLS for one server.
pub(crate) struct ClientSide(#[cfg(any(feature = "rustls", feature = "native-tls"))] ClientTls);

impl ClientSide {
    /// Wraps a connected socket; the handshake goes on as the stream is read and written.
    pub(crate) fn connect(&self, tcp: TcpStream) -> io::Result<NetStream> {
        #[cfg(any(feature = "rustls", feature = "native-tls"))]
        {
            self.0.connect(tcp).map(NetStream::Tls)
        }
        #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
        {
            Ok(NetStream::Plain(tcp))
        }
    }
}

/// A readable cause for a failed handshake's I/O error (TLS causes spelled out).
pub(crate) fn describe_io_error(err: &io::Error) -> String {
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    if let Some(text) = backend::describe_io_error(err) {
        return text;
    }
    err.to_string()
}
