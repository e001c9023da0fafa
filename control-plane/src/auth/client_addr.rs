//! The client address of a call, for the audit log and per-IP limits.
//!
//! It is the socket peer, unless the peer is a forwarder we trust: a proxy in
//! `WAGATE_TRUSTED_PROXIES` (CIDRs), or the edge gateway proving itself with
//! the shared `WAGATE_EDGE_TOKEN` (`x-wagate-edge-token`). Only then is the
//! `x-forwarded-for` metadata believed (its left-most address). A direct
//! caller cannot spoof its address this way.

use tonic::Request;
use wagate_proto::forwarded::{self, IpNet};

use crate::auth::identity::secret_matches;

/// Metadata the edge presents to be trusted as a forwarder.
pub const EDGE_TOKEN: &str = "x-wagate-edge-token";

#[derive(Clone, Debug, Default)]
pub struct Forwarders {
    trusted: Vec<IpNet>,
    edge_token: Option<String>,
}

impl Forwarders {
    pub fn new(trusted: Vec<IpNet>, edge_token: Option<String>) -> Self {
        Self { trusted, edge_token: edge_token.filter(|t| !t.is_empty()) }
    }

    /// The client address of `req` (empty when unknown).
    pub fn client_ip<T>(&self, req: &Request<T>) -> String {
        let Some(peer) = req.remote_addr().map(|a| a.ip()) else { return String::new() };
        let md = req.metadata();
        let by_token = self.edge_token.as_deref().is_some_and(|expected| {
            md.get(EDGE_TOKEN).and_then(|v| v.to_str().ok()).is_some_and(|t| secret_matches(t, expected))
        });
        let trusted = by_token || forwarded::is_trusted(peer.to_canonical(), &self.trusted);
        let xff = md.get(wagate_proto::metadata::FORWARDED_FOR).and_then(|v| v.to_str().ok());
        forwarded::client_ip(peer, xff, trusted).to_string()
    }
}

/// Parses `WAGATE_TRUSTED_PROXIES`.
pub fn parse_cidrs(raw: &str) -> Result<Vec<IpNet>, String> {
    forwarded::parse_cidrs([raw])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, xff: Option<&str>, token: Option<&str>) -> Request<()> {
        let mut req = Request::new(());
        if let Some(x) = xff {
            req.metadata_mut().insert("x-forwarded-for", x.parse().unwrap());
        }
        if let Some(t) = token {
            req.metadata_mut().insert(EDGE_TOKEN, t.parse().unwrap());
        }
        let addr: std::net::SocketAddr = peer.parse().unwrap();
        req.extensions_mut()
            .insert(tonic::transport::server::TcpConnectInfo { local_addr: None, remote_addr: Some(addr) });
        req
    }

    #[test]
    fn forwarded_address_only_from_trusted_forwarders() {
        let f = Forwarders::new(parse_cidrs("10.0.0.0/8, 192.168.1.7").unwrap(), Some("edge-secret".into()));
        // an untrusted direct caller cannot spoof
        assert_eq!(f.client_ip(&request("203.0.113.9:5000", Some("1.2.3.4"), None)), "203.0.113.9");
        assert_eq!(f.client_ip(&request("203.0.113.9:5000", Some("1.2.3.4"), Some("guess"))), "203.0.113.9");
        // a trusted proxy network, or the edge with its token
        assert_eq!(f.client_ip(&request("10.1.2.3:5000", Some("1.2.3.4, 10.9.9.9"), None)), "1.2.3.4");
        assert_eq!(f.client_ip(&request("192.168.1.7:5000", Some("1.2.3.4"), None)), "1.2.3.4");
        assert_eq!(
            f.client_ip(&request("203.0.113.9:5000", Some("1.2.3.4"), Some("edge-secret"))),
            "1.2.3.4"
        );
        // garbage in the header falls back to the peer
        assert_eq!(f.client_ip(&request("10.1.2.3:5000", Some("<script>"), None)), "10.1.2.3");
        assert!(parse_cidrs("10.0.0.0/33").is_err());
        assert!(parse_cidrs("").unwrap().is_empty());
    }
}
