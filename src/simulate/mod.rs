//! `outagewatch simulate`: realistic report traffic for tests, demos and
//! load. [`model`] generates it (popularity, cycles, overdispersion,
//! outages, the Meta replay) and [`hard`] adds the hard cases (recurring
//! bursts, lasting steps, growth, new services, gaps, quiet services);
//! this module writes it as NDJSON history for the import endpoint or
//! sends it live over HTTP, and [`evaluate`] runs the detector over it,
//! [`score`], [`hard_score`] and [`verdict`] judge the result and
//! [`report`] prints it.

pub mod evaluate;
pub mod hard;
pub mod hard_score;
mod json;
pub mod model;
pub mod report;
pub mod score;
pub mod verdict;

#[cfg(test)]
mod hard_tests;

pub use report::print_evaluation;

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::domain::Registry;
use model::Scenario;

/// Writes the scenario as import NDJSON, one line per service and minute
/// with reports; outage minutes are attributed mostly to `login`.
pub fn write_history(sc: &Scenario, registry: &Registry, out: &Path) -> anyhow::Result<u64> {
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let mut lines = 0u64;
    let mut rng = StdRng::seed_from_u64(sc.seed);
    for (i, s) in sc.services.iter().enumerate() {
        let Some(service) = registry.service(&s.id) else {
            continue; // synthetic services exist only in evaluations
        };
        let problems: Vec<&str> = service.problems.iter().map(|p| p.as_str()).collect();
        let login = problems.contains(&"login");
        let traffic = sc.traffic(i);
        for (m, (&count, &extra)) in traffic.counts.iter().zip(&traffic.injected).enumerate() {
            if count == 0 {
                continue;
            }
            let problem = if extra * 2 > count && login {
                "login"
            } else {
                problems[rng.random_range(0..problems.len())]
            };
            writeln!(
                w,
                r#"{{"service":"{}","at":{},"count":{count},"problem":"{problem}"}}"#,
                s.id,
                sc.start + m as i64 * 60
            )?;
            lines += 1;
        }
    }
    w.flush()?;
    Ok(lines)
}

/// Sends reports to a running outagewatch at about `rate` per second for
/// `seconds`, spread over the scenario's services by popularity, each from
/// its own client_id; `outage` multiplies one service's share.
pub async fn send_live(
    url: &str,
    sc: &Scenario,
    rate: f64,
    seconds: u64,
    outage: Option<(&str, f64)>,
) -> anyhow::Result<()> {
    if let Some((id, _)) = outage
        && !sc.services.iter().any(|s| s.id == id)
    {
        let ids: Vec<&str> = sc.services.iter().map(|s| s.id.as_str()).collect();
        anyhow::bail!(
            "--outage names {id:?}, which is not among the simulated services: {}",
            ids.join(", ")
        );
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let weights: Vec<f64> = sc
        .services
        .iter()
        .map(|s| match outage {
            Some((id, x)) if id == s.id => s.per_minute * x,
            _ => s.per_minute,
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut rng = StdRng::seed_from_u64(sc.seed);
    let endpoint = format!("{}/api/v1/reports", url.trim_end_matches('/'));
    let started = Instant::now();
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut refused: std::collections::BTreeMap<u16, u64> = std::collections::BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        let mut batch = Vec::new();
        while sent + failed + (batch.len() as u64) < due {
            let mut pick = rng.random_range(0.0..total);
            let i = weights
                .iter()
                .position(|w| {
                    pick -= w;
                    pick < 0.0
                })
                .unwrap_or(0);
            let service = &sc.services[i].id;
            let problem = if outage.is_some_and(|(id, _)| id == service) {
                "login"
            } else {
                "other"
            };
            let body = serde_json::json!({
                "service": service,
                "problem": problem,
                "client_id": format!("sim-{}-{}", sc.seed, rng.random::<u64>()),
            });
            batch.push(client.post(&endpoint).json(&body).send());
        }
        for result in futures_util::future::join_all(batch).await {
            match result {
                Ok(r) if r.status().as_u16() == 202 => sent += 1,
                Ok(r) => {
                    failed += 1;
                    *refused.entry(r.status().as_u16()).or_default() += 1;
                }
                Err(_) => {
                    failed += 1;
                    *refused.entry(0).or_default() += 1;
                }
            }
        }
    }
    println!("sent {sent} reports ({failed} failed) in {seconds} s");
    for (status, n) in refused {
        match status {
            0 => println!("  {n} not sent (connection errors)"),
            429 => println!(
                "  {n} answered 429: the server's per-address limit (intake.rate_limit_per_minute)"
            ),
            s => println!("  {n} answered {s}"),
        }
    }
    Ok(())
}
