//! Fuzzes the path from input data to model inputs and validation:
//!
//! - arbitrary bytes as a Parquet file: the footer checks (`source::check_metadata`), the
//!   statistics guard, then the decoded batches' list columns as token ids (the model's input
//!   checks and padded tensors);
//! - arbitrary bytes as an ONNX model: the embedding finder (`ModelGraph::embedding_for_input`)
//!   and the external data files' names (`ModelGraph::external_data_files`);
//! - arbitrary Arrow record batches shaped like the job query's output: the row checks, the
//!   regrouping into whole generations across arbitrary batch cuts, the split into kept and
//!   rejected rows and the rejected rows' layout, with their invariants asserted.
//!
//! The first byte picks the case (0: Parquet, 1: ONNX, else batches), the rest is its input,
//! so real files make seeds: `seeds/` holds a small Parquet input and the demo model.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run inputs corpus seeds -s none` (see the README).

#![no_main]

use std::path::Path;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use segscore::contract::ColumnNames;
use segscore::engine::footer::{float_stats_constant, read_footer};
use segscore::model::{input_problems, padded_batch, InputLimits};
use segscore::source::check_metadata;
use segscore::validate::{split, Grouper, RejectedLayout, Rejections, RowChecks};

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use segscore::model::onnx::{Embedding, ModelGraph};

#[derive(Arbitrary, Debug)]
struct Rows {
    integer_ids: bool,
    rows: Vec<FuzzRow>,
    cuts: Vec<u8>,
    vocab: Option<u16>,
    max_length: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct FuzzRow {
    gid: Option<u8>,
    seg: Option<i8>,
    cum: Option<f64>,
    target: Option<f64>,
    pred: Option<f64>,
    ids: Option<Vec<Option<i32>>>,
    type_ids_extra: bool,
}

fn limits(v: Option<u16>, max_length: Option<u8>) -> InputLimits {
    InputLimits {
        vocab: v.map(|v| Embedding {
            name: "embedding".into(),
            vocab: v as u64,
        }),
        max_length: max_length.map(usize::from),
    }
}

/// The model-input path of one token-id list column.
fn model_inputs(ids: &dyn Array, types: Option<&dyn Array>, limits: &InputLimits) {
    let Ok(problems) = input_problems(ids, types, limits) else {
        return; // not a list of integers: an error, not a panic
    };
    assert_eq!(problems.len(), ids.len());
    let ok: Vec<usize> = (0..ids.len()).filter(|&r| problems.is_null(r)).collect();
    if ok.is_empty() {
        return;
    }
    let padded = padded_batch(ids, &ok).expect("a list of integers pads");
    assert_eq!(padded.batch, ok.len());
    assert_eq!(padded.ids.len(), padded.batch * padded.seq);
    assert_eq!(padded.mask.iter().filter(|&&m| m == 1).count(), padded.tokens);
    if let Some(max) = limits.max_length {
        // No sequence longer than the model takes reaches it.
        assert!(
            padded.lengths.iter().all(|&l| l <= max),
            "a sequence over {max} reached the model"
        );
    }
    if let Some(v) = &limits.vocab {
        // Every real token the model would see is inside its embedding.
        for (id, m) in padded.ids.iter().zip(&padded.mask) {
            if *m == 1 {
                assert!(*id >= 0 && (*id as u64) < v.vocab, "token {id} reached the model");
            }
        }
    }
}

fn parquet(data: &[u8]) {
    let bytes = bytes::Bytes::copy_from_slice(data);
    // The footer as segscore reads it: a corrupt one is an error, not a panic.
    let Ok(meta) = read_footer(&bytes) else {
        return;
    };
    let _ = check_metadata(
        Path::new("fuzz.parquet"),
        &meta,
        &ColumnNames::default(),
        true,
        (0, 0),
    );
    let _ = float_stats_constant(meta.metadata(), &[]);
    if meta.metadata().file_metadata().num_rows() > 100_000 {
        return; // the footer claims more than a fuzz input can hold
    }
    let Ok(reader) = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, meta)
        .with_batch_size(1024)
        .build()
    else {
        return;
    };
    // The demo model's vocabulary.
    let limits = limits(Some(1000), None);
    // Decoding the pages is arrow's code, not segscore's, and it panics on some corrupt pages
    // (parquet 59: "Decoder for dict should have been set"; with overflow checks, "attempt to
    // multiply with overflow" in rle.rs); here the panic is caught so the fuzzer goes on
    // exploring segscore's checks.
    // (quietly keeps libfuzzer's aborting panic hook from seeing the decoder panics it catches.)
    segscore::panics::install_quiet_panic_hook();
    let batches = segscore::panics::quietly(|| reader.take(4).collect::<Vec<_>>());
    let Ok(batches) = batches else { return };
    for batch in batches {
        let Ok(batch) = batch else { return };
        for col in batch.columns() {
            if matches!(col.data_type(), DataType::List(_) | DataType::LargeList(_)) {
                model_inputs(col.as_ref(), None, &limits);
                model_inputs(col.as_ref(), Some(col.as_ref()), &limits);
            }
        }
    }
}

fn rows(case: Rows) {
    let mut rows = case.rows;
    rows.truncate(512);
    // The window's output order: by generation, then segment, nulls last.
    rows.sort_by(|a, b| {
        let key = |r: &FuzzRow| (r.gid.is_none(), r.gid, r.seg.is_none(), r.seg);
        key(a).cmp(&key(b))
    });
    let n = rows.len();
    let gid: ArrayRef = if case.integer_ids {
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.gid.map(i64::from))))
    } else {
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.gid.map(|g| format!("g{g}"))),
        ))
    };
    let ids = ListArray::from_iter_primitive::<Int32Type, _, _>(rows.iter().map(|r| r.ids.clone()));
    let types = ListArray::from_iter_primitive::<Int32Type, _, _>(rows.iter().map(|r| {
        r.ids.as_ref().map(|v| {
            let mut t = vec![Some(0); v.len()];
            if r.type_ids_extra {
                t.push(Some(1));
            }
            t
        })
    }));
    let limits = limits(case.vocab, case.max_length);
    model_inputs(&ids, Some(&types), &limits);
    let problems = input_problems(&ids, Some(&types), &limits).expect("list of int32");
    // The model scores exactly the rows without a problem.
    let pred = Float64Array::from_iter(rows.iter().enumerate().map(|(i, r)| {
        if problems.is_null(i) {
            Some(r.pred.unwrap_or(0.0))
        } else {
            None
        }
    }));
    let schema = Arc::new(Schema::new(vec![
        Field::new("generation_id", gid.data_type().clone(), true),
        Field::new("segment_index", DataType::Int64, true),
        Field::new("cumulative_score", DataType::Float64, true),
        Field::new("target_score", DataType::Float64, true),
        Field::new("predicted_score", DataType::Float64, true),
        Field::new("input_problem", DataType::Utf8, true),
        Field::new("input_ids", ids.data_type().clone(), true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            gid,
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.seg.map(i64::from)))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.cum))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.target))),
            Arc::new(pred),
            Arc::new(problems),
            Arc::new(ids),
        ],
    )
    .expect("a valid batch");
    let checks = RowChecks {
        gid: 0,
        seg: 1,
        cum: 2,
        base: None,
        target: 3,
        pred: 4,
        problem: Some(5),
    };
    let layout = RejectedLayout::new(&schema, &schema, |n| n.to_string());
    let mut grouper = Grouper::new(0);
    let mut counts = Rejections::default();
    let (mut kept, mut rejected) = (0, 0);
    let mut check = |b: RecordBatch, counts: &mut Rejections| {
        let reasons = checks.reasons(&b).expect("checks");
        match reasons {
            None => kept += b.num_rows(),
            Some(reasons) => {
                assert_eq!(reasons.len(), b.num_rows());
                let (good, bad) = split(&b, 0, &reasons, counts).expect("split");
                // A kept row has nothing wrong with it.
                if good.num_rows() > 0 {
                    assert_eq!(checks.reasons(&good).expect("checks"), None);
                }
                kept += good.num_rows();
                if let Some((bad, why)) = bad {
                    assert_eq!(why.len(), bad.num_rows());
                    let out = layout.batch(&bad, &why).expect("rejected layout");
                    assert_eq!(out.num_rows(), bad.num_rows());
                    rejected += bad.num_rows();
                }
            }
        }
    };
    // Cut the batch where the fuzzer says, as the window's batches would be.
    let mut start = 0;
    for c in case.cuts.iter().take(16) {
        let len = (*c as usize).min(n - start);
        for ready in grouper.push(batch.slice(start, len)).expect("grouper") {
            check(ready, &mut counts);
        }
        start += len;
    }
    if start < n {
        for ready in grouper.push(batch.slice(start, n - start)).expect("grouper") {
            check(ready, &mut counts);
        }
    }
    if let Some(last) = grouper.finish() {
        check(last, &mut counts);
    }
    assert_eq!(kept + rejected, n, "every row is kept or rejected, once");
    assert_eq!(counts.rows as usize, rejected);
}

fuzz_target!(|data: &[u8]| {
    let Some((&case, rest)) = data.split_first() else {
        return;
    };
    match case {
        0 => parquet(rest),
        1 => {
            let graph = ModelGraph::decode(rest);
            if let Some(e) = graph.embedding_for_input("input_ids") {
                assert!(e.vocab > 0);
            }
            if let Ok(files) = graph.external_data_files() {
                let distinct: std::collections::HashSet<&String> = files.iter().collect();
                assert_eq!(distinct.len(), files.len(), "each file named once");
            }
        }
        _ => {
            if let Ok(r) = Rows::arbitrary_take_rest(Unstructured::new(rest)) {
                rows(r)
            }
        }
    }
});
