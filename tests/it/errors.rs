//! Bad input: every case exits non-zero with a message naming the file, column or value at
//! fault, and leaves no `_SUCCESS`, no part files and no summary.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::common::*;

fn good_rows() -> Vec<Row> {
    vec![
        row("g1", 0, 0.5, &[10, 11]),
        row("g1", 1, 0.7, &[12]),
        row("g2", 0, -0.1, &[13, 14, 15]),
    ]
}

/// Runs on `input` and checks failure, the message's parts and that nothing was written.
fn fails_with(input: &Path, model: &Path, out: &Path, needles: &[&str]) -> String {
    let o = run(&[input], model, out, &["--provider", "cpu"]);
    let err = stderr(&o);
    assert!(!o.status.success(), "expected failure; stderr: {err}");
    assert_eq!(o.status.code(), Some(1), "job failures exit 1: {err}");
    for n in needles {
        assert!(err.contains(n), "message should name `{n}`: {err}");
    }
    assert_no_output(out);
    err
}

#[test]
fn missing_column_names_file_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("no_scores.parquet");
    let b = batch(&good_rows());
    let b = b.project(&[0, 1, 3]).unwrap();
    write_batch(&input, &b);
    fails_with(
        &input,
        &demo_model(),
        &tmp.path().join("out"),
        &["no_scores.parquet", "missing column `cumulative_score`"],
    );
}

#[test]
fn wrong_column_type_names_file_column_and_types() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("text_scores.parquet");
    let b = batch(&good_rows());
    let schema = Arc::new(Schema::new(vec![
        b.schema().field(0).clone(),
        b.schema().field(1).clone(),
        Field::new("cumulative_score", DataType::Utf8, false),
        b.schema().field(3).clone(),
    ]));
    let cols: Vec<ArrayRef> = vec![
        b.column(0).clone(),
        b.column(1).clone(),
        Arc::new(StringArray::from(vec!["0.5", "0.7", "-0.1"])),
        b.column(3).clone(),
    ];
    write_batch(&input, &RecordBatch::try_new(schema, cols).unwrap());
    fails_with(
        &input,
        &demo_model(),
        &tmp.path().join("out"),
        &[
            "text_scores.parquet",
            "`cumulative_score`",
            "Utf8",
            "expected a float, decimal or integer",
        ],
    );
}

#[test]
fn null_score_names_file_column_and_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("nulls.parquet");
    let mut rows = good_rows();
    rows[1].cum = None;
    write_rows(&input, &rows);
    fails_with(
        &input,
        &demo_model(),
        &tmp.path().join("out"),
        &["nulls.parquet", "`cumulative_score`", "null"],
    );
}

#[test]
fn null_score_without_statistics_names_the_row() {
    // Statistics disabled: the footer cannot tell, so the check happens as rows flow.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("nulls_nostats.parquet");
    let mut rows = good_rows();
    rows[1].cum = None;
    let b = batch(&rows);
    let props = datafusion::parquet::file::properties::WriterProperties::builder()
        .set_statistics_enabled(datafusion::parquet::file::properties::EnabledStatistics::None)
        .build();
    let f = std::fs::File::create(&input).unwrap();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(f, b.schema(), Some(props)).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    let named = format!("(input row 1 of {}, counting from 0)", input.display());
    fails_with(
        &input,
        &demo_model(),
        &tmp.path().join("out"),
        &[
            "`cumulative_score` is null",
            "generation_id=g1",
            "segment_index=1",
            &named,
        ],
    );
}

#[test]
fn a_bad_row_is_named_by_file_and_row_among_many_files() {
    // Six files of 40 rows in row groups of 8; the NaN score is in the fifth file's fourth row
    // group. The footers' key ranges rule out the other files' row groups.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    let props = datafusion::parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(8))
        .build();
    for f in 0..6 {
        let mut rows: Vec<Row> = (0..40)
            .map(|i| row(&format!("g{f}-{:02}", i / 4), i % 4, 0.1 * i as f64, &[10]))
            .collect();
        if f == 4 {
            rows[27].cum = Some(f64::NAN);
        }
        let b = batch(&rows);
        let w = std::fs::File::create(dir.join(format!("part-{f}.parquet"))).unwrap();
        let mut w =
            datafusion::parquet::arrow::ArrowWriter::try_new(w, b.schema(), Some(props.clone())).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
    }
    let bad = dir.join("part-4.parquet");
    let named = format!("(input row 27 of {}, counting from 0)", bad.display());
    let err = fails_with(
        &dir,
        &demo_model(),
        &tmp.path().join("out"),
        &[
            "`cumulative_score` is non-finite (NaN)",
            "generation_id=g4-06, segment_index=3",
            &named,
        ],
    );
    assert_eq!(named_rows(&err), vec![(bad.clone(), 27)]);
    assert_eq!(key_at(&bad, 27), ("g4-06".to_string(), "3".to_string()));
}

#[test]
fn duplicate_segment_names_generation_and_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    // The duplicate is across two files.
    write_rows(&dir.join("a.parquet"), &good_rows());
    write_rows(&dir.join("b.parquet"), &[row("g2", 0, 0.3, &[1])]);
    // Both rows, each in its file.
    let named = format!(
        "(input rows 2 of {} and 0 of {}, counting from 0)",
        dir.join("a.parquet").display(),
        dir.join("b.parquet").display()
    );
    fails_with(
        &dir,
        &demo_model(),
        &tmp.path().join("out"),
        &["duplicate", "generation_id=g2", "segment_index=0", &named],
    );
    // Both in one file.
    let one = tmp.path().join("one.parquet");
    let mut rows = good_rows();
    rows.insert(1, row("g1", 1, 0.6, &[16]));
    write_rows(&one, &rows);
    let err = fails_with(
        &one,
        &demo_model(),
        &tmp.path().join("out-one"),
        &["generation_id=g1", "segment_index=1"],
    );
    assert_eq!(named_rows(&err), vec![(one.clone(), 1), (one, 2)], "{err}");
}

#[test]
fn empty_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("empty.parquet");
    std::fs::write(&input, b"").unwrap();
    fails_with(
        &input,
        &demo_model(),
        &tmp.path().join("out"),
        &["empty.parquet", "empty (0 bytes)"],
    );
    // A valid Parquet file with no rows.
    let norows = tmp.path().join("norows.parquet");
    write_rows(&norows, &[]);
    fails_with(
        &norows,
        &demo_model(),
        &tmp.path().join("out2"),
        &["norows.parquet", "contains no rows"],
    );
}

/// A file that is not Parquet is named, with what it looks like from its first and last bytes
/// (the reader's own words, "Corrupt footer", said nothing of that): CSV, an Arrow IPC
/// (Feather) file, a compressed file, and above all a Parquet file cut short (a copy or a
/// writer that did not finish).
/// How a message about a file segscore sql can read says to convert it.
const COPY: &str =
    ": write it as Parquet (`segscore sql \"COPY 'IN' TO 'OUT.parquet'\"` reads Arrow, CSV and JSON files)";

#[test]
fn not_parquet_is_named_with_what_it_looks_like() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    generate(&good, 200, 1, false);
    let parquet = std::fs::read(good.join("part-00000.parquet")).unwrap();
    let arrow = {
        let mut b = b"ARROW1\0\0".to_vec();
        b.extend_from_slice(&parquet[..64]);
        b
    };
    let cases: [(&str, Vec<u8>, String); 5] = [
        (
            "data.parquet",
            b"generation_id,segment_index\ng,0\n".to_vec(),
            format!("it begins like text (CSV or JSON?), not Parquet{COPY}"),
        ),
        (
            "data.arrow",
            arrow,
            format!("it begins like an Arrow IPC (Feather) file, not Parquet{COPY}"),
        ),
        (
            "data.parquet.gz",
            vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4],
            "it begins like a gzip file, not Parquet".into(),
        ),
        (
            "cut.parquet",
            parquet[..parquet.len() / 2].to_vec(),
            format!(
                "it begins as Parquet but does not end with Parquet's `PAR1` ({} bytes): cut short, by a copy or a writer that did not finish?",
                parquet.len() / 2
            ),
        ),
        (
            "tiny.parquet",
            b"PAR1".to_vec(),
            "4 bytes, too few for Parquet (its magic bytes and footer length take 12): cut short?".into(),
        ),
    ];
    for (name, bytes, says) in cases {
        let input = tmp.path().join(name);
        std::fs::write(&input, bytes).unwrap();
        let want = format!(
            "input file {}: not a readable Parquet file: {says}",
            input.display()
        );
        fails_with(&input, &demo_model(), &tmp.path().join("out"), &[&want]);
    }
}

#[test]
fn unbindable_model_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &good_rows());
    fails_with(
        &input,
        &test_model("needs_pixels.onnx"),
        &tmp.path().join("out"),
        &["needs_pixels.onnx", "`pixel_values`", "no column"],
    );
}

#[test]
fn missing_model_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &good_rows());
    let model = tmp.path().join("nope.onnx");
    fails_with(
        &input,
        &model,
        &tmp.path().join("out"),
        &["nope.onnx", "cannot read"],
    );
    let out = tmp.path().join("out");
    assert!(
        !out.exists(),
        "a failed pre-flight check creates no output directory"
    );
}

#[test]
fn model_file_that_is_not_onnx_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &good_rows());
    let model = tmp.path().join("garbage.onnx");
    std::fs::write(&model, b"this is not a protobuf").unwrap();
    fails_with(
        &input,
        &model,
        &tmp.path().join("out"),
        &["garbage.onnx", "ONNX Runtime cannot load it"],
    );
}

/// From `--threads 2` on the model loads while the query is planned (at 1, after it): a bad
/// input's error comes before a bad model's either way, a bad query's after it, and each
/// reads the same.
#[test]
fn an_inputs_error_comes_before_the_models_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_input = tmp.path().join("no_scores.parquet");
    write_batch(&bad_input, &batch(&good_rows()).project(&[0, 1, 3]).unwrap());
    let good_input = tmp.path().join("in.parquet");
    write_rows(&good_input, &good_rows());
    let model = tmp.path().join("garbage.onnx");
    std::fs::write(&model, b"this is not a protobuf").unwrap();
    let out = tmp.path().join("out");
    for threads in ["1", "2", "4"] {
        let flags = ["--provider", "cpu", "--threads", threads];
        let err = stderr(&run(&[&bad_input], &model, &out, &flags));
        assert!(
            err.contains("no_scores.parquet") && err.contains("missing column `cumulative_score`"),
            "--threads {threads}: {err}"
        );
        assert!(!err.contains("garbage.onnx"), "--threads {threads}: {err}");
        let o = run(&[&good_input], &model, &out, &flags);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "--threads {threads}: {err}");
        assert!(
            err.contains("garbage.onnx") && err.contains("ONNX Runtime cannot load it"),
            "--threads {threads}: {err}"
        );
        assert_no_output(&out);
        // The query is planned while the model loads: the model's error still comes first.
        let query = tmp.path().join("bad.sql");
        std::fs::write(&query, "SELECT g.*, no_such_function(1) AS x FROM generations g").unwrap();
        let with_query = [&flags[..], &["--query-file", query.to_str().unwrap()]].concat();
        let err = stderr(&run(&[&good_input], &model, &out, &with_query));
        assert!(err.contains("garbage.onnx"), "--threads {threads}: {err}");
        let good_model = demo_model();
        let o = run(&[&good_input], &good_model, &out, &with_query);
        assert_fails(&o, 2, "no_such_function");
        assert_no_output(&out);
    }
}

#[test]
fn existing_output_directory_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &good_rows());
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("precious.txt"), b"keep me").unwrap();
    let o = run(&[&input], &demo_model(), &out, &["--provider", "cpu"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("not empty") && err.contains("precious.txt") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("precious.txt")).unwrap(), b"keep me");
    assert_no_output(&out);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

/// An output the inputs reach would be read back as input by every re-run (its segments and
/// generations are Parquet): refused before anything is written, the inputs left alone.
#[test]
fn output_that_the_inputs_reach_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let input = data.join("in.parquet");
    write_rows(&input, &good_rows());
    let listing = |dir: &Path| -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let cpu = ["--provider", "cpu"];
    let o = run(&[&data], &demo_model(), &data.join("scored"), &cpu);
    assert_fails(
        &o,
        2,
        &format!("is inside the input directory {}", data.display()),
    );
    assert!(
        stderr(&o).contains("Choose --output outside the inputs"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &[&data],
        &demo_model(),
        &data,
        &["--provider", "cpu", "--overwrite"],
    );
    assert_fails(&o, 2, &format!("is the input directory {}", data.display()));
    assert_eq!(listing(&data), ["in.parquet"]);
    // A folder the search skips: the run and its re-run read the same input.
    let hidden = data.join("_scored");
    run_ok(&[&data], &demo_model(), &hidden, &cpu);
    let first = read_segments(&hidden);
    run_ok(
        &[&data],
        &demo_model(),
        &hidden,
        &["--provider", "cpu", "--overwrite"],
    );
    assert_eq!(read_segments(&hidden), first);
    // A glob that reaches into it names the input file it found there.
    let glob = format!("{}/**/*.parquet", data.display());
    let o = run(
        &[Path::new(&glob)],
        &demo_model(),
        &hidden,
        &["--provider", "cpu", "--overwrite"],
    );
    assert_fails(
        &o,
        2,
        &format!("holds the input file {}", hidden.join("generations").display()),
    );
    assert_eq!(read_segments(&hidden), first, "the output is left as it was");
}

/// `generate` writes a whole dataset: into a folder that holds anything it would replace some
/// files and leave others beside its own.
#[test]
fn generate_refuses_a_folder_that_is_not_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("part-00000.parquet"), b"keep me").unwrap();
    let o = segscore(&["generate", "-o", dir.to_str().unwrap(), "--segments", "100"]);
    assert_fails(
        &o,
        1,
        &format!(
            "output {}: is not empty (holds part-00000.parquet)",
            dir.display()
        ),
    );
    assert_eq!(std::fs::read(dir.join("part-00000.parquet")).unwrap(), b"keep me");
    let fresh = tmp.path().join("fresh");
    let o = segscore(&[
        "generate",
        "-o",
        fresh.to_str().unwrap(),
        "--segments",
        "100",
        "--files",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(parts(&fresh).len(), 2);
    // No rows, or no files: refused (it wrote 4 empty files, or 1 file for 0).
    let none = tmp.path().join("none");
    for flags in [["--segments", "0"], ["--files", "0"]] {
        let mut args = vec!["generate", "-o", none.to_str().unwrap()];
        args.extend(flags);
        let o = segscore(&args);
        assert_fails(&o, 2, &format!("invalid value '0' for '{}", flags[0]));
        assert!(!none.exists());
    }
    // More files than rows (some would be empty), or more than it can hold open: refused.
    for (segments, files, says) in [
        ("3", "5", "--files 5 is more than --segments 3"),
        ("1000000", "100000000000000000", "is not in 1..=10000"),
    ] {
        let o = segscore(&[
            "generate",
            "-o",
            none.to_str().unwrap(),
            "--segments",
            segments,
            "--files",
            files,
        ]);
        assert_fails(&o, 2, says);
        assert!(!none.exists());
    }
}

#[test]
fn failed_overwrite_keeps_the_previous_complete_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &good_rows());
    let out = tmp.path().join("out");
    run_ok(&[&input], &demo_model(), &out, &["--provider", "cpu"]);
    let before = std::fs::read(out.join("summary.json")).unwrap();
    // Now a duplicate: found only while rows flow, after the output was opened.
    let mut rows = good_rows();
    rows.push(row("g1", 1, 0.9, &[3]));
    write_rows(&input, &rows);
    let o = run(
        &[&input],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--overwrite"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("duplicate"));
    assert!(out.join("_SUCCESS").exists(), "the earlier complete output stays");
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), before);
    let hidden: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "no staging left: {hidden:?}");
}

#[test]
fn empty_token_list_names_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    let mut rows = good_rows();
    rows[2].ids = Some(vec![]);
    write_rows(&input, &rows);
    fails_with(
        &input,
        &demo_model(),
        &tmp.path().join("out"),
        &["`input_ids`", "empty", "generation_id=g2", "segment_index=0"],
    );
}

#[test]
fn schema_mismatch_between_files_names_both() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    write_rows(&dir.join("a.parquet"), &good_rows());
    let schema = Arc::new(Schema::new(vec![
        Field::new("generation_id", DataType::Int64, false),
        Field::new("segment_index", DataType::Int64, false),
        Field::new("cumulative_score", DataType::Float64, false),
        batch(&good_rows()).schema().field(3).clone(),
    ]));
    let b = batch(&[row("x", 0, 0.1, &[1])]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![5])),
        Arc::new(Int64Array::from(vec![0])),
        Arc::new(Float64Array::from(vec![0.1])),
        b.column(3).clone(),
    ];
    write_batch(
        &dir.join("b.parquet"),
        &RecordBatch::try_new(schema, cols).unwrap(),
    );
    fails_with(
        &dir,
        &demo_model(),
        &tmp.path().join("out"),
        &["b.parquet", "`generation_id`", "Int64", "a.parquet"],
    );
}

/// Hive and Flink name their files `000000_0`, without the `.parquet` extension a folder search
/// looks for: the error says what the folder holds and how to read it, and that way works.
#[test]
fn a_folder_of_files_without_the_extension_says_how_to_read_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("table");
    write_rows(&dir.join("000000_0"), &good_rows());
    // Hidden files are passed over without a word, as Hive's staging folders.
    std::fs::create_dir_all(dir.join(".hive-staging")).unwrap();
    std::fs::write(dir.join(".hive-staging/x"), "").unwrap();
    let o = run(&[&dir], &demo_model(), &tmp.path().join("out"), &[]);
    let hint = format!(
        "no Parquet files found (it holds 1 file without the .parquet extension, such as {}: give such files by name, or by a glob such as {}/*)",
        dir.join("000000_0").display(),
        dir.display()
    );
    assert_fails(&o, 1, &hint);
    let table = format!("t={}", dir.display());
    let o = segscore(&["sql", "-t", &table, "SELECT 1"]);
    assert_fails(&o, 1, &hint);
    let glob = dir.join("*");
    let out = tmp.path().join("out");
    run_ok(&[&glob], &demo_model(), &out, &["--provider", "cpu"]);
    let rows = sql_csv(&out.display().to_string(), "SELECT count(*) AS n FROM segments");
    assert_eq!(rows, format!("n\n{}\n", good_rows().len()));
}

#[test]
fn missing_input_and_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run(&[&tmp.path().join("missing.parquet")], &demo_model(), &out, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.parquet"), "{}", stderr(&o));
    let o = run(&[&tmp.path().join("*.parquet")], &demo_model(), &out, &[]);
    assert!(stderr(&o).contains("no Parquet files found"), "{}", stderr(&o));
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &good_rows());
    let o = run(&[&input], &demo_model(), &out, &["--loss", "hinge"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown loss `hinge`"));
    let o = run(&[&input], &demo_model(), &out, &["--provider", "tpu"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("tpu"));
    let o = run(&[&input], &demo_model(), &out, &["--drop", "segment_index"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--drop segment_index"));
    let both = ["--keep", "input_ids", "--drop", "input_ids"];
    let o = run(&[&input], &demo_model(), &out, &both);
    assert_fails(
        &o,
        2,
        "--keep input_ids and --drop input_ids: a column is kept or dropped",
    );
    assert!(!out.exists());
}

/// Each command's help lists its own options first and the options every command takes
/// (`-q`, `-v`, `--config`, `--log-format`, `--s3-endpoint`) under a heading of their own: they
/// were mixed in among `run`'s, `-q` between `--input` and `--model`.
#[test]
fn help_lists_a_commands_options_then_the_global_ones() {
    let global = [
        "--quiet",
        "--verbose",
        "--config",
        "--log-format",
        "--s3-endpoint",
    ];
    for (command, own) in [("run", "--model"), ("sql", "--table"), ("compare", "--bootstrap")] {
        let o = segscore(&[command, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let help = String::from_utf8(o.stdout).unwrap();
        let (options, globals) = help.split_once("\nGlobal options:\n").expect(&help);
        assert!(options.contains(own), "{help}");
        for flag in global {
            assert!(
                !options.contains(flag) && globals.contains(flag),
                "{flag}: {help}"
            );
        }
    }
}

/// A URL of a scheme segscore does not read or write (`gs://`, `s3a://`, `hdfs://`, `file://`)
/// is refused by the argument that holds it: taken as a path, `--output gs://bucket/out`
/// wrote a local folder `gs:` and the run exited 0.
#[test]
fn urls_of_schemes_other_than_s3_are_refused_not_taken_as_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &good_rows());
    let model = demo_model();
    let (input, model) = (input.to_str().unwrap(), model.to_str().unwrap());
    let segscore_here = |args: &[&str]| segscore_in(tmp.path(), args);
    let other =
        "is not a scheme segscore reads or writes; segscore reads and writes local paths and s3:// URLs";
    for (args, want) in [
        (vec!["run", "-i", input, "-m", model, "-o", "gs://bucket/out"], format!("gs://bucket/out: gs:// {other}")),
        (
            vec!["run", "-i", "s3a://bucket/in/x.parquet", "-m", model, "-o", "out"],
            "s3a://bucket/in/x.parquet: s3a:// is not a scheme segscore reads or writes; write it s3://bucket/in/x.parquet".into(),
        ),
        (
            vec!["run", "-i", input, "-m", "file:///models/m.onnx", "-o", "out"],
            "file:///models/m.onnx: file:// is not a scheme segscore reads or writes; give the path itself (/models/m.onnx)".into(),
        ),
        (vec!["sql", "-t", "t=hdfs://nn/data", "SELECT 1"], format!("hdfs://nn/data: hdfs:// {other}")),
        (
            vec!["sql", "SELECT * FROM 'gs://bucket/x.parquet'"],
            format!("table 'gs://bucket/x.parquet' in the query: gs://bucket/x.parquet: gs:// {other}"),
        ),
        (
            vec!["sql", "COPY (SELECT 1 AS x) TO 'az://container/x.csv'"],
            format!("COPY ... TO az://container/x.csv: az:// {other}"),
        ),
        (vec!["sql", "SELECT 1", "--to", "gs://bucket/x.csv"], format!("gs://bucket/x.csv: gs:// {other}")),
        (vec!["report", "gs://bucket/out"], format!("gs://bucket/out: gs:// {other}")),
        (vec!["compare", "out", "gcs://bucket/out"], format!("gcs://bucket/out: gcs:// {other}")),
        (vec!["generate", "-o", "gs://bucket/data", "--segments", "10"], format!("gs://bucket/data: gs:// {other}")),
    ] {
        assert_fails(&segscore_here(&args), 2, &want);
    }
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["in.parquet"]);
}

#[test]
fn sigterm_and_sigint_abandon_the_run_and_leave_nothing_half_written() {
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let o = segscore(&[
        "generate",
        "-o",
        input.to_str().unwrap(),
        "--segments",
        "20000",
        "--files",
        "2",
    ]);
    assert!(o.status.success());
    // `cmd` held at `point` (it is writing when the signal comes), then signalled: it exits
    // with `code`, saying it was stopped.
    let stopped = |mut cmd: Command, faults: &Faults, point: &str, sig: i32, code: i32| {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        faults.apply(&mut cmd, Some(point));
        let mut child = cmd.spawn().unwrap();
        faults.wait_held(point, &mut child);
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{err}");
        assert!(err.contains("stopped by SIG"), "{err}");
    };
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let out = tmp.path().join(format!("out{sig}"));
        let faults = Faults::new();
        let mut cmd = Command::new(BIN);
        cmd.args([
            "run",
            "-q",
            "--provider",
            "cpu",
            "-i",
            input.to_str().unwrap(),
            "-m",
        ])
        .arg(demo_model())
        .arg("-o")
        .arg(&out);
        stopped(cmd, &faults, "batch-written", sig, code);
        assert_no_output(&out);
        // The run created the output directory, so it removes it again; nothing is left.
        let left: Vec<_> = std::fs::read_dir(&out)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "nothing left behind: {left:?}");
        // The writers were joined before the work was removed.
        let events = faults.events();
        let aborted = events.iter().position(|e| e == "aborted").expect("aborted");
        let exited = events[..aborted].iter().filter(|e| *e == "writer-exited").count();
        assert_eq!(
            exited,
            events.iter().filter(|e| *e == "writer-started").count(),
            "{events:?}"
        );
        // `segscore sql --to`, held once it has written a batch: the signal stops it, and its
        // file under the temporary name goes with it (killed, it was left behind).
        let to = tmp.path().join("res.parquet");
        let faults = Faults::new();
        let table = format!("t={}", input.display());
        let mut cmd = Command::new(BIN);
        cmd.args(["sql", "-q", "-t", &table, "--format", "parquet", "--to"])
            .arg(&to)
            .arg("SELECT * FROM t");
        stopped(cmd, &faults, "sql-batch-written", sig, code);
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("res.parquet"))
            .collect();
        assert!(left.is_empty(), "nothing left behind: {left:?}");
    }
}

#[test]
fn config_file_sets_flags_the_command_line_overrides_and_unknown_keys_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &good_rows());
    let out = tmp.path().join("out");
    let cfg = tmp.path().join("job.toml");
    std::fs::write(
        &cfg,
        format!(
            "input = [{:?}]\nmodel = {:?}\noutput = {:?}\nprovider = \"cpu\"\nloss = \"huber\"\nhuber_delta = 0.5\nquiet = true\n",
            input.display().to_string(),
            demo_model().display().to_string(),
            out.display().to_string()
        ),
    )
    .unwrap();
    let o = segscore(&["run", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&out)["loss"], "huber");
    assert_eq!(summary(&out)["huber_delta"], 0.5);
    assert!(o.stdout.is_empty(), "quiet = true from the file");
    // The command line wins over the file.
    let o = segscore(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--loss",
        "absolute",
        "--overwrite",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&out)["loss"], "absolute");
    // An unknown key is a usage error naming it.
    std::fs::write(&cfg, "input = [\"x\"]\nbatch_sise = 3\n").unwrap();
    let o = segscore(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown key `batch_sise`"), "{}", stderr(&o));
    // A value the flag refuses names the file and the key: the command line does not hold it.
    std::fs::write(&cfg, "input = [\"x\"]\nthreads = 0\n").unwrap();
    let o = segscore(&["run", "--config", cfg.to_str().unwrap(), "-m", "m", "-o", "o"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!(
            "config {}: key `threads`: invalid value '0' for '--threads <THREADS>': 0 is not in 1..=1024",
            cfg.display()
        )),
        "{}",
        stderr(&o)
    );
    // The same value on the command line is clap's own error.
    let o = segscore(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "-m",
        "m",
        "-o",
        "o",
        "--threads",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid value 'x' for '--threads <THREADS>'")
            && !stderr(&o).contains("key `threads`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn json_logs_are_one_object_per_line_errors_included() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    let mut rows = good_rows();
    rows.push(row("g1", 1, 0.9, &[3]));
    write_rows(&input, &rows);
    let out = tmp.path().join("out");
    let o = run(
        &[&input],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--log-format", "json"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert_eq!(last["fields"]["exit_code"], 1);
    assert!(
        last["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("duplicate segment"),
        "{last}"
    );
    assert!(lines
        .iter()
        .any(|l| l["fields"]["message"] == "execution provider chosen"));
}

/// Found by the fuzz target: arrow's decoder of the embedded Arrow schema (`ARROW:schema` in
/// the footer) panics on some corrupt ones (`FloatingPoint type with precision of <UNKNOWN
/// 8194> not supported`). This file is valid but for that schema, taken from the fuzzer's find.
#[test]
fn corrupt_embedded_arrow_schema_is_an_error_not_a_panic() {
    const CORRUPT_SCHEMA: &str = "/////7ABAAAQAAAAAAAKAAwACgAJAAQACgAAABAAAAAAAQQACAAIAAAABAAIAAAABAAAAAUAAABMAQAA+AAAALQAAAAwAAAABAAAANj+//8UAAAADAAAAAAAAAUMAAAAAAAAAMj+//8GAAAAc291cmNlAADg////GAAAAAwAAAAAAAEMUAAAAAEAAAAYAAAA9P7//xAAFAAQAA4ADwAEAAAACAAQAAAAEAAAABgAAAAAAAECFAAAAHD///8gAAAAAAAAAQAAAAAEAAAAaXRlbQAAAAAJAAAAaW5wdXRfaWRzAAAAEAAWABAAAAAPAAQAAAAIABAAAAAYAAAAHAAAAAAAAAMYAAAAAAAGAAgABgAGAAAAAAACIAAAAAAQAAAAY3VtdWxhdGl2ZV9zY29yZQAAAADA////GAAAACAAAAAAAAACHAAAAAgADAAEAAsACAAAACAAAAAAAAABAAAAAA0AAABzZWdtZW50X2luZGV4AAAAEAAUABAAAAAPAAQAAAAIABAAAAAYAAAADAAAAAAAAAUQAAAAAAAAAAQABAAEAAAADQAAAGdlbmVyYXRpb25faWQAAAA=";
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("corrupt_arrow_schema.parquet");
    let b = batch(&good_rows());
    let props = datafusion::parquet::file::properties::WriterProperties::builder()
        .set_key_value_metadata(Some(vec![datafusion::parquet::file::metadata::KeyValue::new(
            "ARROW:schema".to_string(),
            CORRUPT_SCHEMA.to_string(),
        )]))
        .build();
    let options = datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions::new()
        .with_properties(props)
        .with_skip_arrow_metadata(true);
    let f = std::fs::File::create(&input).unwrap();
    let mut w =
        datafusion::parquet::arrow::ArrowWriter::try_new_with_options(f, b.schema(), options).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    let err = fails_with(
        &input,
        &demo_model(),
        &tmp.path().join("out"),
        &[
            "corrupt_arrow_schema.parquet",
            "not a readable Parquet file",
            "FloatingPoint type with precision",
        ],
    );
    assert!(!err.contains("panicked"), "{err}");
    let o = segscore(&["sql", "--table", &format!("t={}", input.display()), "SELECT 1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a readable Parquet file") && !stderr(&o).contains("panicked"));
}

/// Found by the fuzz target: a corrupt page index. DataFusion's own error did not name the
/// file; the footer check reads the page index and does.
#[test]
fn corrupt_page_index_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    fails_with(
        &test_model("corrupt_page_index.parquet"),
        &demo_model(),
        &tmp.path().join("out"),
        &[
            "corrupt_page_index.parquet",
            "not a readable Parquet file",
            "null_pages",
        ],
    );
}

/// Found by flipping bytes of a `segscore generate` file: a column chunk whose start is
/// negative made the Parquet reader assert ("column start and length should not be negative",
/// a panic in the release build, printed with its backtrace), and a page index whose first
/// page lies before its column chunk made it subtract past zero ("Integer overflow", naming
/// no file; a panic in a debug build). The footer check compares both with the file.
#[test]
fn column_chunks_and_pages_outside_their_bounds_are_named_not_panicked_on() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, says) in [
        (
            "corrupt_chunk_offset.parquet",
            "corrupt column chunk: row group 0, column 2 (`cumulative_score`): starts at byte -856 and takes 2781 bytes, outside the file's 24023",
        ),
        (
            "corrupt_page_location.parquet",
            "corrupt page index: row group 0, column 2 (`cumulative_score`), page 0: offset 3290, 364 bytes, first row 0, outside its column chunk (bytes 5609 to 8390, 300 rows) or out of order",
        ),
    ] {
        let out = tmp.path().join(name);
        let err = fails_with(
            &test_model(name),
            &demo_model(),
            &out,
            &[name, "not a readable Parquet file", says],
        );
        assert!(!err.contains("panicked"), "{err}");
        let o = segscore(&[
            "sql",
            "--table",
            &format!("t={}", test_model(name).display()),
            "SELECT sum(cumulative_score) FROM t",
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(says) && !err.contains("panicked"), "{err}");
    }
}

/// Found by the fuzz target: a corrupt data page. The scan's error names no file; segscore
/// then reads the inputs one by one and names the one that fails.
#[test]
fn corrupt_data_page_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    // A good file of the same schema (the corrupt one began as `segscore generate` output).
    let good = tmp.path().join("good");
    generate(&good, 100, 1, false);
    // A corrupt data page, and a corrupt page header (the Parquet reader alone spends a minute
    // on it; the scan fails at once).
    for name in ["corrupt_data_page.parquet", "corrupt_page_header.parquet"] {
        let o = run(
            &[&good, &test_model(name)],
            &demo_model(),
            &tmp.path().join("out"),
            &["--provider", "cpu"],
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("{name}: not a readable Parquet file")),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert_no_output(&tmp.path().join("out"));
    }
}

/// Found by flipping bytes of a DuckDB file: a data page whose definition levels claim more
/// values than it holds makes arrow's decoder panic ("offset + len out of bounds", an assert
/// in arrow-buffer) in the release build too. The job printed the panic and "internal error:
/// a worker task failed"; now the panic prints nothing, the job scans the inputs one by one,
/// and names the file, beside a good one, sorted or not, at one thread or two. `sql` names it
/// too (as it now does for a reader's error, which named no file), and no panic report.
#[test]
fn a_reader_panic_on_a_corrupt_page_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    generate(&good, 100, 1, true);
    let corrupt = test_model("corrupt_def_levels.parquet");
    let panic_report = |err: &str| err.contains("thread '") || err.contains("RUST_BACKTRACE");
    for threads in ["1", "2"] {
        let out = tmp.path().join(format!("out{threads}"));
        let o = run(
            &[&good, &corrupt],
            &demo_model(),
            &out,
            &["--provider", "cpu", "--threads", threads],
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "input file {}: not a readable Parquet file: the Parquet reader panicked on it: offset + len out of bounds",
                corrupt.display()
            )),
            "{err}"
        );
        assert!(!panic_report(&err), "{err}");
        assert_no_output(&out);
    }
    let sql = |table: &Path, query: &str| {
        segscore(&[
            "sql",
            "--table",
            &format!("g={}", good.display()),
            "--table",
            &format!("t={}", table.display()),
            query,
        ])
    };
    for (table, query, says) in [
        (
            corrupt.clone(),
            "SELECT sum(cumulative_score) FROM t",
            "the Parquet reader panicked on it: offset + len out of bounds",
        ),
        (
            test_model("corrupt_data_page.parquet"),
            "SELECT sum(list_length(input_ids)) FROM t",
            "EOF: Not enough bytes to decode",
        ),
    ] {
        let o = sql(&table, query);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        let named = format!("input file {}: not a readable Parquet file: ", table.display());
        assert!(err.contains(&named) && err.contains(says), "{err}");
        assert!(!panic_report(&err), "{err}");
    }
    // A planning error reads no file, and is said as it is.
    let o = sql(&corrupt, "SELECT nope FROM t");
    assert_fails(&o, 2, "No field named nope");
}

/// A build without the cluster (`--no-default-features`, the README's demo): asked for one, it
/// says how to build it, and writes nothing.
#[cfg(not(feature = "cluster"))]
#[test]
fn a_build_without_the_cluster_feature_says_how_to_build_one() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    write_rows(&input, &good_rows());
    let out = dir.path().join("out");
    let how = "needs a segscore built with the `cluster` feature (Ballista), which the default build has: cargo build --release";
    let o = run(
        &[&input],
        &demo_model(),
        &out,
        &["--cluster", "df://127.0.0.1:50050"],
    );
    assert_fails(&o, 2, &format!("--cluster {how}"));
    assert_no_output(&out);
    let work = dir.path().join("work");
    let work = work.to_str().unwrap();
    let executor = [
        "cluster",
        "executor",
        "--scheduler",
        "127.0.0.1:50050",
        "--work-dir",
        work,
    ];
    for process in [&["cluster", "scheduler"][..], &executor] {
        assert_fails(&segscore(process), 2, &format!("segscore cluster {how}"));
    }
    assert!(!Path::new(work).exists());
}

/// Output to a reader that has gone (`segscore ... | head`) ends the command quietly with exit
/// code 0; a stdout that cannot be written (a full disk) is an error naming stdout, not a
/// panic. A run whose summary cannot be printed has still committed its output.
#[cfg(target_os = "linux")]
#[test]
fn stdout_that_is_closed_or_full_is_no_panic() {
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &good_rows());
    let model = demo_model();
    let out = tmp.path().join("out");
    let table = format!("t={}", input.display());
    let commands: [Vec<String>; 3] = [
        vec!["inspect".into(), model.display().to_string()],
        vec![
            "sql".into(),
            "-t".into(),
            table,
            "--format".into(),
            "csv".into(),
            "SELECT generation_id, segment_index FROM t".into(),
        ],
        run_args(&[&input], &model, &out, &["--provider", "cpu"]),
    ];
    for args in &commands {
        // A pipe whose reader is closed before the command starts: every write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(BIN)
            .args(args)
            .env_remove("ORT_DYLIB_PATH")
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    assert!(out.join("_SUCCESS").exists());
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = Command::new(BIN)
        .args(&commands[0])
        .env_remove("ORT_DYLIB_PATH")
        .stdout(full())
        .output()
        .unwrap();
    assert_fails(&o, 1, "<stdout>: No space left on device");
    let out2 = tmp.path().join("out2");
    let o = Command::new(BIN)
        .args(run_args(&[&input], &model, &out2, &["--provider", "cpu"]))
        .env_remove("ORT_DYLIB_PATH")
        .stdout(full())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the summary was not printed"),
        "{}",
        stderr(&o)
    );
    assert!(out2.join("_SUCCESS").exists());
}

/// A write that fails (here: past the process's file-size limit, `File too large`; a full
/// disk reads the same) names the file being written, and leaves no output behind.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_failed_write_names_the_file_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 40_000, 2, false);
    let out = tmp.path().join("out");
    let args = run_args(
        &[&input],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--keep", "input_ids"],
    );
    let limited = |args: &[String]| run_limited(args, libc::RLIMIT_FSIZE, 256 << 10);
    let o = limited(&args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let staging = out.join(".segscore-staging");
    assert!(
        err.contains(&format!("error: {}", staging.display())) && err.contains(".parquet: File too large"),
        "{err}"
    );
    assert!(!out.exists(), "the run created the output folder and removes it");
    // `sql --to` as CSV: the CSV writer's error names no file either.
    let csv = tmp.path().join("res.csv");
    let table = format!("t={}", input.display());
    let args: Vec<String> = [
        "sql",
        "-t",
        &table,
        "--format",
        "csv",
        "--to",
        csv.to_str().unwrap(),
        "SELECT generation_id, segment_index, cumulative_score FROM t",
    ]
    .map(String::from)
    .to_vec();
    let o = limited(&args);
    assert_fails(
        &o,
        1,
        &format!("output {}: Csv error: File too large", csv.display()),
    );
    assert!(!csv.exists());
}

/// Numbers a flag cannot use are usage errors before anything is read or written: a
/// `--progress-interval` past what a duration holds panicked in the run; a `--huber-delta` of
/// 0, -1 or NaN was taken silently under another loss; a `--spill-dir` that is a file said only
/// "File exists".
#[test]
fn flag_values_a_run_cannot_use_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &good_rows());
    let out = tmp.path().join("out");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let spill = format!("--spill-dir={}", file.display());
    for (flags, want) in [
        (
            vec!["--progress-interval", "1e300"],
            "1e300 seconds is more than a duration can hold",
        ),
        (
            vec!["--progress-interval", "0"],
            "must be a positive number, got 0",
        ),
        (
            vec!["--progress-interval", "-1"],
            "must be a positive number, got -1",
        ),
        (vec!["--huber-delta", "nan"], "must be a positive number, got nan"),
        (
            vec!["--huber-delta", "-0.5"],
            "must be a positive number, got -0.5",
        ),
        (
            vec!["--loss", "huber", "--huber-delta", "inf"],
            "must be a positive number, got inf",
        ),
        (vec![spill.as_str()], "not a directory"),
    ] {
        let o = run(&[&input], &demo_model(), &out, &flags);
        assert_fails(&o, 2, want);
        assert!(!stderr(&o).contains("panicked"), "{flags:?}: {}", stderr(&o));
        assert!(!out.exists(), "{flags:?}");
    }
    // A delta for another loss is a warning, and the run goes on with that loss.
    let o = run(&[&input], &demo_model(), &out, &["--huber-delta", "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--huber-delta is for --loss huber: ignored"),
        "{}",
        stderr(&o)
    );
    assert_eq!(summary(&out)["loss"], "squared");
    assert_eq!(summary(&out)["huber_delta"], serde_json::Value::Null);
}

/// A role column that is a hive folder level (`generation_id=7/`) and not a column of the files
/// is named as missing from the file, with what to do: the COPY the error gives writes it into
/// the files, and that file runs.
#[test]
fn a_role_column_that_is_a_folder_level_says_how_to_write_it_into_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let gen = tmp.path().join("gen");
    generate(&gen, 300, 1, false);
    let hive = tmp.path().join("hive");
    let ids = sql_csv_on(&gen, "SELECT DISTINCT generation_id FROM t ORDER BY 1 LIMIT 3");
    for id in ids.lines().skip(1) {
        let file = hive.join(format!("generation_id={id}")).join("p.parquet");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let q = format!(
            "COPY (SELECT segment_index, cumulative_score, input_ids FROM '{}' WHERE generation_id = '{id}') TO '{}'",
            gen.join("*.parquet").display(),
            file.display()
        );
        let o = segscore(&["sql", "-q", &q]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let out = tmp.path().join("out");
    let o = run(&[&hive], &demo_model(), &out, &[]);
    let copy = format!("COPY (FROM '{}') TO 'flat.parquet'", hive.display());
    assert_fails(&o, 1, "missing column `generation_id`");
    assert!(
        stderr(&o).contains("is a folder level here (`generation_id="),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains(&copy), "{}", stderr(&o));
    // The COPY the error gives.
    let o = segscore_in(tmp.path(), &["sql", "-q", &copy]);
    assert!(o.status.success(), "{}", stderr(&o));
    run_ok(&[&tmp.path().join("flat.parquet")], &demo_model(), &out, &[]);
    assert_eq!(summary(&out)["n_generations"], 3);
}
