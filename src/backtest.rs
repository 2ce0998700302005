//! `outagewatch backtest`: the detector over CSV files of counts.
//!
//! Each input has a header with `timestamp` and `value` columns at a regular
//! step: any step, taken from the gap between the first two rows (within 2
//! seconds of whole minutes, as whole minutes). Each row goes to the nearest
//! step, missing rows are gaps, kept out of baselines, and two rows on one
//! step are refused. Each output, named like its input, has
//! `timestamp,value,anomaly_score` with the score in [0, 1]. The detector
//! runs row by row with the worker's `[detect]` settings, so a row's score
//! depends only on that row and the ones before it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDateTime};

use crate::config::DetectSettings;
use crate::detect::{SeriesDetector, Verdict};

/// One input row: the timestamp as written, its Unix time, the value as written.
#[derive(Debug)]
struct Row {
    raw_time: String,
    at: i64,
    raw_value: String,
    value: f64,
}

/// Runs the detector over every file and writes `out/<file name>`.
/// `explain` adds the detector's reasoning per row: the deciding window, its
/// observed and expected counts, dispersion, p-values and lifecycle event.
pub fn run(
    out: &Path,
    files: &[PathBuf],
    settings: &DetectSettings,
    explain: bool,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let rows = parse(&text).with_context(|| format!("in {}", file.display()))?;
        let verdicts = verdicts(&rows, settings)?;
        let mut csv = String::from("timestamp,value,anomaly_score");
        if explain {
            csv.push_str(
                ",window_mins,observed,expected,baseline,dispersion,p_value,p_calibrated,event,\
                 surprise_short,surprise_mid,surprise_long,surprise_sustained",
            );
        }
        csv.push('\n');
        for (row, v) in rows.iter().zip(verdicts) {
            let _ = write!(csv, "{},{},{:.6}", row.raw_time, row.raw_value, v.score);
            if explain {
                match v.judgement.decisive() {
                    Some(w) => {
                        csv.push(',');
                        csv.push_str(&w.explain().join(","));
                    }
                    None => csv.push_str(",,,,,,,"),
                }
                let _ = write!(
                    csv,
                    ",{}",
                    v.event.map_or(String::new(), |e| format!("{e:?}"))
                );
                for w in &v.judgement.windows {
                    let _ = write!(csv, ",{:.3}", w.map_or(0.0, |w| w.surprise));
                }
            }
            csv.push('\n');
        }
        let name = file
            .file_name()
            .with_context(|| format!("{} has no file name", file.display()))?;
        let target = out.join(name);
        std::fs::write(&target, csv).with_context(|| format!("writing {}", target.display()))?;
        eprintln!(
            "{} -> {} ({} rows)",
            file.display(),
            target.display(),
            rows.len()
        );
    }
    Ok(())
}

/// Most steps a file may span, gaps included (a year of minutes is 525,600):
/// a stray timestamp far in the future is refused, not filled with empty
/// steps until memory runs out.
const MAX_STEPS: i64 = 10_000_000;

/// One verdict per row, computed causally: the step is the gap between the
/// first two rows, so no later row changes it. Each row goes to the nearest
/// step of the grid from the first row (a second of jitter is no matter);
/// steps no row falls on are gaps, kept out of baselines; two rows on one
/// step are refused rather than guessed at.
fn verdicts(rows: &[Row], settings: &DetectSettings) -> anyhow::Result<Vec<Verdict>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let step = match rows.get(1) {
        Some(second) if second.at <= first.at => bail!(
            "timestamps must increase: {} then {}",
            first.raw_time,
            second.raw_time
        ),
        // A gap within 2 seconds of whole minutes is taken as whole minutes,
        // so a second of jitter on the second row does not set the step.
        Some(second) => {
            let gap = second.at - first.at;
            let minutes = (gap + 30).div_euclid(60) * 60;
            if minutes > 0 && (gap - minutes).abs() <= 2 {
                minutes
            } else {
                gap
            }
        }
        None => 60,
    };
    let mut detector = SeriesDetector::new(first.at, step, settings);
    let mut filled = 0i64;
    let mut verdicts = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let slot = (row.at - first.at + step / 2).div_euclid(step);
        if slot < filled {
            bail!(
                "{} is not on a later step than the row before it, {} (the step, {step} s, is \
                 the gap between the first two rows)",
                row.raw_time,
                rows[i - 1].raw_time
            );
        }
        if slot > MAX_STEPS {
            bail!(
                "{} is more than {MAX_STEPS} steps of {step} s after the first row",
                row.raw_time
            );
        }
        for _ in filled..slot {
            detector.push_gap();
        }
        verdicts.push(detector.push(row.value.max(0.0)));
        filled = slot + 1;
    }
    Ok(verdicts)
}

fn parse(text: &str) -> anyhow::Result<Vec<Row>> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().context("the file is empty")?;
    let columns: Vec<&str> = header
        .split(',')
        .map(|c| c.trim().trim_matches('"'))
        .collect();
    let column = |name: &str| {
        columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .with_context(|| format!("no {name:?} column in the header {header:?}"))
    };
    let (t_col, v_col) = (column("timestamp")?, column("value")?);
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line
            .split(',')
            .map(|f| f.trim().trim_matches('"'))
            .collect();
        let (Some(t), Some(v)) = (fields.get(t_col), fields.get(v_col)) else {
            bail!("line {}: too few columns", i + 1);
        };
        let at = parse_time(t).with_context(|| format!("line {}: timestamp {t:?}", i + 1))?;
        let value: f64 = v
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .with_context(|| format!("line {}: value {v:?} is not a number", i + 1))?;
        rows.push(Row {
            raw_time: t.to_string(),
            at,
            raw_value: v.to_string(),
            value,
        });
    }
    Ok(rows)
}

/// `YYYY-MM-DD HH:MM:SS[.fff]` (UTC), RFC 3339, or Unix seconds.
fn parse_time(t: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = t.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(dt.and_utc().timestamp());
        }
    }
    bail!("not a timestamp (expected YYYY-MM-DD HH:MM:SS, RFC 3339 or Unix seconds)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::detect::{Event, Verdict};

    fn csv(values: &[f64]) -> String {
        let mut s = String::from("timestamp,value\n");
        for (i, v) in values.iter().enumerate() {
            let t = DateTime::from_timestamp(1_700_000_000 + i as i64 * 300, 0).unwrap();
            let _ = writeln!(s, "{},{v}", t.format("%Y-%m-%d %H:%M:%S"));
        }
        s
    }

    fn scores(rows: &[Row], settings: &DetectSettings) -> anyhow::Result<Vec<f64>> {
        Ok(verdicts(rows, settings)?
            .into_iter()
            .map(|v| v.score)
            .collect())
    }

    /// Two days of a daily wave at 5-minute steps.
    fn wave() -> Vec<f64> {
        (0..600)
            .map(|i| (50.0 + 30.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin()).round())
            .collect()
    }

    #[test]
    fn scores_are_causal_and_a_lasting_rise_stands_out() {
        let settings = Settings::defaults().detect;
        let mut values = wave();
        values[588..592].fill(400.0);
        let full = scores(&parse(&csv(&values)).unwrap(), &settings).unwrap();
        let part = scores(&parse(&csv(&values[..595])).unwrap(), &settings).unwrap();
        assert_eq!(
            &full[..595],
            &part[..],
            "the first k scores do not depend on later rows"
        );
        let rise = full[588..592].iter().cloned().fold(0.0, f64::max);
        let before = full[..588].iter().cloned().fold(0.0, f64::max);
        assert!(
            rise > 0.5 && rise > before,
            "rise {rise}, max before {before}"
        );
        assert!(full.iter().all(|s| (0.0..=1.0).contains(s)));
    }

    #[test]
    fn a_hit_that_only_opens_a_possible_scores_below_the_alert() {
        // The first hit is a `possible`; the score waits, as the lifecycle
        // does, for the evidence of a second one.
        let settings = Settings::defaults().detect;
        let mut values = wave();
        values[590] = 400.0;
        let rows = parse(&csv(&values)).unwrap();
        let verdicts = verdicts(&rows, &settings).unwrap();
        assert!(verdicts[590].hit);
        assert_eq!(verdicts[590].event, Some(Event::Opened));
        assert!(verdicts[590].score < 0.5, "{}", verdicts[590].score);
        let confirmed = verdicts
            .iter()
            .position(|v| v.event == Some(Event::Confirmed))
            .unwrap();
        assert!(verdicts[confirmed].score > 0.5);
        assert!(verdicts[..confirmed].iter().all(|v| v.score < 0.5));
    }

    #[test]
    fn the_row_that_confirms_a_problem_scores_at_least_the_alert() {
        // Rises of different steepness: however the evidence climbs, the
        // row where the lifecycle confirms a problem scores >= 0.5, so the
        // score's 0.5 is the product's alert.
        let settings = Settings::defaults().detect;
        for growth in [1.15, 1.3, 1.6, 2.5] {
            let mut values = wave();
            for (k, v) in values[580..].iter_mut().enumerate() {
                *v = (*v * f64::powi(growth, k as i32 + 1).min(30.0)).round();
            }
            let verdicts = verdicts(&parse(&csv(&values)).unwrap(), &settings).unwrap();
            let confirmed: Vec<&Verdict> = verdicts
                .iter()
                .filter(|v| v.event == Some(Event::Confirmed))
                .collect();
            assert!(!confirmed.is_empty(), "growth {growth}: no problem");
            for v in confirmed {
                assert!(v.score >= 0.5, "growth {growth}: confirmed at {}", v.score);
            }
        }
    }

    #[test]
    fn a_slow_day_long_rise_is_found_by_the_sustained_window_alone() {
        // Sixteen days of a daily wave with day-to-day swings, then a rise
        // that builds over six hours to 2.8x and holds: no five minutes or
        // hour stands out from the hours before it (their level correction
        // follows it up to 2x, leaving 1.4x, under their floor).
        let days = 17;
        let rise_from = (days - 1) * 288;
        let values: Vec<f64> = (0..days * 288)
            .map(|i| {
                let swing = 1.0 + 0.08 * (((i / 288) * 7919 % 13) as f64 / 6.0 - 1.0);
                let wave = 1.0 + 0.5 * (i as f64 * std::f64::consts::TAU / 288.0).sin();
                let rise = 1.0 + 1.8 * ((i as f64 - rise_from as f64) / 72.0).clamp(0.0, 1.0);
                (60.0 * wave * swing * rise).round()
            })
            .collect();
        let rows = parse(&csv(&values)).unwrap();
        let settings = Settings::defaults().detect;
        let verdicts = verdicts(&rows, &settings).unwrap();
        let sustained = (settings.sustained_hours * 3600) as i64;
        let hits: Vec<usize> = (0..verdicts.len()).filter(|&i| verdicts[i].hit).collect();
        assert!(!hits.is_empty(), "the rise is found");
        assert!(
            hits.iter().all(|&i| i >= rise_from),
            "no hit before it: {hits:?}"
        );
        let first = &verdicts[hits[0]];
        assert_eq!(first.judgement.decisive().unwrap().len_secs, sustained);

        let off = DetectSettings {
            sustained_hours: 0,
            ..settings
        };
        let verdicts = super::verdicts(&rows, &off).unwrap();
        assert!(
            verdicts.iter().all(|v| !v.hit),
            "without the sustained window the rise goes unseen"
        );
    }

    #[test]
    fn bad_files_get_a_clear_error() {
        let settings = Settings::defaults().detect;
        assert!(parse("time,count\n1,2\n").is_err());
        let err = parse("timestamp,value\n2015-01-01 00:00:00,abc\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        let rows = parse("timestamp,value\n100,1\n50,2\n").unwrap();
        assert!(scores(&rows, &settings).is_err());
        // A row within a step of the one before it: which bucket it belongs
        // to is a guess, so it is refused, naming both.
        let rows = parse("timestamp,value\n0,1\n300,2\n400,3\n").unwrap();
        let err = scores(&rows, &settings).unwrap_err().to_string();
        assert!(
            err.contains("400 is not on a later step than the row before it, 300"),
            "{err}"
        );
        // A second of jitter is no matter, on the second row too.
        let mut jittered = String::from("timestamp,value\n0,1\n301,2\n");
        for i in 2..400 {
            let _ = writeln!(jittered, "{},{}", i * 300 + i % 2, i % 7);
        }
        let rows = parse(&jittered).unwrap();
        assert_eq!(scores(&rows, &settings).unwrap().len(), 400);
        // A timestamp far past the rest is refused, not filled with gaps.
        let rows = parse("timestamp,value\n0,1\n1,2\n99999999999,3\n").unwrap();
        let err = scores(&rows, &settings).unwrap_err().to_string();
        assert!(err.contains("more than"), "{err}");
    }

    #[test]
    fn later_rows_at_another_spacing_do_not_change_earlier_scores() {
        let settings = Settings::defaults().detect;
        let mut values = wave();
        values[588..592].fill(400.0);
        let text = csv(&values);
        let first = scores(&parse(&text).unwrap(), &settings).unwrap();
        // Then 700 rows ten minutes apart: more of them than of the first
        // spacing, so "the most common gap" would have changed the step.
        let mut longer = text.clone();
        let last = 1_700_000_000 + 599 * 300;
        for i in 1..=700 {
            let t = DateTime::from_timestamp(last + i * 600, 0).unwrap();
            let _ = writeln!(longer, "{},50", t.format("%Y-%m-%d %H:%M:%S"));
        }
        let all = scores(&parse(&longer).unwrap(), &settings).unwrap();
        assert_eq!(&all[..600], &first[..]);
    }
}
