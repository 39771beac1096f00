//! The data contract end to end: targets, predictions, losses, order independence, the
//! output directory and summary.json.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float32Array, Int32Array, LargeListArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

use crate::common::*;

fn design_examples() -> Vec<Row> {
    // DESIGN.md: cumulative 0.7, 0.5, 0.9 -> 0.7, -0.2, 0.4
    //            cumulative 0.6, 0.9, 0.7, 0.8 -> 0.6, 0.3, -0.2, 0.1
    //            targets 0.9, 0.1, -0.6 (cumulative 0.9, 1.0, 0.4) with predictions 0.8, 0.5, -0.7
    let mut rows = Vec::new();
    for (k, c) in [0.7, 0.5, 0.9].iter().enumerate() {
        rows.push(row("a", k as i64, *c, &ids_for(0.0)));
    }
    for (k, c) in [0.6, 0.9, 0.7, 0.8].iter().enumerate() {
        rows.push(row("b", k as i64, *c, &ids_for(0.0)));
    }
    for (k, (c, p)) in [(0.9, 0.8), (1.0, 0.5), (0.4, -0.7)].iter().enumerate() {
        rows.push(row("c", k as i64, *c, &ids_for(*p)));
    }
    rows
}

#[test]
fn design_worked_examples_targets_predictions_and_losses() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &design_examples());
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &test_model("affine_mean.onnx"),
        &out,
        &["--provider", "cpu"],
    );
    let b = read_segments(&out);
    assert_eq!(b.num_rows(), 10);
    let t = by_key(&b, "target_score");
    let expect_t = [
        ("a", 0, 0.7),
        ("a", 1, -0.2),
        ("a", 2, 0.4),
        ("b", 0, 0.6),
        ("b", 1, 0.3),
        ("b", 2, -0.2),
        ("b", 3, 0.1),
        ("c", 0, 0.9),
        ("c", 1, 0.1),
        ("c", 2, -0.6),
    ];
    for (g, s, v) in expect_t {
        let got = t[&(g.to_string(), s)];
        assert!((got - v).abs() < 1e-9, "target {g}/{s}: {got} != {v}");
    }
    // Generation b: of the segments added to existing text, segment 2 (index 1) helped most;
    // segment 3 (index 2) hurt most. (DESIGN.md's "segment 2 helped most" holds among the
    // later segments: the first one's 0.6 is measured from the 0.0 baseline.)
    let b_targets: Vec<f64> = (0..4).map(|s| t[&("b".to_string(), s)]).collect();
    let argmax = (1..4)
        .max_by(|&i, &j| b_targets[i].total_cmp(&b_targets[j]))
        .unwrap();
    let argmin = (0..4)
        .min_by(|&i, &j| b_targets[i].total_cmp(&b_targets[j]))
        .unwrap();
    assert_eq!((argmax, argmin), (1, 2));

    let p = by_key(&b, "predicted_score");
    let sq = by_key(&b, "squared_error");
    let loss = by_key(&b, "loss");
    let grad = by_key(&b, "loss_grad");
    let resid = by_key(&b, "residual");
    for (s, pv, e) in [(0, 0.8, 0.01), (1, 0.5, 0.16), (2, -0.7, 0.01)] {
        let k = ("c".to_string(), s);
        assert!(
            (p[&k] - pv).abs() < 1e-6,
            "prediction {s}: {} != {pv} (float32 precision)",
            p[&k]
        );
        assert!((sq[&k] - e).abs() < 1e-6, "squared error {s}: {} != {e}", sq[&k]);
        assert_eq!(loss[&k], sq[&k], "the default loss is squared error");
        assert_eq!(resid[&k], p[&k] - t[&k]);
        assert_eq!(grad[&k], 2.0 * resid[&k]);
    }
    let worst = (0..3)
        .max_by(|&i, &j| sq[&("c".into(), i)].total_cmp(&sq[&("c".into(), j)]))
        .unwrap();
    assert_eq!(worst, 1, "the second segment dominates the loss");
    assert!((sq[&("c".to_string(), 1)] - 0.16).abs() < 1e-6);
}

fn varied_rows(n_gen: usize, seed: u64) -> Vec<Row> {
    // A small deterministic LCG keeps the test independent of rand's versions.
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let mut rows = Vec::new();
    for g in 0..n_gen {
        let n = 1 + next(9) as i64;
        let mut c = 0.0;
        for s in 0..n {
            c += (next(2001) as f64 - 1000.0) / 1000.0;
            let len = 1 + next(40) as usize;
            let ids: Vec<i64> = (0..len).map(|_| 1 + next(999) as i64).collect();
            // segment indexes with gaps: still ordered, not contiguous
            rows.push(row(&format!("g{g:03}"), s * 3 + 1, c, &ids));
        }
    }
    rows
}

#[test]
fn shuffled_rows_and_split_generations_give_the_same_output() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = varied_rows(60, 1);
    let sorted = tmp.path().join("sorted.parquet");
    write_rows(&sorted, &rows);
    // Shuffle deterministically, then split so that generations straddle the two files.
    let mut shuffled = rows.clone();
    let n = shuffled.len();
    for i in 0..n {
        let j = (i * 7919 + 13) % n;
        shuffled.swap(i, j);
    }
    let (a, b) = shuffled.split_at(n / 2);
    let split_dir = tmp.path().join("split");
    write_rows(&split_dir.join("part-a.parquet"), a);
    write_rows(&split_dir.join("part-b.parquet"), b);
    let straddling = rows
        .iter()
        .map(|r| r.gid.clone())
        .filter(|g| a.iter().any(|r| &r.gid == g) && b.iter().any(|r| &r.gid == g))
        .count();
    assert!(straddling > 0, "some generation must be split across the files");

    let out1 = tmp.path().join("out1");
    let out2 = tmp.path().join("out2");
    run_ok(&[&sorted], &demo_model(), &out1, &["--provider", "cpu"]);
    run_ok(
        &[&split_dir],
        &demo_model(),
        &out2,
        &["--provider", "cpu", "--threads", "1", "--batch-size", "7"],
    );
    let (b1, b2) = (read_segments(&out1), read_segments(&out2));
    assert_eq!(b1.num_rows(), rows.len(), "every input row exactly once");
    // Other batches: predictions may differ in the last float32 bit.
    assert_same_output(&b1, &b2, 1e-6, "sorted vs shuffled and split");
}

#[test]
fn predictions_do_not_depend_on_the_batch_a_segment_lands_in() {
    // reward_small pools with the attention mask, so padding must not change a prediction.
    let tmp = tempfile::tempdir().unwrap();
    let rows = varied_rows(40, 2);
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &rows);
    let mut preds = Vec::new();
    for (i, bs) in ["1", "5", "64", "1000"].iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        run_ok(
            &[&input],
            &demo_model(),
            &out,
            &["--provider", "cpu", "--batch-size", bs],
        );
        let s = summary(&out);
        if *bs == "1" {
            assert_eq!(
                s["padding_share"].as_f64().unwrap(),
                0.0,
                "a batch of one row has no padding"
            );
        } else {
            assert!(s["padding_share"].as_f64().unwrap() > 0.0);
        }
        preds.push(by_key(&read_segments(&out), "predicted_score"));
    }
    for p in &preds[1..] {
        for (k, v) in &preds[0] {
            assert!(
                (v - p[k]).abs() <= 1e-6 * v.abs().max(1.0),
                "{k:?}: {v} vs {}",
                p[k]
            );
        }
    }
}

#[test]
fn summary_figures_equal_those_recomputed_from_the_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = varied_rows(80, 3);
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &rows);
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--loss", "huber", "--huber-delta", "0.25"],
    );
    let b = read_segments(&out);
    let s = summary(&out);
    let t = f64_col(&b, "target_score");
    let p = f64_col(&b, "predicted_score");
    let l = f64_col(&b, "loss");
    let n = t.len() as f64;
    let r: Vec<f64> = p.iter().zip(&t).map(|(p, t)| p - t).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mse = mean(&r.iter().map(|x| x * x).collect::<Vec<_>>());
    let mae = mean(&r.iter().map(|x| x.abs()).collect::<Vec<_>>());
    let bias = mean(&r);
    let var = mean(&r.iter().map(|x| (x - bias).powi(2)).collect::<Vec<_>>());
    let (mt, mp) = (mean(&t), mean(&p));
    let sst: f64 = t.iter().map(|x| (x - mt).powi(2)).sum();
    let spp: f64 = p.iter().map(|x| (x - mp).powi(2)).sum();
    let stp: f64 = t.iter().zip(&p).map(|(a, b)| (a - mt) * (b - mp)).sum();
    let r2 = 1.0 - mse * n / sst;
    let pearson = stp / (sst * spp).sqrt();
    let huber = |x: f64| {
        if x.abs() <= 0.25 {
            0.5 * x * x
        } else {
            0.25 * (x.abs() - 0.125)
        }
    };
    for (i, x) in r.iter().enumerate() {
        assert!((l[i] - huber(*x)).abs() < 1e-12);
    }
    let gens: std::collections::BTreeSet<String> = str_col(&b, "generation_id").into_iter().collect();
    assert_eq!(s["n_segments"].as_u64().unwrap(), rows.len() as u64);
    assert_eq!(s["n_generations"].as_u64().unwrap(), gens.len() as u64);
    assert_eq!(gens.len(), 80);
    let close = |k: &str, v: f64| {
        let got = s[k].as_f64().unwrap_or_else(|| panic!("{k} missing"));
        assert!((got - v).abs() <= 1e-9 * v.abs().max(1.0), "{k}: {got} vs {v}");
    };
    close("mse", mse);
    close("rmse", mse.sqrt());
    close("mae", mae);
    close("bias", bias);
    close("residual_variance", var);
    close("r2", r2);
    close("pearson", pearson);
    close("mean_loss", mean(&l));
    assert_eq!(s["loss"], "huber");
    assert_eq!(s["huber_delta"], 0.25);
    assert_eq!(s["provider"], "cpu");
    assert_eq!(s["onnxruntime_version"], "1.31.1");
    let sha = sha256_file(&demo_model());
    assert_eq!(s["model_sha256"], sha.as_str());
    assert!(s["elapsed_seconds"].as_f64().unwrap() > 0.0);
    assert!(s["rows_per_second"].as_f64().unwrap() > 0.0);
    assert!(out.join("_SUCCESS").exists());
}

fn sha256_file(p: &std::path::Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn parquet_outputs_carry_metadata_and_the_documented_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &varied_rows(10, 4));
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--loss", "absolute"],
    );
    let part = &parts(&out.join("segments"))[0];
    let reader = SerializedFileReader::new(std::fs::File::open(part).unwrap()).unwrap();
    let kv: BTreeMap<String, String> = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(kv["segscore.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(kv["segscore.model_sha256"], sha256_file(&demo_model()));
    assert_eq!(kv["segscore.loss"], "absolute");
    assert_eq!(kv["segscore.provider"], "cpu");
    assert_eq!(kv["segscore.query_sha256"].len(), 64);
    assert!(kv["segscore.query"].contains("LAG(s.cumulative_score, 1) OVER w"));
    assert!(kv["segscore.query"].contains("reward_model(g.input_ids, g.token_type_ids)"));
    let b = read_segments(&out);
    let names: Vec<String> = b.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(
        names,
        [
            "generation_id",
            "segment_index",
            "cumulative_score",
            "note",
            "target_score",
            "predicted_score",
            "residual",
            "squared_error",
            "abs_error",
            "loss",
            "loss_grad"
        ]
    );
    for c in [
        "target_score",
        "predicted_score",
        "residual",
        "squared_error",
        "abs_error",
        "loss",
        "loss_grad",
    ] {
        assert_eq!(
            b.schema().field_with_name(c).unwrap().data_type(),
            &DataType::Float64
        );
    }
    // Carried columns come through unchanged.
    let notes = str_col(&b, "note");
    let gids = str_col(&b, "generation_id");
    let segs = i64_col(&b, "segment_index");
    for i in 0..b.num_rows() {
        assert_eq!(notes[i], format!("{}#{}", gids[i], segs[i]));
    }
    // absolute loss: loss = |r|, grad = sign(r)
    let (r, l, g) = (
        f64_col(&b, "residual"),
        f64_col(&b, "loss"),
        f64_col(&b, "loss_grad"),
    );
    for i in 0..r.len() {
        assert_eq!(l[i], r[i].abs());
        assert_eq!(g[i], r[i].signum());
    }
}

#[test]
fn integer_ids_large_lists_int32_tokens_and_renamed_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("doc", DataType::Int32, false),
        Field::new("pos", DataType::Int32, false),
        Field::new("score", DataType::Float32, false),
        Field::new(
            "tokens",
            DataType::LargeList(Arc::new(Field::new_list_field(DataType::Int32, true))),
            false,
        ),
        Field::new("base", DataType::Float64, false),
    ]));
    // Two generations with base scores 0.5 and -1.0; rows out of order.
    let docs = vec![7, 7, 3, 7, 3];
    let pos = vec![2, 0, 1, 1, 0];
    let score = vec![0.75f32, 1.0, -0.5, 0.25, -0.75];
    let tokens = [
        vec![1200],
        vec![900, 1100],
        vec![1000],
        vec![500, 500, 2000],
        vec![1300],
    ];
    let base = vec![0.5, 0.5, -1.0, 0.5, -1.0];
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(docs)),
        Arc::new(Int32Array::from(pos)),
        Arc::new(Float32Array::from(score)),
        Arc::new(LargeListArray::from_iter_primitive::<Int32Type, _, _>(
            tokens
                .iter()
                .map(|t| Some(t.iter().map(|&x| Some(x)).collect::<Vec<_>>())),
        )),
        Arc::new(datafusion::arrow::array::Float64Array::from(base)),
    ];
    let input = tmp.path().join("in.parquet");
    write_batch(&input, &RecordBatch::try_new(schema, cols).unwrap());
    let out = tmp.path().join("out");
    let flags = [
        "--provider",
        "cpu",
        "--id-col",
        "doc",
        "--index-col",
        "pos",
        "--score-col",
        "score",
        "--input-ids-col",
        "tokens",
        "--base-score-col",
        "base",
        "--keep",
        "input_ids",
    ];
    run_ok(&[&input], &test_model("affine_mean.onnx"), &out, &flags);
    let b = read_segments(&out);
    let t = by_key(&b, "target_score");
    let p = by_key(&b, "predicted_score");
    let expect = [
        // (doc, pos, target, prediction)
        ("7", 0, 1.0 - 0.5, 0.0),
        ("7", 1, 0.25 - 1.0, 0.0),
        ("7", 2, 0.75 - 0.25, 0.2),
        ("3", 0, -0.75 + 1.0, 0.3),
        ("3", 1, -0.5 + 0.75, 0.0),
    ];
    for (g, s, tv, pv) in expect {
        let k = (g.to_string(), s);
        assert!((t[&k] - tv).abs() < 1e-9, "target {k:?}: {} vs {tv}", t[&k]);
        assert!((p[&k] - pv).abs() < 1e-6, "prediction {k:?}: {} vs {pv}", p[&k]);
    }
    let names: Vec<String> = b.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(
        &names[..5],
        [
            "generation_id",
            "segment_index",
            "cumulative_score",
            "input_ids",
            "base_score"
        ]
    );
    assert_eq!(
        b.schema().field_with_name("generation_id").unwrap().data_type(),
        &DataType::Int32
    );
}

#[test]
fn model_output_flag_reads_another_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &[row("g", 0, 1.0, &[5, 6, 7]), row("g", 1, 2.0, &[1, 2])]);
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &test_model("affine_mean.onnx"),
        &out,
        &["--provider", "cpu", "--model-output", "token_count"],
    );
    let p = by_key(&read_segments(&out), "predicted_score");
    assert_eq!(p[&("g".to_string(), 0)], 3.0);
    assert_eq!(p[&("g".to_string(), 1)], 2.0);
    assert_eq!(summary(&out)["model_output"], "token_count");
}

#[test]
fn query_file_overrides_the_targets_query() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &design_examples());
    // Targets scaled by 10.
    let q = tmp.path().join("q.sql");
    std::fs::write(
        &q,
        "SELECT g.*, reward_model(g.input_ids) AS predicted_score, 10 * (g.cumulative_score - COALESCE(LAG(g.cumulative_score) OVER (PARTITION BY g.generation_id ORDER BY g.segment_index), g.base_score)) AS target_score, CASE WHEN g.segment_index > 100 THEN CAST(g.segment_index AS INT) ELSE 1 END AS flag FROM generations g",
    )
    .unwrap();
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &test_model("affine_mean.onnx"),
        &out,
        &["--provider", "cpu", "--query-file", q.to_str().unwrap()],
    );
    let segments = read_segments(&out);
    let t = by_key(&segments, "target_score");
    assert!((t[&("a".to_string(), 1)] - -2.0).abs() < 1e-9);
    assert_eq!(summary(&out)["n_generations"], 3);
    // A column whose type the planner's coercion changes (Int32 as written, Int64 once
    // coerced) is written as its arrays are; the run stopped before ("column types must match
    // schema types").
    let flag = segments.column_by_name("flag").unwrap();
    assert_eq!(flag.data_type(), &DataType::Int64);
    assert_eq!(i64_col(&segments, "flag"), vec![1; segments.num_rows()]);
}

#[test]
fn token_type_ids_are_zeros_unless_a_column_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(
        &input,
        &[row("g", 0, 1.0, &[1500]), row("g", 1, 2.0, &[1200, 1400])],
    );
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &test_model("bert_like.onnx"),
        &out,
        &["--provider", "cpu"],
    );
    let p = by_key(&read_segments(&out), "predicted_score");
    assert!((p[&("g".to_string(), 0)] - 0.5).abs() < 1e-6);
    assert!((p[&("g".to_string(), 1)] - 0.3).abs() < 1e-6);

    // With a token_type_ids column of ones: + 0.5 * mean(token types) = +0.5.
    let b = batch(&[row("g", 0, 1.0, &[1500]), row("g", 1, 2.0, &[1200, 1400])]);
    let types = datafusion::arrow::array::ListArray::from_iter_primitive::<
        datafusion::arrow::datatypes::Int64Type,
        _,
        _,
    >(vec![Some(vec![Some(1)]), Some(vec![Some(1), Some(1)])]);
    let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(
        "segment_types",
        datafusion::arrow::array::Array::data_type(&types).clone(),
        true,
    ));
    let mut cols = b.columns().to_vec();
    cols.push(Arc::new(types));
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let input2 = tmp.path().join("in2.parquet");
    write_batch(&input2, &b);
    let out2 = tmp.path().join("out2");
    run_ok(
        &[&input2],
        &test_model("bert_like.onnx"),
        &out2,
        &["--provider", "cpu", "--token-type-ids-col", "segment_types"],
    );
    let p = by_key(&read_segments(&out2), "predicted_score");
    assert!((p[&("g".to_string(), 0)] - 1.0).abs() < 1e-6);
    assert!((p[&("g".to_string(), 1)] - 0.8).abs() < 1e-6);

    // A model that takes no token_type_ids scores without them, and the log says the column
    // given for them is not read (it was passed over in silence).
    let out3 = tmp.path().join("out3");
    let o = run_ok(
        &[&input2],
        &test_model("affine_mean.onnx"),
        &out3,
        &["--provider", "cpu", "--token-type-ids-col", "segment_types"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("WARN")
            && err.contains(
                "the model takes no token_type_ids: --token-type-ids-col segment_types is not read"
            ),
        "{err}"
    );
    let p = by_key(&read_segments(&out3), "predicted_score");
    assert!((p[&("g".to_string(), 0)] - 0.5).abs() < 1e-6);
    assert!((p[&("g".to_string(), 1)] - 0.3).abs() < 1e-6);

    // `reward_model(ids, types)` in SQL says so too, once, and scores without them.
    let o = sql_with_model_on(
        &test_model("affine_mean.onnx"),
        &input2,
        "SELECT reward_model(input_ids, segment_types) AS p FROM t ORDER BY segment_index",
    );
    let got: Vec<f64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(1)
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(
        got.len() == 2 && (got[0] - 0.5).abs() < 1e-6 && (got[1] - 0.3).abs() < 1e-6,
        "{got:?}"
    );
    let warning = "reward_model: the model takes no token_type_ids: the second argument is not read";
    assert_eq!(stderr(&o).matches(warning).count(), 1, "{}", stderr(&o));
}

#[test]
fn overwrite_replaces_a_previous_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &varied_rows(5, 5));
    let out = tmp.path().join("out");
    run_ok(&[&input], &demo_model(), &out, &["--provider", "cpu", "--report"]);
    assert!(out.join("report.html").exists());
    let first = summary(&out);
    write_rows(&input, &varied_rows(7, 6));
    run_ok(
        &[&input],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--overwrite"],
    );
    let second = summary(&out);
    assert_ne!(first["n_segments"], second["n_segments"]);
    assert_eq!(
        read_segments(&out).num_rows() as u64,
        second["n_segments"].as_u64().unwrap()
    );
    assert!(out.join("_SUCCESS").exists());
    let mut leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    leftovers.sort();
    // The first run's report.html described the old data: it is gone, not left stale.
    assert_eq!(leftovers, ["_SUCCESS", "generations", "segments", "summary.json"]);
}

#[test]
fn demo_runs_and_prints_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let o = segscore(&["demo", "--output", dir.to_str().unwrap(), "--provider", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for k in ["generations", "segments", "mse", "r2", "pearson", "provider"] {
        assert!(stdout.contains(k), "summary table lacks {k}: {stdout}");
    }
    let s = summary(&dir.join("output"));
    assert_eq!(s["n_generations"], 300);
    assert!(
        dir.join("output/report.html").exists(),
        "the demo writes its report"
    );
    assert_eq!(parts(&dir.join("output/generations")).len(), 1);
    let n = s["n_segments"].as_u64().unwrap();
    assert!((1000..=10000).contains(&n), "a few thousand segments: {n}");
    // The bundled model approximates the demo's scoring rule: a real but imperfect fit.
    let r2 = s["r2"].as_f64().unwrap();
    assert!(r2 > 0.5 && r2 < 0.999, "r2 {r2}");
    // Deterministic: the same data again. With -q, as for `run`, nothing is printed (the
    // summary table was).
    let again = segscore(&[
        "-q",
        "demo",
        "--output",
        dir.to_str().unwrap(),
        "--provider",
        "cpu",
    ]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!((again.stdout.len(), stderr(&again)), (0, String::new()));
    let s2 = summary(&dir.join("output"));
    assert_eq!(s["mse"], s2["mse"]);
    assert_eq!(s["n_segments"], s2["n_segments"]);
    // A folder holding someone else's files is refused, and they are left as they were; so is
    // 0 generations, before anything is written.
    let theirs = tmp.path().join("data");
    std::fs::create_dir_all(theirs.join("input")).unwrap();
    std::fs::write(theirs.join("input/generations.parquet"), "theirs").unwrap();
    let o = segscore(&["demo", "--output", theirs.to_str().unwrap(), "--provider", "cpu"]);
    assert_fails(&o, 1, "is not empty (holds input), and no demo wrote it");
    let o = segscore(&["demo", "--output", theirs.to_str().unwrap(), "--generations", "0"]);
    assert_fails(&o, 2, "0 is not in 1..=10000000");
    assert_eq!(
        std::fs::read_to_string(theirs.join("input/generations.parquet")).unwrap(),
        "theirs"
    );
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 1);
    // In a demo's folder, a file no demo writes is refused too.
    std::fs::write(dir.join("input/mine.csv"), "mine").unwrap();
    let o = segscore(&["demo", "--output", dir.to_str().unwrap(), "--provider", "cpu"]);
    assert_fails(&o, 1, "holds files a demo did not write (input/mine.csv)");
}

#[test]
fn inspect_prints_inputs_outputs_and_bindings() {
    let o = segscore(&["inspect", test_model("bert_like.onnx").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("input_ids"), "{s}");
    assert!(s.contains("attention_mask"));
    assert!(s.contains("token_type_ids"));
    assert!(s.contains("zeros"));
    assert!(s.contains("score"));
    assert!(s.contains("i64"), "element types shown: {s}");
    let o = segscore(&["inspect", test_model("needs_pixels.onnx").to_str().unwrap()]);
    assert!(!o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("UNBOUND") && s.contains("pixel_values"), "{s}");
    // Each output says what it gives as a score; a default output that cannot be one fails
    // inspect as it would fail a run.
    let o = segscore(&["inspect", test_model("affine_mean.onnx").to_str().unwrap()]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.contains("<- score, per sequence (default"), "{s}");
    assert!(
        s.contains("a score, per sequence, with --model-output token_count"),
        "{s}"
    );
    let o = segscore(&["inspect", test_model("prm_two_class.onnx").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("per token, 2 classes: --score-label K scores class K"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = segscore(&["inspect", test_model("int_count.onnx").to_str().unwrap()]);
    assert_fails(
        &o,
        1,
        "output `token_count` has element type i64; a score must be float16",
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("NOT A SCORE (the default)"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn explain_prints_the_physical_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &varied_rows(3, 7));
    let out = tmp.path().join("out");
    let o = run(
        &[&input],
        &demo_model(),
        &out,
        &["--provider", "cpu", "--explain"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("SortedLagExec"), "{s}");
    assert!(s.contains("reward_model(input_ids"), "{s}");
    assert!(!out.exists(), "--explain writes nothing");
}

#[test]
fn keys_are_checked_by_sql_when_a_replacement_query_loses_the_order() {
    // No window: rows come out in file order, so segscore checks keys and counts generations
    // with SQL instead of on the way.
    let tmp = tempfile::tempdir().unwrap();
    let q = tmp.path().join("q.sql");
    std::fs::write(
        &q,
        "SELECT g.*, reward_model(g.input_ids) AS predicted_score, g.cumulative_score AS target_score FROM generations g",
    )
    .unwrap();
    let rows = vec![
        row("b", 1, 0.5, &[1]),
        row("a", 0, 0.1, &[2]),
        row("b", 0, 0.2, &[3]),
        row("c", 0, 0.3, &[4]),
    ];
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &rows);
    let out = tmp.path().join("out");
    run_ok(
        &[&input],
        &test_model("affine_mean.onnx"),
        &out,
        &[
            "--provider",
            "cpu",
            "--threads",
            "1",
            "--query-file",
            q.to_str().unwrap(),
        ],
    );
    assert_eq!(summary(&out)["n_generations"], 3);
    assert_eq!(summary(&out)["n_segments"], 4);
    let mut dup = rows.clone();
    dup.push(row("a", 0, 0.9, &[5]));
    write_rows(&input, &dup);
    let out2 = tmp.path().join("out2");
    let o = run(
        &[&input],
        &test_model("affine_mean.onnx"),
        &out2,
        &[
            "--provider",
            "cpu",
            "--threads",
            "1",
            "--query-file",
            q.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("duplicate segment: generation_id=a has segment_index=0"),
        "{}",
        stderr(&o)
    );
    assert_no_output(&out2);
    // A query that gives a row twice (the input has no duplicate), and one whose score is a
    // string (it panicked): refused, nothing written.
    write_rows(&input, &rows);
    let one = "SELECT g.*, reward_model(g.input_ids) AS predicted_score, g.cumulative_score AS target_score FROM generations g";
    for (i, (query, want)) in [
        (
            format!("{one} UNION ALL {one} WHERE g.generation_id = 'c'"),
            "the job query gave generation_id=c, segment_index=0 more than once",
        ),
        (
            "SELECT g.*, 'x' AS predicted_score, g.cumulative_score AS target_score FROM generations g"
                .to_string(),
            "the job query's predicted_score has type Utf8, expected a float",
        ),
        // Statements DataFusion runs as it plans them: refused before they run (a CREATE
        // TABLE ... AS scored every row then, and the job failed after).
        (
            "CREATE TABLE t AS SELECT 1".to_string(),
            "DDL not supported: CreateMemoryTable (a --query-file must be one SELECT over `generations`)",
        ),
        (
            format!("CREATE TABLE t AS {one}"),
            "DDL not supported: CreateMemoryTable (a --query-file must be one SELECT",
        ),
        (
            "SET datafusion.execution.batch_size = 100".to_string(),
            "Statement not supported: SetVariable (a --query-file must be one SELECT",
        ),
        (
            format!("COPY ({one}) TO '{}'", tmp.path().join("copied.csv").display()),
            "DML not supported: COPY",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&q, query).unwrap();
        let out = tmp.path().join(format!("out-query-{i}"));
        let o = run(
            &[&input],
            &test_model("affine_mean.onnx"),
            &out,
            &["--provider", "cpu", "--query-file", q.to_str().unwrap()],
        );
        assert_fails(&o, 2, want);
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert_no_output(&out);
    }
    assert!(!tmp.path().join("copied.csv").exists());
}

/// `--drop COL` leaves a carried column out of `segments/`, a hive folder's level too, the other
/// columns as they were: the frame the output is planned from has no dropped column, and each
/// such run failed with "--drop COL: no such column" (the check ran against it).
#[test]
fn drop_leaves_a_carried_or_partition_column_out() {
    let tmp = tempfile::tempdir().unwrap();
    let gen = tmp.path().join("gen");
    generate(&gen, 2_000, 2, false);
    let hive = tmp.path().join("hive");
    for (i, f) in parts(&gen).iter().enumerate() {
        let day = hive.join(format!("day={i}"));
        std::fs::create_dir_all(&day).unwrap();
        std::fs::copy(f, day.join("part-0.parquet")).unwrap();
    }
    let columns = |out: &std::path::Path| -> Vec<String> {
        let b = read_segments(out);
        b.schema().fields().iter().map(|f| f.name().clone()).collect()
    };
    let all = tmp.path().join("all");
    run_ok(&[&hive], &demo_model(), &all, &[]);
    assert!(columns(&all).contains(&"source".to_string()));
    assert!(columns(&all).contains(&"day".to_string()));
    for (col, quarantine) in [("source", false), ("day", false), ("source", true)] {
        let out = tmp.path().join(format!("without-{col}-{quarantine}"));
        let mut flags = vec!["--drop", col];
        if quarantine {
            flags.extend(["--on-invalid", "quarantine"]);
        }
        run_ok(&[&hive], &demo_model(), &out, &flags);
        let mut want = columns(&all);
        want.retain(|c| c != col);
        assert_eq!(columns(&out), want, "--drop {col}");
        assert_eq!(read_segments(&out).num_rows(), 2_000);
    }
    let o = run(
        &[&hive],
        &demo_model(),
        &tmp.path().join("x"),
        &["--drop", "nothere"],
    );
    assert_fails(&o, 2, "--drop nothere: no such column");
}
