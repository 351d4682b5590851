//! The trust of every TLS connection to a backend (`https://` users,
//! payments and cinema, `amqps://`, MongoDB with `tls=true`): the Mozilla
//! roots compiled in (webpki-roots) plus, when configured, an operator's
//! CA bundle. Plain `http://`, `amqp://` and `mongodb://` URLs ignore it.
//! rustls on ring throughout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, ensure};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// The CAs a backend's certificate may chain to. The default trusts the
/// public roots only.
#[derive(Debug, Clone, Default)]
pub struct TlsRoots {
    extra: Option<Arc<CaBundle>>,
}

#[derive(Debug)]
struct CaBundle {
    path: PathBuf,
    pem: String,
    certs: Vec<CertificateDer<'static>>,
}

impl TlsRoots {
    /// The public roots and every certificate of the PEM file at `path`.
    pub fn with_ca_file(path: &Path) -> anyhow::Result<TlsRoots> {
        let shown = path.display();
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("reading the CA bundle {shown}"))?;
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing the CA bundle {shown}"))?;
        ensure!(
            !certs.is_empty(),
            "the CA bundle {shown} holds no certificate"
        );
        let mut store = RootCertStore::empty();
        for cert in &certs {
            store
                .add(cert.clone())
                .with_context(|| format!("a certificate of the CA bundle {shown}"))?;
        }
        Ok(TlsRoots {
            extra: Some(Arc::new(CaBundle {
                path: path.to_owned(),
                pem,
                certs,
            })),
        })
    }

    /// For clients that take a rustls configuration (reqwest).
    pub(crate) fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(bundle) = &self.extra {
            roots.add_parsable_certificates(bundle.certs.iter().cloned());
        }
        Ok(
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// The extra CAs as PEM, for clients that add them to their own
    /// public roots (tonic, lapin).
    pub(crate) fn extra_pem(&self) -> Option<&str> {
        self.extra.as_ref().map(|bundle| bundle.pem.as_str())
    }

    /// The extra CAs' file, for the MongoDB driver, which reads it itself.
    pub(crate) fn extra_file(&self) -> Option<&Path> {
        self.extra.as_ref().map(|bundle| bundle.path.as_path())
    }
}
