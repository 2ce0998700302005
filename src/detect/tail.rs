//! Upper-tail probabilities of report counts.
//!
//! Report counts vary more than Poisson allows (a bad hour for one app brings
//! many people at once), so a count is judged against a negative binomial with
//! the series' own dispersion: variance = mean + dispersion * mean². With no
//! dispersion that is the Poisson distribution, used as such.

use statrs::distribution::{DiscreteCDF, NegativeBinomial, Poisson};

/// Largest surprise reported: `-ln p` of the smallest p a double can hold
/// with room to spare, so an enormous spike still has a finite score.
pub const MAX_SURPRISE: f64 = 690.0;

/// P(X >= observed) for X with the given mean and dispersion.
pub fn upper_tail(observed: f64, mean: f64, dispersion: f64) -> f64 {
    let x = observed.round();
    if x <= 0.0 {
        return 1.0;
    }
    let mean = mean.max(1e-9);
    // sf(k) is P(X > k); P(X >= x) is sf(x - 1).
    let k = (x - 1.0) as u64;
    // No dispersion is the Poisson (the negative binomial's limit); any
    // dispersion at all, however small, is judged as such: a separate
    // Poisson cut-off changed nothing measured (BENCHMARKS.md).
    let p = if dispersion <= 0.0 {
        Poisson::new(mean).ok().map(|d| d.sf(k))
    } else {
        let r = 1.0 / dispersion;
        NegativeBinomial::new(r, r / (r + mean))
            .ok()
            .map(|d| d.sf(k))
    };
    match p {
        Some(p) if p.is_finite() => p.clamp(0.0, 1.0),
        _ => 1.0,
    }
}

/// `-ln p`, finite and at least 0.
pub fn surprise(p: f64) -> f64 {
    if p <= 0.0 {
        MAX_SURPRISE
    } else {
        (-p.ln()).clamp(0.0, MAX_SURPRISE)
    }
}

/// The smallest count whose upper tail is below `p` (the alert threshold of a
/// window), found by doubling then bisection.
pub fn threshold_count(p: f64, mean: f64, dispersion: f64) -> f64 {
    let tail = |x: f64| upper_tail(x, mean, dispersion);
    let mut hi = (mean * 2.0).max(4.0).ceil();
    while tail(hi) >= p {
        hi *= 2.0;
        if hi > 1e12 {
            return hi;
        }
    }
    let mut lo = 0.0f64;
    while hi - lo > 1.0 {
        let mid = ((lo + hi) / 2.0).floor();
        if tail(mid) < p {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_tail_matches_known_values() {
        // P(X >= 10 | Poisson(3)) = 0.001102...
        let p = upper_tail(10.0, 3.0, 0.0);
        assert!((p - 0.0011025).abs() < 1e-6, "{p}");
        assert_eq!(upper_tail(0.0, 3.0, 0.0), 1.0);
    }

    #[test]
    fn overdispersion_makes_the_same_count_less_surprising() {
        let poisson = upper_tail(30.0, 10.0, 0.0);
        let nb = upper_tail(30.0, 10.0, 0.2);
        assert!(nb > poisson * 100.0, "{nb} vs {poisson}");
        // Negative binomial with r = 5, mean 10: P(X >= 30) from the pmf sum.
        assert!((nb - 0.003919).abs() < 1e-5, "{nb}");
    }

    #[test]
    fn huge_spikes_have_a_finite_surprise() {
        let p = upper_tail(1e6, 10.0, 0.05);
        assert!(surprise(p).is_finite());
        assert!(surprise(p) > 100.0);
    }

    #[test]
    fn threshold_count_is_where_the_tail_crosses_p() {
        let t = threshold_count(1e-4, 20.0, 0.1);
        assert!(upper_tail(t, 20.0, 0.1) < 1e-4);
        assert!(upper_tail(t - 1.0, 20.0, 0.1) >= 1e-4);
    }
}
