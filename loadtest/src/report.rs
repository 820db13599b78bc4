//! The report: one JSON object per scenario in a file, an SVG chart per scenario, and the
//! summary table `spike.sh` prints.
//!
//! Charts use plotters' SVG backend with its built-in text handling (no system fonts): three
//! panels over time — accept rate, accept latency p50/p99, and decisions/s (from the API's
//! campaign `issued`) with rows/s persisted and queue depth.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::LoadError;
use crate::scenarios::ScenarioReport;

/// A named line: legend label, points (seconds, value), colour.
type Series<'a> = (&'a str, &'a [(f64, f64)], RGBColor);

/// Writes `reports` as a JSON array to `dir/report.json`, one chart per scenario as
/// `dir/<name>.svg`, and the summary table as `dir/summary.txt`; returns the paths written.
pub fn write(dir: &Path, reports: &[ScenarioReport]) -> Result<Vec<PathBuf>, LoadError> {
    std::fs::create_dir_all(dir).map_err(LoadError::io(format!("creating {}", dir.display())))?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    let body = serde_json::to_string_pretty(reports)?;
    std::fs::write(&json, body).map_err(LoadError::io(format!("writing {}", json.display())))?;
    written.push(json);
    for report in reports {
        if report.traffic.is_empty() && report.samples.is_empty() {
            continue;
        }
        let svg = dir.join(format!("{}.svg", report.name));
        chart(&svg, report)?;
        written.push(svg);
    }
    let table = dir.join("summary.txt");
    std::fs::write(&table, summary(reports))
        .map_err(LoadError::io(format!("writing {}", table.display())))?;
    written.push(table);
    Ok(written)
}

/// The summary table: one block per scenario, its verdict and headline figures.
pub fn summary(reports: &[ScenarioReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<10} {:>10} {:>9} {:>9}  figures",
        "scenario", "verdict", "requests", "accept/s", "p99 ms"
    );
    for report in reports {
        let over_memory = report.memory.as_ref().is_some_and(|m| !m.ok);
        let verdict = match (&report.verdict, over_memory) {
            (None, false) => "-".to_string(),
            (Some(v), false) if v.ok() => "ok".to_string(),
            (Some(v), true) if !v.ok() => format!("FAIL({}+rss)", v.violations.len()),
            (_, true) => "FAIL(rss)".to_string(),
            (Some(v), false) => format!("FAIL({})", v.violations.len()),
        };
        let (sent, rate, p99) = report
            .blast
            .as_ref()
            .map_or((0, 0.0, 0.0), |b| (b.sent, b.accept_rate, b.latency.p99_ms));
        let figures: Vec<String> = report
            .figures
            .iter()
            .map(|(k, v)| format!("{k}={}", short(*v)))
            .collect();
        let _ = writeln!(
            out,
            "{:<14} {:<10} {:>10} {:>9.0} {:>9.2}  {}",
            report.name,
            verdict,
            sent,
            rate,
            p99,
            figures.join(" ")
        );
        if let Some(verdict) = &report.verdict {
            for v in &verdict.violations {
                let ids: Vec<String> = v
                    .request_ids
                    .iter()
                    .take(5)
                    .map(|i| i.to_string())
                    .collect();
                let _ = writeln!(
                    out,
                    "         guarantee {}: {} [{}]",
                    v.guarantee,
                    v.detail,
                    ids.join(", ")
                );
            }
        }
        if let Some(verdict) = report
            .verdict
            .as_ref()
            .filter(|v| v.recorded_without_answer > 0)
        {
            let _ = writeln!(
                out,
                "         observed: {} requests recorded although their client got no request id \
                 (error status or failure), e.g. {:?}",
                verdict.recorded_without_answer,
                verdict.recorded_without_answer_ids.first()
            );
        }
        if let Some(memory) = report.memory.as_ref().filter(|m| !m.ok) {
            let _ = writeln!(
                out,
                "         memory: the API's peak RSS {:.1} MiB is over its {:.0} MiB budget",
                memory.peak_mib, memory.limit_mib
            );
        }
        for note in &report.notes {
            let _ = writeln!(out, "         note: {note}");
        }
    }
    out
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn chart_error(e: impl std::fmt::Display) -> LoadError {
    LoadError::Chart(e.to_string())
}

/// Draws one scenario's chart.
fn chart(path: &Path, report: &ScenarioReport) -> Result<(), LoadError> {
    let root = SVGBackend::new(path, (1000, 960)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let root = root
        .titled(
            &format!(
                "rushline loadtest: {} - {}",
                report.name, report.description
            ),
            ("sans-serif", 18),
        )
        .map_err(chart_error)?;
    let panels = root.split_evenly((3, 1));
    let t_max = report
        .traffic
        .iter()
        .map(|p| p.t)
        .chain(report.samples.iter().map(|s| s.t))
        .fold(1.0f64, f64::max);

    let accept: Vec<(f64, f64)> = report
        .traffic
        .iter()
        .map(|p| (p.t, p.accept_rate))
        .collect();
    panel(
        &panels[0],
        "accepted per second (202 + 200)",
        t_max,
        &[("accept/s", &accept, BLUE)],
    )?;
    let p50: Vec<(f64, f64)> = report.traffic.iter().map(|p| (p.t, p.p50_ms)).collect();
    let p99: Vec<(f64, f64)> = report.traffic.iter().map(|p| (p.t, p.p99_ms)).collect();
    panel(
        &panels[1],
        "accept latency from intended send, ms",
        t_max,
        &[("p50", &p50, GREEN), ("p99", &p99, RED)],
    )?;
    let rate = |f: fn(&crate::monitor::Sample) -> f64| -> Vec<(f64, f64)> {
        report
            .samples
            .windows(2)
            .map(|w| {
                (
                    w[1].t,
                    ((f(&w[1]) - f(&w[0])) / (w[1].t - w[0].t).max(1e-6)).max(0.0),
                )
            })
            .collect()
    };
    let decisions = rate(|s| s.issued_api as f64);
    let rows = rate(|s| s.rows_pg as f64);
    let depth: Vec<(f64, f64)> = report
        .samples
        .iter()
        .filter_map(|s| s.queue_depth.map(|d| (s.t, d as f64)))
        .collect();
    panel(
        &panels[2],
        "issued/s (API), rows/s persisted (PostgreSQL), queue depth (Redis)",
        t_max,
        &[
            ("issued/s", &decisions, MAGENTA),
            ("rows/s", &rows, CYAN),
            ("queue depth", &depth, BLACK),
        ],
    )?;
    root.present().map_err(chart_error)?;
    Ok(())
}

/// One panel: line series over time, y from 0 to the largest value.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    t_max: f64,
    series: &[Series<'_>],
) -> Result<(), LoadError> {
    let y_max = series
        .iter()
        .flat_map(|(_, points, _)| points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .draw()
        .map_err(chart_error)?;
    for (name, points, color) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), &color))
            .map_err(chart_error)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(chart_error)?;
    Ok(())
}
