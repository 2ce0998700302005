//! A model of report traffic: skewed popularity, daily and weekly cycles,
//! a slowly drifting level, overdispersed minute counts, and injected
//! outages with a ramp, a plateau and a tail. Seeded, so a scenario is
//! reproducible.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::hard::{Bend, HARD_STREAM, HardCase};
use crate::domain::Registry;

/// Where services' audiences are, in hours ahead of UTC.
pub const UTC_OFFSETS: [f64; 6] = [-8.0, -5.0, 0.0, 1.0, 5.5, 9.0];

#[derive(Debug, Clone)]
pub struct SimService {
    pub id: String,
    pub company: String,
    /// Mean reports per minute at the daily average.
    pub per_minute: f64,
    /// Negative-binomial dispersion of minute counts.
    pub dispersion: f64,
    /// Hours the service's audience is ahead of UTC (shifts the daily cycle).
    pub utc_offset_hours: f64,
}

#[derive(Debug, Clone)]
pub struct Outage {
    pub service: usize,
    /// Unix seconds of the onset.
    pub start: i64,
    pub minutes: i64,
    /// Peak rate as a multiple of the normal rate.
    pub multiplier: f64,
    /// Minutes to reach the peak.
    pub ramp_minutes: i64,
}

impl Outage {
    /// Extra rate, as a multiple of the normal rate, `m` minutes after onset.
    fn boost(&self, m: i64) -> f64 {
        if m < 0 || m >= self.minutes {
            return 0.0;
        }
        let peak = self.multiplier - 1.0;
        let tail_from = self.minutes * 2 / 3;
        if m < self.ramp_minutes {
            peak * (m + 1) as f64 / (self.ramp_minutes + 1) as f64
        } else if m >= tail_from {
            let left = (self.minutes - m) as f64 / (self.minutes - tail_from).max(1) as f64;
            peak * left
        } else {
            peak
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    /// Unix seconds of the first minute.
    pub start: i64,
    pub minutes: usize,
    pub services: Vec<SimService>,
    pub outages: Vec<Outage>,
    /// The hard cases, on services of their own after the ordinary ones
    /// (see [`super::hard`]); none unless added.
    pub hard: Vec<HardCase>,
    pub seed: u64,
}

/// One service's simulated minutes.
pub struct Traffic {
    /// Reports per minute, outages included.
    pub counts: Vec<u64>,
    /// The part of `counts` the outages added (and a hard case's bursts or
    /// extra reports; a step or a growth is the service's new normal).
    pub injected: Vec<u64>,
}

/// The Meta services and their normal rates (reports per minute) and
/// outage peaks in the March 2024 replay: Facebook huge, WhatsApp about
/// 200 reports in 15 minutes on a quiet baseline.
pub const META_REPLAY: [(&str, f64, f64, i64); 5] = [
    ("facebook", 40.0, 600.0, 120),
    ("instagram", 25.0, 200.0, 120),
    ("messenger", 6.0, 60.0, 110),
    ("threads", 3.0, 40.0, 100),
    ("whatsapp", 1.0, 14.0, 45),
];

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Services: the registry's first, then synthetic ones; popularity
    /// falls as 1/rank.
    pub services: usize,
    pub days: i64,
    /// Days at the start without random outages (the baseline's history).
    pub quiet_days: i64,
    /// Random outages of 3x to 20x, 30 to 180 minutes.
    pub outages: usize,
    /// The Meta replay on the Meta services, two thirds of the way through.
    pub meta: bool,
    pub seed: u64,
    /// Unix seconds of the first minute.
    pub start: i64,
}

impl Scenario {
    pub fn synthetic(registry: &Registry, spec: &Spec) -> Scenario {
        let Spec {
            services,
            days,
            quiet_days,
            outages,
            meta,
            seed,
            start,
        } = *spec;
        let mut rng = StdRng::seed_from_u64(seed);
        let start = start.div_euclid(60) * 60;
        let minutes = (days * 1440) as usize;
        let meta_ids: Vec<&str> = META_REPLAY.iter().map(|m| m.0).collect();
        let mut list: Vec<SimService> = Vec::with_capacity(services);
        if meta {
            for (id, per_minute, _, _) in META_REPLAY {
                if let Some(s) = registry.service(id) {
                    list.push(SimService {
                        id: s.id.clone(),
                        company: s.company.clone(),
                        per_minute,
                        dispersion: 0.08,
                        utc_offset_hours: 0.0,
                    });
                }
            }
        }
        let mut others = registry
            .services()
            .iter()
            .filter(|s| !meta || !meta_ids.contains(&s.id.as_str()));
        let mut rank = list.len();
        while list.len() < services {
            rank += 1;
            let (id, company) = match others.next() {
                Some(s) => (s.id.clone(), s.company.clone()),
                None => (format!("sim-{rank:04}"), format!("simco-{}", rank % 40)),
            };
            list.push(SimService {
                id,
                company,
                per_minute: 30.0 / rank as f64,
                dispersion: rng.random_range(0.03..0.25),
                utc_offset_hours: UTC_OFFSETS[rng.random_range(0..6)],
            });
        }
        list.truncate(services);
        let mut planned: Vec<Outage> = Vec::new();
        let first = start + quiet_days * 86_400;
        let span = (days - quiet_days).max(1) * 86_400 - 6 * 3600;
        let meta_at = start + (days * 86_400) * 2 / 3;
        while planned.len() < outages {
            let service = rng.random_range(0..list.len());
            if meta && service < META_REPLAY.len() {
                continue;
            }
            let at = (first + rng.random_range(0..span)).div_euclid(60) * 60;
            let minutes = rng.random_range(30..=180);
            let clash = planned.iter().any(|o| {
                o.service == service && (o.start - at).abs() < (o.minutes.max(minutes) + 720) * 60
            });
            if clash || (at - meta_at).abs() < 6 * 3600 {
                continue;
            }
            planned.push(Outage {
                service,
                start: at,
                minutes,
                multiplier: rng.random_range(3.0..=20.0),
                ramp_minutes: rng.random_range(1..=5),
            });
        }
        if meta {
            for (i, (_, _, peak, minutes)) in META_REPLAY.iter().enumerate() {
                if i < list.len() && list[i].id == META_REPLAY[i].0 {
                    planned.push(Outage {
                        service: i,
                        start: meta_at,
                        minutes: *minutes,
                        multiplier: *peak,
                        ramp_minutes: 3,
                    });
                }
            }
        }
        Scenario {
            start,
            minutes,
            services: list,
            outages: planned,
            hard: Vec::new(),
            seed,
        }
    }

    /// The minutes of service `i`.
    pub fn traffic(&self, i: usize) -> Traffic {
        let s = &self.services[i];
        let hard = self.hard_case(i);
        let stream = if hard.is_some() { HARD_STREAM } else { 0 };
        let mut rng = StdRng::seed_from_u64(
            self.seed ^ stream ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let outages: Vec<&Outage> = self.outages.iter().filter(|o| o.service == i).collect();
        let mut counts = Vec::with_capacity(self.minutes);
        let mut injected = Vec::with_capacity(self.minutes);
        let mut level = 0.0f64;
        let shape = 1.0 / s.dispersion.max(1e-3);
        for m in 0..self.minutes {
            let t = self.start + m as i64 * 60;
            if m % 60 == 0 {
                // A slow random walk of the audience, pulled back to 0.
                level = 0.97 * level + 0.03 * normal(&mut rng);
            }
            let local = (t as f64 / 3600.0 + s.utc_offset_hours).rem_euclid(24.0);
            let daily = 1.0 + 0.6 * ((local - 20.0) / 24.0 * std::f64::consts::TAU).cos();
            let weekday = (t.div_euclid(86_400) + 4).rem_euclid(7); // 0 = Sunday
            let weekly = if weekday == 0 || weekday == 6 {
                0.85
            } else {
                1.0
            };
            // Identity for an ordinary service, whose draws stay as they were.
            let bend = hard.map_or(Bend::NONE, |h| h.bend(t));
            let normal_rate = s.per_minute * daily * weekly * level.exp() * bend.factor;
            let rate = normal_rate * gamma(&mut rng, shape) / shape;
            let base = poisson(&mut rng, rate);
            let boost = outages
                .iter()
                .map(|o| o.boost((t - o.start) / 60))
                .sum::<f64>()
                + bend.boost;
            let extra = bend.extra
                + if boost > 0.0 {
                    poisson(&mut rng, normal_rate * boost)
                } else {
                    0
                };
            counts.push(base + extra);
            injected.push(extra);
        }
        Traffic { counts, injected }
    }
}

/// Standard normal (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Gamma(shape, 1) by Marsaglia and Tsang.
fn gamma(rng: &mut StdRng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Poisson: by multiplication for small means, normal approximation above.
fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        return (mean + mean.sqrt() * normal(rng)).round().max(0.0) as u64;
    }
    let limit = (-mean).exp();
    let mut k = 0;
    let mut p: f64 = rng.random();
    while p > limit {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_is_reproducible_overdispersed_and_carries_its_outages() {
        let registry = Registry::builtin().unwrap();
        let spec = Spec {
            services: 20,
            days: 10,
            quiet_days: 3,
            outages: 4,
            meta: true,
            seed: 7,
            start: 1_700_000_000,
        };
        let sc = Scenario::synthetic(&registry, &spec);
        assert_eq!(sc.services.len(), 20);
        assert_eq!(sc.outages.len(), 4 + 5);
        let a = sc.traffic(0);
        let b = sc.traffic(0);
        assert_eq!(a.counts, b.counts, "same seed, same traffic");
        // Facebook (index 0) normal minutes: mean near 40, variance well above it.
        let normal: Vec<f64> = a
            .counts
            .iter()
            .zip(&a.injected)
            .filter(|(_, i)| **i == 0)
            .map(|(c, _)| *c as f64)
            .collect();
        let mean = normal.iter().sum::<f64>() / normal.len() as f64;
        let var = normal.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / normal.len() as f64;
        assert!((25.0..55.0).contains(&mean), "{mean}");
        assert!(var > 2.0 * mean, "overdispersed: {var} vs {mean}");
        let injected: u64 = a.injected.iter().sum();
        assert!(injected > 500_000, "the replay floods Facebook: {injected}");
        // WhatsApp (index 4): about 200 reports in its first 15 minutes at peak.
        let w = sc.traffic(4);
        let onset = sc.outages.iter().find(|o| o.service == 4).unwrap();
        let i0 = ((onset.start - sc.start) / 60) as usize;
        let first15: u64 = w.counts[i0 + 5..i0 + 20].iter().sum();
        assert!((100..400).contains(&first15), "{first15}");
    }
}
