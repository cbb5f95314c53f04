//! Inbound STARTTLS: the relay's own certificate and key (`--tls-cert`, `--tls-key`, PEM), served
//! with rustls (aws-lc-rs, TLS 1.2 and 1.3).
//!
//! The certificate is held behind a resolver that [`TlsServer::reload`] swaps, so a renewed
//! certificate (e.g. from an ACME client) is picked up on SIGHUP or when the files change, without
//! a restart; handshakes in progress keep the certificate they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key cannot be used. Never quotes the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file cannot be read or parsed.
    #[error("--tls-cert {}: {problem}", path.display())]
    Cert {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The key file cannot be read or parsed.
    #[error("--tls-key {}: {problem}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key's content).
        problem: String,
    },
    /// The key does not belong to the certificate, or rustls refuses them.
    #[error("--tls-cert {} / --tls-key {}: {problem}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        problem: String,
    },
    /// rustls cannot be set up.
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The relay's TLS server side.
pub struct TlsServer {
    cert: PathBuf,
    key: PathBuf,
    resolver: Arc<Resolver>,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Paths only: the key never appears in Debug output.
        f.debug_struct("TlsServer").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner())))
    }
}

impl TlsServer {
    /// Loads the certificate chain and the private key, and checks that they belong together.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let certified = load_certified_key(cert, key)?;
        let resolver = Arc::new(Resolver(RwLock::new(Arc::new(certified))));
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            resolver,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Re-reads the files; on any error the current certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certified = load_certified_key(&self.cert, &self.key)?;
        *self.resolver.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
        Ok(())
    }

    /// The acceptor for one connection's handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The certificate and key files (watched for changes).
    pub fn files(&self) -> [&Path; 2] {
        [&self.cert, &self.key]
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_error = |problem: String| TlsError::Cert { path: cert.to_path_buf(), problem };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no certificate in the file".into()));
    }
    // The key's own parse error could quote it; say only what kind of problem it is.
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        let what = match e {
            rustls_pki_types::pem::Error::Io(io) => io.to_string(),
            rustls_pki_types::pem::Error::NoItemsFound => "no private key in the file".into(),
            _ => "not a PEM private key".into(),
        };
        TlsError::Key { path: key.to_path_buf(), problem: what }
    })?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|e| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        problem: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use postmark_fake::tls::TestPki;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn loads_a_matching_pair_and_refuses_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate();
        let cert = write(&dir, "cert.pem", pki.server_cert_pem());
        let key = write(&dir, "key.pem", pki.server_key_pem());
        let server = TlsServer::load(&cert, &key).unwrap();
        assert!(!format!("{server:?}").contains("PRIVATE"));

        let other = TestPki::generate();
        let wrong_key = write(&dir, "other-key.pem", other.server_key_pem());
        let e = TlsServer::load(&cert, &wrong_key).unwrap_err().to_string();
        assert!(e.contains("--tls-cert"), "{e}");

        let empty = write(&dir, "empty.pem", "");
        assert!(TlsServer::load(&empty, &key).unwrap_err().to_string().contains("no certificate"));
        let e = TlsServer::load(&cert, &empty).unwrap_err().to_string();
        assert!(e.contains("no private key"), "{e}");
        let e = TlsServer::load(&cert, Path::new("/no/such/key.pem")).unwrap_err().to_string();
        assert!(e.contains("/no/such/key.pem"), "{e}");

        // A failed reload keeps the old certificate; a good one swaps it.
        std::fs::write(&key, "garbage").unwrap();
        assert!(server.reload().is_err());
        std::fs::write(&cert, other.server_cert_pem()).unwrap();
        std::fs::write(&key, other.server_key_pem()).unwrap();
        server.reload().unwrap();
    }
}
