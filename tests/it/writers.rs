//! Inputs as real tools write them (issue 15): files from DuckDB, polars, pandas, pyarrow and a
//! Spark-style folder (`tests/data/writers/`, written by its `make_fixtures.py`), categorical
//! (dictionary-encoded) columns, hive-partitioned folders, files with no rows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, DictionaryArray, Float64Array, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use crate::common::*;

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/data/writers").join(name)
}

/// (generation_id, segment_index) → (target, prediction) as text.
fn scores(out: &Path) -> Vec<((String, i64), (String, String))> {
    let b = read_segments(out);
    let (t, p) = (by_key(&b, "target_score"), by_key(&b, "predicted_score"));
    t.into_iter()
        .map(|(k, v)| (k.clone(), (v.to_string(), p[&k].to_string())))
        .collect()
}

/// [`scores`] of a run over the dataset as DuckDB wrote it (fixture `duckdb`), into `dir`: what
/// every writer's copy of the same rows must give.
fn duckdb_scores(dir: &Path) -> Vec<((String, i64), (String, String))> {
    let reference = dir.join("reference");
    run_ok(
        &[&fixture("duckdb")],
        &demo_model(),
        &reference,
        &["--provider", "cpu"],
    );
    scores(&reference)
}

fn column_type(out: &Path, name: &str) -> DataType {
    read_segments(out)
        .schema()
        .field_with_name(name)
        .unwrap_or_else(|_| panic!("no column {name}"))
        .data_type()
        .clone()
}

#[test]
fn files_written_by_duckdb_polars_pandas_pyarrow_and_spark_run_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let run_fixture = |name: &str| {
        let out = tmp.path().join(name);
        let o = run(&[&fixture(name)], &demo_model(), &out, &["--provider", "cpu"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        (out, stderr(&o))
    };
    let (reference, _) = run_fixture("duckdb");
    let want = scores(&reference);
    assert_eq!(want.len(), 30);
    for name in [
        "duckdb_partitioned",
        "polars",
        "polars_categorical",
        "pandas",
        "pyarrow_dataset",
        "spark",
    ] {
        let (out, err) = run_fixture(name);
        assert_eq!(scores(&out), want, "{name}: the same targets and predictions");
        let s = summary(&out);
        assert_eq!(s["n_generations"], 12, "{name}");
        match name {
            // PARTITION_BY (day) leaves day out of the files: it comes back from the folders.
            "duckdb_partitioned" => {
                assert_eq!(s["partition_cols"], serde_json::json!(["day"]));
                assert_eq!(column_type(&out, "day"), DataType::Int64);
                assert_eq!(
                    by_key(&read_segments(&out), "day"),
                    by_key(&read_segments(&reference), "day")
                );
            }
            // Categorical columns are written by their values.
            "polars_categorical" => {
                assert_eq!(column_type(&out, "generation_id"), DataType::LargeUtf8);
                assert_eq!(column_type(&out, "model_name"), DataType::LargeUtf8);
            }
            // pandas' category column is decoded; the named index is carried as a column.
            "pandas" => {
                assert_eq!(column_type(&out, "split"), DataType::LargeUtf8);
                assert_eq!(str_col(&read_segments(&out), "row_id").len(), 30);
            }
            "pyarrow_dataset" => assert_eq!(s["input_files"], 4),
            // _SUCCESS and the .crc files are not inputs; the file with no rows is skipped.
            "spark" => {
                assert_eq!(
                    (s["input_files"].as_u64(), s["input_files_empty"].as_u64()),
                    (Some(2), Some(1))
                );
                assert!(
                    err.contains("no rows: skipped") && err.contains("part-00002"),
                    "{err}"
                );
            }
            _ => {}
        }
    }
    // A categorical generation id in quarantine: rejected rows carry its values too.
    let out = tmp.path().join("quarantine");
    let o = run(
        &[&fixture("polars_categorical")],
        &demo_model(),
        &out,
        &[
            "--provider",
            "cpu",
            "--on-invalid",
            "quarantine",
            "--max-length",
            "4",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rejected = read_parts(&out.join("rejected"));
    assert_eq!(
        rejected
            .schema()
            .field_with_name("generation_id")
            .unwrap()
            .data_type(),
        &DataType::LargeUtf8
    );
    assert!(str_col(&rejected, "reason").iter().any(|r| r == "too_long"));
}

/// A hive-partitioned folder of the demo's data: day=1 and day=2 hold real files, day=3 a file
/// whose footer reads but whose data page is corrupt.
fn hive_folder(dir: &Path) {
    let gen = dir.join("gen");
    generate(&gen, 4000, 2, false);
    for (i, f) in parts(&gen).iter().enumerate() {
        let day = dir.join(format!("data/day={}", i + 1));
        std::fs::create_dir_all(&day).unwrap();
        std::fs::copy(f, day.join("part-0.parquet")).unwrap();
    }
    let bad = dir.join("data/day=3");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(
        repo().join("tests/data/corrupt_data_page.parquet"),
        bad.join("part-0.parquet"),
    )
    .unwrap();
}

/// Spark writes timestamps as INT96 by default, with no Arrow schema in the file. Arrow reads
/// INT96 as nanoseconds, which cannot hold 9999-12-31 (a common "no end" date): it came out as
/// 1816-03-29, silently. They are read as microseconds, as Spark and DuckDB read them.
#[test]
fn spark_int96_timestamps_keep_dates_nanoseconds_cannot_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fixture("spark_int96");
    let out = tmp.path().join("out");
    let o = run(&[&data], &demo_model(), &out, &["--provider", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(scores(&out), duckdb_scores(tmp.path()));
    let micros = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None);
    assert_eq!(column_type(&out, "valid_to"), micros);
    let segments = read_segments(&out);
    let text = |col: &str| -> Vec<String> {
        let c =
            datafusion::arrow::compute::cast(segments.column_by_name(col).unwrap(), &DataType::Utf8).unwrap();
        let c = c.as_any().downcast_ref::<StringArray>().unwrap();
        (0..c.len()).map(|i| c.value(i).to_string()).collect()
    };
    let gids = str_col(&segments, "generation_id");
    for ((g, to), from) in gids.iter().zip(text("valid_to")).zip(text("valid_from")) {
        let n: u32 = g[1..].parse().unwrap();
        let want = if n.is_multiple_of(2) {
            "9999-12-31T00:00:00"
        } else {
            "2025-06-30T00:00:00"
        };
        assert_eq!(to, want, "{g}");
        assert_eq!(from, format!("2024-01-{:02}T12:30:00.123456", 1 + n), "{g}");
    }
    // segscore sql reads them the same way, by --table or named in the query.
    let q = "SELECT generation_id, min(valid_to) AS t FROM {} WHERE generation_id IN ('g000', 'g001') GROUP BY 1 ORDER BY 1";
    let want = "generation_id,t\ng000,9999-12-31T00:00:00\ng001,2025-06-30T00:00:00\n";
    assert_eq!(sql_csv_on(&data, &q.replace("{}", "t")), want);
    let named = format!("'{}'", data.display());
    let o = segscore(&["sql", "--format", "csv", &q.replace("{}", &named)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), want);
}

#[test]
fn hive_partition_columns_are_pruned_carried_and_grouped() {
    let tmp = tempfile::tempdir().unwrap();
    hive_folder(tmp.path());
    let data = tmp.path().join("data");
    let out = tmp.path().join("out");
    // Read whole, the corrupt day=3 file fails the run, naming it.
    let o = run(&[&data], &demo_model(), &out, &["--provider", "cpu"]);
    assert_fails(&o, 1, "day=3");
    // A filter on the partition column skips that folder: its file is never read.
    let query = job_query_where(tmp.path(), "g.day <> 3");
    let o = run(
        &[&data],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--query-file", query.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(s["n_segments"], 4000);
    assert_eq!(s["partition_cols"], serde_json::json!(["day"]));
    // The partition column is carried, and segscore sql groups by it.
    let o = segscore(&[
        "sql",
        "--table",
        out.to_str().unwrap(),
        "--format",
        "json",
        "SELECT day, COUNT(*) AS n FROM segments GROUP BY day ORDER BY day",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["day"], 1);
    assert_eq!(
        rows[0]["n"].as_u64().unwrap() + rows[1]["n"].as_u64().unwrap(),
        4000
    );
    // segscore sql reads the folder with its partition column too.
    let o = segscore(&[
        "sql",
        "--table",
        &format!("t={}", fixture("duckdb_partitioned").display()),
        "--format",
        "json",
        "SELECT COUNT(*) AS n, SUM(day) AS days FROM t WHERE day >= 2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "{\"n\":20,\"days\":50}"
    );
    // A given type wins; off reads the files alone (no day column).
    let flags = [
        "--provider",
        "cpu",
        "--overwrite",
        "--query-file",
        query.to_str().unwrap(),
        "--partition-col",
        "day:string",
    ];
    let o = run(&[&data], &demo_model(), &out, &flags);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(column_type(&out, "day"), DataType::Utf8);
    std::fs::remove_dir_all(data.join("day=3")).unwrap();
    let o = run(
        &[&data],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--overwrite", "--hive-partitioning", "off"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(read_segments(&out).schema().field_with_name("day").is_err());
    // A hidden temporary folder inside would be read with the table: refused, named.
    std::fs::create_dir_all(data.join("day=1/_temporary")).unwrap();
    std::fs::copy(
        data.join("day=1/part-0.parquet"),
        data.join("day=1/_temporary/part-9.parquet"),
    )
    .unwrap();
    let o = run(
        &[&data],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--overwrite"],
    );
    assert_fails(&o, 2, "_temporary");
}

/// A glob over hive folders that takes every Parquet file under its folder
/// (`data/day=*/*.parquet`, `data/*/*.parquet`, as DuckDB users write them) reads that folder,
/// partition columns and all, in `run` and `sql`; one that takes only some reads its files
/// without them (a partitioned table would read the others too).
#[test]
fn a_glob_over_every_hive_folder_reads_its_partition_columns() {
    let tmp = tempfile::tempdir().unwrap();
    hive_folder(tmp.path());
    let data = tmp.path().join("data");
    std::fs::remove_dir_all(data.join("day=3")).unwrap();
    for glob in ["day=*/*.parquet", "*/*.parquet"] {
        let input = data.join(glob);
        let out = tmp.path().join("out");
        let o = run(
            &[&input],
            &demo_model(),
            &out,
            &["--provider", "cpu", "--overwrite"],
        );
        assert!(o.status.success(), "{glob}: {}", stderr(&o));
        let s = summary(&out);
        assert_eq!(s["n_segments"], 4000, "{glob}");
        assert_eq!(s["partition_cols"], serde_json::json!(["day"]), "{glob}");
    }
    let partitioned = fixture("duckdb_partitioned");
    let sql = |from: &str, query: &str| {
        let q = query.replace("{}", &format!("'{}/{from}'", partitioned.display()));
        segscore(&["sql", "--format", "csv", &q])
    };
    let o = sql(
        "*/*.parquet",
        "SELECT COUNT(*) AS n, SUM(day) AS days FROM {} WHERE day >= 2",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n,days\n20,50\n");
    // Two of the three folders: their files, without the column.
    let o = sql("day=[23]/*.parquet", "SELECT COUNT(*) AS n FROM {}");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n20\n");
    assert_fails(
        &sql("day=[23]/*.parquet", "SELECT day FROM {}"),
        2,
        "No field named day",
    );
    // DuckDB's read_parquet: a list of paths, and its hive_partitioning option.
    let root = partitioned.display().to_string();
    let read = |args: &str, query: &str| {
        let args = args.replace("R", &root);
        segscore(&[
            "sql",
            "--format",
            "csv",
            &query.replace("{}", &format!("read_parquet({args})")),
        ])
    };
    let o = read(
        "['R/day=2/*.parquet', 'R/day=3/'], union_by_name = true",
        "SELECT COUNT(*) AS n FROM {}",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n20\n");
    let o = read(
        "'R/*/*.parquet', hive_partitioning = true",
        "SELECT COUNT(*) AS n, SUM(day) AS days FROM {} WHERE day >= 2",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n,days\n20,50\n");
    let query = "SELECT COUNT(*) AS n FROM {}";
    let o = read("'R/', hive_partitioning = false", query);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n30\n");
    assert_fails(
        &read("'R/', hive_partitioning = false", "SELECT day FROM {}"),
        2,
        "No field named day",
    );
    let o = read(
        "'R/day=[12]/*.parquet', filename = true",
        "SELECT filename AS f, COUNT(*) AS n FROM {} GROUP BY 1 ORDER BY 1",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let files: Vec<String> = ["1", "2"]
        .iter()
        .map(|d| {
            let day = partitioned.join(format!("day={d}"));
            let file = std::fs::read_dir(&day)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .file_name();
            format!("day={d}/{},10", file.to_string_lossy())
        })
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).replace(&format!("{root}/"), ""),
        format!("f,n\n{}\n", files.join("\n"))
    );
    assert_fails(
        &read("'R/', file_row_number = true", query),
        2,
        "query: read_parquet(...): option file_row_number is not taken here; read_parquet takes hive_partitioning, union_by_name, binary_as_string, filename",
    );
}

#[test]
fn empty_files_are_skipped_and_counted_unless_all_are() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    write_rows(
        &dir.join("a.parquet"),
        &[row("g", 0, 0.5, &[1, 2]), row("g", 1, 0.7, &[3])],
    );
    write_rows(&dir.join("b.parquet"), &[]);
    let out = tmp.path().join("out");
    let o = run_ok(&[&dir], &demo_model(), &out, &["--provider", "cpu"]);
    assert!(stderr(&o).contains("no rows: skipped"), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(
        (s["input_files"].as_u64(), s["input_files_empty"].as_u64()),
        (Some(1), Some(1))
    );
    std::fs::remove_file(dir.join("a.parquet")).unwrap();
    let o = run(
        &[&dir],
        &demo_model(),
        &tmp.path().join("out2"),
        &["--provider", "cpu"],
    );
    assert_fails(&o, 1, "b.parquet: contains no rows");
}

#[test]
fn a_categorical_column_of_the_wrong_kind_is_named_by_its_value_type() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    let scores: DictionaryArray<Int32Type> = vec!["high", "low"].into_iter().collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("generation_id", DataType::Utf8, false),
        Field::new("segment_index", DataType::Int32, false),
        Field::new("cumulative_score", DataType::Float64, false),
        Field::new(
            "grade",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false,
        ),
        Field::new(
            "input_ids",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
            true,
        ),
    ]));
    let ids = datafusion::arrow::array::ListArray::from_iter_primitive::<
        datafusion::arrow::datatypes::Int64Type,
        _,
        _,
    >(vec![Some(vec![Some(1)]), Some(vec![Some(2)])]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["g", "g"])),
        Arc::new(Int32Array::from(vec![0, 1])),
        Arc::new(Float64Array::from(vec![0.1, 0.2])),
        Arc::new(scores),
        Arc::new(ids),
    ];
    write_batch(&input, &RecordBatch::try_new(schema, cols).unwrap());
    let o = run(
        &[&input],
        &demo_model(),
        &tmp.path().join("out"),
        &["--provider", "cpu", "--score-col", "grade"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`grade` has type Utf8 (categorical")
            && stderr(&o).contains("expected a float, decimal or integer"),
        "{}",
        stderr(&o)
    );
}

/// A Delta Lake table (delta-rs, written twice: the second write replaced the first, whose file
/// stays in the folder) read as a folder would count the replaced rows. Given itself, it is
/// read from its log: its current file alone, in `run` and `sql` (the build without the
/// `delta` feature refuses it, naming the table and its log); a folder above it is refused.
/// Its current files, given by name, run as the data they hold.
#[test]
fn a_delta_lake_table_runs_from_its_log_and_is_refused_inside_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let table = fixture("delta");
    let parquet_files = std::fs::read_dir(&table)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "parquet")
        })
        .count();
    assert_eq!(parquet_files, 2, "the replaced file is still in the folder");
    let job = |inputs: &[&Path], out: &str| {
        let out = tmp.path().join(out);
        (run(inputs, &demo_model(), &out, &["--provider", "cpu"]), out)
    };
    let (o, read) = job(&[&table], "folder");
    let count = format!("SELECT count(*) AS n FROM '{}'", table.display());
    let sql = segscore(&["sql", "--format", "csv", &count]);
    if cfg!(feature = "delta") {
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(summary(&read)["input_files"], 1);
        assert_eq!(summary(&read)["n_segments"], 30);
        assert!(sql.status.success(), "{}", stderr(&sql));
        assert_eq!(String::from_utf8_lossy(&sql.stdout), "n\n30\n");
    } else {
        assert_fails(&o, 2, &format!("input {} is a Delta Lake table", table.display()));
        assert!(
            stderr(&o).contains("delta/_delta_log") && stderr(&o).contains("file_uris()"),
            "{}",
            stderr(&o)
        );
        assert!(!read.join("_SUCCESS").exists());
        assert_fails(&sql, 2, "is a Delta Lake table");
    }
    let (o, _) = job(&[&fixture("")], "above");
    assert_fails(&o, 2, &format!("input {} is a Delta Lake table", table.display()));
    let how = match cfg!(feature = "delta") {
        true => "or give the table's folder itself as an input, which is read from its log",
        false => "a build with the `delta` feature (the default) reads the table from its log",
    };
    assert!(stderr(&o).contains(how), "{}", stderr(&o));
    // Inside a hidden folder the search skips, it is not read, so not refused.
    let hidden = tmp.path().join("in");
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
            }
        }
    };
    copy(&table, &hidden.join("_old/delta"));
    copy(&table.join("_delta_log"), &hidden.join("_old/delta/_delta_log"));
    copy(&fixture("duckdb"), &hidden.join("current"));
    let (o, out) = job(&[&hidden], "hidden");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&out)["input_files"], 1);
    // The live files: the log's adds less its removes, commit by commit.
    let mut logs: Vec<PathBuf> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    logs.sort();
    let mut live = std::collections::BTreeSet::new();
    for log in logs {
        for line in std::fs::read_to_string(log).unwrap().lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(path) = action["add"]["path"].as_str() {
                live.insert(table.join(path));
            }
            if let Some(path) = action["remove"]["path"].as_str() {
                live.remove(&table.join(path));
            }
        }
    }
    assert_eq!(live.len(), 1);
    let live: Vec<&Path> = live.iter().map(PathBuf::as_path).collect();
    let (o, out) = job(&live, "current");
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, reference) = job(&[&fixture("duckdb")], "reference");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(scores(&out), scores(&reference));
    if cfg!(feature = "delta") {
        assert_eq!(scores(&read), scores(&reference));
    }
}

/// DuckDB and Spark write a UUID generation id as FIXED_LEN_BYTE_ARRAY(16) (it was refused as
/// of the wrong type): read as its text, `8-4-4-4-12` hex digits as DuckDB's `uuid::VARCHAR`
/// gives it, the run equals one over those texts, and a bad row is named by that text and its
/// file's row, or quarantined under it. Another binary id is refused, saying how to write it as
/// text.
#[test]
fn uuid_generation_ids_run_as_their_text() {
    use datafusion::arrow::array::{FixedSizeBinaryArray, ListArray};
    use datafusion::arrow::datatypes::Int64Type;
    let tmp = tempfile::tempdir().unwrap();
    let n = 60usize;
    // Ten generations of six segments, their ids' bytes in descending order in the file.
    let key = |i: usize| -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = 0xf0 - (i / 6) as u8;
        b[15] = (i / 6) as u8;
        b
    };
    let text = |b: [u8; 16]| -> String {
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    };
    let columns = |gid: ArrayRef, nan_at: Option<usize>| -> RecordBatch {
        let ids = ListArray::from_iter_primitive::<Int64Type, _, _>(
            (0..n).map(|i| Some(vec![Some(1 + (i as i64 * 7) % 900), Some(3)])),
        );
        let scores: Vec<f64> = (0..n)
            .map(|i| {
                if Some(i) == nan_at {
                    f64::NAN
                } else {
                    0.1 * (i % 6) as f64
                }
            })
            .collect();
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("generation_id", gid),
            (
                "segment_index",
                Arc::new(Int32Array::from_iter_values((0..n).map(|i| (i % 6) as i32))),
            ),
            ("cumulative_score", Arc::new(Float64Array::from(scores))),
            ("input_ids", Arc::new(ids)),
        ];
        RecordBatch::try_from_iter(cols).unwrap()
    };
    let uuids = || -> ArrayRef { Arc::new(FixedSizeBinaryArray::try_from_iter((0..n).map(key)).unwrap()) };
    let texts: ArrayRef = Arc::new(StringArray::from_iter_values((0..n).map(|i| text(key(i)))));
    let (a, b) = (tmp.path().join("uuid.parquet"), tmp.path().join("text.parquet"));
    write_batch(&a, &columns(uuids(), None));
    write_batch(&b, &columns(texts, None));
    let (oa, ob) = (tmp.path().join("oa"), tmp.path().join("ob"));
    run_ok(&[&a], &demo_model(), &oa, &["--provider", "cpu"]);
    run_ok(&[&b], &demo_model(), &ob, &["--provider", "cpu"]);
    let (sa, sb) = (read_segments(&oa), read_segments(&ob));
    assert_eq!(column_type(&oa, "generation_id"), DataType::Utf8);
    assert_eq!(rows_by_key(&sa), rows_by_key(&sb));
    assert_eq!(str_col(&sa, "generation_id")[0].len(), 36);
    let generations = |o: &Path| sql_csv_on(&o.join("generations"), "SELECT * FROM t ORDER BY generation_id");
    assert_eq!(generations(&oa), generations(&ob));
    assert_eq!(generations(&oa).lines().count(), 11);
    // The same rows, summed in the order each plan gives them.
    for metric in ["mse", "pearson", "kendall_tau", "spearman"] {
        let want = summary(&ob)[metric].as_f64().unwrap();
        let got = summary(&oa)[metric].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{metric}: {got} against {want}"
        );
    }
    // A bad row: named by the id's text and the row of the file that holds it.
    write_batch(&a, &columns(uuids(), Some(45)));
    let o = run(
        &[&a],
        &demo_model(),
        &tmp.path().join("oc"),
        &["--provider", "cpu"],
    );
    assert_fails(
        &o,
        1,
        &format!(
            "at generation_id={}, segment_index=3 (input row 45 of {}, counting from 0)",
            text(key(45)),
            a.display()
        ),
    );
    // Quarantined, its generation's rows go to rejected/ with the id's text, as segments/ has
    // it (the run failed casting the text back to 16 bytes).
    let oq = tmp.path().join("oq");
    run_ok(
        &[&a],
        &demo_model(),
        &oq,
        &["--provider", "cpu", "--on-invalid", "quarantine"],
    );
    assert_eq!(column_type(&oq, "generation_id"), DataType::Utf8);
    let rejected = sql_csv(
        &oq.display().to_string(),
        "SELECT DISTINCT generation_id, arrow_typeof(generation_id) AS t FROM rejected",
    );
    assert_eq!(rejected, format!("generation_id,t\n{},Utf8\n", text(key(45))));
    // Another binary id: refused, naming how to write it as text.
    let short: ArrayRef =
        Arc::new(FixedSizeBinaryArray::try_from_iter((0..n).map(|i| [i as u8 / 6; 8])).unwrap());
    write_batch(&a, &columns(short, None));
    let o = run(
        &[&a],
        &demo_model(),
        &tmp.path().join("od"),
        &["--provider", "cpu"],
    );
    assert_fails(
        &o,
        1,
        &format!(
            "input file {}: column `generation_id` has type FixedSizeBinary(8), expected a string, an integer or a 16-byte UUID; another binary id is not read: write it as text (DuckDB: `generation_id::VARCHAR`)",
            a.display()
        ),
    );
    // Text ids written as bytes (older Hive and Impala): refused, naming the command that
    // converts the file, which `read_parquet(..., binary_as_string = true)` reads as text.
    let legacy: ArrayRef = Arc::new(datafusion::arrow::array::BinaryArray::from_iter_values(
        (0..n).map(|i| format!("g{}", i / 6)),
    ));
    write_batch(&a, &columns(legacy, None));
    let o = run(
        &[&a],
        &demo_model(),
        &tmp.path().join("oe"),
        &["--provider", "cpu"],
    );
    let convert = format!(
        "COPY (FROM read_parquet('{}', binary_as_string = true)) TO 'fixed.parquet'",
        a.display()
    );
    assert_fails(&o, 1, &format!("a string written as binary (no UTF8 annotation, as older Hive and Impala write strings) is converted by `segscore sql \"{convert}\"`"));
    let o = segscore_in(tmp.path(), &["sql", &convert]);
    assert!(o.status.success(), "{}", stderr(&o));
    let of = tmp.path().join("of");
    run_ok(
        &[&tmp.path().join("fixed.parquet")],
        &demo_model(),
        &of,
        &["--provider", "cpu"],
    );
    assert_eq!(column_type(&of, "generation_id"), DataType::Utf8);
    let ids = sql_csv(
        &of.display().to_string(),
        "SELECT generation_id, count(*) AS n FROM segments GROUP BY 1 ORDER BY 1 LIMIT 2",
    );
    assert_eq!(ids, "generation_id,n\ng0,6\ng1,6\n");
    // Bytes that are not UTF-8: the error says which table read them as text.
    let bad: ArrayRef = Arc::new(datafusion::arrow::array::BinaryArray::from_iter_values(
        (0..n).map(|i| if i == 7 { vec![0xff, 0xfe] } else { b"g".to_vec() }),
    ));
    write_batch(&a, &columns(bad, None));
    let o = segscore_in(
        tmp.path(),
        &[
            "sql",
            "SELECT max(generation_id) FROM read_parquet('uuid.parquet', binary_as_string = true)",
        ],
    );
    assert_fails(&o, 1, "a binary column read as text (binary_as_string = true: read_parquet('uuid.parquet', binary_as_string = true)) holds bytes that are not UTF-8");
}

#[test]
fn files_whose_columns_differ_in_width_or_item_names_run_together() {
    // One folder of files from several tools: pyarrow and DuckDB name a list's items
    // `element`, polars and arrow-rs `item`; polars writes large strings and lists; others
    // write 32-bit integers and floats, or string views. The same rows in files that agree give the same scores,
    // with each column in its widest type.
    let tmp = tempfile::tempdir().unwrap();
    let list = |item: &str, t: DataType, large: bool| {
        let f = Arc::new(Field::new(item, t, true));
        if large {
            DataType::LargeList(f)
        } else {
            DataType::List(f)
        }
    };
    let write = |path: &Path, rows: &[Row], types: &[(&str, DataType)]| {
        let b = batch(rows);
        let fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| match types.iter().find(|(n, _)| n == f.name()) {
                Some((_, t)) => Field::new(f.name(), t.clone(), true),
                None => f.as_ref().clone(),
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let columns: Vec<ArrayRef> = b
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()).unwrap())
            .collect();
        write_batch(path, &RecordBatch::try_new(schema, columns).unwrap());
    };
    // Scores a float32 holds exactly, in the polars file; not so in the others (narrowed to
    // float32, as a merge that takes the first file's type does, they would change).
    let rows = |g: &str| match g {
        "g1" => vec![row(g, 0, 0.25, &[10, 11]), row(g, 1, 0.75, &[12, 13, 14])],
        _ => vec![row(g, 0, 0.1, &[10, 11]), row(g, 1, 0.3, &[12, 13, 14])],
    };
    let element = [("input_ids", list("element", DataType::Int64, false))];
    let polars = [
        ("generation_id", DataType::LargeUtf8),
        ("segment_index", DataType::Int32),
        ("cumulative_score", DataType::Float32),
        ("input_ids", list("item", DataType::Int32, true)),
    ];
    let (mixed, same) = (tmp.path().join("mixed"), tmp.path().join("same"));
    // The narrowest file first.
    write(&mixed.join("a.parquet"), &rows("g1"), &polars);
    write(&mixed.join("b.parquet"), &rows("g2"), &element);
    write(&mixed.join("c.parquet"), &rows("g3"), &[]);
    // pyarrow's `string_view`.
    write(
        &mixed.join("d.parquet"),
        &rows("g4"),
        &[("generation_id", DataType::Utf8View)],
    );
    let wide = [
        ("generation_id", DataType::LargeUtf8),
        ("input_ids", list("item", DataType::Int64, true)),
    ];
    for (name, g) in [("a", "g1"), ("b", "g2"), ("c", "g3"), ("d", "g4")] {
        write(&same.join(format!("{name}.parquet")), &rows(g), &wide);
    }
    let (out_mixed, out_same) = (tmp.path().join("out-mixed"), tmp.path().join("out-same"));
    for (input, out) in [(&mixed, &out_mixed), (&same, &out_same)] {
        let o = run(&[input], &demo_model(), out, &["--provider", "cpu"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let want = scores(&out_same);
    assert_eq!(want.len(), 8);
    assert_eq!(scores(&out_mixed), want);
    assert_eq!(column_type(&out_mixed, "generation_id"), DataType::LargeUtf8);
    assert_eq!(column_type(&out_mixed, "segment_index"), DataType::Int64);
    assert_eq!(column_type(&out_mixed, "cumulative_score"), DataType::Float64);
    // `segscore sql` reads such a folder the same way, and hive folders (levels as columns).
    let sql = |dir: &Path, query: &str| sql_csv(&format!("t={}", dir.display()), query);
    assert_eq!(
        sql(
            &mixed,
            "SELECT arrow_typeof(segment_index) AS s, arrow_typeof(cumulative_score) AS c, \
             min(cumulative_score) AS lo, max(cumulative_score) AS hi FROM t GROUP BY 1, 2"
        ),
        "s,c,lo,hi\nInt64,Float64,0.1,0.75\n"
    );
    let hive = tmp.path().join("hive");
    write(&hive.join("day=1/a.parquet"), &rows("g1"), &polars);
    write(&hive.join("day=2/c.parquet"), &rows("g3"), &[]);
    assert_eq!(
        sql(
            &hive,
            "SELECT day, arrow_typeof(segment_index) AS s, min(cumulative_score) AS lo FROM t \
             GROUP BY 1, 2 ORDER BY 1"
        ),
        "day,s,lo\n1,Int64,0.25\n2,Int64,0.1\n"
    );
}

/// A column that only some files have (added to a dataset later, or dropped) is carried, null
/// in the rows of the files without it, whichever file comes first. DataFusion takes a table's
/// schema from its first path alone: a column only later files had was dropped without a word,
/// and one the first file had non-nullable failed the scan.
#[test]
fn a_column_only_some_files_have_is_carried_with_nulls_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let with_added = |rows: &[Row]| {
        let b = batch(rows);
        let values: Vec<i32> = (0..b.num_rows() as i32).map(|i| 7 + i).collect();
        let field = Field::new("added", DataType::Int32, false);
        with_column(&b, field, Arc::new(Int32Array::from(values)))
    };
    let rows = |g: &str| vec![row(g, 0, 0.1, &[10, 11]), row(g, 1, 0.3, &[12, 13])];
    let want = "generation_id,segment_index,added\ng1,0,\ng1,1,\ng2,0,7\ng2,1,8\n";
    for (name, added_first) in [("later", false), ("first", true)] {
        let dir = tmp.path().join(name);
        let (plain, added) = if added_first { ("b", "a") } else { ("a", "b") };
        write_rows(&dir.join(format!("{plain}.parquet")), &rows("g1"));
        write_batch(&dir.join(format!("{added}.parquet")), &with_added(&rows("g2")));
        let table = format!("t={}", dir.display());
        let query = "SELECT generation_id, segment_index, added FROM t ORDER BY 1, 2";
        assert_eq!(sql_csv(&table, query), want, "{name}");
        let out = tmp.path().join(format!("out-{name}"));
        run_ok(&[&dir], &demo_model(), &out, &["--provider", "cpu"]);
        let table = format!("s={}", out.display());
        let query = "SELECT generation_id, segment_index, added FROM s.segments ORDER BY 1, 2";
        assert_eq!(sql_csv(&table, query), want, "{name}: segments/");
        assert_eq!(column_type(&out, "added"), DataType::Int32);
    }
}

/// A carried column that is text in one file and numbers in another is refused, naming the
/// column and both files, whichever comes first (DataFusion cast each file's column to the
/// first file's type: numbers became text one way, and the other way the run failed on the
/// first value that is not a number, naming neither column nor file).
#[test]
fn a_carried_column_of_two_kinds_names_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let numeric_note = |rows: &[Row]| {
        let b = batch(rows);
        let values = Arc::new(Int32Array::from(vec![5; b.num_rows()]));
        with_column(&b, Field::new("note", DataType::Int32, true), values)
    };
    let rows = |g: &str| vec![row(g, 0, 0.1, &[10, 11]), row(g, 1, 0.3, &[12, 13])];
    for numbers_first in [false, true] {
        let dir = tmp.path().join(format!("kinds-{numbers_first}"));
        let (text, numbers) = if numbers_first { ("b", "a") } else { ("a", "b") };
        let (text, numbers) = (
            dir.join(format!("{text}.parquet")),
            dir.join(format!("{numbers}.parquet")),
        );
        write_rows(&text, &rows("g1"));
        write_batch(&numbers, &numeric_note(&rows("g2")));
        let (first, second) = if numbers_first {
            (&numbers, &text)
        } else {
            (&text, &numbers)
        };
        let out = tmp.path().join(format!("out-{numbers_first}"));
        let o = run(&[&dir], &demo_model(), &out, &["--provider", "cpu"]);
        assert_fails(
            &o,
            1,
            &format!("input file {}: column `note` has type", second.display()),
        );
        assert!(
            stderr(&o).contains(&format!("as in {}", first.display())),
            "{}",
            stderr(&o)
        );
        assert_no_output(&out);
    }
}

/// A null partition value, as Hive, Spark and pyarrow write it (`day=__HIVE_DEFAULT_PARTITION__`),
/// is a null of the column's type (it was read as that text, which made the column a string).
#[test]
fn a_null_partition_value_is_a_null() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rows = |g: &str| vec![row(g, 0, 0.1, &[10, 11]), row(g, 1, 0.3, &[12, 13])];
    write_rows(&data.join("day=1/a.parquet"), &rows("g1"));
    write_rows(
        &data.join("day=__HIVE_DEFAULT_PARTITION__/b.parquet"),
        &rows("g2"),
    );
    let table = format!("t={}", data.display());
    assert_eq!(
        sql_csv(&table, "SELECT count(*) AS n FROM t WHERE day IS NULL"),
        "n\n2\n"
    );
    let out = tmp.path().join("out");
    assert_days_in_sql_and_run(&data, &out, "generation_id,day\ng1,1\ng2,\n");
    assert_eq!(column_type(&out, "day"), DataType::Int64);
}

/// Each generation's `day` over the folder `data` by `segscore sql`, and over the segments of a
/// run on it into `out`, as CSV: both `want`.
fn assert_days_in_sql_and_run(data: &Path, out: &Path, want: &str) {
    let query = |table: &str| format!("SELECT DISTINCT generation_id, day FROM {table} ORDER BY 1");
    assert_eq!(sql_csv(&format!("t={}", data.display()), &query("t")), want);
    run_ok(&[data], &demo_model(), out, &["--provider", "cpu"]);
    assert_eq!(
        sql_csv(&format!("s={}", out.display()), &query("s.segments")),
        want
    );
}

/// Folder levels named like a column the files have too (a writer that kept the partition
/// column in its files): in `auto` mode the files' column is read, in `run` and `sql`; with
/// `--hive-partitioning on` the run is refused naming the column and a file (both failed with
/// "Schema contains duplicate qualified field name").
#[test]
fn a_folder_level_named_like_a_file_column_reads_the_files_column() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rows = |g: &str| vec![row(g, 0, 0.1, &[10, 11]), row(g, 1, 0.3, &[12, 13])];
    let with_day = |g: &str, day: &str| {
        let b = batch(&rows(g));
        let days = Arc::new(StringArray::from(vec![day; b.num_rows()]));
        with_column(&b, Field::new("day", DataType::Utf8, false), days)
    };
    write_batch(&data.join("day=1/a.parquet"), &with_day("g1", "mon"));
    write_batch(&data.join("day=2/b.parquet"), &with_day("g2", "tue"));
    let out = tmp.path().join("out");
    assert_days_in_sql_and_run(&data, &out, "generation_id,day\ng1,mon\ng2,tue\n");
    let o = run(
        &[&data],
        &demo_model(),
        &tmp.path().join("out-on"),
        &["--provider", "cpu", "--hive-partitioning", "on"],
    );
    assert_fails(
        &o,
        2,
        "--hive-partitioning on: the folder levels `day=...` name a column that the files have too (`day` in",
    );
}

/// A column of nulls alone, as pandas and pyarrow write an all-None column (type `null`), in
/// the first file and text in the next: the table's column is text, null in the first file's
/// rows (the scan failed: `Cannot cast column 'note' from 'Utf8' ... to 'Null'`).
#[test]
fn a_column_of_nulls_alone_in_one_file_takes_the_others_type() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let rows = |g: &str| vec![row(g, 0, 0.1, &[10, 11]), row(g, 1, 0.3, &[12, 13])];
    let nulls = with_column(
        &batch(&rows("g1")),
        Field::new("note", DataType::Null, true),
        Arc::new(datafusion::arrow::array::NullArray::new(2)),
    );
    write_batch(&dir.join("a.parquet"), &nulls);
    write_rows(&dir.join("b.parquet"), &rows("g2"));
    // The helpers' rows carry `note` = "GID#SEGMENT".
    let expect = "generation_id,segment_index,note\ng1,0,\ng1,1,\ng2,0,g2#0\ng2,1,g2#1\n";
    let query = "SELECT generation_id, segment_index, note FROM t ORDER BY 1, 2";
    assert_eq!(sql_csv(&format!("t={}", dir.display()), query), expect);
    let out = tmp.path().join("out");
    run_ok(&[&dir], &demo_model(), &out, &["--provider", "cpu"]);
    assert_eq!(column_type(&out, "note"), DataType::Utf8);
    let query = "SELECT generation_id, segment_index, note FROM s.segments ORDER BY 1, 2";
    assert_eq!(sql_csv(&format!("s={}", out.display()), query), expect);
}

/// Scores as decimals (DuckDB writes `0.5` as DECIMAL) or half floats, token ids as uint16 and
/// token type ids as int8 (Hugging Face `datasets` writes them so) were refused as of the wrong
/// type. They are widened as they are read: the same targets and predictions as the same rows
/// in float64 and int64, and a folder mixing both kinds runs as one table.
#[test]
fn decimal_and_half_scores_and_narrow_token_ids_widen_as_they_are_read() {
    use datafusion::arrow::array::{Decimal128Array, Float16Array, ListArray};
    use datafusion::arrow::datatypes::{Int64Type, Int8Type, UInt16Type};
    let tmp = tempfile::tempdir().unwrap();
    let (gens, segs) = (3usize, 4usize);
    let n = gens * segs;
    let gid = |prefix: &str| -> Vec<String> { (0..n).map(|i| format!("{prefix}{}", i / segs)).collect() };
    let seg: Vec<i32> = (0..n).map(|i| (i % segs) as i32).collect();
    // Multiples of 1/64: exact in a decimal of scale 6, in float16 and in float64.
    let score: Vec<f64> = (0..n).map(|i| ((i * 37) % 50) as f64 / 64.0).collect();
    let ids: Vec<Vec<i64>> = (0..n)
        .map(|i| (0..1 + i % 5).map(|t| (100 + 61 * i + t) as i64 % 997).collect())
        .collect();
    let types: Vec<Vec<i64>> = ids.iter().map(|r| r.iter().map(|t| t % 2).collect()).collect();
    let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
    let write = |path: &Path,
                 prefix: &str,
                 score: (DataType, ArrayRef),
                 ids: (DataType, ArrayRef),
                 types: (DataType, ArrayRef)| {
        let schema = Arc::new(Schema::new(vec![
            Field::new("generation_id", DataType::Utf8, false),
            Field::new("segment_index", DataType::Int32, false),
            Field::new("cumulative_score", score.0, false),
            Field::new("input_ids", ids.0, true),
            Field::new("token_type_ids", types.0, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(gid(prefix))),
            Arc::new(Int32Array::from(seg.clone())),
            score.1,
            ids.1,
            types.1,
        ];
        write_batch(path, &RecordBatch::try_new(schema, cols).unwrap());
    };
    let wide = |v: &[Vec<i64>]| -> (DataType, ArrayRef) {
        (
            list(DataType::Int64),
            Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
                v.iter()
                    .map(|r| Some(r.iter().map(|&t| Some(t)).collect::<Vec<_>>())),
            )),
        )
    };
    let reference = tmp.path().join("f64.parquet");
    write(
        &reference,
        "g",
        (DataType::Float64, Arc::new(Float64Array::from(score.clone()))),
        wide(&ids),
        wide(&types),
    );
    let narrow_ids = (
        list(DataType::UInt16),
        Arc::new(ListArray::from_iter_primitive::<UInt16Type, _, _>(
            ids.iter()
                .map(|r| Some(r.iter().map(|&t| Some(t as u16)).collect::<Vec<_>>())),
        )) as ArrayRef,
    );
    let narrow_types = (
        list(DataType::Int8),
        Arc::new(ListArray::from_iter_primitive::<Int8Type, _, _>(
            types
                .iter()
                .map(|r| Some(r.iter().map(|&t| Some(t as i8)).collect::<Vec<_>>())),
        )) as ArrayRef,
    );
    let decimal = tmp.path().join("decimal").join("part.parquet");
    std::fs::create_dir_all(decimal.parent().unwrap()).unwrap();
    let dec = Decimal128Array::from(
        score
            .iter()
            .map(|s| (s * 1e6).round() as i128)
            .collect::<Vec<_>>(),
    )
    .with_precision_and_scale(12, 6)
    .unwrap();
    write(
        &decimal,
        "g",
        (DataType::Decimal128(12, 6), Arc::new(dec)),
        narrow_ids.clone(),
        narrow_types.clone(),
    );
    let half = tmp.path().join("half.parquet");
    let f16 = Float16Array::from(score.iter().map(|&s| half::f16::from_f64(s)).collect::<Vec<_>>());
    write(
        &half,
        "g",
        (DataType::Float16, Arc::new(f16)),
        narrow_ids,
        narrow_types,
    );
    let model = test_model("bert_like.onnx");
    let flags = ["--provider", "cpu", "--token-type-ids-col", "token_type_ids"];
    let run_one = |input: &Path, out: &str| {
        let out = tmp.path().join(out);
        run_ok(&[input], &model, &out, &flags);
        scores(&out)
    };
    let want = run_one(&reference, "out-f64");
    assert_eq!(want.len(), n);
    assert_eq!(
        run_one(decimal.parent().unwrap(), "out-decimal"),
        want,
        "decimal scores, uint16 ids"
    );
    assert_eq!(run_one(&half, "out-half"), want, "float16 scores, uint16 ids");
    // Both kinds in one folder: the float64 rows under other generation ids score alike.
    let folder = decimal.parent().unwrap();
    write(
        &folder.join("other.parquet"),
        "h",
        (DataType::Float64, Arc::new(Float64Array::from(score.clone()))),
        wide(&ids),
        wide(&types),
    );
    let mixed = run_one(folder, "out-mixed");
    assert_eq!(mixed.len(), 2 * n);
    for ((gid, seg), v) in &want {
        assert_eq!(
            mixed
                .iter()
                .find(|(k, _)| k == &(gid.clone(), *seg))
                .map(|x| &x.1),
            Some(v)
        );
        let other = (gid.replacen('g', "h", 1), *seg);
        assert_eq!(mixed.iter().find(|(k, _)| k == &other).map(|x| &x.1), Some(v));
    }
}

/// Token ids as uint64, in a list or a fixed-size list: they run as the same ids in int64 do,
/// and one past int64's range is named by its value (a cast to int64 made it a null: "the token
/// id at position 1 is null"), or its generation quarantined as `token_id_out_of_range`.
#[test]
fn uint64_token_ids_run_and_one_past_int64_is_named_by_its_value() {
    use datafusion::arrow::array::{FixedSizeListArray, ListArray, UInt64Array};
    use datafusion::arrow::datatypes::UInt64Type;
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<Row> = (0..12)
        .map(|i| {
            row(
                &format!("g{}", i / 4),
                i % 4,
                i as f64 / 16.0,
                &[1 + i, 2 * i + 3],
            )
        })
        .collect();
    let reference = tmp.path().join("int64.parquet");
    write_rows(&reference, &rows);
    let model = demo_model();
    let want = {
        let out = tmp.path().join("out-int64");
        run_ok(&[&reference], &model, &out, &[]);
        rows_by_key(&read_segments(&out))
    };
    let ids = |rows: &[Row], bad: Option<usize>| -> Vec<u64> {
        let mut v: Vec<u64> = rows
            .iter()
            .flat_map(|r| r.ids.clone().unwrap())
            .map(|x| x as u64)
            .collect();
        if let Some(i) = bad {
            v[2 * i + 1] = u64::MAX;
        }
        v
    };
    let list = |bad: Option<usize>| -> (Field, ArrayRef) {
        let v = ids(&rows, bad);
        let lists = ListArray::from_iter_primitive::<UInt64Type, _, _>(
            v.chunks(2)
                .map(|c| Some(c.iter().map(|&x| Some(x)).collect::<Vec<_>>())),
        );
        (
            Field::new("input_ids", lists.data_type().clone(), true),
            Arc::new(lists),
        )
    };
    let fixed = |bad: Option<usize>| -> (Field, ArrayRef) {
        let item = Arc::new(Field::new_list_field(DataType::UInt64, true));
        let values = Arc::new(UInt64Array::from(ids(&rows, bad)));
        let lists = FixedSizeListArray::new(item, 2, values, None);
        (
            Field::new("input_ids", lists.data_type().clone(), true),
            Arc::new(lists),
        )
    };
    let write = |name: &str, (field, values): (Field, ArrayRef)| -> PathBuf {
        let path = tmp.path().join(name);
        write_batch(&path, &with_column(&batch(&rows), field, values));
        path
    };
    for (name, ids) in [("list", list(None)), ("fixed", fixed(None))] {
        let input = write(&format!("{name}.parquet"), ids);
        let out = tmp.path().join(format!("out-{name}"));
        run_ok(&[&input], &model, &out, &[]);
        assert_eq!(rows_by_key(&read_segments(&out)), want, "uint64 ids in a {name}");
    }
    // Row 5 (g1, segment 1) holds 18446744073709551615 at position 1.
    for (name, ids) in [("list-bad", list(Some(5))), ("fixed-bad", fixed(Some(5)))] {
        let input = write(&format!("{name}.parquet"), ids);
        let out = tmp.path().join(format!("out-{name}"));
        assert_fails(
            &run(&[&input], &model, &out, &[]),
            1,
            "token id 18446744073709551615 at position 1 is not below the vocabulary size 1000",
        );
        assert!(stderr(&run(&[&input], &model, &out, &[])).contains("generation_id=g1, segment_index=1"));
        let quarantined = tmp.path().join(format!("out-{name}-q"));
        run_ok(&[&input], &model, &quarantined, &["--on-invalid", "quarantine"]);
        let rejected = read_parts(&quarantined.join("rejected"));
        let reasons: Vec<(String, i64, String)> = str_col(&rejected, "generation_id")
            .into_iter()
            .zip(i64_col(&rejected, "segment_index"))
            .zip(str_col(&rejected, "reason"))
            .map(|((g, s), r)| (g, s, r))
            .filter(|(_, _, r)| r != "invalid_segment_in_generation")
            .collect();
        assert_eq!(
            reasons,
            vec![("g1".to_string(), 1, "token_id_out_of_range".to_string())],
            "{name}"
        );
        let kept = rows_by_key(&read_segments(&quarantined));
        let others: std::collections::BTreeMap<_, _> =
            want.clone().into_iter().filter(|(k, _)| k.0 != "g1").collect();
        assert_eq!(kept, others, "{name}");
    }
}

/// A Hugging Face dataset saved with `save_to_disk` (Arrow IPC streams, `.arrow`, beside JSON
/// files) or a Feather file: `run` reads Parquet, and names what it was given with how to
/// convert it; `segscore sql` reads both and `COPY ... TO` writes the Parquet that runs as the
/// dataset's own Parquet does.
#[test]
fn arrow_ipc_files_are_named_and_converted_by_sql() {
    use datafusion::arrow::ipc::writer::{FileWriter, StreamWriter};
    let tmp = tempfile::tempdir().unwrap();
    let parquet = tmp.path().join("parquet");
    generate(&parquet, 500, 1, true);
    let batches = read_parquet(&parquet.join("part-00000.parquet"));
    let schema = batches[0].schema();
    let hf = tmp.path().join("hf");
    std::fs::create_dir(&hf).unwrap();
    let stream = hf.join("data-00000-of-00001.arrow");
    let mut w = StreamWriter::try_new(std::fs::File::create(&stream).unwrap(), &schema).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    std::fs::write(hf.join("dataset_info.json"), "{}").unwrap();
    let feather = tmp.path().join("x.feather");
    let mut w = FileWriter::try_new(std::fs::File::create(&feather).unwrap(), &schema).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    // The folder: no Parquet file, the .arrow file named with the command that converts it; the
    // file: what it is and the same.
    let o = run(&[&hf], &demo_model(), &tmp.path().join("o1"), &[]);
    let says = format!(
        "no Parquet files found (it holds 2 files without the .parquet extension, such as {}: segscore sql reads such files by a glob, '{glob}', and `segscore sql \"COPY '{glob}' TO 'OUT.parquet'\"` writes them as Parquet, which segscore run reads)",
        stream.display(),
        glob = format!("{}/*.arrow", hf.display())
    );
    assert_fails(&o, 1, &says);
    let o = run(&[&stream], &demo_model(), &tmp.path().join("o2"), &[]);
    assert_fails(
        &o,
        1,
        "it begins like an Arrow IPC stream (Hugging Face `datasets`' `save_to_disk` writes them), not Parquet: write it as Parquet (`segscore sql \"COPY 'IN' TO 'OUT.parquet'\"` reads Arrow, CSV and JSON files)",
    );
    // sql reads the stream and the file; COPY converts; the run equals the Parquet's own.
    let want = run_ok(
        &[&parquet],
        &demo_model(),
        &tmp.path().join("want"),
        &["--provider", "cpu"],
    );
    assert!(want.status.success());
    for (from, to) in [("hf/*.arrow", "hf.parquet"), ("x.feather", "feather.parquet")] {
        let o = segscore_in(tmp.path(), &["sql", &format!("COPY '{from}' TO '{to}'")]);
        assert!(o.status.success(), "{from}: {}", stderr(&o));
        let out = tmp.path().join(format!("out-{to}"));
        run_ok(
            &[&tmp.path().join(to)],
            &demo_model(),
            &out,
            &["--provider", "cpu"],
        );
        assert_eq!(scores(&out), scores(&tmp.path().join("want")), "{from}");
    }
}

/// A Delta Lake table partitioned by day (delta-rs) runs as its folder, the day column from its
/// folder names; what plain Parquet files cannot give is refused naming the table: a stale file
/// beside a partitioned table's (not yet vacuumed), column mapping, a deletion vector (the
/// last two written into copies of the fixture's log as Spark and Databricks write them).
#[cfg(feature = "delta")]
#[test]
fn delta_lake_tables_read_partitioned_and_refuse_what_parquet_cannot_give() {
    let tmp = tempfile::tempdir().unwrap();
    let partitioned = fixture("delta_partitioned");
    let out = tmp.path().join("out");
    run_ok(&[&partitioned], &demo_model(), &out, &["--provider", "cpu"]);
    assert_eq!(summary(&out)["partition_cols"], serde_json::json!(["day"]));
    assert_eq!(scores(&out), duckdb_scores(tmp.path()));
    let by_day = format!(
        "SELECT day, count(*) AS n FROM '{}' GROUP BY day ORDER BY day",
        partitioned.display()
    );
    let o = segscore(&["sql", "--format", "csv", &by_day]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "day,n\n1,10\n2,10\n3,10\n");
    // Partition values a folder name escapes (`tag=x%20y%25`, escaped again in the log).
    let escaped = fixture("delta_escaped");
    let by_tag = format!(
        "SELECT tag, count(*) AS n FROM '{}' GROUP BY tag ORDER BY tag",
        escaped.display()
    );
    let o = segscore(&["sql", "--format", "csv", &by_tag]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "tag,n\nplain,10\nx y%,10\nz#1,10\n"
    );
    // Copies of the tables, changed.
    let copy = |from: &Path, name: &str| -> PathBuf {
        let to = tmp.path().join(name);
        for f in walk(from) {
            let dest = to.join(f.strip_prefix(from).unwrap());
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&f, dest).unwrap();
        }
        to
    };
    let refused = |table: &Path, why: &str| {
        let o = run(&[table], &demo_model(), &tmp.path().join("refused"), &[]);
        let says = format!("input {} is a Delta Lake table (version ", table.display());
        assert_fails(&o, 2, &says);
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
        let sql = segscore(&["sql", &format!("SELECT count(*) FROM '{}'", table.display())]);
        assert_fails(&sql, 2, why);
    };
    let stale = copy(&partitioned, "stale");
    let day1 = walk(&stale.join("day=1")).remove(0);
    std::fs::copy(&day1, stale.join("day=1/removed.parquet")).unwrap();
    refused(
        &stale,
        &format!(
            "but the folder holds Parquet files the table does not (1 of 4, such as {}: files it removed or replaced, not yet vacuumed (VACUUM removes them)",
            stale.join("day=1/removed.parquet").display()
        ),
    );
    // The log's actions, one JSON object per line, edited.
    let edit = |log: &Path, f: &dyn Fn(&mut serde_json::Value)| {
        let mut text = String::new();
        for line in std::fs::read_to_string(log).unwrap().lines() {
            let mut action: serde_json::Value = serde_json::from_str(line).unwrap();
            f(&mut action);
            text += &format!("{action}\n");
        }
        std::fs::write(log, text).unwrap();
    };
    let mapped = copy(&fixture("delta"), "mapped");
    edit(&mapped.join("_delta_log/00000000000000000000.json"), &|a| {
        if a.get("protocol").is_some() {
            a["protocol"] = serde_json::json!({"minReaderVersion": 2, "minWriterVersion": 5});
        }
        if let Some(meta) = a.get_mut("metaData") {
            let mut schema: serde_json::Value =
                serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
            let fields = schema["fields"].as_array_mut().unwrap();
            for (i, f) in fields.iter_mut().enumerate() {
                let name = f["name"].clone();
                f["metadata"] = serde_json::json!({"delta.columnMapping.id": i + 1, "delta.columnMapping.physicalName": name});
            }
            let n = fields.len();
            meta["schemaString"] = schema.to_string().into();
            meta["configuration"] = serde_json::json!({"delta.columnMapping.mode": "name", "delta.columnMapping.maxColumnId": n.to_string()});
        }
    });
    refused(&mapped, "with column mapping (`delta.columnMapping.mode` = name)");
    let deleted = copy(&fixture("delta"), "deleted");
    edit(&deleted.join("_delta_log/00000000000000000000.json"), &|a| {
        if a.get("protocol").is_some() {
            a["protocol"] = serde_json::json!({"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["deletionVectors"], "writerFeatures": ["deletionVectors"]});
        }
        if let Some(meta) = a.get_mut("metaData") {
            meta["configuration"] = serde_json::json!({"delta.enableDeletionVectors": "true"});
        }
    });
    edit(&deleted.join("_delta_log/00000000000000000001.json"), &|a| {
        if let Some(add) = a.get_mut("add") {
            // The Delta protocol's example of an inline deletion vector (6 rows).
            add["deletionVector"] = serde_json::json!({"storageType": "i", "pathOrInlineDv": "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L", "offset": null, "sizeInBytes": 40, "cardinality": 6});
        }
    });
    refused(
        &deleted,
        "has a deletion vector (rows a DELETE, UPDATE or MERGE removed, which the file still holds)",
    );
}
