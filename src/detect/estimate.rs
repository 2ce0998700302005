//! Per-series estimates that learn as ticks go by: the dispersion of counts
//! around the baseline, and the tail of the series' own surprise.
//!
//! Both forget with a half-life (`detect.memory_hours`) so a series that
//! changes character is re-learned, and both are small plain structs the
//! worker keeps in the store between ticks.

use serde::{Deserialize, Serialize};

/// Negative-binomial dispersion by the method of moments on residuals:
/// for mean m, E[(x - m)²] = m + d·m², so each clean window gives an estimate
/// ((x - e)² - e) / e², capped so that one spike cannot dominate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Dispersion {
    weight: f64,
    sum: f64,
}

/// Largest single-window contribution to the dispersion estimate.
const MAX_RESIDUAL: f64 = 4.0;

impl Dispersion {
    pub fn observe(&mut self, observed: f64, expected: f64, decay: f64) {
        if expected < 0.5 {
            // Too few reports to say anything about spread.
            return;
        }
        let r = ((observed - expected).powi(2) - expected) / (expected * expected);
        self.weight = self.weight * decay + 1.0;
        self.sum = self.sum * decay + r.clamp(-1.0, MAX_RESIDUAL);
    }

    /// The series' estimate blended with the prior, which is worth
    /// `prior_weight` observations.
    pub fn value(&self, prior: f64, prior_weight: f64) -> f64 {
        let own = if self.weight > 0.0 {
            (self.sum / self.weight).max(0.0)
        } else {
            prior
        };
        (own * self.weight + prior * prior_weight) / (self.weight + prior_weight)
    }
}

/// Width of one bin of the surprise histogram.
const BIN: f64 = 0.5;
const BINS: usize = 80;

/// A decaying histogram of a series' surprise (-ln p) values. Its upper
/// quantile says how far the series' p-values stray from what the model
/// promises, which is what calibration corrects.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SurpriseTail {
    bins: Vec<f64>,
    weight: f64,
}

impl Default for SurpriseTail {
    fn default() -> Self {
        SurpriseTail {
            bins: vec![0.0; BINS],
            weight: 0.0,
        }
    }
}

impl SurpriseTail {
    pub fn observe(&mut self, surprise: f64, decay: f64) {
        if self.bins.len() != BINS {
            *self = SurpriseTail::default();
        }
        for b in &mut self.bins {
            *b *= decay;
        }
        let i = ((surprise / BIN) as usize).min(BINS - 1);
        self.bins[i] += 1.0;
        self.weight = self.weight * decay + 1.0;
    }

    /// The factor (at most 1) that maps this series' surprise onto the
    /// model's: the model promises that quantile `q` of surprise is
    /// -ln(1 - q); a series whose observed quantile is higher has fatter
    /// tails than its model, and its surprises are scaled down. Until enough
    /// windows are seen the observed quantile is blended with the promise.
    pub fn factor(&self, q: f64) -> f64 {
        let promised = -(1.0 - q).ln();
        if self.weight <= 0.0 || self.bins.len() != BINS {
            return 1.0;
        }
        let tail_mass = (1.0 - q) * self.weight;
        let mut above = 0.0;
        let mut observed = 0.0;
        for i in (0..BINS).rev() {
            above += self.bins[i];
            if above >= tail_mass {
                // The bin's upper edge: conservative, so a series that
                // keeps its promise exactly is scaled by up to 0.92 (4.6
                // against 5.0). `alert_p` was chosen with this reading
                // (README, Methodology 5).
                observed = (i + 1) as f64 * BIN;
                break;
            }
        }
        let enough = 10.0 / (1.0 - q);
        let trust = (self.weight / enough).min(1.0);
        let observed = trust * observed + (1.0 - trust) * promised;
        promised / observed.max(promised)
    }
}

/// Per-tick decay for a half-life of `memory_hours` at ticks `step_secs` apart.
pub fn decay(step_secs: i64, memory_hours: f64) -> f64 {
    0.5f64.powf(step_secs as f64 / (memory_hours * 3600.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispersion_learns_overdispersed_spread_and_starts_at_the_prior() {
        let d = Dispersion::default();
        assert_eq!(d.value(0.05, 50.0), 0.05);
        let mut d = Dispersion::default();
        // Alternating 50 and 150 around an expected 100: variance 2500,
        // so dispersion (2500 - 100) / 100² = 0.24.
        for i in 0..10_000 {
            let x = if i % 2 == 0 { 50.0 } else { 150.0 };
            d.observe(x, 100.0, 0.999);
        }
        assert!(
            (d.value(0.05, 50.0) - 0.24).abs() < 0.02,
            "{}",
            d.value(0.05, 50.0)
        );
    }

    #[test]
    fn a_series_that_keeps_the_models_promise_is_scaled_by_at_most_its_bin() {
        // Surprises of a calibrated model are exponential: feed its quantiles.
        let mut tail = SurpriseTail::default();
        let n = 20_000;
        for i in 0..n {
            let u = (f64::from(i) + 0.5) / f64::from(n);
            tail.observe(-u.ln(), 1.0);
        }
        let promised = -(0.01f64).ln();
        let f = tail.factor(0.99);
        assert!((f - promised / 5.0).abs() < 1e-9, "{f}");
    }

    #[test]
    fn calibration_scales_down_a_series_with_fat_tails_only() {
        let mut fat = SurpriseTail::default();
        let mut fine = SurpriseTail::default();
        for i in 0..5000 {
            // 5 % of windows with surprise 12: far more than a model promises.
            fat.observe(if i % 20 == 0 { 12.0 } else { 0.5 }, 0.9999);
            fine.observe(if i % 200 == 0 { 5.0 } else { 0.5 }, 0.9999);
        }
        let f = fat.factor(0.99);
        assert!(f < 0.5 && f > 0.3, "{f}");
        assert_eq!(fine.factor(0.99), 1.0);
    }
}
