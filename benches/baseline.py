#!/usr/bin/env python3
"""The segscore job written the way a user would write it in Python: pyarrow + numpy +
onnxruntime. Used by benches/e2e.py as the baseline segscore is measured against.

Reads every Parquet file into memory, sorts by (generation_id, segment_index), computes
targets with a per-generation shift, runs the model in batches of --batch-size rows in table
order (padded to the batch's longest row), computes residuals and losses, and writes one
Parquet file plus summary.json. Then, unless --no-evaluate, the same evaluation segscore
makes (`queries/*.sql`): one row per generation (generations.parquet: the error means,
Pearson, Spearman, Kendall's tau-b, pairwise order accuracy, top-segment match, worst segment,
the targets' sum check) and, in summary.json, the overall rank metrics, loss shares, residual
histogram, calibration deciles and the means over generations, all with numpy (and scipy's
Kendall's tau for the overall one), vectorized: per-generation ranks by one sort of
(generation, value), pair counts by one pass over the rows per offset within a generation (up
to the longest generation). Its time is summary.json's `evaluation_seconds`.

Up to 1M segments the overall metrics cover every segment, as segscore's do. Above, segscore
reads a hashed sample of about 1M; this script then takes every k-th segment instead: the same
amount of work, not the same sample (benches/e2e.py compares those values only up to 1M).

    python3 benches/baseline.py --input DIR --model MODEL.onnx --output DIR [--threads N]
"""
import argparse
import glob
import json
import os
import time

import numpy as np

# ONNX Runtime 1.29+ records telemetry on Linux unless this is set before it loads; segscore
# sets it too (see the README), so both sides of the benchmark run without it.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-evaluate", action="store_true",
                    help="write the segments and the error means only (no generations.parquet, no rank metrics)")
    args = ap.parse_args()
    t0 = time.perf_counter()

    files = sorted(glob.glob(os.path.join(args.input, "**", "*.parquet"), recursive=True))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    table = table.sort_by([("generation_id", "ascending"), ("segment_index", "ascending")])
    n = table.num_rows

    # Targets: cumulative score minus the previous one in the same generation (0 for the first).
    gid = table.column("generation_id")
    cum = table.column("cumulative_score").to_numpy()
    first = np.ones(n, dtype=bool)
    first[1:] = pc.not_equal(gid.slice(1), gid.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    prev = np.zeros(n)
    prev[1:] = cum[:-1]
    prev[first] = 0.0
    target = cum - prev

    # Batched inference.
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    out_name = sess.get_outputs()[0].name
    ids_col = table.column("input_ids").combine_chunks()
    offsets = ids_col.offsets.to_numpy()
    values = ids_col.values.to_numpy().astype(np.int64)
    preds = np.empty(n, dtype=np.float64)
    t_model = 0.0
    for s in range(0, n, args.batch_size):
        e = min(s + args.batch_size, n)
        lens = offsets[s + 1 : e + 1] - offsets[s:e]
        width = max(int(lens.max()), 1)
        mask = np.arange(width)[None, :] < lens[:, None]
        ids = np.zeros((e - s, width), dtype=np.int64)
        ids[mask] = values[offsets[s] : offsets[e]]
        tm = time.perf_counter()
        out = sess.run([out_name], {"input_ids": ids, "attention_mask": mask.astype(np.int64)})[0]
        t_model += time.perf_counter() - tm
        preds[s:e] = out.reshape(-1)

    residual = preds - target
    loss = residual * residual
    result = table.drop_columns(["input_ids"])
    for name, col in [
        ("target_score", target),
        ("predicted_score", preds),
        ("residual", residual),
        ("squared_error", residual * residual),
        ("abs_error", np.abs(residual)),
        ("loss", loss),
        ("loss_grad", 2 * residual),
    ]:
        result = result.append_column(name, pa.array(col))
    os.makedirs(args.output, exist_ok=True)
    pq.write_table(result, os.path.join(args.output, "segments.parquet"), compression="zstd")
    elapsed = time.perf_counter() - t0
    summary = {
        "n_segments": n,
        "n_generations": int(first.sum()),
        "mse": float(np.mean(residual * residual)),
        "mae": float(np.mean(np.abs(residual))),
        "bias": float(np.mean(residual)),
        "model_seconds": t_model,
        "elapsed_seconds": elapsed,
        "rows_per_second": n / elapsed,
    }
    if not args.no_evaluate:
        te = time.perf_counter()
        generations, overall = evaluate(gid, first, table.column("segment_index").to_numpy(), cum,
                                        target, preds, residual, loss)
        pq.write_table(generations, os.path.join(args.output, "generations.parquet"), compression="zstd")
        summary.update(overall)
        summary["evaluation_seconds"] = time.perf_counter() - te
        summary["elapsed_seconds"] = time.perf_counter() - t0
        summary["rows_per_second"] = n / summary["elapsed_seconds"]
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)


SAMPLE_SEGMENTS = 1_000_000


def dense_rank(v):
    """0-based ranks of v with equal values sharing one, from one sort."""
    order = np.argsort(v)
    sv = v[order]
    new = np.ones(len(v), dtype=bool)
    new[1:] = sv[1:] != sv[:-1]
    r = np.empty(len(v), dtype=np.int64)
    r[order] = np.cumsum(new) - 1
    return r


def runs_of(sorted_key):
    """Start and end (exclusive) of each run of equal values in a sorted array."""
    n = len(sorted_key)
    new = np.ones(n, dtype=bool)
    new[1:] = sorted_key[1:] != sorted_key[:-1]
    start = np.flatnonzero(new)
    return start, np.append(start[1:], n), np.cumsum(new) - 1


def group_ranks(group, dense):
    """Average ranks (1-based, ties share their mean) within each group of the values whose
    dense ranks are `dense`; rows sorted by group. One sort of (group, value) as one integer."""
    n = len(dense)
    key = group * max(n, 1) + dense
    order = np.argsort(key)
    start, end, run = runs_of(key[order])
    group_start = np.searchsorted(group, group[order], side="left")
    ranks = np.empty(n)
    ranks[order] = (start[run] + end[run] + 1) / 2.0 - group_start
    return ranks


def average_ranks(dense):
    """Average ranks (1-based, ties share their mean) from dense ranks, with no sort; and the
    pairs tied."""
    counts = np.bincount(dense).astype(np.float64)
    before = np.cumsum(counts) - counts
    return (before + (counts + 1) / 2.0)[dense], float(np.sum(counts * (counts - 1) / 2.0))


def group_pearson(g, counts, x, y):
    """Pearson's r per group (rows sorted by group g, counts per group); NaN where undefined."""
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    mx = np.add.reduceat(x, starts) / counts
    my = np.add.reduceat(y, starts) / counts
    dx, dy = x - mx[g], y - my[g]
    sxx = np.add.reduceat(dx * dx, starts)
    syy = np.add.reduceat(dy * dy, starts)
    sxy = np.add.reduceat(dx * dy, starts)
    ok = (counts >= 2) & (sxx > 0) & (syy > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0)
    return np.where(ok, r, np.nan)


def evaluate(gid, first, seg, cum, target, pred, residual, loss):
    """generations.sql's rows and the summary's evaluation fields, rows sorted by key."""
    n = len(pred)
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, n))
    g = np.cumsum(first) - 1
    n_gen = len(starts)
    pos = np.arange(n) - starts[g]
    sums = lambda v: np.add.reduceat(v, starts)  # noqa: E731
    # Pair counts within generations: for each offset d, the pairs (i, i + d) of one generation.
    conc = np.zeros(n_gen)
    disc = np.zeros(n_gen)
    tx = np.zeros(n_gen)
    ty = np.zeros(n_gen)
    for d in range(1, int(counts.max()) if n else 1):
        i = np.flatnonzero(pos + d < counts[g])
        sx = np.sign(pred[i + d] - pred[i])
        sy = np.sign(target[i + d] - target[i])
        w = g[i]
        prod = sx * sy
        conc += np.bincount(w, prod > 0, n_gen)
        disc += np.bincount(w, prod < 0, n_gen)
        tx += np.bincount(w, sx == 0, n_gen)
        ty += np.bincount(w, sy == 0, n_gen)
    pairs = counts * (counts - 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.clip((conc - disc) / np.sqrt((pairs - tx) * (pairs - ty)), -1.0, 1.0)
        tau = np.where((pairs - tx) * (pairs - ty) > 0, tau, np.nan)
        acc = np.where(conc + disc > 0, conc / (conc + disc), np.nan)
    dx, dy = dense_rank(pred), dense_rank(target)
    spearman = group_pearson(g, counts, group_ranks(g, dx), group_ranks(g, dy))
    pearson = group_pearson(g, counts, pred, target)
    # The top prediction (unique) on a top-target row.
    max_x = np.maximum.reduceat(pred, starts)
    max_y = np.maximum.reduceat(target, starts)
    is_top = pred == max_x[g]
    n_top = np.bincount(g, is_top, n_gen)
    hit = np.bincount(g, is_top & (target == max_y[g]), n_gen)
    top_match = np.where(counts >= 2, ((n_top == 1) & (hit == 1)).astype(float), np.nan)
    # The worst segment: the highest loss, the first segment among ties.
    worst_loss = np.maximum.reduceat(loss, starts)
    at_worst = np.flatnonzero(loss == worst_loss[g])
    worst_first = at_worst[np.flatnonzero(np.diff(np.concatenate(([-1], g[at_worst]))))]
    last = starts + counts - 1
    target_sum = sums(target)
    final = cum[last]
    base = np.zeros(n_gen)
    ok = np.abs(target_sum - (final - base)) <= 1e-9 * np.maximum(1.0, np.maximum(np.abs(final), np.abs(base)))
    nullable = lambda v: pa.array(v, from_pandas=True)  # noqa: E731  (NaN -> null)
    generations = pa.table({
        "generation_id": gid.take(pa.array(starts)),
        "n_segments": pa.array(counts, pa.int64()),
        "mse": sums(residual * residual) / counts,
        "mae": sums(np.abs(residual)) / counts,
        "bias": sums(residual) / counts,
        "pearson": nullable(pearson),
        "spearman": nullable(spearman),
        "kendall_tau": nullable(tau),
        "pairwise_order_accuracy": nullable(acc),
        "top_segment_match": pa.array(np.where(np.isnan(top_match), None, top_match == 1.0), pa.bool_()),
        "worst_segment_index": seg[worst_first],
        "worst_segment_loss": worst_loss,
        "total_loss": sums(loss),
        "target_sum": target_sum,
        "final_cumulative_score": final,
        "base_score": base,
        "targets_sum_ok": ok,
    })
    mean = lambda v: float(np.nanmean(v)) if np.any(~np.isnan(v)) else None  # noqa: E731
    defined = lambda v: int(np.sum(~np.isnan(v)))  # noqa: E731
    means = {
        "mse": mean(generations["mse"].to_numpy()),
        "mae": mean(generations["mae"].to_numpy()),
        "bias": mean(generations["bias"].to_numpy()),
        "pearson": mean(pearson),
        "spearman": mean(spearman),
        "kendall_tau": mean(tau),
        "pairwise_order_accuracy": mean(acc),
        "top_segment_match": mean(top_match),
        "spearman_defined": defined(spearman),
        "kendall_tau_defined": defined(tau),
        "pairwise_order_accuracy_defined": defined(acc),
        "top_segment_match_defined": defined(top_match),
    }
    # The overall metrics: every segment up to SAMPLE_SEGMENTS, every k-th above.
    stride = max(1, -(-n // SAMPLE_SEGMENTS))
    x, y, l, r = (v[::stride] for v in (pred, target, loss, residual))
    m = len(x)
    if stride > 1:
        dx, dy = dense_rank(x), dense_rank(y)
    (rx, t_x), (ry, t_y) = average_ranks(dx), average_ranks(dy)
    spearman_all = group_pearson(np.zeros(m, dtype=np.int64), np.array([m]), rx, ry)[0]
    tau_all = scipy.stats.kendalltau(x, y).statistic
    # Pairs tied in both: runs of equal (x, y), as one integer key.
    start, end, _ = runs_of(np.sort(dx * (int(dy.max()) + 1) + dy))
    t_xy = float(np.sum((end - start) * (end - start - 1) / 2.0))
    p_all = m * (m - 1) / 2.0
    c_minus_d = tau_all * np.sqrt((p_all - t_x) * (p_all - t_y))
    c_plus_d = p_all - t_x - t_y + t_xy
    desc = np.sort(l)[::-1]
    total = desc.sum()
    share = lambda f: float(desc[: min(max(int(np.ceil(f * m)), 1), m)].sum() / total) if total else None  # noqa: E731
    lo, hi = float(r.min()), float(r.max())
    bins = np.minimum(np.floor((r - lo) / (hi - lo) * 40.0), 39).astype(np.int64) if hi > lo else np.zeros(m, np.int64)
    bin_counts = np.bincount(bins, minlength=40)
    # Deciles of prediction, ties by key (rows are in key order: a stable sort keeps it).
    by_pred = np.argsort(x, kind="stable")
    decile = np.arange(m) * 10 // m + 1
    xs, ys = x[by_pred], y[by_pred]
    d_starts = np.flatnonzero(np.diff(np.concatenate(([0], decile))) != 0)
    d_counts = np.diff(np.append(d_starts, m))
    overall = {
        "n_generations": n_gen,
        "overall_sample_segments": m,
        "spearman": float(spearman_all),
        "kendall_tau": float(tau_all),
        "pairwise_order_accuracy": float((c_minus_d + c_plus_d) / 2 / c_plus_d) if c_plus_d else None,
        "loss_share_top_1pct": share(0.01),
        "loss_share_top_10pct": share(0.1),
        "generation_means": means,
        "targets_sum_mismatches": int(np.sum(~ok)),
        "residual_histogram": [
            {"lower": lo + (hi - lo) * b / 40.0, "upper": lo + (hi - lo) * (b + 1) / 40.0, "count": int(c)}
            for b, c in enumerate(bin_counts) if c > 0
        ],
        "calibration": [
            {"decile": int(decile[s0]), "n": int(c),
             "min_predicted": float(xs[s0:s0 + c].min()), "max_predicted": float(xs[s0:s0 + c].max()),
             "mean_predicted": float(xs[s0:s0 + c].mean()), "mean_target": float(ys[s0:s0 + c].mean())}
            for s0, c in zip(d_starts, d_counts)
        ],
    }
    return generations, overall


if __name__ == "__main__":
    main()
