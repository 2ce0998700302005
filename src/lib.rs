//! outagewatch: an open, crowdsourced outage-report aggregator.
//!
//! People report "I have a problem with WhatsApp" through the intake API
//! ([`http::reports`]); [`intake`] validates the report, identifies the reporter
//! by a keyed hash and hands it to a group-commit writer, which answers 202 only
//! after the [`store`] (Redis, or the embedded store when no Redis is
//! configured) has counted it in per-minute buckets. Read endpoints turn the
//! buckets into series and breakdowns for charts; history import fills in the
//! weeks of baseline that detection needs. [`app`] wires it together.
//!
//! # Layers
//!
//! Imports point one way: a module uses only modules of the rows above
//! its own (lower layers), and modules of one row do not import each other
//! (`tests/api/layers.rs` checks it on the source):
//!
//! | layer | modules | what it is |
//! |---|---|---|
//! | settings | [`config`] | settings, their defaults and checks |
//! | domain | [`domain`] | validating types, the registry, anomaly documents, times |
//! | store | [`store`] | the `Store`/`FeedStore` traits; Redis and the embedded store |
//! | telemetry | [`telemetry`] | metrics and logging |
//! | detector | [`detect`] | the pure detector: baselines, windows, lifecycle |
//! | services | [`intake`], [`import`], [`worker`], [`read`] | taking reports in, history in, the detection tick, what readers see |
//! | tools | [`simulate`], [`backtest`] | the traffic simulator, the NAB backtest |
//! | API | [`http`] | routes, problem+json, connections, the event stream |
//! | pages | [`web`] | pages, charts, Atom, the browser's report form |
//! | demo | [`demo`] | simulated traffic for a first run |
//! | wiring | [`app`] | the process: server, writer, worker, shutdown |
//!
//! `web` sits above `http` and uses it: the problem+json error type and
//! codes, the route type, the API's route table and answer types (from
//! which `web::docs` builds the OpenAPI document), and the intake handler
//! that the browser's form post shares.
//!
//! # Parts
//!
//! There is no one application state. [`app`] builds each part once and
//! gives it to the server as app data of its own, and a handler takes the
//! parts it uses: the [`read::Reader`] (reads, with their caches), the
//! [`intake::Intake`] (with its rate limiter), the event stream's
//! [`http::stream::Hub`], the [`http::admin::Admin`] endpoints' part, the
//! API's own settings ([`http::Edge`]), the page cache with the page
//! settings ([`web::Pages`]), the store and the metrics.

pub mod app;
pub mod backtest;
pub mod config;
pub mod demo;
pub mod detect;
pub mod domain;
pub mod http;
pub mod import;
pub mod intake;
pub mod read;
pub mod simulate;
pub mod store;
pub mod telemetry;
pub mod web;
pub mod worker;
