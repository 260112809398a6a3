//! Where maximin may send a request a caller named (a task's `callback_url`
//! for webhooks, issue 15): only to public addresses, unless the operator
//! allows private ones. The host is resolved here and the request should go
//! to the addresses returned (pinned), so a name that resolves to a public
//! address now and a private one a moment later (DNS rebinding) cannot
//! redirect it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use maximin_core::{Error, Result};

/// The URL and the addresses it may be reached at. `field` names the
/// request field at fault in errors; `allow_private` lets loopback and
/// private networks through (an operator's choice, for receivers on the
/// same network).
pub async fn public_target(
    url: &str,
    field: &str,
    allow_private: bool,
) -> Result<(reqwest::Url, Vec<SocketAddr>)> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::invalid(field, format!("'{field}' is not a valid URL: {e}.")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::invalid(
            field,
            format!("'{field}' must be an http or https URL."),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::invalid(
            field,
            format!("'{field}' must not carry credentials."),
        ));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| Error::invalid(field, format!("'{field}' names no host.")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| Error::invalid(field, format!("'{field}' names no port.")))?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| Error::invalid(field, format!("The host of '{field}' does not resolve.")))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::invalid(
            field,
            format!("The host of '{field}' does not resolve."),
        ));
    }
    if !allow_private {
        if let Some(a) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(Error::invalid(
                field,
                format!(
                    "'{field}' resolves to {}, a loopback, private or reserved address; this server sends only to public addresses.",
                    a.ip()
                ),
            ));
        }
    }
    Ok((parsed, addrs))
}

/// Whether an address is on the public internet: not loopback, private,
/// link-local, shared (CGNAT), multicast, documentation, benchmarking or
/// otherwise reserved. IPv6 forms that carry an IPv4 address (mapped,
/// NAT64) are judged by it.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network"
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated) and the like
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn public_addresses_pass() {
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
    }

    #[test]
    fn loopback_private_and_reserved_addresses_do_not() {
        for s in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(!is_public(ip(s)), "{s} is not public");
        }
    }

    #[tokio::test]
    async fn a_url_to_a_public_address_is_pinned_to_it() {
        let (url, addrs) = public_target("https://93.184.216.34/hook?x=1", "callback_url", false)
            .await
            .expect("public");
        assert_eq!(url.path(), "/hook");
        assert_eq!(addrs, vec!["93.184.216.34:443".parse().expect("addr")]);
        let (_, addrs) =
            public_target("http://[2606:4700:4700::1111]:8080/", "callback_url", false)
                .await
                .expect("public v6");
        assert_eq!(addrs[0].port(), 8080);
    }

    #[tokio::test]
    async fn loopback_and_private_targets_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.5/hook",
        ] {
            let e = public_target(url, "callback_url", false)
                .await
                .expect_err(url);
            assert_eq!(e.code, maximin_types::ErrorCode::InvalidRequest, "{url}");
            assert_eq!(
                e.details.get("field").and_then(|f| f.as_str()),
                Some("callback_url"),
                "{url}"
            );
        }
        let (_, addrs) = public_target("http://127.0.0.1:9000/hook", "callback_url", true)
            .await
            .expect("allowed");
        assert!(addrs[0].ip().is_loopback());
    }

    #[tokio::test]
    async fn urls_that_are_not_web_urls_are_refused() {
        for url in [
            "ftp://93.184.216.34/x",
            "file:///etc/passwd",
            "not a url",
            "https://user:pw@93.184.216.34/",
        ] {
            let e = public_target(url, "callback_url", false)
                .await
                .expect_err(url);
            assert_eq!(e.code, maximin_types::ErrorCode::InvalidRequest, "{url}");
        }
    }
}
