//! Validation: `--on-invalid fail|quarantine`, `--max-invalid-fraction` (exit 3), the
//! reasons in `rejected/` and `summary.json`, and the model-output checks.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};

use crate::common::*;

/// The flags of a quarantine run on the CPU.
const QUARANTINE: &[&str] = &["--provider", "cpu", "--on-invalid", "quarantine"];

fn nan_row(gid: &str, seg: i64, ids: &[i64]) -> Row {
    row(gid, seg, f64::NAN, ids)
}

/// Every kind of invalid row the input can hold, next to two valid generations.
fn mixed_rows() -> (Vec<Row>, Vec<Row>) {
    let valid = vec![
        row("g1", 0, 0.5, &[10, 11]),
        row("g1", 1, 0.7, &[12]),
        row("g9", 0, -0.2, &[30, 31, 32]),
    ];
    let mut null_ids = row("g7", 0, 0.2, &[1]);
    null_ids.ids = None;
    let mut null_cum = row("g8", 0, 0.0, &[20]);
    null_cum.cum = None;
    let invalid = vec![
        row("g2", 0, 0.1, &[13]),
        nan_row("g2", 1, &[14]),
        row("g2", 2, 0.3, &[15]),
        row("g3", 0, 0.2, &[16]),
        row("g3", 1, 0.4, &[17]),
        row("g3", 1, 0.5, &[18]),
        row("g4", 0, 0.2, &[]),
        row("g5", 0, 0.2, &[5, 1000]),
        row("g6", 0, 0.2, &[-3]),
        null_ids,
        null_cum,
        row("g8", 1, 0.3, &[21]),
    ];
    (valid, invalid)
}

/// (note, reason) pairs, sorted.
fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.sort();
    v
}

/// The rejected rows of `out` as (note, reason) pairs, sorted.
fn rejected_reasons(out: &Path) -> Vec<(String, String)> {
    let rejected = read_parts(&out.join("rejected"));
    let mut v: Vec<(String, String)> = str_col(&rejected, "note")
        .into_iter()
        .zip(str_col(&rejected, "reason"))
        .collect();
    v.sort();
    v
}

/// `b` with column `i` replaced by the nullable `values`, written to `path`.
fn write_with_nullable(path: &Path, b: &RecordBatch, i: usize, values: ArrayRef) {
    let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[i] = fields[i].clone().with_nullable(true);
    let mut cols = b.columns().to_vec();
    cols[i] = values;
    write_batch(
        path,
        &RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap(),
    );
}

fn expected_reasons() -> Vec<(String, String)> {
    pairs(&[
        ("g2#0", "invalid_segment_in_generation"),
        ("g2#1", "non_finite_cumulative_score"),
        ("g2#2", "invalid_segment_in_generation"),
        ("g3#0", "invalid_segment_in_generation"),
        ("g3#1", "duplicate_segment"),
        ("g3#1", "duplicate_segment"),
        ("g4#0", "empty_input_ids"),
        ("g5#0", "token_id_out_of_range"),
        ("g6#0", "token_id_out_of_range"),
        ("g7#0", "null_input_ids"),
        ("g8#0", "null_cumulative_score"),
        ("g8#1", "invalid_segment_in_generation"),
    ])
}

fn counts(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect()
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// Writes the rows shuffled over two files (unsorted), or sorted in one file.
fn write_input(dir: &Path, rows: &[Row], sorted: bool) -> Vec<std::path::PathBuf> {
    let mut rows = rows.to_vec();
    if sorted {
        rows.sort_by(|a, b| (&a.gid, a.seg).cmp(&(&b.gid, b.seg)));
        let p = dir.join("sorted.parquet");
        write_rows(&p, &rows);
        return vec![p];
    }
    // A fixed shuffle: reversed, interleaved into two files.
    rows.reverse();
    let (a, b): (Vec<_>, Vec<_>) = rows.iter().cloned().enumerate().partition(|(i, _)| i % 2 == 0);
    let strip = |v: Vec<(usize, Row)>| v.into_iter().map(|(_, r)| r).collect::<Vec<_>>();
    let (pa, pb) = (dir.join("a.parquet"), dir.join("b.parquet"));
    write_rows(&pa, &strip(a));
    write_rows(&pb, &strip(b));
    vec![pa, pb]
}

#[test]
fn quarantine_rejects_whole_generations_and_scores_the_rest_as_a_clean_run_would() {
    let tmp = tempfile::tempdir().unwrap();
    let (valid, invalid) = mixed_rows();
    let clean_in = tmp.path().join("clean.parquet");
    write_rows(&clean_in, &valid);
    let clean = tmp.path().join("clean_out");
    run_ok(&[&clean_in], &demo_model(), &clean, &["--provider", "cpu"]);
    let all: Vec<Row> = valid.iter().chain(&invalid).cloned().collect();
    for sorted in [false, true] {
        let dir = tmp.path().join(format!("in_{sorted}"));
        let inputs = write_input(&dir, &all, sorted);
        let refs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
        let out = tmp.path().join(format!("out_{sorted}"));
        let mut flags = QUARANTINE.to_vec();
        if sorted {
            flags.push("--sorted");
        }
        let o = run_ok(&refs, &demo_model(), &out, &flags);
        assert!(out.join("_SUCCESS").exists());
        let table = String::from_utf8_lossy(&o.stdout);
        assert!(
            table.contains("rejected             12 rows, 7 generations (invalid_segment_in_generation 4,"),
            "{table}"
        );
        // The valid generations come out exactly as a run on them alone gives them.
        assert_same_rows(
            &rows_by_key(&read_segments(&clean)),
            &rows_by_key(&read_segments(&out)),
            "valid generations",
        );
        // Rejected rows keep the input's columns, names and types, plus a reason.
        let rejected = read_parts(&out.join("rejected"));
        let names: Vec<String> = rejected
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "generation_id",
                "segment_index",
                "cumulative_score",
                "input_ids",
                "note",
                "reason"
            ]
        );
        let input_schema = batch(&valid).schema();
        for f in input_schema.fields() {
            assert_eq!(
                rejected.schema().field_with_name(f.name()).unwrap().data_type(),
                f.data_type(),
                "{}",
                f.name()
            );
        }
        assert_eq!(rejected_reasons(&out), expected_reasons(), "sorted={sorted}");
        // The token lists travel unchanged.
        let g5 = str_col(&rejected, "note")
            .iter()
            .position(|n| n == "g5#0")
            .unwrap();
        let ids = rejected.column_by_name("input_ids").unwrap();
        assert_eq!(
            datafusion::arrow::util::display::array_value_to_string(ids, g5).unwrap(),
            "[5, 1000]"
        );
        let s = summary(&out);
        assert_eq!(s["n_generations"], 2);
        assert_eq!(s["n_segments"], 3);
        let r = &s["rejected"];
        assert_eq!(r["on_invalid"], "quarantine");
        assert_eq!(r["input_rows"], 15);
        assert_eq!(r["rows"], 12);
        assert_eq!(r["generations"], 7);
        assert_eq!(r["fraction"], 0.8);
        assert_eq!(
            counts(&r["rows_by_reason"]),
            map(&[
                ("duplicate_segment", 2),
                ("empty_input_ids", 1),
                ("invalid_segment_in_generation", 4),
                ("non_finite_cumulative_score", 1),
                ("null_cumulative_score", 1),
                ("null_input_ids", 1),
                ("token_id_out_of_range", 2),
            ])
        );
        assert_eq!(
            counts(&r["generations_by_reason"]),
            map(&[
                ("duplicate_segment", 1),
                ("empty_input_ids", 1),
                ("non_finite_cumulative_score", 1),
                ("null_cumulative_score", 1),
                ("null_input_ids", 1),
                ("token_id_out_of_range", 2),
            ])
        );
        // SQL sees the rejected rows next to the outputs.
        let o = segscore(&[
            "sql",
            "--table",
            out.to_str().unwrap(),
            "--format",
            "csv",
            "SELECT reason, COUNT(*) AS n FROM rejected GROUP BY reason ORDER BY reason",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("token_id_out_of_range,2"), "{text}");
    }
}

#[test]
fn fail_mode_names_the_row_column_and_problem_of_each_invalid_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let base = vec![row("g1", 0, 0.5, &[10, 11]), row("g1", 1, 0.7, &[12])];
    let mut null_ids = row("g7", 0, 0.2, &[1]);
    null_ids.ids = None;
    let cases: Vec<(Row, Vec<&str>)> = vec![
        (
            row("g5", 0, 0.2, &[5, 1000]),
            vec![
                "`input_ids`",
                "token id 1000 at position 1",
                "vocabulary size 1000",
                "`embedding`",
                "generation_id=g5",
                "segment_index=0",
            ],
        ),
        (
            row("g6", 3, 0.2, &[-3]),
            vec![
                "`input_ids`",
                "token id -3",
                "negative",
                "generation_id=g6",
                "segment_index=3",
            ],
        ),
        (
            row("g4", 0, 0.2, &[]),
            vec!["`input_ids`", "empty", "generation_id=g4"],
        ),
        (null_ids, vec!["`input_ids`", "null", "generation_id=g7"]),
        (
            nan_row("g2", 1, &[14]),
            vec![
                "`cumulative_score`",
                "non-finite (NaN)",
                "generation_id=g2",
                "segment_index=1",
            ],
        ),
    ];
    for (i, (bad, needles)) in cases.into_iter().enumerate() {
        let input = tmp.path().join(format!("in{i}.parquet"));
        let mut rows = base.clone();
        rows.push(bad);
        write_rows(&input, &rows);
        let out = tmp.path().join(format!("out{i}"));
        let o = run(&[&input], &demo_model(), &out, &["--provider", "cpu"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        for n in needles {
            assert!(err.contains(n), "case {i}: message should name `{n}`: {err}");
        }
        assert_no_output(&out);
    }
}

#[test]
fn max_invalid_fraction_fails_with_exit_3_and_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (valid, invalid) = mixed_rows();
    let all: Vec<Row> = valid.iter().chain(&invalid).cloned().collect();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &all);
    let out = tmp.path().join("out");
    let o = run(
        &[&input],
        &demo_model(),
        &out,
        &[QUARANTINE, &["--max-invalid-fraction", "0.5"]].concat(),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("of 15 input rows") && err.contains("--max-invalid-fraction 0.5"),
        "{err}"
    );
    assert_no_output(&out);
    assert!(!out.join("rejected").exists());
    // 12 of 15 is 0.8: at the threshold, not above it.
    run_ok(
        &[&input],
        &demo_model(),
        &out,
        &[QUARANTINE, &["--max-invalid-fraction", "0.8"]].concat(),
    );
    assert_eq!(summary(&out)["rejected"]["max_invalid_fraction"], 0.8);
    // The threshold means nothing without quarantine.
    let o = run(
        &[&input],
        &demo_model(),
        &tmp.path().join("o2"),
        &["--max-invalid-fraction", "0.5"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--on-invalid quarantine"));
}

/// Two finite scores whose difference overflows (1e308, then -1e308): the target is not
/// finite, and in quarantine that row carries `non_finite_target` itself (no other row of its
/// generation explains it; it was filed as `invalid_segment_in_generation`).
#[test]
fn a_target_that_overflows_is_named_and_quarantined_under_its_own_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(
        &input,
        &[
            row("g1", 0, 1e308, &[10]),
            row("g1", 1, -1e308, &[11]),
            row("g2", 0, 0.5, &[12]),
        ],
    );
    let o = run(
        &[&input],
        &demo_model(),
        &tmp.path().join("fail"),
        &["--provider", "cpu"],
    );
    assert_fails(
        &o,
        1,
        "column `target_score` is -inf (made from the cumulative scores) at generation_id=g1, segment_index=1",
    );
    let out = tmp.path().join("out");
    run_ok(&[&input], &demo_model(), &out, QUARANTINE);
    let rejected = read_parts(&out.join("rejected"));
    assert_eq!(
        str_col(&rejected, "reason"),
        ["invalid_segment_in_generation", "non_finite_target"]
    );
    let s = summary(&out);
    assert_eq!(s["rejected"]["rows_by_reason"]["non_finite_target"], 1);
    assert_eq!(s["rejected"]["generations_by_reason"]["non_finite_target"], 1);
    assert_eq!(s["n_segments"], 1);
}

#[test]
fn null_generation_ids_are_quarantined_together() {
    let tmp = tempfile::tempdir().unwrap();
    let b = batch(&[
        row("g1", 0, 0.5, &[10]),
        row("x", 0, 0.1, &[11]),
        row("x", 1, 0.2, &[12]),
    ]);
    let input = tmp.path().join("in.parquet");
    write_with_nullable(
        &input,
        &b,
        0,
        Arc::new(StringArray::from(vec![Some("g1"), None, None])),
    );
    // Fail mode: the footer's statistics already show the nulls.
    let o = run(
        &[&input],
        &demo_model(),
        &tmp.path().join("fail"),
        &["--provider", "cpu"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`generation_id` has 2 null value(s)"),
        "{}",
        stderr(&o)
    );
    let out = tmp.path().join("out");
    run_ok(&[&input], &demo_model(), &out, QUARANTINE);
    let rejected = read_parts(&out.join("rejected"));
    assert_eq!(
        str_col(&rejected, "reason"),
        ["null_generation_id", "null_generation_id"]
    );
    assert_eq!(rejected.column_by_name("generation_id").unwrap().null_count(), 2);
    let s = summary(&out);
    assert_eq!(
        (s["n_generations"].as_u64(), s["rejected"]["generations"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn non_finite_predictions_name_the_model_output_or_are_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let model = test_model("log_shifted.onnx");
    // log(mean(ids) * 0.001 - 0.5): 1500 -> 0, 400 -> NaN, 500 -> -inf.
    let input = tmp.path().join("in.parquet");
    write_rows(
        &input,
        &[
            row("g1", 0, 0.5, &[1500]),
            row("g2", 0, 0.5, &[1500]),
            row("g2", 1, 0.6, &[400]),
        ],
    );
    let o = run(
        &[&input],
        &model,
        &tmp.path().join("fail"),
        &["--provider", "cpu"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for n in [
        "predicted_score (model output `score`)",
        "NaN",
        "generation_id=g2",
        "segment_index=1",
    ] {
        assert!(err.contains(n), "message should name `{n}`: {err}");
    }
    let input2 = tmp.path().join("in2.parquet");
    write_rows(
        &input2,
        &[
            row("g1", 0, 0.5, &[1500]),
            row("g2", 0, 0.5, &[1500]),
            row("g2", 1, 0.6, &[400]),
            row("g3", 0, 0.1, &[500]),
        ],
    );
    let out = tmp.path().join("out");
    run_ok(&[&input2], &model, &out, QUARANTINE);
    assert_eq!(
        rejected_reasons(&out),
        pairs(&[
            ("g2#0", "invalid_segment_in_generation"),
            ("g2#1", "non_finite_prediction"),
            ("g3#0", "non_finite_prediction"),
        ])
    );
    assert_eq!(str_col(&read_segments(&out), "note"), ["g1#0"]);
}

#[test]
fn a_score_output_of_the_wrong_shape_names_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &[row("g1", 0, 0.5, &[1500]), row("g1", 1, 0.6, &[1400])]);
    let out = tmp.path().join("out");
    let o = run(
        &[&input],
        &test_model("wrong_shape.onnx"),
        &out,
        &["--provider", "cpu"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("output `score` has shape [4] for a batch of 2 rows"),
        "{err}"
    );
    // The batch's rows have no key at that point; segscore then finds the first row that fails.
    assert!(
        err.contains("(first at generation_id=g1, segment_index=0)"),
        "{err}"
    );
    assert_no_output(&out);
}

#[test]
fn a_run_that_rejects_every_row_commits_an_empty_segments_table() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &[row("g1", 0, 0.5, &[]), nan_row("g2", 0, &[3])]);
    let out = tmp.path().join("out");
    run_ok(&[&input], &demo_model(), &out, QUARANTINE);
    let files = parts(&out.join("segments"));
    assert_eq!(files.len(), 1);
    let batches = read_parquet(&files[0]);
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        0,
        "{:?} {}",
        files,
        std::fs::read_to_string(out.join("summary.json")).unwrap()
    );
    let s = summary(&out);
    assert_eq!(s["n_segments"], 0);
    assert_eq!(s["n_generations"], 0);
    assert!(s["mse"].is_null());
    assert_eq!(s["rejected"]["rows"], 2);
    assert_eq!(read_parts(&out.join("rejected")).num_rows(), 2);
}

/// DataFusion 55 reads a column whose file statistics have min == max as that constant, and
/// Parquet's statistics leave NaN out: a NaN among equal scores was read as the score.
#[test]
fn nan_among_equal_scores_is_not_read_as_the_other_score() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &[row("g1", 0, 0.5, &[5]), nan_row("g2", 0, &[3])]);
    let o = run(
        &[&input],
        &demo_model(),
        &tmp.path().join("fail"),
        &["--provider", "cpu"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("non-finite (NaN)"), "{}", stderr(&o));
    let out = tmp.path().join("out");
    run_ok(&[&input], &demo_model(), &out, QUARANTINE);
    assert_eq!(
        str_col(&read_parts(&out.join("rejected")), "reason"),
        ["non_finite_cumulative_score"]
    );
    assert_eq!(
        sql_csv_on(
            &input,
            "SELECT generation_id, isnan(cumulative_score) AS nan FROM t ORDER BY 1"
        ),
        "generation_id,nan\ng1,false\ng2,true\n"
    );
}

#[test]
fn null_segment_indexes_reject_their_generation_sorted_or_not() {
    let tmp = tempfile::tempdir().unwrap();
    let b = batch(&[
        row("g1", 0, 0.5, &[10]),
        row("g2", 0, 0.1, &[11]),
        row("g2", 1, 0.2, &[12]),
        row("g3", 0, 0.3, &[13]),
    ]);
    let input = tmp.path().join("in.parquet");
    let segs = datafusion::arrow::array::Int64Array::from(vec![Some(0), None, Some(1), Some(0)]);
    write_with_nullable(&input, &b, 1, Arc::new(segs));
    for sorted in [false, true] {
        let out = tmp.path().join(format!("out{sorted}"));
        let mut flags = QUARANTINE.to_vec();
        if sorted {
            flags.push("--sorted"); // nulls last within the generation, as the file has them
        }
        let o = run(&[&input], &demo_model(), &out, &flags);
        if sorted {
            // The file has g2's null before its segment 1: not the declared order.
            assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
            assert!(stderr(&o).contains("declared sorted"), "{}", stderr(&o));
            continue;
        }
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            rejected_reasons(&out),
            pairs(&[
                ("g2#0", "null_segment_index"),
                ("g2#1", "invalid_segment_in_generation")
            ])
        );
        let mut notes = str_col(&read_segments(&out), "note");
        notes.sort();
        assert_eq!(notes, ["g1#0", "g3#0"]);
    }
}
