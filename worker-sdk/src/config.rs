//! Worker configuration, and the command line / environment of the
//! reference worker binary.

use std::collections::HashMap;
use std::time::Duration;

use crate::events::DEFAULT_EVENT_QUEUE_CAPACITY;

/// How a worker connects to the control plane and what it advertises.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// e.g. `http://127.0.0.1:50051`.
    pub control_plane_url: String,
    /// Worker token, sent as `authorization: Bearer <token>`.
    pub token: String,
    /// Stable id of this worker (one per process or pod).
    pub worker_id: String,
    /// Where the worker can be reached or what identifies it for operators.
    pub endpoint: String,
    /// Sessions this worker is willing to run.
    pub max_sessions: u32,
    /// Worker software version.
    pub version: String,
    /// Free-form labels (zone, host, ...).
    pub labels: HashMap<String, String>,
    /// How long to wait for `Welcome` after opening the stream.
    pub hello_timeout: Duration,
    /// First reconnect delay ceiling.
    pub backoff_base: Duration,
    /// Cap of reconnect delays.
    pub backoff_max: Duration,
    /// Commands run at the same time at most.
    pub command_concurrency: usize,
    /// Events queued (while the stream is slow or down) before `emit` waits.
    pub event_queue_capacity: usize,
    /// How long a graceful shutdown waits for in-flight commands.
    pub shutdown_grace: Duration,
    /// Message ids (with their receipts) remembered for de-duplication of
    /// repeated `SendMessage` commands (about 150 bytes each).
    pub dedup_window: usize,
    /// TLS towards the control plane (used with an `https://` URL; without
    /// it an `https://` URL trusts the public web PKI roots): the CA to trust
    /// and this worker's client certificate (`WAGATE_TLS_*`).
    pub tls: Option<wagate_proto::tls::ClientTls>,
}

impl WorkerConfig {
    /// A configuration with defaults for everything but the essentials.
    pub fn new(
        control_plane_url: impl Into<String>,
        token: impl Into<String>,
        worker_id: impl Into<String>,
    ) -> Self {
        let worker_id = worker_id.into();
        Self {
            control_plane_url: control_plane_url.into(),
            token: token.into(),
            endpoint: hostname().unwrap_or_else(|| worker_id.clone()),
            worker_id,
            max_sessions: 50,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            labels: HashMap::new(),
            hello_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            command_concurrency: 256,
            event_queue_capacity: DEFAULT_EVENT_QUEUE_CAPACITY,
            shutdown_grace: Duration::from_secs(5),
            dedup_window: 100_000,
            tls: None,
        }
    }
}

/// The machine's host name, if it has one.
pub fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(sysinfo::System::host_name)
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// `worker-<hostname>`, or `worker-<random hex>` without a host name.
pub fn default_worker_id() -> String {
    match hostname() {
        Some(host) => format!("worker-{host}"),
        None => format!("worker-{:08x}", rand::random::<u32>()),
    }
}

/// Command line and environment of the reference worker (`wagate-worker`).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "wagate-worker", version, about = "wagate reference worker (simulated WhatsApp sessions)")]
pub struct Args {
    /// Control-plane gRPC URL.
    #[arg(long, env = "WAGATE_WORKER_CONTROL_PLANE_URL", default_value = "http://127.0.0.1:50051")]
    pub control_plane_url: String,

    /// Worker token (sent as `authorization: Bearer <token>`): the per-worker `wkt_…` token an
    /// administrator issued for this worker id, or the shared `WORKER_AUTH_TOKEN`. Required: there is
    /// no default.
    #[arg(long, env = "WORKER_AUTH_TOKEN", hide_env_values = true)]
    pub token: String,

    /// Stable worker id [default: worker-<hostname or random>].
    #[arg(long = "worker-id", env = "WAGATE_WORKER_ID")]
    pub worker_id: Option<String>,

    /// Advertised endpoint [default: the host name].
    #[arg(long, env = "WAGATE_WORKER_ENDPOINT")]
    pub endpoint: Option<String>,

    /// Sessions this worker is willing to run.
    #[arg(long, env = "WAGATE_WORKER_MAX_SESSIONS", default_value_t = 50)]
    pub max_sessions: u32,

    /// Labels, `key=value` separated by commas (e.g. `zone=a,tier=dev`).
    #[arg(long, env = "WAGATE_WORKER_LABELS", value_delimiter = ',', value_parser = parse_label)]
    pub labels: Vec<(String, String)>,

    /// Simulated driver: scan the QR code automatically after this many ms.
    #[arg(long, env = "WAGATE_WORKER_AUTO_SCAN_MS")]
    pub auto_scan_ms: Option<u64>,

    /// Simulated driver: report a sent message DELIVERED after at least this many ms.
    #[arg(long, env = "WAGATE_WORKER_DELIVERED_MS", default_value_t = 50)]
    pub delivered_ms: u64,

    /// Simulated driver: ... and at most this many ms (uniform; default: --delivered-ms).
    #[arg(long, env = "WAGATE_WORKER_DELIVERED_MAX_MS")]
    pub delivered_max_ms: Option<u64>,

    /// Simulated driver: report it READ at least this many ms after DELIVERED.
    #[arg(long, env = "WAGATE_WORKER_READ_MS", default_value_t = 100)]
    pub read_ms: u64,

    /// Simulated driver: ... and at most this many ms (uniform; default: --read-ms).
    #[arg(long, env = "WAGATE_WORKER_READ_MAX_MS")]
    pub read_max_ms: Option<u64>,

    /// Simulated driver: share of delivered messages that are read (0 to 1).
    #[arg(long, env = "WAGATE_WORKER_READ_SHARE", default_value_t = 1.0)]
    pub read_share: f64,

    /// Message ids remembered by the SDK to answer repeated sends.
    #[arg(long, env = "WAGATE_WORKER_DEDUP_WINDOW", default_value_t = 100_000)]
    pub dedup_window: usize,
    /// Simulated driver, echo mode: each text sent is answered by an inbound
    /// message from the recipient 500 ms later.
    #[arg(long, env = "WAGATE_WORKER_ECHO", default_value_t = false, action = clap::ArgAction::Set)]
    pub echo: bool,

    /// Commands run at the same time at most.
    #[arg(long, env = "WAGATE_WORKER_COMMAND_CONCURRENCY", default_value_t = 256)]
    pub command_concurrency: usize,

    // --- TLS towards the control plane (issue 13): needs an https:// URL ---
    /// PEM CA bundle that signed the control plane's certificate (default: public web PKI roots).
    #[arg(long, env = "WAGATE_TLS_CA")]
    pub tls_ca: Option<String>,
    /// PEM client certificate chain of this worker (when the control plane asks for one).
    #[arg(long, env = "WAGATE_TLS_CERT")]
    pub tls_cert: Option<String>,
    /// PEM private key of the client certificate.
    #[arg(long, env = "WAGATE_TLS_KEY")]
    pub tls_key: Option<String>,
    /// Name the control plane's certificate is checked against (default: the URL's host).
    #[arg(long, env = "WAGATE_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("label `{s}` is not key=value")),
    }
}

/// A configuration the reference worker refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error(transparent)]
    Tls(#[from] wagate_proto::tls::TlsError),
    #[error(transparent)]
    WeakSecret(#[from] wagate_proto::secret::WeakSecret),
}

impl Args {
    /// The worker configuration these arguments describe; a weak token (the
    /// control plane's rule, [`wagate_proto::secret::check`]: a `wkt_…` token
    /// it issued always passes), unreadable TLS files, or TLS settings with
    /// an `http://` URL, are an error.
    pub fn worker_config(&self) -> Result<WorkerConfig, ArgsError> {
        wagate_proto::secret::check("WORKER_AUTH_TOKEN", &self.token)?;
        let path = wagate_proto::tls::non_empty_path;
        let tls = wagate_proto::tls::ClientTls::from_files(
            path(&self.tls_ca),
            path(&self.tls_cert),
            path(&self.tls_key),
            self.tls_server_name.as_deref(),
        )?;
        wagate_proto::tls::check_client_url(&self.control_plane_url, tls.as_ref())?;
        let worker_id =
            self.worker_id.clone().filter(|id| !id.trim().is_empty()).unwrap_or_else(default_worker_id);
        let mut config = WorkerConfig::new(&self.control_plane_url, &self.token, worker_id);
        if let Some(endpoint) = self.endpoint.clone().filter(|e| !e.trim().is_empty()) {
            config.endpoint = endpoint;
        }
        config.max_sessions = self.max_sessions;
        config.labels = self.labels.iter().cloned().collect();
        config.command_concurrency = self.command_concurrency.max(1);
        config.dedup_window = self.dedup_window.max(1);
        config.tls = tls;
        Ok(config)
    }

    /// The simulated driver's configuration these arguments describe.
    pub fn simulated_config(&self) -> crate::simulated::SimulatedConfig {
        crate::simulated::SimulatedConfig {
            auto_scan_after: self.auto_scan_ms.map(Duration::from_millis),
            delivered_after: Duration::from_millis(self.delivered_ms),
            delivered_after_max: Duration::from_millis(self.delivered_max_ms.unwrap_or(self.delivered_ms)),
            read_after: Duration::from_millis(self.read_ms),
            read_after_max: Duration::from_millis(self.read_max_ms.unwrap_or(self.read_ms)),
            read_share: self.read_share.clamp(0.0, 1.0),
            echo_after: self.echo.then_some(Duration::from_millis(500)),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn config_defaults() {
        let c = WorkerConfig::new("http://127.0.0.1:50051", "t", "w1");
        assert_eq!(c.worker_id, "w1");
        assert_eq!(c.max_sessions, 50);
        assert_eq!(c.hello_timeout, Duration::from_secs(10));
        assert_eq!(c.backoff_base, Duration::from_millis(200));
        assert_eq!(c.backoff_max, Duration::from_secs(10));
        assert_eq!(c.command_concurrency, 256);
        assert!(!c.endpoint.is_empty());
    }

    /// `openssl rand -hex 32`-like, as the control plane issues (`wkt_…`).
    const TOKEN: &str = "wkt_3f9c1e07b2d84a6e95c0f1d7a3b86e24c9d05f1a7e3b2c8d4f60a19e7b3c5d28";

    #[test]
    fn weak_token_is_refused() {
        for weak in
            ["t", "0123456789abcdef0123456789abcdef", "abcdefghijklmnopqrstuvwxyz012345", "dev-worker-token"]
        {
            let args = Args::try_parse_from(["wagate-worker", "--token", weak]).unwrap();
            let e = args.worker_config().unwrap_err().to_string();
            assert!(e.contains("WORKER_AUTH_TOKEN is too weak"), "{e}");
            assert!(weak.len() < 8 || !e.contains(weak), "the token is not printed: {e}");
        }
        let args = Args::try_parse_from(["wagate-worker", "--token", TOKEN]).unwrap();
        assert_eq!(args.worker_config().unwrap().token, TOKEN);
    }

    #[test]
    fn args_parse_into_config() {
        let args = Args::try_parse_from([
            "wagate-worker",
            "--control-plane-url",
            "http://cp:1",
            "--token",
            TOKEN,
            "--worker-id",
            "w9",
            "--max-sessions",
            "7",
            "--labels",
            "zone=a,tier=dev",
            "--auto-scan-ms",
            "250",
        ])
        .unwrap();
        let c = args.worker_config().unwrap();
        assert_eq!(c.control_plane_url, "http://cp:1");
        assert_eq!(c.token, TOKEN);
        assert_eq!(c.worker_id, "w9");
        assert_eq!(c.max_sessions, 7);
        assert_eq!(c.labels.get("zone").map(String::as_str), Some("a"));
        assert_eq!(c.labels.get("tier").map(String::as_str), Some("dev"));
        let s = args.simulated_config();
        assert_eq!(s.auto_scan_after, Some(Duration::from_millis(250)));
    }

    #[test]
    fn tls_settings_need_an_https_url() {
        let args =
            Args::try_parse_from(["wagate-worker", "--token", TOKEN, "--tls-server-name", "cp"]).unwrap();
        assert!(args.worker_config().unwrap_err().to_string().contains("not https://"));
        let args = Args::try_parse_from([
            "wagate-worker",
            "--token",
            TOKEN,
            "--control-plane-url",
            "https://cp:50051",
            "--tls-cert",
            "/nonexistent/w.pem",
        ])
        .unwrap();
        let e = args.worker_config().unwrap_err().to_string();
        assert!(e.contains("WAGATE_TLS_CERT and WAGATE_TLS_KEY"), "{e}");
    }

    #[test]
    fn bad_label_is_rejected() {
        assert!(Args::try_parse_from(["wagate-worker", "--labels", "novalue"]).is_err());
    }

    #[test]
    fn default_worker_id_has_prefix() {
        assert!(default_worker_id().starts_with("worker-"));
    }
}
