//! Edge gateway configuration: [`EdgeConfig`] and its command line / env
//! form [`EdgeArgs`].

use std::net::SocketAddr;
use std::time::Duration;

/// Multipart body limit of the media routes: the largest document (100 MiB)
/// plus room for the form's other fields.
pub const DEFAULT_MEDIA_BODY_LIMIT: u64 = 101 * 1024 * 1024;
/// JSON body limit of a send with `mediaBase64`: 16 MiB (a file of about 12 MiB).
pub const DEFAULT_BASE64_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Everything the edge gateway needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Address the REST server listens on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// gRPC URL of the control plane, e.g. `http://127.0.0.1:50051`.
    pub control_plane_url: String,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Deadline of one request, body reading and gRPC call included.
    pub request_timeout: Duration,
    /// Media routes (a send with a file): the largest multipart body,
    /// streamed (never buffered), and the largest JSON body (`mediaBase64`,
    /// read whole).
    pub media_body_limit_bytes: u64,
    pub base64_body_limit_bytes: usize,
    /// Deadline of a media request (uploads and downloads of large files).
    pub media_request_timeout: Duration,
    /// Allowed CORS origins; `*` allows any.
    pub cors_origins: Vec<String>,
    /// Number of HTTP/2 channels to the control plane (round-robin).
    pub grpc_channels: usize,
    /// A connection must send a request's headers within this (also the idle
    /// keep-alive limit between requests); a silent connection is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Shared secret presented to the control plane (`x-wagate-edge-token`)
    /// so the client address the edge forwards is believed there.
    pub edge_token: Option<String>,
    /// Peers (a load balancer, an ingress) whose `X-Forwarded-For` is
    /// believed; everyone else's address is the socket peer.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// TLS towards the control plane (an `https://` URL): the CA to trust and
    /// the edge's client certificate (`WAGATE_TLS_*`).
    pub tls: Option<wagate_proto::tls::ClientTls>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            control_plane_url: "http://127.0.0.1:50051".to_owned(),
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            media_body_limit_bytes: DEFAULT_MEDIA_BODY_LIMIT,
            base64_body_limit_bytes: DEFAULT_BASE64_BODY_LIMIT,
            media_request_timeout: Duration::from_secs(600),
            cors_origins: vec!["*".to_owned()],
            grpc_channels: 4,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            edge_token: None,
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }
}

/// Command line / environment form of [`EdgeConfig`]; flatten it into a
/// clap parser. Long options are prefixed `--edge-` so they can sit beside
/// other components' options in one binary.
#[derive(Debug, Clone, clap::Args)]
pub struct EdgeArgs {
    /// Address the REST server listens on.
    #[arg(long = "edge-listen", env = "WAGATE_EDGE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// gRPC URL of the control plane.
    #[arg(
        long = "edge-control-plane-url",
        env = "WAGATE_EDGE_CONTROL_PLANE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub control_plane_url: String,

    /// Largest accepted request body, in bytes.
    #[arg(long = "edge-body-limit-bytes", env = "WAGATE_EDGE_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub body_limit_bytes: usize,

    /// Deadline of one request, in milliseconds.
    #[arg(
        long = "edge-request-timeout-ms",
        env = "WAGATE_EDGE_REQUEST_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub request_timeout_ms: u64,

    /// Largest multipart body of a media route (a send with a file), in
    /// bytes; streamed to the control plane, which applies the per-type limits.
    #[arg(long = "edge-media-body-limit-bytes", env = "WAGATE_EDGE_MEDIA_BODY_LIMIT_BYTES", default_value_t = DEFAULT_MEDIA_BODY_LIMIT)]
    pub media_body_limit_bytes: u64,

    /// Largest JSON body of a send carrying `mediaBase64` (read whole), in bytes.
    #[arg(long = "edge-base64-body-limit-bytes", env = "WAGATE_EDGE_BASE64_BODY_LIMIT_BYTES", default_value_t = DEFAULT_BASE64_BODY_LIMIT)]
    pub base64_body_limit_bytes: usize,

    /// Deadline of a media request (upload or download), in milliseconds.
    #[arg(long = "edge-media-timeout-ms", env = "WAGATE_EDGE_MEDIA_TIMEOUT_MS", default_value_t = 600_000)]
    pub media_timeout_ms: u64,

    /// Allowed CORS origins, comma-separated; `*` allows any.
    #[arg(
        long = "edge-cors-origins",
        env = "WAGATE_EDGE_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub cors_origins: Vec<String>,

    /// Number of HTTP/2 channels to the control plane.
    #[arg(long = "edge-grpc-channels", env = "WAGATE_EDGE_GRPC_CHANNELS", default_value_t = 4)]
    pub grpc_channels: usize,

    /// Milliseconds a connection has to send a request's headers (and the
    /// idle keep-alive limit); a silent connection is closed.
    #[arg(long = "edge-header-timeout-ms", env = "WAGATE_EDGE_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,

    /// Connections served at once; more are closed at accept.
    #[arg(long = "edge-max-connections", env = "WAGATE_EDGE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Shared secret presented to the control plane so the forwarded client
    /// address is believed (the same value as the control plane's).
    #[arg(long = "edge-token", env = "WAGATE_EDGE_TOKEN", hide_env_values = true)]
    pub edge_token: Option<String>,

    /// Peers whose `X-Forwarded-For` is believed (CIDRs, comma separated).
    #[arg(
        long = "edge-trusted-proxies",
        env = "WAGATE_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,

    /// Prometheus `GET /metrics` listen address of the edge binary; empty turns
    /// it off, anything else that is not `address:port` refuses start-up.
    /// Loopback by default, like the control plane's: expose it (`0.0.0.0:9091`)
    /// only to the scraper's network, and/or set `WAGATE_METRICS_TOKEN`.
    #[arg(
        long = "edge-metrics-listen",
        env = "WAGATE_EDGE_METRICS_LISTEN",
        default_value = "127.0.0.1:9091"
    )]
    pub metrics_listen: String,

    // --- TLS towards the control plane, /metrics token (issue 13) ---
    /// With `WAGATE_TLS_*` the control-plane URL must be `https://`.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    #[arg(long = "edge-metrics-token", env = "WAGATE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// `WAGATE_TLS_*` of a client of the control plane (see `wagate_proto::tls`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM CA bundle that signed the control plane's certificate (default: public web PKI roots).
    #[arg(long = "edge-tls-ca", env = "WAGATE_TLS_CA")]
    pub ca: Option<String>,
    /// PEM client certificate chain presented to the control plane (with the key).
    #[arg(long = "edge-tls-cert", env = "WAGATE_TLS_CERT")]
    pub cert: Option<String>,
    /// PEM private key of the client certificate.
    #[arg(long = "edge-tls-key", env = "WAGATE_TLS_KEY")]
    pub key: Option<String>,
    /// Name the control plane's certificate is checked against (default: the URL's host).
    #[arg(long = "edge-tls-server-name", env = "WAGATE_TLS_SERVER_NAME")]
    pub server_name: Option<String>,
}

impl TlsArgs {
    /// Reads and checks the files (`None`: no TLS settings).
    pub fn load(&self) -> Result<Option<wagate_proto::tls::ClientTls>, wagate_proto::tls::TlsError> {
        let path = wagate_proto::tls::non_empty_path;
        wagate_proto::tls::ClientTls::from_files(
            path(&self.ca),
            path(&self.cert),
            path(&self.key),
            self.server_name.as_deref(),
        )
    }
}

/// A configuration the edge refuses to start with; each names its variable.
#[derive(Debug, thiserror::Error)]
pub enum EdgeConfigError {
    #[error(transparent)]
    Tls(#[from] wagate_proto::tls::TlsError),
    #[error(transparent)]
    WeakSecret(#[from] wagate_proto::secret::WeakSecret),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl EdgeArgs {
    /// Where the edge binary serves `/metrics` (`None`: off); a value that is
    /// not `address:port` is an error, never "off".
    pub fn metrics_listen(&self) -> Result<Option<SocketAddr>, EdgeConfigError> {
        let raw = self.metrics_listen.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse().map(Some).map_err(|_| EdgeConfigError::Invalid {
            name: "WAGATE_EDGE_METRICS_LISTEN",
            reason: format!(
                "{raw:?} is not address:port (e.g. 0.0.0.0:9091); leave it empty to turn /metrics off"
            ),
        })
    }

    /// `WAGATE_METRICS_TOKEN`, if set.
    pub fn metrics_token(&self) -> Option<String> {
        self.metrics_token.clone().filter(|t| !t.is_empty())
    }

    /// The configuration these arguments describe (zero sizes are raised to
    /// 1); a weak `WAGATE_EDGE_TOKEN` or `WAGATE_METRICS_TOKEN` (the rule of
    /// [`wagate_proto::secret::check`], the control plane's), unreadable TLS
    /// files, or TLS settings with an `http://` URL, are an error.
    pub fn into_config(self) -> Result<EdgeConfig, EdgeConfigError> {
        for (name, value) in
            [("WAGATE_EDGE_TOKEN", &self.edge_token), ("WAGATE_METRICS_TOKEN", &self.metrics_token)]
        {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                wagate_proto::secret::check(name, v)?;
            }
        }
        let tls = self.tls.load()?;
        let control_plane_url = self.control_plane_url.trim().to_owned();
        wagate_proto::tls::check_client_url(&control_plane_url, tls.as_ref())?;
        Ok(EdgeConfig {
            listen: self.listen,
            control_plane_url,
            body_limit_bytes: self.body_limit_bytes.max(1),
            request_timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
            media_body_limit_bytes: self.media_body_limit_bytes.max(1),
            base64_body_limit_bytes: self.base64_body_limit_bytes.max(1),
            media_request_timeout: Duration::from_millis(self.media_timeout_ms.max(1)),
            cors_origins: self
                .cors_origins
                .iter()
                .map(|o| o.trim())
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect(),
            grpc_channels: self.grpc_channels.max(1),
            header_read_timeout: Duration::from_millis(self.header_timeout_ms.max(1)),
            max_connections: self.max_connections.max(1),
            edge_token: self.edge_token.filter(|t| !t.is_empty()),
            trusted_proxies: parse_cidrs(&self.trusted_proxies),
            tls,
        })
    }
}

/// Parses `WAGATE_TRUSTED_PROXIES`; an entry that is neither a CIDR nor an
/// address is skipped with a warning.
pub fn parse_cidrs(raw: &[String]) -> Vec<ipnet::IpNet> {
    raw.iter()
        .filter_map(|entry| match wagate_proto::forwarded::parse_cidrs([entry.as_str()]) {
            Ok(nets) => Some(nets),
            Err(e) => {
                tracing::warn!(error = %e, "WAGATE_TRUSTED_PROXIES entry ignored");
                None
            }
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        edge: EdgeArgs,
    }

    #[test]
    fn defaults_match_edge_config_default() {
        let cli = Cli::try_parse_from(["edge-gateway"]).unwrap();
        assert_eq!(cli.edge.into_config().unwrap(), EdgeConfig::default());
    }

    #[test]
    fn metrics_listen_on_loopback_by_default() {
        let cli = Cli::try_parse_from(["edge-gateway"]).unwrap();
        let addr = cli.edge.metrics_listen().expect("valid").expect("on by default");
        assert!(addr.ip().is_loopback(), "{addr}");
        assert_eq!(addr.to_string(), "127.0.0.1:9091");
        assert!(cli.edge.metrics_token().is_none());
    }

    #[test]
    fn tls_settings_need_an_https_url() {
        let cli = Cli::try_parse_from(["edge-gateway", "--edge-tls-server-name", "cp.internal"]).unwrap();
        let e = cli.edge.into_config().unwrap_err();
        assert!(e.to_string().contains("not https://"), "{e}");
        let cli = Cli::try_parse_from([
            "edge-gateway",
            "--edge-tls-server-name",
            "cp.internal",
            "--edge-control-plane-url",
            "https://cp:50051",
        ])
        .unwrap();
        let tls = cli.edge.into_config().unwrap().tls.expect("tls");
        assert_eq!(tls.server_name.as_deref(), Some("cp.internal"));
        let cli = Cli::try_parse_from(["edge-gateway", "--edge-tls-ca", "/nonexistent/ca.pem"]).unwrap();
        assert!(cli.edge.into_config().unwrap_err().to_string().contains("WAGATE_TLS_CA"));
    }

    #[test]
    fn weak_tokens_and_bad_metrics_address_are_refused() {
        for (flag, name) in
            [("--edge-token", "WAGATE_EDGE_TOKEN"), ("--edge-metrics-token", "WAGATE_METRICS_TOKEN")]
        {
            for weak in ["0123456789abcdef0123456789abcdef", "abcdefghijklmnopqrstuvwxyz012345", "short"] {
                let cli = Cli::try_parse_from(["edge-gateway", flag, weak]).unwrap();
                let e = cli.edge.into_config().unwrap_err().to_string();
                assert!(e.contains(name) && e.contains("too weak"), "{e}");
            }
            let strong = "3f9c1e07b2d84a6e95c0f1d7a3b86e24c9d05f1a7e3b2c8d4f60a19e7b3c5d28";
            let cli = Cli::try_parse_from(["edge-gateway", flag, strong]).unwrap();
            assert!(cli.edge.into_config().is_ok());
        }
        let cli = Cli::try_parse_from(["edge-gateway", "--edge-metrics-listen", "0.0.0.0"]).unwrap();
        let e = cli.edge.metrics_listen().unwrap_err().to_string();
        assert!(e.contains("WAGATE_EDGE_METRICS_LISTEN"), "{e}");
        let cli = Cli::try_parse_from(["edge-gateway", "--edge-metrics-listen", " "]).unwrap();
        assert!(cli.edge.metrics_listen().unwrap().is_none());
    }

    #[test]
    fn options_parse() {
        let cli = Cli::try_parse_from([
            "edge-gateway",
            "--edge-listen",
            "127.0.0.1:0",
            "--edge-cors-origins",
            "https://a.example, https://b.example",
            "--edge-request-timeout-ms",
            "1500",
            "--edge-grpc-channels",
            "0",
        ])
        .unwrap();
        let c = cli.edge.into_config().unwrap();
        assert_eq!(c.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.cors_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(c.request_timeout, Duration::from_millis(1500));
        assert_eq!(c.grpc_channels, 1);
    }
}
