//! Shared helpers: writing input tables, running the binary, reading outputs back.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;

pub const BIN: &str = env!("CARGO_BIN_EXE_segscore");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn test_model(name: &str) -> PathBuf {
    repo().join("tests/data").join(name)
}

pub fn demo_model() -> PathBuf {
    repo().join("models/reward_small.onnx")
}

/// One input row. `ids: None` writes a null list.
#[derive(Clone, Debug)]
pub struct Row {
    pub gid: String,
    pub seg: i64,
    pub cum: Option<f64>,
    pub ids: Option<Vec<i64>>,
}

pub fn row(gid: &str, seg: i64, cum: f64, ids: &[i64]) -> Row {
    Row {
        gid: gid.to_string(),
        seg,
        cum: Some(cum),
        ids: Some(ids.to_vec()),
    }
}

/// Token ids the `affine_mean` test model maps to `score` exactly (to float32 precision):
/// score = mean(ids) * 0.001 - 1.
pub fn ids_for(score: f64) -> Vec<i64> {
    vec![((score + 1.0) * 1000.0).round() as i64]
}

/// Builds the standard table: generation_id (utf8), segment_index (int64),
/// cumulative_score (float64), input_ids (list<int64>), plus `note` (utf8, carried).
pub fn batch(rows: &[Row]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("generation_id", DataType::Utf8, false),
        Field::new("segment_index", DataType::Int64, false),
        Field::new("cumulative_score", DataType::Float64, true),
        Field::new(
            "input_ids",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
            true,
        ),
        Field::new("note", DataType::Utf8, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.gid.clone()))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.seg))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.cum))),
        Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
            rows.iter().map(|r| {
                r.ids
                    .as_ref()
                    .map(|v| v.iter().map(|&x| Some(x)).collect::<Vec<_>>())
            }),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| format!("{}#{}", r.gid, r.seg)),
        )),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

pub fn write_batch(path: &Path, batch: &RecordBatch) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    let f = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

pub fn write_rows(path: &Path, rows: &[Row]) {
    write_batch(path, &batch(rows));
}

/// `b` with the column `field` holding `values`: in place of `b`'s column of that name, else
/// after its columns.
pub fn with_column(b: &RecordBatch, field: Field, values: ArrayRef) -> RecordBatch {
    let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = b.columns().to_vec();
    match b.schema().index_of(field.name()) {
        Ok(i) => (fields[i], columns[i]) = (field, values),
        Err(_) => {
            fields.push(field);
            columns.push(values);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// Runs the binary with `args`, its soft limit of `resource` (`libc::RLIMIT_*`) lowered to
/// `soft`. A write past `RLIMIT_FSIZE` then fails with EFBIG (SIGXFSZ is ignored) instead of
/// killing the process.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn run_limited(args: &[String], resource: libc::__rlimit_resource_t, soft: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("ORT_DYLIB_PATH");
    // SAFETY: getrlimit, setrlimit and signal are async-signal-safe; the child only lowers its
    // own soft limit.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let mut r = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(resource, &mut r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            r.rlim_cur = soft.min(r.rlim_max);
            if libc::setrlimit(resource, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("run segscore")
}

/// `segscore sql --table TABLE --format csv QUERY`'s output; asserts it succeeded.
pub fn sql_csv(table: &str, query: &str) -> String {
    let o = segscore(&["sql", "-t", table, "--format", "csv", query]);
    assert!(o.status.success(), "{query}: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// `segscore sql -q --format csv -m MODEL QUERY`'s output (`reward_model()` with that model);
/// asserts it succeeded.
pub fn sql_csv_with_model(model: &Path, query: &str) -> String {
    let model = model.to_str().unwrap();
    let o = segscore(&["sql", "-q", "--format", "csv", "-m", model, query]);
    assert!(o.status.success(), "{query}: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// `segscore sql --format csv -m MODEL -t t=TABLE QUERY` (`reward_model()` over a table);
/// asserts it succeeded and returns it, for its output and its log.
pub fn sql_with_model_on(model: &Path, table: &Path, query: &str) -> Output {
    let table = format!("t={}", table.display());
    let o = segscore(&[
        "sql",
        "--format",
        "csv",
        "-m",
        model.to_str().unwrap(),
        "-t",
        &table,
        query,
    ]);
    assert!(o.status.success(), "{query}: {}", stderr(&o));
    o
}

pub fn segscore(args: &[&str]) -> Output {
    command(args).output().expect("run segscore")
}

/// `segscore ARGS` run in the folder `dir` (relative paths are a user's own there).
pub fn segscore_in<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Output {
    command(args).current_dir(dir).output().expect("run segscore")
}

/// The segscore binary with `args`, finding ONNX Runtime as a user's would, without colour.
pub fn command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("ORT_DYLIB_PATH").env("NO_COLOR", "1");
    cmd
}

/// `segscore sql --format csv QUERY` run in `dir` (the files it names are relative to it);
/// asserts it succeeded and returns its output.
pub fn sql_csv_in(dir: &Path, query: &str) -> String {
    let o = segscore_in(dir, &["sql", "--format", "csv", query]);
    assert!(o.status.success(), "{query}: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// `segscore sql --format csv` over one file or folder registered as table `t`; asserts it
/// succeeded and returns its output.
pub fn sql_csv_on(table: &Path, query: &str) -> String {
    let o = segscore(&[
        "sql",
        "--format",
        "csv",
        "--table",
        &format!("t={}", table.display()),
        query,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// Runs `segscore run` and asserts it succeeded.
pub fn run_ok(input: &[&Path], model: &Path, out: &Path, extra: &[&str]) -> Output {
    let o = run(input, model, out, extra);
    assert!(
        o.status.success(),
        "segscore failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub fn run(input: &[&Path], model: &Path, out: &Path, extra: &[&str]) -> Output {
    let args = run_args(input, model, out, extra);
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    segscore(&refs)
}

/// `segscore run`'s arguments for these inputs, model and output, then `extra`: for tests that
/// set up the process themselves.
pub fn run_args(input: &[&Path], model: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["run".into(), "--input".into()];
    args.extend(input.iter().map(|p| p.display().to_string()));
    args.extend([
        "--model".into(),
        model.display().to_string(),
        "--output".into(),
        out.display().to_string(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that a run exited with `code` and its stderr says `want`.
pub fn assert_fails(o: &Output, code: i32, want: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", stderr(o));
    assert!(stderr(o).contains(want), "{}", stderr(o));
}

/// Every Parquet part under `dir`, sorted by name.
pub fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// All rows of `<out>/segments`, as one batch.
pub fn read_segments(out: &Path) -> RecordBatch {
    read_parts(&out.join("segments"))
}

/// All rows of the part files in `dir`, as one batch.
pub fn read_parts(dir: &Path) -> RecordBatch {
    let files = parts(dir);
    assert!(!files.is_empty(), "no part files in {}", dir.display());
    let batches: Vec<RecordBatch> = files.iter().flat_map(|p| read_parquet(p)).collect();
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// An output row keyed by (generation_id, segment_index), with every float column.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRow {
    pub values: BTreeMap<String, f64>,
    pub text: BTreeMap<String, String>,
}

pub fn f64_col(b: &RecordBatch, name: &str) -> Vec<f64> {
    let a = cast(
        b.column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}")),
        &DataType::Float64,
    )
    .unwrap();
    a.as_primitive::<Float64Type>().values().to_vec()
}

pub fn str_col(b: &RecordBatch, name: &str) -> Vec<String> {
    let a = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let a = cast(a, &DataType::Utf8).unwrap();
    let s = a.as_string::<i32>();
    (0..s.len()).map(|i| s.value(i).to_string()).collect()
}

pub fn i64_col(b: &RecordBatch, name: &str) -> Vec<i64> {
    let a = cast(b.column_by_name(name).unwrap(), &DataType::Int64).unwrap();
    a.as_primitive::<Int64Type>().values().to_vec()
}

/// Output rows by key, every column as text (exact comparisons of whole outputs).
pub fn rows_by_key(b: &RecordBatch) -> BTreeMap<(String, i64), Vec<String>> {
    let gid = str_col(b, "generation_id");
    let seg = i64_col(b, "segment_index");
    let mut m = BTreeMap::new();
    for i in 0..b.num_rows() {
        let vals: Vec<String> = b
            .columns()
            .iter()
            .map(|c| datafusion::arrow::util::display::array_value_to_string(c, i).unwrap())
            .collect();
        assert!(
            m.insert((gid[i].clone(), seg[i]), vals).is_none(),
            "duplicate output row {:?}",
            (&gid[i], seg[i])
        );
    }
    m
}

/// A float column by key.
pub fn by_key(b: &RecordBatch, col: &str) -> BTreeMap<(String, i64), f64> {
    let gid = str_col(b, "generation_id");
    let seg = i64_col(b, "segment_index");
    let v = f64_col(b, col);
    (0..b.num_rows())
        .map(|i| ((gid[i].clone(), seg[i]), v[i]))
        .collect()
}

pub fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

/// Asserts a failed run left nothing that looks like output.
pub fn assert_no_output(out: &Path) {
    assert!(!out.join("_SUCCESS").exists(), "_SUCCESS left behind");
    assert!(parts(&out.join("segments")).is_empty(), "part files left behind");
    assert!(!out.join("summary.json").exists(), "summary.json left behind");
}

/// Asserts two outputs have the same rows and values, showing the first difference only.
pub fn assert_same_rows(
    a: &BTreeMap<(String, i64), Vec<String>>,
    b: &BTreeMap<(String, i64), Vec<String>>,
    what: &str,
) {
    assert_eq!(a.len(), b.len(), "{what}: row counts differ");
    for (k, va) in a {
        let vb = b.get(k).unwrap_or_else(|| panic!("{what}: row {k:?} missing"));
        assert_eq!(va, vb, "{what}: row {k:?} differs");
    }
}

/// The columns that come from the model's output.
pub fn model_columns() -> &'static [&'static str] {
    // Every output column but target_score comes from the model's score.
    &segscore::loss::OUTPUT_COLUMNS[1..]
}

/// Asserts two outputs hold the same rows: every column equal, except the model-derived ones,
/// which may differ by `tol` (ONNX Runtime rounds differently for differently shaped batches).
pub fn assert_same_output(a: &RecordBatch, b: &RecordBatch, tol: f64, what: &str) {
    assert_eq!(a.schema(), b.schema(), "{what}: schemas differ");
    for c in model_columns() {
        let (x, y) = (by_key(a, c), by_key(b, c));
        assert_eq!(x.len(), y.len(), "{what}: row counts differ");
        for (k, v) in &x {
            let w = y.get(k).unwrap_or_else(|| panic!("{what}: row {k:?} missing"));
            assert!((v - w).abs() <= tol, "{what}: {c} at {k:?}: {v} vs {w}");
        }
    }
    let keep: Vec<usize> = a
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !model_columns().contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let (ra, rb) = (
        rows_by_key(&a.project(&keep).unwrap()),
        rows_by_key(&b.project(&keep).unwrap()),
    );
    assert_same_rows(&ra, &rb, what);
}

/// Writes `segscore generate --text`'s data (sorted, in `files` files) for the bundled tokenizer
/// and model.
pub fn demo_text(dir: &Path, segments: u64, files: usize) {
    let o = segscore(&[
        "generate",
        "--text",
        "-o",
        dir.to_str().unwrap(),
        "--segments",
        &segments.to_string(),
        "--files",
        &files.to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The text columns of `segscore generate --text`'s data and the demo's separator.
pub const DEMO_TEXT: [&str; 6] = [
    "--text-col",
    "step",
    "--prompt-col",
    "prompt",
    "--segment-separator",
    "\n",
];

/// Writes a benchmark dataset with `segscore generate`.
pub fn generate(dir: &Path, segments: u64, files: usize, shuffled: bool) {
    generate_with(dir, segments, files, if shuffled { &["--shuffled"] } else { &[] });
}

/// Writes a benchmark dataset with `segscore generate` and these flags.
pub fn generate_with(dir: &Path, segments: u64, files: usize, flags: &[&str]) {
    let (segments, files, dir) = (segments.to_string(), files.to_string(), dir.display().to_string());
    let mut args = vec![
        "generate",
        "--output",
        &dir,
        "--segments",
        &segments,
        "--files",
        &files,
    ];
    args.extend_from_slice(flags);
    let o = segscore(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Every row of a batch as text, sorted (whole-output comparisons without a key).
pub fn sorted_rows(b: &RecordBatch) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = (0..b.num_rows())
        .map(|i| {
            b.columns()
                .iter()
                .map(|c| datafusion::arrow::util::display::array_value_to_string(c, i).unwrap())
                .collect()
        })
        .collect();
    v.sort();
    v
}

/// The fault-injection points of a run (`src/faults.rs`): a folder for the events log and the
/// hold markers, the environment that asks for them, and the waits on readiness signals.
pub struct Faults {
    pub dir: tempfile::TempDir,
}

impl Faults {
    pub fn new() -> Self {
        Faults {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Logs every point the run reaches; with `hold`, holds the run at that point.
    pub fn apply(&self, cmd: &mut Command, hold: Option<&str>) {
        cmd.env("SEGSCORE_FAULT_DIR", self.dir.path());
        match hold {
            Some(h) => cmd.env("SEGSCORE_HOLD_AT", h),
            None => cmd.env_remove("SEGSCORE_HOLD_AT"),
        };
    }

    /// Waits until the run is held at `point` (it created `point.held`); panics if it exits
    /// first. Deterministic: the run either reaches the point or ends.
    pub fn wait_held(&self, point: &str, child: &mut std::process::Child) {
        if !self.held_or_ended(point, child) {
            panic!("the run ended before it was held at {point}");
        }
    }

    /// Waits until the run is held at `point` (true) or has ended without reaching it (false).
    pub fn held_or_ended(&self, point: &str, child: &mut std::process::Child) -> bool {
        let held = self.dir.path().join(format!("{point}.held"));
        loop {
            if held.exists() {
                return true;
            }
            if child.try_wait().unwrap().is_some() {
                return held.exists();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Lets a run held at `point` go on.
    pub fn release(&self, point: &str) {
        std::fs::write(self.dir.path().join(format!("{point}.release")), b"").unwrap();
    }

    /// The points reached, in order.
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("events"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Sends `signal` to a child process.
pub fn signal(child: &std::process::Child, signal: i32) {
    // SAFETY: kill(2) on a child this test started and has not reaped.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// A Parquet file's key-value metadata.
pub fn parquet_metadata(path: &Path) -> BTreeMap<String, String> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// The physical plan `segscore run --explain` prints for `input` with the demo model.
pub fn explain(input: &Path, extra: &[&str]) -> String {
    let out = input.with_extension("unused");
    let mut args = vec!["--provider", "cpu", "--explain"];
    args.extend_from_slice(extra);
    let o = run(&[input], &demo_model(), &out, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The input rows a row-level error names ("(input row 3 of /in/a.parquet, counting from 0)",
/// "(input rows 3 of /in/a.parquet and 0 of /in/b.parquet, counting from 0)", "(input rows 3
/// and 5 of /in/a.parquet, ...)"), as (file, row).
pub fn named_rows(err: &str) -> Vec<(PathBuf, usize)> {
    let Some(at) = err.find("(input row") else {
        return Vec::new();
    };
    let rest = &err[at..];
    let rest = rest
        .strip_prefix("(input rows ")
        .or_else(|| rest.strip_prefix("(input row "))
        .unwrap();
    let list = &rest[..rest.find(", counting from 0)").expect("the rows' end")];
    // "3 of A and 0 of B", "3 and 5 of A": a row without its file is in the next one's.
    let mut named = Vec::new();
    let mut file: Option<PathBuf> = None;
    for one in list.split(" and ").collect::<Vec<_>>().into_iter().rev() {
        let row = match one.split_once(" of ") {
            Some((row, path)) => {
                file = Some(PathBuf::from(path));
                row
            }
            None => one,
        };
        named.push((
            file.clone().expect("ROW of FILE"),
            row.parse().expect("a row number"),
        ));
    }
    named.reverse();
    named
}

/// The (generation_id, segment_index) of row `row` (counted from 0) of the Parquet file at
/// `path`, as text.
pub fn key_at(path: &Path, row: usize) -> (String, String) {
    let batches = read_parquet(path);
    let all = concat_batches(&batches[0].schema(), &batches).unwrap();
    let text = |name: &str| {
        let c = cast(all.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
        c.as_string::<i32>().value(row).to_string()
    };
    (text("generation_id"), text("segment_index"))
}

/// The built-in job query with `WHERE condition` on its input (`g.day <> 3`), written to a
/// file in `dir` for `--query-file`.
pub fn job_query_where(dir: &Path, condition: &str) -> PathBuf {
    let path = dir.join("job_where.sql");
    let sql = segscore::pipeline::SEGMENT_SCORES_SQL.replace(
        "FROM generations AS g",
        &format!("FROM generations AS g WHERE {condition}"),
    );
    assert_ne!(
        sql,
        segscore::pipeline::SEGMENT_SCORES_SQL,
        "the job query reads `generations AS g`"
    );
    std::fs::write(&path, sql).unwrap();
    path
}

/// Every file under `dir`, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v.sort();
    v
}
