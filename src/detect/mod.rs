//! The detector: pure and synchronous, no I/O, time passed in.
//!
//! For each service and tick it asks: are the reports of the last few minutes
//! far above what is normal for this service at this time of week? The pieces:
//! [`baseline`] (the expected count: seasonal median, level-corrected, past
//! incidents masked), [`tail`] (negative-binomial p-values), [`estimate`]
//! (per-series dispersion and calibration, learned tick by tick), [`judge`]
//! (one series at one tick: [`judge::observe`] judges it, [`judge::advance`]
//! moves it on after the hit decision), [`discovery`] (which of a tick's
//! series are hits), [`sustained`] (a rise that lasts hours),
//! [`recurrence`] (what recurs becomes expected),
//! [`lifecycle`] (possible, problem, resolved) and [`series`] (the whole
//! thing over an in-memory series, for the backtest).
//! The worker, `outagewatch backtest` and the benches all call this code with
//! the same `[detect]` settings.

pub mod baseline;
pub mod discovery;
pub mod estimate;
pub mod history;
pub mod judge;
pub mod lifecycle;
#[cfg(test)]
mod patterns;
pub mod recurrence;
pub mod series;
pub mod sustained;
pub mod tail;

pub use self::judge::{Judgement, SeriesState, WindowJudgement};
pub use self::lifecycle::{Event, Lifecycle};
pub use self::series::{ArrayHistory, SeriesDetector, Verdict};
