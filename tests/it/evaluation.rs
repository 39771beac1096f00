//! Issue 4: per-generation and overall metrics, the SQL functions, `segscore sql`, the report
//! and `compare`.

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;

use crate::common::*;

fn read_generations(out: &Path) -> RecordBatch {
    let files = parts(&out.join("generations"));
    assert!(!files.is_empty(), "no generations/ in {}", out.display());
    let batches: Vec<RecordBatch> = files.iter().flat_map(|p| read_parquet(p)).collect();
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// Nullable float column by generation id.
fn opt_by_gid(b: &RecordBatch, col: &str) -> BTreeMap<String, Option<f64>> {
    let gid = str_col(b, "generation_id");
    let c = datafusion::arrow::compute::cast(
        b.column_by_name(col).unwrap(),
        &datafusion::arrow::datatypes::DataType::Float64,
    )
    .unwrap();
    let c = c.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    (0..b.num_rows())
        .map(|i| (gid[i].clone(), (!c.is_null(i)).then(|| c.value(i))))
        .collect()
}

fn bool_by_gid(b: &RecordBatch, col: &str) -> BTreeMap<String, Option<bool>> {
    let gid = str_col(b, "generation_id");
    let c = b.column_by_name(col).unwrap().as_boolean().clone();
    (0..b.num_rows())
        .map(|i| (gid[i].clone(), (!c.is_null(i)).then(|| c.value(i))))
        .collect()
}

fn close(a: Option<f64>, b: f64, tol: f64, what: &str) {
    let a = a.unwrap_or_else(|| panic!("{what}: null, expected {b}"));
    assert!((a - b).abs() <= tol, "{what}: {a} != {b}");
}

/// Kendall's tau-b and pairwise order accuracy by the definitions, pair by pair.
fn naive_tau_and_accuracy(p: &[f64], t: &[f64]) -> (Option<f64>, Option<f64>) {
    let (mut c, mut d, mut tx, mut ty, mut n0) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for i in 0..p.len() {
        for j in i + 1..p.len() {
            n0 += 1.0;
            let (dp, dt) = (p[i] - p[j], t[i] - t[j]);
            if dp == 0.0 {
                tx += 1.0;
            }
            if dt == 0.0 {
                ty += 1.0;
            }
            if dp != 0.0 && dt != 0.0 {
                if (dp > 0.0) == (dt > 0.0) {
                    c += 1.0
                } else {
                    d += 1.0
                }
            }
        }
    }
    let denom = ((n0 - tx) * (n0 - ty)).sqrt();
    (
        (denom > 0.0).then(|| (c - d) / denom),
        (c + d > 0.0).then(|| c / (c + d)),
    )
}

/// Three generations with hand-computed metrics (predictions from `affine_mean`):
/// a: targets 0.6, 0.3, -0.2, 0.1 vs predictions 0.3, 0.5, -0.1, -0.1 (a tie, one discordant
///    pair); b: one segment; c: constant predictions.
fn hand_rows() -> Vec<Row> {
    vec![
        row("a", 0, 0.6, &ids_for(0.3)),
        row("a", 1, 0.9, &ids_for(0.5)),
        row("a", 2, 0.7, &ids_for(-0.1)),
        row("a", 3, 0.8, &ids_for(-0.1)),
        row("b", 0, 0.4, &ids_for(0.1)),
        row("c", 0, 0.2, &ids_for(0.0)),
        row("c", 1, 0.5, &ids_for(0.0)),
        row("c", 2, 0.4, &ids_for(0.0)),
    ]
}

#[test]
fn generation_metrics_match_hand_computed_values() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &hand_rows());
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &test_model("affine_mean.onnx"),
        &out,
        &["--provider", "cpu"],
    );
    let g = read_generations(&out);
    assert_eq!(
        str_col(&g, "generation_id"),
        ["a", "b", "c"],
        "one row per generation, in order"
    );
    assert_eq!(i64_col(&g, "n_segments"), [4, 1, 3]);
    let tol = 1e-6; // predictions are float32
    let m = |c: &str| opt_by_gid(&g, c);
    close(m("mse")["a"], 0.045, tol, "mse a");
    close(m("mae")["a"], 0.2, tol, "mae a");
    close(m("bias")["a"], -0.05, tol, "bias a");
    close(
        m("pearson")["a"],
        0.22 / (0.27f64 * 0.34).sqrt(),
        tol,
        "pearson a",
    );
    // ranks 3, 4, 1.5, 1.5 against 4, 3, 1, 2
    close(m("spearman")["a"], 3.5 / 22.5f64.sqrt(), 1e-12, "spearman a");
    // C = 4, D = 1, one pair tied in prediction: (4 - 1) / sqrt(5 * 6)
    close(m("kendall_tau")["a"], 3.0 / 30f64.sqrt(), 1e-12, "kendall a");
    close(m("pairwise_order_accuracy")["a"], 0.8, 1e-12, "accuracy a");
    close(m("mse")["b"], 0.09, tol, "mse b");
    close(m("mse")["c"], (0.04 + 0.09 + 0.01) / 3.0, tol, "mse c");
    // Undefined is null: one segment (b), constant predictions (c).
    for col in ["pearson", "spearman", "kendall_tau", "pairwise_order_accuracy"] {
        assert_eq!(m(col)["b"], None, "{col} over one segment");
        assert_eq!(m(col)["c"], None, "{col} with constant predictions");
    }
    let top = bool_by_gid(&g, "top_segment_match");
    assert_eq!(
        top["a"],
        Some(false),
        "the top prediction (segment 1) is not the top target (0)"
    );
    assert_eq!(top["b"], None);
    assert_eq!(top["c"], Some(false), "a constant model singles out no segment");
    assert_eq!(i64_col(&g, "worst_segment_index"), [0, 0, 1]);
    assert_eq!(
        bool_by_gid(&g, "targets_sum_ok")
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [Some(true); 3]
    );
    close(m("final_cumulative_score")["a"], 0.8, 0.0, "final a");
    close(m("target_sum")["a"], 0.8, 1e-12, "target sum a");

    let s = summary(&out);
    let means = &s["generation_means"];
    assert_eq!(means["kendall_tau_defined"], 1);
    assert_eq!(means["top_segment_match_defined"], 2);
    close(
        means["kendall_tau"].as_f64(),
        3.0 / 30f64.sqrt(),
        1e-12,
        "mean kendall",
    );
    close(means["top_segment_match"].as_f64(), 0.0, 0.0, "mean top match");
    close(
        means["mse"].as_f64(),
        (0.045 + 0.09 + 0.14 / 3.0) / 3.0,
        tol,
        "mean mse",
    );
    assert_eq!(s["targets_sum_mismatches"], 0);
    // Overall rank metrics against the definitions, over all eight segments.
    let seg = read_segments(&out);
    let (p, t) = (f64_col(&seg, "predicted_score"), f64_col(&seg, "target_score"));
    let (tau, acc) = naive_tau_and_accuracy(&p, &t);
    close(s["kendall_tau"].as_f64(), tau.unwrap(), 1e-12, "overall kendall");
    close(
        s["pairwise_order_accuracy"].as_f64(),
        acc.unwrap(),
        1e-12,
        "overall accuracy",
    );
    let d = &s["mse_decomposition"];
    let (mse, b2, var) = (
        d["mse"].as_f64().unwrap(),
        d["bias_squared"].as_f64().unwrap(),
        d["residual_variance"].as_f64().unwrap(),
    );
    assert!((mse - (b2 + var)).abs() < 1e-9, "{mse} != {b2} + {var}");
}

#[test]
fn summary_metrics_agree_with_the_segments_they_describe() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("data");
    let o = segscore(&[
        "generate",
        "--output",
        input.to_str().unwrap(),
        "--segments",
        "20000",
        "--files",
        "3",
        "--shuffled",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = tmp.path().join("out");
    run_ok(&[&input], &demo_model(), &out, &["--provider", "cpu"]);
    let s = summary(&out);
    let seg = read_segments(&out);
    let n = seg.num_rows();
    // Histogram and calibration cover every segment once.
    let hist: u64 = s["residual_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(hist as usize, n);
    let cal = s["calibration"].as_array().unwrap();
    assert_eq!(cal.len(), 10);
    assert_eq!(
        cal.iter().map(|c| c["n"].as_u64().unwrap()).sum::<u64>() as usize,
        n
    );
    for w in cal.windows(2) {
        assert!(
            w[0]["max_predicted"].as_f64() <= w[1]["min_predicted"].as_f64(),
            "deciles overlap"
        );
    }
    // Loss concentration, recomputed.
    let mut loss = f64_col(&seg, "loss");
    loss.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = loss.iter().sum();
    for (key, frac) in [("loss_share_top_1pct", 0.01), ("loss_share_top_10pct", 0.1)] {
        let k = (frac * n as f64).ceil() as usize;
        let want = loss[..k].iter().sum::<f64>() / total;
        close(s[key].as_f64(), want, 1e-9, key);
    }
    // The MSE decomposition holds.
    let d = &s["mse_decomposition"];
    let (mse, b2, var) = (
        d["mse"].as_f64().unwrap(),
        d["bias_squared"].as_f64().unwrap(),
        d["residual_variance"].as_f64().unwrap(),
    );
    assert!((mse - (b2 + var)).abs() < 1e-9);
    // Per-generation Kendall tau against the definition, for every generation.
    let g = read_generations(&out);
    assert_eq!(g.num_rows() as u64, s["n_generations"].as_u64().unwrap());
    let gid = str_col(&seg, "generation_id");
    let (p, t) = (f64_col(&seg, "predicted_score"), f64_col(&seg, "target_score"));
    let mut groups: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for i in 0..n {
        let e = groups.entry(gid[i].as_str()).or_default();
        e.0.push(p[i]);
        e.1.push(t[i]);
    }
    let tau = opt_by_gid(&g, "kendall_tau");
    let acc = opt_by_gid(&g, "pairwise_order_accuracy");
    for (id, (p, t)) in &groups {
        let (want_tau, want_acc) = naive_tau_and_accuracy(p, t);
        match (tau[*id], want_tau) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{id}: {a} != {b}"),
            (a, b) => assert_eq!(a, b, "{id}"),
        }
        assert_eq!(
            acc[*id].map(|v| (v * 1e12).round()),
            want_acc.map(|v| (v * 1e12).round())
        );
    }

    // The SQL functions give the values in the output files.
    let csv = tmp.path().join("sql.csv");
    let o = segscore(&[
        "sql",
        "--table",
        out.to_str().unwrap(),
        "SELECT generation_id, pearson(predicted_score, target_score) AS pearson, \
         spearman(predicted_score, target_score) AS spearman, kendall_tau(predicted_score, target_score) AS kendall_tau, \
         pairwise_order_accuracy(predicted_score, target_score) AS pairwise_order_accuracy \
         FROM segments GROUP BY generation_id ORDER BY generation_id",
        "--format",
        "csv",
        "--to",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "generation_id",
            "pearson",
            "spearman",
            "kendall_tau",
            "pairwise_order_accuracy"
        ]
    );
    let mut rows = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        for (k, col) in header.iter().enumerate().skip(1) {
            let from_sql = (!f[k].is_empty()).then(|| f[k].parse::<f64>().unwrap());
            let from_file = opt_by_gid(&g, col)[f[0]];
            match (from_sql, from_file) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{} {col}: {a} != {b}", f[0]),
                (a, b) => assert_eq!(a, b, "{} {col}", f[0]),
            }
        }
        rows += 1;
    }
    assert_eq!(rows, g.num_rows());
}

#[test]
fn sql_command_reads_parquet_and_outputs_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &hand_rows());
    let table = format!("g={}", input.display());
    let q = "SELECT generation_id, COUNT(*) AS n, MAX(cumulative_score) AS top FROM g GROUP BY generation_id ORDER BY generation_id";
    let o = segscore(&["sql", "--table", &table, q, "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["generation_id"], "a");
    assert_eq!(lines[0]["n"], 4);
    assert_eq!(lines[0]["top"], 0.9);
    // A null is written as null, not left out (a reader would lose the column).
    let o = segscore(&[
        "sql",
        "--format",
        "json",
        "SELECT 1 AS x, CAST(NULL AS DOUBLE) AS nothing",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{\"x\":1,\"nothing\":null}\n");
    // Markdown: every row, `|` escaped, a line break as <br>, a null empty; to stdout or a .md
    // file.
    let want = "| generation_id | n | top |\n| --- | --- | --- |\n| a | 4 | 0.9 |\n| b | 1 | 0.4 |\n| c | 3 | 0.5 |\n";
    let o = segscore(&["sql", "--table", &table, q, "--format", "markdown"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), want);
    let md = tmp.path().join("r.md");
    let o = segscore(&["sql", "--table", &table, q, "--to", md.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&md).unwrap(), want);
    let o = segscore(&[
        "sql",
        "--format",
        "md",
        "SELECT 'a|b' AS \"x|y\", 'l1\nl2' AS t, CAST(NULL AS INT) AS z",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "| x\\|y | t | z |\n| --- | --- | --- |\n| a\\|b | l1<br>l2 |  |\n"
    );
    let o = segscore(&["sql", "--table", &table, q]);
    assert!(o.status.success());
    let shown = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(shown.contains("| a "), "a text table");
    assert!(!shown.contains("shown"), "{shown}");
    // A table shows the first --max-rows rows (40 unless given; 0 for all) and counts the
    // rest without keeping them.
    let o = segscore(&["sql", "--table", &table, q, "--max-rows", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "+---------------+---+-----+\n\
         | generation_id | n | top |\n\
         +---------------+---+-----+\n\
         | a             | 4 | 0.9 |\n\
         | b             | 1 | 0.4 |\n\
         +---------------+---+-----+\n\
         3 rows, the first 2 shown (--max-rows N shows N, 0 all; --format csv or json streams every row)\n"
    );
    let o = segscore(&["sql", "--table", &table, q, "--max-rows", "0"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("| c "));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("shown"));
    // A cell longer than --max-width characters (60 unless given; 0 for all) is cut, ending
    // in `…`, and the table says so; CSV has every cell whole.
    let long = "SELECT 'g' AS g, range(0, 30) AS ids, 'αβγδεζηθ' AS t";
    let o = segscore(&["sql", long, "--max-width", "12"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "+---+--------------+----------+\n\
         | g | ids          | t        |\n\
         +---+--------------+----------+\n\
         | g | [0, 1, 2, 3… | αβγδεζηθ |\n\
         +---+--------------+----------+\n\
         cells longer than 12 characters are cut, ending in … (--max-width N shows N, 0 whole)\n"
    );
    let whole: String = format!(
        "[{}]",
        (0..30).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    );
    for args in [&["sql", long][..], &["sql", long, "--max-width", "0"]] {
        let o = segscore(args);
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(out.contains(&whole), args.len() == 4, "{out}");
        assert_eq!(out.contains("cut"), args.len() == 2, "{out}");
    }
    let o = segscore(&["sql", long, "--max-width", "12", "--format", "csv"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("g,ids,t\ng,\"{whole}\",αβγδεζηθ\n")
    );
    let pq = tmp.path().join("res.parquet");
    let to_parquet = |to: &Path| {
        let to = to.to_str().unwrap();
        segscore(&["sql", "-t", &table, q, "--format", "parquet", "--to", to])
    };
    let o = to_parquet(&pq);
    assert!(o.status.success(), "{}", stderr(&o));
    let b = read_parquet(&pq);
    assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    // Without --format, --to's extension says the format; a name that says none is refused.
    let to = |name: &str| {
        let path = tmp.path().join(name);
        (
            segscore(&["sql", "-t", &table, q, "--to", path.to_str().unwrap()]),
            path,
        )
    };
    let (o, path) = to("res2.PARQUET");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_parquet(&path).iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    let (o, path) = to("res.csv");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "generation_id,n,top\na,4,0.9\nb,1,0.4\nc,3,0.5\n"
    );
    // No rows: CSV is its header, a table its header too (they were an empty file and `++`).
    let none = format!("{q} LIMIT 0");
    let path = tmp.path().join("none.csv");
    let o = segscore(&["sql", "-t", &table, &none, "--to", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "generation_id,n,top\n");
    let o = segscore(&["sql", "-t", &table, &none]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "+---------------+---+-----+\n| generation_id | n | top |\n+---------------+---+-----+\n+---------------+---+-----+\n"
    );
    let (o, path) = to("res.ndjson");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    let (o, path) = to("res.txt");
    assert_fails(&o, 2, "res.txt: give --format csv, json, parquet or markdown");
    assert!(!path.exists());
    // A file in a folder that is not there, or a folder, is refused by its name before the
    // query runs (not by the temporary name it would have been written under).
    let (o, path) = to("nofolder/res.csv");
    assert_fails(&o, 2, "nofolder/res.csv: the folder ");
    assert!(stderr(&o).contains("nofolder does not exist"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("inprogress"), "{}", stderr(&o));
    assert!(!path.parent().unwrap().exists());
    std::fs::create_dir(tmp.path().join("dir.csv")).unwrap();
    let (o, path) = to("dir.csv");
    assert_fails(&o, 2, "dir.csv: is a folder; give a file name");
    assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);
    let (o, _) = to("res.csv/res.csv");
    assert_fails(&o, 2, "res.csv is not a folder");
    // reward_model(...) is there when a model is given.
    let o = segscore(&[
        "sql",
        "-t",
        &table,
        "--model",
        test_model("affine_mean.onnx").to_str().unwrap(),
        "--provider",
        "cpu",
        "SELECT segment_index, reward_model(input_ids) AS p FROM g WHERE generation_id = 'a' ORDER BY segment_index",
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let preds: Vec<f64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    for (got, want) in preds.iter().zip([0.3, 0.5, -0.1, -0.1]) {
        assert!((got - want).abs() < 1e-6, "{got} != {want}");
    }
    // Errors: a bad query is a usage error; parquet needs --to; a failed query leaves no file.
    let o = segscore(&["sql", "-t", &table, "SELECT nope FROM g"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope"));
    let o = segscore(&["sql", "-t", &table, q, "--format", "parquet"]);
    assert_eq!(o.status.code(), Some(2));
    let o = segscore(&[
        "sql",
        "-t",
        &table,
        "SELECT nope FROM g",
        "--format",
        "csv",
        "--to",
        "x.csv",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!Path::new("x.csv").exists());
    // --to over the query's own input: refused, the input left as it was.
    let before = std::fs::read(&input).unwrap();
    let o = to_parquet(&input);
    assert_fails(
        &o,
        2,
        &format!("--to {0}: is the input file {0}", input.display()),
    );
    assert_eq!(std::fs::read(&input).unwrap(), before);
    // A name given twice (names fold to lower case), a name DataFusion would read as a schema.
    let twice = format!("G={}", input.display());
    let o = segscore(&["sql", "-t", &table, "-t", &twice, q]);
    assert_fails(&o, 2, "--table G: a table of that name is given twice");
    let dotted = format!("a.b={}", input.display());
    let o = segscore(&["sql", "-t", &dotted, "SELECT 1"]);
    assert_fails(&o, 2, "a table name cannot hold `.`");
    // A bare output directory whose path holds `=` (a hive-style folder) is a path, not NAME=PATH.
    let out = tmp.path().join("day=1").join("out");
    run_ok(
        &[&input],
        &test_model("affine_mean.onnx"),
        &out,
        &["--provider", "cpu"],
    );
    assert_eq!(
        sql_csv(out.to_str().unwrap(), "SELECT count(*) AS n FROM segments"),
        format!("n\n{}\n", hand_rows().len())
    );
}

#[test]
fn sql_reads_parquet_files_named_in_the_query() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let rows = hand_rows();
    write_rows(&data.join("one.parquet"), &rows[..5]);
    write_rows(&data.join("two.parquet"), &rows[5..]);
    // Run where the files are, so that relative paths are the users' own.
    let sql = |args: &[&str]| segscore_in(tmp.path(), &[&["sql", "--format", "csv"], args].concat());
    let ok = |args: &[&str]| {
        let o = sql(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let log = stderr(&o);
        (String::from_utf8(o.stdout).unwrap(), log)
    };
    let count = "SELECT generation_id, count(*) AS n FROM {} GROUP BY 1 ORDER BY 1";
    let all = "generation_id,n\na,4\nb,1\nc,3\n";
    // A file, a glob, a folder: in single or double quotes, relative or absolute.
    for from in [
        "'data/*.parquet'".to_string(),
        "\"data\"".to_string(),
        "'data/'".to_string(),
        format!("'{}/*'", data.display()),
    ] {
        assert_eq!(ok(&[&count.replace("{}", &from)]).0, all, "{from}");
    }
    assert_eq!(
        ok(&[&count.replace("{}", "'data/two.parquet'")]).0,
        "generation_id,n\nc,3\n"
    );
    // DuckDB's read_parquet('path') and parquet_scan('path') read the same way, a list of
    // paths and DuckDB's options too (`tests/it/writers.rs` has hive_partitioning = false).
    for from in [
        "read_parquet('data/*.parquet')",
        "PARQUET_SCAN('data') AS t",
        "read_parquet(['data/one.parquet', 'data/two.parquet'])",
        "read_parquet('data', hive_partitioning = true, union_by_name => false)",
    ] {
        assert_eq!(ok(&[&count.replace("{}", from)]).0, all, "{from}");
    }
    assert_fails(
        &sql(&[&count.replace("{}", "read_parquet(42)")]),
        2,
        "read_parquet(...): give it a path in quotes (a file, folder or glob) or a list of them",
    );
    // Two files joined; the same file twice is one table.
    let join = "SELECT count(*) AS n FROM 'data/one.parquet' x JOIN 'data/one.parquet' y USING (generation_id, segment_index) JOIN 'data/two.parquet' z ON z.generation_id < x.generation_id";
    assert_eq!(ok(&[join]).0, "n\n0\n");
    // A window over a file named in the query: read as sorted, as a --table's would be, and
    // the same values.
    let lag = "SELECT generation_id, segment_index, round(cumulative_score - lag(cumulative_score, 1, 0.0) OVER (PARTITION BY generation_id ORDER BY segment_index), 6) AS d FROM 'data/one.parquet' ORDER BY 1, 2";
    let (named, log) = ok(&[lag, "--to", "named.csv"]);
    assert_eq!(named, "");
    assert!(log.contains("it is read as sorted"), "{log}");
    assert!(log.contains("table=data/one.parquet"), "{log}");
    let named = std::fs::read_to_string(tmp.path().join("named.csv")).unwrap();
    assert_eq!(
        named,
        "generation_id,segment_index,d\na,0,0.6\na,1,0.3\na,2,-0.2\na,3,0.1\nb,0,0.4\n"
    );
    let t = format!("t={}", data.join("one.parquet").display());
    assert_eq!(ok(&["-t", &t, &lag.replace("'data/one.parquet'", "t")]).0, named);
    // A --table of the same name is that table, not the file.
    let shadow = format!("data={}", data.join("two.parquet").display());
    assert_eq!(
        ok(&["-t", &shadow, &count.replace("{}", "data")]).0,
        "generation_id,n\nc,3\n"
    );
    // What is not there is named; a word that is no file is a table, and the error says how
    // to give one; a segscore output is read by --table.
    assert_fails(
        &sql(&["SELECT * FROM 'data/three.parquet'"]),
        1,
        "data/three.parquet: no such file or directory",
    );
    assert_fails(
        &sql(&["SELECT * FROM 'nodata/*.parquet'"]),
        1,
        "nodata/*.parquet: no Parquet files found",
    );
    let o = sql(&["SELECT * FROM nodata"]);
    assert_fails(&o, 2, "table 'datafusion.public.nodata' not found (give tables with --table NAME=PATH, or name Parquet files in quotes: FROM 'data/*.parquet')");
    let out = tmp.path().join("out");
    run_ok(
        &[&data],
        &test_model("affine_mean.onnx"),
        &out,
        &["--provider", "cpu"],
    );
    assert_fails(
        &sql(&["SELECT * FROM 'out'"]),
        2,
        "table 'out' in the query: is a segscore output directory; give it as --table out",
    );
    assert_eq!(ok(&["SELECT count(*) AS n FROM 'out/segments'"]).0, "n\n8\n");
    // A folder here named like a table an output directory registers is that table when the
    // output is given, and the folder when nothing else has the name.
    std::fs::create_dir(tmp.path().join("segments")).unwrap();
    write_rows(&tmp.path().join("segments/one.parquet"), &rows[..2]);
    let n = "SELECT count(*) AS n FROM segments";
    assert_eq!(ok(&["-t", "out", n]).0, "n\n8\n");
    assert_eq!(ok(&[n]).0, "n\n2\n");
    // --to over a file the query reads is refused, the file left as it was.
    let before = std::fs::read(data.join("two.parquet")).unwrap();
    let o = segscore_in(
        tmp.path(),
        &[
            "sql",
            "SELECT * FROM 'data/*.parquet'",
            "--to",
            "data/two.parquet",
        ],
    );
    assert_fails(&o, 2, "--to data/two.parquet: is the input file");
    assert_eq!(std::fs::read(data.join("two.parquet")).unwrap(), before);
}

/// CSV (`.csv`, `.tsv`) and JSON (one object per line) files named in the query or by
/// `--table`, as DuckDB reads them: joined with Parquet, through `read_csv`/`read_json` too; a
/// file the reader cannot take is named with the reader's line.
#[test]
fn sql_reads_csv_and_json_files_named_in_the_query() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("data")).unwrap();
    write_rows(&tmp.path().join("data/one.parquet"), &hand_rows());
    let write = |name: &str, text: &str| std::fs::write(tmp.path().join(name), text).unwrap();
    write("labels.csv", "generation_id,label\na,good\nc,bad\n");
    write("weights.tsv", "generation_id\tweight\na\t0.5\nb\t2\n");
    write(
        "notes.jsonl",
        "{\"generation_id\":\"b\",\"note\":\"short\"}\n{\"generation_id\":\"c\",\"note\":null}\n",
    );
    let sql = |args: &[&str]| segscore_in(tmp.path(), &[&["sql", "--format", "csv"], args].concat());
    let ok = |args: &[&str]| {
        let o = sql(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let labels =
        "SELECT l.label, count(*) AS n FROM 'data/' d JOIN {} l USING (generation_id) GROUP BY 1 ORDER BY 1";
    for from in [
        "'labels.csv'",
        "read_csv('labels.csv')",
        "READ_CSV_AUTO('labels.csv')",
    ] {
        assert_eq!(
            ok(&[&labels.replace("{}", from)]),
            "label,n\nbad,3\ngood,4\n",
            "{from}"
        );
    }
    assert_eq!(
        ok(&["-t", "lab=labels.csv", &labels.replace("{}", "lab")]),
        "label,n\nbad,3\ngood,4\n"
    );
    assert_eq!(
        ok(&["SELECT generation_id, weight * 2 AS w FROM 'weights.tsv' ORDER BY 1"]),
        "generation_id,w\na,1.0\nb,4.0\n"
    );
    for from in ["'notes.jsonl'", "read_json('notes.jsonl')"] {
        let q = format!("SELECT generation_id, coalesce(note, '-') AS note FROM {from} ORDER BY 1");
        assert_eq!(ok(&[&q]), "generation_id,note\nb,short\nc,-\n", "{from}");
    }
    // What the readers cannot take names the file; JSON is one object per line.
    write("ragged.csv", "a,b\n1,2\n3\n");
    let o = sql(&["SELECT * FROM 'ragged.csv'"]);
    assert_fails(&o, 1, "found 1 records at line 3 (reading the file: ");
    assert!(stderr(&o).contains("ragged.csv"), "{}", stderr(&o));
    // A `.csv` separated by `;` (a spreadsheet's export), `|` or tabs, found from its header.
    write(
        "semi.csv",
        "\u{feff}generation_id;label;note\na;good;\"x;y\"\nc;bad;1,5\n",
    );
    write("pipe.csv", "generation_id|label\na|good\n");
    write("pipe2.csv", "generation_id|label\nb|fine\n");
    assert_eq!(
        ok(&["SELECT * FROM 'semi.csv' ORDER BY 1"]),
        "generation_id,label,note\na,good,x;y\nc,bad,\"1,5\"\n"
    );
    assert_eq!(ok(&["SELECT label FROM 'pipe.csv'"]), "label\ngood\n");
    // DuckDB's read_csv options and lists; read_csv reads CSV whatever the name says.
    write("plain.txt", "a|'x|y'\nc|z\n");
    assert_eq!(
        ok(&["SELECT * FROM read_csv('plain.txt', delim = '|', header = false, quote = '''') ORDER BY 1"]),
        "column0,column1\na,x|y\nc,z\n"
    );
    assert_eq!(
        ok(&["SELECT label FROM read_csv(['pipe.csv', 'pipe*.csv'], sep => '|', auto_detect = true) ORDER BY 1"]),
        // A file that two paths name is read once.
        "label\nfine\ngood\n"
    );
    // filename = true: each row's file, the files' columns united by name.
    let o = ok(&[
        "SELECT label, filename FROM read_csv(['pipe.csv', 'pipe2.csv'], sep = '|', filename = true) ORDER BY 1",
    ]);
    assert_eq!(
        o,
        format!(
            "label,filename\nfine,{}\ngood,{}\n",
            tmp.path().join("pipe2.csv").display(),
            tmp.path().join("pipe.csv").display()
        )
    );
    assert_fails(
        &sql(&["SELECT * FROM read_csv('labels.csv', columns = {'a': 'INT'})"]),
        2,
        "query: read_csv(...): option columns is not taken here; read_csv takes delim (sep), header, quote, escape, nullstr, auto_detect, filename",
    );
    assert_fails(
        &sql(&["SELECT * FROM read_parquet(['data/one.parquet', 'labels.csv'])"]),
        2,
        "data/one.parquet and labels.csv are files of different formats",
    );
    // JSON as an array of objects (`json.dump`, pandas' `orient="records"`), beside objects
    // one per line; the columns in the order the rows first give them, as DuckDB has them.
    write(
        "array.json",
        "\u{feff}[\n  {\"generation_id\": \"a\", \"score\": 1, \"tags\": [\"x\"]},\n  {\"generation_id\": \"c\", \"score\": 2.5, \"extra\": true}\n]\n",
    );
    assert_eq!(
        ok(&["SELECT * FROM 'array.json' ORDER BY 1"]),
        "generation_id,score,tags,extra\na,1.0,[x],\nc,2.5,,true\n"
    );
    write("order.jsonl", "{\"z\": 1, \"a\": 2}\n");
    assert_eq!(ok(&["SELECT * FROM 'order.jsonl'"]), "z,a\n1,2\n");
    // Objects one per line after a byte order mark (Windows PowerShell's UTF-8).
    write("marked.jsonl", "\u{feff}{\"z\": 1}\n{\"z\": 2}\n");
    assert_eq!(ok(&["SELECT sum(z) AS z FROM 'marked.jsonl'"]), "z\n3\n");
    write(
        "lines.json",
        "{\"generation_id\": \"b\"}\n{\"generation_id\": \"c\"}\n",
    );
    assert_eq!(
        ok(&["SELECT generation_id, count(*) AS n FROM '*.json' GROUP BY 1 ORDER BY 1"]),
        "generation_id,n\na,1\nb,1\nc,2\n"
    );
    assert_eq!(
        ok(&["SELECT count(*) AS n FROM read_json('array.json')"]),
        "n\n2\n"
    );
    // A key first seen past the first 1,000 rows is a column (it was dropped without a word).
    let late: String = (0..1500).map(|i| format!("{{\"a\": {i}}}\n")).collect();
    write("late.jsonl", &format!("{late}{{\"a\": 1500, \"late\": \"x\"}}\n"));
    assert_eq!(
        ok(&["SELECT count(*) AS n, max(late) AS late FROM 'late.jsonl'"]),
        "n,late\n1501,x\n"
    );
    // R's write.csv writes NA for a missing value: with DuckDB's nullstr it is null (an empty
    // field too), and the column a number's; without, the column is text.
    write("r.csv", "id,score,name\n1,0.5,a\n2,NA,b\n3,,NA\n4,n/a,c.d\n");
    assert_eq!(
        ok(&[
            "SELECT count(score) AS n, sum(score) AS s, arrow_typeof(score) AS t, count(name) AS names \
              FROM read_csv('r.csv', nullstr = ['NA', 'n/a']) GROUP BY t"
        ]),
        "n,s,t,names\n1,0.5,Float64,3\n"
    );
    assert_eq!(
        ok(&["SELECT count(name) AS names, arrow_typeof(score) AS t FROM read_csv('r.csv', \"null\" = 'c.d') GROUP BY t"]),
        "names,t\n3,Utf8\n"
    );
    assert_eq!(
        ok(&["SELECT arrow_typeof(score) AS t, count(score) AS n FROM 'r.csv' GROUP BY t"]),
        "t,n\nUtf8,3\n"
    );
    // A field of text in some rows and numbers or booleans in others is a text column, in an
    // NDJSON file (a nested one too) or an array ("expected string got 1" before).
    write(
        "mixed.jsonl",
        "{\"a\": 1, \"m\": {\"k\": 2}}\n{\"a\": \"x\", \"m\": {\"k\": \"y\"}}\n{\"a\": true, \"m\": null}\n",
    );
    write("mixed.json", "[{\"a\": 1.5}, {\"a\": \"x\"}]");
    assert_eq!(
        ok(&["SELECT a, m['k'] AS k, arrow_typeof(a) AS t FROM 'mixed.jsonl'"]),
        "a,k,t\n1,2,Utf8\nx,y,Utf8\ntrue,,Utf8\n"
    );
    assert_eq!(ok(&["SELECT a FROM 'mixed.json'"]), "a\n1.5\nx\n");
    // A CSV column's type from every row: whole numbers then a `1.5` are DOUBLE, then an `n/a`
    // text (a value past the first 1,000 rows that did not fit failed the query).
    let rows: String = (0..1500).map(|i| format!("{i},{i},{i}\n")).collect();
    write("late.csv", &format!("id,x,s\n{rows}1500,1.5,n/a\n1501,,\n"));
    assert_eq!(
        ok(&[
            "SELECT count(*) AS n, sum(x) AS x, arrow_typeof(x) AS t, max(s) AS s FROM 'late.csv' GROUP BY t"
        ]),
        "n,x,t,s\n1502,1124251.5,Float64,n/a\n"
    );
    write("numbers.json", "[{\"a\": 1}, 2]");
    assert_fails(
        &sql(&["SELECT * FROM 'numbers.json'"]),
        1,
        "numbers.json: element 2 of the array is a number, not an object: each row of a JSON table is an object",
    );
    write("cut.json", "[{\"a\": 1},");
    assert_fails(
        &sql(&["SELECT * FROM 'cut.json'"]),
        1,
        "cut.json: not JSON: EOF while parsing",
    );
    // A row of more fields than the header's, past the first 1,000.
    let rows: String = (0..1500).map(|i| format!("{i}\n")).collect();
    write("ragged.csv", &format!("a\n{rows}1,2\n"));
    let o = sql(&["SELECT sum(a) FROM 'ragged.csv'"]);
    assert_fails(&o, 1, "Expected 1 records, found 2 records at line 1502");
    assert!(
        stderr(&o).contains("(reading the file: ") && stderr(&o).contains("ragged.csv"),
        "{}",
        stderr(&o)
    );
    assert_fails(
        &sql(&["SELECT * FROM 'none/*.csv'"]),
        1,
        "none/*.csv: no files match",
    );
    // --to over a text file the query reads is refused, the file left as it was.
    let o = sql(&["SELECT * FROM 'labels.csv'", "--to", "labels.csv"]);
    assert_fails(&o, 2, "--to labels.csv: is the input file");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("labels.csv")).unwrap(),
        "generation_id,label\na,good\nc,bad\n"
    );
}

/// Compressed CSV and JSON files (`.csv.gz`, `.jsonl.gz`, `.json.gz`), as DuckDB reads them:
/// the separator and the JSON layout found in the decompressed text; a table whose files are
/// compressed unlike each other, or a file that is not what its name says, is refused naming
/// it. The build without the `compression` feature refuses them, saying which build reads them.
#[test]
fn compressed_csv_and_json_files_are_read_and_written_as_their_names_say() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let gz = |name: &str, text: &str| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        std::fs::write(tmp.path().join(name), e.finish().unwrap()).unwrap();
    };
    gz("labels.csv.gz", "generation_id;label\na;good\nc;bad\n");
    gz("notes.jsonl.gz", "{\"generation_id\": \"b\", \"n\": 1}\n");
    gz("array.json.gz", "[{\"generation_id\": \"c\", \"n\": 2}]");
    std::fs::write(
        tmp.path().join("plain.jsonl"),
        "{\"generation_id\": \"d\", \"n\": 3}\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("fake.csv.gz"), "a,b\n1,2\n").unwrap();
    let sql = |q: &str| segscore_in(tmp.path(), &["sql", "--format", "csv", q]);
    let ok = |q: &str| {
        let o = sql(q);
        assert!(o.status.success(), "{q}: {}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let write = |args: &[&str]| segscore_in(tmp.path(), &[&["sql"], args].concat());
    if !cfg!(feature = "compression") {
        assert_fails(
            &sql("SELECT * FROM 'labels.csv.gz'"),
            2,
            "labels.csv.gz: a compressed file; this build reads none: a build with the `compression` feature (the default) does",
        );
        assert_fails(
            &write(&["SELECT 1 AS x", "--to", "x.csv.gz"]),
            2,
            "x.csv.gz: a compressed file (.gz); this build writes none: a build with the `compression` feature (the default) does",
        );
        assert!(!tmp.path().join("x.csv.gz").exists());
        return;
    }
    // Written as the name says (gzip, zstd, bzip2, xz), and read back the same way; DuckDB's
    // COMPRESSION beside the name must say the same; a failed query leaves no file.
    let labels = "generation_id,label\na,good\nc,bad\n";
    for ending in [".gz", ".zst", ".bz2", ".xz"] {
        let out = format!("out.csv{ending}");
        let o = write(&["SELECT * FROM 'labels.csv.gz' ORDER BY 1", "--to", &out]);
        assert!(o.status.success(), "{out}: {}", stderr(&o));
        assert_eq!(ok(&format!("SELECT * FROM '{out}'")), labels, "{out}");
    }
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(tmp.path().join("out.csv.gz")).unwrap()),
        &mut text,
    )
    .unwrap();
    assert_eq!(text, labels);
    let o = write(&["COPY (FROM 'notes.jsonl.gz') TO 'copy.jsonl.zst' (FORMAT json, COMPRESSION zstd)"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ok("SELECT n FROM 'copy.jsonl.zst'"), "n\n1\n");
    for (args, why) in [
        (
            &["COPY 'labels.csv.gz' TO 'l.csv' (COMPRESSION gzip)"][..],
            "COPY ... TO l.csv: COMPRESSION gzip: csv is compressed as the file's name says",
        ),
        (
            &["SELECT 1 AS x", "--to", "x.parquet.gz"],
            "--to x.parquet.gz: a Parquet file is not .gz-compressed as a whole: its codec is inside it",
        ),
        (
            &["SELECT 1 AS x", "--to", "x.md.zst"],
            "--to x.md.zst: a Markdown file is written uncompressed, not .zst",
        ),
    ] {
        assert_fails(&write(args), 2, why);
    }
    let o = write(&[
        "SELECT CAST(label AS INT) FROM 'labels.csv.gz'",
        "--to",
        "bad.csv.gz",
    ]);
    assert_fails(&o, 1, "Cannot cast string 'good' to value of Int32 type");
    assert!(!tmp.path().join("bad.csv.gz").exists());
    assert_eq!(
        ok("SELECT * FROM 'labels.csv.gz' ORDER BY 1"),
        "generation_id,label\na,good\nc,bad\n"
    );
    assert_eq!(
        ok("SELECT * FROM read_json(['notes.jsonl.gz', 'array.json.gz']) ORDER BY 1"),
        "generation_id,n\nb,1\nc,2\n"
    );
    assert_eq!(
        ok("SELECT n FROM read_json('notes.jsonl.gz', format = 'newline_delimited')"),
        "n\n1\n"
    );
    assert_fails(
        &sql("SELECT * FROM read_json(['notes.jsonl.gz', 'plain.jsonl'])"),
        2,
        "plain.jsonl: the files of one table are compressed alike, or none is",
    );
    let o = sql("SELECT * FROM 'fake.csv.gz'");
    assert_fails(&o, 1, "fake.csv.gz: cannot be decompressed as its name says");
}

/// DuckDB's aggregates that DataFusion lacks (`arg_max`, `arg_min`, `max_by`, `min_by`,
/// `count_if`; before: "Invalid function"), computed as DuckDB defines them (rows where the
/// argument or the value is null left out; `count_if` NULL where its argument is NULL in every
/// row, as DuckDB's sum of booleans is), with FILTER, as a window's aggregate and named by
/// the call; DuckDB's names for DataFusion's functions (`list`, `first`, `strlen`, ...); a call
/// with another number of arguments says how many it takes.
#[test]
fn sql_takes_duckdb_aggregates_and_function_names() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = "(VALUES (1, 0.5, 'a'), (1, NULL, 'b'), (1, 0.9, NULL), (1, 0.2, 'z'), (2, NULL, 'd'), (3, 0.3, 'f')) AS t(g, c, name)";
    let sql = |q: &str| segscore_in(tmp.path(), &["sql", "--format", "csv", q]);
    for (query, want) in [
        (
            format!("SELECT g, arg_max(name, c), arg_min(name, c), max_by(name, c), min_by(name, c), count_if(c > 0.3) AS n FROM {rows} GROUP BY ALL ORDER BY ALL"),
            "g,\"arg_max(name, c)\",\"arg_min(name, c)\",\"max_by(name, c)\",\"min_by(name, c)\",n\n\
             1,a,z,a,z,2\n2,,,,,\n3,f,f,f,f,0\n",
        ),
        (
            format!("SELECT arg_max(name, c) FILTER (WHERE g <> 1) AS am, upper(arg_min(name, c)) AS up, count_if(true) AS n, \
                     list(g ORDER BY g DESC) AS l, first(name ORDER BY g DESC, name) AS f, approx_count_distinct(g) AS d, \
                     strlen('héllo') AS b, regexp_matches('abc', 'b') AS r, prefix('abc', 'ab') AS p, suffix('abc', 'b') AS s, \
                     list_value(1, 2) AS v, arg_max('{{1}}' || name, c) AS braces FROM {rows}"),
            "am,up,n,l,f,d,b,r,p,s,v,braces\nf,Z,6,\"[3, 2, 1, 1, 1, 1]\",f,3,6,true,true,false,\"[1, 2]\",{1}a\n",
        ),
        (
            format!("SELECT g, count_if(c > 0.3) OVER (PARTITION BY g) AS w FROM {rows} ORDER BY ALL"),
            "g,w\n1,2\n1,2\n1,2\n1,2\n2,\n3,0\n",
        ),
        // arg_max over a whole partition: the partition's, rows with a NULL left out.
        (
            format!("SELECT g, name, arg_max(name, c) OVER (PARTITION BY g) AS m, min_by(name, c) OVER () AS n \
                     FROM {rows} ORDER BY g, name"),
            "g,name,m,n\n1,a,a,z\n1,b,a,z\n1,z,a,z\n1,,a,z\n2,d,,z\n3,f,f,z\n",
        ),
        // DuckDB's sum of a condition (DataFusion: "sum(Boolean)" refused).
        (
            format!("SELECT g, sum(c > 0.3) AS s, sum((NOT (c > 0.3))) AS ns, sum(name IN ('a', 'd')) AS i FROM {rows} GROUP BY g ORDER BY g"),
            "g,s,ns,i\n1,2,1,1\n2,,,1\n3,0,1,0\n",
        ),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), &query), want, "{query}");
    }
    let o = sql("SELECT arg_max(g) FROM (VALUES (1)) AS t(g)");
    assert_fails(&o, 2, "(arg_max takes 2 arguments here)");
    // A column of booleans, which no form tells: DataFusion's refusal says what to write.
    let o = sql("SELECT sum(b) FROM (VALUES (true)) AS t(b)");
    assert_fails(
        &o,
        2,
        "(a column of booleans: count_if(x), or sum(x::BIGINT) and avg(x::DOUBLE))",
    );
    // SIMILAR TO matches the whole text with a regular expression, as in DuckDB (DataFusion
    // matched a part: 'abc' SIMILAR TO 'b' was true); an ESCAPE is refused.
    let o = sql(&format!(
        "SELECT name, name SIMILAR TO '[a-f]' AS one, name NOT SIMILAR TO 'z|b.*' AS other FROM {rows} ORDER BY g, name"
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "name,one,other\na,true,true\nb,true,false\nz,false,false\n,,\nd,true,true\nf,true,true\n"
    );
    let o = sql("SELECT 'abc' SIMILAR TO 'b' AS part, 'a%' SIMILAR TO 'a%' AS percent");
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "part,percent\nfalse,true\n");
    assert_fails(
        &sql("SELECT 'a' SIMILAR TO 'a' ESCAPE '#'"),
        2,
        "ESCAPE is not taken",
    );
    // NULLs sort last, ascending or descending, as in DuckDB (DataFusion and PostgreSQL put
    // them first in DESC: a top-k by score began with the rows without one); a script may SET
    // PostgreSQL's order back.
    let order = "SELECT s, rank() OVER (ORDER BY s DESC) AS r FROM (VALUES ('a'), (NULL), ('b')) AS t(s) ORDER BY s DESC";
    assert_eq!(sql_csv_in(tmp.path(), order), "s,r\nb,1\na,2\n,3\n");
    assert_eq!(
        sql_csv_in(
            tmp.path(),
            &format!("SET datafusion.sql_parser.default_null_ordering = 'nulls_max'; {order}")
        ),
        "s,r\n,1\nb,2\na,3\n"
    );
    // `^` is a power at DuckDB's precedence (DataFusion: a bitwise XOR below `+`, so 2 ^ 3 was
    // 1), a DOUBLE as in DuckDB; an unnamed column keeps its text; `xor` is the bitwise XOR.
    let powers =
        "SELECT 2 ^ 3 AS p, 2 ^ 3 ^ 2 AS pp, 10 - 2 ^ 2 * 2 AS m, xor(5, 3) AS x, avg((p - t) ^ 2) AS mse \
                  FROM (VALUES (1.0, 0.5), (2.0, 1.0)) AS v(p, t)";
    assert_eq!(
        sql_csv_in(tmp.path(), powers),
        "p,pp,m,x,mse\n8.0,64.0,2.0,6,0.625\n"
    );
    assert_eq!(
        sql_csv_in(tmp.path(), "SELECT x ^ 2, -x ^ 2 AS n FROM (VALUES (3)) AS v(x)"),
        "x ^ 2,n\n9.0,9.0\n"
    );
    // `/` of two integers divides their values as DOUBLE, as in DuckDB (DataFusion truncated,
    // as PostgreSQL does: a share of two counts was 0); `//` is the integer division, toward
    // zero, in the integers' type (DataFusion could not plan it), `divide(x, y)` too; an unnamed
    // `//` column keeps its text; an integer division by zero is an error.
    let divisions = "SELECT 7 / 2 AS a, -7 / 2 AS b, 7 // 2 AS c, -7 // 2 AS d, 7.5 // 2 AS e, 1 / 0 AS f, \
                     arrow_typeof(n // 2) AS t, n // 2, divide(n, 3) AS dv, count_if(n > 1) / count(*) AS share, \
                     sum(n) / 2 AS half FROM (VALUES (1), (2), (4)) AS v(n) GROUP BY n ORDER BY n";
    assert_eq!(
        sql_csv_in(tmp.path(), divisions),
        "a,b,c,d,e,f,t,n // 2,dv,share,half\n\
         3.5,-3.5,3,-3,3.75,inf,Int64,0,0,0.0,0.5\n\
         3.5,-3.5,3,-3,3.75,inf,Int64,1,0,1.0,1.0\n\
         3.5,-3.5,3,-3,3.75,inf,Int64,2,1,1.0,2.0\n"
    );
    assert_fails(&sql("SELECT 7 // 0"), 1, "x // y (divide): a division by zero");
    // A `/` with a DECIMAL, and its `avg`, are DOUBLE, as in DuckDB (DataFusion kept 4 more
    // decimals and cut the rest: 1 / 0.91 was 1.0989, avg -0.772666).
    let decimals = "SELECT 1 / p AS a, p / 3 AS b, avg(p) AS m, avg(p) OVER () AS w, arrow_typeof(avg(p)) AS t \
                    FROM (VALUES (CAST(0.91 AS DECIMAL(10, 2))), (CAST(-2.7 AS DECIMAL(10, 2))), (CAST(-0.53 AS DECIMAL(10, 2)))) \
                    AS v(p) GROUP BY p ORDER BY p";
    assert_eq!(
        sql_csv_in(tmp.path(), decimals),
        "a,b,m,w,t\n\
         -0.37037037037037035,-0.9,-2.7,-0.7733333333333334,Float64\n\
         -1.8867924528301885,-0.17666666666666667,-0.53,-0.7733333333333334,Float64\n\
         1.0989010989010988,0.30333333333333334,0.91,-0.7733333333333334,Float64\n"
    );
    // DuckDB's `mod(x, y)` (`%`; DataFusion has no `mod`) and `string_agg(x)`, its separator
    // `,` by default (DataFusion wants one).
    let defaults = "SELECT mod(10, 3) AS a, MOD(-10, 3) AS b, mod(10.5, 3) AS c, \
                    string_agg(s ORDER BY s DESC) AS s1, string_agg(s, '|' ORDER BY s DESC) AS s2 \
                    FROM (VALUES ('a'), ('c'), ('b')) AS t(s)";
    assert_eq!(
        sql_csv_in(tmp.path(), defaults),
        "a,b,c,s1,s2\n1,-1,1.5,\"c,b,a\",c|b|a\n"
    );
    // Integer `+`, `-`, `*` give the right number or an error, never a wrapped one (DataFusion
    // wrapped: two UINT8 200s added to 144, INT32 products past 2^31 negative): narrow integers
    // are computed in BIGINT, in a select, a union, a GROUP BY key and a window's argument
    // alike, and a BIGINT overflow is an error naming the operation.
    let narrow = "SELECT a + a AS s, a * a AS p, b - c AS d, e * e AS q, arrow_typeof(a + a) AS t \
                  FROM (SELECT CAST(200 AS TINYINT UNSIGNED) AS a, CAST(5 AS INT UNSIGNED) AS b, \
                  CAST(7 AS INT UNSIGNED) AS c, CAST(2000000000 AS INT) AS e) \
                  UNION ALL SELECT CAST(1 AS TINYINT), 2, 3, 4, 'x' ORDER BY s DESC";
    assert_eq!(
        sql_csv_in(tmp.path(), narrow),
        "s,p,d,q,t\n400,40000,-2,4000000000000000000,Int64\n1,2,3,4,x\n"
    );
    let grouped = "SELECT n * n AS k, sum(n * n) OVER () AS w, count(*) AS c \
                   FROM (VALUES (CAST(100 AS TINYINT)), (CAST(-100 AS TINYINT))) AS v(n) GROUP BY n * n";
    assert_eq!(sql_csv_in(tmp.path(), grouped), "k,w,c\n10000,10000,2\n");
    assert_fails(
        &sql("SELECT e * e * e FROM (SELECT CAST(2000000000 AS INT) AS e)"),
        1,
        "integer overflow: 4000000000000000000 * 2000000000 (Int64): the result does not fit in \
         Int64; compute it in DOUBLE or DECIMAL(38, 0) (x::DOUBLE * y)",
    );
    // `-x` as `0 - x`: TINYINT -128 negated was -128, BIGINT's least itself.
    assert_eq!(
        sql_csv_in(
            tmp.path(),
            "SELECT -x AS n, arrow_typeof(-x) AS t FROM (VALUES (CAST(-128 AS TINYINT))) AS v(x)"
        ),
        "n,t\n128,Int64\n"
    );
    assert_fails(
        &sql("SELECT -x FROM (VALUES (CAST(-9223372036854775808 AS BIGINT))) AS v(x)"),
        1,
        "integer overflow: 0 - -9223372036854775808 (Int64)",
    );
    assert_fails(
        &sql("SELECT 9223372036854775807 + 1"),
        1,
        "integer overflow: 9223372036854775807 + 1 (Int64)",
    );
    // An integer sum gives the right number past a partial sum beyond 2^63, or an error where
    // the sum itself is past it (DataFusion's wrapped), grouped, filtered, in a HAVING, in a
    // rollup; its type and name are the sum's.
    let sums = "SELECT g, sum(x) AS s, sum(x) FILTER (WHERE x < 9) AS p, arrow_typeof(sum(x)) AS t \
                FROM (VALUES (1, 9223372036854775807), (1, 5), (1, -10), (2, 3), (2, NULL)) AS v(g, x) \
                GROUP BY ROLLUP (g) HAVING sum(x) < 9223372036854775807 ORDER BY g NULLS LAST";
    assert_eq!(
        sql_csv_in(tmp.path(), sums),
        "g,s,p,t\n1,9223372036854775802,-5,Int64\n2,3,3,Int64\n,9223372036854775805,-2,Int64\n"
    );
    assert_fails(
        &sql("SELECT sum(x) FROM (VALUES (9223372036854775807), (1)) AS v(x)"),
        1,
        "integer overflow: a sum is 9223372036854775808, past Int64's range; sum(x::DECIMAL(38, 0)) gives it",
    );
    // As a window function too, over a frame that slides (values taken back) and an empty one.
    let windows = "SELECT o, sum(x) OVER (ORDER BY o ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s, \
                   sum(x) OVER (ORDER BY o ROWS BETWEEN 1 PRECEDING AND 1 PRECEDING) AS p \
                   FROM (VALUES (1, 9223372036854775807), (2, -5), (3, 7)) AS v(o, x) ORDER BY o";
    assert_eq!(
        sql_csv_in(tmp.path(), windows),
        "o,s,p\n1,9223372036854775807,\n2,9223372036854775802,9223372036854775807\n3,2,-5\n"
    );
    assert_fails(
        &sql("SELECT sum(x) OVER (ORDER BY x) FROM (VALUES (9223372036854775807), (1)) AS v(x)"),
        1,
        "integer overflow: a sum is 9223372036854775808",
    );
    // A cast of a fraction to an integer rounds, as in DuckDB and PostgreSQL (DataFusion
    // truncated: half of the scores fell in the bucket below), in a GROUP BY key, a join, a
    // filter and a window as in a select: a float's tie to the even neighbour (C's `rint`), a
    // DECIMAL's and a number written in the query away from zero.
    let buckets = "SELECT CAST(x * 10 AS INT) AS b, count(*) AS n, CAST(-2.5 AS BIGINT) AS neg, \
                   TRY_CAST(2.5::REAL AS SMALLINT) AS t, CAST(2.5::DECIMAL(3, 1) AS INT) AS d, \
                   CAST(3.5::DOUBLE AS INT) AS e \
                   FROM (VALUES (0.27::DOUBLE), (0.21::DOUBLE), (0.25::DOUBLE), (0.35::DOUBLE)) AS v(x) \
                   GROUP BY 1 ORDER BY 1";
    assert_eq!(
        sql_csv_in(tmp.path(), buckets),
        "b,n,neg,t,d,e\n2,2,-3,2,3,4\n3,1,-3,2,3,4\n4,1,-3,2,3,4\n"
    );
    let joined = "SELECT a.x, sum(CAST(b.y AS INT)) OVER () AS s FROM (VALUES (1), (3), (4)) AS a(x) \
                  JOIN (VALUES (2.6::DOUBLE), (0.5::DOUBLE), (3.5::DOUBLE)) AS b(y) ON a.x = CAST(b.y AS INT) \
                  WHERE CAST(b.y AS INT) > 0 ORDER BY a.x";
    assert_eq!(sql_csv_in(tmp.path(), joined), "x,s\n3,7\n4,7\n");
    // `rint(x)`, the rounding such a cast of a float makes (Spark's, C's): a tie to even.
    let rint = "SELECT rint(x) AS a, rint(x::REAL) AS b, rint(3) AS c, typeof(rint(x::REAL)) AS t \
                FROM (VALUES (2.5::DOUBLE), (-0.5::DOUBLE), (3.5::DOUBLE), (2.7::DOUBLE), (NULL)) AS v(x)";
    assert_eq!(
        sql_csv_in(tmp.path(), rint),
        "a,b,c,t\n2.0,2.0,3.0,FLOAT\n-0.0,-0.0,3.0,FLOAT\n4.0,4.0,3.0,FLOAT\n3.0,3.0,3.0,FLOAT\n,,3.0,FLOAT\n"
    );
    // DuckDB's len: a text's characters, a list's elements (DataFusion has one function each).
    let o = sql("SELECT len('héllo') AS a, len([1, 2, 3]) AS b, len(arrow_cast([1, 2], 'FixedSizeList(2, Int64)')) AS c, len(NULL) AS d");
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "a,b,c,d\n5,3,2,\n");
    assert_fails(
        &sql("SELECT len(5)"),
        2,
        "len(x) takes a text or a list, not Int64",
    );
}

/// A column is named as DuckDB names it: an expression by its text (DataFusion: by its plan,
/// `Int64(2)`, and a cast by its column, so a column and its cast failed as two of one name);
/// a name given twice, in a select or in a join's `SELECT *`, is written `name`, `name_1`, in
/// every format, and the file is one segscore reads back; a `SELECT DISTINCT` sorts by one of
/// its expressions (DataFusion refused); an aggregate of a column beside one of its cast plans.
#[test]
fn sql_names_columns_by_their_text_and_each_name_once() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = "SELECT x, x::VARCHAR, CAST(x AS INT), CAST(x AS BIGINT), x * 2, sum(x) OVER (), 'a', x, \
                 mod(7, 4), 7 % 4, 1 AS a, 2 AS a FROM (VALUES (1.5), (2.7)) AS v(x) ORDER BY x";
    assert_eq!(
        sql_csv_in(tmp.path(), texts),
        "x,x::VARCHAR,CAST(x AS INT),CAST(x AS BIGINT),x * 2,sum(x) OVER (),'a',x_1,\"mod(7, 4)\",7 % 4,a,a_1\n\
         1.5,1.5,2,2,3.0,4.2,a,1.5,3,3,1,2\n\
         2.7,2.7,3,3,5.4,4.2,a,2.7,3,3,1,2\n"
    );
    let join =
        "SELECT * FROM (VALUES (1, 'a')) AS l(k, v) JOIN (VALUES (1, 'b'), (2, 'c')) AS r(k, v) ON l.k = r.k";
    let o = segscore_in(tmp.path(), &["sql", "--format", "json", join]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "{\"k\":1,\"v\":\"a\",\"k_1\":1,\"v_1\":\"b\"}\n"
    );
    let o = segscore_in(
        tmp.path(),
        &["sql", &format!("COPY ({join}) TO 'joined.parquet'")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        sql_csv_in(tmp.path(), "SELECT * FROM 'joined.parquet'"),
        "k,v,k_1,v_1\n1,a,1,b\n"
    );
    let distinct =
        "SELECT DISTINCT x % 3 FROM (VALUES (1), (4), (2), (5), (3), (NULL)) AS v(x) ORDER BY x % 3 DESC";
    assert_eq!(sql_csv_in(tmp.path(), distinct), "x % 3\n2\n1\n0\n\"\"\n");
    // An aggregate or a window of a column beside one of its cast, in the select, HAVING or
    // ORDER BY, and a GROUP BY of both: DataFusion named the cast by its column, so planning
    // failed ("duplicate unqualified field name max(v.y)").
    let casts = "SELECT g, max(y), max(y::DOUBLE), count(TRY_CAST(y AS SMALLINT)), count(y), sum(y::INT), \
                 sum(y::BIGINT), sum(y) OVER (), sum(y::INT) OVER () FROM (VALUES (1, 2), (1, 300), \
                 (2, 40000), (3, NULL)) AS v(g, y) GROUP BY g, y HAVING max(y::INT) > 1 ORDER BY min(y), min(y::INT)";
    assert_eq!(
        sql_csv_in(tmp.path(), casts),
        "g,max(y),max(y::DOUBLE),count(TRY_CAST(y AS SMALLINT)),count(y),sum(y::INT),sum(y::BIGINT),\
         sum(y) OVER (),sum(y::INT) OVER ()\n\
         1,2,2.0,1,1,2,2,40302,40302\n1,300,300.0,1,1,300,300,40302,40302\n\
         2,40000,40000.0,0,1,40000,40000,40302,40302\n"
    );
    let grouped = "SELECT y, y::VARCHAR AS t, count(*) AS n FROM (VALUES (1), (1), (2)) AS v(y) \
                   GROUP BY y, y::VARCHAR ORDER BY y";
    assert_eq!(sql_csv_in(tmp.path(), grouped), "y,t,n\n1,1,2\n2,2,1\n");
}

/// DuckDB's functions that DataFusion has none for ("Invalid function" before), as DuckDB
/// defines them: `regexp_extract` (a capture group of the first match, `''` where none),
/// `regexp_extract_all`, with DuckDB's options; `strftime` and `strptime` in DuckDB's format
/// specifiers (`%f` is microseconds, chrono's nanoseconds), the format first or second, a list
/// of formats, what a format leaves out 1900-01-01 00:00 (chrono alone refuses such formats),
/// `try_strptime`; `mode` (ties: the least value) and `histogram` over a categorical column,
/// which the text functions take too.
#[test]
fn sql_takes_duckdbs_regexp_time_and_count_functions() {
    let tmp = tempfile::tempdir().unwrap();
    let sql = |q: &str| segscore_in(tmp.path(), &["sql", "--format", "csv", q]);
    let o = segscore_in(
        tmp.path(),
        &["sql", "COPY (SELECT arrow_cast(s, 'Dictionary(Int32, Utf8)') AS s, g, t FROM (VALUES \
         ('b', 1, TIMESTAMP '2024-01-02 03:04:05.678'), ('a', 1, TIMESTAMP '2024-01-02 03:04:05'), ('b', 2, NULL), \
         ('a', 2, TIMESTAMP '1999-12-31 23:59:59.000001'), (NULL, 2, NULL), ('c', 2, NULL), ('c', 2, NULL)) AS v(s, g, t)) \
         TO 'cat.parquet'"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for (query, want) in [
        (
            "SELECT regexp_extract('abc123def45', '[0-9]+') AS a, regexp_extract('abc123', '([a-z]+)([0-9]+)', 2) AS b, \
             none, unmatched, n, regexp_extract('ABC', 'b.', 0, 'i') AS i, l, \
             regexp_extract_all('a1b22c333', '[0-9]+') AS al, regexp_extract_all('a1b22', '([a-z])([0-9]+)', 1) AS g1, \
             regexp_extract_all('xyz', '[0-9]') AS empty, regexp_extract('xyz', 'y(z)', 1) = 'z' AND none = '' AND unmatched = '' \
             AND l = '' AND n IS NULL AS text_or_null FROM (SELECT regexp_extract('xyz', '[0-9]+') AS none, \
             regexp_extract('ab', 'a(x)?', 1) AS unmatched, regexp_extract(NULL, 'a') AS n, regexp_extract('a.c abc', 'b.', 0, 'l') AS l)",
            "a,b,none,unmatched,n,i,l,al,g1,empty,text_or_null\n123,123,,,,BC,,\"[1, 22, 333]\",\"[a, b]\",[],true\n",
        ),
        (
            "SELECT regexp_extract(s, '^(.)(.)$', 2) AS second FROM (VALUES ('ab'), ('xy'), ('abc')) AS v(s)",
            // The empty text, quoted by the CSV writer where it is a row's only field.
            "second\nb\ny\n\"\"\n",
        ),
        (
            "SELECT strftime(TIMESTAMP '2024-03-05 14:07:09.123456', '%Y-%m-%d %H:%M:%S.%f') AS f, \
             strftime('%g|%n|%-d/%-m|%j|%A %B|%I %p|%%', TIMESTAMP '2024-03-05 14:07:09.123456') AS other, \
             strftime(DATE '2024-03-05', '%c') AS c, strftime(TIMESTAMP '2024-03-05 14:07:09', '%x %X') AS xx, \
             strftime(NULL, '%Y') AS n",
            "f,other,c,xx,n\n2024-03-05 14:07:09.123456,123|123456000|5/3|065|Tuesday March|02 PM|%,2024-03-05 00:00:00,2024-03-05 14:07:09,\n",
        ),
        // A time without a zone has UTC's offset, as DuckDB writes it (chrono had none to write:
        // "Format error"); one with a zone writes its own.
        (
            "SELECT strftime(TIMESTAMP '2024-03-05 14:07:09', '%H%z|%Z|%%z') AS naive, strftime(DATE '2024-03-05', '%z') AS d, \
             strftime(arrow_cast(TIMESTAMP '2024-03-05 14:07:09', 'Timestamp(Microsecond, Some(\"+02:00\"))'), '%H %z') AS zoned",
            "naive,d,zoned\n14+00||%z,+00,14 +0200\n",
        ),
        (
            "SELECT strptime('05/03/2024 14:07:09.123456', '%d/%m/%Y %H:%M:%S.%f') AS a, \
             strptime('2024-03-05', ['%d/%m/%Y', '%Y-%m-%d']) AS b, arrow_typeof(strptime('2024', '%Y')) AS ty, \
             strptime('2024-03', '%Y-%m') AS month, strptime('02:30 PM', '%I:%M %p') AS pm, \
             strptime('2024-03-05 14:07:09 +0200', '%Y-%m-%d %H:%M:%S %z') AS utc",
            "a,b,ty,month,pm,utc\n2024-03-05T14:07:09.123456,2024-03-05T00:00:00,Timestamp(µs),2024-03-01T00:00:00,\
             1900-01-01T14:30:00,2024-03-05T12:07:09\n",
        ),
        (
            "SELECT try_strptime(x, '%Y-%m-%d') AS t, strptime(x, f) AS own FROM (VALUES ('2024-01-02', '%Y-%m-%d'), \
             ('02/01/2024', '%d/%m/%Y'), (NULL, '%Y')) AS v(x, f) ORDER BY own",
            "t,own\n2024-01-02T00:00:00,2024-01-02T00:00:00\n,2024-01-02T00:00:00\n,\n",
        ),
        (
            "SELECT g, mode(s) AS m, histogram(s) AS h, mode(t) AS mt, strftime(max(t), '%Y/%f') AS last, \
             string_agg(regexp_extract(s, '[a-b]'), '' ORDER BY s) AS ab, count(try_strptime(s, '%Y')) AS none, \
             max(len(string_split(s, ''))) AS chars FROM 'cat.parquet' GROUP BY g ORDER BY g",
            "g,m,h,mt,last,ab,none,chars\n1,a,\"{a: 1, b: 1}\",2024-01-02T03:04:05,2024/678000,ab,0,1\n\
             2,c,\"{a: 1, b: 1, c: 2}\",1999-12-31T23:59:59.000001,1999/000001,ab,0,1\n",
        ),
        // Over a sliding frame, values leave it (DuckDB 2.0.1's answers; it was refused:
        // "retract_batch is not implemented").
        (
            "SELECT i, mode(v) OVER w AS m, histogram(v) OVER w AS h, round(entropy(v) OVER w, 9) AS e FROM \
             (VALUES (1, 'a'), (2, 'b'), (3, 'b'), (4, NULL), (5, 'c'), (6, 'c'), (7, NULL), (8, NULL)) AS t(i, v) \
             WINDOW w AS (ORDER BY i ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) ORDER BY i",
            "i,m,h,e\n1,a,{a: 1},0.0\n2,a,\"{a: 1, b: 1}\",1.0\n3,b,\"{a: 1, b: 2}\",0.918295834\n4,b,{b: 2},0.0\n\
             5,b,\"{b: 1, c: 1}\",1.0\n6,c,{c: 2},0.0\n7,c,{c: 2},0.0\n8,c,{c: 1},0.0\n",
        ),
        (
            "SELECT mode(x) AS m, histogram(x) AS h FROM (VALUES (CAST(NULL AS INT))) AS v(x)",
            "m,h\n,\n",
        ),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), query), want, "{query}");
    }
    // DuckDB's string_split: an empty separator splits into characters, an empty text is one
    // empty part, a NULL separator NULL (DataFusion's string_to_array: ['abc'], [], characters).
    let o = segscore_in(
        tmp.path(),
        &["sql", "--format", "json", "SELECT string_split('a,b,,c', ',') AS a, str_split('abc', '') AS b, \
          string_split('', ',') AS c, string_split('a,b', NULL) AS d, string_split_regex('a1b22c', '[0-9]+') AS e, \
          regexp_split_to_array('aXbxc', 'x', 'i') AS f"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "{\"a\":[\"a\",\"b\",\"\",\"c\"],\"b\":[\"a\",\"b\",\"c\"],\"c\":[\"\"],\"d\":null,\
         \"e\":[\"a\",\"b\",\"c\"],\"f\":[\"a\",\"b\",\"c\"]}\n"
    );
    // A map of keys other than text (a histogram of integers, of dates, inside a list) is a
    // JSON object whose keys are those values' text, as DuckDB writes it (arrow's writer
    // refused it: "Only UTF8 keys supported").
    let o = segscore_in(
        tmp.path(),
        &[
            "sql",
            "--format",
            "json",
            "SELECT histogram(n) AS h, [histogram(n > 1)] AS l, \
          histogram(make_date(2024, 3, 5 + n)) AS d, map([1.5], ['x']) AS m \
          FROM (VALUES (1), (2), (2)) AS v(n)",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "{\"h\":{\"1\":1,\"2\":2},\"l\":[{\"false\":1,\"true\":2}],\
         \"d\":{\"2024-03-06\":1,\"2024-03-07\":2},\"m\":{\"1.5\":\"x\"}}\n"
    );
    for (query, code, message) in [
        (
            "SELECT regexp_extract('abc', '(a)', 2)",
            1,
            "regexp_extract: group 2, but the pattern '(a)' has 1 group",
        ),
        (
            "SELECT regexp_extract('abc', 'a', 0, 'g')",
            1,
            "option 'g' (global replace) is only for regexp_replace",
        ),
        (
            "SELECT regexp_extract('abc', '(a')",
            1,
            "the pattern '(a' is not a regular expression",
        ),
        (
            "SELECT strptime('5 March', ['%d/%m/%Y', '%Y'])",
            1,
            "strptime: '5 March' does not read as '%d/%m/%Y' or '%Y'",
        ),
        ("SELECT strptime('5', '%Q')", 1, "strptime: '%Q' is not a format"),
        (
            "SELECT strftime(TIMESTAMP '2024-01-01 00:00:00', '%Y %Q')",
            1,
            "strftime with the format '%Y %Q'",
        ),
        (
            "SELECT strftime(1, '%Y')",
            2,
            "strftime(time, format) takes a date, time or timestamp and a text, not Int64",
        ),
        ("SELECT mode(1, 2)", 2, "mode(x) takes one argument"),
    ] {
        assert_fails(&sql(query), code, message);
    }
}

/// DuckDB's date functions that DataFusion has none for ("Invalid function" before): a date
/// part by its name (`year(t)`, `dayofweek(t)`, ... as BIGINT, `epoch(t)` seconds as DOUBLE),
/// `dayname`, `monthname`, `date_diff` (boundaries crossed, as DuckDB counts them) and the
/// epochs in milliseconds, microseconds and nanoseconds, over a Parquet file's timestamps;
/// time literals without seconds or zero padding; `INTERVAL 30 DAY` in a window's frame.
#[test]
fn sql_takes_duckdbs_date_functions() {
    let tmp = tempfile::tempdir().unwrap();
    let o = segscore_in(
        tmp.path(),
        &[
            "sql",
            "COPY (SELECT * FROM (VALUES (TIMESTAMP '2024-03-10 01:02:03.456789', DATE '2024-01-31'), \
          (TIMESTAMP '1969-12-31 23:59:59', DATE '1970-01-01'), (NULL, NULL)) AS v(t, d)) TO 'times.parquet'",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for (query, want) in [
        (
            "SELECT year(t) AS y, arrow_typeof(year(t)) AS ty, month(t) AS m, day(t) AS d, hour(t) AS h, minute(t) AS mi, \
             second(t) AS s, millisecond(t) AS ms, microsecond(t) AS us, dayofweek(t) AS dow, isodow(t) AS idow, \
             dayofyear(t) AS doy, week(t) AS w, quarter(t) AS q, epoch(t) AS e, dayname(t) AS dn, monthname(d) AS mn, \
             year(d) AS yd FROM 'times.parquet' ORDER BY t NULLS LAST",
            "y,ty,m,d,h,mi,s,ms,us,dow,idow,doy,w,q,e,dn,mn,yd\n\
             1969,Int64,12,31,23,59,59,59000,59000000,3,3,365,1,4,-1.0,Wednesday,January,1970\n\
             2024,Int64,3,10,1,2,3,3456,3456789,0,7,70,10,1,1710032523.456789,Sunday,January,2024\n\
             ,Int64,,,,,,,,,,,,,,,,\n",
        ),
        (
            "SELECT date_diff('month', d, DATE '2024-02-01') AS m, datediff('day', t, d) AS days, \
             date_diff('week', d, t) AS w, date_diff('hours', t, t + INTERVAL '90 minutes') AS h, \
             date_diff('year', t, d) AS y, epoch_ms(t) AS ms, epoch_us(t) AS us, epoch_ns(d) AS ns \
             FROM 'times.parquet' ORDER BY t NULLS LAST",
            "m,days,w,h,y,ms,us,ns\n\
             649,1,0,2,1,-1000,-1000000,0\n\
             1,-39,5,1,0,1710032523456,1710032523456789,1706659200000000000\n\
             ,,,,,,,\n",
        ),
        // DuckDB 2 counts a week as seven days between the dates, not a Monday passed, and
        // takes decades, centuries, millennia, ISO years and its other names for the parts.
        (
            "SELECT date_diff('week', DATE '2023-12-31', DATE '2024-01-01') AS w0, \
             date_diff('week', DATE '2023-12-31', DATE '2024-02-10') AS w5, \
             date_diff('weeks', TIMESTAMP '2024-01-10 12:00', TIMESTAMP '2024-01-04 00:00') AS back, \
             date_diff('decade', DATE '2019-12-31', DATE '2020-01-01') AS dec, \
             date_diff('century', DATE '1999-12-31', DATE '2000-01-01') AS c, \
             date_diff('millennium', DATE '1999-12-31', DATE '2000-01-01') AS mil, \
             date_diff('isoyear', DATE '2024-12-29', DATE '2024-12-30') AS iy, \
             date_diff('epoch', TIMESTAMP '2024-01-01 00:00:00.9', TIMESTAMP '2024-01-01 00:00:02.1') AS e, \
             date_diff('dow', DATE '2024-01-01', DATE '2024-01-09') AS dow, \
             date_diff('yearweek', DATE '2024-01-01', DATE '2024-01-19') AS yw",
            "w0,w5,back,dec,c,mil,iy,e,dow,yw\n0,5,0,1,1,1,1,2,8,2\n",
        ),
        ("SELECT epoch_ms(1700000000000) AS t", "t\n2023-11-14T22:13:20\n"),
        // Literals as DuckDB and PostgreSQL take them, without seconds or zero padding (arrow:
        // "error parsing time").
        (
            "SELECT count(*) AS n, min(TIMESTAMP '2024-3-10 1:02') AS m, max('2024-03-10T10:00'::TIMESTAMP) AS x, \
             min(CAST('2024-1-31' AS DATE)) AS d FROM 'times.parquet' WHERE t >= TIMESTAMP '2024-03-10 1:02'",
            "n,m,x,d\n1,2024-03-10T01:02:00,2024-03-10T10:00:00,2024-01-31\n",
        ),
        // DuckDB's `INTERVAL 30 DAY` in a window's frame (DataFusion took a number there only
        // in an expression).
        (
            "SELECT d, count(*) OVER (ORDER BY d RANGE BETWEEN INTERVAL 30 DAY PRECEDING AND CURRENT ROW) AS n, \
             d + INTERVAL 30 DAY AS later FROM (VALUES (DATE '2024-01-01'), (DATE '2024-01-20'), (DATE '2024-02-10')) AS v(d) ORDER BY d",
            "d,n,later\n2024-01-01,1,2024-01-31T00:00:00\n2024-01-20,2,2024-02-19T00:00:00\n2024-02-10,2,2024-03-11T00:00:00\n",
        ),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), query), want, "{query}");
    }
    let sql = |q: &str| segscore_in(tmp.path(), &["sql", q]);
    assert_fails(
        &sql("SELECT date_diff('fortnight', d, d) FROM 'times.parquet'"),
        1,
        "date_diff: 'fortnight' is not a date part",
    );
    assert_fails(
        &sql("SELECT year(1)"),
        2,
        "year(time) takes a date, time or timestamp, not Int64",
    );
}

/// `EXCEPT ALL` and `INTERSECT ALL` keep a row `max(m − n, 0)` and `min(m, n)` times, as the SQL
/// standard, DuckDB and PostgreSQL do (DataFusion: `EXCEPT ALL` removed every copy of a row the
/// right side had once, `INTERSECT ALL` kept all `m`); NULLs are one value; over a view too;
/// `EXCEPT` and `INTERSECT` stay distinct.
#[test]
fn sql_except_all_and_intersect_all_count_each_rows_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let left = "SELECT x FROM (VALUES (1), (1), (1), (2), (NULL), (NULL)) AS l(x)";
    let right = "SELECT x FROM (VALUES (1), (1), (3), (NULL)) AS r(x)";
    for (op, want) in [
        ("EXCEPT ALL", "x\n1\n2\n\"\"\n"),
        ("INTERSECT ALL", "x\n1\n1\n\"\"\n"),
        ("EXCEPT", "x\n2\n"),
        ("INTERSECT", "x\n1\n\"\"\n"),
    ] {
        let q = format!("{left} {op} {right} ORDER BY x");
        assert_eq!(sql_csv_in(tmp.path(), &q), want, "{op}");
    }
    let view =
        "CREATE VIEW v AS SELECT x, 'a' AS y FROM (VALUES (1), (1), (2)) AS t(x) EXCEPT ALL SELECT 1, 'a'; \
                SELECT y, count(*) AS n, sum(x) AS s FROM v GROUP BY y";
    assert_eq!(sql_csv_in(tmp.path(), view), "y,n,s\na,2,3\n");
}

/// An UNNEST's rows keep no key of its input: over lists grouped by `g`, `GROUP BY g, x` groups
/// by both and `ORDER BY g, x` sorts by both, as in DuckDB. DataFusion kept the input's key `g`
/// for the unnested rows, so its optimizer grouped and sorted by `g` alone, without a word.
#[test]
fn sql_unnested_rows_keep_no_key_of_their_grouped_input() {
    let tmp = tempfile::tempdir().unwrap();
    let unnested = "(SELECT g, unnest(l) AS x FROM (SELECT g, list(a) AS l \
                    FROM (VALUES ('x', 2), ('x', 1), ('x', 1), ('y', 3)) t(g, a) GROUP BY g))";
    for (q, want) in [
        // Each answer is DuckDB 2.0.1's.
        (
            format!("SELECT g, count(*) AS n FROM {unnested} GROUP BY g, x ORDER BY g, n"),
            "g,n\nx,1\nx,2\ny,1\n",
        ),
        (
            format!("SELECT g, x FROM {unnested} ORDER BY g, x"),
            "g,x\nx,1\nx,1\nx,2\ny,3\n",
        ),
        (
            format!("SELECT DISTINCT g, x FROM {unnested} ORDER BY ALL"),
            "g,x\nx,1\nx,2\ny,3\n",
        ),
        (
            format!("SELECT g, x FROM {unnested} ORDER BY g, x DESC LIMIT 2"),
            "g,x\nx,2\nx,1\n",
        ),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), &q), want, "{q}");
    }
}

/// The key of a RIGHT or FULL JOIN ... USING (k) is COALESCE(left.k, right.k), as in the SQL
/// standard, DuckDB and PostgreSQL: DataFusion gave the left side's, NULL on a row only the right
/// side has, in `*`, a select, WHERE and GROUP BY alike. `a.k` and `b.k` stay each side's; a
/// NATURAL one (its columns unknown before planning) is refused, saying what to write.
#[test]
fn sql_right_and_full_joins_using_a_key_take_it_from_either_side() {
    let tmp = tempfile::tempdir().unwrap();
    let full =
        "(VALUES (1, 'a'), (2, 'c')) AS a(k, v) FULL JOIN (VALUES (1, 'x'), (3, 'z')) AS b(k, w) USING (k)";
    for (query, want) in [
        (format!("SELECT * FROM {full} ORDER BY k"), "k,v,w\n1,a,x\n2,c,\n3,,z\n"),
        (
            format!("SELECT k, count(*) AS n FROM {full} WHERE k > 1 GROUP BY k ORDER BY k"),
            "k,n\n2,1\n3,1\n",
        ),
        (
            format!("SELECT a.k AS l, b.k AS r FROM {full} ORDER BY k"),
            "l,r\n1,1\n2,\n,3\n",
        ),
        (
            "SELECT k, w FROM (VALUES (1, 'a'), (2, 'c')) AS a(k, v) RIGHT JOIN (VALUES (1, 'x'), (3, 'z')) AS b(k, w) \
             USING (k) ORDER BY k"
                .to_string(),
            "k,w\n1,x\n3,z\n",
        ),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), &query), want, "{query}");
    }
    let natural = "SELECT * FROM (VALUES (1, 'a')) AS a(k, v) NATURAL FULL JOIN (VALUES (3, 'z')) AS b(k, w)";
    assert_fails(
        &segscore_in(tmp.path(), &["sql", natural]),
        2,
        "not a NATURAL join (its columns are not known before planning): write the join with ON left.k = right.k",
    );
}

/// DuckDB's list functions where DataFusion's differ: `list_sort` (`array_sort`) puts NULLs
/// last, with or without 'DESC' (DataFusion: first), `list_reverse_sort` sorts descending,
/// `list_distinct` (`array_distinct`) leaves NULL out (DataFusion kept one), `list_unique`
/// counts the distinct values; a column keeps the call's text as its name.
#[test]
fn sql_list_functions_sort_nulls_last_and_leave_them_out_of_distinct() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT list_sort([3, NULL, 1]), array_sort([3, NULL, 1], 'DESC') AS d, list_sort([3, NULL, 1], 'ASC', 'NULLS FIRST') AS f, \
             list_reverse_sort([1, NULL, 3]) AS r, list_distinct([2, 1, NULL, 2, NULL]) AS u, list_unique([2, 1, NULL, 2]) AS n, \
             list_distinct(NULL::BIGINT[]) AS z";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "\"list_sort([3, NULL, 1])\",d,f,r,u,n,z\n\"[1, 3, ]\",\"[3, 1, ]\",\"[, 1, 3]\",\"[3, 1, ]\",\"[2, 1]\",2,\n"
    );
}

/// DuckDB's `typeof(x)` names a type as DuckDB does (DataFusion's `arrow_typeof`: `Int64`), a
/// cast takes DuckDB's type names, and its `SEMI JOIN` and `ANTI JOIN` keep the left side's rows
/// with a match, or without one (DataFusion refused them).
#[test]
fn sql_typeof_names_types_as_duckdb_and_semi_and_anti_joins_run() {
    let tmp = tempfile::tempdir().unwrap();
    let types = "SELECT typeof(1) AS a, typeof(1.5::DOUBLE) AS b, typeof('x') AS c, typeof(CAST(1 AS DECIMAL(10, 2))) AS d, \
                 typeof([1, 2]) AS e, typeof({'k': 1}) AS f, typeof(DATE '2024-01-01') AS g, typeof(NULL) AS h, \
                 typeof(CAST(1 AS TINYINT)) AS i, typeof(arrow_cast('x', 'Dictionary(Int32, Utf8)')) AS j";
    assert_eq!(
        sql_csv_in(tmp.path(), types),
        "a,b,c,d,e,f,g,h,i,j\nBIGINT,DOUBLE,VARCHAR,\"DECIMAL(10,2)\",BIGINT[],STRUCT(k BIGINT),DATE,NULL,TINYINT,VARCHAR\n"
    );
    // DuckDB's names for types DataFusion names otherwise (it refused them in a cast).
    let names = "SELECT typeof(x::UBIGINT) AS a, typeof(x::UINTEGER) AS b, typeof(x::USMALLINT) AS c, \
                 typeof(x::UTINYINT) AS d, typeof(x::INT1) AS e, typeof(x::SHORT) AS f, typeof(x::LONG) AS g, \
                 typeof(x::SIGNED) AS h, typeof(x::HUGEINT) AS i, typeof('a'::BLOB) AS j, typeof([x]::UBIGINT[]) AS k, \
                 x::HUGEINT * 2 AS l FROM (VALUES (7)) AS v(x)";
    assert_eq!(
        sql_csv_in(tmp.path(), names),
        "a,b,c,d,e,f,g,h,i,j,k,l\nUBIGINT,UINTEGER,USMALLINT,UTINYINT,TINYINT,SMALLINT,BIGINT,INTEGER,\
         \"DECIMAL(38,0)\",BLOB,UBIGINT[],14\n"
    );
    for (join, want) in [("SEMI", "x\n2\n3\n"), ("ANTI", "x\n1\n")] {
        let q = format!(
            "SELECT x FROM (VALUES (1), (2), (3)) AS a(x) {join} JOIN (VALUES (2), (3), (3)) AS b(y) ON a.x = b.y ORDER BY x"
        );
        assert_eq!(sql_csv_in(tmp.path(), &q), want, "{join}");
    }
}

/// An EXISTS or IN among a select's columns (DataFusion: "Physical plan does not support
/// logical expression Exists") is answered from its subquery's counts where the subquery is one
/// plain select; one DataFusion cannot plan there (a match by other than `=`) says how to write
/// it (exit 2).
#[test]
fn sql_exists_and_in_among_a_selects_columns_run() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT x, EXISTS (SELECT 1 FROM (VALUES (2), (3), (NULL)) AS b(y) WHERE b.y = a.x + 1) AS e, \
             NOT EXISTS (SELECT y FROM (VALUES (2), (3)) AS b(y) WHERE b.y = a.x AND b.y > 2) AS n, \
             CASE WHEN EXISTS (SELECT 1 FROM (VALUES (1)) AS c(z) WHERE false) THEN 'y' ELSE 'n' END AS c \
             FROM (VALUES (1), (2), (3), (NULL)) AS a(x) ORDER BY x";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "x,e,n,c\n1,true,true,n\n2,true,true,n\n3,false,false,n\n,false,true,n\n"
    );
    // x IN (subquery) as SQL answers it: NULL for a NULL x or, without a match, a NULL in the
    // subquery; NOT IN its negation.
    let listed = "SELECT x, x IN (SELECT y FROM (VALUES (2), (3)) AS b(y)) AS i, \
                  x + 1 NOT IN (SELECT y FROM (VALUES (2), (NULL)) AS b(y) WHERE y IS NULL OR y > 1) AS n, \
                  a.x IN (SELECT y FROM (VALUES (1)) AS b(y) WHERE false) AS e \
                  FROM (VALUES (1), (2), (NULL)) AS a(x) ORDER BY x";
    assert_eq!(
        sql_csv_in(tmp.path(), listed),
        "x,i,n,e\n1,false,false,false\n2,true,,false\n,,,false\n"
    );
    // An IN whose outer column the subquery's own table would take (both named `a`) is left to
    // DataFusion, which refuses it, rather than answered for the wrong table.
    let clash =
        "SELECT x, x IN (SELECT x + 1 AS y FROM (VALUES (2)) AS a(x)) AS i FROM (VALUES (1), (3)) AS a(x)";
    assert_fails(
        &segscore_in(tmp.path(), &["sql", clash]),
        2,
        "named by their table",
    );
    let o = segscore_in(tmp.path(), &["sql", "COPY (SELECT 2 AS y) TO 'b.parquet'"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let unequal =
        "SELECT x, EXISTS (SELECT 1 FROM 'b.parquet' AS b WHERE b.y > a.x) FROM 'b.parquet' AS a(x)";
    assert_fails(
        &segscore_in(tmp.path(), &["sql", unequal]),
        2,
        "another test as a join, or move it to the WHERE",
    );
}

/// The SQL standard's PIVOT and UNPIVOT after a table, as DuckDB computes them (DataFusion:
/// "Unsupported ast node Pivot"): a column per listed value of each aggregate, grouped by the
/// other columns; each listed column's values as rows, NULLs left out unless INCLUDE NULLS.
#[test]
fn sql_pivots_and_unpivots_a_table() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = "(VALUES (1, 'eu', 2.0), (1, 'us', 3.0), (1, 'eu', 4.0), (2, 'us', 5.0), (2, 'asia', NULL)) AS t(g, region, x)";
    let pivot = format!(
        "SELECT * FROM {rows} PIVOT (sum(x) AS s, count(*) AS n FOR region IN ('eu', 'us' AS usa)) ORDER BY g"
    );
    assert_eq!(
        sql_csv_in(tmp.path(), &pivot),
        "g,eu_s,eu_n,usa_s,usa_n\n1,6.0,2,3.0,1\n2,,0,5.0,1\n"
    );
    let one = format!("SELECT * FROM {rows} PIVOT (max(x) FOR g IN (1, 2)) AS p ORDER BY p.region");
    assert_eq!(
        sql_csv_in(tmp.path(), &one),
        "region,1,2\nasia,,\neu,4.0,\nus,3.0,5.0\n"
    );
    let wide = "(VALUES (1, 10, NULL), (2, 20, 21)) AS w(id, a, b)";
    let unpivot = format!("SELECT * FROM {wide} UNPIVOT (v FOR k IN (a, b)) ORDER BY id, k");
    assert_eq!(
        sql_csv_in(tmp.path(), &unpivot),
        "id,k,v\n1,a,10\n2,a,20\n2,b,21\n"
    );
    let nulls =
        format!("SELECT * FROM {wide} UNPIVOT INCLUDE NULLS (v FOR k IN (a AS first, b)) ORDER BY id, k");
    assert_eq!(
        sql_csv_in(tmp.path(), &nulls),
        "id,k,v\n1,b,\n1,first,10\n2,b,21\n2,first,20\n"
    );
    // DuckDB's PIVOT statement: the values found where no IN lists them, grouped by the keys
    // given or by every other column, with its ORDER BY and LIMIT; a CSV file as its table.
    std::fs::write(
        tmp.path().join("sales.csv"),
        "g,region,x\n1,eu,2\n1,us,3\n1,eu,4\n2,us,5\n2,,7\n",
    )
    .unwrap();
    let cases = [
        ("PIVOT 'sales.csv' ON region USING sum(x) ORDER BY g", "g,eu,us\n1,6,3\n2,,5\n"),
        // The columns in their names' order, as DuckDB's (`10` before `5`); no other column: one row.
        ("PIVOT (SELECT g * 5 AS n, x FROM 'sales.csv') ON n USING sum(x)", "10,5\n12,9\n"),
        ("PIVOT 'sales.csv' ON region IN ('us', 'eu' AS europe) GROUP BY g ORDER BY g DESC LIMIT 1;", "g,us,europe\n2,1,0\n"),
        ("PIVOT (SELECT g, region FROM 'sales.csv' WHERE g = 1) ON g USING count(*) AS n, max(region) AS m GROUP BY region ORDER BY region", "region,1_n,1_m\neu,2,eu\nus,1,us\n"),
    ];
    for (q, want) in cases {
        assert_eq!(sql_csv_in(tmp.path(), q), want, "{q}");
    }
    assert_fails(
        &segscore_in(
            tmp.path(),
            &[
                "sql",
                &format!("SELECT * FROM {rows} PIVOT (sum(x) FOR g IN (SELECT 1))"),
            ],
        ),
        2,
        "PIVOT over the values of a subquery or ANY (list the values: IN (v1, v2)) is not taken",
    );
    // No value to make a column of: DuckDB's "SELECT list is empty", said so.
    assert_fails(
        &segscore_in(
            tmp.path(),
            &[
                "sql",
                "PIVOT (SELECT NULL::VARCHAR AS c, 1 AS x) ON c USING sum(x)",
            ],
        ),
        2,
        "PIVOT ON c: no row has a value of it (no rows, or NULL in each): no column to make",
    );
}

/// DuckDB's lateral column aliases: a select's column read by name in a later column, its WHERE,
/// GROUP BY and HAVING (DataFusion: "No field named r"); a table's column of the name wins, as
/// in DuckDB.
#[test]
fn sql_reads_a_selects_own_columns_by_their_names() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = "(VALUES (1.0, 0.5), (2.0, 3.0), (0.0, 0.25)) AS v(p, t)";
    for (query, want) in [
        (
            format!(
                "SELECT p - t AS r, r * r AS sq, round(sq, 2) AS s2 FROM {rows} WHERE r > -0.5 ORDER BY r"
            ),
            "r,sq,s2\n-0.25,0.0625,0.06\n0.5,0.25,0.25\n",
        ),
        (
            format!("SELECT p > t AS over, count(*) AS n FROM {rows} GROUP BY over HAVING n > 1"),
            "over,n\nfalse,2\n",
        ),
        (
            "SELECT x + 1 AS x, x * 10 AS y FROM (VALUES (1)) AS v(x)".to_string(),
            "x,y\n2,10\n",
        ),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), &query), want, "{query}");
    }
    let o = segscore_in(
        tmp.path(),
        &["sql", "SELECT nothing + 1 AS a FROM (VALUES (1)) AS v(x)"],
    );
    assert_fails(&o, 2, "nothing");
}

/// A date plus or minus an interval is a timestamp, as in DuckDB and PostgreSQL (DataFusion
/// kept a DATE and dropped the time: `DATE '2024-01-01' - INTERVAL 1 HOUR` was 2024-01-01); a
/// comparison with it types as a timestamp's; a date plus days stays a date. Each expected
/// value is DuckDB 2.0.1's.
#[test]
fn sql_adds_an_interval_to_a_date_as_a_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT d + INTERVAL 1 HOUR AS a, d - INTERVAL 1 HOUR AS b, INTERVAL '1 day 12 hours' + d AS c, \
             d + INTERVAL 1 MONTH AS m, typeof(d + INTERVAL 1 MONTH) AS t, d + 1 AS e \
             FROM (VALUES (DATE '2024-01-31'), (DATE '9999-12-30'), (NULL)) AS v(d)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c,m,t,e\n\
         2024-01-31T01:00:00,2024-01-30T23:00:00,2024-02-01T12:00:00,2024-02-29T00:00:00,TIMESTAMP,2024-02-01\n\
         9999-12-30T01:00:00,9999-12-29T23:00:00,9999-12-31T12:00:00,+10000-01-30T00:00:00,TIMESTAMP,9999-12-31\n\
         ,,,,TIMESTAMP,\n"
    );
    // Compared with a date column: the date one hour before is the day before; a "no end" date
    // (past the nanoseconds' 2262) compares in microseconds, in a BETWEEN too.
    let q = "SELECT count(*) AS n, count(*) FILTER (WHERE d BETWEEN DATE '2024-01-31' - INTERVAL 1 HOUR \
             AND DATE '9999-12-31' + INTERVAL 1 HOUR) AS b \
             FROM (VALUES (DATE '2024-01-30'), (DATE '2024-01-31'), (DATE '9999-12-31')) AS v(d) \
             WHERE d > DATE '2024-01-31' - INTERVAL 1 HOUR";
    assert_eq!(sql_csv_in(tmp.path(), q), "n,b\n2,2\n");
}

/// DuckDB's `make_timestamp` (of parts, the seconds with their fraction, or of microseconds
/// since 1970), `make_time` with a fraction of a second (DataFusion's took whole seconds only)
/// and `to_timestamp` of a float's seconds; each expected value DuckDB 2.0.1's (its
/// `to_timestamp` a TIMESTAMPTZ, the same instants), and its errors for a date the calendar
/// has not and a time past the day.
#[test]
fn sql_takes_duckdbs_make_timestamp_and_make_time() {
    let tmp = tempfile::tempdir().unwrap();
    // `to_timestamp` of a float's seconds to the microsecond, as DuckDB's (DataFusion's gave
    // `.000499968`, and 1970 for a NaN, 2262 for 1.7e12, saturated); other arguments as before.
    let q = "SELECT to_timestamp(x)::VARCHAR AS a, to_timestamp(1704164645)::VARCHAR AS b \
             FROM (VALUES (1704164645.0005), (-1.25), (1.7e12), (NULL)) AS v(x)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b\n2024-01-02 03:04:05.0005,2024-01-02 03:04:05\n1969-12-31 23:59:58.75,2024-01-02 03:04:05\n\
         55840-11-08 22:13:20,2024-01-02 03:04:05\n,2024-01-02 03:04:05\n"
    );
    let q = "SELECT make_timestamp(y, 2, 28, h, m, s)::VARCHAR AS a, make_time(h % 24, m, s) AS b, \
             make_timestamp(1704164645000500) AS c \
             FROM (VALUES (2024, 10, 11, 12.5), (2024, 24, 0, 0), (2024, 10, 11, 60), (-10, 0, 0, 0.0000015), \
             (NULL, 1, 1, 1)) AS v(y, h, m, s)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c\n\
         2024-02-28 10:11:12.5,10:11:12.500,2024-01-02T03:04:05.000500\n\
         2024-02-29 00:00:00,00:00:00,2024-01-02T03:04:05.000500\n\
         2024-02-28 10:12:00,10:12:00,2024-01-02T03:04:05.000500\n\
         0011-02-28 (BC) 00:00:00.000002,00:00:00.000002,2024-01-02T03:04:05.000500\n\
         ,01:01:01,2024-01-02T03:04:05.000500\n"
    );
    for (q, says) in [
        (
            "SELECT make_timestamp(2024, 2, 30, 10, 11, 12.5)",
            "make_timestamp: date out of range: 2024-2-30",
        ),
        (
            "SELECT make_time(10, 60, 0)",
            "make_time: time out of range: 10:60:0",
        ),
        (
            "SELECT make_timestamp(9223372036854775807)",
            "make_timestamp: microseconds out of range",
        ),
        (
            "SELECT make_timestamp(2024, 1, 1, 9223372036854775807, 1, 1)",
            "make_timestamp: time out of range",
        ),
        (
            "SELECT to_timestamp('nan'::DOUBLE)",
            "to_timestamp: seconds out of range: NaN",
        ),
        (
            "SELECT to_timestamp(1e300)",
            "to_timestamp: seconds out of range: 1e300",
        ),
    ] {
        let o = segscore_in(tmp.path(), &["sql", q]);
        assert!(stderr(&o).contains(says), "{q}: {}", stderr(&o));
    }
}

/// DuckDB's list lambdas, its newer syntax and its older, in the higher-order functions
/// DataFusion has (each expected value DuckDB 2.0.1's, `array_first` and `array_any_match` as
/// its `list_filter(...)[1]` and `list_bool_or(list_transform(...))`); DataFusion's
/// generic parser refused both. What the generic dialect took and DuckDB's does not (`^@`,
/// `PREWHERE`) still parses; a JSON arrow is refused saying what a lambda is for.
#[test]
fn sql_takes_duckdbs_list_lambdas() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT list_transform(l, lambda x: x * 2) AS a, list_filter(l, x -> x > 1) AS b, \
             array_first(l, lambda x: x > 1) AS c, array_any_match(l, lambda x: x IS NULL) AS d, \
             s ^@ 'h' AS e FROM (VALUES ([1, 2, 3], 'hi'), ([NULL, 5], 'x'), (NULL, NULL)) AS v(l, s)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c,d,e\n\"[2, 4, 6]\",\"[2, 3]\",2,false,true\n\"[, 10]\",[5],5,true,false\n,,,,\n"
    );
    let o = segscore_in(
        tmp.path(),
        &["sql", "SELECT j -> 'a' FROM (VALUES ('{}')) AS v(j)"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("a lambda (`x -> ...`, `lambda x: ...`) is taken as a list function's argument only"),
        "{}",
        stderr(&o)
    );
}

/// DuckDB's `age(end, start)` (years, months, days as a calendar reads them, then the time)
/// and `date_sub(part, start, end)` (the whole parts between, where `date_diff` counts the
/// boundaries crossed), which DataFusion lacks ("Invalid function"). Each expected value is
/// DuckDB 2.0.1's.
#[test]
fn sql_takes_duckdbs_age_and_date_sub() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT age(e, s)::VARCHAR AS a, date_sub('month', s, e) AS m, date_diff('month', s, e) AS dm, \
             date_sub('day', s, e) AS d, date_diff('day', s, e) AS dd, datesub('year', s, e) AS y \
             FROM (VALUES (TIMESTAMP '2024-02-29 00:00:00', TIMESTAMP '2024-03-31 00:00:00'), \
             (TIMESTAMP '2024-01-31 12:00:00', TIMESTAMP '2024-02-29 11:00:00'), \
             (TIMESTAMP '2023-02-28 10:00:00', TIMESTAMP '2024-01-31 00:00:00'), \
             (TIMESTAMP '2024-03-15 00:00:00', TIMESTAMP '2024-01-01 00:00:00'), (NULL, NULL)) AS v(s, e)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,m,dm,d,dd,y\n\
         1 month 2 days,1,1,31,31,0\n\
         28 days 23:00:00,0,1,28,29,0\n\
         11 months 2 days 14:00:00,11,11,336,337,0\n\
         -2 months -14 days,-2,-2,-74,-74,0\n\
         ,,,,,\n"
    );
    let o = segscore_in(
        tmp.path(),
        &[
            "sql",
            "SELECT date_sub('fortnight', DATE '2024-01-01', DATE '2024-02-01')",
        ],
    );
    assert!(
        stderr(&o).contains("'fortnight' is not a date part"),
        "{}",
        stderr(&o)
    );
    // The microseconds between times 400,000 years apart are past a BIGINT: an error, where
    // they wrapped (or panicked, in a debug build); the days are counted.
    for f in ["date_diff", "date_sub"] {
        let span = "make_timestamp(-200000, 1, 1, 0, 0, 0), make_timestamp(200000, 1, 1, 0, 0, 0)";
        let o = segscore_in(
            tmp.path(),
            &["sql", &format!("SELECT {f}('microsecond', {span})")],
        );
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("the count of 'microsecond' is past a BIGINT"),
            "{}",
            stderr(&o)
        );
        let q = format!("SELECT {f}('day', {span}) AS d");
        assert_eq!(sql_csv_in(tmp.path(), &q), "d\n146097000\n");
    }
}

/// An interval times or divided by a number, as in DuckDB (each expected value DuckDB 2.0.1's):
/// by an integer each part exactly, by any other number (and in a division) the fractions of
/// months and days carried down; DataFusion refused both ("Cannot get result type for temporal
/// operation Int64 * Interval(MonthDayNano)").
#[test]
fn sql_multiplies_and_divides_an_interval_by_a_number() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT n, (n * INTERVAL '1 month 2 days 3 hours')::VARCHAR AS a, \
             (INTERVAL 1 DAY * n)::VARCHAR AS b, DATE '2024-01-31' + n * INTERVAL 1 MONTH AS c, \
             (INTERVAL 7 MONTH / n)::VARCHAR AS d, (INTERVAL 1 MONTH * (n / 2))::VARCHAR AS e \
             FROM (VALUES (1), (2), (-3), (NULL)) AS v(n) ORDER BY n NULLS LAST";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "n,a,b,c,d,e\n\
         -3,-3 months -6 days -09:00:00,-3 days,2023-10-31T00:00:00,-2 months -10 days,-1 month -15 days\n\
         1,1 month 2 days 03:00:00,1 day,2024-02-29T00:00:00,7 months,15 days\n\
         2,2 months 4 days 06:00:00,2 days,2024-03-31T00:00:00,3 months 15 days,1 month\n\
         ,,,,,\n"
    );
    let o = segscore_in(tmp.path(), &["sql", "SELECT INTERVAL 1 DAY / 0"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("Divide by zero"), "{}", stderr(&o));
    let o = segscore_in(tmp.path(), &["sql", "SELECT INTERVAL '2147483647 days' * 2"]);
    assert!(
        stderr(&o).contains("Overflow in multiplication of INTERVAL"),
        "{}",
        stderr(&o)
    );
}

/// DuckDB's `last_day(t)` (the month's last day, a DATE), `date_add(t, interval)` and
/// `geomean(x)` (`geometric_mean`), which DataFusion lacks ("Invalid function"), and `substr`
/// from a negative start as DuckDB reads it.
#[test]
fn sql_takes_duckdbs_last_day_date_add_geomean_and_substr() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT last_day(DATE '2024-02-10') AS a, last_day(TIMESTAMP '2023-12-10 10:00:00') AS b, \
             date_add(DATE '2024-01-31', INTERVAL 1 MONTH) AS c, geomean(x) AS g, geometric_mean(x * 0) AS z \
             FROM (VALUES (1), (4), (16)) AS v(x)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c,g,z\n2024-02-29,2023-12-31,2024-02-29T00:00:00,4.0,0.0\n"
    );
    // A negative start counts from the end, as in DuckDB (DataFusion, as PostgreSQL, read it as
    // a position before the first character: `substr('hello', -3)` was `hello`).
    let q = "SELECT substr(s, -3) AS a, substr(s, -3, 2) AS b, substring(s FROM -2 FOR 1) AS c, \
             substring(s, -10, 7) AS d, substr(s, 2, 2) AS e, substr(s, n) AS f, substr(s, 0, 2) AS g \
             FROM (VALUES ('héllo', -1), ('ab', 2), (NULL, -1), ('xyz', NULL)) AS v(s, n)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c,d,e,f,g\nllo,ll,l,hé,él,o,h\nab,a,a,,b,b,a\n,,,,,,\nxyz,xy,y,,yz,,x\n"
    );
}

/// A date, time, timestamp, interval, duration or float cast to text reads as DuckDB's text (each
/// expected value is DuckDB 2.0.1's, its TimeZone UTC): a space before the time, no trailing
/// zeros, `(BC)`, intervals as `1 year 2 months 3 days 04:05:06.5`; in a cast, a `||`, a
/// function that takes text, a GROUP BY key. Arrow's cast wrote `2024-03-05T10:00:00.500`, so
/// `split_part(ts::VARCHAR, ' ', 2)` gave the whole text.
#[test]
fn sql_writes_times_and_floats_as_text_as_duckdb_does() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT ts::VARCHAR AS a, 'at ' || ts AS b, split_part(ts::VARCHAR, ' ', 2) AS c, \
             CAST(ts::TIME AS VARCHAR) AS t, (ts - TIMESTAMP '2024-03-01 00:00:00')::VARCHAR AS d, \
             CAST((ts::DATE - INTERVAL 2024 YEAR)::DATE AS VARCHAR) AS bc \
             FROM (VALUES (TIMESTAMP '2024-03-05 10:00:00.5'), (TIMESTAMP '2024-02-27 23:59:59.000001'), (NULL)) \
             AS v(ts) ORDER BY ts";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c,t,d,bc\n\
         2024-02-27 23:59:59.000001,at 2024-02-27 23:59:59.000001,23:59:59.000001,23:59:59.000001,-2 days -00:00:00.999999,0001-02-27 (BC)\n\
         2024-03-05 10:00:00.5,at 2024-03-05 10:00:00.5,10:00:00.5,10:00:00.5,4 days 10:00:00.5,0001-03-05 (BC)\n\
         ,,,,,\n"
    );
    // A GROUP BY key keeps its name; units of milliseconds and a time zone (UTC, `+00`).
    let q = "SELECT ts::VARCHAR AS k, count(*) AS n, \
             min(arrow_cast(ts, 'Timestamp(Millisecond, Some(\"UTC\"))')::VARCHAR) AS z \
             FROM (VALUES (TIMESTAMP '2024-03-05 10:00:00'), (TIMESTAMP '2024-03-05 10:00:00'), \
             (TIMESTAMP '2024-03-05 10:00:00.25')) AS v(ts) GROUP BY ts::VARCHAR ORDER BY k";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "k,n,z\n2024-03-05 10:00:00,2,2024-03-05 10:00:00+00\n2024-03-05 10:00:00.25,1,2024-03-05 10:00:00.25+00\n"
    );
    let q = "SELECT CAST(INTERVAL '1 year 2 months 3 days 4 hours 5 minutes 6.5 seconds' AS VARCHAR) AS a, \
             CAST(INTERVAL '-90 minutes' AS VARCHAR) AS b, TRY_CAST(INTERVAL 0 DAY AS VARCHAR) AS c, \
             concat_ws('|', TIME '10:11:12.010', DATE '2024-01-01') AS d";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c,d\n1 year 2 months 3 days 04:05:06.5,-01:30:00,00:00:00,10:11:12.01|2024-01-01\n"
    );
    // A float's text, as DuckDB's (Python's `repr`): arrow's wrote 1e16, 0.00001, 1.5e-7, NaN.
    let q = "SELECT CAST(1e15::DOUBLE AS VARCHAR) AS a, CAST(1e16::DOUBLE AS VARCHAR) AS b, \
             CAST(0.00001::DOUBLE AS VARCHAR) AS c, CAST('nan'::DOUBLE AS VARCHAR) AS d, \
             'x' || 0.5::DOUBLE AS e, CAST(0.1::FLOAT AS VARCHAR) AS f, CAST(1e20::FLOAT AS VARCHAR) AS g, \
             string_agg(v, '|') AS h FROM (VALUES (1.5e-7::DOUBLE), (2.5::DOUBLE)) AS u(v)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c,d,e,f,g,h\n1000000000000000.0,1e+16,1e-05,nan,x0.5,0.1,1e+20,1.5e-07|2.5\n"
    );
    // A half float (a Parquet FLOAT16 column) as DuckDB reads one, a FLOAT (DuckDB 2.0.1's text
    // of the same column): arrow's wrote `-2`.
    let q =
        "SELECT CAST(arrow_cast(-2.0, 'Float16') AS VARCHAR) AS a, 'x' || arrow_cast(0.1, 'Float16') AS b";
    assert_eq!(sql_csv_in(tmp.path(), q), "a,b\n-2.0,x0.099975586\n");
}

/// A text's subscripts as DuckDB reads them (DataFusion took a list's alone: "No function
/// matches ... array_element"), categorical text too, and a list's or a text's slice with a
/// bound left out (DataFusion: "Slice subscript requires a lower bound"). The expected rows are
/// DuckDB 2.0.1's (as were, checked by hand, every slice from -7 to 7 of three texts). DuckDB's
/// `s ^@ prefix` and `struct_extract` too.
#[test]
fn sql_takes_subscripts_of_texts_and_open_slices() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT s[1] AS a, s[-1] AS b, s[0] AS c, s[0] IS NULL AS cn, s[2:3] AS d, s[:2] AS e, \
             s[-3:] AS f, s[:-1] AS g, arrow_cast(s, 'Dictionary(Int32, Utf8)')[2:] AS h, l[:2] AS i, \
             l[2:] AS j, l[-2:] AS k, list_min(l) AS m \
             FROM (VALUES ('héllo', [3, 1, 2]), (NULL, []), ('x', NULL)) AS v(s, l)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c,cn,d,e,f,g,h,i,j,k,m\n\
         h,o,,false,él,hé,llo,héllo,éllo,\"[3, 1]\",\"[1, 2]\",\"[1, 2]\",1\n\
         ,,,true,,,,,,[],[],[],\n\
         x,x,,false,,x,x,x,,,,,\n"
    );
    // Positions from columns, and every slice of a grid against the same rule computed here.
    let pairs: Vec<String> = (-4..=4)
        .flat_map(|a| (-4..=4).map(move |b| format!("({a}, {b})")))
        .collect();
    let q = format!(
        "SELECT a, b, s[a:b] AS x, s[a] AS y FROM (VALUES {}) AS p(a, b), (VALUES ('héllo')) AS q(s) \
         ORDER BY a, b",
        pairs.join(", ")
    );
    let chars: Vec<char> = "héllo".chars().collect();
    let at = |p: i64| if p < 0 { 5 + p + 1 } else { p };
    let mut expected = String::from("a,b,x,y\n");
    for a in -4..=4i64 {
        for b in -4..=4i64 {
            let (first, last) = (at(a).max(1), at(b).min(5));
            let x: String = match last >= first {
                true => chars[(first - 1) as usize..last as usize].iter().collect(),
                false => String::new(),
            };
            let y = match at(a) {
                p @ 1..=5 => chars[(p - 1) as usize].to_string(),
                _ => String::new(),
            };
            expected += &format!("{a},{b},{x},{y}\n");
        }
    }
    assert_eq!(sql_csv_in(tmp.path(), &q), expected);
    // DuckDB's `^@` (starts with) and `struct_extract` (DataFusion: "Unsupported binary
    // operator: PGStartsWith", "Invalid function").
    let q = "SELECT s ^@ 'hé' AS a, s ^@ 'x' AS b, struct_extract(named_struct('f', s), 'f') AS c \
             FROM (VALUES ('héllo'), (NULL)) AS v(s)";
    assert_eq!(sql_csv_in(tmp.path(), q), "a,b,c\ntrue,false,héllo\n,,\n");
    assert_fails(
        &segscore_in(
            tmp.path(),
            &["sql", "SELECT s[1.5] FROM (VALUES ('hello')) AS v(s)"],
        ),
        2,
        "a text's subscript is a whole number of characters, not Float64",
    );
}

/// DuckDB's list aggregates: `list_aggregate(l, 'name' [, arg])` (`list_aggr`,
/// `array_aggregate`) and `list_<name>(l)` for the aggregates DataFusion has no list function
/// for; each expected row is DuckDB 2.0.1's (a NULL list gives NULL, an empty one the aggregate
/// of no rows: `count` 0). The integer `sum` refuses a sum past BIGINT, as `sum` does.
#[test]
fn sql_takes_duckdbs_list_aggregates() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT list_aggregate(l, 'median') AS a, list_count(l) AS b, list_mode(l) AS c, \
             list_string_agg(s) AS d, list_aggregate(l, 'sum') AS e, list_aggr(l, 'avg') AS f, \
             list_first(l) AS g, list_last(l) AS h, list_stddev_samp(l) AS i, \
             list_aggregate(l, 'min') AS j, list_bool_and(bs) AS k, \
             array_aggregate(s, 'string_agg', '|') AS n, list_aggregate(l, 'quantile_cont', 0.5) AS q \
             FROM (VALUES ([3, 1, NULL, 3], ['a', 'b'], [true, false]), ([], [], []), (NULL, NULL, NULL), \
             ([7], ['x', NULL], [true])) AS v(l, s, bs)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c,d,e,f,g,h,i,j,k,n,q\n\
         3.0,3,3,\"a,b\",7,2.3333333333333335,3,3,1.1547005383792515,1,false,a|b,3.0\n\
         ,0,,,,,,,,,,,\n\
         ,,,,,,,,,,,,\n\
         7.0,1,7,x,7,7.0,7,7,,7,true,x,7.0\n"
    );
    // A list of a file's column (a fixed-size one as Hugging Face writes it, a large one).
    let q = "SELECT list_aggregate(arrow_cast(l, 'FixedSizeList(2, Int64)'), 'sum') AS a, \
             list_median(arrow_cast(l, 'LargeList(Int64)')) AS b, typeof(list_count(l)) AS c \
             FROM (VALUES ([1, 2]), ([5, NULL])) AS v(l)";
    assert_eq!(sql_csv_in(tmp.path(), q), "a,b,c\n3,1.5,BIGINT\n5,5.0,BIGINT\n");
    // Two lists as vectors (embeddings), by DuckDB's names; `regexp_split_to_table`.
    let q = "SELECT list_inner_product(a, b) AS i, list_dot_product(a, b) AS d, \
             round(list_cosine_similarity(a, b), 12) AS c, round(list_cosine_distance(a, b), 12) AS cd, \
             list_distance(a, b) AS e FROM (VALUES ([1.0, 2.0], [3.0, 4.0]), ([3.0, 0.0], [0.0, 4.0])) AS v(a, b)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "i,d,c,cd,e\n11.0,11.0,0.9838699101,0.0161300899,2.8284271247461903\n0.0,0.0,0.0,1.0,5.0\n"
    );
    let q = "SELECT regexp_split_to_table('a,b,,c', ',') AS p";
    assert_eq!(sql_csv_in(tmp.path(), q), "p\na\nb\n\"\"\nc\n");
    for (q, code, message) in [
        (
            "SELECT list_aggregate([9223372036854775807, 1], 'sum')",
            1,
            "integer overflow: a sum is 9223372036854775808",
        ),
        (
            "SELECT list_aggregate([1], 'nope')",
            2,
            "list_aggregate: no aggregate function is named 'nope'",
        ),
        (
            "SELECT list_aggregate([1], x) FROM (VALUES ('sum')) AS v(x)",
            2,
            "the aggregate's name is a text written in the query",
        ),
        ("SELECT list_count(5)", 2, "list_count takes a list, not Int64"),
    ] {
        assert_fails(&segscore_in(tmp.path(), &["sql", q]), code, message);
    }
}

/// A LIKE pattern's backslash is a backslash, as in DuckDB (which has no default escape);
/// DataFusion, as PostgreSQL, took it as the escape, so a Windows path's pattern matched
/// nothing. An ESCAPE clause still says what escapes. Expected values are DuckDB 2.0.1's.
#[test]
fn sql_reads_a_like_patterns_backslash_as_duckdb_does() {
    let tmp = tempfile::tempdir().unwrap();
    let q = concat!(
        r"SELECT 'a_c' LIKE 'a\_c' AS a, 'a\_c' LIKE 'a\_c' AS b, 'C:\Users\x' LIKE 'C:\Users\%' AS c, ",
        r"'a%' LIKE 'a\%' AS d, 'a_c' ILIKE 'A\_C' AS e, 'abc' NOT LIKE 'a\%' AS f, ",
        r"'a_c' LIKE 'a\_c' ESCAPE '\' AS g, 'abc' LIKE 'a%' AS h"
    );
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c,d,e,f,g,h\nfalse,true,true,false,false,true,true,true\n"
    );
    // A pattern from a column too.
    let q = r"SELECT s LIKE p AS m FROM (VALUES ('C:\Users\x', 'C:\Users\%'), ('a_c', 'a\_c'), ('abc', 'a_c')) AS v(s, p)";
    assert_eq!(sql_csv_in(tmp.path(), q), "m\ntrue\nfalse\ntrue\n");
}

/// DuckDB's `printf` (C's `%` conversions) and `format` (the fmt library's `{}`), which
/// DataFusion lacks; each expected value is DuckDB 2.0.1's, as are the refusals of a
/// conversion of the wrong type.
#[test]
fn sql_takes_duckdbs_printf_and_format() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT printf('%5.2f|%-5d|%05d|%x|%#x|%e|%g|%c|%%|%+d|%10s|%.3s', 3.14159, 42, 42, 255, 255, \
             12345.678, 0.0001, 65, 5, 'ab', 'abcdef') AS p, \
             format('{} + {:.2f} = {:>6}|{:_}|{:*^7}|{:08.3f}|{{}}', 1, 2.5, 'x', 1234567, 'ab', -3.14159) AS f, \
             format('{}|{}|{}', 1e20::DOUBLE, DATE '2024-01-01', [1, 2]) AS t, printf('%s', NULL) IS NULL AS n";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "p,f,t,n\n \
         3.14|42   |00042|ff|0xff|1.234568e+04|0.0001|A|%|+5|        ab|abc,\
         1 + 2.50 =      x|1_234_567|**ab***|-003.142|{},\
         \"1e+20|2024-01-01|[1, 2]\",true\n"
    );
    // Over a table's columns, one format a row.
    let q = "SELECT format(f, x) AS v, format(f, x) IS NULL AS n \
             FROM (VALUES ('{:.1f}', 2.25::DOUBLE), ('[{:>5}]', 7.0::DOUBLE), (NULL, 1.0)) AS t(f, x)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "v,n\n2.2,false\n[  7.0],false\n,true\n"
    );
    // A `*` width or precision is the next argument's value; a negative width aligns left
    // (segscore refused `*` as an invalid conversion).
    let q = "SELECT printf('%*d|%*d|%.*f|%*.*f|%-*s|%0*d', 5, 3, -5, 3, 2, 3.14159, 8, 2, 3.14159, 6, 'ab', 5, 42) AS p, \
             printf('%*s', NULL, 'ab') IS NULL AS n";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "p,n\n    3|3    |3.14|    3.14|ab    |00042,true\n"
    );
    for (q, message) in [
        ("SELECT printf('%*s', 2.5, 'ab')", "width is not integer"),
        ("SELECT printf('%.*f', '2', 1.5)", "precision is not integer"),
        (
            "SELECT printf('%s', 3.5)",
            "invalid type specifier \"s\" for formatting a value of type float",
        ),
        (
            "SELECT format('{:d}', 3.7)",
            "invalid type specifier \"d\" for formatting a value of type float",
        ),
        ("SELECT format('{} {}', 'a')", "argument index \"1\" out of range"),
        (
            "SELECT format('{} {0}', 'a')",
            "cannot switch from automatic to manual argument indexing",
        ),
    ] {
        assert_fails(&segscore_in(tmp.path(), &["sql", q]), 1, message);
    }
}

/// DuckDB's top-n aggregates: `max(x, n)`, `min(x, n)`, `arg_max(a, v, n)` (`max_by`),
/// `arg_min(a, v, n)` (`min_by`), lists in order, rows with a NULL left out, NULL for no rows,
/// a FILTER kept (DataFusion: "max(UserDefined)"); each expected row is DuckDB 2.0.1's.
#[test]
fn sql_takes_duckdbs_top_n_aggregates() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT g, max(x, 2) AS a, min(x, 2) AS b, arg_max(s, x, 2) AS c, min_by(s, x, 5) AS d, \
             max(x, 2) FILTER (WHERE x < 3) AS e \
             FROM (VALUES (1, 1, 'a'), (1, NULL, 'b'), (1, 3, 'c'), (1, 3, NULL), (1, 2, 'e'), (2, NULL, 'z')) \
             AS v(g, x, s) GROUP BY g ORDER BY g";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "g,a,b,c,d,e\n1,\"[3, 3]\",\"[1, 2]\",\"[c, e]\",\"[a, e, c]\",\"[2, 1]\"\n2,,,,,\n"
    );
    assert_fails(
        &segscore_in(tmp.path(), &["sql", "SELECT max(x, 0) FROM (VALUES (1)) AS v(x)"]),
        2,
        "max: n is a whole number above 0 written in the query, not 0",
    );
}

/// DuckDB's `time_bucket(width, t [, origin | offset])`: buckets from 2000-01-03 (a Monday),
/// or 2000-01-01 for months, a date for a date; each expected value is DuckDB 2.0.1's. A time
/// past the nanoseconds' years (date_bin's) is an error, not a NULL.
#[test]
fn sql_takes_duckdbs_time_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "SELECT time_bucket(INTERVAL '7 days', t) AS a, time_bucket(INTERVAL '1 month', t) AS b, \
             time_bucket(INTERVAL '7 days', t::DATE) AS c, time_bucket(INTERVAL '3 months', t) AS d, \
             time_bucket(INTERVAL '1 day', t, TIMESTAMP '2024-01-01 06:00:00') AS e, \
             time_bucket(INTERVAL '1 day', t, INTERVAL '6 hours') AS f, typeof(time_bucket(INTERVAL 1 DAY, t::DATE)) AS g \
             FROM (VALUES (TIMESTAMP '2024-03-15 10:30:00'), (TIMESTAMP '1999-11-15 01:00:00'), (NULL)) AS v(t)";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "a,b,c,d,e,f,g\n\
         2024-03-11T00:00:00,2024-03-01T00:00:00,2024-03-11,2024-01-01T00:00:00,2024-03-15T06:00:00,2024-03-15T06:00:00,DATE\n\
         1999-11-15T00:00:00,1999-11-01T00:00:00,1999-11-15,1999-10-01T00:00:00,1999-11-14T06:00:00,1999-11-14T06:00:00,DATE\n\
         ,,,,,,DATE\n"
    );
    for q in [
        "SELECT time_bucket(INTERVAL '1 month 1 day', TIMESTAMP '2024-03-15 10:30:00')",
        "SELECT time_bucket(INTERVAL '1 day', DATE '9999-12-31')",
    ] {
        let o = segscore_in(tmp.path(), &["sql", q]);
        assert_eq!(o.status.code(), Some(1), "{q}: {}", stderr(&o));
        assert!(stderr(&o).contains("time_bucket: "), "{q}: {}", stderr(&o));
    }
}

/// Whether a CSV file starts with a line of column names is found as DuckDB's sniffer finds it:
/// a first line whose every value fits its column's type, under columns not all text, is a row
/// (DataFusion took it as names: the row was lost and the columns named `1`, `2`), named
/// `column0`, ...; `header = ...` says otherwise; a name given twice is made unique (DataFusion
/// merged the two columns and failed: "incorrect number of fields"); gzipped and in a list of
/// files alike.
#[test]
fn sql_finds_whether_a_csv_starts_with_names() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(tmp.path().join(name), text).unwrap();
    write("rows.csv", "1,2,2024-01-05\n4,5.5,2024-01-06\n");
    write("pivot.csv", "region,2022,2023\neu,1,2\n");
    write("named.csv", "id,score\n1,2\n");
    write("text.csv", "a,b\nx,y\n");
    write("twice.csv", "v,v,w\n1,2,3\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"7,8\n9,10\n").unwrap();
    std::fs::write(tmp.path().join("rows.csv.gz"), gz.finish().unwrap()).unwrap();
    let cases = [
        (
            "SELECT * FROM 'rows.csv'",
            "column0,column1,column2\n1,2.0,2024-01-05\n4,5.5,2024-01-06\n",
        ),
        (
            "SELECT * FROM 'pivot.csv'",
            "column0,column1,column2\nregion,2022,2023\neu,1,2\n",
        ),
        ("SELECT * FROM 'named.csv'", "id,score\n1,2\n"),
        ("SELECT * FROM 'text.csv'", "a,b\nx,y\n"),
        ("SELECT * FROM 'twice.csv'", "v,v_1,w\n1,2,3\n"),
        (
            "SELECT * FROM read_csv('rows.csv', header = true)",
            "1,2,2024-01-05\n4,5.5,2024-01-06\n",
        ),
        (
            "SELECT * FROM read_csv('text.csv', header = false)",
            "column0,column1\na,b\nx,y\n",
        ),
        (
            "SELECT column1 + 1 AS n FROM 'rows.csv.gz' ORDER BY n",
            "n\n9\n11\n",
        ),
    ];
    for (q, want) in cases {
        assert_eq!(sql_csv_in(tmp.path(), q), want, "{q}");
    }
}

/// A CSV column of numbers one of which has a leading zero (`007`: an id, a zip code) is read as
/// text, as DuckDB's sniffer reads it (DataFusion made `007` the number 7, so a join on the id
/// found nothing); a sign (`-01`), a lone `0` and `0.5` keep a column a number; with `nullstr`
/// too.
#[test]
fn sql_reads_zero_padded_csv_numbers_as_text() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("z.csv"),
        "id,a,b,c,d\n1,0.5,0,-01,10\n007,1.5,0,5,NA\n",
    )
    .unwrap();
    let q = "SELECT typeof(id) AS ti, typeof(a) AS ta, typeof(b) AS tb, typeof(c) AS tc, id, c \
             FROM read_csv('z.csv', nullstr = 'NA') ORDER BY id";
    assert_eq!(
        sql_csv_in(tmp.path(), q),
        "ti,ta,tb,tc,id,c\nVARCHAR,DOUBLE,BIGINT,BIGINT,007,5\nVARCHAR,DOUBLE,BIGINT,BIGINT,1,-1\n"
    );
    let joined = "SELECT count(*) AS n FROM 'z.csv' AS z JOIN (VALUES ('007')) AS v(k) ON z.id = v.k";
    assert_eq!(sql_csv_in(tmp.path(), joined), "n\n1\n");
}

/// `quantile_cont` and `percentile_cont` interpolate exactly, as DuckDB, PostgreSQL and numpy
/// do (DataFusion cut the fraction to 6 decimals: the quantile 0.0078125 of 0 and 128 was
/// 0.999936, not 1), in a select, by group (the groups' accumulator), over a sliding window
/// frame (values leave it), with `WITHIN GROUP (ORDER BY x DESC)`, a list of quantiles (which
/// DataFusion refused), `DISTINCT` and `FILTER`, and over as many groups as rows.
#[test]
fn sql_quantile_cont_interpolates_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let one = "SELECT quantile_cont(x, 0.0078125) AS a, percentile_cont(0.0078125) WITHIN GROUP (ORDER BY x DESC) AS b, \
               quantile_cont(x, [0, 0.5, 1]) AS c, quantile_cont(DISTINCT x, 0.5) AS d, quantile_cont(x, 0.5) AS e, \
               quantile_cont(x, 0.5) FILTER (WHERE x > 0) AS f FROM (VALUES (0), (0), (0), (128)) AS v(x)";
    assert_eq!(
        sql_csv_in(tmp.path(), one),
        "a,b,c,d,e,f\n0.0,125.0,\"[0.0, 0.0, 128.0]\",64.0,0.0,128.0\n"
    );
    let groups = "SELECT g, quantile_cont(x, 0.0078125) AS a FROM (VALUES (1, 0), (1, 128), (2, 5), (3, NULL)) AS v(g, x) \
                  GROUP BY g ORDER BY g";
    assert_eq!(sql_csv_in(tmp.path(), groups), "g,a\n1,1.0\n2,5.0\n3,\n");
    let window =
        "SELECT i, quantile_cont(x, 0.5) OVER (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS w \
                  FROM (VALUES (1, 10.0), (2, 20.0), (3, NULL), (4, 40.0), (5, 0.0)) AS v(i, x) ORDER BY i";
    assert_eq!(
        sql_csv_in(tmp.path(), window),
        "i,w\n1,10.0\n2,15.0\n3,20.0\n4,40.0\n5,20.0\n"
    );
    // Groups as many as rows: DataFusion passes each row on as its own group's state (its
    // quantile_cont panicked there, "one argument to merge_batch"). The medians of k / 2 and
    // (k + 300000) / 2 sum to 0.5·Σk + 300000·75000.
    let many = "SELECT count(*) AS n, sum(q) AS s FROM (SELECT k, quantile_cont(v, 0.5) AS q FROM \
                (SELECT value % 300000 AS k, value * 0.5 AS v FROM range(600000)) GROUP BY k)";
    assert_eq!(sql_csv_in(tmp.path(), many), "n,s\n300000,44999925000.0\n");
    let o = segscore_in(
        tmp.path(),
        &["sql", "SELECT quantile_cont(s, 0.5) FROM (VALUES ('a')) AS v(s)"],
    );
    assert_fails(&o, 2, "quantile_cont: x is a number, a date or a time, not Utf8");
}

/// DuckDB's `median` of any type it sorts, `quantile_cont` of dates and times and
/// `quantile_disc(DISTINCT ...)`, each answer DuckDB 2.0.1's: a date's or a timestamp's
/// quantile is a timestamp in microseconds (its zone kept), the offset from the lower value
/// rounded half away from zero (`ORDER BY ... DESC` counts from the greater); a time's is a
/// time; a text's (a boolean's, a list's) median is the lower middle value. DataFusion's `median`
/// refused a date ("Internal error ... a bug in DataFusion"), and `quantile_disc` counted a
/// DISTINCT value as often as it came (1, not 2, below).
#[test]
fn sql_median_and_quantiles_of_dates_texts_and_distinct_values() {
    let tmp = tempfile::tempdir().unwrap();
    let times = "(VALUES (1, TIMESTAMP '1969-12-31 23:59:59.000001'), (1, TIMESTAMP '1969-12-31 23:59:59.000004'), \
                 (2, TIMESTAMP '2024-01-01 00:00:00.000001'), (2, TIMESTAMP '2024-01-01 00:00:00.000004'), \
                 (2, TIMESTAMP '2024-01-01 00:00:00.000004'), (2, TIMESTAMP '2024-01-01 00:00:00.000004')) AS x(g, v)";
    for (query, want) in [
        (
            "SELECT median(v) AS m, quantile_cont(v, [0.25, 0.75]) AS qs, arrow_typeof(median(v)) AS t \
             FROM (VALUES (DATE '2024-01-01'), (DATE '2024-01-02'), (NULL)) AS x(v)"
                .to_string(),
            "m,qs,t\n2024-01-01T12:00:00,\"[2024-01-01T06:00:00, 2024-01-01T18:00:00]\",Timestamp(µs)\n",
        ),
        (
            format!(
                "SELECT g, median(v) AS m, percentile_cont(0.5) WITHIN GROUP (ORDER BY v DESC) AS p, \
                 median(DISTINCT v) AS d FROM {times} GROUP BY g ORDER BY g"
            ),
            "g,m,p,d\n\
             1,1969-12-31T23:59:59.000003,1969-12-31T23:59:59.000002,1969-12-31T23:59:59.000003\n\
             2,2024-01-01T00:00:00.000004,2024-01-01T00:00:00.000004,2024-01-01T00:00:00.000003\n",
        ),
        (
            "SELECT median(v) AS m, quantile_cont(v, [0.25, 0.75]) AS qs, arrow_typeof(median(v)) AS t \
             FROM (VALUES (TIME '10:00'), (TIME '11:00'), (TIME '11:30')) AS x(v)"
                .to_string(),
            "m,qs,t\n11:00:00,\"[10:30:00, 11:15:00]\",Time64(µs)\n",
        ),
        (
            "SELECT i, median(v) OVER (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS w FROM \
             (VALUES (1, DATE '2024-01-01'), (2, DATE '2024-01-02'), (3, NULL), (4, DATE '2024-01-10')) AS x(i, v) ORDER BY i"
                .to_string(),
            "i,w\n1,2024-01-01T00:00:00\n2,2024-01-01T12:00:00\n3,2024-01-02T00:00:00\n4,2024-01-10T00:00:00\n",
        ),
        (
            "SELECT median(s) AS ms, median(b) AS mb, median(DISTINCT s) AS md, median(l) AS ml FROM (VALUES \
             ('b', true, [2]), ('a', false, [1]), ('c', true, [3]), ('d', NULL, [4]), (NULL, NULL, NULL), \
             ('a', NULL, [1]), ('a', NULL, [1])) AS x(s, b, l)"
                .to_string(),
            "ms,mb,md,ml\na,true,b,[1]\n",
        ),
        (
            "SELECT quantile_disc(DISTINCT v, 0.5) AS a, quantile_disc(v, 0.5) AS b, \
             quantile_disc(DISTINCT v, [0.0, 0.4, 1.0]) AS c FROM (VALUES (1), (1), (1), (2), (3), (NULL)) AS t(v)"
                .to_string(),
            "a,b,c\n2,1,\"[1, 2, 3]\"\n",
        ),
        (
            "SELECT g, quantile_disc(DISTINCT v, 0.5) AS a FROM (VALUES (1, 1), (1, 1), (1, 1), (1, 2), (1, 3), (2, 5)) \
             AS t(g, v) GROUP BY g ORDER BY g"
                .to_string(),
            "g,a\n1,2\n2,5\n",
        ),
        // Over a sliding frame, the values leaving it first to last (it was refused).
        (
            "SELECT i, quantile_disc(v, 0.5) OVER w AS q, median(s) OVER w AS m, quantile_disc(v, [0.0, 1.0]) OVER w AS qs \
             FROM (VALUES (1, 3, 'c'), (2, 1, 'a'), (3, NULL, NULL), (4, 5, 'e'), (5, 2, 'b'), (6, 4, 'd'), \
             (7, NULL, NULL), (8, NULL, NULL), (9, NULL, NULL)) AS t(i, v, s) \
             WINDOW w AS (ORDER BY i ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) ORDER BY i"
                .to_string(),
            "i,q,m,qs\n1,3,c,\"[3, 3]\"\n2,1,a,\"[1, 3]\"\n3,1,a,\"[1, 3]\"\n4,1,a,\"[1, 5]\"\n5,2,b,\"[2, 5]\"\n\
             6,4,d,\"[2, 5]\"\n7,2,b,\"[2, 4]\"\n8,4,d,\"[4, 4]\"\n9,,,\n",
        ),
        // Numbers stay DataFusion's: integers as DOUBLE, decimals as decimals.
        (
            "SELECT median(i) AS i, median(d::DECIMAL(4,1)) AS d, arrow_typeof(median(d::DECIMAL(4,1))) AS t, \
             list_median([1, 2, 3, 4]) AS l \
             FROM (VALUES (1, 1.5), (2, 2.0)) AS x(i, d)"
                .to_string(),
            "i,d,t,l\n1.5,1.7,\"Decimal128(4, 1)\",2.5\n",
        ),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), &query), want, "{query}");
    }
}

/// `DISTINCT` in segscore's aggregates counts each distinct value (a row of several arguments,
/// as a whole) once, as DuckDB 2.0.1 does, also where the rows come from two files (each
/// partition's distinct values merged) and beside an aggregate without DISTINCT (where
/// DataFusion does not rewrite the DISTINCT into a GROUP BY). They counted every row: the
/// histogram below was `{0: 400, ...}`. DuckDB's top-n forms and `count_if` take DISTINCT too.
#[test]
fn sql_distinct_aggregates_count_each_value_once() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("two")).unwrap();
    for name in ["a", "b"] {
        let copy =
            format!("COPY (SELECT value % 5 AS v, value AS i FROM range(1000)) TO 'two/{name}.parquet'");
        let o = segscore_in(tmp.path(), &["sql", &copy]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    for (query, want) in [
        (
            "SELECT histogram(DISTINCT v) AS h, count(*) AS n, round(entropy(DISTINCT v), 9) AS e FROM 'two/'",
            "h,n,e\n\"{0: 1, 1: 1, 2: 1, 3: 1, 4: 1}\",2000,2.321928095\n",
        ),
        (
            "SELECT round(entropy(DISTINCT v), 9) AS e, histogram(DISTINCT v) AS h, count(*) AS n \
             FROM (VALUES (1), (1), (1), (2), (3)) AS t(v)",
            "e,h,n\n1.584962501,\"{1: 1, 2: 1, 3: 1}\",5\n",
        ),
        (
            "SELECT round(skewness(DISTINCT v), 9) AS s, round(kurtosis(DISTINCT v), 9) AS k, \
             round(kurtosis_pop(DISTINCT v), 9) AS kp, count(*) AS n \
             FROM (VALUES (1.0), (1.0), (1.0), (2.0), (3.0), (10.0)) AS t(v)",
            "s,k,kp,n\n1.763632615,3.228,-0.7696,6\n",
        ),
        // Pairs: DuckDB's corr(DISTINCT x, y) over (1, 1) twice, (2, 3), (3, 2), (1, 5).
        (
            "SELECT round(pearson(DISTINCT x, y), 12) AS p, round(pearson(x, y), 12) AS q \
             FROM (VALUES (1.0, 1.0), (1.0, 1.0), (2.0, 3.0), (3.0, 2.0), (1.0, 5.0)) AS t(x, y)",
            "p,q\n-0.254823595719,-0.033407655239\n",
        ),
        (
            "SELECT g, histogram(DISTINCT v) AS h, count(*) AS n FROM \
             (VALUES (1, 'a'), (1, 'a'), (1, 'b'), (2, 'c'), (2, 'c')) AS t(g, v) GROUP BY g ORDER BY g",
            "g,h,n\n1,\"{a: 1, b: 1}\",3\n2,{c: 1},2\n",
        ),
        (
            "SELECT g, count_if(DISTINCT v > 1) AS c, max(DISTINCT v, 2) FILTER (WHERE v < 3) AS m, \
             min(DISTINCT v, 5) AS n, arg_min(DISTINCT v, -v) AS a \
             FROM (VALUES (1, 1), (1, 2), (1, 2), (1, 3), (2, 1), (3, NULL)) AS t(g, v) GROUP BY g ORDER BY g",
            "g,c,m,n,a\n1,1,\"[2, 1]\",\"[1, 2, 3]\",3\n2,0,[1],[1],1\n3,,,,\n",
        ),
        // Both orders in one select, in one partition and over two files: DataFusion's
        // `array_agg(DISTINCT x ORDER BY x)` (which these are) gave both the first one's order.
        (
            "SELECT max(DISTINCT v, 2) AS a, min(DISTINCT v, 2) AS b FROM (VALUES (1), (1), (3), (3), (2)) AS t(v)",
            "a,b\n\"[3, 2]\",\"[1, 2]\"\n",
        ),
        (
            "SELECT array_agg(DISTINCT v ORDER BY v DESC) AS a, list(DISTINCT v ORDER BY v) AS b, count(*) AS n FROM 'two/'",
            "a,b,n\n\"[4, 3, 2, 1, 0]\",\"[0, 1, 2, 3, 4]\",2000\n",
        ),
        // DuckDB's approx_count_distinct of floats (DataFusion's refused them).
        (
            "SELECT g, approx_count_distinct(v) AS a, approx_distinct(v::FLOAT) AS f FROM \
             (VALUES (1, 1.5), (1, 1.5), (1, 2.0), (1, NULL), (2, NULL)) AS t(g, v) GROUP BY g ORDER BY g",
            "g,a,f\n1,2,2\n2,0,0\n",
        ),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), query), want, "{query}");
    }
    let o = segscore_in(
        tmp.path(),
        &[
            "sql",
            "SELECT arg_max(DISTINCT v, w, 2) FROM (VALUES (1, 2)) AS t(v, w)",
        ],
    );
    assert_fails(&o, 2, "arg_max(DISTINCT arg, val, n) is not taken here");
}

/// DuckDB's statistics aggregates that DataFusion has none for: `skewness`, `kurtosis`,
/// `kurtosis_pop` (pandas' values; NULL for a constant column, as DuckDB 2.0.1 gives, and for
/// too few rows),
/// `quantile_disc` / `quantile` (one of the values; a list of quantiles gives a list; texts
/// too), `entropy` (bits), and `isinf`, `isfinite`, `gen_random_uuid`; a quantile that is not
/// a constant from 0 to 1 is refused.
#[test]
fn sql_takes_duckdbs_statistics_aggregates() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = "(VALUES (1, 1.0, 'f'), (1, 2.0, 'b'), (1, 4.0, 'a'), (1, 8.0, 'e'), (1, 16.0, 'c'), (1, 3.0, 'd'), (1, NULL, NULL), \
                (2, 5.0, 'x'), (2, 5.0, 'x'), (2, 5.0, 'y'), (2, 5.0, 'x'), (3, 7.0, 'z')) AS t(g, x, s)";
    for (query, want) in [
        (
            format!(
                "SELECT g, round(skewness(x), 9) AS sk, round(kurtosis(x), 9) AS ku, round(kurtosis_pop(x), 9) AS kp, \
                 quantile_disc(x, 0.5) AS q, quantile(x, [0, 0.25, 1]) AS qs, quantile_disc(s, 0.5) AS qt, \
                 round(entropy(s), 9) AS e FROM {rows} GROUP BY g ORDER BY g"
            ),
            "g,sk,ku,kp,q,qs,qt,e\n\
             1,1.600262011,2.335670425,-0.056341569,3.0,\"[1.0, 2.0, 16.0]\",c,2.584962501\n\
             2,,,,5.0,\"[5.0, 5.0, 5.0]\",x,0.811278124\n\
             3,,,,7.0,\"[7.0, 7.0, 7.0]\",z,0.0\n",
        ),
        // The SQL standard's spelling (DuckDB's and PostgreSQL's): descending counts from the
        // greatest; DuckDB's `variance` and `sign`.
        (
            format!(
                "SELECT g, percentile_disc(0.5) WITHIN GROUP (ORDER BY x) AS p, \
                 percentile_disc(0.25) WITHIN GROUP (ORDER BY x DESC) AS pd, \
                 percentile_disc([0.0, 1.0]) WITHIN GROUP (ORDER BY s DESC) AS ps, round(variance(x), 9) AS v, \
                 sign(g - 2) AS sg FROM {rows} GROUP BY g ORDER BY g"
            ),
            "g,p,pd,ps,v,sg\n1,3.0,8.0,\"[f, a]\",31.466666667,-1.0\n2,5.0,5.0,\"[y, x]\",0.0,0.0\n3,7.0,7.0,\"[z, z]\",,1.0\n",
        ),
        // Over a sliding frame (the frame's moments, computed afresh: a frame of one repeated
        // value left at the end is NULL), DuckDB 2.0.1's answers to 6 decimals.
        (
            "SELECT i, round(skewness(v) OVER w, 6) AS s, round(kurtosis(v) OVER w, 6) AS k, \
             round(kurtosis_pop(v) OVER w, 6) AS kp FROM (VALUES (1, 1.0), (2, 4.0), (3, 2.0), (4, 8.0), \
             (5, NULL), (6, 3.0), (7, 3.0), (8, 10.0), (9, 1.0), (10, 0.3), (11, 0.3), (12, 0.3), (13, 0.3), \
             (14, 0.3)) AS t(i, v) WINDOW w AS (ORDER BY i ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) ORDER BY i"
                .to_string(),
            "i,s,k,kp\n1,,,\n2,,,-2.0\n3,0.93522,,-1.5\n4,1.137624,0.757656,-1.098979\n5,1.137624,0.757656,-1.098979\n\
             6,1.443059,2.234867,-0.902018\n7,1.812802,3.483471,-0.735537\n8,0.266188,-4.48338,-1.797784\n\
             9,1.645904,3.103206,-0.786239\n10,1.704387,3.206343,-0.198414\n11,1.872419,3.486475,-0.128381\n\
             12,2.208643,4.896033,0.224008\n13,2.236068,5.0,0.25\n14,,,\n",
        ),
        // A value far larger than the rest leaving the frame (undoing its update of running
        // moments left 4.9e13 for the skewness of 1, 2, 3).
        (
            "SELECT i, round(skewness(v) OVER w, 9) AS s, round(kurtosis_pop(v) OVER w, 9) AS kp FROM \
             (VALUES (1, 1e10), (2, 1.0), (3, 2.0), (4, 4.0), (5, 3.0), (6, 5.0), (7, 1.0)) AS t(i, v) \
             WINDOW w AS (ORDER BY i ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) ORDER BY i"
                .to_string(),
            "i,s,kp\n1,,\n2,,-2.0\n3,1.732050808,-1.5\n4,0.93521953,-1.5\n5,0.0,-1.5\n6,0.0,-1.5\n7,0.0,-1.5\n",
        ),
        (
            format!("SELECT quantile_disc(x, 0.5) AS q, entropy(x) AS e, skewness(x) AS sk FROM {rows} WHERE x > 100"),
            "q,e,sk\n,0.0,\n",
        ),
        (
            "SELECT isinf(x) AS i, isfinite(x) AS f, len(gen_random_uuid()::VARCHAR) AS u FROM \
             (VALUES ('inf'::DOUBLE), ('-inf'::DOUBLE), ('nan'::DOUBLE), (1.5), (NULL)) AS v(x)"
                .to_string(),
            "i,f,u\ntrue,false,36\ntrue,false,36\nfalse,false,36\nfalse,true,36\n,,36\n",
        ),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), &query), want, "{query}");
    }
    let o = segscore_in(
        tmp.path(),
        &["sql", &format!("SELECT quantile_disc(x, 1.5) FROM {rows}")],
    );
    assert_fails(
        &o,
        1,
        "quantile_disc: the quantile is a constant from 0 to 1 or a list of them, not 1.5",
    );
    let o = segscore_in(
        tmp.path(),
        &["sql", &format!("SELECT quantile_disc(x, x / 100) FROM {rows}")],
    );
    assert_fails(&o, 1, "not a column");
}

/// TABLESAMPLE samples the table (DataFusion's planner passed over it and read every row):
/// `n ROWS` takes exactly n of the table's rows, `p PERCENT` (BERNOULLI, SYSTEM) keeps each row
/// with probability p/100, under the table's alias or name; what cannot be done as asked (a
/// seed, a size with no unit, a percentage over 100) is refused.
#[test]
fn sql_tablesample_samples_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    write_rows(&tmp.path().join("in.parquet"), &hand_rows());
    let sql = |q: &str| segscore_in(tmp.path(), &["sql", "--format", "csv", q]);
    for (query, want) in [
        ("SELECT count(*) AS n FROM 'in.parquet' TABLESAMPLE 3 ROWS", "n\n3\n"),
        (
            "SELECT count(DISTINCT s.generation_id || '/' || s.segment_index) AS n FROM 'in.parquet' AS s TABLESAMPLE 5 ROWS \
             JOIN 'in.parquet' AS t ON s.generation_id = t.generation_id AND s.segment_index = t.segment_index \
             AND s.cumulative_score = t.cumulative_score",
            "n\n5\n",
        ),
        (
            "SELECT count(\"in.parquet\".segment_index) AS n FROM 'in.parquet' TABLESAMPLE 100 PERCENT",
            "n\n8\n",
        ),
        ("SELECT count(*) AS n FROM 'in.parquet' TABLESAMPLE BERNOULLI (0)", "n\n0\n"),
        ("SELECT count(*) AS n FROM 'in.parquet' TABLESAMPLE 20 ROWS", "n\n8\n"),
        (
            "SELECT count(x.g) AS n FROM (SELECT generation_id AS g FROM 'in.parquet') AS x TABLESAMPLE 2 ROWS",
            "n\n2\n",
        ),
        ("SELECT count(s.b) AS n FROM 'in.parquet' s(a, b, c, d, e) TABLESAMPLE 6 ROWS", "n\n6\n"),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), query), want, "{query}");
    }
    // DuckDB's USING SAMPLE (sampling right after the FROM) is the one table's TABLESAMPLE;
    // over a join it is refused.
    for (query, want) in [
        ("SELECT count(*) AS n FROM 'in.parquet' USING SAMPLE 3 ROWS", "n\n3\n"),
        (
            "SELECT count(*) AS n FROM (FROM 'in.parquet' AS i WHERE i.generation_id = 'a' USING SAMPLE 100%)",
            "n\n4\n",
        ),
        ("SELECT count(*) AS n FROM 'in.parquet' USING SAMPLE reservoir(0 ROWS)", "n\n0\n"),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), query), want, "{query}");
    }
    assert_fails(
        &sql("SELECT count(*) FROM 'in.parquet' a JOIN 'in.parquet' b USING (generation_id) USING SAMPLE 1%"),
        2,
        "query: USING SAMPLE: over a join DuckDB samples the joined rows; write TABLESAMPLE after the table to sample",
    );
    // EXPLAIN plans the query as it runs: the sample and ORDER BY ALL in it.
    let o = sql("EXPLAIN SELECT generation_id FROM 'in.parquet' TABLESAMPLE 3 ROWS ORDER BY ALL");
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = String::from_utf8(o.stdout).unwrap();
    assert!(plan.contains("random()") && plan.contains("fetch=3"), "{plan}");
    // Half of 10,000 rows: 5,000 give or take 50 (one standard deviation); 10 of them apart
    // happens about once in 10^23 runs.
    let o = sql("SELECT count(*) AS n FROM generate_series(1, 10000) TABLESAMPLE SYSTEM (50 PERCENT)");
    assert!(o.status.success(), "{}", stderr(&o));
    let n: u64 = String::from_utf8(o.stdout)
        .unwrap()
        .trim()
        .trim_start_matches("n\n")
        .parse()
        .unwrap();
    assert!((4500..=5500).contains(&n), "{n} of 10000 rows at 50 percent");
    for (sample, why) in [
        ("10 PERCENT REPEATABLE (42)", "a seed is not taken"),
        ("(10)", "say PERCENT or ROWS"),
        (
            "150 PERCENT",
            "the size is a percentage from 0 to 100, or a whole number of rows",
        ),
    ] {
        let o = sql(&format!("SELECT count(*) FROM 'in.parquet' TABLESAMPLE {sample}"));
        assert_fails(&o, 2, why);
    }
}

/// The other clauses DataFusion's planner passed over, each changing the result: ClickHouse's
/// PREWHERE filters, MySQL's WITH ROLLUP and WITH CUBE add their subtotal rows, and what
/// DataFusion cannot do is refused (exit 2) naming the clause; before, each query ran as if the
/// clause were not there. FETCH FIRST, which DataFusion refused, is a LIMIT.
#[test]
fn sql_does_or_refuses_clauses_datafusion_passed_over() {
    let tmp = tempfile::tempdir().unwrap();
    write_rows(&tmp.path().join("in.parquet"), &hand_rows());
    let sql = |q: &str| segscore_in(tmp.path(), &["sql", "--format", "csv", q]);
    for (query, want) in [
        (
            "SELECT count(*) AS n FROM 'in.parquet' PREWHERE segment_index > 0 WHERE generation_id = 'a'",
            "n\n3\n",
        ),
        ("SELECT count(*) AS n FROM 'in.parquet' PREWHERE segment_index > 1", "n\n3\n"),
        (
            "SELECT generation_id, count(*) AS n FROM 'in.parquet' GROUP BY generation_id WITH ROLLUP ORDER BY generation_id NULLS LAST",
            "generation_id,n\na,4\nb,1\nc,3\n,8\n",
        ),
        (
            "SELECT generation_id, segment_index = 0 AS first, count(*) AS n FROM 'in.parquet' WHERE generation_id <> 'a' \
             GROUP BY generation_id, segment_index = 0 WITH CUBE ORDER BY ALL NULLS LAST",
            "generation_id,first,n\nb,true,1\nb,,1\nc,false,2\nc,true,1\nc,,3\n,false,2\n,true,2\n,,4\n",
        ),
        // The SQL standard's FETCH FIRST (DataFusion: "not supported yet") is a LIMIT.
        (
            "SELECT generation_id, segment_index FROM 'in.parquet' ORDER BY ALL OFFSET 1 ROWS FETCH NEXT 2 ROWS ONLY",
            "generation_id,segment_index\na,1\na,2\n",
        ),
        (
            "SELECT * FROM (SELECT generation_id FROM 'in.parquet' ORDER BY 1 DESC FETCH FIRST ROW ONLY)",
            "generation_id\nc\n",
        ),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), query), want, "{query}");
    }
    for (clause, why) in [
        (
            "START WITH segment_index = 0 CONNECT BY PRIOR segment_index = segment_index - 1",
            "hierarchical queries are not taken",
        ),
        ("GROUP BY generation_id WITH TOTALS", "WITH TOTALS: not taken"),
        ("FOR JSON PATH", "FOR JSON PATH: not taken"),
        ("SETTINGS max_threads = 1", "SETTINGS max_threads = 1: not taken"),
        ("FORMAT JSONEachRow", "FORMAT JSONEachRow: not taken"),
        (
            "ORDER BY 1 FETCH FIRST 2 ROWS WITH TIES",
            "FETCH FIRST 2 ROWS WITH TIES: not taken",
        ),
        (
            "FETCH FIRST 10 PERCENT ROWS ONLY",
            "FETCH FIRST 10 PERCENT ROWS ONLY: not taken",
        ),
        (
            "LIMIT 2 FETCH FIRST 2 ROWS ONLY",
            "beside a LIMIT: give one of them",
        ),
        // ClickHouse's LIMIT n BY x ("No field named x" before).
        (
            "ORDER BY 1 LIMIT 1 BY generation_id",
            "LIMIT ... BY generation_id: not taken",
        ),
    ] {
        let o = sql(&format!("SELECT generation_id FROM 'in.parquet' {clause}"));
        assert_fails(&o, 2, why);
    }
    let o = sql("SELECT * FROM 'in.parquet' PARTITION (p0)");
    assert_fails(&o, 2, "PARTITION (p0): not taken");
    // SQL DataFusion's planner has no such thing as is named, not dumped as its syntax tree.
    let o = segscore_in(
        tmp.path(),
        &[
            "sql",
            "SELECT x FROM (VALUES ('b'), ('A')) AS v(x) ORDER BY x COLLATE NOCASE",
        ],
    );
    assert_fails(
        &o,
        2,
        "`Collate` is not taken here (DataFusion's planner has no such SQL)",
    );
    assert!(!stderr(&o).contains("Ident {"), "{}", stderr(&o));
}

/// DuckDB's SUMMARIZE: a row per column with its type, min, max, distinct count, mean, standard
/// deviation, quartiles, count and share of nulls (the values DuckDB gives, bar its
/// approximate quartiles), of a file, a table, a query or a script's view; and DESCRIBE, a row
/// per column with DuckDB's name for its type.
#[test]
fn sql_summarize_gives_each_columns_statistics_and_describe_their_types() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("s.jsonl"),
        "{\"a\": 1, \"b\": \"x\", \"c\": 1.5, \"l\": [1], \"m\": {\"k\": 1}}\n\
         {\"a\": 2, \"b\": \"y\", \"c\": null, \"l\": [2, 3]}\n\
         {\"a\": 3, \"b\": \"x\"}\n\
         {\"a\": 4, \"b\": null, \"c\": 2.5}\n",
    )
    .unwrap();
    let sql = |args: &[&str]| segscore_in(tmp.path(), &[&["sql", "--format", "csv"], args].concat());
    let ok = |args: &[&str]| {
        let o = sql(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let header = "column_name,column_type,min,max,approx_unique,avg,std,q25,q50,q75,count,null_percentage\n";
    let a = "a,BIGINT,1,4,4,2.5,1.2909944487358056,1.5,2.5,3.5,4,0.0\n";
    assert_eq!(
        ok(&["SUMMARIZE 's.jsonl';"]),
        format!(
            "{header}{a}b,VARCHAR,x,y,2,,,,,,4,25.0\n\
             c,DOUBLE,1.5,2.5,2,2.0,0.7071067811865476,1.5,2.0,2.5,4,50.0\n\
             l,BIGINT[],[1],\"[2, 3]\",2,,,,,,4,50.0\n\
             m,STRUCT(k BIGINT),,,1,,,,,,4,75.0\n"
        )
    );
    // Categorical columns as their values' type.
    {
        use datafusion::arrow::array::{DictionaryArray, Float64Array, Int64Array};
        use datafusion::arrow::datatypes::{DataType, Int32Type};
        let ints = datafusion::arrow::compute::cast(
            &Int64Array::from(vec![Some(1), Some(2), Some(2), None]),
            &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Int64)),
        )
        .unwrap();
        let words: DictionaryArray<Int32Type> = vec!["x", "y", "x", "x"].into_iter().collect();
        let floats = Float64Array::from(vec![0.5, 1.5, 1.5, 0.5]);
        let batch = RecordBatch::try_from_iter([
            ("i", ints),
            ("w", std::sync::Arc::new(words) as _),
            ("f", std::sync::Arc::new(floats) as _),
        ])
        .unwrap();
        write_batch(&tmp.path().join("cat.parquet"), &batch);
    }
    assert_eq!(
        ok(&["SUMMARIZE 'cat.parquet'"]),
        format!(
            "{header}i,BIGINT,1,2,2,1.6666666666666667,0.5773502691896257,1.25,2.0,2.0,4,25.0\n\
             w,VARCHAR,x,y,2,,,,,,4,0.0\n\
             f,DOUBLE,0.5,1.5,2,1.0,0.5773502691896257,0.5,1.25,1.5,4,0.0\n"
        )
    );
    assert_eq!(
        ok(&["-t", "t=s.jsonl", "-- a's statistics\nsummarize select a from t"]),
        format!("{header}{a}")
    );
    assert_eq!(
        ok(&["CREATE VIEW v AS SELECT a * 2 AS a2 FROM 's.jsonl' WHERE a > 1; SUMMARIZE v"]),
        format!("{header}a2,BIGINT,4,8,3,6.0,2.0,4.5,6.0,7.5,3,0.0\n")
    );
    assert_eq!(
        ok(&["SUMMARIZE SELECT a FROM 's.jsonl' WHERE a > 9"]),
        format!("{header}a,BIGINT,,,0,,,,,,0,\n")
    );
    assert_fails(
        &sql(&["SUMMARIZE v; SELECT 1"]),
        2,
        "query: statement 1 of 2 (`SUMMARIZE v`...) is not the last",
    );
    assert_fails(
        &sql(&["SUMMARIZE nothere"]),
        2,
        "query: SUMMARIZE: Error during planning: table 'datafusion.public.nothere' not found",
    );
    // DESCRIBE, as DuckDB describes: DuckDB's type names (DataFusion's gave arrow's, `Int64`, in
    // a `data_type` column), of a file, a categorical column, a query and a view; `NO` where the
    // column cannot be null (a Parquet column written as required, a literal).
    let described = "column_name,column_type,null,key,default,extra\n";
    assert_eq!(
        ok(&["DESCRIBE 'cat.parquet'"]),
        format!("{described}i,BIGINT,YES,,,\nw,VARCHAR,NO,,,\nf,DOUBLE,NO,,,\n")
    );
    assert_eq!(
        ok(&[
            "CREATE VIEW v AS SELECT a * 2 AS a2, l FROM 's.jsonl'; DESCRIBE SELECT a2, l, 1 AS one FROM v"
        ]),
        format!("{described}a2,BIGINT,YES,,,\nl,BIGINT[],YES,,,\none,BIGINT,NO,,,\n")
    );
    assert_fails(
        &sql(&["DESCRIBE nothere"]),
        2,
        "query: DESCRIBE: Error during planning",
    );
}

/// A script of statements, as SQL files for DuckDB have them: CREATE VIEW, CREATE TABLE ... AS
/// and SET run in order, each reading the files it names, and the last statement's result is
/// the output (COPY ... TO included); a statement before the last that would give a result,
/// or fails, is refused naming it.
#[test]
fn sql_runs_a_script_whose_last_statement_gives_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("data")).unwrap();
    write_rows(&tmp.path().join("data/one.parquet"), &hand_rows());
    let sql = |args: &[&str]| segscore_in(tmp.path(), &[&["sql", "--format", "csv"], args].concat());
    let script = "-- segments per generation, then the longest\n\
        CREATE VIEW counts AS SELECT generation_id, count(*) AS n FROM 'data/*.parquet' GROUP BY 1;\n\
        SET datafusion.execution.batch_size = 2;\n\
        CREATE TABLE longest AS SELECT max(n) AS n FROM counts;\n\
        SELECT c.generation_id, c.n, 'a;b' AS s FROM counts c JOIN longest USING (n); -- done\n";
    std::fs::write(tmp.path().join("script.sql"), script).unwrap();
    let o = sql(&["-f", "script.sql"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "generation_id,n,s\na,4,a;b\n"
    );
    // `-f -`: the script on standard input.
    let mut child = command(&["sql", "--format", "csv", "-f", "-"])
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "generation_id,n,s\na,4,a;b\n"
    );
    let o = sql(&["CREATE VIEW v AS SELECT 1 AS x; COPY (SELECT x + 1 AS y FROM v) TO 'y.csv'"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("y.csv")).unwrap(),
        "y\n2\n"
    );
    assert_fails(
        &sql(&["SELECT 1 AS a; SELECT 2 AS b"]),
        2,
        "query: statement 1 of 2 (`SELECT 1 AS a`...) is not the last: only the last statement's result is printed or written",
    );
    // PostgreSQL's SELECT ... INTO t makes a table, as CREATE TABLE t AS does: before the last
    // statement (it was refused there), and refused as the last, which printed an empty result.
    let o = sql(&["SELECT generation_id, count(*) AS n INTO counts FROM 'data/one.parquet' GROUP BY 1; SELECT max(n) AS m FROM counts"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "m\n4\n");
    assert_fails(
        &sql(&["SELECT 1 AS a INTO t"]),
        2,
        "query: the last statement's SELECT ... INTO t makes a table and gives no result: leave INTO out to print or write its rows",
    );
    assert_fails(
        &sql(&["CREATE VIEW v AS SELECT * FROM nothere; SELECT 1"]),
        2,
        "query: statement 1 of 2: Error during planning: table 'datafusion.public.nothere' not found",
    );
    // --to over a file only an earlier statement reads is refused too.
    let o = segscore_in(
        tmp.path(),
        &[
            "sql",
            "CREATE VIEW v AS SELECT * FROM 'data/one.parquet'; SELECT 1 AS x",
            "--to",
            "data/one.parquet",
        ],
    );
    assert_fails(&o, 2, "--to data/one.parquet: is the input file");
}

#[test]
fn sql_copy_to_writes_as_to_does_and_no_query_writes_into_a_table() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &hand_rows());
    let sql = |query: &str, extra: &[&str]| segscore_in(tmp.path(), &[&["sql", query], extra].concat());
    let counts = "generation_id,n\na,4\nb,1\nc,3\n";
    // COPY (query) TO a file: the format from the name or STORED AS, as --to writes it.
    let o = sql(
        "COPY (SELECT generation_id, count(*) AS n FROM 'in.parquet' GROUP BY 1 ORDER BY 1) TO 'n.csv'",
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(tmp.path().join("n.csv")).unwrap(), counts);
    let o = sql(
        "COPY (SELECT generation_id, count(*) AS n FROM g GROUP BY 1 ORDER BY 1) TO 'n.out' STORED AS JSON",
        &["-t", &format!("g={}", input.display())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("n.out")).unwrap(),
        "{\"generation_id\":\"a\",\"n\":4}\n{\"generation_id\":\"b\",\"n\":1}\n{\"generation_id\":\"c\",\"n\":3}\n"
    );
    // A CASE of an INT and a literal: DataFusion's logical schema says Int32, its arrays are
    // Int64; the file is written as the arrays are (the writer refused them before).
    let o = sql(
        "COPY (SELECT CASE WHEN segment_index > 100 THEN CAST(segment_index AS INT) ELSE 1 END AS x FROM 'in.parquet') TO 'case.parquet'",
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let case = read_parquet(&tmp.path().join("case.parquet"));
    assert_eq!(i64_col(&case[0], "x"), vec![1; 8]);
    // COPY table TO: the table's rows.
    let o = sql("COPY 'in.parquet' TO 'copy.parquet'", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let copied = read_parquet(&tmp.path().join("copy.parquet"));
    assert_eq!(copied.iter().map(|b| b.num_rows()).sum::<usize>(), 8);
    // DuckDB's options, and its `FROM t` for `SELECT * FROM t`.
    let o = sql(
        "COPY (FROM 'in.parquet' ORDER BY segment_index LIMIT 3) TO 'first.out' (FORMAT 'csv', HEADER);",
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let first = std::fs::read_to_string(tmp.path().join("first.out")).unwrap();
    assert!(first.starts_with("generation_id,segment_index,"), "{first}");
    assert_eq!(first.lines().count(), 4, "{first}");
    // DuckDB's Parquet settings (and DataFusion's names for them): the codec and the rows a
    // row group holds; the same rows, written otherwise.
    for (query, codec) in [
        (
            "COPY 'in.parquet' TO 'snappy.parquet' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 3)",
            "SNAPPY",
        ),
        (
            "COPY 'in.parquet' TO 'gzip.parquet' (COMPRESSION 'gzip', COMPRESSION_LEVEL 9, ROW_GROUP_SIZE 3)",
            "GZIP",
        ),
        (
            "COPY 'in.parquet' TO 'raw.parquet' OPTIONS ('format.compression' 'uncompressed', 'format.max_row_group_size' '3')",
            "UNCOMPRESSED",
        ),
    ] {
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let o = sql(query, &[]);
        assert!(o.status.success(), "{query}: {}", stderr(&o));
        let file = tmp.path().join(query.split('\'').nth(3).unwrap());
        let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
        let groups = reader.metadata().row_groups();
        assert_eq!(groups.iter().map(|g| g.num_rows()).collect::<Vec<_>>(), [3, 3, 2], "{query}");
        // The footer names the codec, not its level.
        let written = format!("{:?}", groups[0].column(0).compression());
        assert_eq!(written.split('(').next(), Some(codec), "{query}");
        assert_eq!(read_parquet(&file), copied, "{query}");
    }
    let o = sql(
        "COPY in_p TO 'dup.pq' WITH (format parquet)",
        &["-t", &format!("in_p={}", input.display())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_parquet(&tmp.path().join("dup.pq")), copied);
    let o = sql(
        "FROM 'in.parquet' SELECT generation_id, count(*) AS n GROUP BY 1 UNION ALL (FROM (SELECT 'z' AS generation_id, 0 AS n)) ORDER BY 1",
        &["--format", "csv"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), format!("{counts}z,0\n"));
    // DuckDB's FROM-first selects with a WHERE or QUALIFY and no SELECT (a parser error before),
    // and ORDER BY ALL (before: "No field named all"): by the listed columns' positions, or
    // after a `*` by the columns it expands to; a quoted "all" is a column.
    for (query, want) in [
        (
            "-- the first segments\nWITH f AS (FROM 'in.parquet' WHERE segment_index = 0) FROM f SELECT generation_id WHERE generation_id <> 'b' ORDER BY ALL",
            "generation_id\na\nc\n",
        ),
        (
            "SELECT generation_id, segment_index + 1 AS n FROM (FROM 'in.parquet' QUALIFY segment_index = max(segment_index) OVER (PARTITION BY generation_id)) ORDER BY ALL",
            counts,
        ),
        ("SELECT generation_id, count(*) AS n FROM 'in.parquet' GROUP BY ALL ORDER BY ALL", counts),
        (
            "FROM (SELECT generation_id, cumulative_score FROM 'in.parquet') ORDER BY ALL DESC LIMIT 2",
            "generation_id,cumulative_score\nc,0.5\nc,0.4\n",
        ),
        (
            "SELECT segment_index AS \"all\" FROM 'in.parquet' WHERE generation_id = 'a' ORDER BY \"all\" DESC LIMIT 1",
            "all\n3\n",
        ),
    ] {
        assert_eq!(sql_csv_in(tmp.path(), query), want, "{query}");
    }
    let o = sql(
        "COPY (FROM 'in.parquet' WHERE generation_id = 'b') TO 'b.csv'",
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let b = std::fs::read_to_string(tmp.path().join("b.csv")).unwrap();
    assert!(
        b.starts_with("generation_id,segment_index,") && b.lines().count() == 2,
        "{b}"
    );
    // COPY over the file it reads is refused before anything is written (DataFusion's own
    // COPY truncated it while reading it); so is a folder, a missing folder, what --to cannot
    // write, and COPY beside --to.
    let before = std::fs::read(&input).unwrap();
    for (query, extra, code, want) in [
        (
            "COPY (SELECT * FROM 'in.parquet' WHERE segment_index = 0) TO 'in.parquet'",
            &[][..],
            2,
            "COPY ... TO in.parquet: is the input file",
        ),
        ("COPY 'in.parquet' TO 'out/'", &[], 2, "COPY ... TO out/: is a folder; give a file name"),
        ("COPY 'in.parquet' TO 'no/x.csv'", &[], 2, "COPY ... TO no/x.csv: the folder no does not exist"),
        (
            "COPY 'in.parquet' TO 'x.txt'",
            &[],
            2,
            "COPY ... TO x.txt: give STORED AS csv, json, parquet or markdown",
        ),
        (
            "COPY 'in.parquet' TO 'x.csv' OPTIONS ('format.has_header' 'false')",
            &[],
            2,
            "COPY ... TO x.csv: OPTIONS (format.has_header ...) are not taken",
        ),
        (
            "COPY 'in.parquet' TO 'x.parquet' (FORMAT PARQUET, COMPRESSION 'zip')",
            &[],
            2,
            "COPY ... TO x.parquet: COMPRESSION zip: give zstd, snappy, gzip, brotli, lz4, lz4_raw, uncompressed (with a level: zstd(9))",
        ),
        (
            "COPY 'in.parquet' TO 'x.csv' (FORMAT csv, COMPRESSION gzip)",
            &[],
            2,
            "COPY ... TO x.csv: COMPRESSION gzip: csv is compressed as the file's name says (.gz gzip, .zst zstd, .bz2, .xz; none: uncompressed)",
        ),
        (
            "COPY 'in.parquet' TO 'x.parquet' (ROW_GROUP_SIZE 0)",
            &[],
            2,
            "COPY ... TO x.parquet: ROW_GROUP_SIZE 0: give a number of rows",
        ),
        (
            "COPY 'in.parquet' TO 'x.parquet' (PER_THREAD_OUTPUT true)",
            &[],
            2,
            "COPY ... TO x.parquet: option PER_THREAD_OUTPUT true is not taken; segscore sql writes one file, as --to does, with its own settings",
        ),
        (
            "COPY 'in.parquet' TO 'x.csv' PARTITIONED BY (generation_id)",
            &[],
            2,
            "PARTITIONED BY is not taken",
        ),
        ("COPY 'in.parquet' TO 'x.arrow' STORED AS ARROW", &[], 2, "STORED AS arrow: give parquet, csv, json or markdown"),
        (
            "COPY 'in.parquet' TO 'x.csv' STORED AS CSV",
            &["--format", "json"],
            2,
            "--format json and the COPY's STORED AS csv differ",
        ),
        // A name that says a format holds that format: `--format csv` (how results print)
        // beside a COPY to a .parquet name wrote CSV into it, readable by no Parquet reader.
        (
            "COPY 'in.parquet' TO 'x.parquet'",
            &["--format", "csv"],
            2,
            "COPY ... TO x.parquet: the name says parquet and --format says csv; give a name that ends in .csv or leave --format out",
        ),
        (
            "COPY 'in.parquet' TO 'x.json.gz' (FORMAT CSV)",
            &[],
            2,
            "COPY ... TO x.json.gz: the name says json and the COPY's format says csv; give a name that ends in .csv or leave the COPY's format out",
        ),
        (
            "SELECT 1",
            &["--format", "parquet", "--to", "x.md"],
            2,
            "--to x.md: the name says markdown and --format says parquet; give a name that ends in .parquet or leave --format out",
        ),
        (
            "COPY 'in.parquet' TO 'x.csv'",
            &["--to", "y.csv"],
            2,
            "--to: the query's COPY ... TO says where its result goes",
        ),
        // Nothing writes into a table: INSERT, or a COPY that EXPLAIN ANALYZE would run.
        (
            "INSERT INTO 'in.parquet' SELECT * FROM 'in.parquet'",
            &[],
            2,
            "DML not supported: Insert Into (segscore sql reads its tables and never writes into them: write a result with --to FILE or COPY (query) TO 'file')",
        ),
        ("EXPLAIN ANALYZE COPY 'in.parquet' TO 'x.csv'", &[], 2, "DML not supported: COPY"),
        // --to with a trailing `/` names a folder (it left its temporary file behind).
        ("SELECT 1", &["--format", "csv", "--to", "new/"], 2, "--to new/: is a folder; give a file name"),
    ] {
        let o = sql(query, extra);
        assert_fails(&o, code, want);
    }
    assert_eq!(std::fs::read(&input).unwrap(), before);
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "b.csv",
            "case.parquet",
            "copy.parquet",
            "dup.pq",
            "first.out",
            "gzip.parquet",
            "in.parquet",
            "n.csv",
            "n.out",
            "raw.parquet",
            "snappy.parquet"
        ]
    );
}

#[test]
fn sql_command_registers_output_directories_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    // token ids both models take (the demo model's vocabulary has 1000)
    let rows: Vec<Row> = hand_rows()
        .into_iter()
        .enumerate()
        .map(|(k, mut r)| {
            r.ids = Some(vec![k as i64 * 97 + 3, 11]);
            r
        })
        .collect();
    write_rows(&input, &rows);
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    run_ok(
        &[&input],
        &test_model("affine_mean.onnx"),
        &a,
        &["--provider", "cpu"],
    );
    run_ok(&[&input], &demo_model(), &b, &["--provider", "cpu"]);
    let ta = format!("m1={}", a.display());
    let tb = format!("m2={}", b.display());
    let o = segscore(&[
        "sql",
        "-t",
        &ta,
        "-t",
        &tb,
        "SELECT COUNT(*) AS n, SUM(CASE WHEN x.predicted_score = y.predicted_score THEN 1 ELSE 0 END) AS same \
         FROM m1.segments x JOIN m2.segments y USING (generation_id, segment_index)",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert_eq!(v["n"], 8);
    assert_eq!(v["same"], 0, "two models, two sets of predictions");
    assert_eq!(
        sql_csv(a.to_str().unwrap(), "SELECT COUNT(*) AS n FROM generations"),
        "n\n3\n"
    );
}

/// Pixels of exactly this colour in an RGBA/RGB PNG.
fn count_color(png_path: &Path, hex: &str) -> usize {
    let rgb: Vec<u8> = (0..3)
        .map(|i| u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap())
        .collect();
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|px| px[..3] == rgb[..])
        .count()
}

/// `report` and `compare` of a folder that is not a complete output say so, and write nothing.
#[test]
fn report_and_compare_of_what_is_not_an_output_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_rows(&data.join("in.parquet"), &[row("g", 0, 0.5, &[1])]);
    let o = segscore(&["report", data.to_str().unwrap()]);
    assert_fails(
        &o,
        1,
        &format!(
            "output {}: holds no complete segscore output: no summary.json",
            data.display()
        ),
    );
    assert!(!data.join("report.html").exists());
    let missing = tmp.path().join("missing");
    let o = segscore(&["compare", data.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_fails(&o, 1, "holds no complete segscore output");
    let o = segscore(&["compare", missing.to_str().unwrap(), data.to_str().unwrap()]);
    assert_fails(&o, 1, &format!("output {}: does not exist", missing.display()));
}

#[test]
fn report_renders_in_chromium_with_every_plot_drawn() {
    let chromium = std::env::var("SEGSCORE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    let o = segscore(&["demo", "--output", demo.to_str().unwrap(), "--provider", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = tmp.path().join("out");
    run_ok(
        &[&demo.join("input")],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--report"],
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    // Self-contained: nothing to fetch.
    for needle in ["src=", "href=", "<script", "@import", "url("] {
        assert!(!html.contains(needle), "report.html refers out: {needle}");
    }
    assert_eq!(html.matches("class=\"decile\"").count(), 10);
    assert!(html.matches("class=\"point\"").count() > 1000);
    // `segscore report` writes the same page from the directory.
    std::fs::remove_file(out.join("report.html")).unwrap();
    let o = segscore(&["report", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(out.join("report.html")).unwrap(), html);

    let shot = tmp.path().join("shot.png");
    let profile = tmp.path().join("profile");
    let o = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", out.join("report.html").display()))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot start {chromium} ({e}): install Debian's chromium (.ci/run does) or set SEGSCORE_CHROMIUM")
        });
    assert!(shot.exists(), "no screenshot: {}", stderr(&o));
    // Each plot's marks are drawn in its own colour; find them on the rendered page.
    let bars = count_color(&shot, segscore::report::colors::HISTOGRAM);
    let points = count_color(&shot, segscore::report::colors::SCATTER);
    let calibration = count_color(&shot, segscore::report::colors::CALIBRATION);
    assert!(bars > 5_000, "histogram bars: {bars} pixels");
    assert!(points > 2_000, "scatter points: {points} pixels");
    assert!(calibration > 500, "calibration marks: {calibration} pixels");
}

#[test]
fn compare_gives_differences_and_a_reproducible_bootstrap_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    let o = segscore(&["demo", "--output", demo.to_str().unwrap(), "--provider", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let input = demo.join("input");
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    run_ok(&[&input], &demo_model(), &a, &["--provider", "cpu"]);
    run_ok(
        &[&input],
        &test_model("affine_mean.onnx"),
        &b,
        &["--provider", "cpu"],
    );
    let cmp = |x: &Path, y: &Path, seed: &str| -> serde_json::Value {
        let o = segscore(&[
            "compare",
            x.to_str().unwrap(),
            y.to_str().unwrap(),
            "--format",
            "json",
            "--seed",
            seed,
            "--bootstrap",
            "500",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let c = cmp(&a, &b, "7");
    let (sa, sb) = (summary(&a), summary(&b));
    let want = sb["mse"].as_f64().unwrap() - sa["mse"].as_f64().unwrap();
    let d = &c["mse_difference"];
    close(d["difference"].as_f64(), want, 1e-12, "mse difference");
    let (lo, hi) = (d["lower"].as_f64().unwrap(), d["upper"].as_f64().unwrap());
    assert!(lo <= want && want <= hi && lo < hi, "[{lo}, {hi}] around {want}");
    assert_eq!(d["generations"], sa["n_generations"]);
    let mse_row = c["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "mse")
        .unwrap();
    close(mse_row["difference"].as_f64(), want, 1e-15, "table difference");
    assert_eq!(cmp(&a, &b, "7"), c, "same seed, same interval");
    // Markdown: a row per metric with the JSON's values, then the interval's line.
    let o = segscore(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--format",
        "markdown",
        "--seed",
        "7",
        "--bootstrap",
        "500",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "| metric | A (`{}`) | B (`{}`) | B - A |",
            a.display(),
            b.display()
        )
    );
    assert_eq!(lines[1], "| --- | ---: | ---: | ---: |");
    let six = |v: &serde_json::Value| format!("{:.6}", v.as_f64().unwrap());
    assert_eq!(
        lines[2],
        format!(
            "| mse | {} | {} | {} |",
            six(&mse_row["a"]),
            six(&mse_row["b"]),
            six(&mse_row["difference"])
        )
    );
    assert_eq!(lines.len(), 2 + c["metrics"].as_array().unwrap().len() + 2);
    assert!(
        lines.last().unwrap().starts_with(&format!(
            "MSE(B) - MSE(A) = {}, 95% CI [{}, {}]",
            six(&d["difference"]),
            six(&d["lower"]),
            six(&d["upper"])
        )),
        "{md}"
    );
    assert_ne!(cmp(&a, &b, "8")["mse_difference"]["lower"], d["lower"]);
    // A model against itself: nothing differs.
    let same = cmp(&a, &a, "1");
    assert_eq!(same["mse_difference"]["lower"], 0.0);
    assert_eq!(same["mse_difference"]["upper"], 0.0);
    // A difference that rounds to zero prints as 0.000000, never -0.000000: the same run as
    // A with its summary's mse a hair above B's.
    let a2 = tmp.path().join("a2");
    for f in walk(&a) {
        let to = a2.join(f.strip_prefix(&a).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, &to).unwrap();
    }
    let mut s2 = summary(&a);
    let mse = s2["mse"].as_f64().unwrap();
    s2["mse"] = serde_json::json!(mse + 1e-12);
    std::fs::write(a2.join("summary.json"), serde_json::to_vec(&s2).unwrap()).unwrap();
    let o = segscore(&[
        "compare",
        a2.to_str().unwrap(),
        a.to_str().unwrap(),
        "--bootstrap",
        "10",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let mse_line = text.lines().find(|l| l.trim_start().starts_with("mse ")).unwrap();
    let cells: Vec<&str> = mse_line.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "mse",
            &format!("{:.6}", mse + 1e-12),
            &format!("{mse:.6}"),
            "0.000000"
        ],
        "{text}"
    );
    assert!(!text.contains("-0.000000"), "{text}");
    // Different data is refused, naming a generation.
    let other = tmp.path().join("other.parquet");
    write_rows(&other, &hand_rows());
    let c2 = tmp.path().join("c");
    run_ok(
        &[&other],
        &test_model("affine_mean.onnx"),
        &c2,
        &["--provider", "cpu"],
    );
    let o = segscore(&["compare", a.to_str().unwrap(), c2.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not runs on the same data: generation"),
        "{}",
        stderr(&o)
    );
    // A replicate count whose draws could not be held is a usage error, not an abort.
    let o = segscore(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--bootstrap",
        "1000000000000",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("1..=1000000"), "{}", stderr(&o));
}
