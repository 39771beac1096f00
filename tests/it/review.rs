//! Regression tests for the defects a review and first use found (issue 12, part B), each named
//! after its defect.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use segscore::metrics;

use crate::common::*;

/// Runs `segscore sql` with `--format json` and returns its rows.
fn sql_json(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["sql", "--format", "json"];
    all.extend_from_slice(args);
    let o = segscore(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A table of (g, i, p, t): three generations with ties and a NULL prediction.
fn write_scores(path: &Path) -> Vec<(String, i64, Option<f64>, f64)> {
    let rows: Vec<(String, i64, Option<f64>, f64)> = [
        (
            "a",
            [Some(0.1), Some(0.4), Some(0.4), Some(-0.2), Some(0.9), Some(0.3)],
            [0.2, 0.5, 0.1, -0.3, 0.7, 0.3],
        ),
        (
            "b",
            [Some(1.0), Some(2.0), None, Some(3.0), Some(0.5), Some(2.0)],
            [3.0, 2.0, 1.0, 1.0, 0.0, 4.0],
        ),
        (
            "c",
            [Some(0.0), Some(0.0), Some(0.0), Some(1.0), Some(-1.0), Some(0.5)],
            [1.0, -1.0, 0.5, 0.5, 2.0, 0.0],
        ),
    ]
    .iter()
    .flat_map(|(g, p, t)| (0..6).map(move |i| (g.to_string(), i as i64, p[i], t[i])))
    .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Utf8, false),
        Field::new("i", DataType::Int64, false),
        Field::new("p", DataType::Float64, true),
        Field::new("t", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.clone()))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ],
    )
    .unwrap();
    write_batch(path, &batch);
    rows
}

fn num(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
}

#[test]
fn aggregates_as_window_functions_give_running_values_and_sliding_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("scores.parquet");
    let rows = write_scores(&file);
    let table = format!("s={}", file.display());
    let q = "SELECT g, i, \
        pearson(p, t) OVER w AS pearson, spearman(p, t) OVER w AS spearman, \
        kendall_tau(p, t) OVER w AS kendall_tau, \
        pairwise_order_accuracy(p, t) OVER w AS poa, top_segment_match(p, t) OVER w AS top, \
        rank_metrics(p, t) OVER w AS ranks, loss_share_top(t, 0.5) OVER w AS share, \
        kendall_tau(p, t) OVER (PARTITION BY g ORDER BY i ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS tau3, \
        loss_share_top(t, 0.5) OVER (PARTITION BY g ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS share2 \
        FROM s WINDOW w AS (PARTITION BY g ORDER BY i) ORDER BY g, i";
    let out = sql_json(&["--table", &table, q]);
    assert_eq!(out.len(), rows.len());
    for (k, row) in out.iter().enumerate() {
        let (g, i) = (&rows[k].0, rows[k].1 as usize);
        assert_eq!(row["g"], g.as_str());
        // The frame's pairs, as SQL aggregates see them: rows with a NULL argument skipped.
        let frame = |from: usize| -> (Vec<f64>, Vec<f64>) {
            rows.iter()
                .filter(|r| &r.0 == g && (from..=i).contains(&(r.1 as usize)))
                .filter_map(|r| r.2.map(|p| (p, r.3)))
                .unzip()
        };
        let targets = |from: usize| -> Vec<f64> {
            rows.iter()
                .filter(|r| &r.0 == g && (from..=i).contains(&(r.1 as usize)))
                .map(|r| r.3)
                .collect()
        };
        let (p, t) = frame(0);
        let at = format!("{g} {i}");
        assert_eq!(num(&row["pearson"]), metrics::pearson(&p, &t), "pearson {at}");
        assert_eq!(num(&row["spearman"]), metrics::spearman(&p, &t), "spearman {at}");
        assert_eq!(num(&row["kendall_tau"]), metrics::kendall_tau(&p, &t), "tau {at}");
        assert_eq!(
            num(&row["poa"]),
            metrics::pairwise_order_accuracy(&p, &t),
            "order accuracy {at}"
        );
        assert_eq!(
            row["top"].as_bool(),
            metrics::top_segment_match(&p, &t),
            "top {at}"
        );
        assert_eq!(
            num(&row["ranks"]["kendall_tau"]),
            metrics::kendall_tau(&p, &t),
            "rank_metrics {at}"
        );
        assert_eq!(
            num(&row["share"]),
            metrics::top_share(&mut targets(0), 0.5),
            "loss_share_top {at}"
        );
        let (p3, t3) = frame(i.saturating_sub(2));
        assert_eq!(
            num(&row["tau3"]),
            metrics::kendall_tau(&p3, &t3),
            "sliding tau {at}"
        );
        assert_eq!(
            num(&row["share2"]),
            metrics::top_share(&mut targets(i.saturating_sub(1)), 0.5),
            "sliding share {at}"
        );
    }
    // Some running values are defined, so the comparison above compared numbers.
    assert!(out.iter().filter(|r| r["kendall_tau"].is_f64()).count() >= 10);
    assert!(out.iter().filter(|r| r["tau3"].is_f64()).count() >= 8);
}

/// Two small valid input files for the demo model.
fn two_inputs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (a, b) = (dir.join("a.parquet"), dir.join("b.parquet"));
    write_rows(&a, &[row("g1", 0, 0.5, &[1, 2, 3]), row("g1", 1, 0.2, &[4, 5])]);
    write_rows(&b, &[row("g2", 0, -0.1, &[7]), row("g2", 1, 0.3, &[8, 9, 10])]);
    (a, b)
}

#[test]
fn config_file_works_in_any_position_with_counts_lists_and_booleans() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_inputs(tmp.path());
    let cfg = tmp.path().join("job.toml");
    std::fs::write(
        &cfg,
        format!(
            "input = [{:?}, {:?}]\nmodel = {:?}\nprovider = \"cpu\"\nverbose = 1\nreport = true\nresume = false\n",
            a.display().to_string(),
            b.display().to_string(),
            demo_model().display().to_string(),
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    for (i, args) in [
        vec!["-q", "run", "--config", c],
        vec!["--config", c, "run"],
        vec!["run", "--threads", "1", "--config", c],
        vec!["run", "--config", c, "--log-format", "json"],
    ]
    .into_iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("out{i}"));
        let mut all: Vec<&str> = args.clone();
        all.extend(["--output", out.to_str().unwrap()]);
        let o = segscore(&all);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert_eq!(summary(&out)["n_segments"], 4, "{args:?}: both files of the list");
        assert!(out.join("report.html").exists(), "{args:?}: report = true");
        let err = stderr(&o);
        if args[0] == "-q" {
            assert_eq!(err, "", "-q on the command line wins over verbose = 1");
        } else {
            // verbose = 1 is -v: debug lines.
            assert!(
                err.contains("DEBUG") || err.contains("\"level\":\"DEBUG\""),
                "{args:?}: {err}"
            );
        }
    }
    // Another command reads its own flags from a file.
    std::fs::write(&cfg, "format = \"json\"\n").unwrap();
    let o = segscore(&["sql", "SELECT 1 AS one", "--config", c]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "{\"one\":1}");
    // A value of the wrong kind names the key.
    std::fs::write(&cfg, "verbose = \"yes\"\n").unwrap();
    let o = segscore(&["run", "--config", c]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("key `verbose` counts"), "{}", stderr(&o));
}

#[test]
fn glob_characters_in_existing_paths_are_paths_and_non_utf8_paths_are_named() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d[x]");
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = two_inputs(tmp.path());
    let (a2, b2) = (dir.join("a[1].parquet"), dir.join("b*?.parquet"));
    std::fs::rename(&a, &a2).unwrap();
    std::fs::rename(&b, &b2).unwrap();
    // Existing paths with [, * and ? are those files; the output directory has them too.
    let out = tmp.path().join("out[1]*");
    run_ok(&[&a2, &b2], &demo_model(), &out, &["--provider", "cpu"]);
    assert_eq!(summary(&out)["n_segments"], 4);
    let rows = sql_json(&[
        "--table",
        out.to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM segments",
    ]);
    assert_eq!(rows[0]["n"], 4);
    // A directory with such a name is searched; a pattern that names nothing is a glob.
    for input in [
        dir.to_str().unwrap().to_string(),
        tmp.path().join("d?x?").join("*.parquet").display().to_string(),
    ] {
        let out = tmp.path().join("again");
        let o = segscore(&[
            "run",
            "--provider",
            "cpu",
            "--overwrite",
            "-i",
            &input,
            "-m",
            demo_model().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{input}: {}", stderr(&o));
        assert_eq!(summary(&out)["n_segments"], 4, "{input}");
    }
    // A path that is not UTF-8 is named, given directly or found in a directory.
    let bad_dir = tmp.path().join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let bad = bad_dir.join(std::ffi::OsStr::from_bytes(b"scores\xff.parquet"));
    std::fs::copy(&a2, &bad).unwrap();
    for input in [bad.as_os_str(), bad_dir.as_os_str()] {
        let o = std::process::Command::new(BIN)
            .args(["run", "--provider", "cpu", "-m"])
            .arg(demo_model())
            .arg("-o")
            .arg(tmp.path().join("never"))
            .arg("-i")
            .arg(input)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("scores\\xFF.parquet") && stderr(&o).contains("not valid UTF-8"),
            "{}",
            stderr(&o)
        );
    }
}

/// Runs `segscore run` on two small files with stderr on a pipe, or on a terminal (a pty made
/// by util-linux's `script`), with or without NO_COLOR; returns what it wrote to stderr.
fn run_logs(dir: &Path, terminal: bool, no_color: Option<&str>) -> String {
    let (a, _) = two_inputs(dir);
    let out = dir.join("out");
    let args = format!(
        "{BIN} run --provider cpu --overwrite -i {} -m {} -o {}",
        a.display(),
        demo_model().display(),
        out.display()
    );
    let mut cmd = if terminal {
        let mut c = std::process::Command::new("script");
        // stdout goes to a file, so the pty carries stderr (the logs) only.
        c.args(["-qec", &format!("{args} > /dev/null"), "/dev/null"]);
        c
    } else {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", &args]);
        c
    };
    cmd.env_remove("NO_COLOR");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // `script` passes the pty's output on through its stdout.
    let text = if terminal { &o.stdout } else { &o.stderr };
    String::from_utf8_lossy(text).into_owned()
}

#[test]
fn log_lines_have_colour_only_on_a_terminal_and_never_with_no_color() {
    let tmp = tempfile::tempdir().unwrap();
    let piped = run_logs(tmp.path(), false, None);
    assert!(piped.contains("INFO"), "{piped}");
    assert!(!piped.contains('\x1b'), "no colour in a pipe: {piped:?}");
    let tty = run_logs(tmp.path(), true, None);
    assert!(
        tty.contains("INFO") && tty.contains("\x1b["),
        "colour on a terminal: {tty:?}"
    );
    let plain = run_logs(tmp.path(), true, Some("1"));
    assert!(plain.contains("INFO"), "{plain}");
    assert!(
        !plain.contains("\x1b[3") && !plain.contains("\x1b[2m"),
        "NO_COLOR: {plain:?}"
    );
}

/// `n` generations of 5 segments, ids `{prefix}NNNNN`, sorted; with `bad`, the first row's
/// cumulative score is NaN.
fn sorted_rows(prefix: &str, n: usize, bad: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    for g in 0..n {
        for s in 0..5 {
            let gid = format!("{prefix}{g:05}");
            rows.push(row(&gid, s, 0.1 * s as f64, &[1 + (g % 900) as i64, 2, 3]));
        }
    }
    if bad {
        rows[0].cum = Some(f64::NAN);
    }
    rows
}

#[test]
fn a_failing_partition_joins_every_writer_before_the_run_gives_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.parquet"), tmp.path().join("b.parquet"));
    write_rows(&a, &sorted_rows("a", 6000, true));
    write_rows(&b, &sorted_rows("b", 6000, false));
    let out = tmp.path().join("out");
    let faults = Faults::new();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args([
        "run",
        "--provider",
        "cpu",
        "--sorted",
        "--threads",
        "2",
        "--max-rows-per-file",
        "1000",
        "-m",
    ])
    .arg(demo_model())
    .arg("-o")
    .arg(&out)
    .arg("-i")
    .args([&a, &b]);
    // The first writer to write a batch is held there until the run cancels it.
    faults.apply(&mut cmd, Some("batch-written"));
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cumulative_score") && stderr(&o).contains("a00000"),
        "{}",
        stderr(&o)
    );
    let events = faults.events();
    let at = |name: &str| events.iter().position(|e| e == name);
    let count = |name: &str| events.iter().filter(|e| *e == name).count();
    let aborted = at("aborted").expect("the run gave up");
    assert!(at("partition-failed").unwrap() < aborted, "{events:?}");
    assert!(count("writer-started") >= 2, "{events:?}");
    // Every writer had exited, and no part was closed, when the run removed its work.
    assert_eq!(
        events[..aborted].iter().filter(|e| *e == "writer-exited").count(),
        count("writer-started"),
        "{events:?}"
    );
    assert!(
        !events[aborted..]
            .iter()
            .any(|e| e == "part-closed" || e == "batch-written"),
        "{events:?}"
    );
    assert!(
        !out.exists(),
        "nothing is left of a run that created its output directory"
    );
}

#[test]
fn resume_fingerprint_includes_the_model_batching() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 6_000, 2, false);
    let out = tmp.path().join("out");
    let args = |extra: &[&str]| {
        let mut v = run_args(
            &[&input],
            &demo_model(),
            &out,
            &["-q", "--provider", "cpu", "--shards", "3"],
        );
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let o = std::process::Command::new(BIN)
        .args(args(&["--batch-size", "64"]))
        .env("SEGSCORE_CRASH_AT", "shard-committed")
        .output()
        .unwrap();
    assert!(!o.status.success());
    for (flag, value, key) in [
        ("--batch-size", "32", "batch_size"),
        ("--max-tokens-per-batch", "4096", "max_tokens_per_batch"),
    ] {
        let mut extra = vec!["--resume", flag, value];
        if flag != "--batch-size" {
            extra.extend(["--batch-size", "64"]);
        }
        let o = std::process::Command::new(BIN)
            .args(args(&extra))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot resume") && stderr(&o).contains(key),
            "{}",
            stderr(&o)
        );
    }
    let o = std::process::Command::new(BIN)
        .args(args(&["--resume", "--batch-size", "64"]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&out)["resumed_shards"], 1);
}

#[test]
fn out_of_memory_in_the_evaluation_stage_is_the_clear_memory_error() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 300_000, 2, false);
    let out = tmp.path().join("out");
    // A replacement query without the window whose generation id is an expression: the plan
    // cannot tell that each generation is whole within one partition, so the evaluation runs
    // as SQL after the shards.
    let query = tmp.path().join("no_window.sql");
    std::fs::write(
        &query,
        "SELECT concat(g.generation_id, '') AS generation_id, g.segment_index, g.cumulative_score, reward_model(g.input_ids) AS predicted_score, g.cumulative_score AS target_score FROM generations AS g",
    )
    .unwrap();
    let faults = Faults::new();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args([
        "run",
        "-q",
        "--provider",
        "cpu",
        "--memory-limit",
        "1MiB",
        "--threads",
        "2",
        "--query-file",
    ])
    .arg(&query)
    .arg("-i")
    .arg(&input)
    .arg("-m")
    .arg(demo_model())
    .arg("-o")
    .arg(&out);
    faults.apply(&mut cmd, None);
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // The sorted input streams through the job in 1 MiB; the metrics queries do not.
    assert!(
        faults.events().iter().any(|e| e == "evaluation-started"),
        "{:?}",
        faults.events()
    );
    assert!(
        stderr(&o).contains("out of memory under --memory-limit 1.0 MiB")
            && stderr(&o).contains("Raise --memory-limit"),
        "{}",
        stderr(&o)
    );
    assert_no_output(&out);
}

#[test]
fn duplicate_keys_across_partitions_are_found_and_generations_counted_once() {
    let tmp = tempfile::tempdir().unwrap();
    // No window: each partition holds rows in key order.
    let query = tmp.path().join("no_window.sql");
    std::fs::write(
        &query,
        "SELECT g.*, reward_model(g.input_ids) AS predicted_score, g.cumulative_score AS target_score FROM generations AS g",
    )
    .unwrap();
    let (a, b) = (tmp.path().join("a.parquet"), tmp.path().join("b.parquet"));
    let run = |extra: &[&str]| {
        let out = tmp.path().join("out");
        let mut args = vec![
            "--provider",
            "cpu",
            "--sorted",
            "--threads",
            "2",
            "--overwrite",
            "--query-file",
            query.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&[&a, &b], &demo_model(), &out, &args)
    };
    // Generation g2 spans both files: two generations in all, not three.
    write_rows(
        &a,
        &[
            row("g1", 0, 0.1, &[1]),
            row("g2", 0, 0.2, &[2]),
            row("g2", 1, 0.3, &[3]),
        ],
    );
    write_rows(&b, &[row("g2", 2, 0.4, &[4]), row("g3", 0, 0.5, &[5])]);
    let o = run(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&tmp.path().join("out"))["n_generations"], 3);
    assert_eq!(summary(&tmp.path().join("out"))["n_segments"], 5);
    // The same key in both files is a duplicate.
    write_rows(&b, &[row("g2", 1, 0.4, &[4]), row("g3", 0, 0.5, &[5])]);
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("duplicate segment: generation_id=g2 has segment_index=1"),
        "{}",
        stderr(&o)
    );
    // The files are cut into key ranges (g2's row in b goes with a), so quarantine finds
    // each generation whole in one partition and rejects g2.
    let o = run(&["--on-invalid", "quarantine"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&tmp.path().join("out"));
    assert_eq!(
        (s["n_generations"].as_u64(), s["rejected"]["generations"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    // Files whose ranges interleave are not cut: the plan spreads generations over
    // partitions, and quarantine, which cannot regroup them, says so.
    write_rows(&a, &[row("g1", 0, 0.1, &[1]), row("g3", 0, 0.2, &[2])]);
    write_rows(&b, &[row("g2", 0, 0.4, &[4])]);
    let o = run(&["--on-invalid", "quarantine"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("together in one partition"), "{}", stderr(&o));
}

#[test]
fn empty_output_folders_do_not_break_sql_report_and_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_inputs(tmp.path());
    let out = tmp.path().join("out");
    run_ok(&[&a, &b], &demo_model(), &out, &["--provider", "cpu"]);
    // A tool that copies outputs may leave an empty folder, e.g. rejected/.
    std::fs::create_dir_all(out.join("rejected")).unwrap();
    let rows = sql_json(&[
        "--table",
        out.to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM segments",
    ]);
    assert_eq!(rows[0]["n"], 4);
    let o = segscore(&["report", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = segscore(&[
        "compare",
        out.to_str().unwrap(),
        out.to_str().unwrap(),
        "--bootstrap",
        "10",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // An empty generations/ folder is a table that is not there, not an error.
    std::fs::remove_dir_all(out.join("generations")).unwrap();
    std::fs::create_dir_all(out.join("generations")).unwrap();
    let rows = sql_json(&[
        "--table",
        out.to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM segments",
    ]);
    assert_eq!(rows[0]["n"], 4);
}

#[test]
fn sql_to_leaves_no_inprogress_file_after_a_failure_mid_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = two_inputs(tmp.path());
    // A name that says no format, so that --format gives each.
    let to = tmp.path().join("result.out");
    let table = format!("t={}", a.display());
    for format in ["csv", "json", "parquet"] {
        // The cast fails as the rows are read, after the output file was opened.
        let o = segscore(&[
            "sql",
            "--table",
            &table,
            "SELECT CAST(generation_id AS INT) AS g FROM t",
            "--format",
            format,
            "--to",
            to.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{format}: {}", stderr(&o));
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("result"))
            .collect();
        assert!(left.is_empty(), "{format}: {left:?}");
    }
}

/// Paths with `..` (`-i ../data/a.parquet`, run from a sibling folder) failed with the object
/// store's "illegal character sequence \"..\"": inputs, tables, the output read back and a
/// hive folder all take them.
#[test]
fn paths_with_dot_dot_are_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = two_inputs(tmp.path());
    let here = tmp.path().join("work");
    std::fs::create_dir_all(&here).unwrap();
    let hive = tmp.path().join("hive").join("day=1");
    std::fs::create_dir_all(&hive).unwrap();
    std::fs::copy(&a, hive.join("a.parquet")).unwrap();
    let up = |p: &Path| format!("../{}", p.strip_prefix(tmp.path()).unwrap().display());
    let model = demo_model();
    let in_work = |args: &[&str]| segscore_in(&here, args);
    for (input, out) in [
        (up(&a), "../out-file"),
        (up(&tmp.path().join("hive")), "../out-hive"),
    ] {
        let o = in_work(&[
            "run",
            "-q",
            "-i",
            &input,
            "-m",
            model.to_str().unwrap(),
            "-o",
            out,
        ]);
        assert!(o.status.success(), "{input}: {}", stderr(&o));
        let o = in_work(&[
            "sql",
            "-t",
            out,
            "--format",
            "csv",
            "SELECT count(*) AS n FROM segments",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(String::from_utf8(o.stdout).unwrap(), "n\n2\n", "{input}");
    }
    assert_eq!(
        summary(&tmp.path().join("out-hive"))["partition_cols"],
        serde_json::json!(["day"])
    );
    let table = format!("t={}", up(&a));
    let o = in_work(&[
        "sql",
        "-t",
        &table,
        "--format",
        "csv",
        "SELECT count(*) AS n FROM t",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n\n2\n");
}
