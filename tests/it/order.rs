//! Input order without `--sorted`: sorted files that do not say so stream without a sort and
//! are checked as rows come; at the first row out of order the shard runs again with a sort
//! (never wrong output); footers whose statistics show disorder go to the sort at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::WriterProperties;

use crate::common::*;

const FALLBACK: &str = "the input is not sorted, so the shard runs again with a sort";

/// Every row of the dataset in `dir`, in file order.
fn all_rows(dir: &Path) -> RecordBatch {
    let batches: Vec<RecordBatch> = parts(dir).iter().flat_map(|p| read_parquet(p)).collect();
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// Writes `rows` in the order `order` to `to/data.parquet` in row groups of `group_rows`,
/// declaring `sorting_columns` (generation id, segment index) or not.
fn rewrite(rows: &RecordBatch, order: Vec<u32>, to: &Path, declare: bool, group_rows: usize) -> PathBuf {
    let out = take_record_batch(rows, &UInt32Array::from(order)).unwrap();
    std::fs::create_dir_all(to).unwrap();
    write_file(&out, &to.join("data.parquet"), declare, group_rows);
    to.to_path_buf()
}

/// Writes `rows` to `path` in row groups of `group_rows`, declaring `sorting_columns`
/// (generation id, segment index) or not.
fn write_file(rows: &RecordBatch, path: &Path, declare: bool, group_rows: usize) {
    let asc = |i| SortingColumn {
        column_idx: i,
        descending: false,
        nulls_first: false,
    };
    let mut props = WriterProperties::builder().set_max_row_group_row_count(Some(group_rows));
    if declare {
        props = props.set_sorting_columns(Some(vec![asc(0), asc(1)]));
    }
    write_with(rows, path, props.build());
}

/// Writes `rows` to `path` with the writer properties `props`.
fn write_with(rows: &RecordBatch, path: &Path, props: WriterProperties) {
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), rows.schema(), Some(props)).unwrap();
    w.write(rows).unwrap();
    w.close().unwrap();
}

/// 20k generated segments in one sorted file that does not declare its order (in `dir`), and
/// all their rows.
fn one_undeclared_file(dir: &Path) -> (PathBuf, RecordBatch) {
    generate_with(dir, 20_000, 1, &["--undeclared"]);
    (dir.to_path_buf(), all_rows(dir))
}

/// `rows` as they are (in key order), in row groups of 3000 rows, in `to`: as writers write
/// it, generations running from one row group into the next.
fn in_row_groups(rows: &RecordBatch, to: &Path) -> PathBuf {
    rewrite(rows, (0..rows.num_rows() as u32).collect(), to, false, 3000)
}

/// `rows` with two rows near the end swapped, in row groups of 3000 rows, in `to`: out of
/// order where no footer's statistics show it.
fn late_disorder(rows: &RecordBatch, to: &Path) -> PathBuf {
    let n = rows.num_rows();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.swap(n - 5, n - 3);
    rewrite(rows, order, to, false, 3000)
}

/// Each segment file's (first, last) generation id, in file name order.
fn id_ranges(out: &Path) -> Vec<(String, String)> {
    parts(&out.join("segments"))
        .iter()
        .map(|p| {
            let batches = read_parquet(p);
            let b = concat_batches(&batches[0].schema(), &batches).unwrap();
            let ids = str_col(&b, "generation_id");
            (ids[0].clone(), ids[ids.len() - 1].clone())
        })
        .collect()
}

/// Runs the job on the sorted input `data` at one thread and at `threads`, into
/// `tmp/{name}-1` and `tmp/{name}-{threads}`, and checks what key ranges promise: no fallback to
/// the sort, the same rows bit for bit (the pieces, and so the batches, are the same whatever
/// the threads), and one output file per range, in key order, the files' id ranges apart.
/// Returns the two outputs, the run at `threads` and its files' (first, last) ids, sorted.
fn same_rows_in_ranges(
    tmp: &Path,
    data: &Path,
    threads: usize,
    name: &str,
) -> (PathBuf, PathBuf, std::process::Output, Vec<(String, String)>) {
    let (one, many) = (
        tmp.join(format!("{name}-1")),
        tmp.join(format!("{name}-{threads}")),
    );
    run_ok(
        &[data],
        &demo_model(),
        &one,
        &["--provider", "cpu", "--threads", "1"],
    );
    let t = threads.to_string();
    let o = run_ok(
        &[data],
        &demo_model(),
        &many,
        &["--provider", "cpu", "--threads", &t],
    );
    assert!(!stderr(&o).contains(FALLBACK), "{name}: {}", stderr(&o));
    assert_same_rows(
        &rows_by_key(&read_segments(&many)),
        &rows_by_key(&read_segments(&one)),
        name,
    );
    let s = summary(&many);
    assert_eq!(s["input_order"], "detected", "{name}");
    assert_eq!(s["output_files"], threads, "{name}");
    let mut ranges = id_ranges(&many);
    ranges.sort();
    assert_eq!(ranges.len(), threads, "{name}");
    assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "{name}: {ranges:?}");
    (one, many, o, ranges)
}

#[test]
fn sorted_files_that_do_not_declare_it_stream_without_a_sort() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("undeclared");
    generate_with(&input, 20_000, 2, &["--undeclared"]);
    let plan = explain(&input, &[]);
    assert!(
        plan.contains("SortedLagExec") && !plan.contains("SortExec"),
        "{plan}"
    );
    let out = tmp.path().join("out");
    let o = run_ok(&[&input], &demo_model(), &out, &["--provider", "cpu"]);
    assert!(!stderr(&o).contains(FALLBACK), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(s["input_order"], "detected");
    assert_eq!(s["input_sorted"], true);
    assert_eq!(s["spilled_bytes"], 0);
    // The same plan as when the order is declared: the same output, bit for bit.
    let declared = tmp.path().join("declared");
    run_ok(
        &[&input],
        &demo_model(),
        &declared,
        &["--provider", "cpu", "--sorted"],
    );
    assert_eq!(summary(&declared)["input_order"], "declared");
    assert_same_rows(
        &rows_by_key(&read_segments(&out)),
        &rows_by_key(&read_segments(&declared)),
        "detected vs declared",
    );
}

#[test]
fn a_late_row_out_of_order_reruns_the_shard_with_a_sort_and_the_output_is_right() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("undeclared");
    generate_with(&input, 20_000, 2, &["--undeclared"]);
    let reference = tmp.path().join("reference");
    run_ok(&[&input], &demo_model(), &reference, &["--provider", "cpu"]);
    let expected = read_segments(&reference);
    let rows = all_rows(&input);
    let n = rows.num_rows() as u32;
    // Late in the file: the last generation's segments 0 and 2 change places (within a
    // generation), and, declared sorted by the footer, two generations' first rows.
    let mut late: Vec<u32> = (0..n).collect();
    let last_gen_start = {
        let gids = str_col(&rows, "generation_id");
        gids.iter().position(|g| *g == gids[n as usize - 1]).unwrap() as u32
    };
    late.swap(last_gen_start as usize, last_gen_start as usize + 2);
    let mut across: Vec<u32> = (0..n).collect();
    across.swap(n as usize - 200, n as usize - 1);
    for (name, order, declare, flags) in [
        ("within", late.clone(), false, vec![]),
        ("within-2-shards", late, false, vec!["--shards", "2"]),
        ("across-declared", across, true, vec![]),
    ] {
        let data = rewrite(
            &rows,
            order,
            &tmp.path().join(format!("in-{name}")),
            declare,
            1 << 20,
        );
        let out = tmp.path().join(format!("out-{name}"));
        let mut args = vec!["--provider", "cpu"];
        args.extend(flags);
        let o = run_ok(&[&data], &demo_model(), &out, &args);
        assert!(stderr(&o).contains(FALLBACK), "{name}: {}", stderr(&o));
        assert_eq!(summary(&out)["input_order"], "sorted", "{name}");
        assert_eq!(summary(&out)["n_segments"], 20_000, "{name}");
        // Nothing of the abandoned pass is left: every row once (rows_by_key asserts no
        // duplicates), targets exact, the model's columns as the sorted run's batches give them.
        let got = read_segments(&out);
        assert_eq!(got.num_rows(), 20_000, "{name}");
        assert_same_output(&got, &expected, 1e-6, name);
        assert!(
            !out.join(".segscore-staging").exists() && out.join("_SUCCESS").exists(),
            "{name}"
        );
    }
    // Declared by the user, the same disorder is an error naming the rows.
    let data = tmp.path().join("in-within");
    let out = tmp.path().join("out-flag");
    let o = run(&[&data], &demo_model(), &out, &["--provider", "cpu", "--sorted"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("declared sorted"), "{}", stderr(&o));
    assert_no_output(&out);
}

#[test]
fn footer_statistics_that_show_disorder_go_straight_to_the_sort() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, rows) = one_undeclared_file(&tmp.path().join("undeclared"));
    // Whole generations in reverse order, in row groups of 4096 rows: each row group's
    // generation ids come before the previous one's.
    let gids = str_col(&rows, "generation_id");
    let mut starts: Vec<usize> = (0..gids.len())
        .filter(|&i| i == 0 || gids[i] != gids[i - 1])
        .collect();
    starts.push(gids.len());
    let order: Vec<u32> = starts
        .windows(2)
        .rev()
        .flat_map(|w| (w[0] as u32)..(w[1] as u32))
        .collect();
    let data = rewrite(&rows, order, &tmp.path().join("reversed"), false, 4096);
    let plan = explain(&data, &[]);
    assert!(plan.contains("SortExec"), "{plan}");
    let out = tmp.path().join("out");
    let o = run_ok(&[&data], &demo_model(), &out, &["--provider", "cpu"]);
    assert!(!stderr(&o).contains(FALLBACK), "{}", stderr(&o));
    assert_eq!(summary(&out)["input_order"], "sorted");
    let reference = tmp.path().join("reference");
    run_ok(&[&input], &demo_model(), &reference, &["--provider", "cpu"]);
    assert_same_output(
        &read_segments(&out),
        &read_segments(&reference),
        1e-6,
        "reversed vs sorted",
    );
}

#[test]
fn sorted_input_is_cut_into_key_ranges_that_run_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, rows) = one_undeclared_file(&tmp.path().join("generated"));
    let n = rows.num_rows();
    // As writers write it: row groups of a fixed number of rows (3000 here), so generations run
    // from one row group into the next; and the same rows in two files, one generation
    // starting in the first and ending in the second.
    let one = in_row_groups(&rows, &tmp.path().join("one"));
    let two = tmp.path().join("two");
    std::fs::create_dir_all(&two).unwrap();
    let gids = str_col(&rows, "generation_id");
    let split = (n / 2..n).find(|&i| gids[i] != gids[i - 1]).unwrap() + 1;
    assert_eq!(
        gids[split - 1],
        gids[split],
        "the generation runs on into the second file"
    );
    write_file(&rows.slice(0, split), &two.join("a.parquet"), false, 3000);
    write_file(&rows.slice(split, n - split), &two.join("b.parquet"), false, 3000);
    for (name, data) in [("one file", one), ("two files", two)] {
        // Three ranges, one per thread, windowed where they are read: no merge, no sort.
        let plan = explain(&data, &["--threads", "3"]);
        assert!(
            plan.contains("KeyRangeExec: Range([generation_id@0 ASC NULLS LAST]"),
            "{name}: {plan}"
        );
        assert!(plan.contains("], 3)"), "{name}: {plan}");
        assert!(
            !plan.contains("RepartitionExec") && !plan.contains("SortExec"),
            "{name}: {plan}"
        );
        let (one_thread, three, _, _) = same_rows_in_ranges(tmp.path(), &data, 3, name);
        let (s1, s3) = (summary(&one_thread), summary(&three));
        assert_eq!(s3["n_generations"], s1["n_generations"], "{name}");
        assert_eq!(s3["n_segments"], 20_000, "{name}");
        // The evaluation in the pass: one row per generation, as with one thread.
        let g = |out: &Path| str_col(&read_parts(&out.join("generations")), "generation_id").len();
        assert_eq!(g(&three), g(&one_thread), "{name}");
        assert_eq!(g(&three) as u64, s3["n_generations"].as_u64().unwrap(), "{name}");
    }
    // A row out of order within the last range: the shard runs again with a sort, and the
    // output is right; with --sorted it is an error.
    let disordered = late_disorder(&rows, &tmp.path().join("disordered"));
    let out = tmp.path().join("disordered-out");
    let o = run_ok(
        &[&disordered],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--threads", "3"],
    );
    assert!(stderr(&o).contains(FALLBACK), "{}", stderr(&o));
    assert_eq!(summary(&out)["input_order"], "sorted");
    assert_same_output(
        &read_segments(&out),
        &read_segments(&tmp.path().join("one file-1")),
        1e-6,
        "disordered",
    );
    let o = run(
        &[&disordered],
        &demo_model(),
        &tmp.path().join("flag"),
        &["--provider", "cpu", "--threads", "3", "--sorted"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("declared sorted"), "{}", stderr(&o));
}

#[test]
fn a_file_of_one_large_row_group_is_cut_inside_and_runs_on_every_thread() {
    // As pyarrow and pandas write a file of up to 1Mi rows: one row group. It is cut inside
    // at generation boundaries past every 64Ki rows (here once, of 70k rows).
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("one-row-group");
    generate_with(&data, 70_000, 1, &["--undeclared", "--row-group-rows", "70000"]);
    let rows = all_rows(&data);
    let row_groups = |dir: &Path| -> Vec<i64> {
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let reader = SerializedFileReader::new(std::fs::File::open(&parts(dir)[0]).unwrap()).unwrap();
        let meta = reader.metadata();
        (0..meta.num_row_groups())
            .map(|i| meta.row_group(i).num_rows())
            .collect()
    };
    assert_eq!(row_groups(&data), vec![70_000], "generate --row-group-rows");
    let plan = explain(&data, &["--threads", "2"]);
    assert!(
        plan.contains("KeyRangeExec: Range([generation_id@0 ASC NULLS LAST]") && plan.contains("], 2)"),
        "{plan}"
    );
    assert!(
        !plan.contains("RepartitionExec") && !plan.contains("SortExec"),
        "{plan}"
    );
    let (one, two, o_two, ranges) = same_rows_in_ranges(tmp.path(), &data, 2, "one row group");
    assert_eq!(summary(&two)["n_segments"], 70_000);
    // The second range starts at the first generation boundary past 64Ki rows.
    let gids = str_col(&rows, "generation_id");
    let cut = (64 * 1024..gids.len()).find(|&i| gids[i] != gids[i - 1]).unwrap();
    assert_eq!(
        ranges.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        vec![gids[0].clone(), gids[cut].clone()]
    );
    // Without an offset index (as pyarrow, pandas and DuckDB write by default) each piece would
    // read the whole row group: it stays one piece, one range.
    let unindexed = tmp.path().join("unindexed");
    std::fs::create_dir_all(&unindexed).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows.num_rows()))
        .set_statistics_enabled(datafusion::parquet::file::properties::EnabledStatistics::Chunk)
        .set_offset_index_disabled(true)
        .build();
    write_with(&rows, &unindexed.join("data.parquet"), props);
    let plan = explain(&unindexed, &["--threads", "2"]);
    assert!(
        plan.contains("KeyRangeExec: Range([generation_id@0 ASC NULLS LAST]"),
        "{plan}"
    );
    assert!(plan.contains("], 1)"), "{plan}");
    // The run says why, naming the file, and its output is the same.
    let out = tmp.path().join("out-unindexed");
    let o = run_ok(
        &[&unindexed],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--threads", "2"],
    );
    let err = stderr(&o);
    assert!(
        err.contains("without a page index")
            && err.contains("write_page_index=True")
            && err.contains("data.parquet"),
        "{err}"
    );
    assert_same_rows(
        &rows_by_key(&read_segments(&out)),
        &rows_by_key(&read_segments(&one)),
        "unindexed",
    );
    // Where the input was cut inside (the indexed file), nothing is said.
    assert!(
        !stderr(&o_two).contains("without a page index"),
        "{}",
        stderr(&o_two)
    );
}

#[test]
fn ranges_are_balanced_inside_row_groups_whatever_the_threads() {
    // 140k rows in row groups of 40k: at two threads the nearest row-group boundary to half the
    // rows is 80k (57% of them); the ranges start instead at the first generation boundary
    // from each k-th of the rows on (k up to 4), cut inside the row group, at any thread count
    // (so the batches, and the scores, are the same).
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("row-groups");
    generate_with(&data, 140_000, 1, &["--undeclared", "--row-group-rows", "40000"]);
    let gids = str_col(&all_rows(&data), "generation_id");
    let boundary = |from: usize| (from..gids.len()).find(|&i| gids[i] != gids[i - 1]).unwrap();
    for (threads, starts) in [(2, vec![70_000]), (3, vec![46_666, 93_333])] {
        let name = format!("{threads} threads");
        let (_, many, _, ranges) = same_rows_in_ranges(tmp.path(), &data, threads, &name);
        let expected: Vec<String> = std::iter::once(gids[0].clone())
            .chain(starts.iter().map(|&s| gids[boundary(s)].clone()))
            .collect();
        assert_eq!(
            ranges.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            expected,
            "{name}"
        );
        assert_eq!(summary(&many)["n_segments"], 140_000, "{name}");
    }
}

#[test]
fn segscore_sql_reads_a_sorted_table_without_sorting_it_and_checks_the_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, rows) = one_undeclared_file(&tmp.path().join("generated"));
    let n = rows.num_rows();
    let query = "SELECT generation_id, segment_index, cumulative_score - COALESCE(LAG(cumulative_score) OVER (PARTITION BY generation_id ORDER BY segment_index), 0.0) AS target_score FROM t";
    // JSON lines, sorted, from stdout (streamed as they come, so the plan sorts: the reference)
    // or from a file (--to), and the log.
    let sql = |data: &Path, to: Option<&Path>| -> (Vec<String>, String) {
        let table = format!("t={}", data.join("data.parquet").display());
        let mut args = vec!["sql", "--threads", "2", "--table", &table, "--format", "json"];
        let file = to.map(|p| p.to_str().unwrap().to_string());
        if let Some(f) = &file {
            args.extend(["--to", f.as_str()]);
        }
        args.push(query);
        let o = segscore(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = match to {
            Some(p) => std::fs::read_to_string(p).unwrap(),
            None => String::from_utf8(o.stdout.clone()).unwrap(),
        };
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines.sort();
        (lines, stderr(&o))
    };
    let sorted = in_row_groups(&rows, &tmp.path().join("sorted"));
    let (want, log) = sql(&sorted, None);
    assert_eq!(want.len(), n);
    assert!(!log.contains("read as sorted"), "{log}");
    // To a file, the sorted table is read as sorted, in key ranges: the same rows.
    let (got, log) = sql(&sorted, Some(&tmp.path().join("sorted.json")));
    assert!(
        log.contains("read as sorted") && !log.contains("runs again"),
        "{log}"
    );
    assert_eq!(got, want, "read as sorted vs sorted by the plan");
    // A row out of order late in the file, which the footers cannot show: the first attempt
    // fails at that row and the query runs again with the sort; the result is right.
    let late = late_disorder(&rows, &tmp.path().join("late"));
    let (got, log) = sql(&late, Some(&tmp.path().join("late.json")));
    assert!(
        log.contains("read as sorted") && log.contains("runs again, sorting the table"),
        "{log}"
    );
    // The log names the row in the table's terms, not the run's (`--sorted`).
    assert!(
        log.contains("in the order the plan sorts the table by") && !log.contains("--sorted"),
        "{log}"
    );
    assert_eq!(got, want, "after the fallback");
}

#[test]
fn segscore_sql_lag_with_an_offset_and_a_default_gives_the_rows_computed_here() {
    // LAG runs batch by batch on the sorted table (segscore's operator, not DataFusion's):
    // every value checked against the rows' own order, row groups of 3000 rows cutting
    // generations.
    let tmp = tempfile::tempdir().unwrap();
    let (_, rows) = one_undeclared_file(&tmp.path().join("generated"));
    let sorted = in_row_groups(&rows, &tmp.path().join("sorted"));
    let to = tmp.path().join("lag.parquet");
    let table = format!("t={}", sorted.join("data.parquet").display());
    let query = "SELECT generation_id, segment_index, \
        LAG(cumulative_score, 2, -1.0) OVER w AS two_back, LAG(segment_index) OVER w AS prev \
        FROM t WINDOW w AS (PARTITION BY generation_id ORDER BY segment_index)";
    let o = segscore(&[
        "sql",
        "--threads",
        "2",
        "--table",
        &table,
        "--format",
        "parquet",
        "--to",
        to.to_str().unwrap(),
        query,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("read as sorted"), "{}", stderr(&o));
    let got = read_parquet(&to);
    let got = concat_batches(&got[0].schema(), &got).unwrap();
    let (gid, seg, cum) = (
        str_col(&rows, "generation_id"),
        i64_col(&rows, "segment_index"),
        f64_col(&rows, "cumulative_score"),
    );
    // The input rows are in key order: row i's lags are rows i-2 and i-1 of its generation.
    let mut want: BTreeMap<(String, i64), (f64, Option<i64>)> = BTreeMap::new();
    for i in 0..gid.len() {
        let back = |k: usize| i.checked_sub(k).filter(|&j| gid[j] == gid[i]);
        let two = back(2).map_or(-1.0, |j| cum[j]);
        want.insert((gid[i].clone(), seg[i]), (two, back(1).map(|j| seg[j])));
    }
    let prev = got
        .column_by_name("prev")
        .unwrap()
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int32Array>()
        .unwrap();
    let (g, s, two) = (
        str_col(&got, "generation_id"),
        i64_col(&got, "segment_index"),
        f64_col(&got, "two_back"),
    );
    assert_eq!(g.len(), want.len());
    let firsts = (0..g.len()).filter(|&i| prev.is_null(i)).count();
    assert!(firsts > 100 && firsts < g.len() / 2, "{firsts} generations");
    for i in 0..g.len() {
        let p = (!prev.is_null(i)).then(|| prev.value(i) as i64);
        assert_eq!(
            want[&(g[i].clone(), s[i])],
            (two[i], p),
            "row {i}: {} {}",
            g[i],
            s[i]
        );
    }
}
