//! Learning-curve plots with `plotters`: one line per series with a shaded interval, axis labels,
//! a legend with the labels as written, saved as a PNG. The text is drawn with a typeface
//! compiled into the binary (Ubuntu Light, from `epaint_default_fonts`), so plotting needs no
//! system font.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::{Error, Result, invalid};

/// One curve: its label, colour, x values and, per x, its centre line and shaded interval.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text, drawn as written.
    pub label: String,
    /// RGB.
    pub color: [u8; 3],
    /// x values, increasing.
    pub x: Vec<f64>,
    /// The line (a mean, an IQM) per x; non-finite values break the line.
    pub y: Vec<f64>,
    /// The shaded interval's lower edge per x (equal to `y` for none).
    pub lo: Vec<f64>,
    /// Its upper edge.
    pub hi: Vec<f64>,
}

/// Distinct colours for up to eight series (matplotlib's first eight).
pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

/// The plot's size in pixels: legible at the README's width (about 900 px).
pub const PLOT_SIZE: (u32, u32) = (960, 600);

const FONT: &str = "sans-serif";

/// Registers the embedded typeface under [`FONT`] once per process (the outcome is kept, so a
/// font that cannot be read is an error on every call, not only the first).
fn register() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        invalid("the embedded plot font could not be read")
    }
}

/// `1500000` → `1.5M`, `20000` → `20k`: step counts on an axis.
pub fn human(x: f64) -> String {
    let trim = |v: f64| {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    match x.abs() {
        a if a >= 1e6 => format!("{}M", trim(x / 1e6)),
        a if a >= 1e3 => format!("{}k", trim(x / 1e3)),
        _ => trim(x),
    }
}

/// The (min, max) of the finite values, widened when empty of span.
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        return None;
    }
    let pad = if hi - lo < 1e-9 {
        1.0
    } else {
        0.04 * (hi - lo)
    };
    Some((lo - pad, hi + pad))
}

/// Draws the series (lines over shaded intervals) with a title, axis labels and a legend, and
/// writes a PNG of [`PLOT_SIZE`] to `path`.
pub fn plot_curves(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    register()?;
    let failed = |e: &dyn std::fmt::Display| Error::Invalid(format!("{}: {e}", path.display()));
    let (Some((x0, x1)), Some((y0, y1))) = (
        range(series.iter().flat_map(|s| s.x.iter().copied())),
        range(
            series
                .iter()
                .flat_map(|s| s.y.iter().chain(&s.lo).chain(&s.hi).copied()),
        ),
    ) else {
        return invalid(format!(
            "{}: no finite points to plot for '{title}'",
            path.display()
        ));
    };
    let root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| human(*x))
        .y_label_formatter(&|y| human(*y))
        .label_style((FONT, 18))
        .axis_desc_style((FONT, 20))
        .x_labels(8)
        .y_labels(8)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(|e| failed(&e))?;
    for s in series {
        let [r, g, b] = s.color;
        let color = RGBColor(r, g, b);
        for run in finite_runs(s) {
            let band: Vec<(f64, f64)> = run
                .iter()
                .map(|&i| (s.x[i], s.hi[i]))
                .chain(run.iter().rev().map(|&i| (s.x[i], s.lo[i])))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band,
                    color.mix(0.18).filled(),
                )))
                .map_err(|e| failed(&e))?;
        }
        let mut first = true;
        for run in finite_runs(s) {
            let line =
                LineSeries::new(run.iter().map(|&i| (s.x[i], s.y[i])), color.stroke_width(3));
            let drawn = chart.draw_series(line).map_err(|e| failed(&e))?;
            if std::mem::take(&mut first) {
                drawn.label(s.label.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                });
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 18))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))
}

/// The maximal runs of indices at which x, y and the interval are all finite.
fn finite_runs(s: &Series) -> Vec<Vec<usize>> {
    let mut runs: Vec<Vec<usize>> = vec![Vec::new()];
    for i in 0..s.x.len().min(s.y.len()).min(s.lo.len()).min(s.hi.len()) {
        if [s.x[i], s.y[i], s.lo[i], s.hi[i]]
            .iter()
            .all(|v| v.is_finite())
        {
            if let Some(run) = runs.last_mut() {
                run.push(i);
            }
        } else if runs.last().is_some_and(|r| !r.is_empty()) {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}
