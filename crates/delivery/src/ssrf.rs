//! SSRF guard: which target addresses outbound webhooks may connect to.
//!
//! The check runs on the *resolved* addresses at connect time (a reqwest DNS resolver), so a
//! hostname that resolves — or re-resolves — to an internal address is refused, and on
//! literal-IP URLs before sending (reqwest does not consult the resolver for those).

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// True for addresses webhooks must not reach unless private targets are allowed:
/// loopback, private (RFC 1918, fc00::/7), link-local (incl. 169.254.169.254), CGNAT
/// (100.64/10), unspecified / "this network" (0/8, ::), broadcast and reserved (240/4),
/// multicast, deprecated site-local (fec0::/10), and IPv6 forms embedding a forbidden IPv4
/// address (IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96).
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()                                  // 127/8
        || ip.is_private()                            // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()                         // 169.254/16 (cloud metadata)
        || (o[0] == 100 && (o[1] & 0xc0) == 64)       // 100.64/10 CGNAT
        || o[0] == 0                                  // 0/8 incl. unspecified
        || ip.is_broadcast()
        || ip.is_multicast()                          // 224/4
        || o[0] >= 240 // 240/4 reserved
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return true;
    }
    if (s[0] & 0xfe00) == 0xfc00       // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80   // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0
    // fec0::/10 site-local (deprecated)
    {
        return true;
    }
    // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), 64:ff9b::a.b.c.d (NAT64).
    let embedded = (s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0))
        || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]);
    if embedded {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return is_forbidden_v4(v4);
    }
    false
}

/// `webhook_url` must be an absolute http(s) URL with a host. Returns a short reason if not.
/// (Private targets are *not* rejected here: that is decided at connect time.)
pub fn validate_webhook_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => return Err(format!("URL scheme must be http or https, not {other:?}")),
    }
    match parsed.host_str() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err("URL must have a host".to_string()),
    }
}

/// The literal IP of a URL's host, if it is one (brackets of IPv6 literals removed).
pub(crate) fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.parse().ok()
}

/// Error returned when a target is refused; found again by walking the error chain.
#[derive(Debug, Clone)]
pub struct SsrfRefused {
    pub host: String,
    pub addrs: Vec<IpAddr>,
}

impl fmt::Display for SsrfRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused by SSRF guard: {} resolves only to disallowed addresses",
            self.host
        )?;
        if !self.addrs.is_empty() {
            let list: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
            write!(f, " ({})", list.join(", "))?;
        }
        Ok(())
    }
}

impl StdError for SsrfRefused {}

/// Finds an [`SsrfRefused`] anywhere in an error's source chain.
pub(crate) fn find_refusal<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a SsrfRefused> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<SsrfRefused>() {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

/// DNS resolver that drops disallowed addresses and fails if none remain, so the
/// connection is only ever made to an address that passed the check.
#[derive(Debug, Default, Clone)]
pub struct GuardedResolver;

impl GuardedResolver {
    pub fn shared() -> Arc<Self> {
        Arc::new(GuardedResolver)
    }

    /// Resolves `host` and keeps only allowed addresses (port 0; reqwest sets the port).
    pub async fn resolve_allowed(
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn StdError + Send + Sync>> {
        let all: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        let (ok, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
            all.into_iter().partition(|a| !is_forbidden_ip(a.ip()));
        if ok.is_empty() {
            tracing::warn!(host, refused = ?refused, "webhook target refused by SSRF guard");
            return Err(Box::new(SsrfRefused {
                host: host.to_string(),
                addrs: refused.iter().map(|a| a.ip()).collect(),
            }));
        }
        Ok(ok)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = GuardedResolver::resolve_allowed(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forbidden_addresses() {
        for s in [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "::ffff:0.0.0.0",
        ] {
            assert!(is_forbidden_ip(ip(s)), "{s} should be forbidden");
        }
    }

    #[test]
    fn allowed_addresses() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.167.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "11.0.0.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "fe00::1",
        ] {
            assert!(!is_forbidden_ip(ip(s)), "{s} should be allowed");
        }
    }

    #[test]
    fn url_validation() {
        assert!(validate_webhook_url("https://example.com/hook").is_ok());
        assert!(validate_webhook_url("http://127.0.0.1:8080/x?y=1").is_ok());
        assert!(validate_webhook_url("HTTP://Example.COM").is_ok());
        assert!(validate_webhook_url("ftp://example.com/").is_err());
        assert!(validate_webhook_url("/relative/path").is_err());
        assert!(validate_webhook_url("example.com/hook").is_err());
        assert!(validate_webhook_url("http://").is_err());
        assert!(validate_webhook_url("mailto:a@b.c").is_err());
        assert!(validate_webhook_url("").is_err());
    }

    #[test]
    fn literal_ips_are_recognised() {
        let lit = |s: &str| literal_ip(&reqwest::Url::parse(s).unwrap());
        assert_eq!(lit("http://127.0.0.1:1/"), Some(ip("127.0.0.1")));
        assert_eq!(lit("http://[::1]:1/"), Some(ip("::1")));
        assert_eq!(lit("http://[::ffff:7f00:1]/"), Some(ip("::ffff:127.0.0.1")));
        // WHATWG URL parsing normalises exotic IPv4 spellings to dotted quads.
        assert_eq!(lit("http://2130706433/"), Some(ip("127.0.0.1")));
        assert_eq!(lit("http://0x7f.1/"), Some(ip("127.0.0.1")));
        assert_eq!(lit("http://example.com/"), None);
    }

    #[tokio::test]
    async fn resolver_refuses_localhost() {
        let err = GuardedResolver::resolve_allowed("localhost")
            .await
            .unwrap_err();
        assert!(err.downcast_ref::<SsrfRefused>().is_some(), "{err}");
    }
}
