//! Who a request is from: the peer, or behind `http.trusted_proxies` the
//! address a proxy saw; and a warning when a proxy seems to be left out of
//! that list, which would make every report the proxy's.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicI64, Ordering};

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The client's address: the peer's, unless the peer is one of
/// `http.trusted_proxies`; then the rightmost X-Forwarded-For address that
/// is not (what the client wrote further left proves nothing). Used only as
/// hash input and for the per-address limit, never stored or logged.
pub fn client_addr(req: &HttpRequest, proxies: &[IpNet]) -> IpAddr {
    // A dual-stack listener sees an IPv4 peer as ::ffff:a.b.c.d.
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip().to_canonical());
    let trusted = |ip: &IpAddr| proxies.iter().any(|p| p.contains(ip));
    if !trusted(&peer) {
        if req.headers().contains_key("x-forwarded-for") && is_local(&peer) {
            warn_of_an_untrusted_proxy();
        }
        return peer;
    }
    // Walk back from the nearest hop: each trusted proxy appended the
    // address it saw; the first that is not a proxy is the client. An entry
    // that is not an address ends the walk at the proxy after it.
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        match forwarded_ip(entry) {
            Some(ip) => {
                client = ip;
                if !trusted(&ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// A private, loopback or link-local address: where a reverse proxy in
/// front of outagewatch sits, and no client on the internet does.
fn is_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

/// Unix seconds of the last warning of an untrusted proxy (0: none yet).
static UNTRUSTED_PROXY_WARNED: AtomicI64 = AtomicI64::new(0);

/// A proxy left out of `http.trusted_proxies` makes every report its own
/// network's, and one network counts at most `intake.max_counted_per_network`
/// reports per service and hour: nothing could open an incident, silently.
/// So say so, at most once an hour (without the address: logs carry none).
fn warn_of_an_untrusted_proxy() {
    let now = chrono::Utc::now().timestamp();
    if once_an_hour(&UNTRUSTED_PROXY_WARNED, now) {
        tracing::warn!(
            "a request from a private or loopback address carried X-Forwarded-For, and that \
             address is not in http.trusted_proxies: if it is a reverse proxy, add it, or every \
             report counts as the proxy's one network (at most intake.max_counted_per_network \
             per service and hour)"
        );
    }
}

/// True when `last` (Unix seconds) is an hour or more before `now`, and
/// then `now` becomes the last time.
fn once_an_hour(last: &AtomicI64, now: i64) -> bool {
    let before = last.load(Ordering::Relaxed);
    now - before >= 3600
        && last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// An X-Forwarded-For entry's address: bare, or with a port as some
/// proxies write it (`203.0.113.1:5555`, `[2001:db8::1]:443`).
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    /// The client address behind `proxies`, of a request from `peer` with
    /// these X-Forwarded-For header lines.
    fn client(proxies: &[&str], peer: &str, forwarded: &[&str]) -> String {
        let proxies: Vec<IpNet> = proxies.iter().map(|p| p.parse().unwrap()).collect();
        let peer = std::net::SocketAddr::new(peer.parse().unwrap(), 4000);
        let mut req = TestRequest::default().peer_addr(peer);
        for line in forwarded {
            req = req.append_header(("x-forwarded-for", *line));
        }
        client_addr(&req.to_http_request(), &proxies).to_string()
    }

    /// The warning of a proxy left untrusted is for private peers (where
    /// proxies sit), once an hour, not for every request.
    #[test]
    fn an_untrusted_proxy_is_told_once_an_hour() {
        for (peer, local) in [
            ("10.1.2.3", true),
            ("192.168.0.9", true),
            ("127.0.0.1", true),
            ("fd00::1", true),
            ("198.51.100.7", false),
            ("2001:db8::1", false),
        ] {
            assert_eq!(is_local(&peer.parse().unwrap()), local, "{peer}");
        }
        let last = AtomicI64::new(0);
        let t = 1_800_000_000;
        assert!(once_an_hour(&last, t));
        assert!(!once_an_hour(&last, t + 3599));
        assert!(once_an_hour(&last, t + 3600));
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_wrote() {
        let proxies = ["10.0.0.0/8", "::1/128"];
        // No proxy believed, or a peer that is not one: the peer.
        assert_eq!(client(&[], "10.0.0.1", &["198.51.100.7"]), "10.0.0.1");
        assert_eq!(
            client(&proxies, "192.0.2.1", &["198.51.100.7"]),
            "192.0.2.1"
        );
        // What the client wrote left of its own address proves nothing.
        let spoofed = ["203.0.113.66, 198.51.100.7"];
        assert_eq!(client(&proxies, "10.0.0.1", &spoofed), "198.51.100.7");
        // Two proxies, and the header on two lines.
        let chain = ["203.0.113.66", "198.51.100.7, 10.2.0.1"];
        assert_eq!(client(&proxies, "::1", &chain), "198.51.100.7");
        // A proxy without the header, or nothing but proxies in it.
        assert_eq!(client(&proxies, "10.0.0.1", &[]), "10.0.0.1");
        assert_eq!(client(&proxies, "10.0.0.1", &["10.0.0.9"]), "10.0.0.9");
        // Ports, as some proxies write them, and IPv4 as IPv6.
        let ported = ["198.51.100.7:5555, 10.0.0.2:80"];
        assert_eq!(client(&proxies, "10.0.0.1", &ported), "198.51.100.7");
        assert_eq!(
            client(&proxies, "::ffff:10.0.0.1", &["[2001:db8::1]:443"]),
            "2001:db8::1"
        );
        // An entry that is no address ends the walk at the proxy after it.
        assert_eq!(
            client(&proxies, "10.0.0.1", &["198.51.100.7, junk"]),
            "10.0.0.1"
        );
    }
}
