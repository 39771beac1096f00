//! Crash safety and `--resume`: runs stopped dead at random moments (aborted at a random one of
//! the points an uninterrupted run passes, or SIGKILLed while held at one) leave either a
//! complete output or one without `_SUCCESS` in which every file under a final name is whole;
//! `--resume` then finishes with exactly the rows and values of an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rand::{Rng, SeedableRng};

use crate::common::*;

const SHARDS: &str = "4";

fn job_args(input: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "run".into(),
        "-q".into(),
        "--provider".into(),
        "cpu".into(),
        "--shards".into(),
        SHARDS.into(),
        "--max-rows-per-file".into(),
        "4000".into(),
        "--threads".into(),
        "2".into(),
        "-i".into(),
        input.display().to_string(),
        "-m".into(),
        demo_model().display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn job(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(job_args(input, out, extra))
        .env_remove("ORT_DYLIB_PATH")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out
}

fn readable_parquet(p: &Path) -> Result<usize, String> {
    let f = std::fs::File::open(p).map_err(|e| e.to_string())?;
    let reader = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| e.to_string())?
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows = 0;
    for b in reader {
        rows += b.map_err(|e| e.to_string())?.num_rows();
    }
    Ok(rows)
}

/// The crash-safety contract, checked on what a killed run left.
fn check_left_behind(out: &Path, segments: u64, moment: &str) {
    if out.join("_SUCCESS").exists() {
        let s = summary(out);
        assert_eq!(
            s["n_segments"], segments,
            "{moment}: a complete output has every segment"
        );
        let rows: usize = parts(&out.join("segments"))
            .iter()
            .map(|p| readable_parquet(p).unwrap())
            .sum();
        assert_eq!(rows as u64, segments, "{moment}: complete output");
        return;
    }
    for f in files_under(out) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".inprogress") {
            continue; // not a final name
        }
        if name.ends_with(".parquet") {
            readable_parquet(&f).unwrap_or_else(|e| panic!("{moment}: {} is not whole: {e}", f.display()));
        }
        if name.ends_with(".json") {
            let bytes = std::fs::read(&f).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("{moment}: {} is not whole: {e}", f.display()));
        }
    }
}

/// Asserts `out` holds exactly the reference run's rows and values.
fn assert_same_as(reference: &Path, out: &Path, what: &str) {
    assert!(out.join("_SUCCESS").exists(), "{what}: not complete");
    assert_same_rows(
        &rows_by_key(&read_segments(reference)),
        &rows_by_key(&read_segments(out)),
        what,
    );
    assert_eq!(
        sorted_rows(&read_parts(&reference.join("generations"))),
        sorted_rows(&read_parts(&out.join("generations"))),
        "{what}: generations/"
    );
    let (a, b) = (summary(reference), summary(out));
    for (k, v) in a.as_object().unwrap() {
        if k.contains("seconds") || k.contains("per_second") || k == "resumed_shards" {
            continue;
        }
        assert_eq!(Some(v), b.get(k), "{what}: summary {k}");
    }
}

#[test]
fn kills_at_random_points_leave_whole_files_and_resume_finishes_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 40_000, 3, true);
    let reference = tmp.path().join("reference");
    // The reference run logs every point it reaches: the moments a run can be stopped at.
    let faults = Faults::new();
    let mut cmd = job(&input, &reference, &[]);
    faults.apply(&mut cmd, None);
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let events = faults.events();
    assert!(events.len() > 30, "{events:?}");
    let segments = summary(&reference)["n_segments"].as_u64().unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(20261127);
    let dirs: Vec<PathBuf> = (0..4).map(|i| tmp.path().join(format!("out{i}"))).collect();
    let mut killed = 0;
    for i in 0..24 {
        let out = &dirs[i % dirs.len()];
        // A random moment of a whole run: its k-th event, as the n-th arrival at that point.
        let k = rng.random_range(0..events.len());
        let name = &events[k];
        let n = events[..=k].iter().filter(|e| *e == name).count();
        let moment = format!("run {i} aborted at {name}:{n}");
        let o = if i % 6 == 5 {
            // Now and then a real SIGKILL, on a run held at its n-th written batch.
            let held = Faults::new();
            let mut cmd = job(&input, out, &["--resume"]);
            held.apply(&mut cmd, Some("batch-written"));
            let mut child = cmd.spawn().unwrap();
            // A resumed run with nothing left to write ends without reaching the point.
            if held.held_or_ended("batch-written", &mut child) {
                child.kill().unwrap();
            }
            child.wait_with_output().unwrap()
        } else {
            job(&input, out, &["--resume"])
                .env("SEGSCORE_CRASH_AT", format!("{name}:{n}"))
                .output()
                .unwrap()
        };
        if o.status.success() {
            // A resumed run skips committed shards, so it may not reach that moment again.
            assert!(out.join("_SUCCESS").exists(), "{moment}: exit 0 without _SUCCESS");
        } else {
            killed += 1;
        }
        check_left_behind(out, segments, &moment);
        if out.join("_SUCCESS").exists() {
            assert_same_as(&reference, out, &moment);
            std::fs::remove_dir_all(out).unwrap(); // the next run there starts afresh
        }
    }
    assert!(killed >= 12, "only {killed} of 24 runs were stopped mid-way");
    for (i, out) in dirs.iter().enumerate() {
        let o = job(&input, out, &["--resume"]).output().unwrap();
        assert!(o.status.success(), "resume {i}: {}", stderr(&o));
        assert_same_as(&reference, out, &format!("resumed run {i}"));
        assert!(
            !out.join(".segscore-staging").exists(),
            "the work folder is removed"
        );
    }
}

#[test]
fn resume_keeps_committed_shards_and_finishes_interrupted_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 12_000, 2, false);
    let reference = tmp.path().join("reference");
    let o = job(&input, &reference, &[]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for point in [
        "shard-committed",
        "evaluation-started",
        "commit-begun",
        "commit-moved",
    ] {
        let out = tmp.path().join(point);
        let o = job(&input, &out, &[])
            .env("SEGSCORE_CRASH_AT", point)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{point}: the run should have crashed");
        assert!(!out.join("_SUCCESS").exists(), "{point}");
        check_left_behind(&out, 0, point);
        // Without --resume, the interrupted run is neither lost nor silently replaced.
        let o = job(&input, &out, &[]).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{point}");
        assert!(stderr(&o).contains("--resume"), "{point}: {}", stderr(&o));
        // A different job cannot resume it.
        let o = job(&input, &out, &["--resume", "--loss", "absolute"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{point}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot resume") && stderr(&o).contains("loss"),
            "{}",
            stderr(&o)
        );
        let o = job(&input, &out, &["--resume"]).output().unwrap();
        assert!(o.status.success(), "{point}: {}", stderr(&o));
        assert_same_as(&reference, &out, point);
        if point == "shard-committed" {
            // One shard was kept, three were run.
            assert_eq!(summary(&out)["resumed_shards"], 1);
        }
        if point == "evaluation-started" {
            // Every shard was committed, but the last one's overall sample was in memory
            // only (the others wrote theirs): that shard ran again, from the others' files.
            assert_eq!(summary(&out)["resumed_shards"], 3);
        }
    }
    // The same column dropped, named twice: the same job, which resumes.
    let out = tmp.path().join("drops");
    let twice = ["--drop", "input_ids", "--drop", "input_ids"];
    let o = job(&input, &out, &twice)
        .env("SEGSCORE_CRASH_AT", "shard-committed")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the run should have crashed");
    let o = job(&input, &out, &["--drop", "input_ids", "--resume"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&out)["resumed_shards"], 1);
    // --resume of a complete output of the same job changes nothing.
    let part = &parts(&reference.join("segments"))[0];
    let before = std::fs::metadata(part).unwrap().modified().unwrap();
    let o = job(&input, &reference, &["--resume"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(part).unwrap().modified().unwrap(), before);
    // ... and refuses another job's.
    let o = job(&input, &reference, &["--resume", "--loss", "absolute"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("another job"), "{}", stderr(&o));
    // With --overwrite too, the other job runs and replaces it.
    let o = job(
        &input,
        &reference,
        &["--resume", "--overwrite", "--loss", "absolute"],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&reference)["loss"], "absolute");
}

#[test]
fn sigterm_keeps_committed_shards_for_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 40_000, 2, false);
    let reference = tmp.path().join("reference");
    assert!(job(&input, &reference, &[]).output().unwrap().status.success());
    let out = tmp.path().join("out");
    let faults = Faults::new();
    let mut cmd = job(&input, &out, &[]);
    // Held right after the first shard is committed: the signal comes mid-run.
    faults.apply(&mut cmd, Some("shard-committed"));
    let mut child = cmd.spawn().unwrap();
    faults.wait_held("shard-committed", &mut child);
    let record = out.join(".segscore-staging/shards/shard-00000.json");
    assert!(record.exists());
    signal(&child, libc::SIGTERM);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(143), "{err}");
    assert!(err.contains("--resume"), "{err}");
    assert!(record.exists(), "the committed shard is kept");
    check_left_behind(&out, 0, "SIGTERM");
    let o = job(&input, &out, &["--resume"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(summary(&out)["resumed_shards"].as_u64().unwrap() >= 1);
    assert_same_as(&reference, &out, "after SIGTERM");
}

#[test]
fn segscore_shard_in_sql_names_each_generations_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 3_000, 1, false);
    let out = tmp.path().join("out");
    let o = job(&input, &out, &[]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Each shard's files hold exactly the generations segscore_shard puts in it.
    for k in 0..4 {
        let files: Vec<PathBuf> = parts(&out.join("segments"))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("part-s{k:05}-"))
            })
            .collect();
        for f in files {
            let shards = sql_csv_on(
                &f,
                "SELECT DISTINCT segscore_shard(generation_id, 4) AS shard FROM t",
            );
            assert_eq!(shards, format!("shard\n{k}\n"));
        }
    }
}

#[test]
fn a_run_killed_before_committing_anything_is_simply_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 2_000, 1, false);
    let out = tmp.path().join("out");
    // What a run killed while its first shard was being written leaves.
    let work = out.join(".segscore-staging");
    std::fs::create_dir_all(work.join("segments")).unwrap();
    std::fs::write(work.join("job.json"), b"{}").unwrap();
    std::fs::write(
        work.join("segments/.part-s00000-00000.parquet.inprogress"),
        b"PAR1",
    )
    .unwrap();
    let o = job(&input, &out, &[]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("_SUCCESS").exists());
    assert!(!work.exists());
}

/// A run that fails on bad input in its last shard keeps the shards it committed: a plain
/// re-run is refused naming both ways on, `--resume` of the fixed input is refused (the
/// inputs differ from the failed run's), and `--overwrite` starts again and completes.
#[test]
fn a_run_failed_by_bad_input_keeps_its_shards_and_the_fixed_input_starts_again() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    let mut rows: Vec<Row> = (0..400)
        .map(|i| {
            row(
                &format!("g{:03}", i / 4),
                (i % 4) as i64,
                0.1 * (i % 4) as f64,
                &[1 + i as i64 % 50],
            )
        })
        .collect();
    write_rows(&input, &rows);
    // The bad row goes in a generation of the last shard, so that the others commit first.
    let bad = sql_csv_on(
        &input,
        "SELECT MAX(generation_id) AS g FROM t WHERE segscore_shard(generation_id, 4) = 3",
    )
    .lines()
    .nth(1)
    .unwrap()
    .to_string();
    let last = rows.iter().rposition(|r| r.gid == bad).unwrap();
    rows[last].cum = Some(f64::NAN);
    write_rows(&input, &rows);
    let out = tmp.path().join("out");
    let o = job(&input, &out, &[]).output().unwrap();
    assert_fails(
        &o,
        1,
        &format!("column `cumulative_score` is non-finite (NaN) at generation_id={bad}"),
    );
    let records = std::fs::read_dir(out.join(".segscore-staging/shards"))
        .unwrap()
        .count();
    assert_eq!(records, 3, "the shards committed before the failure are kept");
    let o = job(&input, &out, &[]).output().unwrap();
    assert_fails(
        &o,
        1,
        "holds an interrupted run (.segscore-staging); pass --resume to finish it with the same inputs and settings, or --overwrite to start again",
    );
    rows[last].cum = Some(0.3);
    write_rows(&input, &rows);
    let o = job(&input, &out, &["--resume"]).output().unwrap();
    assert_fails(&o, 2, "cannot resume");
    assert!(
        stderr(&o).contains("the interrupted run had inputs"),
        "{}",
        stderr(&o)
    );
    let o = job(&input, &out, &["--overwrite"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&out)["n_segments"], 400);
    assert!(!out.join(".segscore-staging").exists());
}

#[test]
fn earlier_versions_staging_folders_are_removed_and_do_not_count_as_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 2_000, 1, false);
    let out = tmp.path().join("out");
    // A killed run of a version that named its staging folder by pid and time.
    let old = out.join(".segscore-staging-4242-1700000000000000000");
    std::fs::create_dir_all(old.join("segments")).unwrap();
    std::fs::write(old.join("segments/.part-00000.parquet.inprogress"), b"PAR1").unwrap();
    let o = job(&input, &out, &[]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("_SUCCESS").exists());
    assert!(!old.exists());
    assert!(!out.join(".segscore-staging").exists());
}

#[test]
fn a_second_run_into_the_same_output_is_refused_while_the_first_holds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 2_000, 1, false);
    let out = tmp.path().join("out");
    let work = out.join(".segscore-staging");
    std::fs::create_dir_all(work.join("shards")).unwrap();
    // Another process's lock, as a running segscore holds it.
    let held = std::fs::File::open(&work).unwrap();
    use std::os::fd::AsRawFd;
    assert_eq!(
        unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    for flags in [&["--resume"][..], &["--overwrite"][..], &[][..]] {
        let o = job(&input, &out, flags).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{flags:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("another segscore run is writing into it"),
            "{}",
            stderr(&o)
        );
    }
    drop(held);
    let o = job(&input, &out, &["--resume"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}
