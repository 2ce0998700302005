//! Which of the series judged in one tick are hits: a judgement is a
//! candidate when its calibrated p-value is under `alert_p` and its ratio
//! and excess floors are met, and a candidate is a discovery when it
//! survives Benjamini-Hochberg across every series of the tick. The
//! worker, the simulator and the tick benchmark decide hits here; the
//! backtest, one series at a time, needs only the candidate test (the
//! cut-off over one p-value under `alert_p` is that p-value).

use super::judge::Judgement;
use crate::config::DetectSettings;

/// The false-discovery rate of the hits across the series judged in one
/// tick. Not a setting: with `alert_p` at 1e-7 the cut-off for the most
/// surprising series, q / m, stays above it up to 100,000 series, so it
/// only binds when a tick judges more than that.
pub const FDR_Q: f64 = 0.01;

/// Whether a judgement can be a hit: calibrated p-value under `alert_p`,
/// ratio and excess floors met (distinct networks are the caller's).
pub fn is_candidate(j: &Judgement, s: &DetectSettings) -> bool {
    j.decisive()
        .is_some_and(|w| w.p_calibrated < s.alert_p && w.floors_met(s))
}

/// The false-discovery cut-off of one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Discovery {
    cutoff: f64,
}

impl Discovery {
    /// Over every series judged in the tick; `None` is a series judged
    /// without a decisive window (it still counts as a test).
    pub fn of<'a>(judgements: impl IntoIterator<Item = Option<&'a Judgement>>) -> Self {
        let ps: Vec<f64> = judgements
            .into_iter()
            .map(|j| {
                j.and_then(Judgement::decisive)
                    .map_or(1.0, |w| w.p_calibrated)
            })
            .collect();
        Discovery {
            cutoff: fdr_cutoff(&ps, FDR_Q),
        }
    }

    /// A candidate that is still a discovery at the tick's rate.
    pub fn is_discovery(&self, j: &Judgement, s: &DetectSettings) -> bool {
        is_candidate(j, s) && j.decisive().is_some_and(|w| w.p_calibrated <= self.cutoff)
    }
}

/// Benjamini-Hochberg: the largest p-value that is still a discovery at
/// rate `q` (0 when none).
pub fn fdr_cutoff(p_values: &[f64], q: f64) -> f64 {
    let mut ps: Vec<f64> = p_values.to_vec();
    ps.sort_by(f64::total_cmp);
    let m = ps.len().max(1) as f64;
    ps.iter()
        .enumerate()
        .filter(|(k, p)| **p <= (*k as f64 + 1.0) / m * q)
        .map(|(_, p)| *p)
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::detect::WindowJudgement;
    use crate::detect::lifecycle::Rise;

    #[test]
    fn fdr_cutoff_is_benjamini_hochberg() {
        // m = 5, q = 0.05: thresholds 0.01, 0.02, 0.03, 0.04, 0.05.
        let ps = [0.001, 0.015, 0.5, 0.029, 0.9];
        assert_eq!(fdr_cutoff(&ps, 0.05), 0.029);
        assert_eq!(fdr_cutoff(&[0.2, 0.3], 0.05), 0.0);
        assert_eq!(fdr_cutoff(&[0.04], 0.05), 0.04);
    }

    fn judged(p: f64) -> Judgement {
        let w = WindowJudgement::for_test(300, 300.0, 100.0, -p.ln());
        Judgement {
            windows: [Some(w), None, None, None],
            chosen: Some(0),
            rise: Rise::BURST,
        }
    }

    /// A candidate alone in its tick is a discovery; among enough series
    /// with nothing to say, the same p-value is not.
    #[test]
    fn a_candidate_is_a_discovery_only_at_the_ticks_rate() {
        let s = Settings::defaults().detect;
        let candidate = judged(s.alert_p / 2.0);
        assert!(Discovery::of([Some(&candidate)]).is_discovery(&candidate, &s));
        let crowd = (FDR_Q / (s.alert_p / 2.0)).ceil() as usize + 1;
        let tick = Discovery::of(std::iter::once(Some(&candidate)).chain((0..crowd).map(|_| None)));
        assert!(!tick.is_discovery(&candidate, &s));
        let weak = judged(s.alert_p * 2.0);
        assert!(!Discovery::of([Some(&weak)]).is_discovery(&weak, &s));
    }
}
