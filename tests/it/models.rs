//! Execution providers, finding ONNX Runtime, and models as exporters write them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;

/// The run of test model `model` over `input` on the CPU with `extra` flags, written to
/// `out`: its predictions by key, and its summary.
fn scored(
    input: &Path,
    model: &str,
    out: &Path,
    extra: &[&str],
) -> (BTreeMap<(String, i64), f64>, serde_json::Value) {
    let mut args = vec!["--provider", "cpu"];
    args.extend_from_slice(extra);
    run_ok(&[input], &test_model(model), out, &args);
    (by_key(&read_segments(out), "predicted_score"), summary(out))
}

#[test]
fn cuda_provider_fails_clearly_instead_of_falling_back() {
    // This machine's ONNX Runtime is the CPU build: `--provider cuda` must fail, never run on
    // the CPU silently. (On a CUDA machine with the CUDA build, see benches/gpu.sh.)
    if std::env::var_os("SEGSCORE_TEST_HAS_CUDA").is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &[row("g", 0, 0.1, &[1, 2])]);
    let out = tmp.path().join("out");
    let o = run(&[&input], &demo_model(), &out, &["--provider", "cuda"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("execution provider cuda") && err.contains("could not be registered"),
        "{err}"
    );
    assert!(err.contains("fetch-ort.sh --cuda"), "says how to get it: {err}");
    assert_no_output(&out);
    // auto falls back to the CPU, and says so in the summary.
    run_ok(&[&input], &demo_model(), &out, &["--provider", "auto"]);
    assert_eq!(summary(&out)["provider"], "cpu");
}

#[test]
fn missing_onnxruntime_library_says_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &[row("g", 0, 0.1, &[1, 2])]);
    let out = tmp.path().join("out");
    let o = std::process::Command::new(BIN)
        .args(run_args(&[&input], &demo_model(), &out, &[]))
        .env("ORT_DYLIB_PATH", tmp.path().join("libonnxruntime.so.0"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("ORT_DYLIB_PATH") && err.contains("fetch-ort.sh"),
        "{err}"
    );
    assert_no_output(&out);
}

/// ONNX Runtime 1.29+ on Linux writes a device id and a telemetry event store under
/// `$HOME/.cache/Microsoft/DeveloperTools` (and uploads them when it can) unless
/// `ORT_DISABLE_TELEMETRY=1` is set before it starts; the binary sets it.
#[test]
fn onnxruntime_records_no_telemetry() {
    let home = tempfile::tempdir().unwrap();
    let input = home.path().join("in.parquet");
    write_rows(&input, &[row("g", 0, 0.1, &[1, 2]), row("g", 1, 0.3, &[3])]);
    let out = home.path().join("out");
    let o = std::process::Command::new(BIN)
        .args(run_args(&[&input], &demo_model(), &out, &["-q"]))
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("ORT_DISABLE_TELEMETRY")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&out)["n_segments"], 2);
    let cache = home.path().join(".cache");
    assert!(!cache.exists(), "ONNX Runtime wrote {}", cache.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_score_their_own_batches_while_every_pool_thread_has_one() {
    use datafusion::arrow::array::{Array, ListArray};
    use datafusion::arrow::datatypes::Int64Type;
    use segscore::model::{ModelOptions, Provider, RewardModel};
    use std::sync::Arc;
    // 3,000 rows of 1 to 40 tokens: a dozen model batches of at most 256 rows.
    let ids: Vec<Option<Vec<Option<i64>>>> = (0..3_000i64)
        .map(|r| Some((0..1 + r % 40).map(|t| Some((r * 7 + t * 13) % 1000)).collect()))
        .collect();
    let ids = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(ids));
    let opts = ModelOptions {
        provider: Provider::Cpu,
        ..ModelOptions::default()
    };
    let model = Arc::new(RewardModel::load(&demo_model(), &opts).unwrap());
    assert!(!model.runs_on_caller(), "outside a job partition: the pool");
    let pooled = model.predict(ids.as_ref(), None).unwrap();
    assert_eq!(pooled.null_count(), 0);
    let threads = rayon::current_num_threads();
    if threads > 1 {
        let m = Arc::clone(&model);
        let alone = model.partition(async move { m.runs_on_caller() }).await;
        assert!(!alone, "one partition for {threads} threads: the pool");
    }
    // As many partitions as threads, all streaming: each scores on its own thread, the same
    // scores bit for bit (the same batches).
    let barrier = Arc::new(tokio::sync::Barrier::new(threads));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..threads {
        let (m, barrier, ids) = (Arc::clone(&model), Arc::clone(&barrier), Arc::clone(&ids));
        tasks.spawn(async move {
            let inner = Arc::clone(&m);
            m.partition(async move {
                barrier.wait().await;
                let own = inner.runs_on_caller();
                // Work on the blocking pool counts as the partition's own when the partition
                // hands it over as such, and only then.
                let blocking = {
                    let m = Arc::clone(&inner);
                    tokio::task::spawn_blocking(move || m.runs_on_caller())
                        .await
                        .unwrap()
                };
                let handed = {
                    let m = Arc::clone(&inner);
                    let work = inner.partition_work(move || m.runs_on_caller());
                    tokio::task::spawn_blocking(work).await.unwrap()
                };
                let scores = inner.predict(ids.as_ref(), None).unwrap();
                barrier.wait().await;
                (own, blocking, handed, scores)
            })
            .await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (own, blocking, handed, scores) = joined.unwrap();
        assert!(
            own,
            "{threads} partitions for {threads} threads: their own threads"
        );
        assert!(!blocking, "a blocking task is not the partition's thread");
        assert!(
            handed,
            "the partition's work handed to the blocking pool runs as its own"
        );
        assert_eq!(scores, pooled);
    }
    assert!(!model.runs_on_caller(), "every partition ended: the pool again");
    // Outside a partition, handed-over work is plain work.
    let m = Arc::clone(&model);
    let work = model.partition_work(move || m.runs_on_caller());
    assert!(!tokio::task::spawn_blocking(work).await.unwrap());
}

/// `bench-model` (the benches' model-only timing) times the model on the rows asked for, and a
/// file without token ids is named.
#[test]
fn bench_model_times_the_rows_asked_for_and_names_a_file_without_token_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    let rows: Vec<Row> = (0..40)
        .map(|i| row(&format!("g{}", i / 4), i % 4, 0.1, &[1 + i, 2]))
        .collect();
    write_rows(&input, &rows);
    let model = demo_model();
    let bench = |input: &Path| {
        let (input, model) = (input.to_str().unwrap(), model.to_str().unwrap());
        segscore(&[
            "bench-model",
            "-q",
            "-i",
            input,
            "-m",
            model,
            "--provider",
            "cpu",
            "--rows",
            "25",
            "--threads",
            "1",
        ])
    };
    let o = bench(&input);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["rows"].as_u64(), v["threads"].as_u64()), (Some(25), Some(1)));
    assert_eq!(v["provider"], "cpu");
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    let texts = tmp.path().join("texts.parquet");
    let text: datafusion::arrow::array::ArrayRef =
        std::sync::Arc::new(datafusion::arrow::array::StringArray::from(vec!["a", "b"]));
    let b = datafusion::arrow::array::RecordBatch::try_from_iter([("text", text)]).unwrap();
    write_batch(&texts, &b);
    let o = bench(&texts);
    assert_fails(
        &o,
        1,
        &format!(
            "input file {}: missing column `input_ids` (the token ids column",
            texts.display()
        ),
    );
    // A file that is not Parquet is named, and a store URL is refused up front (it read
    // neither: "Parquet error: Invalid Parquet file. Corrupt footer", and a local file
    // named after the URL).
    let bad = tmp.path().join("bad.parquet");
    std::fs::write(&bad, b"not parquet").unwrap();
    assert_fails(
        &bench(&bad),
        1,
        &format!("input file {}: not a readable Parquet file", bad.display()),
    );
    assert_fails(
        &bench(Path::new("s3://bucket/data")),
        2,
        "--input s3://bucket/data: bench-model reads local files; give a path",
    );
    // As `run` does, no zero rows, batch or token budget (each was taken: 0 rows timed as
    // all padding, a batch of 0 as a batch of 1).
    let input = input.to_str().unwrap();
    for flag in ["--rows", "--batch-size", "--max-tokens-per-batch"] {
        let o = segscore(&[
            "bench-model",
            "-i",
            input,
            "-m",
            model.to_str().unwrap(),
            flag,
            "0",
        ]);
        assert_fails(&o, 2, &format!("invalid value '0' for '{flag}"));
    }
}

/// A model whose batch dimension is fixed (`[1, seq]`: `torch.onnx.export` without
/// `dynamic_axes`) failed at its first call with ONNX Runtime's "Got invalid dimensions for
/// input". Its batches are now cut to that many rows and filled to it: the same predictions as
/// the model with a free batch axis, the same graph otherwise.
#[test]
fn a_model_with_a_fixed_batch_dimension_scores_as_a_free_one_does() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 500, 2, true);
    let scores = |model: &str, out: &str| {
        let extra = ["--batch-size", "8", "--threads", "2"];
        scored(&input, model, &tmp.path().join(out), &extra).0
    };
    let free = scores("affine_mean.onnx", "free");
    assert_eq!(free.len(), 500);
    for rows in [1, 3] {
        let fixed = scores(&format!("affine_batch{rows}.onnx"), &format!("b{rows}"));
        assert_eq!(fixed, free, "batch fixed at {rows}");
        let o = segscore(&[
            "inspect",
            test_model(&format!("affine_batch{rows}.onnx")).to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(&format!(
                "the batch dimension is fixed: every call takes {rows} row"
            )),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}

/// A score output in float16 or bfloat16 (a model converted to half precision for a GPU) was
/// refused ("a score must be float32 or float64"). It is read and widened: the float32 model's
/// score rounded to the half type, to the last bit.
#[test]
fn half_precision_score_outputs_are_read_and_widened() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 300, 1, false);
    let scores = |model: &str| scored(&input, model, &tmp.path().join(model), &[]).0;
    let full = scores("affine_mean.onnx");
    let f16 = scores("affine_f16.onnx");
    let bf16 = scores("affine_bf16.onnx");
    assert_eq!(full.len(), 300);
    let mut coarser = 0;
    for (k, &p) in &full {
        let p32 = p as f32;
        assert_eq!(f16[k], half::f16::from_f32(p32).to_f64(), "{k:?}");
        assert_eq!(bf16[k], half::bf16::from_f32(p32).to_f64(), "{k:?}");
        coarser += usize::from(f16[k] != p);
    }
    assert!(coarser > 0, "float16 rounds some of the scores");
}

/// A model whose weights are in an external data file beside it (how large models are
/// exported: `model.onnx` and `model.onnx.data`) could not be loaded: ONNX Runtime, given the
/// model's bytes, looked for the data in the working directory, so a file of that name there
/// was used, whatever it held. The data is read from the model's folder: the run scores as the
/// same model in one file does, from any working directory, a decoy data file there is never
/// read, `model_sha256` covers the weights, and a missing or short data file is named.
#[test]
fn a_model_with_external_data_is_read_from_its_folder_and_hashed_with_it() {
    use sha2::{Digest, Sha256};
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 400, 1, false);
    let external = test_model("external/reward_small.onnx");
    let data = std::fs::read(test_model("external/reward_small.onnx.data")).unwrap();
    // A working directory holding a data file of the same name whose weights are all zero.
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    std::fs::write(cwd.join("reward_small.onnx.data"), vec![0u8; data.len()]).unwrap();
    let run_in_cwd = |model: &Path, out: &str| {
        let out = tmp.path().join(out);
        let args = run_args(&[&input], model, &out, &["--provider", "cpu"]);
        (segscore_in(&cwd, &args), out)
    };
    let (o, one_file) = run_in_cwd(&demo_model(), "one-file");
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, split) = run_in_cwd(&external, "external");
    assert!(o.status.success(), "{}", stderr(&o));
    let want = by_key(&read_segments(&one_file), "predicted_score");
    assert_eq!(want.len(), 400);
    assert_eq!(by_key(&read_segments(&split), "predicted_score"), want);
    let mut h = Sha256::new();
    h.update(std::fs::read(&external).unwrap());
    h.update(&data);
    assert_eq!(summary(&split)["model_sha256"], hex::encode(h.finalize()));
    // The graph alone, in a folder without its data (the decoy is in the working directory).
    let alone = tmp.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(&external, alone.join("reward_small.onnx")).unwrap();
    let (o, out) = run_in_cwd(&alone.join("reward_small.onnx"), "alone-out");
    assert_fails(
        &o,
        1,
        &format!(
            "its weights are in the external data file {} (`reward_small.onnx.data` beside it): cannot read",
            alone.join("reward_small.onnx.data").display()
        ),
    );
    assert!(!out.join("_SUCCESS").exists());
    // A data file cut short is ONNX Runtime's to refuse.
    std::fs::write(alone.join("reward_small.onnx.data"), &data[..100]).unwrap();
    let (o, _) = run_in_cwd(&alone.join("reward_small.onnx"), "short-out");
    assert_fails(&o, 1, "ONNX Runtime cannot load it");
    // `inspect` and `sql`'s reward_model() read it the same way; inspect names the data file
    // and gives the sha256 a run records.
    let o = segscore(&["inspect", external.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        shown.contains("external data: reward_small.onnx.data (32000 bytes, beside the model)")
            && shown.contains(&format!(
                "sha256: {}",
                summary(&split)["model_sha256"].as_str().unwrap()
            )),
        "{shown}"
    );
    // The export's folder given as the model names the model file in it.
    let folder = external.parent().unwrap();
    let o = segscore(&["inspect", folder.to_str().unwrap()]);
    assert_fails(
        &o,
        1,
        &format!(
            "model {}: is a folder; give the model file in it: {}",
            folder.display(),
            external.display()
        ),
    );
    let score = |model: &Path| sql_csv_with_model(model, "SELECT reward_model(make_array(1, 2, 3)) AS s");
    assert_eq!(score(&external), score(&demo_model()));
}

/// A sequence classifier exported with two labels gives logits `[batch, 2]`; it was refused
/// ("a score output is [batch], [batch, 1], ..."). `--score-label K` scores the softmax
/// probability of class K, as for classes per token, whatever a call's length (calls of two
/// tokens give as many positions as classes); without it, or with a class it lacks, the error
/// says what to give.
#[test]
fn a_sequence_classifier_scores_the_softmax_of_the_class_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    let mut rows = Vec::new();
    for g in 0..6i64 {
        for k in 0..3i64 {
            let ids: Vec<i64> = (1..=k + 1).map(|i| 100 * g + 37 * i + 11 * k).collect();
            rows.push(row(&format!("g{g}"), k, 0.1 * (g + k) as f64, &ids));
        }
    }
    write_rows(&input, &rows);
    let scores = |model: &str, out: &str, extra: &[&str]| scored(&input, model, &tmp.path().join(out), extra);
    let (affine, _) = scores("affine_mean.onnx", "affine", &["--batch-size", "1"]);
    let (one_by_one, s) = scores(
        "affine_two_class.onnx",
        "c1",
        &["--score-label", "1", "--batch-size", "1"],
    );
    assert_eq!(s["score_output"], "per sequence, softmax of 2 classes, class 1");
    assert_eq!(one_by_one.len(), 18);
    for (key, a) in &affine {
        let want = 1.0 / (1.0 + (-4.0 * a).exp());
        assert!(
            (one_by_one[key] - want).abs() < 1e-12,
            "{key:?}: {} vs {want}",
            one_by_one[key]
        );
    }
    let (batched, _) = scores("affine_two_class.onnx", "c1b", &["--score-label", "1"]);
    assert_eq!(batched, one_by_one);
    let (class0, _) = scores("affine_two_class.onnx", "c0", &["--score-label", "0"]);
    for (key, p) in &class0 {
        assert!((p + one_by_one[key] - 1.0).abs() < 1e-12, "{key:?}");
    }
    let model = test_model("affine_two_class.onnx");
    let o = run(
        &[&input],
        &model,
        &tmp.path().join("none"),
        &["--provider", "cpu"],
    );
    assert_fails(
        &o,
        1,
        "output `logits` gives 2 classes per sequence ([batch, 2]); choose the class to score with --score-label K",
    );
    let o = run(
        &[&input],
        &model,
        &tmp.path().join("two"),
        &["--provider", "cpu", "--score-label", "2"],
    );
    assert_fails(
        &o,
        1,
        "--score-label 2: output `logits` has 2 classes per sequence (0 to 1)",
    );
    // bench-model and sql take the same flags (they had neither --score-label nor
    // --model-output).
    let with_model = |command: &[&str], extra: &[&str]| {
        let mut args = command.to_vec();
        args.extend_from_slice(&["-q", "-m", model.to_str().unwrap(), "--provider", "cpu"]);
        args.extend_from_slice(extra);
        segscore(&args)
    };
    let input_arg = input.to_str().unwrap();
    let bench = |extra: &[&str]| {
        let mut args = vec!["-i", input_arg, "--threads", "1"];
        args.extend_from_slice(extra);
        with_model(&["bench-model"], &args)
    };
    assert_fails(&bench(&[]), 1, "choose the class to score with --score-label K");
    let o = bench(&["--score-label", "1", "--model-output", "logits"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"], 18);
    assert_fails(
        &bench(&["--model-output", "nope"]),
        1,
        "no output named `nope` (outputs: logits)",
    );
    // reward_model() gives the class's probability, as the run does.
    let sql = |extra: &[&str]| {
        let mut args = vec!["--format", "csv"];
        args.extend_from_slice(extra);
        args.push("SELECT reward_model(make_array(5, 7)) AS p");
        with_model(&["sql"], &args)
    };
    assert_fails(&sql(&[]), 1, "choose the class to score with --score-label K");
    let o = sql(&["--score-label", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p: f64 = String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // mean(5, 7) * 0.001 - 1 = -0.994 (float32), then sigmoid(4 x).
    let want = 1.0 / (1.0 + (-4.0 * (6.0f32 * 0.001 - 1.0) as f64).exp());
    assert!((p - want).abs() < 1e-6, "{p} vs {want}");
    let o = segscore(&["inspect", model.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("per sequence, 2 classes: --score-label K scores class K"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// A score output shaped `[batch, 1, 1]` (a head keeping both its axes) was declared "per
/// token" and stopped the run at its first call ("has shape [32, 1, 1] for a batch of 32 rows
/// of 256 positions"): one position of one value is a score per row, whatever the call's
/// length, and scores as the same model's `[batch]` output does, in a run and in SQL.
#[test]
fn a_score_shaped_batch_by_one_by_one_is_one_score_per_row() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    let mut rows = Vec::new();
    for g in 0..5i64 {
        for k in 0..4i64 {
            let ids: Vec<i64> = (0..=g + k).map(|i| 13 * g + 29 * i + 7 * k + 1).collect();
            rows.push(row(&format!("g{g}"), k, 0.2 * (g - k) as f64, &ids));
        }
    }
    write_rows(&input, &rows);
    let (flat, _) = scored(&input, "affine_mean.onnx", &tmp.path().join("flat"), &[]);
    let (b11, s) = scored(&input, "affine_b11.onnx", &tmp.path().join("b11"), &[]);
    assert_eq!(s["score_output"], "per sequence");
    assert_eq!(b11.len(), 20);
    assert_eq!(b11, flat);
    let (alone, _) = scored(
        &input,
        "affine_b11.onnx",
        &tmp.path().join("one"),
        &["--batch-size", "1"],
    );
    assert_eq!(alone, flat);
    let sql = |model: &str| {
        sql_csv_with_model(
            &test_model(model),
            "SELECT reward_model(make_array(1, 2, 3)) AS s",
        )
    };
    assert_eq!(sql("affine_b11.onnx"), sql("affine_mean.onnx"));
}

/// Some exports declare `attention_mask` as float32, float16 or bool; such models were refused
/// ("expected int64 or int32"). The mask is fed as that type: the same predictions as the
/// integer mask, to the bit, over padded batches of rows of different lengths.
#[test]
fn an_attention_mask_of_floats_or_booleans_is_fed_as_its_type() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 300, 1, false);
    let scores = |model: &str| scored(&input, model, &tmp.path().join(model), &["--batch-size", "8"]).0;
    let want = scores("affine_mean.onnx");
    assert_eq!(want.len(), 300);
    for model in [
        "affine_mask_f32.onnx",
        "affine_mask_f16.onnx",
        "affine_mask_bool.onnx",
    ] {
        assert_eq!(scores(model), want, "{model}");
        let o = segscore(&["inspect", test_model(model).to_str().unwrap()]);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
    }
}

/// A model that takes no attention_mask cannot tell padding from tokens: rows batched with
/// longer ones were scored with the padding (1934 of 2000 generated segments differed from
/// the row scored alone). Each call now takes rows of one length: the scores equal those of
/// every row alone, in a run and in `sql`'s reward_model().
#[test]
fn a_model_without_an_attention_mask_is_never_given_padding() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    generate(&input, 400, 1, false);
    let model = "mean_no_mask.onnx";
    let (batched, _) = scored(&input, model, &tmp.path().join("batched"), &[]);
    let (alone, _) = scored(&input, model, &tmp.path().join("alone"), &["--batch-size", "1"]);
    assert_eq!(batched.len(), 400);
    assert_eq!(batched, alone);
    let out = sql_csv_with_model(
        &test_model(model),
        "SELECT reward_model(ids) AS p FROM (VALUES (make_array(100, 300)), (make_array(500))) AS t(ids)",
    );
    // mean(100, 300) * 0.001 - 1 and 500 * 0.001 - 1, each as float32; padding would have
    // given (500 + 0) / 2 for the second.
    let want = format!(
        "p\n{}\n{}\n",
        (200.0f32 * 0.001 - 1.0) as f64,
        (500.0f32 * 0.001 - 1.0) as f64
    );
    assert_eq!(out, want);
}

/// A decoder classifier exported from `transformers` finds each row's last token by comparing
/// `input_ids` with its pad id, not by the mask: padding with 0 (not its pad id) made padded
/// rows read a padding position. Such a model (an `Equal` on the ids) gets calls of one length:
/// every row reads its own last non-pad token, exactly.
#[test]
fn a_model_that_finds_the_last_token_by_pad_id_is_never_given_padding() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    let mut rows = Vec::new();
    for g in 0..20i64 {
        for k in 0..3i64 {
            let n = 1 + (g * 3 + k) % 7;
            let mut ids: Vec<i64> = (0..n).map(|i| 10 + (g * 31 + k * 7 + i * 13) % 900).collect();
            if g % 4 == 0 {
                ids.push(7); // the pad id inside a row: skipped, as the model skips it
            }
            rows.push(row(&format!("g{g:02}"), k, 0.1 * k as f64, &ids));
        }
    }
    write_rows(&input, &rows);
    let (got, _) = scored(&input, "last_nonpad.onnx", &tmp.path().join("out"), &[]);
    assert_eq!(got.len(), 60);
    for r in &rows {
        let ids = r.ids.as_ref().unwrap();
        let last = *ids.iter().rev().find(|&&i| i != 7).unwrap();
        let want = (last as f32 * 0.001f32) as f64;
        assert_eq!(got[&(r.gid.clone(), r.seg)], want, "{} {}", r.gid, r.seg);
    }
}
