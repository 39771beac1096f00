#!/usr/bin/env python3
"""The text job (issue 10) written the way a user would write it in Python: pyarrow + numpy +
tokenizers + onnxruntime, one model pass per generation. Used by benches/text.py as the
baseline segscore is measured against.

Reads every Parquet file, sorts by (generation_id, segment_index), computes targets, tokenizes
prompts (with special tokens) and steps (without) with `encode_batch` (parallel, in Rust),
builds each generation's sequence (prompt, then each step and the separator), runs the model on
generations sorted by length in batches under --batch-size rows and --max-tokens padded
positions, reads each step's score at its last token, takes the change (--prediction
cumulative), and writes the segments with residuals and losses.

    python3 benches/text_baseline.py --input DIR --model M.onnx --tokenizer T.json --output DIR
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
from tokenizers import Tokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--separator", default="\n")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    t0 = time.perf_counter()

    files = sorted(glob.glob(os.path.join(args.input, "**", "*.parquet"), recursive=True))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    table = table.sort_by([("generation_id", "ascending"), ("segment_index", "ascending")])
    n = table.num_rows
    gid = table.column("generation_id")
    cum = table.column("cumulative_score").to_numpy()
    first = np.ones(n, dtype=bool)
    first[1:] = pc.not_equal(gid.slice(1), gid.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    prev = np.zeros(n)
    prev[1:] = cum[:-1]
    prev[first] = 0.0
    target = cum - prev
    starts = np.flatnonzero(first)
    bounds = np.append(starts, n)

    tt = time.perf_counter()
    tok = Tokenizer.from_file(args.tokenizer)
    tok.no_padding()
    tok.no_truncation()
    prompts = table.column("prompt").take(pa.array(starts)).to_pylist()
    steps = table.column("step").to_pylist()
    prompt_ids = [e.ids for e in tok.encode_batch(prompts, add_special_tokens=True)]
    step_ids = [e.ids for e in tok.encode_batch(steps, add_special_tokens=False)]
    sep = tok.encode(args.separator, add_special_tokens=False).ids
    seqs, ends = [], []
    for g in range(len(starts)):
        ids = list(prompt_ids[g])
        e = []
        for r in range(bounds[g], bounds[g + 1]):
            ids += step_ids[r]
            ids += sep
            e.append(len(ids) - 1)
        seqs.append(np.array(ids, dtype=np.int64))
        ends.append(e)
    t_tok = time.perf_counter() - tt

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    out_name = sess.get_outputs()[0].name
    values = np.empty(n, dtype=np.float64)
    order = sorted(range(len(seqs)), key=lambda g: -len(seqs[g]))
    t_model = 0.0
    i = 0
    while i < len(order):
        longest = len(seqs[order[i]])
        rows = max(1, min(args.batch_size, args.max_tokens // max(longest, 1)))
        batch = order[i : i + rows]
        i += rows
        ids = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros_like(ids)
        for b, g in enumerate(batch):
            ids[b, : len(seqs[g])] = seqs[g]
            mask[b, : len(seqs[g])] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "position_ids" in names:
            feed["position_ids"] = np.broadcast_to(np.arange(longest, dtype=np.int64), ids.shape).copy()
        tm = time.perf_counter()
        out = sess.run([out_name], feed)[0]
        t_model += time.perf_counter() - tm
        for b, g in enumerate(batch):
            values[bounds[g] : bounds[g + 1]] = out[b, ends[g]]

    # --prediction cumulative: the change from the previous step (0 before the first).
    before = np.zeros(n)
    before[1:] = values[:-1]
    before[first] = 0.0
    preds = values - before
    residual = preds - target
    result = table.drop_columns(["prompt"])
    for name, col in [
        ("target_score", target),
        ("predicted_score", preds),
        ("residual", residual),
        ("squared_error", residual * residual),
        ("abs_error", np.abs(residual)),
        ("loss", residual * residual),
        ("loss_grad", 2 * residual),
    ]:
        result = result.append_column(name, pa.array(col))
    os.makedirs(args.output, exist_ok=True)
    pq.write_table(result, os.path.join(args.output, "segments.parquet"), compression="zstd")
    elapsed = time.perf_counter() - t0
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump({"n_segments": n, "mse": float(np.mean(residual * residual)), "tokenize_seconds": t_tok,
                   "model_seconds": t_model, "elapsed_seconds": elapsed, "rows_per_second": n / elapsed}, f, indent=2)


if __name__ == "__main__":
    main()
