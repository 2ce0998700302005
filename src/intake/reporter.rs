//! Who reported: a keyed hash, never the raw address or client id.
//!
//! With a `client_id` (a random id the page keeps in a cookie) the reporter is
//! a hash of it under a fixed key, so it is the same on every replica and
//! across restarts. Without one, it is a keyed hash of client address and
//! User-Agent under a key derived per UTC day from `intake.reporter_secret`, so
//! the stored value cannot be linked to an address, nor across days. A reporter
//! identified by address may be counted twice across midnight UTC, and on
//! different replicas or after a restart when no secret is configured.

use std::net::IpAddr;

use crate::domain::ReporterKey;

pub struct ReporterHasher {
    client_key: [u8; 32],
    secret: [u8; 32],
}

impl ReporterHasher {
    /// An empty secret means a random one, good for one process only.
    pub fn new(secret: &str) -> Self {
        let secret: [u8; 32] = if secret.is_empty() {
            rand::random()
        } else {
            blake3::derive_key("outagewatch 2026 reporter secret", secret.as_bytes())
        };
        ReporterHasher {
            client_key: blake3::derive_key("outagewatch 2026 client id", b""),
            secret,
        }
    }

    pub fn for_client_id(&self, client_id: &str) -> ReporterKey {
        digest(
            'c',
            blake3::keyed_hash(&self.client_key, client_id.as_bytes()),
        )
    }

    /// `day` is the Unix day (seconds / 86400) of the report.
    pub fn for_address(&self, addr: IpAddr, user_agent: &str, day: i64) -> ReporterKey {
        let mut material = Vec::with_capacity(self.secret.len() + 8);
        material.extend_from_slice(&self.secret);
        material.extend_from_slice(&day.to_le_bytes());
        let key = blake3::derive_key("outagewatch 2026 reporter address", &material);
        let mut hasher = blake3::Hasher::new_keyed(&key);
        match addr {
            IpAddr::V4(v4) => hasher.update(&v4.octets()),
            IpAddr::V6(v6) => hasher.update(&v6.octets()),
        };
        hasher.update(&[0]).update(user_agent.as_bytes());
        digest('a', hasher.finalize())
    }
}

/// 128 bits of the hash in hex, tagged by where it came from.
fn digest(tag: char, hash: blake3::Hash) -> ReporterKey {
    let hex = hash.to_hex();
    ReporterKey(format!("{tag}{}", &hex.as_str()[..32]))
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
}
