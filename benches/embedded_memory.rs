//! Memory of the embedded store under made-up reporters: `EMBEDDED_REPORTERS`
//! reports (default one million), each from its own reporter on its own
//! network (keys as the intake makes them from client_ids and addresses),
//! recorded in batches as the writer
//! sends them, with the store bounded at `EMBEDDED_BOUND` entries of each
//! kind (default: as many as the reports); the growth of this process's
//! resident memory, per reporter. One case per process: freed memory stays
//! with the allocator, so a second case in the same process would read low.
//!
//! ```sh
//! cargo bench --bench embedded_memory
//! EMBEDDED_BOUND=250000 cargo bench --bench embedded_memory
//! ```

use std::net::{IpAddr, Ipv6Addr};

use outagewatch::config::Settings;
use outagewatch::domain::Problem;
use outagewatch::intake::ReporterHasher;
use outagewatch::store::{Buckets, EmbeddedStore, ReportWrite, Retention, Store};

/// Resident memory of this process, bytes (Linux).
fn resident() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/self/status"))?;
    Ok(kb * 1024)
}

/// Records `reports` reports of distinct reporters on distinct networks;
/// the growth of resident memory and the store's count of distinct
/// networks in the minute.
async fn run(reports: usize, bound: usize) -> anyhow::Result<(u64, u64)> {
    let s = Settings::defaults();
    let store = EmbeddedStore::new(Retention::new(&s.store, &s.intake), bound);
    let hasher = ReporterHasher::new("bench");
    let at = chrono::Utc::now().timestamp().div_euclid(60) * 60;
    let before = resident()?;
    let mut batch = Vec::with_capacity(2048);
    for k in 0..reports {
        batch.push(ReportWrite {
            id: uuid::Uuid::now_v7(),
            service: "whatsapp".into(),
            at,
            problem: Problem::Login,
            country: None,
            reporter: hasher.for_client_id(&format!("made-up-{k}")),
            // Each on a network of its own (an IPv6 /48 each): the worst
            // case, every bounded kind grows with every report.
            network: hasher.for_network(IpAddr::V6(Ipv6Addr::from(
                (0x2000_u128 << 112) | ((k as u128) << 80),
            ))),
            idempotency_key: None,
            request: String::new(),
        });
        if batch.len() == 2048 || k + 1 == reports {
            store.record(&batch).await?;
            batch.clear();
        }
    }
    let after = resident()?;
    let distinct = store.distinct("whatsapp", Buckets::new(at / 60, 1)).await?;
    Ok((after.saturating_sub(before), distinct.networks))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let env = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let reporters = env("EMBEDDED_REPORTERS", 1_000_000);
    let bound = env("EMBEDDED_BOUND", reporters);
    let (grown, distinct) = run(reporters, bound).await?;
    println!(
        "{reporters} distinct reporters on as many networks, bound {bound}: resident +{:.1} MB = {:.0} bytes per report ({} held: a dedup marker, a network count and a distinct reporter and network each), {distinct} networks held as distinct",
        grown as f64 / 1e6,
        grown as f64 / reporters as f64,
        reporters.min(bound)
    );
    Ok(())
}
