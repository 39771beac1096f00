//! A column whose type differs from file to file (a dataset written over months, by several
//! tools): read in one type that holds every file's values, in `run` and `sql` alike, or
//! refused naming the column and both files. DataFusion would cast each file's column to the
//! first file's type: floats truncated to integers, microseconds to milliseconds, a struct's
//! later fields dropped, all without a word.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Decimal128Array, Float64Array, Int32Array, Int64Array, ListArray, MapArray, StringArray,
    StructArray, TimestampMicrosecondArray, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use crate::common::*;

/// Two generations' rows, the first in `a.parquet` and the second in `b.parquet` (or the other
/// way round with `swap`), each with the column `extra` from `a` and `b`.
fn two_files(dir: &Path, a: Column, b: Column, swap: bool) {
    let rows = |g: &str| vec![row(g, 0, 0.25, &[10, 11]), row(g, 1, 0.5, &[12])];
    let (first, second) = if swap { ("b", "a") } else { ("a", "b") };
    write_batch(
        &dir.join(format!("{first}.parquet")),
        &with_column(&batch(&rows("g1")), a.0, a.1),
    );
    write_batch(
        &dir.join(format!("{second}.parquet")),
        &with_column(&batch(&rows("g2")), b.0, b.1),
    );
}

/// A file's column `extra`.
type Column = (Field, ArrayRef);

fn column(t: DataType, values: ArrayRef) -> Column {
    (Field::new("extra", t, true), values)
}

/// `query(table)` over the files in `dir`: read by `sql` as table `t`, and over the segments a
/// run of `dir` writes to `out`; both give `want` (CSV rows after the header `v`). The two
/// commands' logs, for what they say.
fn same_in_sql_and_run(
    dir: &Path,
    out: &Path,
    query: impl Fn(&str) -> String,
    want: &str,
    case: &str,
) -> [String; 2] {
    let table = format!("t={}", dir.display());
    let o = segscore(&["sql", "--format", "csv", "-t", &table, &query("t")]);
    assert!(o.status.success(), "{case}: {}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("v\n{want}"),
        "{case}, sql"
    );
    let run = run_ok(&[dir], &demo_model(), out, &["--provider", "cpu"]);
    let table = out.display().to_string();
    assert_eq!(
        sql_csv(&table, &query("segments")),
        format!("v\n{want}"),
        "{case}, run"
    );
    [stderr(&o), stderr(&run)]
}

#[test]
fn a_column_that_differs_across_files_keeps_every_value() {
    let tmp = tempfile::tempdir().unwrap();
    let ms = TimestampMillisecondArray::from(vec![1_704_067_200_123; 2]);
    let us = TimestampMicrosecondArray::from(vec![1_704_067_200_123_456; 2]);
    let ms_utc = TimestampMillisecondArray::from(vec![1_704_067_200_123; 2]).with_timezone("+00:00");
    let us_utc = TimestampMicrosecondArray::from(vec![1_704_067_200_123_456; 2]).with_timezone("UTC");
    let dec = |p: u8, s: i8, v: i128| {
        Arc::new(
            Decimal128Array::from(vec![v; 2])
                .with_precision_and_scale(p, s)
                .unwrap(),
        ) as ArrayRef
    };
    let int_list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1)]); 2]);
    let float_list = ListArray::from_iter_primitive::<Float64Type, _, _>(vec![Some(vec![Some(1.5)]); 2]);
    let x_only = StructArray::from(vec![(
        Arc::new(Field::new("x", DataType::Int32, false)),
        Arc::new(Int32Array::from(vec![1, 1])) as ArrayRef,
    )]);
    let x_and_y = StructArray::from(vec![
        (
            Arc::new(Field::new("y", DataType::Utf8, false)),
            Arc::new(StringArray::from(vec!["b", "b"])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("x", DataType::Int64, false)),
            Arc::new(Int64Array::from(vec![1 << 40, 1 << 40])) as ArrayRef,
        ),
    ]);
    // Maps, their keys and values named apart (arrow-rs and pyarrow name them so).
    let map = |names: (&str, &str), key: ArrayRef, value: ArrayRef| -> ArrayRef {
        let entries = StructArray::from(vec![
            (Arc::new(Field::new(names.0, key.data_type().clone(), false)), key),
            (
                Arc::new(Field::new(names.1, value.data_type().clone(), true)),
                value,
            ),
        ]);
        let field = Arc::new(Field::new("entries", entries.data_type().clone(), false));
        let offsets = datafusion::arrow::buffer::OffsetBuffer::from_lengths(vec![1, 1]);
        Arc::new(MapArray::new(field, offsets, entries, None, false))
    };
    let int_map = map(
        ("keys", "values"),
        Arc::new(Int32Array::from(vec![1, 1])),
        Arc::new(Int64Array::from(vec![2, 2])),
    );
    let float_map = map(
        ("key", "value"),
        Arc::new(Int64Array::from(vec![7, 7])),
        Arc::new(Float64Array::from(vec![0.5, 0.5])),
    );
    // (case, file a's column, file b's, a query of `extra` and what it gives over both files)
    let cases: Vec<(&str, Column, Column, &str, &str)> = vec![
        (
            "integers and floats",
            column(DataType::Int64, Arc::new(Int64Array::from(vec![1, 2]))),
            column(DataType::Float64, Arc::new(Float64Array::from(vec![0.5, 2.25]))),
            "extra",
            "0.5\n1.0\n2.0\n2.25\n",
        ),
        (
            "milliseconds and microseconds",
            column(ms.data_type().clone(), Arc::new(ms)),
            column(us.data_type().clone(), Arc::new(us)),
            "CAST(extra AS VARCHAR)",
            "2024-01-01 00:00:00.123\n2024-01-01 00:00:00.123456\n",
        ),
        (
            "UTC by two names",
            column(ms_utc.data_type().clone(), Arc::new(ms_utc)),
            column(us_utc.data_type().clone(), Arc::new(us_utc)),
            "CAST(extra AS VARCHAR)",
            "2024-01-01 00:00:00.123+00\n2024-01-01 00:00:00.123456+00\n",
        ),
        (
            "two decimals",
            column(DataType::Decimal128(5, 2), dec(5, 2, 125)),
            column(DataType::Decimal128(10, 4), dec(10, 4, 1_234_561_234)),
            "CAST(extra AS VARCHAR)",
            "1.2500\n123456.1234\n",
        ),
        (
            "lists of integers and of floats",
            column(int_list.data_type().clone(), Arc::new(int_list)),
            column(float_list.data_type().clone(), Arc::new(float_list)),
            "extra[1]",
            "1.0\n1.5\n",
        ),
        (
            "a struct with a field added",
            column(x_only.data_type().clone(), Arc::new(x_only)),
            column(x_and_y.data_type().clone(), Arc::new(x_and_y)),
            "concat(CAST(extra['x'] AS VARCHAR), '/', coalesce(extra['y'], 'null'))",
            "1/null\n1099511627776/b\n",
        ),
        (
            "maps of integers and of floats",
            column(int_map.data_type().clone(), int_map),
            column(float_map.data_type().clone(), float_map),
            "concat(CAST(map_keys(extra)[1] AS VARCHAR), '=', CAST(map_values(extra)[1] AS VARCHAR))",
            "1=2.0\n7=0.5\n",
        ),
    ];
    for (i, (case, a, b, expr, want)) in cases.into_iter().enumerate() {
        for swap in [false, true] {
            let dir = tmp.path().join(format!("in-{i}-{swap}"));
            two_files(&dir, a.clone(), b.clone(), swap);
            let query = |table: &str| format!("SELECT DISTINCT {expr} AS v FROM {table} ORDER BY 1");
            let out = tmp.path().join(format!("out-{i}-{swap}"));
            same_in_sql_and_run(&dir, &out, query, want, case);
        }
    }
}

#[test]
fn integer_scores_are_read_as_floats() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = |g: &str| {
        vec![
            row(g, 0, 3.0, &[10, 11]),
            row(g, 1, 5.0, &[12]),
            row(g, 2, 4.0, &[13, 14]),
        ]
    };
    let floats = tmp.path().join("floats");
    write_rows(&floats.join("a.parquet"), &[rows("g1"), rows("g2")].concat());
    // The same scores as int64 in one file and float64 in the other, as int32 in both.
    let as_ints = |b: &RecordBatch, t: DataType| {
        let values =
            datafusion::arrow::compute::cast(b.column_by_name("cumulative_score").unwrap(), &t).unwrap();
        with_column(b, Field::new("cumulative_score", t, true), values)
    };
    let mixed = tmp.path().join("mixed");
    write_batch(
        &mixed.join("a.parquet"),
        &as_ints(&batch(&rows("g1")), DataType::Int64),
    );
    write_rows(&mixed.join("b.parquet"), &rows("g2"));
    let ints = tmp.path().join("ints");
    write_batch(
        &ints.join("a.parquet"),
        &as_ints(&batch(&[rows("g1"), rows("g2")].concat()), DataType::Int32),
    );
    let out = |name: &str| tmp.path().join(format!("out-{name}"));
    for (name, dir) in [("floats", &floats), ("mixed", &mixed), ("ints", &ints)] {
        run_ok(&[dir], &demo_model(), &out(name), &["--provider", "cpu"]);
    }
    let targets = |name: &str| by_key(&read_segments(&out(name)), "target_score");
    let want: Vec<f64> = targets("floats").into_values().collect();
    assert_eq!(want, vec![3.0, 2.0, -1.0, 3.0, 2.0, -1.0]);
    for name in ["mixed", "ints"] {
        assert_eq!(targets(name).into_values().collect::<Vec<_>>(), want, "{name}");
        assert_same_rows(
            &rows_by_key(&read_segments(&out("floats"))),
            &rows_by_key(&read_segments(&out(name))),
            name,
        );
    }
}

#[test]
fn columns_no_one_type_holds_are_refused_naming_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let utc = TimestampMicrosecondArray::from(vec![0; 2]).with_timezone("UTC");
    let naive = TimestampMicrosecondArray::from(vec![0; 2]);
    for (i, (a, b)) in [
        (
            column(DataType::Int64, Arc::new(Int64Array::from(vec![1, 2]))),
            column(DataType::UInt64, Arc::new(UInt64Array::from(vec![u64::MAX, 2]))),
        ),
        (
            column(utc.data_type().clone(), Arc::new(utc)),
            column(naive.data_type().clone(), Arc::new(naive)),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("in-{i}"));
        two_files(&dir, a, b, false);
        let (first, second) = (dir.join("a.parquet"), dir.join("b.parquet"));
        let want = format!("input file {}: column `extra` has type ", second.display());
        let also = format!("as in {} (no one type holds the values of both", first.display());
        let out = tmp.path().join(format!("out-{i}"));
        let o = run(&[&dir], &demo_model(), &out, &["--provider", "cpu"]);
        assert_fails(&o, 1, &want);
        assert!(stderr(&o).contains(&also), "{}", stderr(&o));
        assert_no_output(&out);
        let table = format!("t={}", dir.display());
        let o = segscore(&["sql", "-t", &table, "SELECT extra FROM t"]);
        assert_fails(&o, 1, &want);
        assert!(stderr(&o).contains(&also), "{}", stderr(&o));
    }
}

#[test]
fn a_file_with_two_columns_of_one_name_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let b = batch(&[row("g1", 0, 0.25, &[10]), row("g1", 1, 0.5, &[11])]);
    let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = b.columns().to_vec();
    fields.push(Field::new("segment_index", DataType::Float64, true));
    columns.push(Arc::new(Float64Array::from(vec![7.5, 8.5])));
    let twice = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let file = tmp.path().join("in/twice.parquet");
    write_batch(&file, &twice);
    let want = format!(
        "input file {}: more than one column is named `segment_index`",
        file.display()
    );
    let out = tmp.path().join("out");
    assert_fails(
        &run(&[&file], &demo_model(), &out, &["--provider", "cpu"]),
        1,
        &want,
    );
    assert_no_output(&out);
    let table = format!("t={}", file.display());
    assert_fails(&segscore(&["sql", "-t", &table, "SELECT * FROM t"]), 1, &want);
}

#[test]
fn a_float_generation_id_says_how_pandas_writes_one() {
    let tmp = tempfile::tempdir().unwrap();
    let b = batch(&[row("g1", 0, 0.25, &[10])]);
    let b = with_column(
        &b,
        Field::new("generation_id", DataType::Float64, true),
        Arc::new(Float64Array::from(vec![1.0])),
    );
    let file = tmp.path().join("in/ids.parquet");
    write_batch(&file, &b);
    let o = run(
        &[&file],
        &demo_model(),
        &tmp.path().join("out"),
        &["--provider", "cpu"],
    );
    assert_fails(
        &o,
        1,
        "column `generation_id` has type Float64, expected a string, an integer",
    );
    assert!(
        stderr(&o).contains("pandas writes an integer column that has a missing value as float64"),
        "{}",
        stderr(&o)
    );
}

/// A date64 column (pyarrow's `pa.date64()`) is written as a date32, in `run`'s segments and in
/// `segscore sql --to`: Parquet has no 64-bit date, and the plain 64-bit integers arrow-rs would
/// write read back as dates in arrow-rs alone (pyarrow, DuckDB and polars read integers).
#[test]
fn a_date64_column_is_written_as_a_date_every_reader_reads() {
    use datafusion::arrow::array::Date64Array;
    use datafusion::parquet::basic::LogicalType;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let tmp = tempfile::tempdir().unwrap();
    let b = batch(&[row("g1", 0, 0.25, &[10]), row("g1", 1, 0.5, &[11])]);
    // 2024-02-29 and 1969-12-31, as milliseconds.
    let days = Date64Array::from(vec![19_782 * 86_400_000, -86_400_000]);
    let b = with_column(&b, Field::new("day", DataType::Date64, true), Arc::new(days));
    let input = tmp.path().join("in/a.parquet");
    write_batch(&input, &b);
    let out = tmp.path().join("out");
    run_ok(&[&input], &demo_model(), &out, &["--provider", "cpu"]);
    let to = tmp.path().join("days.parquet");
    let table = format!("t={}", input.display());
    let o = segscore(&[
        "sql",
        "-t",
        &table,
        "--to",
        to.to_str().unwrap(),
        "SELECT day FROM t",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for file in [parts(&out.join("segments")).remove(0), to] {
        let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let day = (0..schema.num_columns())
            .map(|i| schema.column(i))
            .find(|c| c.name() == "day")
            .unwrap();
        assert_eq!(
            day.logical_type_ref(),
            Some(&LogicalType::Date),
            "{}",
            file.display()
        );
        let query = "SELECT CAST(day AS VARCHAR) AS d FROM t ORDER BY 1";
        assert_eq!(
            sql_csv_on(&file, query),
            "d\n1969-12-31\n2024-02-29\n",
            "{}",
            file.display()
        );
    }
}

/// A time column in nanoseconds in one file (pandas writes them) and in a coarser unit in
/// another that holds a value nanoseconds cannot (9999-12-31, a common "no end" date; they end
/// in 2262): read in the finest unit that holds both files' values, the log naming the column
/// and the file, where nanoseconds stopped the run with an Arrow cast error naming neither. A
/// file whose footer has no statistics for the column cannot show that its values fit. A time
/// inside a struct or a list is decided the same way from its leaf column's statistics (it
/// stopped the run with "While casting struct field 'ts' ... Arithmetic overflow").
#[test]
fn a_time_value_that_nanoseconds_cannot_hold_keeps_a_coarser_unit() {
    use datafusion::arrow::array::{Date32Array, TimestampNanosecondArray};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
    let tmp = tempfile::tempdir().unwrap();
    let ns = TimestampNanosecondArray::from(vec![1_704_067_200_123_456_789; 2]);
    // 9999-12-31 and 2024-01-01 as microseconds, then as days.
    let us = TimestampMicrosecondArray::from(vec![253_402_214_400_000_000, 1_704_067_200_000_000]);
    let days = Date32Array::from(vec![2_932_896, 19_723]);
    let in_range = TimestampMicrosecondArray::from(vec![1_704_067_200_000_001; 2]);
    // (case, file b's column, whether b's footer has statistics, what the query gives, the
    // warning's reason)
    let cases: Vec<(&str, Column, bool, &str, &str)> = vec![
        (
            "microseconds up to 9999",
            column(us.data_type().clone(), Arc::new(us)),
            true,
            "2024-01-01 00:00:00\n2024-01-01 00:00:00.123456\n9999-12-31 00:00:00\n",
            "holds a value that Nanosecond cannot hold",
        ),
        (
            "dates up to 9999",
            column(DataType::Date32, Arc::new(days)),
            true,
            "2024-01-01 00:00:00\n2024-01-01 00:00:00.123456\n9999-12-31 00:00:00\n",
            "holds a value that Nanosecond cannot hold",
        ),
        (
            "microseconds without statistics",
            column(in_range.data_type().clone(), Arc::new(in_range)),
            false,
            "2024-01-01 00:00:00.000001\n2024-01-01 00:00:00.123456\n",
            "has no statistics for the column",
        ),
    ];
    let rows = |g: &str| batch(&[row(g, 0, 0.25, &[10, 11]), row(g, 1, 0.5, &[12])]);
    // The time as the column, as a struct's field `ts`, as a list's one item; the query's
    // expression of it and the name the warning gives it.
    let shapes = ["extra", "extra['ts']", "extra[1]"]
        .into_iter()
        .zip(["extra", "extra.ts", "extra[]"]);
    let shape = |(f, values): Column, at: &str| -> Column {
        let (t, n) = (f.data_type().clone(), values.len());
        let item = Arc::new(Field::new(if at == "extra[1]" { "item" } else { "ts" }, t, true));
        let values: ArrayRef = match at {
            "extra['ts']" => Arc::new(StructArray::from(vec![(item, values)])),
            "extra[1]" => Arc::new(ListArray::new(
                item,
                datafusion::arrow::buffer::OffsetBuffer::from_lengths(vec![1; n]),
                values,
                None,
            )),
            _ => values,
        };
        column(values.data_type().clone(), values)
    };
    let cases = shapes.flat_map(|s| cases.iter().map(move |c| (s, c.clone())));
    for (i, ((at, name), (case, b, stats, want, why))) in cases.enumerate() {
        let (b, ns) = (
            shape(b, at),
            shape(column(ns.data_type().clone(), Arc::new(ns.clone())), at),
        );
        for swap in [false, true] {
            let dir = tmp.path().join(format!("in-{i}-{swap}"));
            let (a_name, b_name) = if swap { ("b", "a") } else { ("a", "b") };
            write_batch(
                &dir.join(format!("{a_name}.parquet")),
                &with_column(&rows("g1"), ns.0.clone(), ns.1.clone()),
            );
            let coarse = dir.join(format!("{b_name}.parquet"));
            let props = WriterProperties::builder()
                .set_statistics_enabled(if stats {
                    EnabledStatistics::Chunk
                } else {
                    EnabledStatistics::None
                })
                .build();
            let second = with_column(&rows("g2"), b.0.clone(), b.1.clone());
            let mut w = ArrowWriter::try_new(
                std::fs::File::create(&coarse).unwrap(),
                second.schema(),
                Some(props),
            )
            .unwrap();
            w.write(&second).unwrap();
            w.close().unwrap();
            let query =
                |table: &str| format!("SELECT DISTINCT CAST({at} AS VARCHAR) AS v FROM {table} ORDER BY 1");
            let out = tmp.path().join(format!("out-{i}-{swap}"));
            for log in same_in_sql_and_run(&dir, &out, query, want, case) {
                assert!(
                    log.contains(&format!(
                        "column `{name}` is read in Microsecond, not in the finer Nanosecond"
                    )) && log.contains(&format!("{} {why}", coarse.display())),
                    "{case}: {log}"
                );
            }
        }
    }
}

/// The predictions of a run over `input` into `out`, by key, as `sql` lists them (CSV).
fn predictions(input: &Path, out: &Path) -> String {
    run_ok(&[input], &demo_model(), out, &["--provider", "cpu"]);
    sql_csv(
        &out.display().to_string(),
        "SELECT generation_id, segment_index, predicted_score FROM segments ORDER BY 1, 2",
    )
}

/// `reward_model()` in `sql` over the table `input`, listed as [`predictions`] lists a run's.
fn predictions_in_sql(input: &Path) -> String {
    let o = sql_with_model_on(
        &demo_model(),
        input,
        "SELECT generation_id, segment_index, reward_model(input_ids) AS predicted_score FROM t ORDER BY 1, 2",
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Token ids as a fixed-size list (Hugging Face `datasets` writes `Sequence(length=N)` so; numpy
/// arrays of one width through pyarrow), in one file beside plain lists in another: scored as
/// the same ids in lists are, bit for bit. They were refused as of the wrong type.
#[test]
fn token_ids_in_a_fixed_size_list_score_as_the_same_ids_in_a_list() {
    use datafusion::arrow::array::FixedSizeListArray;
    let tmp = tempfile::tempdir().unwrap();
    let first = [row("g1", 0, 0.25, &[10, 11]), row("g1", 1, 0.5, &[12, 13])];
    let second = [row("g2", 0, 0.75, &[14]), row("g2", 1, 0.5, &[15, 16, 17])];
    let lists = tmp.path().join("lists");
    write_batch(&lists.join("a.parquet"), &batch(&first));
    write_batch(&lists.join("b.parquet"), &batch(&second));
    let fixed = tmp.path().join("fixed");
    let item = Arc::new(Field::new("element", DataType::Int32, true));
    let ids = FixedSizeListArray::new(
        Arc::clone(&item),
        2,
        Arc::new(Int32Array::from(vec![10, 11, 12, 13])),
        None,
    );
    write_batch(
        &fixed.join("a.parquet"),
        &with_column(
            &batch(&first),
            Field::new("input_ids", DataType::FixedSizeList(item, 2), true),
            Arc::new(ids),
        ),
    );
    write_batch(&fixed.join("b.parquet"), &batch(&second));
    let scores = |input: &Path, out: &str| predictions(input, &tmp.path().join(out));
    let want = scores(&lists, "out-lists");
    assert_eq!(want.lines().count(), 5, "{want}");
    assert_eq!(scores(&fixed, "out-fixed"), want);
    // The run says that every id in such a list is a token (padded lists are common).
    let o = run_ok(
        &[&fixed],
        &demo_model(),
        &tmp.path().join("out-warned"),
        &["--provider", "cpu"],
    );
    assert!(
        stderr(&o).contains(&format!(
            "column `input_ids` is a fixed-size list of 2 ids in {}: every id in it is read as a token, padding too",
            fixed.join("a.parquet").display()
        )),
        "{}",
        stderr(&o)
    );
    // `reward_model()` in SQL takes them too, and scores them as the run did.
    assert_eq!(predictions_in_sql(&fixed), want);
    // `sql` reads the table with the ids as lists.
    assert_eq!(
        sql_csv_on(
            &fixed,
            "SELECT input_ids[2] AS second FROM t WHERE cardinality(input_ids) > 1 ORDER BY 1"
        ),
        "second\n11\n13\n16\n"
    );
}

/// Rejected rows keep the input's fixed-size list of ids, each row its own: the last
/// generation of a batch (held back until the next batch shows where it ends, so a slice) got
/// the first rows' ids (arrow 59 casts a sliced list to a fixed-size list from the start of its
/// values, apache/arrow-rs#10975).
#[test]
fn rejected_rows_keep_their_own_ids_in_a_fixed_size_list() {
    use datafusion::arrow::array::FixedSizeListArray;
    use datafusion::arrow::buffer::NullBuffer;
    let tmp = tempfile::tempdir().unwrap();
    let rows = [
        row("a", 0, 0.1, &[1, 2]),
        row("a", 1, 0.3, &[3, 4]),
        row("b", 0, 0.2, &[5, 6]),
        row("b", 1, 0.5, &[7, 8]),
        row("c", 0, 0.4, &[9, 10]),
        row("c", 1, 0.6, &[11, 12]),
    ];
    // b's second row has a null id, c's second row no ids: both generations are rejected.
    let item = Arc::new(Field::new("element", DataType::Int64, true));
    let values: Vec<Option<i64>> = (1..=12).map(|v| (v != 8).then_some(v)).collect();
    let ids = FixedSizeListArray::new(
        Arc::clone(&item),
        2,
        Arc::new(Int64Array::from(values)),
        Some(NullBuffer::from(vec![true, true, true, true, true, false])),
    );
    let input = tmp.path().join("in/a.parquet");
    write_batch(
        &input,
        &with_column(
            &batch(&rows),
            Field::new("input_ids", DataType::FixedSizeList(item, 2), true),
            Arc::new(ids),
        ),
    );
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--on-invalid", "quarantine"],
    );
    let query = "SELECT generation_id AS g, segment_index AS s, input_ids[1] AS i1, input_ids[2] AS i2, \
        arrow_typeof(input_ids) AS t, reason FROM rejected ORDER BY 1, 2";
    let t = "\"FixedSizeList(2 x Int64, field: 'element')\"";
    assert_eq!(
        sql_csv(&out.display().to_string(), query),
        format!(
            "g,s,i1,i2,t,reason\n\
             b,0,5,6,{t},invalid_segment_in_generation\n\
             b,1,7,,{t},null_token_id\n\
             c,0,9,10,{t},invalid_segment_in_generation\n\
             c,1,,,{t},null_input_ids\n"
        )
    );
}

/// Token ids in a list view (pyarrow's `list_view`, Arrow's offsets-and-sizes list), beside
/// plain lists in another file: scored as the same ids in lists are, by `run` and by
/// `reward_model()`; rejected rows keep their own ids as a list view. They were refused as of
/// the wrong type.
#[test]
fn token_ids_in_a_list_view_score_as_the_same_ids_in_a_list() {
    use datafusion::arrow::array::ListViewArray;
    use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
    let tmp = tempfile::tempdir().unwrap();
    let first = [row("g1", 0, 0.25, &[10, 11]), row("g1", 1, 0.5, &[12, 13, 14])];
    let second = [row("g2", 0, 0.75, &[14]), row("g2", 1, 0.5, &[15, 16, 17])];
    let lists = tmp.path().join("lists");
    write_batch(&lists.join("a.parquet"), &batch(&first));
    write_batch(&lists.join("b.parquet"), &batch(&second));
    // The views out of order in their values (a view may point anywhere): [10, 11] at 3,
    // [12, 13, 14] at 0.
    let item = Arc::new(Field::new("element", DataType::Int32, true));
    let view = |nulls: Option<NullBuffer>| {
        ListViewArray::new(
            Arc::clone(&item),
            ScalarBuffer::from(vec![3, 0]),
            ScalarBuffer::from(vec![2, 3]),
            Arc::new(Int32Array::from(vec![
                Some(12),
                Some(13),
                Some(14),
                Some(10),
                Some(11),
            ])),
            nulls,
        )
    };
    let viewed = |rows: &[Row], ids: ListViewArray| {
        with_column(
            &batch(rows),
            Field::new("input_ids", DataType::ListView(Arc::clone(&item)), true),
            Arc::new(ids),
        )
    };
    let views = tmp.path().join("views");
    write_batch(&views.join("a.parquet"), &viewed(&first, view(None)));
    write_batch(&views.join("b.parquet"), &batch(&second));
    let scores = |input: &Path, out: &str| predictions(input, &tmp.path().join(out));
    let want = scores(&lists, "out-lists");
    assert_eq!(want.lines().count(), 5, "{want}");
    assert_eq!(scores(&views, "out-views"), want);
    assert_eq!(predictions_in_sql(&views), want);
    // g1's second row without ids: g1 is rejected, its rows keep their own ids.
    let input = tmp.path().join("rejected/a.parquet");
    let nulls = Some(NullBuffer::from(vec![true, false]));
    write_batch(&input, &viewed(&first, view(nulls)));
    let out = tmp.path().join("out-rejected");
    run_ok(
        &[&input],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--on-invalid", "quarantine"],
    );
    assert_eq!(
        sql_csv(
            &out.display().to_string(),
            "SELECT segment_index AS s, input_ids, arrow_typeof(input_ids) AS t, reason FROM rejected ORDER BY 1"
        ),
        "s,input_ids,t,reason\n\
         0,\"[10, 11]\",\"ListView(Int32, field: 'element')\",invalid_segment_in_generation\n\
         1,,\"ListView(Int32, field: 'element')\",null_input_ids\n"
    );
}

/// A timestamp column of milliseconds (as pyarrow and Java tools write one) or of seconds (a
/// CSV's `2024-01-02 03:04:05`) beside a finer time: exact, as in DuckDB, which reads such
/// columns as microseconds (each expected value is DuckDB 2.0.1's). DataFusion kept the
/// column's unit: `ts + INTERVAL 1 MICROSECOND` was `ts`, and its optimizer compared `ts` with
/// `TIMESTAMP '... 03:04:05.0005'` cut to `05.000`, so `=`, `>=`, `BETWEEN` and `IN` held for
/// the row at `05.000`, and `ts = '...0005'` too.
#[test]
fn a_timestamp_of_milliseconds_or_seconds_beside_a_finer_time_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    // 2024-01-02 03:04:05.000, 05.001 and 1969-12-31 23:59:59.999 (before 1970: the floor of a
    // value between two milliseconds is the earlier one), and NULL.
    let ms = TimestampMillisecondArray::from(vec![
        Some(1_704_164_645_000),
        Some(1_704_164_645_001),
        Some(-1),
        None,
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("i", DataType::Int64, false),
        Field::new("ts", ms.data_type().clone(), true),
        Field::new(
            "tz",
            DataType::Timestamp(
                datafusion::arrow::datatypes::TimeUnit::Millisecond,
                Some("UTC".into()),
            ),
            true,
        ),
    ]));
    let zoned = ms.clone().with_timezone("UTC");
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(ms),
            Arc::new(zoned),
        ],
    )
    .unwrap();
    let file = tmp.path().join("t.parquet");
    write_batch(&file, &batch);
    let half = "TIMESTAMP '2024-01-02 03:04:05.0005'";
    let q = format!(
        "SELECT i, ts + INTERVAL 1 MICROSECOND AS a, INTERVAL 1 MICROSECOND + ts AS b, \
         date_add(ts, INTERVAL 1 MICROSECOND) AS c, tz - INTERVAL 1 MICROSECOND AS d, \
         ts = {half} AS eq, ts <> {half} AS ne, ts < {half} AS lt, ts <= {half} AS le, \
         ts > {half} AS gt, ts >= {half} AS ge, {half} <= ts AS ge2, \
         ts IS DISTINCT FROM {half} AS dist, ts = '2024-01-02 03:04:05.0005' AS text, \
         ts BETWEEN TIMESTAMP '2024-01-02 03:04:05.0001' AND TIMESTAMP '2024-01-02 03:04:05.0009' AS btw, \
         ts IN ({half}, TIMESTAMP '2024-01-02 03:04:05.001') AS inl, ts NOT IN ({half}) AS notin, \
         ts < TIMESTAMP '1969-12-31 23:59:59.9995' AS early, \
         tz = TIMESTAMPTZ '2024-01-02 04:04:05.0005+01' AS zeq, tz < TIMESTAMPTZ '2024-01-02 04:04:05.0005+01' AS zlt \
         FROM t ORDER BY i"
    );
    assert_eq!(
        sql_csv_on(&file, &q),
        "i,a,b,c,d,eq,ne,lt,le,gt,ge,ge2,dist,text,btw,inl,notin,early,zeq,zlt\n\
         1,2024-01-02T03:04:05.000001,2024-01-02T03:04:05.000001,2024-01-02T03:04:05.000001,2024-01-02T03:04:04.999999Z,false,true,true,true,false,false,false,true,false,false,false,true,false,false,true\n\
         2,2024-01-02T03:04:05.001001,2024-01-02T03:04:05.001001,2024-01-02T03:04:05.001001,2024-01-02T03:04:05.000999Z,false,true,false,false,true,true,true,true,false,false,true,true,false,false,false\n\
         3,1969-12-31T23:59:59.999001,1969-12-31T23:59:59.999001,1969-12-31T23:59:59.999001,1969-12-31T23:59:59.998999Z,false,true,true,true,false,false,false,true,false,false,false,true,true,false,true\n\
         4,,,,,,,,,,,,true,,,,,,,\n"
    );
    // A window's RANGE frame of microseconds over the column: its bounds in microseconds.
    let q = "SELECT i, count(*) OVER (ORDER BY ts RANGE BETWEEN INTERVAL 500 MICROSECOND PRECEDING \
             AND CURRENT ROW) AS w, count(*) OVER (ORDER BY ts RANGE BETWEEN INTERVAL 1 MILLISECOND \
             PRECEDING AND INTERVAL 500 MICROSECOND FOLLOWING) AS x FROM t ORDER BY i";
    assert_eq!(sql_csv_on(&file, q), "i,w,x\n1,1,1\n2,1,2\n3,1,1\n4,1,1\n");
    // In a filter, as the scan reads it.
    let q = format!("SELECT count(*) AS n FROM t WHERE ts >= {half} OR ts = {half}");
    assert_eq!(sql_csv_on(&file, &q), "n\n1\n");
    // A CSV's timestamps without a fraction are read in seconds.
    let csv = tmp.path().join("s.csv");
    std::fs::write(&csv, "i,ts\n1,2024-01-02 03:04:05\n").unwrap();
    let q = "SELECT ts + INTERVAL 500 MILLISECOND AS a, ts < TIMESTAMP '2024-01-02 03:04:05.5' AS b, \
             ts = TIMESTAMP '2024-01-02 03:04:05.5' AS c FROM t";
    assert_eq!(sql_csv_on(&csv, q), "a,b,c\n2024-01-02T03:04:05.500,true,false\n");
}

/// A time of day of microseconds (a Parquet `TIME` as DuckDB and pyarrow write it) or of
/// milliseconds compared with `TIME '...'` (nanoseconds) or a text, in a comparison, a
/// `BETWEEN`, an `IN`, and plus an interval: as in DuckDB (each expected value DuckDB 2.0.1's).
/// DataFusion refused to compare times of different units ("Cannot infer common argument type
/// for comparison operation Time64(µs) > Time64(ns)"), cut a text to the column's milliseconds
/// (`tm = '03:04:05.0005'` held for `03:04:05.000`) and kept them in a sum with an interval.
#[test]
fn a_time_column_compares_with_a_time_of_any_unit() {
    use datafusion::arrow::array::{Time32MillisecondArray, Time64MicrosecondArray};
    let tmp = tempfile::tempdir().unwrap();
    // 03:04:05.000 and 03:04:05.001, in microseconds and in milliseconds.
    let us = Time64MicrosecondArray::from(vec![Some(11_045_000_000), Some(11_045_001_000), None]);
    let ms = Time32MillisecondArray::from(vec![Some(11_045_000), Some(11_045_001), None]);
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, false),
            Field::new("us", us.data_type().clone(), true),
            Field::new("ms", ms.data_type().clone(), true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(us),
            Arc::new(ms),
        ],
    )
    .unwrap();
    let file = tmp.path().join("t.parquet");
    write_batch(&file, &batch);
    let q = "SELECT i, us > TIME '03:04:05', TIME '03:04:05.0005' < us AS b, us = '03:04:05.001' AS c, \
             ms = TIME '03:04:05.0005' AS d, ms >= TIME '03:04:05.0005' AS e, ms = '03:04:05.0005' AS f, \
             us = ms AS g, us BETWEEN TIME '03:04:05.0001' AND '03:04:05.0011' AS h, \
             ms IN (TIME '03:04:05.001', TIME '03:04:05.0005') AS k, ms NOT IN (TIME '03:04:05.0005') AS l, \
             ms + INTERVAL 1 MICROSECOND AS m, INTERVAL 1 HOUR + us AS n FROM t ORDER BY i";
    assert_eq!(
        sql_csv_on(&file, q),
        "i,us > TIME '03:04:05',b,c,d,e,f,g,h,k,l,m,n\n\
         1,false,false,false,false,false,false,true,false,false,true,03:04:05.000001,04:04:05\n\
         2,true,true,true,false,true,false,true,true,true,true,03:04:05.001001,04:04:05.001\n\
         3,,,,,,,,,,,,\n"
    );
}
