//! outagewatch: an open, crowdsourced outage-report aggregator.
//!
//! People report "I have a problem with WhatsApp" through the intake API
//! ([`http::reports`]); [`intake`] validates the report, identifies the reporter
//! by a keyed hash and hands it to a group-commit writer, which answers 202 only
//! after the [`store`] (Redis, or the embedded store when no Redis is
//! configured) has counted it in per-minute buckets. Read endpoints turn the
//! buckets into series and breakdowns for charts; history import fills in the
//! weeks of baseline that detection needs. [`app`] wires it together.

pub mod app;
pub mod backtest;
pub mod config;
pub mod demo;
pub mod detect;
pub mod domain;
pub mod http;
pub mod import;
pub mod intake;
pub mod simulate;
pub mod store;
pub mod telemetry;
pub mod web;
pub mod worker;
