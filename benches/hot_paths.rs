//! criterion benches for segscore's hot paths, on the shared long-tailed data generator
//! (`segscore::sample::long_tailed_batch`): building padded model tensors from Arrow lists,
//! losses and moments, the target window in DataFusion, and the summary's overall metrics over
//! a sample of 1M segments.
//!
//!     cargo bench --bench hot_paths

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use datafusion::arrow::array::{Array, AsArray, Float64Array};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use segscore::loss::{loss_columns, Loss, Moments};
use segscore::model::{padded_batch, plan_batches};
use segscore::sample::long_tailed_batch;

const ROWS: u64 = 8192; // one DataFusion batch

fn tensors(c: &mut Criterion) {
    let batch = long_tailed_batch(ROWS, 1).unwrap();
    let ids = batch.column_by_name("input_ids").unwrap().clone();
    let lists = ids.as_list::<i32>();
    let lens: Vec<usize> = (0..lists.len()).map(|i| lists.value_length(i) as usize).collect();
    let mut g = c.benchmark_group("tensors");
    g.throughput(Throughput::Elements(ROWS));
    for (name, sort) in [("length_sorted", true), ("arrival_order", false)] {
        g.bench_function(BenchmarkId::new("pad_8192_rows", name), |b| {
            b.iter(|| {
                let mut rows: Vec<usize> = (0..lens.len()).collect();
                if sort {
                    rows.sort_by_key(|&r| std::cmp::Reverse(lens[r]));
                }
                let sorted: Vec<usize> = rows.iter().map(|&r| lens[r]).collect();
                let plan = if sort {
                    plan_batches(&sorted, 256, 32768)
                } else {
                    (0..rows.len())
                        .step_by(256)
                        .map(|s| s..(s + 256).min(rows.len()))
                        .collect()
                };
                let mut positions = 0;
                for r in plan {
                    let p = padded_batch(ids.as_ref(), &rows[r]).unwrap();
                    positions += p.batch * p.seq;
                }
                black_box(positions)
            })
        });
    }
    g.finish();
}

fn losses(c: &mut Criterion) {
    let n = ROWS as usize;
    let t = Float64Array::from_iter_values((0..n).map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0));
    let p = Float64Array::from_iter_values((0..n).map(|i| ((i * 53) % 97) as f64 / 48.0 - 1.0));
    let mut g = c.benchmark_group("losses");
    g.throughput(Throughput::Elements(ROWS));
    for loss in [Loss::Squared, Loss::Absolute, Loss::Huber { delta: 0.5 }] {
        g.bench_function(BenchmarkId::new("loss_columns", loss.name()), |b| {
            b.iter(|| black_box(loss_columns(loss, &p, &t)))
        });
    }
    let l = loss_columns(Loss::Squared, &p, &t).loss;
    g.bench_function("moments_push", |b| {
        b.iter(|| {
            let mut m = Moments::default();
            m.push_arrays(&t, &p, &l);
            black_box(m.metrics())
        })
    });
    g.finish();
}

fn targets(c: &mut Criterion) {
    const N: u64 = 200_000;
    let batch = long_tailed_batch(N, 2).unwrap();
    let batch = batch.project(&[0, 1, 2]).unwrap(); // keys and scores: the window's input
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sql = "SELECT generation_id, segment_index, cumulative_score - COALESCE(LAG(cumulative_score, 1) OVER w, 0.0) AS target_score \
               FROM g WINDOW w AS (PARTITION BY generation_id ORDER BY segment_index)";
    let mut group = c.benchmark_group("targets");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    for (name, shuffled) in [("sorted", false), ("shuffled", true)] {
        let b = if shuffled {
            let idx = datafusion::arrow::array::UInt32Array::from_iter_values(
                (0..N as u32).map(|i| (i * 7919) % N as u32),
            );
            let cols = batch
                .columns()
                .iter()
                .map(|c| datafusion::arrow::compute::take(c, &idx, None).unwrap())
                .collect();
            datafusion::arrow::record_batch::RecordBatch::try_new(batch.schema(), cols).unwrap()
        } else {
            batch.clone()
        };
        let parts: Vec<_> = (0..b.num_rows())
            .step_by(8192)
            .map(|s| b.slice(s, 8192.min(b.num_rows() - s)))
            .collect();
        let table = Arc::new(MemTable::try_new(b.schema(), vec![parts]).unwrap());
        group.bench_function(BenchmarkId::new("lag_window_200k", name), |bench| {
            bench.iter(|| {
                rt.block_on(async {
                    let ctx = SessionContext::new();
                    ctx.register_table("g", table.clone()).unwrap();
                    let out = ctx.sql(sql).await.unwrap().collect().await.unwrap();
                    let sum: f64 = out
                        .iter()
                        .map(|b| {
                            b.column(2)
                                .as_primitive::<Float64Type>()
                                .values()
                                .iter()
                                .sum::<f64>()
                        })
                        .sum();
                    black_box(sum)
                })
            })
        });
    }
    group.finish();
}

/// A sample of `n` segments as the pass keeps it (`segscore::evaluate::stream::SAMPLE_COLUMNS`):
/// generations of 10 rows, predictions of f32 precision (ties, as a model's scores have them).
fn overall_sample(n: usize) -> datafusion::arrow::record_batch::RecordBatch {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use rand::{rngs::SmallRng, Rng, SeedableRng};
    // Seeded: the same sample every run.
    let mut rng = SmallRng::seed_from_u64(7);
    let target: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    let pred: Vec<f64> = target
        .iter()
        .map(|t| ((t + 0.2 * rng.random::<f64>()) as f32) as f64)
        .collect();
    segscore::evaluate::overall::sample_batch(
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("gen-{:08}", i / 10)),
        )),
        Arc::new(Int64Array::from_iter_values((0..n).map(|i| (i % 10) as i64))),
        pred,
        target,
    )
    .unwrap()
}

/// The summary's overall metrics (rank metrics, loss shares, histogram, calibration) over a
/// sample of 1M segments: whole (`--threads 1`), and in two parts each sorted as a partition
/// hands it over (`--threads 2`: the merge and what follows, the part of the run after the
/// last partition's rows).
fn overall(c: &mut Criterion) {
    use segscore::evaluate::overall::{overall_of_parts, overall_of_sample, SamplePart};
    let n = 1_000_000;
    let sample = overall_sample(n);
    let halves = [sample.slice(0, n / 2), sample.slice(n / 2, n - n / 2)];
    let mut g = c.benchmark_group("overall");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("overall_metrics_1m", |b| {
        b.iter(|| black_box(overall_of_sample(std::slice::from_ref(&sample)).unwrap()))
    });
    g.bench_function("overall_metrics_1m_from_two_sorted_parts", |b| {
        b.iter_batched(
            || {
                halves
                    .iter()
                    .map(|h| SamplePart::new(vec![h.clone()], true).unwrap())
                    .collect::<Vec<_>>()
            },
            |parts| black_box(overall_of_parts(parts).unwrap()),
            criterion::BatchSize::LargeInput,
        )
    });
    let losses = sample
        .column_by_name("loss")
        .expect("the sample has a loss column")
        .as_primitive::<Float64Type>()
        .values()
        .to_vec();
    g.bench_function("loss_shares_1m", |b| {
        b.iter_batched(
            || losses.clone(),
            |mut l| black_box(segscore::metrics::top_shares(&mut l, &[0.01, 0.1])),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, tensors, losses, targets, overall);
criterion_main!(benches);
