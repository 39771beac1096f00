#!/usr/bin/env python3
"""The segscore job written the way a user would write it in Python: pyarrow + numpy +
onnxruntime. Used by benches/e2e.py as the baseline segscore is measured against.

Reads every Parquet file into memory, sorts by (generation_id, segment_index), computes
targets with a per-generation shift, runs the model in batches of --batch-size rows in table
order (padded to the batch's longest row), computes residuals and losses, and writes one
Parquet file plus summary.json.

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
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
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
