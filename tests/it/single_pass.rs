//! The evaluation in the pass that writes the segments (issue 13) equals the reference SQL in
//! `queries/`, run by `segscore sql` over the same output.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

fn sql_rows(out: &Path, query_file: &str) -> Vec<Value> {
    let q = repo().join("queries").join(query_file);
    let o = segscore(&[
        "sql",
        "-t",
        out.to_str().unwrap(),
        "-f",
        q.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{query_file}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Equal: numbers to 1e-12 relative (sums may be added in another order), the rest exactly.
fn same(a: &Value, b: &Value, what: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1e-300),
                "{what}: {x} vs {y}"
            );
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                same(v, y.get(k).unwrap_or(&Value::Null), &format!("{what}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{what}"),
    }
}

#[test]
fn the_single_pass_evaluation_equals_the_reference_sql() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 30_000, 3, true);
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &demo_model(),
        &out,
        &[
            "--provider",
            "cpu",
            "--shards",
            "3",
            "--threads",
            "2",
            "--loss",
            "huber",
        ],
    );
    let s = summary(&out);
    assert_eq!(s["overall_sample_stride"], 1);
    // generations/: the same rows as queries/generations.sql gives.
    let b = read_parts(&out.join("generations"));
    let ids = str_col(&b, "generation_id");
    let mut written: BTreeMap<String, Value> = BTreeMap::new();
    let json = {
        let mut buf = Vec::new();
        let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
        w.write(&b).unwrap();
        w.finish().unwrap();
        String::from_utf8(buf).unwrap()
    };
    for (id, line) in ids.iter().zip(json.lines()) {
        written.insert(id.clone(), serde_json::from_str(line).unwrap());
    }
    let reference = sql_rows(&out, "generations.sql");
    assert_eq!(reference.len(), written.len());
    assert_eq!(reference.len() as u64, s["n_generations"].as_u64().unwrap());
    for r in &reference {
        let id = r["generation_id"].as_str().unwrap();
        same(&written[id], r, &format!("generation {id}"));
    }
    // The summary's overall metrics, means, histogram and calibration.
    let overall = &sql_rows(&out, "overall_metrics.sql")[0];
    for k in [
        "spearman",
        "kendall_tau",
        "pairwise_order_accuracy",
        "loss_share_top_1pct",
        "loss_share_top_10pct",
    ] {
        same(&s[k], &overall[k], k);
    }
    assert_eq!(s["overall_sample_segments"], overall["segments"]);
    let means = &sql_rows(&out, "generation_means.sql")[0];
    for (k, v) in s["generation_means"].as_object().unwrap() {
        same(v, &means[k.as_str()], &format!("generation_means.{k}"));
    }
    assert_eq!(s["targets_sum_mismatches"], means["targets_sum_mismatches"]);
    let hist = sql_rows(&out, "residual_histogram.sql");
    let bins = s["residual_histogram"].as_array().unwrap();
    assert_eq!(bins.len(), hist.len());
    for (b, h) in bins.iter().zip(&hist) {
        assert_eq!(b["count"], h["n"]);
        same(&b["lower"], &h["lower_edge"], "histogram lower");
        same(&b["upper"], &h["upper_edge"], "histogram upper");
    }
    let cal = sql_rows(&out, "calibration.sql");
    let rows = s["calibration"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    for (c, r) in rows.iter().zip(&cal) {
        assert_eq!((&c["decile"], &c["n"]), (&r["decile"], &r["n"]));
        for k in ["min_predicted", "max_predicted", "mean_predicted", "mean_target"] {
            same(&c[k], &r[k], &format!("calibration {k}"));
        }
    }
}
