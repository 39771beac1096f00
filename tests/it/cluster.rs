//! The job on a Ballista cluster: a scheduler and executors started from the binary
//! (`segscore cluster ...`) on 127.0.0.1 and free ports, each stopped when its test ends,
//! whatever happens; and an in-process standalone cluster through the library.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};

use crate::common::*;

/// A child process (scheduler, executor or client run); killed (and reaped) when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(args: &[String], log: PathBuf, faults: Option<(&Faults, &str)>) -> Proc {
        Proc::spawn_with(args, log, faults, &[])
    }

    fn spawn_with(
        args: &[String],
        log: PathBuf,
        faults: Option<(&Faults, &str)>,
        env: &[(String, String)],
    ) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env_remove("ORT_DYLIB_PATH")
            .env_remove("SEGSCORE_LOG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some((f, hold)) = faults {
            f.apply(&mut cmd, Some(hold));
        }
        Proc {
            child: cmd.spawn().expect("start segscore cluster"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the process has logged `text` (its readiness signal); panics, with its
    /// log, if it exits first.
    fn wait_for(&mut self, text: &str) {
        loop {
            if self.log().contains(text) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("exited ({status}) before it logged {text:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scheduler and its executors.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    port: u16,
    /// Each executor's `--vcores`.
    vcores: usize,
    executors: Vec<(Proc, String)>,
    // Dropped last: the executors stop before their scheduler.
    scheduler: Proc,
}

impl Cluster {
    fn start(executors: usize) -> Cluster {
        Cluster::start_with(executors, &[])
    }

    /// A cluster whose processes have these environment settings (an object store's, say).
    pub(crate) fn start_with(executors: usize, env: &[(&str, &str)]) -> Cluster {
        Cluster::start_shaped(executors, 1, env)
    }

    /// A cluster of `executors` executors of `vcores` task slots each.
    fn start_shaped(executors: usize, vcores: usize, env: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        // Port 0: the scheduler takes a free port and logs it.
        let mut scheduler = Proc::spawn_with(
            &[
                "cluster".into(),
                "scheduler".into(),
                "--bind".into(),
                "127.0.0.1:0".into(),
                "--executor-timeout".into(),
                "5".into(),
            ],
            dir.path().join("scheduler.log"),
            None,
            &env,
        );
        scheduler.wait_for("scheduler listening");
        let log = scheduler.log();
        let port = log
            .split("scheduler listening bind=127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .unwrap_or_else(|| panic!("no port in the scheduler's log:\n{log}"));
        let mut c = Cluster {
            dir,
            env,
            port,
            vcores,
            executors: Vec::new(),
            scheduler,
        };
        for _ in 0..executors {
            c.add_executor(None);
        }
        c
    }

    pub(crate) fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.port)
    }

    /// Starts an executor (held at a fault point, if asked) and waits until it has
    /// registered and serves its results. Returns its address.
    fn add_executor(&mut self, faults: Option<(&Faults, &str)>) -> String {
        let n = self.executors.len();
        let (port, grpc) = (free_port(), free_port());
        let work = self.dir.path().join(format!("executor-{n}"));
        let mut p = Proc::spawn_with(
            &[
                "cluster".into(),
                "executor".into(),
                "--scheduler".into(),
                format!("127.0.0.1:{}", self.port),
                "--bind".into(),
                format!("127.0.0.1:{port}"),
                "--grpc-port".into(),
                grpc.to_string(),
                "--work-dir".into(),
                work.display().to_string(),
                "--vcores".into(),
                self.vcores.to_string(),
                "--provider".into(),
                "cpu".into(),
                "--heartbeat".into(),
                "1".into(),
            ],
            self.dir.path().join(format!("executor-{n}.log")),
            faults,
            &self.env,
        );
        p.wait_for("Executor registration succeed");
        p.wait_for("flight server listening");
        let address = format!("127.0.0.1:{port}");
        self.executors.push((p, address.clone()));
        address
    }

    /// Every process's log: the scheduler's, then each executor's.
    pub(crate) fn logs(&self) -> String {
        let executors = self
            .executors
            .iter()
            .map(|(p, a)| format!("--- executor {a}\n{}", p.log()));
        std::iter::once(format!("--- scheduler\n{}", self.scheduler.log()))
            .chain(executors)
            .collect()
    }
}

/// `segscore run` over `input` with `model`, as a child process (killed if the test ends
/// first), its stderr in `log`.
fn spawn_run(input: &Path, model: &Path, out: &Path, extra: &[&str]) -> Proc {
    spawn_run_held(input, model, out, extra, None)
}

/// [`spawn_run`], held at a fault point.
fn spawn_run_held(
    input: &Path,
    model: &Path,
    out: &Path,
    extra: &[&str],
    hold: Option<(&Faults, &str)>,
) -> Proc {
    let mut args: Vec<String> = ["run", "--input"].iter().map(|s| s.to_string()).collect();
    for (flag, path) in [("", input), ("--model", model), ("--output", out)] {
        if !flag.is_empty() {
            args.push(flag.into());
        }
        args.push(path.display().to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::spawn(&args, out.with_extension("log"), hold)
}

/// The run's exit status and stderr once it exits (no deadline: it ends, or the test hangs
/// where a person can look; its log is in the test's folder).
fn finish(mut run: Proc) -> std::process::Output {
    let status = run.child.wait().unwrap();
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: run.log().into_bytes(),
    }
}

/// A local run's output, the reference.
fn local_reference(input: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("local");
    run_ok(&[input], &demo_model(), &out, &["--threads", "2"]);
    out
}

#[test]
fn a_cluster_run_equals_a_local_run_and_names_its_executors() {
    let cluster = Cluster::start(2);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    generate(&input, 20_000, 2, false);
    let local = local_reference(&input, dir.path());
    let out = dir.path().join("cluster");
    let url = cluster.url();
    run_ok(
        &[&input],
        &demo_model(),
        &out,
        // Two shards: two jobs on the cluster, each committed by the client. `--provider cuda`
        // is the executors' business (theirs is cpu): the client, with no CUDA, only reads the
        // model.
        &[
            "--cluster",
            &url,
            "--threads",
            "4",
            "--shards",
            "2",
            "--provider",
            "cuda",
        ],
    );
    assert!(out.join("_SUCCESS").exists());
    // The same rows: exact targets and keys, predictions to 1e-6.
    assert_same_output(
        &read_segments(&out),
        &read_segments(&local),
        1e-6,
        "cluster vs local",
    );
    let (s, l) = (summary(&out), summary(&local));
    assert_eq!(s["n_segments"], l["n_segments"]);
    assert_eq!(s["n_generations"], l["n_generations"]);
    let rel =
        |k: &str| (s[k].as_f64().unwrap() - l[k].as_f64().unwrap()).abs() / l[k].as_f64().unwrap().abs();
    assert!(rel("mse") < 1e-9 && rel("pearson") < 1e-9, "{s}\n{l}");
    assert_eq!(
        read_parts(&out.join("generations")).num_rows(),
        read_parts(&local.join("generations")).num_rows()
    );
    // The summary names the scheduler and the executors that scored the rows.
    assert_eq!(s["cluster"]["scheduler"], url);
    let scored = s["cluster"]["executors"].as_object().unwrap();
    let started: Vec<&String> = cluster.executors.iter().map(|(_, a)| a).collect();
    assert!(
        !scored.is_empty() && scored.keys().all(|k| started.contains(&k)),
        "{scored:?}"
    );
    assert_eq!(scored.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 20_000);
    assert!(l.get("cluster").is_none());
    // `--prediction cumulative`: the executors score each row, the client takes the changes
    // (its generation stage), as a local run does.
    let cumulative = ["--prediction", "cumulative"];
    let local_cum = dir.path().join("local_cumulative");
    run_ok(&[&input], &demo_model(), &local_cum, &cumulative);
    let cum = dir.path().join("cluster_cumulative");
    run_ok(
        &[&input],
        &demo_model(),
        &cum,
        &[&cumulative[..], &["--cluster", &url]].concat(),
    );
    assert_same_output(
        &read_segments(&cum),
        &read_segments(&local_cum),
        1e-6,
        "cumulative: cluster vs local",
    );
    assert_eq!(summary(&cum)["prediction"], "cumulative");
    assert_eq!(summary(&cum)["n_segments"], 20_000);
    // The executor column is counted, never written.
    assert!(read_segments(&out)
        .schema()
        .index_of("segscore_executor")
        .is_err());
}

#[test]
fn an_executor_killed_mid_task_leaves_a_complete_or_resumable_output() {
    let mut cluster = Cluster::start(0);
    let faults = Faults::new();
    // The first executor stops in its first model call, mid-task.
    cluster.add_executor(Some((&faults, "job-model")));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    generate(&input, 20_000, 2, false);
    let local = local_reference(&input, dir.path());
    let out = dir.path().join("cluster");
    let url = cluster.url();
    let run = spawn_run(
        &input,
        &demo_model(),
        &out,
        &["--cluster", &url, "--threads", "2"],
    );
    faults.wait_held("job-model", &mut cluster.executors[0].0.child);
    let survivor = cluster.add_executor(None);
    // SIGKILL, mid-task.
    cluster.executors[0].0.child.kill().unwrap();
    cluster.executors[0].0.child.wait().unwrap();
    let o = finish(run);
    if o.status.success() {
        eprintln!("the run completed after the kill");
        // Ballista ran the lost tasks on the other executor.
        assert_same_output(
            &read_segments(&out),
            &read_segments(&local),
            1e-6,
            "after the kill",
        );
        let scored = summary(&out)["cluster"]["executors"].clone();
        assert_eq!(scored, serde_json::json!({ survivor.clone(): 20_000 }));
    } else {
        eprintln!("the run failed after the kill: {}", stderr(&o));
        // Or the run failed, clearly, with nothing under a final name, and resumes.
        assert_fails(&o, 1, &format!("cluster {url}"));
        assert!(!out.join("_SUCCESS").exists());
        run_ok(
            &[&input],
            &demo_model(),
            &out,
            &["--cluster", &url, "--threads", "2", "--resume"],
        );
        assert_same_output(&read_segments(&out), &read_segments(&local), 1e-6, "resumed");
    }
}

#[test]
fn an_executor_that_cannot_open_the_model_or_sees_another_file_fails_the_run_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    generate(&input, 2_000, 1, false);
    let model = dir.path().join("model.onnx");
    for case in ["another file", "no file"] {
        std::fs::copy(demo_model(), &model).unwrap();
        let mut cluster = Cluster::start(0);
        let faults = Faults::new();
        let executor = cluster.add_executor(Some((&faults, "job-model")));
        let out = dir.path().join(case.replace(' ', "-"));
        let url = cluster.url();
        let run = spawn_run(&input, &model, &out, &["--cluster", &url]);
        // The client has loaded the model; the executor has not yet.
        faults.wait_held("job-model", &mut cluster.executors[0].0.child);
        match case {
            "another file" => {
                std::fs::copy(test_model("affine_mean.onnx"), &model).unwrap();
            }
            _ => std::fs::remove_file(&model).unwrap(),
        }
        faults.release("job-model");
        let o = finish(run);
        let want = match case {
            "another file" => format!("executor {executor} sees another file: sha256"),
            _ => format!("executor {executor} cannot use the job's model"),
        };
        assert_fails(&o, 1, &want);
        // Read as a local run's would: the cluster, the model file, the executor's words.
        let model_at = format!("model {}: executor {executor}", model.display());
        for said in [format!("error: cluster {url}: Job "), model_at] {
            assert!(stderr(&o).contains(&said), "{said}\n{}", stderr(&o));
        }
        assert!(!stderr(&o).contains("DataFusionError("), "{}", stderr(&o));
        if case == "no file" {
            assert!(
                stderr(&o).contains("same path on every executor"),
                "{}",
                stderr(&o)
            );
        }
        assert!(!out.join("_SUCCESS").exists());
    }
}

#[test]
fn an_unreachable_scheduler_and_a_bad_url_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    generate(&input, 200, 1, false);
    let out = dir.path().join("out");
    let url = format!("df://127.0.0.1:{}", free_port());
    let o = run(&[&input], &demo_model(), &out, &["--cluster", &url]);
    assert_fails(
        &o,
        1,
        &format!("cluster {url}: cannot reach the Ballista scheduler"),
    );
    assert_no_output(&out);
    let o = run(
        &[&input],
        &demo_model(),
        &out,
        &["--cluster", "http://127.0.0.1:1"],
    );
    assert_fails(&o, 2, "`http://` is not a cluster URL; expected df://HOST:PORT");
    let o = run(&[&input], &demo_model(), &out, &["--cluster", "df://127.0.0.1"]);
    assert_fails(&o, 2, "no port");
}

/// Ballista's executor, unable to listen, logged an error and exited 0, as if stopped; at port
/// 0 it told the scheduler port 0. Each is now an error before it starts, as is a work folder
/// in object storage.
#[test]
fn an_executor_that_cannot_listen_where_told_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().port().to_string();
    let free = free_port().to_string();
    let work = dir.path().join("work");
    // An executor of an unreachable scheduler: each case fails before it would connect.
    let executor = |bind: &str, grpc: &str, work: &str, more: &[&str]| {
        let bind = format!("127.0.0.1:{bind}");
        let mut args = vec![
            "cluster",
            "executor",
            "--scheduler",
            "127.0.0.1:1",
            "--bind",
            &bind,
            "--grpc-port",
            grpc,
            "--work-dir",
            work,
        ];
        args.extend_from_slice(more);
        segscore(&args)
    };
    for (bind, grpc, code, want) in [
        (
            taken.as_str(),
            free.as_str(),
            1,
            format!("cannot listen on 127.0.0.1:{taken}: Address already in use"),
        ),
        (
            free.as_str(),
            taken.as_str(),
            1,
            format!("cannot listen on 127.0.0.1:{taken}: Address already in use"),
        ),
        (
            free.as_str(),
            free.as_str(),
            2,
            format!("--grpc-port {free} is --bind's port"),
        ),
        ("0", free.as_str(), 2, "--bind: give a port".to_string()),
        (free.as_str(), "0", 2, "--grpc-port: give a port".to_string()),
    ] {
        let o = executor(bind, grpc, work.to_str().unwrap(), &[]);
        assert_fails(&o, code, &want);
    }
    // Its work folder is local (a URL made a local folder named `s3:`).
    let o = executor(&free, &free_port().to_string(), "s3://bucket/work", &[]);
    assert_fails(
        &o,
        2,
        "--work-dir s3://bucket/work: the executor's shuffle files and spills are local",
    );
    assert!(!Path::new("s3:").exists());
    // A heartbeat every 0 s was taken as 1 s.
    let o = executor(
        &free,
        &free_port().to_string(),
        work.to_str().unwrap(),
        &["--heartbeat", "0"],
    );
    assert_fails(&o, 2, "invalid value '0' for '--heartbeat <SECS>'");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_cluster_runs_segscores_functions_as_a_local_context_does() {
    use ballista::prelude::{SessionConfigExt, SessionContextExt};
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
    use segscore::model::shared::{JobModel, JobSettings};
    use segscore::model::{ModelOptions, Provider, RewardModel};

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    generate(&input, 3_000, 1, false);
    let opts = ModelOptions {
        provider: Provider::Cpu,
        ..ModelOptions::default()
    };
    let model = Arc::new(RewardModel::load(&demo_model(), &opts).unwrap());
    let sql = "SELECT generation_id, segment_index, reward_model(input_ids) AS p, \
               segscore_shard(generation_id, 4) AS shard FROM t";
    let agg = "SELECT pearson(reward_model(input_ids), cumulative_score) AS r, count(*) AS n FROM t";
    let file = parts(&input)[0].display().to_string();
    // Local: the loaded model's functions.
    let local = SessionContext::new();
    segscore::functions::register(&local, Some(&model), None);
    // Standalone: the in-process scheduler and executor get the served functions, which load
    // the model the query's segscore.* settings name; the client registers after Ballista's
    // upgrade.
    let config = SessionConfig::new_with_ballista()
        .with_option_extension(JobSettings(JobModel::new(&model, &opts, None)));
    let mut state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build();
    segscore::functions::register_served(&mut state).unwrap();
    let remote = SessionContext::standalone_with_state(state).await.unwrap();
    segscore::functions::register(&remote, Some(&model), None);
    for ctx in [&local, &remote] {
        ctx.register_parquet("t", &file, ParquetReadOptions::default())
            .await
            .unwrap();
    }
    async fn collect(ctx: &SessionContext, q: &str) -> datafusion::arrow::record_batch::RecordBatch {
        let batches = ctx.sql(q).await.unwrap().collect().await.unwrap();
        datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    }
    // Per row: the same keys and shards, the same scores.
    let (a, b) = (collect(&local, sql).await, collect(&remote, sql).await);
    assert_eq!(a.num_rows(), 3_000);
    assert_eq!(by_key(&a, "shard"), by_key(&b, "shard"));
    let (pa, pb) = (by_key(&a, "p"), by_key(&b, "p"));
    assert_eq!(pa.len(), pb.len());
    for (k, v) in &pa {
        assert!((v - pb[k]).abs() <= 1e-9, "{k:?}: {v} vs {}", pb[k]);
    }
    // An aggregate over the model's scores.
    let (a, b) = (collect(&local, agg).await, collect(&remote, agg).await);
    assert_eq!(f64_col(&a, "n"), f64_col(&b, "n"));
    assert!((f64_col(&a, "r")[0] - f64_col(&b, "r")[0]).abs() <= 1e-9);
}

#[test]
fn sigterm_stops_the_scheduler_and_an_executor_cleanly() {
    let mut cluster = Cluster::start(1);
    let (executor, _) = &mut cluster.executors[0];
    signal(&executor.child, libc::SIGTERM);
    let status = executor.child.wait().unwrap();
    assert!(status.success(), "executor: {status}\n{}", executor.log());
    let scheduler = &mut cluster.scheduler;
    signal(&scheduler.child, libc::SIGTERM);
    let status = scheduler.child.wait().unwrap();
    assert!(status.success(), "scheduler: {status}\n{}", scheduler.log());
    assert!(
        scheduler.log().contains("scheduler stopped signal=\"SIGTERM\""),
        "{}",
        scheduler.log()
    );
}

#[test]
fn an_input_the_executors_cannot_see_is_named_with_what_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    generate(&input, 4_000, 2, false);
    let mut cluster = Cluster::start(0);
    let (executor, client) = (Faults::new(), Faults::new());
    cluster.add_executor(Some((&executor, "job-model")));
    let out = dir.path().join("out");
    let url = cluster.url();
    // The client sees the files; the executor will not: they are moved away while it runs its
    // first task (one at a time, so the other file is opened after), and back before the
    // client, held at its first error, looks at them.
    let mut run = spawn_run_held(
        &input,
        &demo_model(),
        &out,
        &["--cluster", &url, "--threads", "2"],
        Some((&client, "partition-failed")),
    );
    executor.wait_held("job-model", &mut cluster.executors[0].0.child);
    let away = dir.path().join("away");
    std::fs::rename(&input, &away).unwrap();
    executor.release("job-model");
    client.wait_held("partition-failed", &mut run.child);
    std::fs::rename(&away, &input).unwrap();
    client.release("partition-failed");
    let o = finish(run);
    assert_fails(&o, 1, &format!("error: cluster {url}: Job "));
    assert!(
        stderr(&o).contains("must be at the same path on the scheduler and every executor"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("DataFusionError("), "{}", stderr(&o));
    assert!(!out.join("_SUCCESS").exists());
}

/// A hive-partitioned input folder on a cluster: the executors read its `day=` levels as a
/// column, as a local run does.
#[test]
fn hive_partition_columns_reach_a_cluster_run() {
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let gen = dir.path().join("gen");
    generate(&gen, 3_000, 2, false);
    let input = dir.path().join("in");
    for (i, f) in parts(&gen).iter().enumerate() {
        let day = input.join(format!("day={}", i + 1));
        std::fs::create_dir_all(&day).unwrap();
        std::fs::copy(f, day.join("part-0.parquet")).unwrap();
    }
    let local = local_reference(&input, dir.path());
    let out = dir.path().join("cluster");
    run_ok(&[&input], &demo_model(), &out, &["--cluster", &cluster.url()]);
    assert_eq!(summary(&out)["partition_cols"], serde_json::json!(["day"]));
    let days = |out: &Path| {
        let b = read_segments(out);
        let day = cast(b.column_by_name("day").unwrap(), &DataType::Int64).unwrap();
        let day = day.as_primitive::<Int64Type>().values().to_vec();
        let keys = str_col(&b, "generation_id")
            .into_iter()
            .zip(i64_col(&b, "segment_index"));
        keys.zip(day).collect::<std::collections::BTreeMap<_, _>>()
    };
    let want = days(&local);
    assert_eq!(want.len(), 3_000);
    assert_eq!(days(&out), want);
    assert_same_output(
        &read_segments(&out),
        &read_segments(&local),
        1e-6,
        "cluster vs local",
    );
    // Spark's INT96 timestamps are read as microseconds on the executors too (the scan's
    // options cross the wire with the plan): 9999-12-31 stays itself.
    let spark = repo().join("tests/data/writers/spark_int96");
    let valid_to = |out: &Path| {
        let b = read_segments(out);
        let i = b.schema().index_of("valid_to").unwrap();
        rows_by_key(&b)
            .into_iter()
            .map(|(k, row)| (k, row[i].clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let out = dir.path().join("spark-cluster");
    run_ok(&[&spark], &demo_model(), &out, &["--cluster", &cluster.url()]);
    let got = valid_to(&out);
    assert_eq!(got.len(), 30);
    assert_eq!(got[&("g000".to_string(), 0)], "9999-12-31T00:00:00");
    let local = dir.path().join("spark-local");
    run_ok(&[&spark], &demo_model(), &local, &["--provider", "cpu"]);
    assert_eq!(got, valid_to(&local));
}

/// Text input on a cluster: the executors tokenize and score each generation (one pass), the
/// client checks the model is causal; the output equals a local run's, bad rows included.
#[test]
fn text_input_runs_on_a_cluster_as_it_runs_locally() {
    // One executor of two task slots: a first design, which joined the rows to their reads,
    // gave such a cluster's client the rows as two sorted runs one after the other (Ballista's
    // runtime join selection), three runs in four.
    let cluster = Cluster::start_shaped(1, 2, &[]);
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    demo_text(&input, 1000, 2);
    // Rows the checks reject: a null text, an empty one, a null prompt, an index twice.
    let bad = input.join("bad.parquet");
    let o = segscore(&[
        "sql",
        &format!(
            "COPY (SELECT * FROM (VALUES ('b1', 0, 0.1, 'p', 'one'), ('b1', 1, 0.2, 'p', NULL), \
             ('b2', 0, 0.1, 'p', ''), ('b2', 1, 0.3, 'p', 'x'), ('b3', 0, 0.1, NULL, 'y'), \
             ('b3', 1, 0.2, NULL, 'z'), ('b4', 0, 0.1, 'p', 'a'), ('b4', 0, 0.2, 'p', 'b'), \
             ('b4', 1, 0.4, 'p', 'c')) t(generation_id, segment_index, cumulative_score, prompt, step)) \
             TO '{}'",
            bad.display()
        ),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = repo().join("models/prm_causal.onnx");
    let tokenizer = repo().join("models/gpt2-tokenizer.json");
    let text = [
        &DEMO_TEXT[..],
        &[
            "--tokenizer",
            tokenizer.to_str().unwrap(),
            "--on-invalid",
            "quarantine",
        ],
    ]
    .concat();
    for (name, extra) in [
        ("one-pass", &[][..]),
        (
            "cumulative",
            &["--pass", "segment", "--prediction", "cumulative"][..],
        ),
    ] {
        let local = dir.path().join(format!("local-{name}"));
        run_ok(&[&input], &model, &local, &[&text[..], extra].concat());
        let out = dir.path().join(format!("cluster-{name}"));
        let on_cluster = ["--cluster", url.as_str(), "--shards", "2"];
        run_ok(&[&input], &model, &out, &[&text[..], extra, &on_cluster].concat());
        assert_same_output(&read_segments(&out), &read_segments(&local), 1e-6, name);
        let rejected = |out: &Path| sorted_rows(&read_parts(&out.join("rejected")));
        assert_eq!(rejected(&out), rejected(&local), "{name}");
        let (s, l) = (summary(&out), summary(&local));
        // (Its part files are one per shard.)
        for k in ["rows", "rows_by_reason", "generations_by_reason"] {
            assert_eq!(s["rejected"][k], l["rejected"][k], "{name}");
        }
        assert_eq!(s["rejected"]["generations"], 4, "{s}");
        assert_eq!(s["rejected"]["rows_by_reason"]["duplicate_segment"], 2, "{s}");
        assert_eq!(s["n_segments"], 1000);
        assert_eq!(s["prediction"], l["prediction"]);
        assert_eq!(s["text"]["pass"], l["text"]["pass"]);
        let scored: u64 = s["cluster"]["executors"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(scored, 1009, "{s}");
        if name == "one-pass" {
            // The client checked the first generations of each shard both ways.
            let check = &s["text"]["one_pass_check"];
            assert!(check["generations"].as_u64().unwrap() >= 2, "{s}");
            assert_eq!(check["max_abs_difference"], 0.0, "{s}");
        }
    }
    // A model that is not causal is refused in one pass, as locally.
    let out = dir.path().join("not-causal");
    let o = run(
        &[&input],
        &test_model("prm_bidirectional.onnx"),
        &out,
        &[&text[..], &["--cluster", url.as_str()]].concat(),
    );
    assert_fails(&o, 1, "the model is not causal");
    assert!(!out.join("_SUCCESS").exists());
}
