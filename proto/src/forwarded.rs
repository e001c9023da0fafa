//! The client address behind a forwarder, one rule for the edge and the
//! control plane: the socket peer, unless the forwarder is trusted; then
//! the left-most valid address of its `x-forwarded-for`.

use std::net::IpAddr;

pub use ipnet::IpNet;

/// Parses `10.0.0.0/8, 192.168.1.7` entries (a bare address is a /32 or
/// /128); names the first entry that is neither.
pub fn parse_cidrs<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Vec<IpNet>, String> {
    entries
        .into_iter()
        .flat_map(|e| e.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("not a CIDR or an IP address: {s:?}"))
        })
        .collect()
}

/// True when `peer` is inside one of `trusted`.
pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&peer))
}

/// The left-most valid address of an `x-forwarded-for` value.
pub fn first_forwarded(value: Option<&str>) -> Option<IpAddr> {
    value?.split(',').next()?.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The client address: `peer`, or the forwarded one when `trusted_forwarder`.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted_forwarder: bool) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted_forwarder { first_forwarded(forwarded_for).unwrap_or(peer) } else { peer }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let nets = parse_cidrs(["10.0.0.0/8, 192.168.1.7"]).unwrap();
        assert!(is_trusted("10.1.2.3".parse().unwrap(), &nets));
        assert!(!is_trusted("203.0.113.9".parse().unwrap(), &nets));
        assert!(parse_cidrs(["10.0.0.0/33"]).is_err());
        assert!(parse_cidrs([""]).unwrap().is_empty());
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(client_ip(peer, Some("1.2.3.4, 10.9.9.9"), true).to_string(), "1.2.3.4");
        assert_eq!(client_ip(peer, Some("1.2.3.4"), false), peer);
        assert_eq!(client_ip(peer, Some("<script>"), true), peer);
    }
}
