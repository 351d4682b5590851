//! A throwaway CA for the TLS tests, with a certificate for 127.0.0.1 and
//! localhost, its PEM in a file as `TLS_CA_FILE` would be.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

pub struct TestCa {
    /// The server's certificate and key, PEM.
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params")
            .signed_by(&server_key, &ca)
            .expect("server certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write CA file");
        TestCa {
            cert_pem: server.pem(),
            key_pem: server_key.serialize_pem(),
            ca_file,
            _dir: dir,
        }
    }
}
