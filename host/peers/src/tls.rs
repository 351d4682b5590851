//! The peers' optional TLS mode: HTTPS for the REST peers (here) and
//! gRPC over TLS for the cinema (tonic's own), from one certificate.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The peers' certificate chain and its private key, PEM.
#[derive(Debug, Clone)]
pub struct PeersTls {
    pub cert_pem: String,
    pub key_pem: String,
}

impl PeersTls {
    pub(crate) fn acceptor(&self) -> anyhow::Result<TlsAcceptor> {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("the peers' TLS certificate")?;
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).context("the peers' TLS key")?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the peers' TLS certificate and key")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Accepts TLS connections for `axum::serve`. Each handshake runs on its
/// own task, so a slow or failing client holds up no other.
pub(crate) struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub(crate) fn new(listener: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
        TlsListener {
            listener,
            acceptor,
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        let handshake = self.acceptor.accept(tcp);
                        self.handshakes.spawn(async move {
                            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await;
                            Some((tls.ok()?.ok()?, addr))
                        });
                    }
                    // Out of file descriptors, say: wait for some to close.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(ready)) = done {
                        return ready;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}
