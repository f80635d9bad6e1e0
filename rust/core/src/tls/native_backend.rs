//! The native-tls backend (cargo feature `native-tls`): the platform's TLS library (OpenSSL on
//! Linux, Secure Transport on macOS, SChannel on Windows). Same settings and the same Godot-style
//! trust as the rustls backend: a trusted certificate given by the game replaces the system roots.

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use native_tls::{Certificate, HandshakeError, Identity, MidHandshakeTlsStream, TlsAcceptor, TlsConnector};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{TlsClientSettings, TlsServerSettings};
use crate::Error;

/// A native-tls acceptor with the server's identity.
#[derive(Clone)]
pub(crate) struct ServerTls(TlsAcceptor);

impl ServerTls {
    /// Builds it from PEM settings.
    pub(crate) fn new(settings: &TlsServerSettings) -> Result<Self, Error> {
        let certs = CertificateDer::pem_slice_iter(settings.certificate_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| Error::InvalidArgument(format!("the server certificate is not a PEM certificate: {err}")))?;
        if certs.is_empty() {
            return Err(Error::InvalidArgument("the server certificate holds no certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(settings.private_key_pem.as_bytes())
            .map_err(|err| Error::InvalidArgument(format!("the private key is not a PEM private key: {err}")))?;
        let pkcs8 = match key {
            PrivateKeyDer::Pkcs8(der) => der.secret_pkcs8_der().to_vec(),
            // Godot writes RSA keys as PKCS#1; native-tls takes PKCS#8 on every platform.
            PrivateKeyDer::Pkcs1(der) => rsa_pkcs1_to_pkcs8(der.secret_pkcs1_der()),
            _ => return Err(Error::InvalidArgument("the private key must be RSA (PKCS#1) or PKCS#8 for the native-tls backend".into())),
        };
        let key_pem = pem("PRIVATE KEY", &pkcs8);
        let chain_pem: String = certs.iter().map(|c| pem("CERTIFICATE", c.as_ref())).collect();
        let identity = Identity::from_pkcs8(chain_pem.as_bytes(), key_pem.as_bytes())
            .map_err(|err| Error::InvalidArgument(format!("the private key does not fit the certificate: {err}")))?;
        let acceptor = TlsAcceptor::new(identity).map_err(|err| Error::InvalidArgument(format!("TLS: {err}")))?;
        Ok(ServerTls(acceptor))
    }

    /// Starts the TLS handshake on an accepted socket; it goes on as the stream is used.
    pub(crate) fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream> {
        TlsStream::from_handshake(self.0.accept(tcp))
    }
}

/// A native-tls connector and the name to check.
pub(crate) struct ClientTls {
    connector: TlsConnector,
    name: String,
}

impl ClientTls {
    /// Builds it from the settings, for a server reached as `host`.
    pub(crate) fn new(settings: &TlsClientSettings, host: &str) -> Result<Self, Error> {
        let mut builder = TlsConnector::builder();
        let mut name = host.to_string();
        match settings {
            TlsClientSettings::Unsafe => {
                builder.danger_accept_invalid_certs(true).danger_accept_invalid_hostnames(true);
            }
            TlsClientSettings::Verify { trusted_chain_pem, common_name_override } => {
                if let Some(pem) = trusted_chain_pem {
                    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|err| Error::InvalidArgument(format!("the trusted certificate is not a PEM certificate: {err}")))?;
                    if certs.is_empty() {
                        return Err(Error::InvalidArgument("the trusted certificate holds no certificate".into()));
                    }
                    builder.disable_built_in_roots(true);
                    for cert in certs {
                        let cert = Certificate::from_der(cert.as_ref())
                            .map_err(|err| Error::InvalidArgument(format!("trusted certificate: {err}")))?;
                        builder.add_root_certificate(cert);
                    }
                }
                if let Some(over) = common_name_override.as_deref().filter(|n| !n.is_empty()) {
                    name = over.to_string();
                }
            }
        }
        let connector = builder.build().map_err(|err| Error::InvalidArgument(format!("TLS: {err}")))?;
        Ok(ClientTls { connector, name })
    }

    /// Starts the TLS handshake on a connected socket; it goes on as the stream is used.
    pub(crate) fn connect(&self, tcp: TcpStream) -> io::Result<TlsStream> {
        TlsStream::from_handshake(self.connector.connect(&self.name, tcp))
    }
}

/// TLS over a socket: still handshaking (driven by every read and write), or established.
pub(crate) enum TlsStream {
    Handshaking(Option<MidHandshakeTlsStream<TcpStream>>),
    Established(Box<native_tls::TlsStream<TcpStream>>),
}

impl TlsStream {
    fn from_handshake(result: Result<native_tls::TlsStream<TcpStream>, HandshakeError<TcpStream>>) -> io::Result<Self> {
        match result {
            Ok(stream) => Ok(TlsStream::Established(Box::new(stream))),
            Err(HandshakeError::WouldBlock(mid)) => Ok(TlsStream::Handshaking(Some(mid))),
            Err(HandshakeError::Failure(err)) => Err(io::Error::other(err)),
        }
    }

    /// Moves the handshake on; Ok once established, WouldBlock while it waits for the network.
    fn established(&mut self) -> io::Result<&mut native_tls::TlsStream<TcpStream>> {
        if let TlsStream::Handshaking(mid) = self {
            let Some(pending) = mid.take() else {
                return Err(io::Error::other("the TLS handshake failed earlier"));
            };
            match pending.handshake() {
                Ok(stream) => *self = TlsStream::Established(Box::new(stream)),
                Err(HandshakeError::WouldBlock(pending)) => {
                    *mid = Some(pending);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Err(HandshakeError::Failure(err)) => return Err(io::Error::other(err)),
            }
        }
        match self {
            TlsStream::Established(stream) => Ok(stream),
            TlsStream::Handshaking(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// The socket underneath (None only after a failed handshake, which consumed it).
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            TlsStream::Handshaking(Some(mid)) => Some(mid.get_ref()),
            TlsStream::Established(stream) => Some(stream.get_ref()),
            TlsStream::Handshaking(None) => None,
        }
    }

    /// See [`TlsStream::tcp`].
    pub(crate) fn tcp_mut(&mut self) -> Option<&mut TcpStream> {
        match self {
            TlsStream::Handshaking(Some(mid)) => Some(mid.get_mut()),
            TlsStream::Established(stream) => Some(stream.get_mut()),
            TlsStream::Handshaking(None) => None,
        }
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.established()?.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.established()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.established()?.flush()
    }
}

/// A readable cause for a failed TLS handshake, if `err` came from native-tls.
pub(crate) fn describe_io_error(err: &io::Error) -> Option<String> {
    let tls = err.get_ref()?.downcast_ref::<native_tls::Error>()?;
    let text = tls.to_string();
    Some(if text.contains("certificate verify failed") && (text.contains("mismatch") || text.contains("hostname")) {
        format!("TLS: the server's certificate was refused: it is not for this host name ({text})")
    } else if text.contains("certificate verify failed") {
        format!("TLS: the server's certificate was refused: no trusted authority signed it (to trust a self-signed certificate set trusted_tls_certificate or use TLSOptions.client(certificate)) ({text})")
    } else {
        format!("TLS: {text}")
    })
}

/// Wraps an RSA PKCS#1 key in a PKCS#8 PrivateKeyInfo (RFC 5208).
fn rsa_pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    // version 0, AlgorithmIdentifier { rsaEncryption, NULL }
    const HEADER: [u8; 18] = [0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let mut octets = vec![0x04];
    push_der_len(&mut octets, pkcs1.len());
    octets.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    push_der_len(&mut out, HEADER.len() + octets.len());
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&octets);
    out
}

fn push_der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

/// PEM text for `der` under `label`.
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
