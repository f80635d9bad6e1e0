//! Godot's TLS objects (`TLSOptions`, `X509Certificate`, `CryptoKey`) turned into the core's
//! TLS settings, as PEM text (`save_to_string`).

use godot::classes::{CryptoKey, TlsOptions, X509Certificate};
use godot::prelude::*;
use websocket_rs_core::{Error, TlsClientSettings, TlsServerSettings};

/// A certificate (with its chain, if it holds one) as PEM, or an error naming `what`.
pub(crate) fn certificate_pem(what: &str, cert: &Gd<X509Certificate>) -> Result<String, Error> {
    let pem = cert.clone().save_to_string().to_string();
    if pem.trim().is_empty() {
        return Err(Error::InvalidArgument(format!("{what} is empty (load or generate it first)")));
    }
    Ok(pem)
}

/// A private key as PEM, or an error.
pub(crate) fn key_pem(key: &Gd<CryptoKey>) -> Result<String, Error> {
    let pem = key.clone().save_to_string_ex().public_only(false).done().to_string();
    if pem.trim().is_empty() {
        return Err(Error::InvalidArgument("the private key is empty (load or generate it first)".into()));
    }
    Ok(pem)
}

/// Server settings from the seed properties (`private_key`, `ssl_certificate`, `ca_chain`): TLS
/// when both key and certificate are set, plain when neither is.
pub(crate) fn server_from_properties(
    key: Option<&Gd<CryptoKey>>,
    certificate: Option<&Gd<X509Certificate>>,
    ca_chain: Option<&Gd<X509Certificate>>,
) -> Result<Option<TlsServerSettings>, Error> {
    match (key, certificate) {
        (None, None) => Ok(None),
        (Some(key), Some(cert)) => {
            let mut chain = certificate_pem("ssl_certificate", cert)?;
            if let Some(ca) = ca_chain {
                chain.push('\n');
                chain.push_str(&certificate_pem("ca_chain", ca)?);
            }
            Ok(Some(TlsServerSettings { private_key_pem: key_pem(key)?, certificate_chain_pem: chain }))
        }
        (Some(_), None) => Err(Error::InvalidArgument("private_key is set but ssl_certificate is not: set both for wss://".into())),
        (None, Some(_)) => Err(Error::InvalidArgument("ssl_certificate is set but private_key is not: set both for wss://".into())),
    }
}

/// Server settings from `TLSOptions.server(key, certificate)`.
pub(crate) fn server_from_options(options: &Gd<TlsOptions>) -> Result<TlsServerSettings, Error> {
    if !options.is_server() {
        return Err(Error::InvalidArgument("these TLSOptions are for a client; use TLSOptions.server(key, certificate)".into()));
    }
    let key = options.get_private_key().ok_or_else(|| Error::InvalidArgument("TLSOptions.server() has no private key".into()))?;
    let cert = options.get_own_certificate().ok_or_else(|| Error::InvalidArgument("TLSOptions.server() has no certificate".into()))?;
    Ok(TlsServerSettings { private_key_pem: key_pem(&key)?, certificate_chain_pem: certificate_pem("the TLSOptions certificate", &cert)? })
}

/// Client settings from the seed properties (`verify_tls`, `trusted_tls_certificate`).
pub(crate) fn client_from_properties(verify: bool, trusted: Option<&Gd<X509Certificate>>) -> Result<TlsClientSettings, Error> {
    if !verify {
        return Ok(TlsClientSettings::Unsafe);
    }
    let trusted_chain_pem = trusted.map(|cert| certificate_pem("trusted_tls_certificate", cert)).transpose()?;
    Ok(TlsClientSettings::Verify { trusted_chain_pem, common_name_override: None })
}

/// Client settings from `TLSOptions.client(trusted_chain, common_name_override)` or
/// `TLSOptions.client_unsafe()`.
pub(crate) fn client_from_options(options: &Gd<TlsOptions>) -> Result<TlsClientSettings, Error> {
    if options.is_server() {
        return Err(Error::InvalidArgument("these TLSOptions are for a server; use TLSOptions.client() or client_unsafe()".into()));
    }
    if options.is_unsafe_client() {
        return Ok(TlsClientSettings::Unsafe);
    }
    let trusted_chain_pem = options.get_trusted_ca_chain().map(|cert| certificate_pem("the trusted chain", &cert)).transpose()?;
    let name = options.get_common_name_override().to_string();
    Ok(TlsClientSettings::Verify { trusted_chain_pem, common_name_override: (!name.is_empty()).then_some(name) })
}
