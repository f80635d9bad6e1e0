//! The rustls backend (the default): configurations built from PEM text, and the certificate
//! check Godot users expect: a trusted certificate given by the game is accepted when the server presents
//! exactly it (Godot's self-signed certificates are CA certificates without a subjectAltName, which
//! plain WebPKI refuses), or when the server's chain leads to it; without one, the Mozilla roots
//! of `webpki-roots` are used, so a public server needs no configuration.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, ServerConfig, ServerConnection, SignatureScheme, StreamOwned};

use super::{TlsClientSettings, TlsServerSettings};
use crate::Error;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(what: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| Error::InvalidArgument(format!("{what} is not a PEM certificate: {err}")))?;
    if certs.is_empty() {
        return Err(Error::InvalidArgument(format!("{what} holds no certificate")));
    }
    Ok(certs)
}

/// The rustls server configuration for `settings`.
fn server_config(settings: &TlsServerSettings) -> Result<Arc<ServerConfig>, Error> {
    let chain = certificates("the server certificate", &settings.certificate_chain_pem)?;
    let key = PrivateKeyDer::from_pem_slice(settings.private_key_pem.as_bytes())
        .map_err(|err| Error::InvalidArgument(format!("the private key is not a PEM private key: {err}")))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::InvalidArgument(format!("TLS: {err}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|err| Error::InvalidArgument(format!("the private key does not fit the certificate: {err}")))?;
    Ok(Arc::new(config))
}

/// The rustls client configuration for `settings`.
fn client_config(settings: &TlsClientSettings) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let verifier = match settings {
        TlsClientSettings::Unsafe => GodotVerifier { roots: None, pinned: Vec::new(), name_override: None, unsafe_accept: true, provider: provider.clone() },
        TlsClientSettings::Verify { trusted_chain_pem, common_name_override } => {
            let mut roots = RootCertStore::empty();
            let mut pinned = Vec::new();
            match trusted_chain_pem {
                Some(pem) => {
                    for cert in certificates("the trusted certificate", pem)? {
                        // A certificate that is no CA cannot be a root; it is still trusted exactly.
                        let _ = roots.add(cert.clone());
                        pinned.push(cert);
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let roots = if roots.is_empty() {
                None
            } else {
                Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|err| Error::InvalidArgument(format!("trusted certificates: {err}")))?,
                )
            };
            let name_override = match common_name_override.as_deref().filter(|n| !n.is_empty()) {
                Some(name) => Some(
                    ServerName::try_from(name.to_string())
                        .map_err(|_| Error::InvalidArgument(format!("common name override '{name}' is not a host name")))?,
                ),
                None => None,
            };
            GodotVerifier { roots, pinned, name_override, unsafe_accept: false, provider: provider.clone() }
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::InvalidArgument(format!("TLS: {err}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The server name a client sends (SNI) and checks, from a URL's host.
fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_string()).map_err(|_| Error::InvalidArgument(format!("'{host}' is not a valid TLS server name")))
}

/// Checks server certificates as Godot users expect (see the module documentation).
struct GodotVerifier {
    roots: Option<Arc<WebPkiServerVerifier>>,
    pinned: Vec<CertificateDer<'static>>,
    name_override: Option<ServerName<'static>>,
    unsafe_accept: bool,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for GodotVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GodotVerifier").field("pinned", &self.pinned.len()).field("unsafe", &self.unsafe_accept).finish()
    }
}

impl ServerCertVerifier for GodotVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.unsafe_accept {
            return Ok(ServerCertVerified::assertion());
        }
        let name = self.name_override.as_ref().unwrap_or(server_name);
        if self.pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) {
            return if certificate_matches_name(end_entity, name) {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            };
        }
        let unknown = || rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        match &self.roots {
            Some(roots) => roots.verify_server_cert(end_entity, intermediates, name, ocsp_response, now).map_err(|err| match err {
                // A self-signed (CA) certificate nobody trusts: say so plainly.
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(_)) => unknown(),
                other => other,
            }),
            None => Err(unknown()),
        }
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether a certificate names `name`: its subjectAltName entries, or its common name when it has
/// none (as Godot's own certificates do). `*.example.com` matches one label.
fn certificate_matches_name(der: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else { return false };
    let wanted = match name {
        ServerName::DnsName(dns) => dns.as_ref().to_ascii_lowercase(),
        ServerName::IpAddress(ip) => IpAddr::from(*ip).to_string(),
        _ => return false,
    };
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for general in &san.value.general_names {
            match general {
                x509_parser::extensions::GeneralName::DNSName(dns) => names.push(dns.to_ascii_lowercase()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => names.push(IpAddr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default()).to_string()),
                    16 => names.push(IpAddr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default()).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    if names.is_empty() {
        names.extend(cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_ascii_lowercase));
    }
    names.iter().any(|pattern| match pattern.strip_prefix("*.") {
        Some(suffix) => wanted.split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => *pattern == wanted,
    })
}

/// A rustls server configuration, ready to accept connections.
#[derive(Clone)]
pub(crate) struct ServerTls(Arc<ServerConfig>);

impl ServerTls {
    /// Builds it from PEM settings.
    pub(crate) fn new(settings: &TlsServerSettings) -> Result<Self, Error> {
        server_config(settings).map(ServerTls)
    }

    /// Wraps an accepted socket; the TLS handshake runs as the stream is read and written.
    pub(crate) fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream> {
        let conn = ServerConnection::new(self.0.clone()).map_err(io::Error::other)?;
        Ok(TlsStream::Server(Box::new(StreamOwned::new(conn, tcp))))
    }
}

/// A rustls client configuration and the server name to send and check.
pub(crate) struct ClientTls(Arc<ClientConfig>, ServerName<'static>);

impl ClientTls {
    /// Builds it from the settings, for a server reached as `host`.
    pub(crate) fn new(settings: &TlsClientSettings, host: &str) -> Result<Self, Error> {
        Ok(ClientTls(client_config(settings)?, server_name(host)?))
    }

    /// Wraps a connected socket; the TLS handshake runs as the stream is read and written.
    pub(crate) fn connect(&self, tcp: TcpStream) -> io::Result<TlsStream> {
        let conn = ClientConnection::new(self.0.clone(), self.1.clone()).map_err(io::Error::other)?;
        Ok(TlsStream::Client(Box::new(StreamOwned::new(conn, tcp))))
    }
}

/// TLS over a socket, either side.
pub(crate) enum TlsStream {
    Server(Box<StreamOwned<ServerConnection, TcpStream>>),
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl TlsStream {
    /// The socket underneath.
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            TlsStream::Server(tls) => Some(tls.get_ref()),
            TlsStream::Client(tls) => Some(tls.get_ref()),
        }
    }

    /// See [`TlsStream::tcp`].
    pub(crate) fn tcp_mut(&mut self) -> Option<&mut TcpStream> {
        match self {
            TlsStream::Server(tls) => Some(tls.get_mut()),
            TlsStream::Client(tls) => Some(tls.get_mut()),
        }
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            TlsStream::Server(tls) => tls.read(buf),
            TlsStream::Client(tls) => tls.read(buf),
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            TlsStream::Server(tls) => tls.write(buf),
            TlsStream::Client(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            TlsStream::Server(tls) => tls.flush(),
            TlsStream::Client(tls) => tls.flush(),
        }
    }
}

/// A readable cause for a failed TLS handshake, from the I/O error rustls produced.
pub(crate) fn describe_io_error(err: &io::Error) -> Option<String> {
    Some(match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())? {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            "TLS: the server's certificate was refused: no trusted authority signed it (to trust a self-signed certificate set trusted_tls_certificate or use TLSOptions.client(certificate))".into()
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName) => {
            "TLS: the server's certificate was refused: it is not for this host name (connect with the name in the certificate, or set TLSOptions.client(chain, common_name_override))".into()
        }
        rustls::Error::InvalidCertificate(cause) => format!("TLS: the server's certificate was refused ({cause:?})"),
        tls => format!("TLS: {tls}"),
    })
}
