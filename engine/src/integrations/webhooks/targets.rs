//! Where a webhook may be sent. Only `http(s)` URLs, and — unless the operator allows
//! private targets (`--allow-private-webhooks`, for tests and closed networks) — never to
//! an address inside the network Rapport runs in: loopback, private ranges, link-local
//! (cloud metadata), carrier-grade NAT, multicast, and their IPv6 and IPv4-mapped forms.
//!
//! The check runs where the address is actually decided: a literal address in the URL
//! when it is parsed and at every redirect, and every name when it is resolved (the
//! client's resolver is [`GuardedResolver`]), so a name that resolves to a private address
//! at send time — DNS rebinding — is refused as well as one that did on save.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::{EngineError, Result};

/// The longest URL an endpoint may have.
pub const MAX_URL_LEN: usize = 2000;

/// A webhook target: an absolute `http(s)` URL with a host and no credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUrl(Url);

impl TargetUrl {
    /// Parses `raw`; `field` names the input in errors. The address policy is checked
    /// separately ([`check_literal`], [`resolve_checked`]).
    pub fn parse(field: &str, raw: &str) -> Result<TargetUrl> {
        let raw = raw.trim();
        if raw.len() > MAX_URL_LEN {
            return Err(EngineError::invalid(
                field,
                format!("at most {MAX_URL_LEN} characters"),
            ));
        }
        let url =
            Url::parse(raw).map_err(|e| EngineError::invalid(field, format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EngineError::invalid(field, "must be an http or https URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(EngineError::invalid(field, "must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EngineError::invalid(
                field,
                "must not carry credentials; deliveries are signed instead",
            ));
        }
        Ok(TargetUrl(url))
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            let last32 = Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32);
            // NAT64 (64:ff9b::/96) and IPv4-translated addresses (::ffff:0:a.b.c.d) reach
            // the IPv4 address in their last 32 bits.
            if (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0])
                || s[0..6] == [0, 0, 0, 0, 0xffff, 0]
            {
                return is_public_v4(last32);
            }
            // Local-use NAT64 (64:ff9b:1::/48) may put it anywhere: never a target.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
                return false;
            }
            // 6to4 (2002::/16) carries an IPv4 address in bits 16 to 48.
            if s[0] == 0x2002 {
                return is_public_v4(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32));
            }
            // Teredo (2001::/32) tunnels to an address it hides: never a target.
            if s[0] == 0x2001 && s[1] == 0 {
                return false;
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated, still routed inside)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible ::a.b.c.d
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Why a target is refused, without the address it resolved to: an admin learns that the
/// name is internal, not what the inside of the network looks like (the log has it).
fn refusal(host: &str, ip: IpAddr) -> String {
    tracing::info!(%host, %ip, "webhook target refused");
    format!("{host} is a private or reserved address; webhooks go to public addresses only")
}

/// Refuses a URL whose host is a literal address that is not public.
pub fn check_literal(url: &Url, allow_private: bool) -> std::result::Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(refusal(url.host_str().unwrap_or_default(), ip))
    }
}

/// Resolves `host` and refuses it when any of its addresses is not public.
pub async fn resolve_checked(
    host: &str,
    allow_private: bool,
) -> std::result::Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| {
            tracing::info!(%host, error = %e, "webhook target unresolved");
            format!("{host} could not be resolved")
        })?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(refusal(host, bad.ip()));
    }
    Ok(addrs)
}

/// Checks a target when it is saved: its literal address, or what its name resolves to.
pub async fn check_target(field: &str, target: &TargetUrl, allow_private: bool) -> Result<()> {
    let url = target.url();
    check_literal(url, allow_private).map_err(|e| EngineError::invalid(field, e))?;
    if let Some(url::Host::Domain(name)) = url.host() {
        resolve_checked(name, allow_private)
            .await
            .map_err(|e| EngineError::invalid(field, e))?;
    }
    Ok(())
}

/// The HTTP client's resolver: every name a delivery connects to — the endpoint's and
/// each redirect's — is resolved here and refused when it is not public.
#[derive(Clone, Copy, Debug)]
pub struct GuardedResolver {
    /// Whether private addresses are allowed.
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let addrs = resolve_checked(name.as_str(), allow)
                .await
                .map_err(|e| Box::new(std::io::Error::other(e)) as Box<_>)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Redirects a delivery follows at most.
pub const MAX_REDIRECTS: usize = 3;

/// The HTTP client deliveries use: the guarded resolver, redirects checked hop by hop,
/// `timeout` for the whole exchange.
pub fn client(allow_private: bool, timeout: std::time::Duration) -> Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        if !matches!(attempt.url().scheme(), "http" | "https") {
            return attempt.error("a redirect left http(s)");
        }
        match check_literal(attempt.url(), allow_private) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    });
    reqwest::Client::builder()
        // A proxy would resolve the target itself, past the guarded resolver: none, even
        // when HTTP(S)_PROXY is set in the environment.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .redirect(policy)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("Rapport-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| EngineError::internal_from("the webhook HTTP client could not be built", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_reserved_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
            "::ffff:0:7f00:1",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
            "::7f00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} passed");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "2002:5db8:d822::1",
            "64:ff9b::5db8:d822",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} refused");
        }
    }

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        assert!(TargetUrl::parse("url", "https://hooks.example.com/x").is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "not a url",
            "gopher://x",
        ] {
            let e = TargetUrl::parse("url", bad).unwrap_err().to_string();
            assert!(e.contains("url"), "{bad}: {e}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(TargetUrl::parse("url", &long).is_err());
    }

    #[test]
    fn literal_addresses_are_checked_unless_allowed() {
        let url = Url::parse("http://127.0.0.1:8080/hook").unwrap();
        assert!(check_literal(&url, false).is_err());
        assert!(check_literal(&url, true).is_ok());
        let v6 = Url::parse("http://[::ffff:10.0.0.1]/").unwrap();
        assert!(check_literal(&v6, false).is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        let e = resolve_checked("localhost", false).await.unwrap_err();
        assert!(e.contains("private"), "{e}");
        assert!(resolve_checked("localhost", true).await.is_ok());
    }
}
