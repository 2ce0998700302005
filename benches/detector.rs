//! Criterion benchmarks of the pure detector: one series judged at one tick
//! (what the worker does per service and minute), the negative-binomial
//! tail, and the backtest's row-by-row detector.
//!
//! Run: `cargo bench --bench detector`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use outagewatch::config::Settings;
use outagewatch::detect::SeriesDetector;
use outagewatch::detect::history::BucketHistory;
use outagewatch::detect::judge::{self, SeriesState};
use outagewatch::detect::tail;

/// Five hours of minutes and 29 days of quarter hours of a daily wave.
fn history(rate: f64) -> (i64, Vec<f64>, i64, Vec<f64>) {
    let now_minute: i64 = 1_795_000_000 / 60;
    let wave = |t_min: i64| {
        let h = t_min.rem_euclid(1440) as f64 / 60.0;
        rate * (1.0 + 0.6 * ((h - 20.0) / 24.0 * std::f64::consts::TAU).cos())
    };
    let minute_start = now_minute - 300;
    let minutes = (0..300).map(|m| wave(minute_start + m).round()).collect();
    let quarter_start = now_minute / 15 + 1 - 29 * 96;
    let quarters = (0..29 * 96)
        .map(|q| (wave((quarter_start + q) * 15) * 15.0).round())
        .collect();
    (minute_start, minutes, quarter_start, quarters)
}

fn benches(c: &mut Criterion) {
    let d = Settings::defaults().detect;
    let (minute_start, minutes, quarter_start, quarters) = history(5.0);
    let end = (minute_start + 300) * 60;
    let state = SeriesState::default();
    c.bench_function(
        "judge one service at one tick (history view included)",
        |b| {
            b.iter(|| {
                let h =
                    BucketHistory::new(minute_start, &minutes, quarter_start, &quarters, vec![]);
                black_box(judge::judge(&h, &state, black_box(end), 60, &d))
            })
        },
    );
    let h = BucketHistory::new(minute_start, &minutes, quarter_start, &quarters, vec![]);
    c.bench_function("judge one service at one tick (history view built)", |b| {
        b.iter(|| black_box(judge::judge(&h, &state, black_box(end), 60, &d)))
    });
    c.bench_function("negative-binomial upper tail", |b| {
        b.iter(|| black_box(tail::upper_tail(black_box(240.0), 60.0, 0.12)))
    });
    let rows: Vec<f64> = (0..2016)
        .map(|i| (50.0 + 30.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin()).round())
        .collect();
    c.bench_function("backtest a week of 5-minute rows", |b| {
        b.iter(|| {
            let mut detector = SeriesDetector::new(1_700_000_000, 300, &d);
            for &v in &rows {
                black_box(detector.push(v));
            }
        })
    });
}

criterion_group!(detector, benches);
criterion_main!(detector);
