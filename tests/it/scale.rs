//! Streaming at scale: sorted input streams without a sort, unsorted input sorts under a
//! memory limit (spilling), output is the same whatever the threads, files roll, progress.

use std::path::Path;

use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

use crate::common::*;

fn sorting_columns(part: &Path) -> Vec<(i32, bool)> {
    let r = SerializedFileReader::new(std::fs::File::open(part).unwrap()).unwrap();
    let rg = r.metadata().row_group(0);
    rg.sorting_columns()
        .map(|v| v.iter().map(|c| (c.column_idx, c.descending)).collect())
        .unwrap_or_default()
}

#[test]
fn sorted_input_streams_and_outputs_read_back_streaming() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("sorted");
    generate(&input, 20_000, 3, false);
    // The generated files declare sorting_columns: no flag needed, and no sort in the plan.
    let plan = explain(&input, &[]);
    assert!(plan.contains("SortedLagExec"), "{plan}");
    assert!(
        !plan.contains("SortExec"),
        "sorted input must not be sorted again:\n{plan}"
    );
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--keep", "input_ids"],
    );
    let s = summary(&out);
    assert_eq!(s["input_sorted"], true);
    assert_eq!(s["n_segments"], 20_000);
    assert_eq!(s["spilled_bytes"], 0);
    // segscore's own outputs record their order, so they are read back streaming too.
    for part in parts(&out.join("segments")) {
        assert_eq!(
            sorting_columns(&part),
            vec![(0, false), (1, false)],
            "{}",
            part.display()
        );
    }
    let plan = explain(&out.join("segments"), &[]);
    assert!(!plan.contains("SortExec"), "{plan}");
    let out2 = tmp.path().join("out2");
    // Read back, the earlier results are replaced by this run's: same model, same values.
    run_ok(
        &[&out.join("segments")],
        &demo_model(),
        &out2,
        &["--provider", "cpu", "--keep", "input_ids"],
    );
    assert_eq!(summary(&out2)["input_sorted"], true);
    assert_same_output(&read_segments(&out), &read_segments(&out2), 1e-6, "read back");
}

#[test]
fn unsorted_input_is_sorted_under_a_memory_limit_with_spilling() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("shuffled");
    generate(&input, 150_000, 3, true);
    let big = tmp.path().join("big");
    run_ok(&[&input], &demo_model(), &big, &["--provider", "cpu"]);
    assert_eq!(summary(&big)["input_sorted"], false);
    // Nothing says the files are unsorted: the first rows out of order send the run to the sort.
    assert_eq!(summary(&big)["input_order"], "sorted");
    assert_eq!(summary(&big)["spilled_bytes"], 0);
    let small = tmp.path().join("small");
    let spill = tmp.path().join("spill");
    run_ok(
        &[&input],
        &demo_model(),
        &small,
        &[
            "--provider",
            "cpu",
            "--memory-limit",
            "24MiB",
            "--spill-dir",
            spill.to_str().unwrap(),
        ],
    );
    assert!(
        summary(&small)["spilled_bytes"].as_u64().unwrap() > 0,
        "a 24 MiB limit must spill"
    );
    assert_same_rows(
        &rows_by_key(&read_segments(&big)),
        &rows_by_key(&read_segments(&small)),
        "memory limit",
    );
    // Too little memory is a clear error, not a crash.
    let tiny = tmp.path().join("tiny");
    let o = run(
        &[&input],
        &demo_model(),
        &tiny,
        &["--provider", "cpu", "--memory-limit", "4MiB"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("out of memory under --memory-limit 4.0 MiB"),
        "{}",
        stderr(&o)
    );
    assert_no_output(&tiny);
}

#[test]
fn input_declared_sorted_but_not_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("shuffled");
    generate(&input, 5_000, 2, true);
    let out = tmp.path().join("out");
    let o = run(&[&input], &demo_model(), &out, &["--provider", "cpu", "--sorted"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("declared sorted") && err.contains("comes after generation_id=gen-"),
        "{err}"
    );
    // The out-of-order row is named by file and row: that row holds the key the error gives.
    let key = err.split("but generation_id=").nth(1).unwrap();
    let (gid, rest) = key.split_once(", segment_index=").unwrap();
    let seg = rest.split(' ').next().unwrap();
    let named = named_rows(&err);
    assert_eq!(named.len(), 1, "{err}");
    assert!(named[0].0.starts_with(&input), "{err}");
    assert_eq!(
        key_at(&named[0].0, named[0].1),
        (gid.to_string(), seg.to_string())
    );
    assert_no_output(&out);
}

#[test]
fn output_is_the_same_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("shuffled");
    generate(&input, 20_000, 2, true);
    let mut outputs = Vec::new();
    for (i, flags) in [
        vec!["--threads", "1"],
        vec!["--threads", "2"],
        vec!["--threads", "3"],
        // Past the cores of any machine the suite runs on: 48 partitions and sessions, the
        // CPU pool at the cores.
        vec!["--threads", "48"],
    ]
    .iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("out{i}"));
        let mut args = vec!["--provider", "cpu"];
        args.extend(flags.iter().copied());
        run_ok(&[&input], &demo_model(), &out, &args);
        outputs.push(rows_by_key(&read_segments(&out)));
    }
    assert_eq!(outputs[0].len(), 20_000);
    // Bit for bit: the model's batches are cut from the scan's, whatever the threads.
    assert_same_rows(&outputs[0], &outputs[1], "--threads 1 vs 2");
    assert_same_rows(&outputs[0], &outputs[2], "--threads 1 vs 3");
    assert_same_rows(&outputs[0], &outputs[3], "--threads 1 vs 48");
    let out = tmp.path().join("too-many");
    let o = run(&[&input], &demo_model(), &out, &["--threads", "1025"]);
    assert_fails(&o, 2, "1025 is not in 1..=1024");
    assert!(!out.exists());
}

#[test]
fn output_files_roll_at_max_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("sorted");
    generate(&input, 12_000, 2, false);
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--max-rows-per-file", "2500"],
    );
    let files = parts(&out.join("segments"));
    assert!(files.len() >= 5, "{} files", files.len());
    let mut total = 0;
    for f in &files {
        let n: usize = read_parquet(f).iter().map(|b| b.num_rows()).sum();
        assert!(n <= 2500 && n > 0, "{}: {n} rows", f.display());
        total += n;
    }
    assert_eq!(total, 12_000);
    assert_eq!(summary(&out)["output_files"], files.len());
}

#[test]
fn progress_is_logged_when_not_a_terminal_and_silenced_by_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("sorted");
    generate(&input, 60_000, 2, false);
    let out = tmp.path().join("out");
    let faults = Faults::new();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args([
        "run",
        "--provider",
        "cpu",
        "--progress-interval",
        "0.02",
        "--threads",
        "1",
        "-i",
    ])
    .arg(&input)
    .arg("-m")
    .arg(demo_model())
    .arg("-o")
    .arg(&out)
    .env("NO_COLOR", "1")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    // Held after its first batch until a progress line has been logged: however fast the
    // machine, the run lasts long enough for one.
    faults.apply(&mut cmd, Some("batch-written"));
    let mut child = cmd.spawn().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let found = line.contains("progress") && line.contains("total=60000");
        seen.push(line);
        if found {
            break;
        }
    }
    assert!(seen.last().is_some_and(|l| l.contains("progress")), "{seen:?}");
    faults.release("batch-written");
    lines.for_each(drop); // the rest of the log
    assert!(child.wait().unwrap().success());
    assert_eq!(summary(&out)["n_segments"], 60000);
    let out2 = tmp.path().join("out2");
    let o = run_ok(
        &[&input],
        &demo_model(),
        &out2,
        &["--provider", "cpu", "--progress-interval", "0.02", "-q"],
    );
    assert_eq!(stderr(&o), "", "--quiet prints nothing on stderr");
    assert!(String::from_utf8_lossy(&o.stdout).is_empty());
}

/// A folder of many small files (a job that writes one per generation) runs under the usual
/// limit of open files: DataFusion asks for every input path's metadata at once when it plans
/// the scan, and without a cap on the store's requests 5,000 files held some 2,000 open.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn many_small_files_run_under_a_low_open_file_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("many");
    std::fs::create_dir_all(&input).unwrap();
    let files = 1000;
    for g in 0..files {
        let gid = format!("g{g:04}");
        let rows: Vec<Row> = (0..3)
            .map(|s| {
                row(
                    &gid,
                    s,
                    0.1 * (g % 7) as f64 + 0.2 * s as f64,
                    &[1 + (g % 50) as i64, 2 + s],
                )
            })
            .collect();
        write_rows(&input.join(format!("part-{g:04}.parquet")), &rows);
    }
    let out = tmp.path().join("out");
    let args = run_args(&[&input], &demo_model(), &out, &["--provider", "cpu"]);
    let o = run_limited(&args, libc::RLIMIT_NOFILE, 256);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(s["n_segments"], 3 * files);
    assert_eq!(s["n_generations"], files);
    assert_eq!(s["input_files"], files);
}
