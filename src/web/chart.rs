//! Report-volume charts as SVG, drawn on the server: plotters draws the plot
//! (grid, the usual level shaded, the alert threshold dashed, one bar per
//! step), and the `chart.svg` template adds what plotters cannot without a
//! font backend: axis labels, a hover title per bar and the attribution.
//! The same chart is inlined in pages and served alone at `/embed/{id}.svg`.

use askama::Template;
use plotters::prelude::*;

use crate::read::{Point, Series};

const BAR: RGBColor = RGBColor(0x4a, 0x6f, 0xa5);
const BAR_ALERT: RGBColor = RGBColor(0xc0, 0x39, 0x2b);
const BAND: RGBColor = RGBColor(0x9c, 0xc3, 0xe6);
const THRESHOLD: RGBColor = RGBColor(0xc0, 0x39, 0x2b);

/// Space around the plot, in pixels: left for count labels, bottom for times.
const LEFT: u32 = 44;
const BOTTOM: u32 = 22;
const TOP: u32 = 30;
const RIGHT: u32 = 10;

pub struct Label {
    pub x: i32,
    pub y: i32,
    pub text: String,
    /// Unix seconds of a time label, so a page can show it in local time.
    pub unix: Option<i64>,
}

pub struct Hover {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
    pub title: String,
}

#[derive(Template)]
#[template(path = "chart.svg")]
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub title: String,
    /// The plot as plotters drew it: a complete `<svg>` element.
    pub plot: String,
    pub x_labels: Vec<Label>,
    pub y_labels: Vec<Label>,
    pub hovers: Vec<Hover>,
    /// Shown at the bottom right; embeds say where the numbers come from.
    pub attribution: Option<String>,
    /// Whether any step has the detector's baseline and threshold (else
    /// no legend for them). Charts narrower than 600 px have no legend:
    /// they sit beside a page that explains them.
    pub has_baseline: bool,
}

/// Draws `series` (counts per step with baseline and threshold).
pub fn draw(
    series: &Series,
    title: &str,
    width: u32,
    height: u32,
    attribution: Option<String>,
) -> Chart {
    let points = &series.points;
    let step = series.step_secs / 60;
    let n = points.len().max(1) as i64;
    let top = points
        .iter()
        .map(|p| {
            (p.reports as f64)
                .max(p.upper.unwrap_or(0.0))
                .max(p.baseline.unwrap_or(0.0))
        })
        .fold(0.0, f64::max);
    let (y_max, y_step) = nice_axis(top);
    let mut plot = String::new();
    let mut x_labels = Vec::new();
    let mut y_labels = Vec::new();
    let mut hovers = Vec::new();
    {
        // Room for the attribution line under the time labels.
        let plot_height = if attribution.is_some() {
            height - 14
        } else {
            height
        };
        let root = SVGBackend::with_string(&mut plot, (width, plot_height)).into_drawing_area();
        // Drawing into a String cannot fail; errors would mean a bug in the
        // coordinates, and then the chart is merely empty.
        let _ = root.fill(&WHITE);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin_top(TOP)
            .margin_right(RIGHT)
            .x_label_area_size(BOTTOM)
            .y_label_area_size(LEFT)
            .build_cartesian_2d(0..n, 0.0..y_max)
        else {
            return empty(title, width, height, attribution);
        };
        // Grid lines at the count labels; the labels themselves come from
        // the template.
        let mut v = y_step;
        while v <= y_max + 1e-9 {
            let _ = chart.draw_series(LineSeries::new(
                [(0, v), (n, v)],
                BLACK.mix(0.08).stroke_width(1),
            ));
            v += y_step;
        }
        // The usual level, shaded, and the threshold, dashed; both as steps
        // so they line up with the bars.
        let stepped = |value: fn(&Point) -> Option<f64>| {
            points
                .iter()
                .enumerate()
                .flat_map(move |(i, p)| {
                    let v = value(p).unwrap_or(0.0);
                    [(i as i64, v), (i as i64 + 1, v)]
                })
                .collect::<Vec<_>>()
        };
        let _ = chart.draw_series(AreaSeries::new(
            stepped(|p| p.baseline),
            0.0,
            BAND.mix(0.45),
        ));
        let _ = chart.draw_series(points.iter().enumerate().map(|(i, p)| {
            let over = p.upper.is_some_and(|u| p.reports as f64 > u);
            let color = if over { BAR_ALERT } else { BAR };
            let x = i as i64;
            Rectangle::new(
                [(x, 0.0), (x + 1, p.reports as f64)],
                color.mix(0.85).filled(),
            )
        }));
        if points.iter().any(|p| p.upper.is_some()) {
            let _ = chart.draw_series(DashedLineSeries::new(
                stepped(|p| p.upper),
                5,
                4,
                THRESHOLD.stroke_width(1),
            ));
        }
        let _ = chart.draw_series(LineSeries::new(
            [(0, 0.0), (n, 0.0)],
            BLACK.mix(0.4).stroke_width(1),
        ));
        let (x0, y0) = chart.backend_coord(&(0, 0.0));
        let (_, y_top) = chart.backend_coord(&(0, y_max));
        let mut v = 0.0;
        while v <= y_max + 1e-9 {
            let (_, y) = chart.backend_coord(&(0, v));
            y_labels.push(Label {
                x: x0 - 6,
                y: y + 4,
                text: format_count(v),
                unix: None,
            });
            v += y_step;
        }
        // A time label every few hours (or minutes), on round times.
        let span = n * step;
        // About one label per 90 px, so localized times (`09:00 PM`) fit.
        let max_labels = i64::from(width / 90).clamp(2, 8);
        let every = [15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080]
            .into_iter()
            .find(|e| span / e <= max_labels)
            .unwrap_or(10080);
        for (i, p) in points.iter().enumerate() {
            let (x, _) = chart.backend_coord(&(i as i64, 0.0));
            if p.minute.rem_euclid(every) < step {
                x_labels.push(Label {
                    x,
                    y: y0 + 16,
                    text: time_label(p.minute, every),
                    unix: Some(p.minute * 60),
                });
            }
            let (x1, _) = chart.backend_coord(&(i as i64 + 1, 0.0));
            hovers.push(Hover {
                x,
                y: y_top,
                width: (x1 - x).max(1),
                height: (y0 - y_top).max(1),
                title: hover_title(p, step),
            });
        }
        let _ = root.present();
    }
    Chart {
        width,
        height,
        title: title.to_string(),
        plot,
        x_labels,
        y_labels,
        hovers,
        attribution,
        has_baseline: points.iter().any(|p| p.baseline.is_some()),
    }
}

fn empty(title: &str, width: u32, height: u32, attribution: Option<String>) -> Chart {
    Chart {
        width,
        height,
        title: title.to_string(),
        plot: String::new(),
        x_labels: Vec::new(),
        y_labels: Vec::new(),
        hovers: Vec::new(),
        attribution,
        has_baseline: false,
    }
}

/// A round upper bound for the count axis and the step between its labels.
fn nice_axis(top: f64) -> (f64, f64) {
    let top = top.max(4.0) * 1.1;
    let raw = top / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((top / step).ceil() * step, step)
}

fn format_count(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn time_label(minute: i64, every: i64) -> String {
    let t = crate::domain::time::minute_start(minute);
    if every >= 1440 {
        t.format("%b %-d").to_string()
    } else {
        t.format("%H:%M").to_string()
    }
}

fn hover_title(p: &Point, step: i64) -> String {
    let t = crate::domain::time::minute_start(p.minute);
    let end = crate::domain::time::minute_start(p.minute + step);
    let mut title = format!(
        "{}–{} UTC: {} report{}",
        t.format("%b %-d %H:%M"),
        end.format("%H:%M"),
        p.reports,
        if p.reports == 1 { "" } else { "s" }
    );
    if let Some(b) = p.baseline {
        title.push_str(&format!(", usually ~{}", format_count(b.round())));
    }
    if let Some(u) = p.upper {
        title.push_str(&format!(", alert above {}", format_count(u.ceil())));
    }
    title
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_axis_ends_on_a_round_number_above_the_top() {
        for top in [0.0, 3.0, 17.0, 240.0, 6_100_000.0] {
            let (max, step) = nice_axis(top);
            assert!(max >= top, "{top}");
            assert!(
                max / step <= 6.0 && max / step >= 2.0,
                "{top}: {max} / {step}"
            );
        }
        assert_eq!(format_count(6_200_000.0), "6.2M");
        assert_eq!(format_count(1_500.0), "1.5k");
    }
}
