//! TLS on either hop: terminating clients' TLS (so the relay still reads plaintext) and
//! talking TLS to the upstream. rustls does all the cryptography; this module only builds
//! its configurations from the command line and gives the relay one stream type for
//! plain and encrypted sockets.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::Config;
use crate::error::Error;

/// A relayed socket, plain or TLS. An enum rather than `Box<dyn …>`: the relay's hot
/// path (one read and one write per batch of packets) stays a match on a tag, with no
/// allocation and no virtual call for plain TCP. The TLS variants are boxed once per
/// connection because a TLS session carries kilobytes of state that a plain socket
/// should not pay for.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    /// A client's TLS, terminated here.
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS to the upstream.
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Server(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Client(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Server(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Client(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Server(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Client(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Server(s) => s.is_write_vectored(),
            Stream::Client(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Server(s) => Pin::new(s).poll_flush(cx),
            Stream::Client(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Server(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Client(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// What every connection needs to do TLS, built once at startup.
#[derive(Clone, Default)]
pub struct Tls {
    /// Set by --tls-cert/--tls-key: clients may (not must) switch to TLS.
    pub acceptor: Option<TlsAcceptor>,
    /// Set by --upstream-tls: every upstream connection switches to TLS.
    pub upstream: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("terminates_client_tls", &self.acceptor.is_some())
            .field("upstream", &self.upstream.as_ref().map(|(_, name)| name))
            .finish()
    }
}

impl Tls {
    pub fn from_config(config: &Config) -> Result<Tls, Error> {
        let acceptor = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(TlsAcceptor::from(server_config(cert, key)?)),
            (None, None) => None,
            _ => {
                return Err(Error::TlsSetup(
                    "--tls-cert and --tls-key go together".into(),
                ));
            }
        };
        let upstream = if config.upstream_tls {
            let client = match (&config.upstream_tls_ca, config.upstream_tls_insecure) {
                (Some(ca), false) => client_config(Some(ca))?,
                (None, true) => client_config(None)?,
                _ => {
                    return Err(Error::TlsSetup(
                        "--upstream-tls needs exactly one of --upstream-tls-ca PEM \
                         (verify the upstream) or --upstream-tls-insecure (accept any \
                         certificate)"
                            .into(),
                    ));
                }
            };
            let host = match &config.upstream_tls_name {
                Some(name) => name.clone(),
                None => upstream_host(&config.upstream).to_string(),
            };
            let name = ServerName::try_from(host.clone()).map_err(|e| {
                Error::TlsSetup(format!("{host:?} is not a valid TLS server name: {e}"))
            })?;
            Some((TlsConnector::from(client), name))
        } else {
            None
        };
        Ok(Tls { acceptor, upstream })
    }
}

/// The one provider the workspace builds (ring): named explicitly so a second provider
/// enabled by some other dependency can never make the choice ambiguous.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, Error> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::TlsSetup(format!("--tls-cert {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(Error::TlsSetup(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::TlsSetup(format!("--tls-key {}: {e}", key.display())))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsSetup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::TlsSetup(format!("--tls-cert/--tls-key: {e}")))?;
    Ok(Arc::new(config))
}

/// `ca`: verify against these roots; `None`: accept any certificate (--upstream-tls-insecure).
fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsSetup(e.to_string()))?;
    let config = match ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(ca)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| Error::TlsSetup(format!("--upstream-tls-ca {}: {e}", ca.display())))?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::TlsSetup(format!(
                    "--upstream-tls-ca {}: no usable CA certificate in it",
                    ca.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `HOST` of `HOST:PORT` (`[v6]:port` too), the name the upstream's certificate is
/// checked against by default.
fn upstream_host(upstream: &str) -> &str {
    let host = upstream.rsplit_once(':').map_or(upstream, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// --upstream-tls-insecure: any certificate is taken as the upstream's, but the handshake
/// signatures are still checked (the session is still really encrypted with the holder
/// of that certificate's key).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_host_is_the_part_before_the_port() {
        assert_eq!(upstream_host("db.example:3306"), "db.example");
        assert_eq!(upstream_host("127.0.0.1:3306"), "127.0.0.1");
        assert_eq!(upstream_host("[::1]:3306"), "::1");
    }
}
