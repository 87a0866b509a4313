//! TLS for `rediss://` URLs: rustls on the *ring* provider, built once per backend.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::RedisConfig;
use crate::error::RedisConfigError;

/// How to wrap a backend's TCP connections: the client configuration (roots, client
/// certificate) and the name the server's certificate must be valid for.
pub(crate) struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// TLS for `host` as `config` asks: the platform's trust store, or exactly the CAs of
    /// `tls_ca_file`; a client certificate if one is configured.
    pub(crate) fn new(config: &RedisConfig, host: &str) -> Result<Tls, RedisConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let setup_error = |setting: &'static str| {
            move |e: rustls::Error| RedisConfigError::Tls {
                setting,
                reason: format!("cannot set up TLS: {e}"),
            }
        };
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(setup_error("url"))?;
        let builder = match &config.tls_ca_file {
            Some(path) => {
                let setting = "tls_ca_file";
                let mut roots = RootCertStore::empty();
                for cert in read_certs(setting, path)? {
                    roots.add(cert).map_err(|e| file_error(setting, path, e))?;
                }
                builder.with_root_certificates(roots)
            }
            None => {
                let verifier = rustls_platform_verifier::Verifier::new(provider)
                    .map_err(setup_error("url"))?;
                builder
                    .dangerous() // only to install the platform verifier: certificates are verified
                    .with_custom_certificate_verifier(Arc::new(verifier))
            }
        };
        let client = match (&config.tls_client_cert_file, &config.tls_client_key_file) {
            (Some(cert), Some(key)) => {
                let chain = read_certs("tls_client_cert_file", cert)?;
                let setting = "tls_client_key_file";
                let key =
                    PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(setting, key, e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(setup_error("tls_client_cert_file"))?
            }
            _ => builder.with_no_client_auth(),
        };
        let name = ServerName::try_from(host.to_owned()).map_err(|e| RedisConfigError::Tls {
            setting: "url",
            reason: format!("the host is not a valid TLS server name: {e}"),
        })?;
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(client)),
            name,
        })
    }

    /// The TLS handshake on `stream`: the server's certificate checked for the URL's host.
    pub(crate) async fn handshake(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), stream).await
    }
}

/// The certificates of the PEM file at `path` (at least one).
fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, RedisConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(setting, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(setting, path, e))?;
    if certs.is_empty() {
        return Err(file_error(setting, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn file_error(setting: &'static str, path: &Path, e: impl std::fmt::Display) -> RedisConfigError {
    RedisConfigError::Tls {
        setting,
        reason: format!("{}: {e}", path.display()),
    }
}

/// The TLS error behind an I/O error of a TLS connection, if that is what it is.
pub(crate) fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}
