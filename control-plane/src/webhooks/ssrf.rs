//! Which webhook targets may be called: http(s) only, and (unless the
//! operator allows private targets) no host that resolves to a loopback,
//! private, link-local, CGNAT, metadata or otherwise special address.
//! Checked when a webhook is configured, and again at connect time by
//! [`GuardedResolver`], the HTTP client's DNS resolver, so a name that
//! later resolves elsewhere (DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use wagate_proto::contract::limits::MAX_WEBHOOK_URL as MAX_URL_LEN;
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SsrfError {
    #[error("url is not a valid absolute URL")]
    Invalid,
    #[error("url must be at most {MAX_URL_LEN} characters")]
    TooLong,
    #[error("url must use http or https")]
    Scheme,
    #[error("url has no host")]
    NoHost,
    #[error("url host {0} does not resolve")]
    Unresolvable(String),
    #[error("url host resolves to {0}, a loopback, private, link-local or otherwise internal address")]
    Internal(IpAddr),
}

/// True for addresses a webhook must not reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: cloud metadata lives here
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    // Every transition form that carries an IPv4 address is judged by that
    // address: reaching it reaches the IPv4 host behind a translator or relay.
    if embedded_v4(ip).iter().any(|v4| internal_v4(*v4)) {
        return true;
    }
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local (incl. fd00:ec2::254 metadata)
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated): refused whatever it embeds
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 (RFC 8215): inside the operator's network
}

fn v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// The IPv4 addresses an IPv6 transition form carries: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), IPv4-translated
/// (`::ffff:0:a.b.c.d`, SIIT), 6to4 (`2002:AABB:CCDD::/48`), NAT64
/// (`64:ff9b::/96` and the local-use `64:ff9b:1::/48`, RFC 6052 layouts)
/// and Teredo (`2001::/32`: the server, and the client address stored
/// inverted in the last 32 bits).
pub fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let mut out = Vec::new();
    match s {
        // IPv4-mapped ::ffff:0:0/96
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => out.push(v4(hi, lo)),
        // IPv4-translated ::ffff:0:0:0/96
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => out.push(v4(hi, lo)),
        // IPv4-compatible ::/96 (not :: and ::1, judged as IPv6)
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => out.push(v4(hi, lo)),
        // 6to4 2002::/16: the site's IPv4 address in bits 16..48
        [0x2002, hi, lo, ..] => out.push(v4(hi, lo)),
        // Teredo 2001:0::/32: server in bits 32..64, client inverted in bits 96..128
        [0x2001, 0, server_hi, server_lo, _, _, client_hi, client_lo] => {
            out.push(v4(server_hi, server_lo));
            out.push(v4(!client_hi, !client_lo));
        }
        // Well-known NAT64 prefix 64:ff9b::/96
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => out.push(v4(hi, lo)),
        // Local-use NAT64 64:ff9b:1::/48: the operator picks the prefix length,
        // so every RFC 6052 layout that fits inside it is read (/48, /56, /64, /96).
        [0x64, 0xff9b, 1, ..] => {
            out.push(Ipv4Addr::new(o[6], o[7], o[9], o[10])); // /48
            out.push(Ipv4Addr::new(o[7], o[9], o[10], o[11])); // /56
            out.push(Ipv4Addr::new(o[9], o[10], o[11], o[12])); // /64
            out.push(Ipv4Addr::new(o[12], o[13], o[14], o[15])); // /96
        }
        _ => {}
    }
    out
}

/// Parses and checks a webhook URL: scheme, host, and (unless
/// `allow_private`) every address the host resolves to.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<Url, SsrfError> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LEN {
        return Err(SsrfError::TooLong);
    }
    let url = Url::parse(raw).map_err(|_| SsrfError::Invalid)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SsrfError::Scheme);
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(SsrfError::NoHost)?.to_owned();
    let port = url.port_or_known_default().ok_or(SsrfError::NoHost)?;
    if allow_private {
        return Ok(url);
    }
    let addrs = match literal_ip(&url) {
        Some(ip) => vec![ip],
        None => resolve(&host, port).await.map_err(|_| SsrfError::Unresolvable(host.clone()))?,
    };
    if addrs.is_empty() {
        return Err(SsrfError::Unresolvable(host));
    }
    match addrs.into_iter().find(|ip| is_internal(*ip)) {
        Some(ip) => Err(SsrfError::Internal(ip)),
        None => Ok(url),
    }
}

/// The IP literal of a URL's host, if it is one (the client's resolver is
/// not asked for those, so the dispatcher checks them itself).
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "dns timeout"))??;
    Ok(found.map(|a| a.ip()).collect())
}

/// DNS resolver of the dispatcher's HTTP client: refuses names that
/// resolve to internal addresses at connect time.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let ips = resolve(&host, 0).await?;
            let ok: Vec<SocketAddr> = ips
                .into_iter()
                .filter(|ip| allow_private || !is_internal(*ip))
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if ok.is_empty() {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host} resolves only to internal addresses"),
                )) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(ok.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    /// Each IPv6 transition form with a private IPv4 inside is internal; the
    /// same form with a public IPv4 is not (except the forms refused whole).
    #[test]
    fn transition_forms_are_judged_by_their_ipv4() {
        for (form, internal, public) in [
            ("IPv4-mapped", "::ffff:10.0.0.1", Some("::ffff:8.8.8.8")),
            ("IPv4-translated", "::ffff:0:10.0.0.1", Some("::ffff:0:8.8.8.8")),
            ("IPv4-translated metadata", "::ffff:0:169.254.169.254", None),
            ("IPv4-compatible", "::10.0.0.1", None),
            ("IPv4-compatible public (deprecated form, refused)", "::8.8.8.8", None),
            ("6to4", "2002:a00:1::1", Some("2002:808:808::1")),
            ("6to4 loopback", "2002:7f00:1::", None),
            ("6to4 metadata", "2002:a9fe:a9fe::1", None),
            ("NAT64", "64:ff9b::10.0.0.1", Some("64:ff9b::8.8.8.8")),
            ("NAT64 local-use /96", "64:ff9b:1::10.0.0.1", None),
            ("NAT64 local-use /48", "64:ff9b:1:a00:1::", None),
            ("NAT64 local-use public (refused whole)", "64:ff9b:1::8.8.8.8", None),
            // client 192.168.1.1 inverted = 3f57:fefe; server 65.54.227.120 (public)
            (
                "Teredo client",
                "2001:0:4136:e378:8000:63bf:3f57:fefe",
                Some("2001:0:4136:e378:8000:63bf:f7f7:f7f7"),
            ),
            // server 127.0.0.1, client 8.8.8.8 (inverted f7f7:f7f7)
            ("Teredo server", "2001:0:7f00:1:8000:63bf:f7f7:f7f7", None),
        ] {
            let ip: Ipv6Addr = internal.parse().unwrap();
            assert!(is_internal(IpAddr::V6(ip)), "{form}: {internal}");
            if let Some(public) = public {
                assert!(!is_internal(public.parse().unwrap()), "{form}: {public}");
            }
        }
        assert_eq!(
            embedded_v4("2001:0:4136:e378:8000:63bf:3f57:fefe".parse().unwrap()),
            vec![Ipv4Addr::new(65, 54, 227, 120), Ipv4Addr::new(192, 168, 1, 1)]
        );
        assert_eq!(embedded_v4("2002:c0a8:101::".parse().unwrap()), vec![Ipv4Addr::new(192, 168, 1, 1)]);
        assert!(embedded_v4("2606:4700::1111".parse().unwrap()).is_empty());
    }

    #[tokio::test]
    async fn transition_forms_are_refused_at_configuration() {
        for url in [
            "http://[2002:a00:1::1]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[2001:0:4136:e378:8000:63bf:3f57:fefe]/",
        ] {
            assert!(matches!(check_url(url, false).await, Err(SsrfError::Internal(_))), "{url}");
        }
    }

    /// At connect time the dispatcher's resolver refuses the same forms.
    #[tokio::test]
    async fn transition_forms_are_refused_at_connect() {
        use std::str::FromStr;
        let guard = GuardedResolver { allow_private: false };
        for host in
            ["2002:a00:1::1", "::ffff:0:a00:1", "64:ff9b::a00:1", "2001:0:4136:e378:8000:63bf:3f57:fefe"]
        {
            let name = Name::from_str(host).unwrap();
            assert!(guard.resolve(name).await.is_err(), "{host}");
        }
        let open = GuardedResolver { allow_private: true };
        assert!(open.resolve(Name::from_str("2002:a00:1::1").unwrap()).await.is_ok());
    }

    #[tokio::test]
    async fn urls() {
        assert_eq!(check_url("file:///etc/passwd", false).await, Err(SsrfError::Scheme));
        assert_eq!(check_url("ftp://example.com/", true).await, Err(SsrfError::Scheme));
        assert_eq!(check_url("not a url", false).await, Err(SsrfError::Invalid));
        assert!(matches!(check_url("http://169.254.169.254/", false).await, Err(SsrfError::Internal(_))));
        assert!(matches!(check_url("http://[::1]/", false).await, Err(SsrfError::Internal(_))));
        assert!(matches!(check_url("http://localhost:6379", false).await, Err(SsrfError::Internal(_))));
        assert!(matches!(check_url("http://2130706433/", false).await, Err(SsrfError::Internal(_))));
        assert!(check_url("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(check_url("https://93.184.216.34/hook", false).await.is_ok());
    }
}
