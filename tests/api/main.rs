//! One integration test binary: helpers start a real redis-server per test and
//! the app on a free port; tests talk HTTP to it.

mod abuse;
mod admin;
mod browser;
mod cluster;
mod conformance;
mod demo;
mod detection;
mod failover;
mod faults;
mod fixtures;
mod helpers;
mod intake;
mod layers;
mod networks;
mod reads;
mod schema;
mod web;
