//! Who reported: a keyed hash, never the raw address or client id.
//!
//! With a `client_id` (a random id the page keeps in a cookie) the reporter is
//! a hash of it under a fixed key, so it is the same on every replica and
//! across restarts. Without one, it is a keyed hash of client address and
//! User-Agent under a key derived per UTC day from `intake.reporter_secret`, so
//! the stored value cannot be linked to an address, nor across days. A reporter
//! identified by address may be counted twice across midnight UTC, and on
//! different replicas or after a restart when no secret is configured.
//!
//! The network of a report is its address cut to a prefix (by default IPv4
//! /24, IPv6 /48; a 6to4 address is its IPv4 network), hashed under a key
//! derived from the secret: what a client cannot make up at will, unlike
//! client ids, User-Agents or addresses inside its own network. That key
//! does not rotate daily: a network seen on both sides of midnight UTC would
//! otherwise count as two. A network's key is stored only as a field of its
//! clock window's counts (kept until a minute after the window ends) and
//! inside HyperLogLogs, which keep no members.

use std::net::IpAddr;
use std::sync::Mutex;

use crate::domain::{NetworkKey, ReporterKey};

pub struct ReporterHasher {
    client_key: [u8; 32],
    secret: [u8; 32],
    network_key: [u8; 32],
    /// Leading bits of an IPv4 and an IPv6 address that name its network.
    prefix_v4: u8,
    prefix_v6: u8,
    /// The last day's derived key, reused for every report of that day.
    day_key: Mutex<(i64, [u8; 32])>,
}

impl ReporterHasher {
    /// An empty secret means a random one, good for one process only.
    pub fn new(secret: &str) -> Self {
        Self::with_prefixes(secret, 24, 48)
    }

    /// Networks are IPv4 /`prefix_v4` and IPv6 /`prefix_v6` (at most 32
    /// and 128 bits; longer counts as the whole address).
    pub fn with_prefixes(secret: &str, prefix_v4: u8, prefix_v6: u8) -> Self {
        let secret: [u8; 32] = if secret.is_empty() {
            rand::random()
        } else {
            blake3::derive_key("outagewatch 2026 reporter secret", secret.as_bytes())
        };
        ReporterHasher {
            client_key: blake3::derive_key("outagewatch 2026 client id", b""),
            network_key: blake3::derive_key("outagewatch 2026 network", &secret),
            secret,
            prefix_v4: prefix_v4.min(32),
            prefix_v6: prefix_v6.min(128),
            day_key: Mutex::new((i64::MIN, [0; 32])),
        }
    }

    pub fn for_client_id(&self, client_id: &str) -> ReporterKey {
        ReporterKey(digest(
            'c',
            blake3::keyed_hash(&self.client_key, client_id.as_bytes()),
        ))
    }

    /// `day` is the Unix day (seconds / 86400) of the report.
    pub fn for_address(&self, addr: IpAddr, user_agent: &str, day: i64) -> ReporterKey {
        let mut hasher = self.daily(day);
        match addr {
            IpAddr::V4(v4) => hasher.update(&v4.octets()),
            IpAddr::V6(v6) => hasher.update(&v6.octets()),
        };
        hasher.update(&[0]).update(user_agent.as_bytes());
        ReporterKey(digest('a', hasher.finalize()))
    }

    /// The network `addr` belongs to.
    pub fn for_network(&self, addr: IpAddr) -> NetworkKey {
        let mut hasher = blake3::Hasher::new_keyed(&self.network_key);
        match v4_inside(addr) {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4) & mask(self.prefix_v4, 32) as u32;
                hasher.update(b"4").update(&bits.to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & mask(self.prefix_v6, 128);
                hasher.update(b"6").update(&bits.to_be_bytes())
            }
        };
        hasher.update(&[self.prefix_v4, self.prefix_v6]);
        NetworkKey(digest('n', hasher.finalize()))
    }

    /// A hasher keyed for one UTC day: the stored values of one day cannot
    /// be linked to those of another.
    fn daily(&self, day: i64) -> blake3::Hasher {
        let mut cached = self.day_key.lock().unwrap_or_else(|e| e.into_inner());
        if cached.0 != day {
            let mut material = Vec::with_capacity(self.secret.len() + 8);
            material.extend_from_slice(&self.secret);
            material.extend_from_slice(&day.to_le_bytes());
            let key = blake3::derive_key("outagewatch 2026 reporter address", &material);
            *cached = (day, key);
        }
        blake3::Hasher::new_keyed(&cached.1)
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is that IPv4
/// address, and a 6to4 one (`2002:aabb:ccdd::/48`) the IPv4 address it is
/// made of: each IPv4 address has a 6to4 /48 of its own.
fn v4_inside(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) if v6.segments()[0] == 0x2002 => {
            let [_, high, low, ..] = v6.segments();
            IpAddr::V4(std::net::Ipv4Addr::from(
                (u32::from(high) << 16) | u32::from(low),
            ))
        }
        other => other,
    }
}

/// The leading `bits` of a `width`-bit number set (`bits` at most `width`).
fn mask(bits: u8, width: u32) -> u128 {
    let bits = u32::from(bits).min(width);
    let ones = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    ones >> (128 - width)
}

/// 128 bits of the hash in hex, tagged by where it came from.
fn digest(tag: char, hash: blake3::Hash) -> String {
    let hex = hash.to_hex();
    format!("{tag}{}", &hex.as_str()[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_key_and_no_raw_address_inside() {
        let h = ReporterHasher::new("secret");
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let a = h.for_address(ip, "Firefox", 20_000);
        assert_eq!(a, h.for_address(ip, "Firefox", 20_000));
        assert_ne!(a, h.for_address(ip, "Chrome", 20_000));
        assert_ne!(a, h.for_address(ip, "Firefox", 20_001), "rotates daily");
        assert!(!a.0.contains("203"));
        assert_eq!(
            h.for_client_id("abc"),
            ReporterHasher::new("").for_client_id("abc"),
            "client ids dedup the same on every replica, secret or not"
        );
        assert_ne!(h.for_client_id("abc"), h.for_client_id("abd"));
        let random = ReporterHasher::new("");
        assert_ne!(
            random.for_address(ip, "Firefox", 1),
            ReporterHasher::new("").for_address(ip, "Firefox", 1)
        );
    }

    #[test]
    fn a_network_is_its_prefix_whatever_address_or_form_inside() {
        let h = ReporterHasher::with_prefixes("secret", 24, 48);
        let net = |a: &str| h.for_network(a.parse().unwrap());
        assert_eq!(net("203.0.113.7"), net("203.0.113.250"));
        assert_eq!(net("203.0.113.7"), net("::ffff:203.0.113.9"));
        // 6to4: 2002:cb00:7107:: is 203.0.113.7's.
        assert_eq!(net("203.0.113.7"), net("2002:cb00:7107:1::1"));
        assert_ne!(net("203.0.114.7"), net("2002:cb00:7107::1"));
        assert_ne!(net("203.0.113.7"), net("203.0.114.7"));
        assert_eq!(net("2001:db8:1::1"), net("2001:db8:1:ffff::2"));
        assert_ne!(net("2001:db8:1::1"), net("2001:db8:2::1"));
        assert_ne!(
            net("203.0.113.7"),
            ReporterHasher::with_prefixes("other", 24, 48)
                .for_network("203.0.113.7".parse().unwrap()),
            "keyed by the secret"
        );
        assert!(!net("203.0.113.7").0.contains("203"));
        let whole = ReporterHasher::with_prefixes("secret", 32, 128);
        let exact = |a: &str| whole.for_network(a.parse().unwrap());
        assert_ne!(exact("203.0.113.7"), exact("203.0.113.8"));
        assert_eq!(mask(24, 32), 0xffff_ff00);
        assert_eq!(mask(0, 32), 0);
        assert_eq!(mask(128, 128), u128::MAX);
    }
}
