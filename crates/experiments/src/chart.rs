//! SVG charts (plotters): bar panels for the speed ladder, loss curves for the accuracy ladder.
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One panel of bars: (label, value, min, max) each.
pub struct Panel {
    pub title: String,
    pub bars: Vec<(String, f64, f64, f64)>,
}

fn short(label: &str) -> String {
    label
        .replace("original_unpadded", "unpadded")
        .replace('_', " ")
}

/// Panels side by side, each with its own y axis and min–max whiskers.
pub fn bar_panels(path: &Path, title: &str, panels: &[Panel]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (420 * panels.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| err(&e))?;
    for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        let n = panel.bars.len().max(1);
        let top = panel.bars.iter().map(|b| b.3.max(b.1)).fold(0.0, f64::max) * 1.15 + 1e-9;
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top)
            .map_err(|e| err(&e))?;
        let labels: Vec<String> = panel.bars.iter().map(|b| short(&b.0)).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    labels.get(*i).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .x_label_style(("sans-serif", 11))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(panel.bars.iter().enumerate().map(|(i, b)| {
                let c = COLORS[i % COLORS.len()];
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), b.1),
                    ],
                    c.mix(0.8).filled(),
                );
                bar.set_margin(0, 0, 8, 8);
                bar
            }))
            .map_err(|e| err(&e))?;
        // Min–max whiskers, then the median value above each bar.
        for (i, b) in panel.bars.iter().enumerate() {
            let mid = || SegmentValue::CenterOf(i);
            let w = BLACK.stroke_width(1);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(mid(), b.2), (mid(), b.3)],
                    w,
                )))
                .map_err(|e| err(&e))?;
            for y in [b.2, b.3] {
                let mut cap = Rectangle::new(
                    [(SegmentValue::Exact(i), y), (SegmentValue::Exact(i + 1), y)],
                    w,
                );
                cap.set_margin(0, 0, 30, 30);
                chart
                    .draw_series(std::iter::once(cap))
                    .map_err(|e| err(&e))?;
            }
        }
        let label = TextStyle::from(("sans-serif", 12).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(panel.bars.iter().enumerate().map(|(i, b)| {
                Text::new(
                    format!("{:.0}", b.1),
                    (SegmentValue::CenterOf(i), b.3.max(b.1) + top * 0.01),
                    label.clone(),
                )
            }))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// One curve: label and (x, y) points.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Line chart of several curves on one plot, with a legend.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let pts = curves.iter().flat_map(|c| c.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    anyhow::ensure!(x0 <= x1, "no points to plot in {}", path.display());
    let pad = (y1 - y0).max(1e-6) * 0.05;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, c) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                c.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(&c.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Line chart with a log2 x axis (ticks at the powers of two), one line per curve with a
/// marker at each measured point, y from 0; the legend names the curves.
pub fn lines_log2x(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let pts = curves.iter().flat_map(|c| c.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0f64);
    for &(x, y) in pts.filter(|p| p.0 > 0.0 && p.1.is_finite()) {
        (x0, x1, y1) = (x0.min(x.log2()), x1.max(x.log2()), y1.max(y));
    }
    anyhow::ensure!(x0 <= x1, "no points to plot in {}", path.display());
    let (x0, x1) = (x0.floor() - 0.25, x1.ceil() + 0.25);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..(y1 * 1.1).max(1e-9))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(format!("{x_label} (log2 scale)"))
        .y_desc(y_label)
        .x_labels((x1 - x0).ceil() as usize + 1)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{:.0}", 2f64.powf(x.round()))
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| {
            if *y >= 1e9 {
                format!("{:.1}G", y / 1e9)
            } else if *y >= 1e6 {
                format!("{:.1}M", y / 1e6)
            } else if *y >= 1e4 {
                format!("{:.0}k", y / 1e3)
            } else {
                format!("{y:.0}")
            }
        })
        .draw()
        .map_err(|e| err(&e))?;
    for (i, c) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = c
            .points
            .iter()
            .filter(|p| p.0 > 0.0 && p.1.is_finite())
            .map(|&(x, y)| (x.log2(), y))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(&c.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
