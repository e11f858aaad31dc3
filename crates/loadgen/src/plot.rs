//! `--plot`: throughput against threads, and the latency distribution.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

/// Draws `report` into an SVG at `path`: on the left each engine's
/// connections per second at each thread count, on the right each engine's
/// latency by percentile at the largest thread count (both axes of the
/// latency chart logarithmic).
pub fn draw(report: &Report, path: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(600);

    let engines: Vec<&str> = report
        .runs
        .first()
        .map(|r| r.outcomes.iter().map(|o| o.engine).collect())
        .unwrap_or_default();
    let max_threads = report.runs.iter().map(|r| r.threads).max().unwrap_or(1);
    let max_ops = report
        .runs
        .iter()
        .flat_map(|r| r.outcomes.iter().map(|o| o.ops_per_sec))
        .fold(1.0, f64::max)
        / 1e6;

    let mut chart = ChartBuilder::on(&left)
        .caption(
            "connections/s against threads (millions)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.5..max_threads as f64 + 0.5, 0.0..max_ops * 1.1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_labels(max_threads.min(16))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("threads")
        .y_desc("million connections/s")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, engine) in engines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = report
            .runs
            .iter()
            .filter_map(|r| {
                r.outcomes
                    .iter()
                    .find(|o| o.engine == *engine)
                    .map(|o| (r.threads as f64, o.ops_per_sec / 1e6))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(*engine)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;

    // "Nines" on the x axis: 1 at the median's 0.3, 2 at p99, 3 at p99.9.
    let nines = |q: f64| -(1.0 - q).log10();
    let Some(last) = report.runs.iter().max_by_key(|r| r.threads) else {
        return root.present().map_err(|e| err(&e));
    };
    let max_ns = last
        .outcomes
        .iter()
        .flat_map(|o| o.latency.iter().map(|&(_, ns)| ns))
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    let mut chart = ChartBuilder::on(&right)
        .caption(
            format!("latency by percentile, {} threads", last.threads),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..4.2, (1.0..max_ns * 2.0).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .y_label_formatter(&|ns| format!("{ns:.0}"))
        .x_desc("percentile (nines: 2 = p99, 3 = p99.9)")
        .y_desc("ns")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, o) in last.outcomes.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = o
            .latency
            .iter()
            .map(|&(q, ns)| (nines(q), ns.max(1) as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(o.engine)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
