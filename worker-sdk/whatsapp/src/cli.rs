//! The driver choice of a worker binary (`wagate-worker` and the all-in-one
//! `wagate`): `WAGATE_WORKER_DRIVER=simulated|whatsapp` and the WhatsApp
//! server address `WAGATE_WA_SERVER_URL`.

use crate::WhatsAppConfig;

/// Which driver runs the sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DriverKind {
    /// In-memory simulated phones (development, tests, benchmarks).
    #[default]
    Simulated,
    /// Real WhatsApp Web (multi-device) connections through whatsapp-rust.
    Whatsapp,
}

/// The driver flags shared by the worker binaries.
#[derive(Debug, Clone, clap::Args)]
pub struct DriverArgs {
    /// Session driver: `simulated` or `whatsapp` (real phones).
    #[arg(long = "driver", env = "WAGATE_WORKER_DRIVER", value_enum, default_value_t = DriverKind::Simulated)]
    pub driver: DriverKind,
    /// whatsapp driver: the WhatsApp WebSocket address (`ws://` or `wss://`;
    /// default WhatsApp's own). For offline tests against a fake server.
    #[arg(long, env = "WAGATE_WA_SERVER_URL", value_parser = parse_ws_url)]
    pub wa_server_url: Option<String>,
}

fn parse_ws_url(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if (lower.starts_with("ws://") || lower.starts_with("wss://")) && s.len() > 6 {
        Ok(s.to_owned())
    } else {
        Err(format!("`{s}` is not a ws:// or wss:// URL"))
    }
}

impl DriverArgs {
    /// The whatsapp driver's configuration these flags describe.
    pub fn whatsapp_config(&self) -> WhatsAppConfig {
        WhatsAppConfig { server_url: self.wa_server_url.clone(), ..WhatsAppConfig::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        driver: DriverArgs,
    }

    #[test]
    fn the_simulated_driver_is_the_default_and_urls_are_checked() {
        let cli = Cli::try_parse_from(["w"]).unwrap();
        assert_eq!(cli.driver.driver, DriverKind::Simulated);
        let cli =
            Cli::try_parse_from(["w", "--driver", "whatsapp", "--wa-server-url", "ws://127.0.0.1:9/ws/chat"])
                .unwrap();
        assert_eq!(cli.driver.driver, DriverKind::Whatsapp);
        assert_eq!(cli.driver.whatsapp_config().server_url.as_deref(), Some("ws://127.0.0.1:9/ws/chat"));
        assert!(Cli::try_parse_from(["w", "--wa-server-url", "http://x"]).is_err());
        assert!(Cli::try_parse_from(["w", "--driver", "real"]).is_err());
    }
}
