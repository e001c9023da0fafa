//! TLS of the gRPC hop (rustls on ring): PEM files read and checked once at
//! start-up, then turned into tonic's server and client configurations.
//!
//! The same variables mean the same thing in every binary:
//! - `WAGATE_TLS_CERT` / `WAGATE_TLS_KEY`: this process's certificate chain and
//!   private key (the control plane's server identity, also presented on its
//!   replica-to-replica calls; the client certificate of an edge or a worker);
//! - `WAGATE_TLS_CA`: the CA bundle this process trusts for the other side
//!   (the control plane: its clients' certificates and its peers'; an edge or
//!   a worker: the control plane's certificate);
//! - `WAGATE_TLS_SERVER_NAME`: the name a client checks the control plane's
//!   certificate against, instead of the host of the URL it dials.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Environment variable names (the same in every binary).
pub mod env {
    pub const CERT: &str = "WAGATE_TLS_CERT";
    pub const KEY: &str = "WAGATE_TLS_KEY";
    pub const CA: &str = "WAGATE_TLS_CA";
    pub const CLIENT_AUTH: &str = "WAGATE_TLS_CLIENT_AUTH";
    pub const SERVER_NAME: &str = "WAGATE_TLS_SERVER_NAME";
}

/// A TLS handshake that takes longer than this is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{name}: cannot read {path}: {source}")]
    Read { name: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{name}: {path} holds no PEM certificate")]
    NoCertificate { name: &'static str, path: PathBuf },
    #[error("{name}: {path} is not valid PEM: {reason}")]
    BadPem { name: &'static str, path: PathBuf, reason: String },
    #[error("{name}: {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { name: &'static str, path: PathBuf },
    #[error("WAGATE_TLS_CERT and WAGATE_TLS_KEY must be set together")]
    Incomplete,
    #[error("WAGATE_TLS_CLIENT_AUTH must be required, optional or none, not `{0}`")]
    ClientAuth(String),
    #[error(
        "TLS is configured but the control-plane URL {0} is not https://; use https:// (a plaintext URL would silently skip TLS)"
    )]
    PlaintextUrl(String),
    #[error("TLS configuration refused: {0}")]
    Config(String),
}

/// What the control plane asks of its clients when `WAGATE_TLS_CA` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Every client (worker, edge, peer replica, grpcurl) presents a
    /// certificate signed by the CA; others fail the handshake.
    #[default]
    Required,
    /// A client certificate is verified when presented; clients without one
    /// are accepted (they still authenticate with their tokens).
    Optional,
    /// No client certificates; the CA only verifies peer replicas.
    None,
}

impl ClientAuth {
    pub fn parse(raw: &str) -> Result<ClientAuth, TlsError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "required" | "require" => Ok(ClientAuth::Required),
            "optional" => Ok(ClientAuth::Optional),
            "none" | "off" => Ok(ClientAuth::None),
            other => Err(TlsError::ClientAuth(other.to_owned())),
        }
    }
}

/// A certificate chain with its private key, as PEM (checked to parse).
#[derive(Clone, PartialEq, Eq)]
pub struct PemIdentity {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for PemIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemIdentity").field("cert_bytes", &self.cert.len()).finish_non_exhaustive()
    }
}

impl PemIdentity {
    /// Reads and checks `WAGATE_TLS_CERT` / `WAGATE_TLS_KEY`-style files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<PemIdentity, TlsError> {
        Ok(PemIdentity { cert: read_certs(env::CERT, cert)?, key: read_key(env::KEY, key)? })
    }

    /// Reads the pair when both are given; one without the other is an error.
    pub fn from_optional_files(
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<PemIdentity>, TlsError> {
        match (cert, key) {
            (Some(c), Some(k)) => Ok(Some(PemIdentity::from_files(c, k)?)),
            (None, None) => Ok(None),
            _ => Err(TlsError::Incomplete),
        }
    }

    fn tonic(&self) -> Identity {
        Identity::from_pem(&self.cert, &self.key)
    }
}

/// TLS of a gRPC client (a worker, the edge, a replica calling a peer).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ClientTls {
    /// CA bundle (PEM) that signed the control plane's certificate; `None`:
    /// the public web PKI roots (a control plane behind a public certificate).
    pub ca: Option<Vec<u8>>,
    /// Client certificate + key, presented when the server asks for one.
    pub identity: Option<PemIdentity>,
    /// Name the server certificate is checked against (default: the URL's host).
    pub server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca.as_ref().map(|_| "pem"))
            .field("client_cert", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl ClientTls {
    /// From the `WAGATE_TLS_*` files of a client; `None` when none is set.
    pub fn from_files(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
        server_name: Option<&str>,
    ) -> Result<Option<ClientTls>, TlsError> {
        let server_name = server_name.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let identity = PemIdentity::from_optional_files(cert, key)?;
        let ca = ca.map(|p| read_certs(env::CA, p)).transpose()?;
        if ca.is_none() && identity.is_none() && server_name.is_none() {
            return Ok(None);
        }
        Ok(Some(ClientTls { ca, identity, server_name }))
    }

    fn tonic(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new().timeout(HANDSHAKE_TIMEOUT);
        config = match &self.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            None => config.with_webpki_roots(),
        };
        if let Some(id) = &self.identity {
            config = config.identity(id.tonic());
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        config
    }

    /// Applies this configuration to `endpoint` (whose URL must be https://).
    pub fn apply(&self, endpoint: Endpoint) -> Result<Endpoint, TlsError> {
        endpoint.tls_config(self.tonic()).map_err(|e| TlsError::Config(error_chain(&e)))
    }
}

/// Checks that a client's TLS settings and URL agree: TLS settings with an
/// `http://` URL would silently go plaintext, so they are refused.
pub fn check_client_url(url: &str, tls: Option<&ClientTls>) -> Result<(), TlsError> {
    if tls.is_some() && !is_https(url) {
        return Err(TlsError::PlaintextUrl(url.to_owned()));
    }
    Ok(())
}

/// A path setting, unless empty (an empty environment variable is unset).
pub fn non_empty_path(v: &Option<String>) -> Option<&Path> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(Path::new)
}

/// Whether `url` asks for TLS.
pub fn is_https(url: &str) -> bool {
    url.trim_start().get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// TLS of the control plane's gRPC listener.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub identity: PemIdentity,
    /// `WAGATE_TLS_CA`: verifies client certificates (per `client_auth`) and
    /// the certificates of peer replicas.
    pub ca: Option<Vec<u8>>,
    pub client_auth: ClientAuth,
    /// `WAGATE_TLS_SERVER_NAME`: the name peers (and the health check) check
    /// this replica's certificate against.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("ca", &self.ca.as_ref().map(|_| "pem"))
            .field("client_auth", &self.client_auth)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// From the control plane's `WAGATE_TLS_*` settings; `None` when neither
    /// certificate nor key is set (plaintext).
    pub fn from_files(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
        client_auth: &str,
        server_name: Option<&str>,
    ) -> Result<Option<ServerTls>, TlsError> {
        let client_auth = ClientAuth::parse(client_auth)?;
        let Some(identity) = PemIdentity::from_optional_files(cert, key)? else {
            if ca.is_some() {
                return Err(TlsError::Incomplete);
            }
            return Ok(None);
        };
        let ca = ca.map(|p| read_certs(env::CA, p)).transpose()?;
        let server_name = server_name.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let tls = ServerTls { identity, ca, client_auth, server_name };
        // Build once so that a certificate/key mismatch refuses start-up here.
        tls.tonic()?;
        Ok(Some(tls))
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.ca.is_some() && self.client_auth == ClientAuth::Required
    }

    /// The tonic server configuration.
    pub fn tonic(&self) -> Result<ServerTlsConfig, TlsError> {
        let mut config = ServerTlsConfig::new().identity(self.identity.tonic()).timeout(HANDSHAKE_TIMEOUT);
        if let Some(ca) = &self.ca
            && self.client_auth != ClientAuth::None
        {
            config = config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(self.client_auth == ClientAuth::Optional);
        }
        // tonic checks the identity lazily; do it now for a clear error.
        tonic::transport::Server::builder()
            .tls_config(config.clone())
            .map_err(|e| TlsError::Config(error_chain(&e)))?;
        Ok(config)
    }

    /// How this replica talks TLS to its peers (and to itself in a health
    /// check): trusts `WAGATE_TLS_CA`, presents its own certificate.
    pub fn peer_client(&self) -> ClientTls {
        ClientTls {
            ca: self.ca.clone(),
            identity: Some(self.identity.clone()),
            server_name: self.server_name.clone(),
        }
    }
}

fn read(name: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { name, path: path.to_owned(), source })
}

/// Reads a PEM file that must hold at least one certificate.
fn read_certs(name: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(name, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem { name, path: path.to_owned(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { name, path: path.to_owned() });
    }
    Ok(pem)
}

/// Reads a PEM file that must hold a private key.
fn read_key(name: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(name, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::NoKey { name, path: path.to_owned() })?;
    Ok(pem)
}

/// `error: source: source…` in one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wagate-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, body).expect("write");
        path
    }

    #[test]
    fn missing_file_names_the_variable() {
        let e = ServerTls::from_files(
            Some(Path::new("/nonexistent/cert.pem")),
            Some(Path::new("/nonexistent/key.pem")),
            None,
            "required",
            None,
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("WAGATE_TLS_CERT") && msg.contains("/nonexistent/cert.pem"), "{msg}");
    }

    #[test]
    fn garbage_is_refused_with_a_clear_message() {
        let cert = temp_file("garbage-cert.pem", "not a certificate\n");
        let key = temp_file("garbage-key.pem", "not a key\n");
        let e = ServerTls::from_files(Some(&cert), Some(&key), None, "", None).unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        let e = ClientTls::from_files(Some(&cert), None, None, None).unwrap_err();
        assert!(e.to_string().starts_with("WAGATE_TLS_CA"), "{e}");
    }

    #[test]
    fn cert_without_key_is_incomplete() {
        let e = ServerTls::from_files(Some(Path::new("/x")), None, None, "", None).unwrap_err();
        assert!(matches!(e, TlsError::Incomplete));
        assert!(ClientTls::from_files(None, None, Some(Path::new("/x")), None).is_err());
        assert_eq!(ServerTls::from_files(None, None, None, "", None).unwrap(), None);
        assert_eq!(ClientTls::from_files(None, None, None, Some(" ")).unwrap(), None);
    }

    #[test]
    fn client_auth_values() {
        assert_eq!(ClientAuth::parse("").unwrap(), ClientAuth::Required);
        assert_eq!(ClientAuth::parse("Optional").unwrap(), ClientAuth::Optional);
        assert_eq!(ClientAuth::parse("none").unwrap(), ClientAuth::None);
        assert!(ClientAuth::parse("maybe").is_err());
    }

    #[test]
    fn tls_settings_need_an_https_url() {
        let tls = ClientTls::default();
        assert!(check_client_url("http://cp:50051", Some(&tls)).is_err());
        assert!(check_client_url("HTTPS://cp:50051", Some(&tls)).is_ok());
        assert!(check_client_url("http://cp:50051", None).is_ok());
    }
}
