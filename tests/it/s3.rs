//! `s3://` inputs, models and outputs against a real S3-compatible server: moto in server mode
//! (PyPI `moto[server]`, installed by `scripts/install-python-deps.sh`), started by each test
//! on 127.0.0.1 and a free port, and stopped when the test ends, whatever happens.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::*;

/// A moto server on 127.0.0.1; killed when dropped.
struct Moto {
    child: Child,
    port: u16,
    rt: tokio::runtime::Runtime,
}

impl Moto {
    fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// A server with these environment settings (moto's own, e.g. authentication).
    fn start_with(env: &[(&str, &str)]) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let py = if Command::new("python3").arg("--version").output().is_ok() {
            "python3"
        } else {
            "python"
        };
        let child = Command::new(py)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server (scripts/install-python-deps.sh installs moto[server])");
        let mut moto = Moto {
            child,
            port,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        // Any answer will do (a server that checks credentials answers 403).
        while moto.http("GET", "/", b"").0 == 0 {
            // A server that exits (moto missing, say) fails at once, not at the deadline.
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!("moto exited ({status}) before it listened on port {port}");
            }
            assert!(Instant::now() < deadline, "moto did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One plain HTTP request (moto takes unsigned requests): status and body.
    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, Vec::new());
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        if s.write_all(head.as_bytes())
            .and_then(|()| s.write_all(body))
            .is_err()
        {
            return (0, Vec::new());
        }
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| resp[i + 4..].to_vec())
            .unwrap_or_default();
        (status, body)
    }

    fn create_bucket(&self, bucket: &str) {
        assert_eq!(
            self.http("PUT", &format!("/{bucket}"), b"").0,
            200,
            "create bucket {bucket}"
        );
    }

    fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_bucket_name(bucket)
                .with_region("us-east-1")
                .with_access_key_id("test")
                .with_secret_access_key("test")
                .build()
                .unwrap(),
        )
    }

    /// Writes `local` to the object `key` (the key as it is: `Key::from` escapes a `%`).
    fn put_file(&self, bucket: &str, key: &str, local: &Path) {
        let bytes = std::fs::read(local).unwrap();
        let store = self.store(bucket);
        self.rt
            .block_on(store.put(&Key::parse(key).unwrap(), bytes.into()))
            .unwrap();
    }

    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let store = self.store(bucket);
        self.rt.block_on(async {
            match store.get(&Key::from(key)).await {
                Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("get {key}: {e}"),
            }
        })
    }

    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        let store = self.store(bucket);
        let mut v: Vec<String> = self.rt.block_on(async {
            store
                .list(Some(&Key::from(prefix)))
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await
                .unwrap()
        });
        v.sort();
        v
    }

    /// The committed output at `bucket/prefix`, downloaded by its manifest into `dir`
    /// (`segments/`, `generations/`, `summary.json`): what a reader following `_SUCCESS` reads.
    fn download_output(&self, bucket: &str, prefix: &str, dir: &Path) {
        let pointer: serde_json::Value =
            serde_json::from_slice(&self.get(bucket, &format!("{prefix}/_SUCCESS")).expect("_SUCCESS"))
                .unwrap();
        let manifest_key = format!("{prefix}/{}", pointer["manifest"].as_str().unwrap());
        let manifest: serde_json::Value =
            serde_json::from_slice(&self.get(bucket, &manifest_key).unwrap()).unwrap();
        let run = format!("{prefix}/_runs/{}", manifest["run"].as_str().unwrap());
        let mut names: Vec<String> = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect();
        for files in manifest["tables"].as_object().unwrap().values() {
            names.extend(
                files
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_string()),
            );
        }
        for n in names {
            let local = dir.join(&n);
            std::fs::create_dir_all(local.parent().unwrap()).unwrap();
            std::fs::write(&local, self.get(bucket, &format!("{run}/{n}")).unwrap()).unwrap();
        }
    }

    /// `segscore ARGS` with this server as the endpoint and test credentials.
    fn segscore(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(BIN)
            .args(args)
            .env_remove("ORT_DYLIB_PATH")
            .env("NO_COLOR", "1")
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "a-secret-never-logged")
            .env("AWS_REGION", "us-east-1")
            .envs(env.iter().copied())
            .output()
            .expect("run segscore")
    }
}

impl Moto {
    /// Runs the job ([`job`], no extra flags) from `input` with `model` to `out`; it must
    /// succeed.
    fn job_ok(&self, input: &str, model: &Path, out: &Path) {
        ok(&self.segscore(
            &job(input, model.to_str().unwrap(), out.to_str().unwrap(), &[]),
            &[],
        ));
    }

    /// `SELECT count(*) AS n` over `input` read as a table, through `segscore sql`, as CSV.
    fn count(&self, input: &str) -> String {
        self.query(input, "SELECT count(*) AS n FROM t")
    }

    /// `sql` over `input` read as table `t`, through `segscore sql`, as CSV.
    fn query(&self, input: &str, sql: &str) -> String {
        let table = format!("t={input}");
        let o = self.segscore(&["sql", "-t", &table, "--format", "csv", sql], &[]);
        ok(&o);
        String::from_utf8(o.stdout).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Uploads every Parquet file under `local` to `bucket/prefix/` (same relative names).
fn upload_dir(moto: &Moto, bucket: &str, prefix: &str, local: &Path) {
    for f in walk(local) {
        let rel = f.strip_prefix(local).unwrap().display().to_string();
        moto.put_file(bucket, &format!("{prefix}/{rel}"), &f);
    }
}

fn job<'a>(input: &'a str, model: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "run",
        "-q",
        "--provider",
        "cpu",
        "--threads",
        "2",
        "--shards",
        "3",
        "--max-rows-per-file",
        "3000",
        "-i",
        input,
        "-m",
        model,
        "-o",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

/// The first rows in key order with the row count: exact values, whatever the plan's order.
const ROWS_QUERY: &str =
    "SELECT (SELECT count(*) FROM segments) AS n, generation_id, segment_index, target_score, predicted_score \
     FROM segments ORDER BY generation_id, segment_index LIMIT 50";

fn ok(o: &Output) {
    assert!(o.status.success(), "segscore failed: {}", stderr(o));
}

/// The summary without what differs between two runs of one job (timings, paths).
fn stable_summary(mut v: serde_json::Value) -> serde_json::Value {
    let m = v.as_object_mut().unwrap();
    for k in [
        "elapsed_seconds",
        "rows_per_second",
        "model_seconds",
        "evaluation_seconds",
        "model",
        "resumed_shards",
        "job_sha256",
        "text",
    ] {
        m.remove(k);
    }
    v
}

fn assert_same_outputs(a: &Path, b: &Path) {
    for t in ["segments", "generations"] {
        assert_eq!(
            sorted_rows(&read_parts(&a.join(t))),
            sorted_rows(&read_parts(&b.join(t))),
            "{t}: {} vs {}",
            a.display(),
            b.display()
        );
    }
    assert_eq!(stable_summary(summary(a)), stable_summary(summary(b)));
}

#[test]
fn a_run_from_and_to_s3_equals_a_local_run_and_reads_back_with_sql_report_and_compare() {
    let moto = Moto::start();
    moto.create_bucket("data");
    let tmp = tempfile::tempdir().unwrap();
    // The same hive layout here and in the store: both runs carry `day`.
    let input = tmp.path().join("in");
    let day = input.join("day=1");
    generate(&day, 12_000, 3, false);
    upload_dir(&moto, "data", "inputs/day=1", &day);
    moto.put_file("data", "models/reward_small.onnx", &demo_model());
    let local = tmp.path().join("local");
    ok(&moto.segscore(
        &job(
            input.to_str().unwrap(),
            demo_model().to_str().unwrap(),
            local.to_str().unwrap(),
            &[],
        ),
        &[],
    ));
    let o = moto.segscore(
        &job(
            "s3://data/inputs/",
            "s3://data/models/reward_small.onnx",
            "s3://data/runs/a",
            &[],
        ),
        &[],
    );
    ok(&o);
    assert!(!stderr(&o).contains("a-secret-never-logged"));
    // The prefix holds one run, its manifest, and _SUCCESS pointing at it; no sample, no
    // work files, nothing outside the run's prefix.
    let keys = moto.keys("data", "runs/a");
    assert!(keys.contains(&"runs/a/_SUCCESS".to_string()), "{keys:?}");
    let runs: std::collections::BTreeSet<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("runs/a/_runs/"))
        .map(|k| k.split('/').next().unwrap())
        .collect();
    assert_eq!(runs.len(), 1, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| !k.contains("/sample/") && !k.contains("inprogress")),
        "{keys:?}"
    );
    let remote = tmp.path().join("remote");
    moto.download_output("data", "runs/a", &remote);
    assert_same_outputs(&local, &remote);
    let s = summary(&remote);
    assert_eq!(s["model"], "s3://data/models/reward_small.onnx");
    assert_eq!(s["model_sha256"], summary(&local)["model_sha256"]);
    assert!(!std::fs::read_to_string(remote.join("summary.json"))
        .unwrap()
        .contains("a-secret"));
    // Read back with segscore sql, the same answer as the local output.
    let q = ROWS_QUERY;
    let sql = |t: &str| {
        let o = moto.segscore(&["sql", "-t", t, "--format", "csv", q], &[]);
        ok(&o);
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(sql("s3://data/runs/a"), sql(local.to_str().unwrap()));
    assert!(sql("s3://data/runs/a").contains("\n12000,"));
    // A plain Parquet table in the store, by prefix.
    let o = moto.segscore(
        &[
            "sql",
            "-t",
            "g=s3://data/inputs/",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM g",
        ],
        &[],
    );
    ok(&o);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n\n12000\n");
    // report writes into the committed run; compare reads both kinds.
    let o = moto.segscore(&["report", "s3://data/runs/a"], &[]);
    ok(&o);
    let url = String::from_utf8(o.stdout).unwrap();
    let key = url.trim().strip_prefix("s3://data/").unwrap().to_string();
    assert!(String::from_utf8(moto.get("data", &key).unwrap())
        .unwrap()
        .contains("<html"));
    let o = moto.segscore(
        &[
            "compare",
            "s3://data/runs/a",
            local.to_str().unwrap(),
            "--format",
            "json",
            "--bootstrap",
            "50",
        ],
        &[],
    );
    ok(&o);
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["mse_difference"]["difference"], 0.0, "{c}");
    // A model whose weights are in an external data object beside it: read from there.
    let score = |model: &str| {
        moto.segscore(
            &[
                "sql",
                "-q",
                "--format",
                "csv",
                "-m",
                model,
                "SELECT reward_model(make_array(1, 2, 3)) AS s",
            ],
            &[],
        )
    };
    let ext = "s3://data/models/ext/reward_small.onnx";
    moto.put_file(
        "data",
        "models/ext/reward_small.onnx",
        &test_model("external/reward_small.onnx"),
    );
    assert_fails(
        &score(ext),
        1,
        "its weights are in the external data file s3://data/models/ext/reward_small.onnx.data",
    );
    moto.put_file(
        "data",
        "models/ext/reward_small.onnx.data",
        &test_model("external/reward_small.onnx.data"),
    );
    let (o, want) = (score(ext), score(demo_model().to_str().unwrap()));
    ok(&o);
    assert_eq!(o.stdout, want.stdout);
}

#[test]
fn a_run_killed_mid_way_resumes_from_its_committed_shards() {
    let moto = Moto::start();
    moto.create_bucket("jobs");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 9_000, 2, false);
    upload_dir(&moto, "jobs", "in", &input);
    let model = demo_model();
    let local = tmp.path().join("local");
    moto.job_ok(input.to_str().unwrap(), &model, &local);
    // Killed right after the second shard's record: no _SUCCESS, readers find no output.
    for (at, resumed) in [("shard-committed:2", "2 of 3"), ("commit-begun:1", "")] {
        let out = format!("s3://jobs/out-{}", at.split(':').next().unwrap());
        let args = job("s3://jobs/in", model.to_str().unwrap(), &out, &[]);
        let o = moto.segscore(&args, &[("SEGSCORE_CRASH_AT", at)]);
        assert!(!o.status.success());
        let prefix = out.strip_prefix("s3://jobs/").unwrap();
        assert!(moto.get("jobs", &format!("{prefix}/_SUCCESS")).is_none(), "{at}");
        let o = moto.segscore(&["sql", "-t", &out, "SELECT 1"], &[]);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("not a complete segscore output"),
            "{}",
            stderr(&o)
        );
        // Without --resume: an error naming the interrupted run.
        let o = moto.segscore(&args, &[]);
        assert_fails(&o, 1, "holds an interrupted run");
        let mut resume = args.clone();
        resume.retain(|a| *a != "-q");
        resume.push("--resume");
        let o = moto.segscore(&resume, &[]);
        ok(&o);
        let text = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
        if !resumed.is_empty() {
            assert!(text.contains(resumed), "{at}: {text}");
        }
        let remote = tmp.path().join(format!("remote-{}", at.replace(':', "-")));
        moto.download_output("jobs", prefix, &remote);
        assert_same_outputs(&local, &remote);
        let keys = moto.keys("jobs", prefix);
        assert!(keys.iter().all(|k| !k.contains("/sample/")), "{keys:?}");
    }
    // An input object replaced after the crash (its size and time, as the check read them, are
    // the run's stamp of it): the interrupted run cannot be resumed over it.
    let out = "s3://jobs/out-changed";
    let args = job("s3://jobs/in", model.to_str().unwrap(), out, &[]);
    let o = moto.segscore(&args, &[("SEGSCORE_CRASH_AT", "shard-committed:2")]);
    assert!(!o.status.success());
    let other = tmp.path().join("other.parquet");
    write_rows(&other, &[row("zz", 0, 0.5, &[1, 2, 3])]);
    let first = moto.keys("jobs", "in/")[0].clone();
    moto.put_file("jobs", &first, &other);
    let mut resume = args.clone();
    resume.push("--resume");
    let o = moto.segscore(&resume, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot resume") && stderr(&o).contains("inputs"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn overwrite_never_shows_readers_a_mix_of_two_runs() {
    let moto = Moto::start();
    moto.create_bucket("overwrite");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 6_000, 2, false);
    upload_dir(&moto, "overwrite", "in", &input);
    let a = demo_model();
    let b = test_model("affine_mean.onnx");
    let q = ROWS_QUERY;
    let read = || {
        let o = moto.segscore(&["sql", "-t", "s3://overwrite/out", "--format", "csv", q], &[]);
        ok(&o);
        String::from_utf8(o.stdout).unwrap()
    };
    ok(&moto.segscore(
        &job(
            "s3://overwrite/in",
            a.to_str().unwrap(),
            "s3://overwrite/out",
            &[],
        ),
        &[],
    ));
    let first = read();
    // Without --overwrite a complete output is refused.
    let o = moto.segscore(
        &job(
            "s3://overwrite/in",
            b.to_str().unwrap(),
            "s3://overwrite/out",
            &[],
        ),
        &[],
    );
    assert_fails(&o, 1, "--overwrite");
    // An --overwrite run that dies mid-way and at the commit: readers still see run A whole.
    for at in ["shard-committed:1", "commit-begun:1"] {
        let o = moto.segscore(
            &job(
                "s3://overwrite/in",
                b.to_str().unwrap(),
                "s3://overwrite/out",
                &["--overwrite"],
            ),
            &[("SEGSCORE_CRASH_AT", at)],
        );
        assert!(!o.status.success());
        assert_eq!(read(), first, "{at}");
    }
    // Resumed, run B replaces A in one step, and A's objects are gone.
    let before: Vec<String> = moto.keys("overwrite", "out/_runs");
    ok(&moto.segscore(
        &job(
            "s3://overwrite/in",
            b.to_str().unwrap(),
            "s3://overwrite/out",
            &["--resume"],
        ),
        &[],
    ));
    let second = read();
    assert_ne!(second, first);
    let b_local = tmp.path().join("b");
    ok(&moto.segscore(
        &job(
            input.to_str().unwrap(),
            b.to_str().unwrap(),
            b_local.to_str().unwrap(),
            &[],
        ),
        &[],
    ));
    let o = moto.segscore(
        &["sql", "-t", b_local.to_str().unwrap(), "--format", "csv", q],
        &[],
    );
    assert_eq!(String::from_utf8(o.stdout).unwrap(), second);
    let after = moto.keys("overwrite", "out/_runs");
    // --resume --overwrite over another job's complete output runs this job and replaces it.
    ok(&moto.segscore(
        &job(
            "s3://overwrite/in",
            a.to_str().unwrap(),
            "s3://overwrite/out",
            &["--resume", "--overwrite"],
        ),
        &[],
    ));
    assert_eq!(read(), first);
    let run_of = |k: &String| k.split('/').nth(2).unwrap().to_string();
    let runs_after: std::collections::BTreeSet<String> = after.iter().map(run_of).collect();
    assert_eq!(runs_after.len(), 1, "{after:?}");
    assert!(
        before
            .iter()
            .map(run_of)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 2
    );
}

#[test]
fn globs_over_prefixes_select_objects_and_hidden_ones_are_skipped() {
    let moto = Moto::start();
    moto.create_bucket("globs");
    let tmp = tempfile::tempdir().unwrap();
    for (i, dir) in ["a", "b", "c"].iter().enumerate() {
        generate(&tmp.path().join(dir), 1_000 * (i as u64 + 1), 1, false);
    }
    upload_dir(&moto, "globs", "in/day=1", &tmp.path().join("a"));
    upload_dir(&moto, "globs", "in/day=2", &tmp.path().join("b"));
    upload_dir(&moto, "globs", "in/other", &tmp.path().join("c"));
    moto.put_file("globs", "in/day=1/_temporary/junk.parquet", &demo_model());
    let count = |input: &str| moto.count(input);
    assert_eq!(count("s3://globs/in/day=*/*.parquet"), "n\n3000\n");
    assert_eq!(count("s3://globs/in/day=2"), "n\n2000\n");
    // A prefix: every visible Parquet object under it (the _temporary one is not read).
    assert_eq!(count("s3://globs/in/"), "n\n6000\n");
    // The bucket itself is the prefix of everything in it (it was read as one empty object).
    assert_eq!(count("s3://globs"), "n\n6000\n");
    assert_eq!(count("s3://globs/"), "n\n6000\n");
    // Named in the query instead of by --table, as DuckDB reads them (day=1's 1000 segments
    // are the first 1000 of day=2's 2000: each of the glob's 3000 rows has its match).
    let o = moto.segscore(
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM 's3://globs/in/day=*/*.parquet' JOIN 's3://globs/in/day=2' USING (generation_id, segment_index)",
        ],
        &[],
    );
    ok(&o);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n\n3000\n");
    // COPY ... TO an object: uploaded whole, as --to is.
    let o = moto.segscore(
        &[
            "sql",
            "COPY (SELECT count(*) AS n FROM 's3://globs/in/day=2') TO 's3://globs/results/n.csv'",
        ],
        &[],
    );
    ok(&o);
    assert_eq!(moto.get("globs", "results/n.csv").unwrap(), b"n\n2000\n");
    // A CSV object is a table too.
    let o = moto.segscore(
        &[
            "sql",
            "--format",
            "csv",
            "SELECT n + 1 AS m FROM 's3://globs/results/n.csv'",
        ],
        &[],
    );
    ok(&o);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "m\n2001\n");
    let out = "s3://globs/out";
    let o = moto.segscore(
        &[
            "run",
            "-q",
            "-i",
            "s3://globs/in/d*=2/*.parquet",
            "-m",
            demo_model().to_str().unwrap(),
            "-o",
            out,
        ],
        &[],
    );
    ok(&o);
    let o = moto.segscore(
        &[
            "sql",
            "-t",
            out,
            "--format",
            "csv",
            "SELECT count(*) AS n FROM segments",
        ],
        &[],
    );
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n\n2000\n");
    let o = moto.segscore(
        &["sql", "-t", "t=s3://globs/in/nothing-*.parquet", "SELECT 1"],
        &[],
    );
    assert_fails(&o, 1, "s3://globs/in/nothing-*.parquet: no Parquet files found");
    let o = moto.segscore(&["sql", "-t", "t=s3://glo*/in/", "SELECT 1"], &[]);
    assert_fails(&o, 2, "a glob must be in the key, not the bucket name");
    // A Delta Lake table under a prefix (its folder holds a replaced file beside the live one):
    // read from its log as the prefix itself (in the default build; refused without the
    // `delta` feature), refused under a prefix above it or reached by a glob; a file given by
    // name is read.
    moto.create_bucket("lake");
    let delta = repo().join("tests/data/writers/delta");
    upload_dir(&moto, "lake", "tables/delta", &delta);
    let refused =
        "input s3://lake/tables/delta is a Delta Lake table (its log: s3://lake/tables/delta/_delta_log/)";
    let itself = (!cfg!(feature = "delta")).then_some("t=s3://lake/tables/delta");
    for input in itself.into_iter().chain(["t=s3://lake/", "t=s3://lake/t*"]) {
        let o = moto.segscore(&["sql", "-t", input, "SELECT 1"], &[]);
        assert_fails(&o, 2, refused);
    }
    // One inside a hidden folder is not read, so not refused (as a local search skips it).
    moto.create_bucket("archive");
    upload_dir(&moto, "archive", "in/_old/delta", &delta);
    upload_dir(&moto, "archive", "in/current", &tmp.path().join("a"));
    assert_eq!(count("s3://archive/in/"), "n\n1000\n");
    let live = std::fs::read_to_string(delta.join("_delta_log/00000000000000000001.json")).unwrap();
    let live = live
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find_map(|a| a["add"]["path"].as_str().map(String::from))
        .unwrap();
    assert_eq!(count(&format!("s3://lake/tables/delta/{live}")), "n\n30\n");
    // Keys holding characters a URL reads otherwise (`%`, `?`, `#`, a space) are read as they
    // are: one such object under a prefix failed the whole prefix ("No files found at
    // s3://odd/in/a%20b.parquet": DataFusion decoded the key it was given). A URL that names
    // an object is that object, glob characters or not (`data[1].parquet` was a glob matching
    // `data1.parquet` alone: "no Parquet files found").
    moto.create_bucket("odd");
    let one = walk(&tmp.path().join("a")).remove(0);
    let keys = [
        "in/a%20b.parquet",
        "in/q?=1.parquet",
        "in/x#y.parquet",
        "in/my data/part 1.parquet",
        // A glob that does not match its own key: the object it names is taken first.
        "in/data[1].parquet",
    ];
    for key in keys {
        moto.put_file("odd", key, &one);
    }
    assert_eq!(count("s3://odd/in/"), "n\n5000\n");
    let demo = demo_model();
    for key in keys {
        assert_eq!(count(&format!("s3://odd/{key}")), "n\n1000\n", "{key}");
        let out = tmp.path().join("odd-out");
        let input = format!("s3://odd/{key}");
        let args = job(
            &input,
            demo.to_str().unwrap(),
            out.to_str().unwrap(),
            &["--overwrite"],
        );
        ok(&moto.segscore(&args, &[]));
        assert_eq!(summary(&out)["n_segments"], 1000, "{key}");
    }
    // `key=value` prefixes under a prefix holding a `%`: each level a column.
    moto.put_file("odd", "h%/day=1/a%20b.parquet", &one);
    moto.put_file(
        "odd",
        "h%/day=2/q?.parquet",
        &walk(&tmp.path().join("b")).remove(0),
    );
    let by_day = "SELECT day, count(*) AS n FROM t GROUP BY day ORDER BY day";
    assert_eq!(moto.query("s3://odd/h%/", by_day), "day,n\n1,1000\n2,2000\n");
}

/// Files besides a run's tables, in the store: `sql --to`, `generate -o` and `demo -o` (written),
/// `sql --file` and `run --query-file` (read), `--spill-dir` (refused: local only).
#[test]
fn results_datasets_and_queries_in_the_store() {
    let moto = Moto::start();
    moto.create_bucket("globs");
    let tmp = tempfile::tempdir().unwrap();
    generate(&tmp.path().join("a"), 6_000, 2, false);
    upload_dir(&moto, "globs", "in", &tmp.path().join("a"));
    let count = |input: &str| moto.count(input);
    // `sql --to s3://...`: written locally (under TMPDIR, removed after), then uploaded whole;
    // it failed with a local "No such file or directory".
    let staging = tmp.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let tmpdir = [("TMPDIR", staging.to_str().unwrap())];
    let q = "SELECT count(*) AS n FROM t";
    for (to, want) in [
        ("s3://globs/results/n.csv", "n\n6000\n"),
        ("s3://globs/results/n.jsonl", "{\"n\":6000}\n"),
    ] {
        let o = moto.segscore(&["sql", "-q", "-t", "t=s3://globs/in/", "--to", to, q], &tmpdir);
        ok(&o);
        let key = to.trim_start_matches("s3://globs/");
        assert_eq!(String::from_utf8(moto.get("globs", key).unwrap()).unwrap(), want);
    }
    let o = moto.segscore(
        &[
            "sql",
            "-q",
            "-t",
            "t=s3://globs/in/",
            "--to",
            "s3://globs/results/n.parquet",
            q,
        ],
        &tmpdir,
    );
    ok(&o);
    assert_eq!(count("s3://globs/results/n.parquet"), "n\n1\n");
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "the local copies are removed"
    );
    // A missing bucket is named before the query runs; a file among the table's objects, or
    // under its prefix, is refused as a local one is.
    let o = moto.segscore(
        &["sql", "-t", "t=s3://globs/in/", "--to", "s3://nobucket/n.csv", q],
        &tmpdir,
    );
    assert_fails(&o, 1, "s3://nobucket/n.csv: the bucket does not exist");
    let o = moto.segscore(
        &[
            "sql",
            "-t",
            "t=s3://globs/in/",
            "--to",
            "s3://globs/in/day=3/n.parquet",
            q,
        ],
        &[],
    );
    assert_fails(&o, 2, "is under the input prefix s3://globs/in/");
    assert!(moto.get("globs", "in/day=3/n.parquet").is_none());
    // A query read from the store: `sql --file` and `run --query-file` (both read only local
    // files: "No such file or directory"). Sorts spill locally: a URL is refused.
    let q_file = tmp.path().join("count.sql");
    std::fs::write(&q_file, "SELECT count(*) AS n FROM t").unwrap();
    moto.put_file("globs", "queries/count.sql", &q_file);
    let job_file = job_query_where(tmp.path(), "g.segment_index >= 0");
    moto.put_file("globs", "queries/job.sql", &job_file);
    let o = moto.segscore(
        &[
            "sql",
            "-t",
            "t=s3://globs/in/",
            "--format",
            "csv",
            "-f",
            "s3://globs/queries/count.sql",
        ],
        &[],
    );
    ok(&o);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n\n6000\n");
    let model = demo_model();
    let job = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "-q",
            "-i",
            "s3://globs/in/",
            "-m",
            model.to_str().unwrap(),
            "-o",
            "s3://globs/out-q",
        ];
        args.extend_from_slice(extra);
        moto.segscore(&args, &[])
    };
    let o = job(&[
        "--query-file",
        "s3://globs/queries/job.sql",
        "--spill-dir",
        "s3://globs/spill",
    ]);
    assert_fails(&o, 2, "--spill-dir s3://globs/spill: sorts spill to local disk");
    ok(&job(&["--query-file", "s3://globs/queries/job.sql"]));
    let o = moto.segscore(
        &[
            "sql",
            "-t",
            "s3://globs/out-q",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM segments",
        ],
        &[],
    );
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n\n6000\n");
    // `generate -o s3://...` writes the dataset there (it wrote a local folder named `s3:`),
    // into an empty prefix only; the demo, a local tutorial, refuses a URL.
    let o = moto.segscore(
        &[
            "-q",
            "generate",
            "-o",
            "s3://globs/gen",
            "--segments",
            "500",
            "--files",
            "2",
        ],
        &tmpdir,
    );
    ok(&o);
    assert_eq!(count("s3://globs/gen"), "n\n500\n");
    let o = moto.segscore(
        &["-q", "generate", "-o", "s3://globs/gen", "--segments", "5"],
        &tmpdir,
    );
    assert_fails(
        &o,
        1,
        "s3://globs/gen: is not empty (holds gen/part-00000.parquet",
    );
    let o = moto.segscore(&["demo", "-o", "s3://globs/demo"], &tmpdir);
    assert_fails(&o, 2, "the demo writes a local folder");
    assert!(!Path::new("s3:").exists(), "nothing local under the URL's name");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
    for to in ["s3://globs", "s3://globs/results/"] {
        let o = moto.segscore(
            &["sql", "-t", "t=s3://globs/in/", "--format", "csv", "--to", to, q],
            &[],
        );
        assert_fails(&o, 2, "names a bucket or a prefix, not an object");
    }
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
}

/// Hive-style prefixes (`day=1/`) in a bucket give partition columns as local folders do; a
/// prefix's `key=value` levels were ignored, and `--hive-partitioning on` refused it as "not
/// a folder". A filter on the partition column reads only its prefixes.
#[test]
fn hive_partitioned_prefixes_give_partition_columns() {
    let moto = Moto::start();
    moto.create_bucket("hive");
    let tmp = tempfile::tempdir().unwrap();
    // Two sorted files hold disjoint generations: one per day.
    let gen = tmp.path().join("gen");
    generate(&gen, 3000, 2, false);
    let mut rows = Vec::new();
    for (i, f) in parts(&gen).iter().enumerate() {
        moto.put_file("hive", &format!("data/day={}/part-0.parquet", i + 1), f);
        rows.push(read_parquet(f).iter().map(|b| b.num_rows()).sum::<usize>());
    }
    // A file with a corrupt data page under day=3: read, it fails the run; pruned, it is never
    // read (its footer is sound: the input checks read every footer).
    moto.put_file(
        "hive",
        "data/day=3/part-0.parquet",
        &repo().join("tests/data/corrupt_data_page.parquet"),
    );
    let model = demo_model();
    let run = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "-q",
            "-i",
            "s3://hive/data/",
            "-m",
            model.to_str().unwrap(),
            "-o",
            out,
        ];
        args.extend_from_slice(extra);
        moto.segscore(&args, &[])
    };
    let o = run("s3://hive/out-all", &["--hive-partitioning", "on"]);
    assert_fails(&o, 1, "day=3");
    let query = job_query_where(tmp.path(), "g.day <> 3");
    let o = run("s3://hive/out", &["--query-file", query.to_str().unwrap()]);
    ok(&o);
    let o = moto.segscore(
        &[
            "sql",
            "-t",
            "s3://hive/out",
            "--format",
            "csv",
            "SELECT day, count(*) AS n FROM segments GROUP BY day ORDER BY day",
        ],
        &[],
    );
    ok(&o);
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        format!("day,n\n1,{}\n2,{}\n", rows[0], rows[1])
    );
    // A glob that takes every object under its prefix reads the prefix, partition column and
    // all (the filter keeps the corrupt day=3 object unread).
    let o = moto.segscore(
        &[
            "sql",
            "--format",
            "csv",
            "SELECT day, count(*) AS n FROM 's3://hive/data/day=*/*.parquet' WHERE day <> 3 GROUP BY day ORDER BY day",
        ],
        &[],
    );
    ok(&o);
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        format!("day,n\n1,{}\n2,{}\n", rows[0], rows[1])
    );
    let o = run(
        "s3://hive/out-one",
        &[
            "--hive-partitioning",
            "on",
            "--query-file",
            query.to_str().unwrap(),
        ],
    );
    ok(&o);
    // A hidden object under the prefix would be read by the partitioned table: refused.
    moto.put_file("hive", "data/day=2/_temporary/junk.parquet", &demo_model());
    let o = run(
        "s3://hive/out-hidden",
        &[
            "--hive-partitioning",
            "on",
            "--query-file",
            query.to_str().unwrap(),
        ],
    );
    assert_fails(
        &o,
        2,
        "_temporary/junk.parquet is hidden or in a temporary folder",
    );
}

/// A run asks the store for each input object's size once and reads its footer once: the
/// prefix's listing says each object's size and time, and the check and the scan's listing (a
/// HEAD per object, in each shard's plan) take its answer; the scan's footer reads find the
/// check's footers. `segscore sql` reads a table's footers once too, a plain table's, a
/// `key=value` prefix's and an output's; and its scans read ahead only what they read: whole
/// objects for most columns, one column's chunks for one, no object whose row groups a filter
/// leaves out (requests counted by moto's recorder).
#[test]
fn each_input_objects_size_and_footer_are_requested_once() {
    let tmp = tempfile::tempdir().unwrap();
    let recording = tmp.path().join("requests.jsonl");
    let moto = Moto::start_with(&[("MOTO_RECORDER_FILEPATH", recording.to_str().unwrap())]);
    moto.create_bucket("data");
    let input = tmp.path().join("in");
    generate(&input, 6_000, 5, false);
    upload_dir(&moto, "data", "in", &input);
    let files = walk(&input);
    assert_eq!(files.len(), 5);
    // Each object's HEADs, reads of its footer (a read that ends at its last byte), reads of
    // it whole (no range), reads, and the bytes of its ranged reads other than the footer's and
    // of its footer reads, in what `run` asks of the store, for the objects `keys` (each one's
    // key and size).
    type Counts = (usize, usize, usize, usize, (u64, u64));
    let counted_of = |run: &dyn Fn(), keys: &[(String, u64)]| -> Vec<Counts> {
        assert_eq!(
            moto.http("POST", "/moto-api/recorder/reset-recording", b"").0,
            200
        );
        assert_eq!(
            moto.http("POST", "/moto-api/recorder/start-recording", b"").0,
            200
        );
        run();
        assert_eq!(moto.http("POST", "/moto-api/recorder/stop-recording", b"").0, 200);
        let requests: Vec<serde_json::Value> = std::fs::read_to_string(&recording)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        keys.iter()
            .map(|(key, size)| {
                let last = size - 1;
                let of_it: Vec<&serde_json::Value> = requests
                    .iter()
                    .filter(|r| r["url"].as_str().unwrap().ends_with(&format!("/data/{key}")))
                    .collect();
                let gets: Vec<&str> = of_it
                    .iter()
                    .filter(|r| r["method"] == "GET")
                    .map(|r| r["headers"]["Range"].as_str().unwrap_or("whole"))
                    .collect();
                let footers = gets.iter().filter(|r| r.ends_with(&format!("-{last}"))).count();
                let heads = of_it.iter().filter(|r| r["method"] == "HEAD").count();
                let wholes = gets.iter().filter(|r| **r == "whole").count();
                let bytes = |footer: bool| -> u64 {
                    gets.iter()
                        .filter(|r| **r != "whole" && r.ends_with(&format!("-{last}")) == footer)
                        .map(|r| {
                            let (a, b) = r.strip_prefix("bytes=").unwrap().split_once('-').unwrap();
                            b.parse::<u64>().unwrap() + 1 - a.parse::<u64>().unwrap()
                        })
                        .sum()
                };
                (heads, footers, wholes, gets.len(), (bytes(false), bytes(true)))
            })
            .collect()
    };
    let size = |f: &Path| std::fs::metadata(f).unwrap().len();
    let keys: Vec<(String, u64)> = files
        .iter()
        .map(|f| {
            (
                format!("in/{}", f.file_name().unwrap().to_str().unwrap()),
                size(f),
            )
        })
        .collect();
    let counted = |run: &dyn Fn()| counted_of(run, &keys);
    let out = tmp.path().join("out");
    let model = demo_model();
    let run = || moto.job_ok("s3://data/in/", &model, &out);
    for (f, (heads, footers, wholes, reads, (ranged, tail))) in files.iter().zip(counted(&run)) {
        // No HEAD (the prefix's listing said each object's size and time), one footer read
        // (it failed with 5 HEADs and 2 footer reads), and each of the 3 shards' scans reads
        // the object whole, fetched ahead of the scan (a ranged read of its rows before).
        assert_eq!(
            (heads, footers, wholes, reads, ranged),
            (0, 1, 3, 4, 0),
            "{}",
            f.display()
        );
        // The footer read is the object's last 16 KiB, the least it reads, an eighth of a
        // larger object (its last 64 KiB, most of these objects of some 75 KB, before).
        assert_eq!(tail, 16 << 10, "{}", f.display());
    }
    // The same outputs as a run over the local files.
    let local = tmp.path().join("local");
    moto.job_ok(input.to_str().unwrap(), &model, &local);
    assert_same_outputs(&out, &local);
    // Objects of several row groups that the job's key ranges cut between two partitions: each
    // partition fetches its own row groups of the object it shares, so no byte of an object is
    // downloaded twice (the object cut was fetched whole by both partitions before).
    let cut_input = tmp.path().join("cut");
    generate_with(&cut_input, 6_000, 3, &["--row-group-rows", "250"]);
    upload_dir(&moto, "data", "cut", &cut_input);
    let cut_keys: Vec<(String, u64)> = walk(&cut_input)
        .iter()
        .map(|f| {
            (
                format!("cut/{}", f.file_name().unwrap().to_str().unwrap()),
                size(f),
            )
        })
        .collect();
    let one_shard = |input: &str, out: &Path| {
        let args = job(
            input,
            model.to_str().unwrap(),
            out.to_str().unwrap(),
            &["--shards", "1"],
        );
        ok(&moto.segscore(&args, &[]));
    };
    let cut_out = tmp.path().join("cut-out");
    let counts = counted_of(&|| one_shard("s3://data/cut/", &cut_out), &cut_keys);
    // The middle object is the one cut: read by range, the two others whole.
    let wholes: Vec<usize> = counts.iter().map(|c| c.2).collect();
    assert_eq!(wholes, vec![1, 0, 1], "{counts:?}");
    for ((key, size), (_, footers, wholes, _, (ranged, _))) in cut_keys.iter().zip(&counts) {
        // One footer read (two for the first object before: the cuts' read of its last row
        // group's generation ids fetched its tail again), and no byte read twice but for the
        // generation ids the cuts read (a few hundred bytes a row group).
        assert_eq!(*footers, 1, "{key}: {counts:?}");
        assert!(
            *wholes as u64 * size + ranged <= size + size / 20,
            "{key} ({size} bytes): {counts:?}"
        );
    }
    // The same outputs as a run over the local files.
    let cut_local = tmp.path().join("cut-local");
    one_shard(cut_input.to_str().unwrap(), &cut_local);
    assert_same_outputs(&cut_out, &cut_local);
    // `segscore sql`: the footer once (the count comes from it), whatever DataFusion's
    // listing asks (its HEAD, not pinned: a script may write an object it read).
    let count = || assert_eq!(moto.count("s3://data/in/").trim(), "n\n6000");
    for (f, (_, footers, _, reads, _)) in files.iter().zip(counted(&count)) {
        assert_eq!((footers, reads), (1, 1), "{}", f.display());
    }
    // A query that reads the rows of most columns: DataFusion's streams share the files in one
    // queue (no order needed), and read ahead of it together, each object in one read.
    let scan = || {
        let sql = "SELECT count(*) AS n FROM t WHERE cardinality(input_ids) > 0 AND cumulative_score > -1e9";
        assert_eq!(moto.query("s3://data/in/", sql).trim(), "n\n6000");
    };
    for (f, (_, footers, wholes, reads, _)) in files.iter().zip(counted(&scan)) {
        assert_eq!((footers, wholes, reads), (1, 1, 2), "{}", f.display());
    }
    // A query that reads one small column: only its chunks are fetched ahead, in one ranged
    // read (the object whole before: the token lists are most of its bytes).
    let narrow = |input: &str| {
        let sql = "SELECT count(*) AS n FROM t WHERE segment_index >= 0";
        assert_eq!(moto.query(input, sql).trim(), "n\n6000");
    };
    let index_only = || narrow("s3://data/in/");
    for (f, (_, footers, wholes, reads, (ranged, _))) in files.iter().zip(counted(&index_only)) {
        assert_eq!((footers, wholes, reads), (1, 0, 2), "{}", f.display());
        assert!(ranged > 0 && ranged < size(f) / 10, "{ranged} of {}", size(f));
    }
    // A query of one generation: the objects whose row groups cannot hold it (their footers'
    // minimums and maximums) are not read at all, as before the read-ahead; the one that
    // holds it is read by range.
    let first = read_parquet(&files[0]);
    let ids = first[0].column_by_name("generation_id").unwrap();
    let id = datafusion::arrow::util::display::array_value_to_string(ids, 0).unwrap();
    let one = || {
        let sql = format!("SELECT count(*) > 0 AS found FROM t WHERE generation_id = '{id}'");
        assert_eq!(moto.query("s3://data/in/", &sql).trim(), "found\ntrue");
    };
    for (i, (f, (_, footers, wholes, reads, (ranged, _)))) in files.iter().zip(counted(&one)).enumerate() {
        let want = if i == 0 { 2 } else { 1 };
        assert_eq!((footers, wholes, reads), (1, 0, want), "{}", f.display());
        assert!(i == 0 || ranged == 0);
    }
    // A peek (`LIMIT`, one stream): the first object holds the rows (DataFusion keeps only it
    // in the scan, by the footers' row counts), so the others are not read, nor fetched ahead.
    let peek = || {
        let o = moto.segscore(
            &[
                "sql",
                "--threads",
                "1",
                "-t",
                "t=s3://data/in/",
                "--format",
                "csv",
                "SELECT segment_index FROM t LIMIT 5",
            ],
            &[],
        );
        ok(&o);
        assert_eq!(String::from_utf8(o.stdout).unwrap().lines().count(), 6);
    };
    for (i, (f, (_, footers, wholes, reads, _))) in files.iter().zip(counted(&peek)).enumerate() {
        let want = if i == 0 { 2 } else { 1 };
        assert_eq!((footers, wholes, reads), (1, 0, want), "{}", f.display());
    }
    // The same objects under `key=value` prefixes: `sql` reads each footer once there too (its
    // hive tables left the footers out of the metadata cache, and the scan read them again).
    let hive: Vec<(String, u64)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let key = format!("hive/day={}/part-0.parquet", i + 1);
            moto.put_file("data", &key, f);
            (key, size(f))
        })
        .collect();
    let hive_narrow = || narrow("s3://data/hive/");
    for ((key, size), (_, footers, wholes, reads, (ranged, _))) in
        hive.iter().zip(counted_of(&hive_narrow, &hive))
    {
        assert_eq!((footers, wholes, reads), (1, 0, 2), "{key}");
        assert!(ranged > 0 && ranged < size / 10, "{ranged} of {size}");
    }
    // An output in the bucket read back as tables: each segments object's footer once (read
    // for the table, then by its scan, before).
    moto.job_ok("s3://data/in/", &model, Path::new("s3://data/out-s3"));
    let written: Vec<(String, u64)> = moto
        .keys("data", "out-s3/")
        .into_iter()
        .filter(|k| k.contains("/segments/") && k.ends_with(".parquet"))
        .map(|k| {
            let len = moto.get("data", &k).unwrap().len() as u64;
            (k, len)
        })
        .collect();
    assert!(!written.is_empty());
    let read_back = || {
        let o = moto.segscore(
            &[
                "sql",
                "-t",
                "s3://data/out-s3",
                "--format",
                "csv",
                "SELECT count(*) AS n FROM segments WHERE segment_index >= 0",
            ],
            &[],
        );
        ok(&o);
        assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), "n\n6000");
    };
    for ((key, _), (_, footers, _, _, _)) in written.iter().zip(counted_of(&read_back, &written)) {
        assert_eq!(footers, 1, "{key}");
    }
}

#[test]
fn missing_buckets_keys_and_unreachable_stores_are_clear_errors() {
    let moto = Moto::start();
    moto.create_bucket("here");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 500, 1, false);
    upload_dir(&moto, "here", "in", &input);
    let model = demo_model();
    let m = model.to_str().unwrap();
    let local = tmp.path().join("o");
    let lo = local.to_str().unwrap();
    // A bad row in an object: named by its object and row.
    write_rows(&tmp.path().join("bad/a.parquet"), &[row("a", 0, 0.1, &[1])]);
    write_rows(
        &tmp.path().join("bad/b.parquet"),
        &[row("b", 0, 0.1, &[1]), row("b", 1, f64::NAN, &[2])],
    );
    upload_dir(&moto, "here", "bad", &tmp.path().join("bad"));
    // Hive and Flink name their files `000000_0`: a prefix of such objects says so.
    moto.put_file("here", "hive/000000_0", &tmp.path().join("bad/a.parquet"));
    moto.put_file("here", "hive/_SUCCESS", &tmp.path().join("bad/a.parquet"));
    // More objects than are checked at once (their footers are fetched side by side): of two
    // bad ones, the first in the objects' order is named.
    let good = tmp.path().join("bad/a.parquet");
    let garbage = tmp.path().join("garbage.parquet");
    std::fs::write(&garbage, b"not a parquet file at all").unwrap();
    let no_scores = tmp.path().join("no_scores.parquet");
    write_batch(
        &no_scores,
        &batch(&[row("c", 0, 0.1, &[1])]).project(&[0, 1, 3]).unwrap(),
    );
    for i in 0..40 {
        let local = match i {
            17 => &garbage,
            31 => &no_scores,
            _ => &good,
        };
        moto.put_file("here", &format!("many/part-{i:03}.parquet"), local);
    }
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "-i", "s3://here/many/", "-m", m, "-o", lo],
            "input file s3://here/many/part-017.parquet: not a readable Parquet file",
        ),
        (
            vec!["run", "-i", "s3://here/hive/", "-m", m, "-o", lo],
            "s3://here/hive/: no Parquet files found (it holds 1 object without the .parquet extension, such as s3://here/hive/000000_0: give such objects by name)",
        ),
        (
            vec!["sql", "-t", "t=s3://here/hive/0*", "SELECT 1"],
            "s3://here/hive/0*: no Parquet files found (it holds 1 object without the .parquet extension, such as s3://here/hive/000000_0",
        ),
        (
            vec!["run", "-i", "s3://here/bad/", "-m", m, "-o", lo],
            "at generation_id=b, segment_index=1 (input row 1 of s3://here/bad/b.parquet, counting from 0)",
        ),
        (
            vec!["run", "-i", "s3://missing/in/", "-m", m, "-o", lo],
            "s3://missing/in: the bucket does not exist",
        ),
        (
            vec!["run", "-i", "s3://here/in/", "-m", m, "-o", "s3://missing/out"],
            "s3://missing/out: the bucket does not exist",
        ),
        (
            vec![
                "run",
                "-i",
                "s3://here/in/",
                "-m",
                "s3://here/none.onnx",
                "-o",
                lo,
            ],
            "s3://here/none.onnx: no such object",
        ),
        (
            vec!["run", "-i", "s3://here/in/part-00009.parquet", "-m", m, "-o", lo],
            "s3://here/in/part-00009.parquet: no Parquet files found",
        ),
        (
            vec!["sql", "-t", "s3://here/in/", "SELECT 1"],
            "s3://here/in: not a complete segscore output (no _SUCCESS)",
        ),
    ];
    for (args, want) in cases {
        let o = moto.segscore(&args, &[]);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("a-secret-never-logged"));
        assert!(!local.exists());
    }
    // Named, such an object is read.
    let o = moto.segscore(
        &[
            "sql",
            "-t",
            "t=s3://here/hive/000000_0",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM t",
        ],
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n1\n", "{}", stderr(&o));
    // A prefix another tool wrote (Spark's empty _SUCCESS): refused without --overwrite,
    // replaced with it, and the other tool's files are left alone.
    moto.put_file(
        "here",
        "spark/_SUCCESS",
        &tmp.path().join("in/part-00000.parquet"),
    );
    moto.put_file(
        "here",
        "spark/part-0.parquet",
        &tmp.path().join("in/part-00000.parquet"),
    );
    let to_spark = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "-q",
            "-i",
            "s3://here/in/",
            "-m",
            m,
            "-o",
            "s3://here/spark",
        ];
        args.extend_from_slice(extra);
        moto.segscore(&args, &[])
    };
    let o = to_spark(&[]);
    assert_fails(
        &o,
        1,
        "s3://here/spark: is not empty (holds _SUCCESS, part-0.parquet)",
    );
    let o = to_spark(&["--overwrite"]);
    ok(&o);
    assert!(moto
        .keys("here", "spark")
        .contains(&"spark/part-0.parquet".to_string()));
    let o = moto.segscore(
        &[
            "sql",
            "-t",
            "s3://here/spark",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM segments",
        ],
        &[],
    );
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n\n500\n");
    // The bucket that did not exist was not created, and nothing was written to it.
    assert!(moto
        .keys("here", "")
        .iter()
        .all(|k| ["in/", "bad/", "hive/", "spark/", "many/"]
            .iter()
            .any(|p| k.starts_with(p))));
    // A store that checks credentials: unknown keys are access denied, named as such.
    let strict = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let o = strict.segscore(&["run", "-i", "s3://here/in/", "-m", m, "-o", lo], &[]);
    assert_fails(&o, 1, "s3://here/in: access denied");
    assert!(!stderr(&o).contains("a-secret-never-logged"));
    // An endpoint nobody listens on: an error within seconds, naming the URL.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{dead}");
    let o = moto.segscore(
        &[
            "--s3-endpoint",
            &endpoint,
            "run",
            "-i",
            "s3://here/in/",
            "-m",
            m,
            "-o",
            lo,
        ],
        &[],
    );
    assert_fails(&o, 1, "s3://here/in: cannot reach the object store");
    // No credentials anywhere (no variables, no profile): the chain ends at the instance
    // metadata service, here a port nobody listens on. Named as missing credentials (it read
    // "Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/token").
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let o = Command::new(BIN)
        .args(["run", "-i", "s3://here/in/", "-m", m, "-o", lo])
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("AWS_CONFIG_FILE")
        .env("HOME", &home)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_METADATA_ENDPOINT", &endpoint)
        .output()
        .unwrap();
    assert_fails(&o, 1, "s3://here/in: no credentials: none in AWS_ACCESS_KEY_ID");
    assert!(!local.exists());
}

#[test]
fn text_input_with_the_model_and_tokenizer_in_the_store_equals_a_local_run() {
    let moto = Moto::start();
    moto.create_bucket("text");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate_with(&input, 300, 1, &["--text"]);
    upload_dir(&moto, "text", "in", &input);
    let (model, tokenizer) = (
        repo().join("models/prm_causal.onnx"),
        repo().join("models/gpt2-tokenizer.json"),
    );
    moto.put_file("text", "m/prm_causal.onnx", &model);
    moto.put_file("text", "m/tokenizer.json", &tokenizer);
    let text = DEMO_TEXT;
    let local = tmp.path().join("local");
    let mut args = job(
        input.to_str().unwrap(),
        model.to_str().unwrap(),
        local.to_str().unwrap(),
        &text,
    );
    args.extend(["--tokenizer", tokenizer.to_str().unwrap()]);
    ok(&moto.segscore(&args, &[]));
    let mut args = job(
        "s3://text/in",
        "s3://text/m/prm_causal.onnx",
        "s3://text/out",
        &text,
    );
    args.extend(["--tokenizer", "s3://text/m/tokenizer.json"]);
    ok(&moto.segscore(&args, &[]));
    let remote = tmp.path().join("remote");
    moto.download_output("text", "out", &remote);
    assert_same_outputs(&local, &remote);
    let (s, l) = (summary(&remote), summary(&local));
    assert_eq!(s["text"]["tokenizer"], "s3://text/m/tokenizer.json");
    assert_eq!(s["text"]["tokenizer_sha256"], l["text"]["tokenizer_sha256"]);
}

#[test]
fn input_that_only_seemed_sorted_falls_back_to_the_sort_with_uploads_under_way() {
    let moto = Moto::start();
    moto.create_bucket("fallback");
    let tmp = tempfile::tempdir().unwrap();
    // Sorted but for the last generation's two rows (one row group: the footer cannot tell),
    // so the first pass streams and uploads parts before it finds the disorder.
    let mut rows = Vec::new();
    for g in 0..3000 {
        for s in 0..3 {
            rows.push(row(
                &format!("g{g:05}"),
                s,
                (g * 3 + s) as f64 * 1e-3,
                &ids_for(0.5),
            ));
        }
    }
    let n = rows.len();
    rows.swap(n - 1, n - 2);
    let input = tmp.path().join("in/part-0.parquet");
    write_rows(&input, &rows);
    let local = tmp.path().join("local");
    let extra = ["--max-rows-per-file", "500", "--shards", "1"];
    ok(&moto.segscore(
        &job(
            input.to_str().unwrap(),
            test_model("affine_mean.onnx").to_str().unwrap(),
            local.to_str().unwrap(),
            &extra,
        ),
        &[],
    ));
    ok(&moto.segscore(
        &job(
            input.to_str().unwrap(),
            test_model("affine_mean.onnx").to_str().unwrap(),
            "s3://fallback/out",
            &extra,
        ),
        &[],
    ));
    let remote = tmp.path().join("remote");
    moto.download_output("fallback", "out", &remote);
    assert_eq!(summary(&remote)["input_order"], "sorted");
    assert_same_outputs(&local, &remote);
    // Only the files the manifest lists are left in the run's prefix.
    let listed = walk(&remote).len() - 1; // all but summary.json
    let keys = moto.keys("fallback", "out/_runs");
    let parts = keys.iter().filter(|k| k.ends_with(".parquet")).count();
    assert_eq!(parts, listed, "{keys:?}");
}

#[cfg(feature = "cluster")]
#[test]
fn a_cluster_reads_inputs_and_the_model_from_s3_and_the_client_writes_there() {
    let moto = Moto::start();
    moto.create_bucket("data");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    generate(&input, 6_000, 2, false);
    upload_dir(&moto, "data", "inputs", &input);
    moto.put_file("data", "models/reward_small.onnx", &demo_model());
    // The executors read the inputs and the model with their own credentials.
    let endpoint = moto.endpoint();
    let cluster = crate::cluster::Cluster::start_with(
        2,
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "a-secret-never-logged"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    let url = cluster.url();
    let (local, from_cluster) = (dir.path().join("local"), dir.path().join("cluster"));
    run_ok(
        &[&input],
        &demo_model(),
        &local,
        &["--threads", "2", "--shards", "3", "--max-rows-per-file", "3000"],
    );
    ok(&moto.segscore(
        &job(
            "s3://data/inputs/",
            "s3://data/models/reward_small.onnx",
            "s3://data/out/",
            &["--cluster", &url],
        ),
        &[],
    ));
    moto.download_output("data", "out", &from_cluster);
    assert_same_output(
        &read_segments(&from_cluster),
        &read_segments(&local),
        1e-6,
        "s3 on a cluster",
    );
    let s = summary(&from_cluster);
    assert_eq!(s["n_segments"], 6_000);
    assert_eq!(
        s["cluster"]["executors"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        6_000
    );
    assert!(!serde_json::to_string(&s)
        .unwrap()
        .contains("a-secret-never-logged"));
    // Nor any cluster process's log.
    assert!(!cluster.logs().contains("a-secret-never-logged"));
    // Text: the executors read the tokenizer from the store too.
    let text_in = dir.path().join("text");
    demo_text(&text_in, 1_000, 2);
    upload_dir(&moto, "data", "text", &text_in);
    let (model, tokenizer) = (
        repo().join("models/prm_causal.onnx"),
        repo().join("models/gpt2-tokenizer.json"),
    );
    moto.put_file("data", "models/prm_causal.onnx", &model);
    moto.put_file("data", "models/tokenizer.json", &tokenizer);
    let local = dir.path().join("text-local");
    let flags = [&DEMO_TEXT[..], &["--tokenizer", tokenizer.to_str().unwrap()]].concat();
    run_ok(&[&text_in], &model, &local, &flags);
    let flags = [
        &DEMO_TEXT[..],
        &[
            "--tokenizer",
            "s3://data/models/tokenizer.json",
            "--cluster",
            &url,
        ],
    ]
    .concat();
    let args = job(
        "s3://data/text/",
        "s3://data/models/prm_causal.onnx",
        "s3://data/text-out/",
        &flags,
    );
    ok(&moto.segscore(&args, &[]));
    let from_cluster = dir.path().join("text-cluster");
    moto.download_output("data", "text-out", &from_cluster);
    assert_same_output(
        &read_segments(&from_cluster),
        &read_segments(&local),
        1e-6,
        "text from s3 on a cluster",
    );
    assert_eq!(
        summary(&from_cluster)["text"]["tokenizer"],
        "s3://data/models/tokenizer.json"
    );
}

/// Delta Lake tables under a prefix are read from their logs, as local ones are: the replaced
/// file of an overwrite is not counted, and a partitioned table's day comes from its keys.
#[cfg(feature = "delta")]
#[test]
fn delta_lake_tables_in_a_bucket_run_from_their_log() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let writers = repo().join("tests/data/writers");
    upload_dir(&moto, "lake", "delta", &writers.join("delta"));
    upload_dir(&moto, "lake", "parts", &writers.join("delta_partitioned"));
    // Two files under the prefix, one live: 30 rows, not 60.
    assert_eq!(moto.count("s3://lake/delta"), "n\n30\n");
    let o = moto.segscore(
        &[
            "sql",
            "--format",
            "csv",
            "SELECT day, count(*) AS n FROM 's3://lake/parts/' GROUP BY day ORDER BY day",
        ],
        &[],
    );
    ok(&o);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "day,n\n1,10\n2,10\n3,10\n");
    let model = demo_model();
    let o = moto.segscore(
        &job("s3://lake/delta", model.to_str().unwrap(), "s3://lake/out", &[]),
        &[],
    );
    ok(&o);
    // Partition values a folder name escapes (`tag=x%20y%25`), which the log's paths escape
    // again: each path decoded once is the key (taken as it was, they named no object, and the
    // table's folder was said to hold "Parquet files the table does not").
    upload_dir(&moto, "lake", "escaped", &writers.join("delta_escaped"));
    let by_tag = "SELECT tag, count(*) AS n FROM t GROUP BY tag ORDER BY tag";
    assert_eq!(
        moto.query("s3://lake/escaped", by_tag),
        "tag,n\nplain,10\nx y%,10\nz#1,10\n"
    );
    let out = tempfile::tempdir().unwrap();
    let args = job(
        "s3://lake/escaped",
        model.to_str().unwrap(),
        out.path().to_str().unwrap(),
        &["--overwrite"],
    );
    ok(&moto.segscore(&args, &[]));
    assert_eq!(summary(out.path())["n_segments"], 30);
}
