//! Latency-by-rate plots, as SVG.
//!
//! x is the offered rate (req/s, linear), y the latency in milliseconds on a
//! log scale. Each [`Curve`] (one server) gets one colour and three lines:
//! p50 (a lighter shade), p99 (solid, with a marker per step) and p99.9
//! (dashed). Optional SLO thresholds are grey dashed horizontal lines.
//!
//! Only the SVG backend is used, with plotters' built-in text-size estimate:
//! text goes out as `<text>` elements for the viewer to lay out, so no font
//! file or font library is needed at build or run time.
//!
//! ```
//! use leadex_loadtest::plot::{render_svg, Curve, Point};
//! use leadex_loadtest::report::Percentiles;
//!
//! let us = |p50, p99, p99_9| Percentiles { p50, p90: p99, p99, p99_9, max: p99_9 };
//! let leadex = Curve {
//!     label: "leadex".into(),
//!     points: vec![
//!         Point { rate_per_s: 1_000.0, latency_us: us(300, 900, 2_000) },
//!         Point { rate_per_s: 2_000.0, latency_us: us(350, 1_200, 4_000) },
//!     ],
//! };
//! let svg = render_svg("ping", &[leadex], &[("SLO p99".into(), 50.0)]).unwrap();
//! assert!(svg.contains("leadex p99.9") && svg.contains("SLO p99"));
//! ```

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::report::Percentiles;

/// One measured step: the offered rate and the latency percentiles there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Offered (intended) arrivals per second.
    pub rate_per_s: f64,
    /// Latency percentiles at that rate, microseconds.
    pub latency_us: Percentiles,
}

/// One server's steps, e.g. "leadex" or "baseline (bare hyper)".
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Legend prefix: the lines are labelled "`label` p50" and so on.
    pub label: String,
    /// The steps, in any order (sorted by rate before drawing).
    pub points: Vec<Point>,
}

/// Width and height of the picture, pixels.
const SIZE: (u32, u32) = (1024, 640);
/// Floor for latencies on the log axis (1 µs), so zeros stay drawable.
const MIN_MS: f64 = 0.001;
/// One colour per curve, cycled.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
/// Colour of the SLO lines.
const SLO_COLOUR: RGBColor = RGBColor(90, 90, 90);

/// How one percentile's line is drawn.
#[derive(Clone, Copy)]
enum Stroke {
    /// Solid, in a lighter shade of the curve's colour.
    Light,
    /// Solid, with a marker at each step.
    Marked,
    /// Dashed.
    Dashed,
}

/// Picks one percentile.
type Pick = fn(&Percentiles) -> u64;

/// The three lines drawn per curve.
const LINES: [(&str, Pick, Stroke); 3] = [
    ("p50", |p| p.p50, Stroke::Light),
    ("p99", |p| p.p99, Stroke::Marked),
    ("p99.9", |p| p.p99_9, Stroke::Dashed),
];

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>;

/// Renders the curves as an SVG document: x = offered rate (req/s, linear),
/// y = latency in ms on a log scale, three lines per curve (p50, p99, p99.9,
/// legend entries like "leadex p99"), and a dashed horizontal line with a
/// legend entry per `(label, ms)` in `slo_lines`.
///
/// Points with a non-finite rate are skipped, latencies below 1 µs are drawn
/// at 1 µs, and SLO lines with a non-finite value are skipped.
///
/// # Errors
///
/// When no curve has a point to draw (an empty plot says nothing), or if
/// plotters fails.
pub fn render_svg(
    title: &str,
    curves: &[Curve],
    slo_lines: &[(String, f64)],
) -> Result<String, String> {
    let curves: Vec<(&str, Vec<Point>)> = curves
        .iter()
        .map(|c| {
            let mut points: Vec<Point> = c
                .points
                .iter()
                .copied()
                .filter(|p| p.rate_per_s.is_finite())
                .collect();
            points.sort_by(|a, b| a.rate_per_s.total_cmp(&b.rate_per_s));
            (c.label.as_str(), points)
        })
        .filter(|(_, points)| !points.is_empty())
        .collect();
    if curves.is_empty() {
        return Err("nothing to plot: no curve has a point with a finite rate".into());
    }
    let slo_lines: Vec<(&str, f64)> = slo_lines
        .iter()
        .filter(|(_, ms)| ms.is_finite())
        .map(|(l, ms)| (l.as_str(), ms.max(MIN_MS)))
        .collect();

    let points = || curves.iter().flat_map(|(_, points)| points);
    let (x0, x1) = x_range(points().map(|p| p.rate_per_s));
    let latencies = points().flat_map(|p| LINES.map(|(_, pick, _)| ms(pick(&p.latency_us))));
    let (y0, y1) = y_range(latencies.chain(slo_lines.iter().map(|&(_, ms)| ms)));

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 28))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            // A hair below the decade, or plotters' ln/ln10 rounds it up and skips its label.
            .build_cartesian_2d(x0..x1, (y0 * 0.999_999..y1).log_scale())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .x_desc("offered rate (req/s)")
            .y_desc("latency (ms)")
            .x_label_formatter(&|v| number(*v))
            .y_label_formatter(&|v| number(*v))
            .draw()
            .map_err(plot_err)?;

        for (i, (label, points)) in curves.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            for (name, pick, stroke) in LINES {
                let line = points
                    .iter()
                    .map(|p| (p.rate_per_s, ms(pick(&p.latency_us))));
                draw_line(&mut chart, line, colour, stroke, format!("{label} {name}"))?;
            }
        }
        for &(label, ms) in &slo_lines {
            draw_line(
                &mut chart,
                [(x0, ms), (x1, ms)].into_iter(),
                SLO_COLOUR,
                Stroke::Dashed,
                label.to_owned(),
            )?;
        }

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// [`render_svg`] and write it to `path`.
///
/// # Errors
///
/// As [`render_svg`], or when the file cannot be written.
pub fn write_svg(
    path: &Path,
    title: &str,
    curves: &[Curve],
    slo_lines: &[(String, f64)],
) -> Result<(), String> {
    let svg = render_svg(title, curves, slo_lines)?;
    std::fs::write(path, svg).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Draws one labelled line in `stroke`'s style.
fn draw_line(
    chart: &mut Chart<'_, '_>,
    line: impl Iterator<Item = (f64, f64)> + Clone,
    colour: RGBColor,
    stroke: Stroke,
    label: String,
) -> Result<(), String> {
    let style = colour.stroke_width(2);
    let anno = match stroke {
        Stroke::Light => {
            let style = colour.mix(0.45).stroke_width(2);
            let anno = chart
                .draw_series(LineSeries::new(line, style))
                .map_err(plot_err)?;
            anno.legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style))
        }
        Stroke::Marked => {
            let anno = chart
                .draw_series(LineSeries::new(line, style).point_size(3))
                .map_err(plot_err)?;
            anno.legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style))
        }
        Stroke::Dashed => {
            let anno = chart
                .draw_series(DashedLineSeries::new(line, 8, 5, style))
                .map_err(plot_err)?;
            anno.legend(move |(x, y)| DashedPathElement::new([(x, y), (x + 24, y)], 8, 5, style))
        }
    };
    anno.label(label);
    Ok(())
}

/// Microseconds to milliseconds, floored at [`MIN_MS`].
fn ms(us: u64) -> f64 {
    (us as f64 / 1_000.0).max(MIN_MS)
}

/// The x range: the rates with 5 % margins (or ±10 % around a single rate),
/// not below zero when the rates are not.
fn x_range(rates: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = rates.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
        (lo.min(r), hi.max(r))
    });
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        (lo.abs() * 0.1).max(1.0)
    };
    let start = if lo >= 0.0 {
        (lo - pad).max(0.0)
    } else {
        lo - pad
    };
    (start, hi + pad)
}

/// The y range: whole decades around the (positive) values.
fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil());
    (lo, if hi > lo { hi } else { lo * 10.0 })
}

/// An axis label: up to 3 significant digits, no trailing zeros.
fn number(v: f64) -> String {
    let decimals = if v == 0.0 {
        0
    } else {
        (2.0 - v.abs().log10().floor()).clamp(0.0, 9.0) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn plot_err(e: impl std::fmt::Display) -> String {
    format!("plotting: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(p50: u64, p99: u64, p99_9: u64) -> Percentiles {
        Percentiles {
            p50,
            p90: p99,
            p99,
            p99_9,
            max: p99_9,
        }
    }

    fn curve(label: &str, steps: &[(f64, u64, u64, u64)]) -> Curve {
        Curve {
            label: label.into(),
            points: steps
                .iter()
                .map(|&(rate_per_s, a, b, c)| Point {
                    rate_per_s,
                    latency_us: pct(a, b, c),
                })
                .collect(),
        }
    }

    fn sample() -> Vec<Curve> {
        vec![
            // Out of order on purpose; the last step is overloaded (seconds).
            curve(
                "leadex",
                &[
                    (4_000.0, 420, 1_800, 5_500),
                    (1_000.0, 310, 900, 2_100),
                    (2_000.0, 350, 1_100, 3_000),
                    (8_000.0, 900, 45_000, 2_500_000),
                ],
            ),
            curve(
                "baseline (bare hyper)",
                &[
                    (1_000.0, 90, 250, 600),
                    (4_000.0, 110, 400, 1_200),
                    (8_000.0, 160, 900, 3_500),
                ],
            ),
        ]
    }

    /// The contents of the `<text>` elements, trimmed.
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim()))
            .collect()
    }

    #[test]
    fn renders_curves_legend_and_slo() {
        let title = "ping-post: p99 < 50 ms & p99.9 < 200 ms";
        let svg = render_svg(title, &sample(), &[("SLO p99 50 ms".into(), 50.0)]).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let texts = texts(&svg);
        for text in [
            "ping-post: p99 &lt; 50 ms &amp; p99.9 &lt; 200 ms",
            "leadex p50",
            "leadex p99",
            "leadex p99.9",
            "baseline (bare hyper) p99.9",
            "SLO p99 50 ms",
            "offered rate (req/s)",
            "latency (ms)",
        ] {
            assert!(texts.contains(&text), "{text:?} missing from {texts:?}");
        }
        // Six lines and the SLO line, each also drawn in the legend.
        assert!(svg.matches("<polyline").count() >= 14);
    }

    #[test]
    fn writes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.svg");
        let slo = [("SLO p99.9 200 ms".to_owned(), 200.0)];
        write_svg(
            &path,
            "leadex vs bare hyper: latency by offered rate",
            &sample(),
            &slo,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let texts = texts(&svg);
        assert!(
            texts.contains(&"leadex vs bare hyper: latency by offered rate"),
            "{texts:?}"
        );
        assert!(texts.contains(&"SLO p99.9 200 ms"), "{texts:?}");
        let missing = dir.path().join("no/such/dir/plot.svg");
        let err = write_svg(&missing, "t", &sample(), &[]).unwrap_err();
        assert!(err.contains("no/such/dir"), "{err}");
    }

    #[test]
    fn single_point_zero_and_huge_latencies() {
        let one = [curve("leadex", &[(500.0, 0, 0, 0)])];
        let svg = render_svg("one", &one, &[]).unwrap();
        assert!(texts(&svg).contains(&"leadex p99"));
        let zero_rate = [curve("leadex", &[(0.0, 1, 2, u64::MAX)])];
        render_svg("zero rate", &zero_rate, &[("SLO".into(), 0.0)]).unwrap();
    }

    #[test]
    fn empty_input_is_an_error() {
        let err = render_svg("t", &[], &[("SLO".into(), 10.0)]).unwrap_err();
        assert!(err.contains("nothing to plot"), "{err}");
        let no_points = [curve("leadex", &[]), curve("nan", &[(f64::NAN, 1, 2, 3)])];
        assert!(render_svg("t", &no_points, &[]).is_err());
        // An empty curve next to a drawable one is just left out, as is a NaN SLO.
        let mixed = [curve("empty", &[]), curve("leadex", &[(100.0, 1, 2, 3)])];
        let svg = render_svg("t", &mixed, &[("nan".into(), f64::NAN)]).unwrap();
        let texts = texts(&svg);
        assert!(texts.contains(&"leadex p50"));
        assert!(!texts.contains(&"empty p50") && !texts.contains(&"nan"));
    }

    #[test]
    fn ranges_and_labels() {
        assert_eq!(x_range([1_000.0, 3_000.0].into_iter()), (900.0, 3_100.0));
        assert_eq!(x_range([0.0].into_iter()), (0.0, 1.0));
        assert_eq!(y_range([0.3, 45.0].into_iter()), (0.1, 100.0));
        assert_eq!(y_range([1.0].into_iter()), (1.0, 10.0));
        assert_eq!(number(0.001), "0.001");
        assert_eq!(number(0.30000000000000004), "0.3");
        assert_eq!(number(2_500.0), "2500");
        assert_eq!(number(12.5), "12.5");
    }
}
