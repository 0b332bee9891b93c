//! TLS for every connection the service makes or accepts, in one place: the crypto provider
//! (rustls with *ring*; no OpenSSL), the trust anchors (the web PKI's roots, the operating
//! system's store where there is one, and extra PEM bundles), client configurations by how much
//! they verify, the server configuration of the HTTPS API, and handshake errors turned into
//! sentences a person understands.
//!
//! Outbound webhooks always verify fully ([`Verification::Full`]); only the PostgreSQL
//! connector, which follows libpq's `sslmode`, asks for less.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

pub use rustls;

/// The one crypto provider of the process (*ring*), passed explicitly to every configuration so
/// that nothing depends on a process-wide default.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS set-up step that failed (reading or parsing a certificate or key file, or building a
/// configuration from them). The message names the file and the cause.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("{path}: no certificate in it could be used as a trust anchor")]
    NoUsableAnchor { path: PathBuf },
    #[error("{what}: {source}")]
    Config {
        what: &'static str,
        #[source]
        source: rustls::Error,
    },
}

/// Every certificate of the PEM file at `path`, in file order.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let read_error = |source| TlsSetupError::Read {
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error)?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key of the PEM file at `path`.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsSetupError::NoKey {
            path: path.to_owned(),
        },
        source => TlsSetupError::Read {
            path: path.to_owned(),
            source,
        },
    })
}

/// Which trust anchors a client starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchors {
    /// The web PKI's roots (Mozilla's set, compiled in) plus the operating system's store where
    /// present, plus the certificates of these PEM files.
    Public { extra_ca_files: Vec<PathBuf> },
    /// Only the certificates of this PEM file (libpq's `sslrootcert`).
    Only(PathBuf),
}

impl Anchors {
    /// The anchors as a root store; a file that cannot be read, or whose certificates cannot be
    /// anchors, is an error (a private CA that silently is not trusted would fail later, far from
    /// the cause).
    pub fn root_store(&self) -> Result<RootCertStore, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        let files = match self {
            Anchors::Public { extra_ca_files } => {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                add_system_roots(&mut roots);
                extra_ca_files.as_slice()
            }
            Anchors::Only(file) => std::slice::from_ref(file),
        };
        for file in files {
            let (added, _) = roots.add_parsable_certificates(load_certs(file)?);
            if added == 0 {
                return Err(TlsSetupError::NoUsableAnchor { path: file.clone() });
            }
        }
        Ok(roots)
    }
}

/// The operating system's trusted roots, where the system has a store; a missing or partly
/// unreadable store only leaves the web PKI's roots.
fn add_system_roots(roots: &mut RootCertStore) {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "system certificate store");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system trust anchors");
}

/// How much of the server's certificate a client checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The chain up to a trusted anchor, validity dates, and the name the client asked for.
    Full,
    /// The chain and dates, not the name (libpq's `verify-ca`).
    ChainOnly,
    /// Nothing but the handshake signatures: encryption without authentication (libpq's
    /// `require` and `prefer` without a root certificate). Never used for webhooks.
    EncryptOnly,
}

/// A client certificate and its key (PostgreSQL's `sslcert`/`sslkey`).
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// A client configuration: TLS 1.2 and 1.3, the given anchors and verification, ALPN
/// `protocols` in preference order.
pub fn client_config(
    anchors: &Anchors,
    verification: Verification,
    identity: Option<ClientIdentity>,
    protocols: &[&[u8]],
) -> Result<ClientConfig, TlsSetupError> {
    let provider = provider();
    let config_error = |source| TlsSetupError::Config {
        what: "TLS client configuration",
        source,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?;
    let builder = match verification {
        Verification::Full => builder.with_root_certificates(anchors.root_store()?),
        Verification::ChainOnly | Verification::EncryptOnly => {
            let verifier: Arc<dyn ServerCertVerifier> = match verification {
                Verification::ChainOnly => Arc::new(ChainOnlyVerifier {
                    inner: WebPkiServerVerifier::builder_with_provider(
                        Arc::new(anchors.root_store()?),
                        provider.clone(),
                    )
                    .build()
                    .map_err(|e| config_error(rustls::Error::General(e.to_string())))?,
                }),
                _ => Arc::new(EncryptOnlyVerifier { provider }),
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
        }
    };
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain, id.key)
            .map_err(|source| TlsSetupError::Config {
                what: "client certificate and key",
                source,
            })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// An HTTPS client's configuration for servers on the web (webhook receivers, our own API
/// from the CLI): full verification against the public anchors plus `extra_ca_files`, HTTP/1.1.
pub fn web_client_config(extra_ca_files: Vec<PathBuf>) -> Result<ClientConfig, TlsSetupError> {
    let anchors = Anchors::Public { extra_ca_files };
    client_config(&anchors, Verification::Full, None, &[b"http/1.1"])
}

/// The HTTPS API's server configuration from a PEM certificate chain and its key; a key that
/// does not match the certificate is an error here, at start-up.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<ServerConfig, TlsSetupError> {
    let chain = load_certs(cert_file)?;
    let key = load_private_key(key_file)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|source| TlsSetupError::Config {
            what: "certificate and key",
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// libpq's `verify-ca`: the web PKI verifier with the name check left out.
#[derive(Debug)]
struct ChainOnlyVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name is checked last, after the chain and dates: this error means all else held.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Encryption without authentication: accepts any certificate, still checks that the server
/// holds its key (the handshake signatures).
#[derive(Debug)]
struct EncryptOnlyVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnlyVerifier {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls error somewhere in an error's chain, looking inside `std::io::Error`s too (whose
/// `source()` skips the error they wrap, which is where TLS streams put the handshake error),
/// however deeply they are nested.
pub fn find_tls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // HTTP clients wrap the TLS stream's io::Error in io::Errors of their own.
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(wrapped) => Some(wrapped),
            None => e.source(),
        };
    }
    None
}

/// A failed handshake with `host`, said plainly: `TLS: certificate not trusted (unknown
/// issuer)`, `TLS: certificate is for other.example, not hooks.example.com`, …
pub struct HandshakeFailure<'a> {
    pub error: &'a rustls::Error,
    pub host: &'a str,
}

impl fmt::Display for HandshakeFailure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use rustls::Error as E;
        let host = self.host;
        match self.error {
            E::InvalidCertificate(c) => write!(f, "TLS: {}", CertificateProblem { error: c, host }),
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => write!(
                f,
                "TLS: {host} did not answer with TLS (is it a plain-HTTP port?)"
            ),
            E::AlertReceived(alert) => {
                write!(f, "TLS: {host} refused the handshake (alert: {alert:?})")
            }
            E::PeerIncompatible(why) => write!(
                f,
                "TLS: no protocol version or cipher suite in common with {host} ({why:?})"
            ),
            E::NoCertificatesPresented => write!(f, "TLS: {host} presented no certificate"),
            other => write!(f, "TLS: handshake with {host} failed: {other}"),
        }
    }
}

struct CertificateProblem<'a> {
    error: &'a CertificateError,
    host: &'a str,
}

impl fmt::Display for CertificateProblem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CertificateError as C;
        let host = self.host;
        match self.error {
            C::UnknownIssuer => f.write_str("certificate not trusted (unknown issuer)"),
            C::BadSignature => f.write_str("certificate not trusted (bad signature)"),
            C::NotValidForNameContext { presented, .. } if !presented.is_empty() => write!(
                f,
                "certificate is for {}, not {host}",
                presented
                    .iter()
                    .map(|n| presented_name(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                write!(f, "certificate is not valid for {host}")
            }
            C::Expired | C::ExpiredContext { .. } => f.write_str("certificate expired"),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                f.write_str("certificate not valid yet")
            }
            C::Revoked => f.write_str("certificate revoked"),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                f.write_str("certificate is not meant for a TLS server")
            }
            C::BadEncoding => f.write_str("certificate is malformed"),
            other => write!(f, "certificate rejected ({other:?})"),
        }
    }
}

/// rustls lists a certificate's names as `DnsName("a.example")` or `IpAddress(10.0.0.1)`: the
/// name alone.
fn presented_name(debug: &str) -> &str {
    debug
        .strip_suffix(')')
        .and_then(|s| s.split_once('('))
        .map_or(debug, |(_, inner)| inner)
        .trim_matches('"')
}

#[cfg(test)]
mod tests;

#[cfg(feature = "test-pki")]
pub mod test_pki;
