//! The simulator's hard cases: traffic that is not an ordinary outage but
//! that a detector must still read right. A service that starts bursting
//! several times a day and keeps on (the bursts become its normal), a
//! lasting step up, a slow growth over weeks, a new service with no history,
//! an hour in which no report arrives, and quiet services whose outages add
//! only a few dozen reports.
//!
//! Each case runs on its own synthetic service (`hard-recur-1`,
//! `hard-step-2`, ...), appended after the ordinary ones, and every draw
//! comes from a stream of its own (the seed xor [`HARD_STREAM`]): with or
//! without the hard cases, a seed gives the same ordinary services and
//! outages, so their figures stay comparable with earlier runs.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::model::{Outage, Scenario, SimService, UTC_OFFSETS};

/// Separates the hard cases' random draws from the ordinary ones'.
pub const HARD_STREAM: u64 = 0x4841_5244_4341_5345;

const DAY: i64 = 86_400;

/// How many services of each hard case.
#[derive(Debug, Clone, Copy)]
pub struct HardSpec {
    pub recurring: usize,
    pub steps: usize,
    pub growth: usize,
    pub new: usize,
    pub gaps: usize,
    pub quiet: usize,
}

impl HardSpec {
    /// At 200 services 4 recurring, 4 steps, 3 growth, 3 new, 3 gaps and 8
    /// quiet; in proportion for other sizes, and never fewer than 2 of a
    /// case, which would make its figure one service's luck.
    pub fn for_services(services: usize) -> HardSpec {
        let scaled = |at_200: usize| ((at_200 * services + 100) / 200).max(2);
        HardSpec {
            recurring: scaled(4),
            steps: scaled(4),
            growth: scaled(3),
            new: scaled(3),
            gaps: scaled(3),
            quiet: scaled(8),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HardCase {
    pub service: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// From `from` (the start of a day) to the end, 4 to 12 bursts a day.
    Recurring { from: i64, bursts: Vec<Burst> },
    /// From `at` on, the level is `factor` times what it was.
    Step { at: i64, factor: f64 },
    /// From `from`, the level grows smoothly to `factor` times over
    /// `minutes`, and stays there.
    Growth {
        from: i64,
        minutes: i64,
        factor: f64,
    },
    /// No traffic before `first`; its one outage is in `Scenario::outages`.
    New { first: i64 },
    /// No report arrives in `[from, from + minutes * 60)`: zeros the
    /// detector is not told are missing. The worker's only such signal is
    /// its quarantine, which covers the minutes its own ticks failed to
    /// reach the store; when intake is down (or reports simply stop), the
    /// store answers and the worker reads those minutes as zero counts.
    Gap { from: i64, minutes: i64 },
    /// A quiet service's outage: `extra[k]` reports added `k` minutes after
    /// `start`.
    Quiet { start: i64, extra: Vec<u64> },
}

#[derive(Debug, Clone, Copy)]
pub struct Burst {
    pub start: i64,
    pub minutes: i64,
    /// The burst's rate as a multiple of the normal rate.
    pub multiplier: f64,
}

/// How a hard case bends one minute of its service's traffic.
#[derive(Debug, Clone, Copy)]
pub struct Bend {
    /// Factor on the normal rate; 0 where nothing arrives.
    pub factor: f64,
    /// Extra rate as a multiple of the (bent) normal rate.
    pub boost: f64,
    /// Extra reports of the case's own.
    pub extra: u64,
}

impl Bend {
    pub const NONE: Bend = Bend {
        factor: 1.0,
        boost: 0.0,
        extra: 0,
    };
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Recurring { .. } => "recur",
            Kind::Step { .. } => "step",
            Kind::Growth { .. } => "growth",
            Kind::New { .. } => "new",
            Kind::Gap { .. } => "gap",
            Kind::Quiet { .. } => "quiet",
        }
    }

    /// Where the case's own pattern starts: from then on the recurring
    /// bursts, the step and the growth are the service's new normal, scored
    /// in their own sections rather than as outages or false incidents.
    pub fn pattern_start(&self) -> Option<i64> {
        match self {
            Kind::Recurring { from, .. } | Kind::Growth { from, .. } => Some(*from),
            Kind::Step { at, .. } => Some(*at),
            _ => None,
        }
    }
}

impl HardCase {
    /// The bend of the minute starting at `t` (Unix seconds).
    pub fn bend(&self, t: i64) -> Bend {
        match &self.kind {
            Kind::Recurring { bursts, .. } => {
                let after = bursts.partition_point(|b| b.start <= t);
                let boost = match after.checked_sub(1).map(|k| bursts[k]) {
                    Some(b) if t < b.start + b.minutes * 60 => b.multiplier - 1.0,
                    _ => 0.0,
                };
                Bend {
                    boost,
                    ..Bend::NONE
                }
            }
            Kind::Step { at, factor } if t >= *at => Bend {
                factor: *factor,
                ..Bend::NONE
            },
            Kind::Growth {
                from,
                minutes,
                factor,
            } if t >= *from => {
                // Smoothstep in the log of the level: no corner at either end.
                let x = ((t - from) as f64 / (*minutes * 60).max(1) as f64).min(1.0);
                Bend {
                    factor: factor.powf(x * x * (3.0 - 2.0 * x)),
                    ..Bend::NONE
                }
            }
            Kind::New { first } if t < *first => Bend {
                factor: 0.0,
                ..Bend::NONE
            },
            Kind::Gap { from, minutes } if t >= *from && t < from + minutes * 60 => Bend {
                factor: 0.0,
                ..Bend::NONE
            },
            Kind::Quiet { start, extra } if t >= *start => Bend {
                extra: extra.get(((t - start) / 60) as usize).copied().unwrap_or(0),
                ..Bend::NONE
            },
            _ => Bend::NONE,
        }
    }
}

impl Scenario {
    /// The hard case service `i` carries, if any.
    pub fn hard_case(&self, i: usize) -> Option<&HardCase> {
        self.hard.iter().find(|h| h.service == i)
    }
}

/// Appends the hard cases' services to the scenario; their patterns start
/// after `warmup_days`, so the detector has its history first.
pub fn add(sc: &mut Scenario, spec: &HardSpec, warmup_days: i64) {
    let mut rng = StdRng::seed_from_u64(sc.seed ^ HARD_STREAM);
    let days = (sc.minutes / 1440) as i64;
    let warm = warmup_days.clamp(0, days);
    let start = sc.start;
    let day = move |k: i64| start + k * DAY;
    let end = day(days);
    // A moment in `[from, to)`, on a minute.
    let moment = move |rng: &mut StdRng, from: i64, to: i64| {
        (from + rng.random_range(0..(to - from).max(60) / 60) * 60).min(end - 60)
    };
    for n in 1..=spec.recurring {
        // A week or more of the pattern, so day 3 on shows what it learned.
        let from = day(rng.random_range(warm..=(days - 7).max(warm)));
        let bursts = bursts(&mut rng, from, end);
        push(
            sc,
            &mut rng,
            n,
            (0.3, 3.0),
            Kind::Recurring { from, bursts },
        );
    }
    for n in 1..=spec.steps {
        let at = moment(&mut rng, day(warm), day((days - 7).max(warm + 1)));
        let factor = log_uniform(&mut rng, 3.0, 50.0);
        push(sc, &mut rng, n, (0.3, 3.0), Kind::Step { at, factor });
    }
    for n in 1..=spec.growth {
        let length = rng.random_range(14..=21).min(days - warm).max(1);
        let from = day(rng.random_range(warm..=(days - length).max(warm)));
        let factor = rng.random_range(2.0..=4.0);
        let minutes = length * 1440;
        push(
            sc,
            &mut rng,
            n,
            (0.3, 3.0),
            Kind::Growth {
                from,
                minutes,
                factor,
            },
        );
    }
    for n in 1..=spec.new {
        let first = moment(&mut rng, day(warm), day((days - 5).max(warm + 1)));
        // Three days of its own history and an hour's grace for its first
        // report, then an ordinary outage.
        let onset = moment(&mut rng, first + 3 * DAY + 3600, first + 4 * DAY);
        let outage = Outage {
            service: sc.services.len(),
            start: onset,
            minutes: rng.random_range(30..=120),
            multiplier: rng.random_range(5.0..=15.0),
            ramp_minutes: rng.random_range(1..=5),
        };
        push(sc, &mut rng, n, (0.3, 3.0), Kind::New { first });
        sc.outages.push(outage);
    }
    for n in 1..=spec.gaps {
        let from = moment(&mut rng, day(warm), end - 4 * 3600);
        push(
            sc,
            &mut rng,
            n,
            (0.5, 20.0),
            Kind::Gap { from, minutes: 60 },
        );
    }
    for n in 1..=spec.quiet {
        let minutes = rng.random_range(15..=180);
        let start = moment(&mut rng, day(warm), end - 4 * 3600);
        // A uniform extra rate, given its total: each report at a minute
        // drawn uniformly over the outage.
        let mut extra = vec![0u64; minutes];
        for _ in 0..rng.random_range(10..=40) {
            extra[rng.random_range(0..minutes)] += 1;
        }
        push(sc, &mut rng, n, (0.005, 0.05), Kind::Quiet { start, extra });
    }
}

/// 4 to 12 bursts on each day from `from` to `end`, at random times of day,
/// 20 to 40 minutes at 10x to 100x. Starts are at least 70 minutes apart
/// and the last ends 30 minutes before midnight, so bursts never touch.
fn bursts(rng: &mut StdRng, from: i64, end: i64) -> Vec<Burst> {
    const SPACING: i64 = 70;
    let mut out = Vec::new();
    let mut day = from;
    while day < end {
        let k = rng.random_range(4..=12);
        let mut at: Vec<i64> = (0..k)
            .map(|_| rng.random_range(0..1440 - k * SPACING))
            .collect();
        at.sort_unstable();
        for (j, minute) in at.into_iter().enumerate() {
            out.push(Burst {
                start: day + (minute + j as i64 * SPACING) * 60,
                minutes: rng.random_range(20..=40),
                multiplier: rng.random_range(10.0..=100.0),
            });
        }
        day += DAY;
    }
    out
}

/// Appends the `n`-th service of `kind`, its rate log-uniform in `rates`.
fn push(sc: &mut Scenario, rng: &mut StdRng, n: usize, rates: (f64, f64), kind: Kind) {
    let name = kind.name();
    sc.hard.push(HardCase {
        service: sc.services.len(),
        kind,
    });
    sc.services.push(SimService {
        id: format!("hard-{name}-{n}"),
        company: format!("hardco-{name}-{n}"),
        per_minute: log_uniform(rng, rates.0, rates.1),
        dispersion: rng.random_range(0.03..0.25),
        utc_offset_hours: UTC_OFFSETS[rng.random_range(0..UTC_OFFSETS.len())],
    });
}

fn log_uniform(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    rng.random_range(lo.ln()..=hi.ln()).exp()
}
