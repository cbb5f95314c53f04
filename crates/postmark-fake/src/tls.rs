//! A throwaway test PKI, generated at run time: a CA and a server certificate for `localhost`
//! and `127.0.0.1` signed by it. Nothing is written to disk or committed.
//!
//! Everything uses rustls' aws-lc-rs provider explicitly, so no process-wide default provider
//! has to be installed.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and one server certificate it signed, in PEM and DER.
pub struct TestPki {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    ca_der: CertificateDer<'static>,
    server_cert_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key stays out of Debug output, even a throwaway one.
        f.debug_struct("TestPki").field("ca_pem", &self.ca_pem).finish_non_exhaustive()
    }
}

/// The names the server certificate is valid for.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

impl TestPki {
    /// Generates a fresh CA (`postmark-fake test CA`) and a server certificate for
    /// [`SERVER_NAMES`], both with ECDSA P-256 keys.
    ///
    /// # Panics
    /// If key generation or signing fails, which only happens when the crypto library is broken.
    pub fn generate() -> Self {
        let ca_key = KeyPair::generate().expect("generate the CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.distinguished_name.push(DnType::CommonName, "postmark-fake test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign the CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("generate the server key");
        let mut server_params =
            CertificateParams::new(SERVER_NAMES.map(str::to_owned).to_vec()).expect("server params");
        server_params.distinguished_name.push(DnType::CommonName, "localhost");
        server_params.is_ca = IsCa::NoCa;
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer).expect("sign the server certificate");

        Self {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            ca_der: ca_cert.der().clone(),
            server_cert_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
        }
    }

    /// The CA certificate (what a client must trust), PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server certificate, PEM.
    pub fn server_cert_pem(&self) -> &str {
        &self.server_cert_pem
    }

    /// The server's private key (PKCS#8), PEM.
    pub fn server_key_pem(&self) -> &str {
        &self.server_key_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// A rustls server configuration presenting the server certificate (TLS 1.2 and 1.3, no
    /// client authentication).
    ///
    /// # Panics
    /// If rustls refuses the generated key or certificate (it does not).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.server_cert_der.clone(), self.ca_der.clone()], key)
            .expect("rustls accepts the generated certificate");
        Arc::new(config)
    }

    /// A rustls client configuration that trusts this CA and nothing else.
    ///
    /// # Panics
    /// If rustls refuses the generated CA certificate (it does not).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("the CA certificate parses");
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn pem_strings_have_the_expected_shape() {
        let pki = TestPki::generate();
        assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.server_cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.server_key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(pki.ca_pem(), pki.server_cert_pem());
        assert!(!format!("{pki:?}").contains("PRIVATE KEY"));
        // Every call makes a new CA.
        assert_ne!(TestPki::generate().ca_pem(), pki.ca_pem());
    }

    async fn handshake(server_pki: &TestPki, client_pki: &TestPki, name: &'static str) -> std::io::Result<Vec<u8>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(server_pki.server_config());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp).await?;
            tls.write_all(b"hello over tls").await?;
            tls.shutdown().await?;
            Ok::<_, std::io::Error>(())
        });
        let connector = tokio_rustls::TlsConnector::from(client_pki.client_config());
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let result = async {
            let mut tls = connector.connect(ServerName::try_from(name).expect("valid name"), tcp).await?;
            let mut got = Vec::new();
            tls.read_to_end(&mut got).await?;
            Ok(got)
        }
        .await;
        server.abort();
        result
    }

    #[tokio::test]
    async fn a_client_trusting_the_ca_accepts_localhost_and_the_ip() {
        let pki = TestPki::generate();
        for name in SERVER_NAMES {
            assert_eq!(handshake(&pki, &pki, name).await.unwrap(), b"hello over tls");
        }
    }

    #[tokio::test]
    async fn another_ca_or_another_name_is_refused() {
        let pki = TestPki::generate();
        let other = TestPki::generate();
        assert!(handshake(&pki, &other, "localhost").await.is_err());
        assert!(handshake(&pki, &pki, "example.com").await.is_err());
    }
}
