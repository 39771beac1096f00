//! `report.html`: one self-contained page (inline CSS and SVG, no script, nothing fetched)
//! with the run's summary, a residual histogram, a predicted-vs-target scatter (sampled), the
//! calibration plot and the worst generations.

use std::fmt::Write as _;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::SessionContext;

use crate::engine::query::{f64_col, query};
use crate::error::Result;
use crate::evaluate;

pub mod compare;
use crate::evaluate::Summary;

/// Points drawn in the scatter plot, at most.
pub const SCATTER_POINTS: u64 = 2000;
/// Generations listed as the worst.
pub const WORST_GENERATIONS: usize = 20;

/// The colours of the plots' marks (the test finds each plot by its colour).
pub mod colors {
    /// Histogram bars.
    pub const HISTOGRAM: &str = "#4c78a8";
    /// Scatter points.
    pub const SCATTER: &str = "#e45756";
    /// Calibration points and line.
    pub const CALIBRATION: &str = "#54a24b";
}

/// Reads `dir/summary.json` and the output's tables, and writes `dir/report.html`
/// (atomically). Returns its path.
pub async fn write(dir: &Path, threads: usize, memory_limit: u64) -> Result<String> {
    let summary = crate::evaluate::summary::read_summary(dir)?;
    let ctx = crate::engine::session_context(threads, memory_limit, None, true)?;
    crate::functions::register(&ctx, None, None);
    evaluate::register_output(&ctx, dir, None).await?;
    let html = render(&ctx, &summary, &dir.display().to_string()).await?;
    crate::sink::committed::write_output_file(dir, "report.html", html.as_bytes())
}

/// Renders the page from a summary and a context where `segments` and `generations` are
/// registered.
pub async fn render(ctx: &SessionContext, s: &Summary, title: &str) -> Result<String> {
    let stride = s.n_segments.div_ceil(SCATTER_POINTS).max(1);
    // Every stride-th segment in key order: a reproducible, evenly spread sample.
    let sample = query(
        ctx,
        &format!(
            "SELECT predicted_score, target_score FROM (SELECT predicted_score, target_score, \
             CAST(ROW_NUMBER() OVER (ORDER BY generation_id, segment_index) AS BIGINT) AS r FROM segments) \
             WHERE (r - 1) % {stride} = 0"
        ),
    )
    .await?;
    let col =
        |name: &str| -> Result<Vec<f64>> { Ok(f64_col(&sample, name)?.into_iter().flatten().collect()) };
    let points: Vec<(f64, f64)> = col("target_score")?
        .into_iter()
        .zip(col("predicted_score")?)
        .collect();
    let worst = query(
        ctx,
        &format!(
            "SELECT generation_id, n_segments, total_loss, mse, bias, kendall_tau, top_segment_match, \
             worst_segment_index FROM generations ORDER BY total_loss DESC, generation_id LIMIT {WORST_GENERATIONS}"
        ),
    )
    .await?;

    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>segscore report: {t}</title><style>{CSS}</style></head><body>\
         <h1>segscore report</h1><p class=\"sub\">{t} · {n} segments in {g} generations · model {m} \
         ({p}) · loss {l}</p>",
        t = esc(title),
        n = s.n_segments,
        g = s.n_generations,
        m = esc(&s.model),
        p = esc(&s.provider),
        l = esc(&s.loss),
    );
    h.push_str("<div class=\"grid\">");
    h.push_str(&metric_table(s));
    h.push_str("</div>");
    h.push_str("<div class=\"grid\">");
    let bins: Vec<(f64, f64, u64)> = s
        .evaluation
        .residual_histogram
        .iter()
        .map(|b| (b.lower, b.upper, b.count))
        .collect();
    h.push_str(&figure(
        "histogram",
        "Residuals (predicted − target)",
        &histogram_svg(&bins),
    ));
    h.push_str(&figure(
        "scatter",
        &format!(
            "Predicted vs target ({} of {} segments)",
            points.len(),
            s.n_segments
        ),
        &scatter_svg(&points),
    ));
    let cal: Vec<(f64, f64)> = s
        .evaluation
        .calibration
        .iter()
        .map(|c| (c.mean_predicted, c.mean_target))
        .collect();
    h.push_str(&figure(
        "calibration",
        "Calibration: mean target per decile of prediction",
        &calibration_svg(&cal),
    ));
    h.push_str("</div>");
    h.push_str("<h2>Worst generations (by total loss)</h2><table id=\"worst\"><tr>");
    for f in worst.schema().fields() {
        let _ = write!(h, "<th>{}</th>", esc(f.name()));
    }
    h.push_str("</tr>");
    for row in 0..worst.num_rows() {
        h.push_str("<tr>");
        for c in worst.columns() {
            let v = if c.is_null(row) {
                "—".to_string()
            } else if c.data_type() == &DataType::Float64 {
                num(Some(c.as_primitive::<Float64Type>().value(row)))
            } else {
                array_value_to_string(c, row).unwrap_or_default()
            };
            let _ = write!(h, "<td>{}</td>", esc(&v));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    let _ = writeln!(
        h,
        "<p class=\"sub\">segscore {} · ONNX Runtime {} · model sha256 {}</p></body></html>",
        esc(&s.segscore_version),
        esc(&s.onnxruntime_version),
        esc(&s.model_sha256)
    );
    Ok(h)
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}\
h1{margin:0 0 4px}h2{margin-top:28px}.sub{color:#666;margin:0 0 16px}\
.grid{display:flex;flex-wrap:wrap;gap:24px}figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}\
table{border-collapse:collapse;font-size:14px}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}\
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}svg text{font-size:11px;fill:#444}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(0.0) => "0".into(),
        Some(x) if x.abs() >= 1e4 || x.abs() < 1e-3 => format!("{x:.3e}"),
        Some(x) => format!("{x:.4}"),
    }
}

fn metric_table(s: &Summary) -> String {
    let m = &s.metrics;
    let e = &s.evaluation;
    let g = &e.generation_means;
    let d = &s.mse_decomposition;
    let rows: Vec<(&str, Option<f64>, Option<f64>)> = vec![
        ("MSE", m.mse, g.mse),
        ("  bias²", d.bias_squared, None),
        ("  residual variance", d.residual_variance, None),
        ("MAE", m.mae, g.mae),
        ("bias", m.bias, g.bias),
        ("R²", m.r2, None),
        ("Pearson", m.pearson, g.pearson),
        ("Spearman", e.spearman, g.spearman),
        ("Kendall τ-b", e.kendall_tau, g.kendall_tau),
        (
            "pairwise order accuracy",
            e.pairwise_order_accuracy,
            g.pairwise_order_accuracy,
        ),
        ("top segment match", None, g.top_segment_match),
        ("loss share, top 1% segments", e.loss_share_top_1pct, None),
        ("loss share, top 10% segments", e.loss_share_top_10pct, None),
    ];
    let mut h = String::from(
        "<table id=\"metrics\"><tr><th>metric</th><th>all segments</th><th>mean over generations</th></tr>",
    );
    for (name, all, mean) in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name).replace("  ", "&nbsp;&nbsp;&nbsp;"),
            num(all),
            num(mean)
        );
    }
    let _ = write!(
        h,
        "<tr><td>generations failing the target-sum check</td><td>{}</td><td></td></tr></table>",
        e.targets_sum_mismatches
    );
    h
}

fn figure(id: &str, caption: &str, svg: &str) -> String {
    format!(
        "<figure id=\"{id}\"><figcaption>{}</figcaption>{svg}</figure>",
        esc(caption)
    )
}

const W: f64 = 420.0;
const H: f64 = 300.0;
const PAD_L: f64 = 56.0;
const PAD_R: f64 = 12.0;
const PAD_T: f64 = 10.0;
const PAD_B: f64 = 36.0;

/// Maps data ranges onto the plot area and draws its axes.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn new(x: (f64, f64), y: (f64, f64)) -> Frame {
        let widen = |(lo, hi): (f64, f64)| {
            if !(lo.is_finite() && hi.is_finite()) {
                (0.0, 1.0)
            } else if hi > lo {
                (lo, hi)
            } else {
                (lo - 0.5, hi + 0.5)
            }
        };
        Frame {
            x: widen(x),
            y: widen(y),
        }
    }

    fn px(&self, v: f64) -> f64 {
        PAD_L + (v - self.x.0) / (self.x.1 - self.x.0) * (W - PAD_L - PAD_R)
    }

    fn py(&self, v: f64) -> f64 {
        H - PAD_B - (v - self.y.0) / (self.y.1 - self.y.0) * (H - PAD_T - PAD_B)
    }

    /// The dashed line y = x across the plot (x and y share one range).
    fn diagonal(&self) -> String {
        format!(
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>",
            self.px(self.x.0),
            self.py(self.x.0),
            self.px(self.x.1),
            self.py(self.x.1)
        )
    }

    fn axes(&self, xlabel: &str, ylabel: &str) -> String {
        let mut s = String::new();
        let (x0, x1, y0, y1) = (PAD_L, W - PAD_R, PAD_T, H - PAD_B);
        let _ = write!(
            s,
            "<line x1=\"{x0}\" y1=\"{y1}\" x2=\"{x1}\" y2=\"{y1}\" stroke=\"#888\"/>\
             <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\" stroke=\"#888\"/>"
        );
        for k in 0..=4 {
            let f = k as f64 / 4.0;
            let xv = self.x.0 + f * (self.x.1 - self.x.0);
            let yv = self.y.0 + f * (self.y.1 - self.y.0);
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                self.px(xv),
                y1 + 14.0,
                esc(&num(Some(xv))),
                x0 - 4.0,
                self.py(yv) + 4.0,
                esc(&num(Some(yv)))
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text transform=\"translate(12,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            (x0 + x1) / 2.0,
            H - 4.0,
            esc(xlabel),
            (y0 + y1) / 2.0,
            esc(ylabel)
        );
        s
    }
}

fn svg(body: &str) -> String {
    format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">{body}</svg>")
}

fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    })
}

fn histogram_svg(bins: &[(f64, f64, u64)]) -> String {
    let x = range(bins.iter().flat_map(|b| [b.0, b.1]));
    let top = bins.iter().map(|b| b.2).max().unwrap_or(1) as f64;
    let f = Frame::new(x, (0.0, top));
    let mut s = f.axes("residual", "segments");
    for &(lo, hi, n) in bins {
        let (x0, x1) = (f.px(lo), f.px(hi));
        let (y0, y1) = (f.py(n as f64), f.py(0.0));
        let _ = write!(
            s,
            "<rect class=\"bar\" x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} to {}: {n}</title></rect>",
            (x1 - x0 - 1.0).max(1.0),
            y1 - y0,
            colors::HISTOGRAM,
            num(Some(lo)),
            num(Some(hi)),
        );
    }
    svg(&s)
}

fn scatter_svg(points: &[(f64, f64)]) -> String {
    let all = range(points.iter().flat_map(|p| [p.0, p.1]));
    let f = Frame::new(all, all);
    let mut s = f.axes("target", "predicted");
    s.push_str(&f.diagonal());
    for &(t, p) in points {
        let _ = write!(
            s,
            "<circle class=\"point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"/>",
            f.px(t),
            f.py(p),
            colors::SCATTER
        );
    }
    svg(&s)
}

fn calibration_svg(deciles: &[(f64, f64)]) -> String {
    let all = range(deciles.iter().flat_map(|p| [p.0, p.1]));
    let f = Frame::new(all, all);
    let mut s = f.axes("mean predicted", "mean target");
    s.push_str(&f.diagonal());
    let line: Vec<String> = deciles
        .iter()
        .map(|&(p, t)| format!("{:.1},{:.1}", f.px(p), f.py(t)))
        .collect();
    let _ = write!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
        line.join(" "),
        colors::CALIBRATION
    );
    for (k, &(p, t)) in deciles.iter().enumerate() {
        let _ = write!(
            s,
            "<circle class=\"decile\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{}\"><title>decile {}: predicted {}, target {}</title></circle>",
            f.px(p),
            f.py(t),
            colors::CALIBRATION,
            k + 1,
            num(Some(p)),
            num(Some(t))
        );
    }
    svg(&s)
}
