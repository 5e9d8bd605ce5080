//! A benchmark run as a picture: an SVG bar chart of each case's µs added per request over bare
//! Envoy (the median round), one bar per case in the suite's order, so each filter's native twin
//! stands next to it. Drawn with plotters' SVG backend; `meshplug bench --chart` writes it.

use crate::load::bench::BenchResult;
use plotters::prelude::*;

const BAR_HEIGHT: u32 = 26;
const NATIVE: RGBColor = RGBColor(150, 150, 150);
const WASM: RGBColor = RGBColor(45, 105, 175);
const FLOOR: RGBColor = RGBColor(230, 160, 40);

/// The run's cases (bare Envoy left out: it is the zero) as an SVG document titled `title`.
pub fn svg(title: &str, results: &[BenchResult]) -> anyhow::Result<String> {
    let us = |r: &BenchResult| {
        let rps = r.median_rps();
        if rps > 0.0 {
            1e6 / rps
        } else {
            f64::NAN
        }
    };
    let bare = results.iter().find(|r| r.baseline.is_none()).map(us).unwrap_or(f64::NAN);
    let bars: Vec<(String, f64)> =
        results.iter().filter(|r| r.baseline.is_some()).map(|r| (r.name.clone(), (us(r) - bare).max(0.0))).collect();
    anyhow::ensure!(!bars.is_empty() && bare.is_finite(), "no case to draw beside bare Envoy");
    let max = bars.iter().map(|(_, v)| *v).filter(|v| v.is_finite()).fold(1.0, f64::max) * 1.12;
    let height = 90 + BAR_HEIGHT * bars.len() as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1100, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let n = bars.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(430)
            .build_cartesian_2d(0.0..max, 0.0..n)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let label = |y: &f64| {
            let i = (n - y - 0.5).round();
            if (y.fract() - 0.5).abs() < 1e-6 && i >= 0.0 {
                bars.get(i as usize).map(|(name, _)| name.clone()).unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(bars.len() * 2 + 1)
            .y_label_formatter(&label)
            .y_label_style(("sans-serif", 12))
            .x_desc("µs added per request over bare Envoy (median round)")
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (i, (name, value)) in bars.iter().enumerate() {
            let top = n - i as f64;
            let color = if name.starts_with("native") {
                NATIVE
            } else if name.starts_with("no-op") {
                FLOOR
            } else {
                WASM
            };
            chart
                .draw_series(std::iter::once(Rectangle::new([(0.0, top - 0.15), (*value, top - 0.85)], color.filled())))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("+{value:.1} µs"),
                    (*value + max * 0.01, top - 0.35),
                    ("sans-serif", 11),
                )))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, baseline: Option<&str>, rps: f64) -> BenchResult {
        BenchResult { name: name.into(), baseline: baseline.map(Into::into), rps: vec![rps], rss_bytes: None }
    }

    /// Every case but bare Envoy is a bar, labelled with its name and its µs over bare.
    #[test]
    fn each_case_is_a_labelled_bar_of_its_added_time() {
        let results = [
            result("bare Envoy", None, 50_000.0),
            result("native fault, not firing", Some("bare Envoy"), 40_000.0),
            result("fault.wasm, not firing", Some("no-op"), 25_000.0),
        ];
        let svg = svg("t", &results).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("native fault, not firing") && svg.contains("fault.wasm, not firing"), "{svg}");
        assert!(svg.contains("+5.0 µs") && svg.contains("+20.0 µs"), "{svg}");
        assert!(!svg.contains(">bare Envoy<"), "bare Envoy is the zero, not a bar");
        assert_eq!(svg.matches(r##"fill="#969696""##).count(), 1, "one native bar: {svg}");
        assert_eq!(svg.matches(r##"fill="#2D69AF""##).count(), 1, "one Wasm bar: {svg}");
    }
}
