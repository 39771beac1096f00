#!/usr/bin/env python3
"""Text benchmark (issue 10): the bundled causal per-token model on text of about 8 steps per
generation, tokenized with the bundled GPT-2 tokenizer.

    pip install pyarrow numpy onnxruntime==1.31.1 tokenizers==0.23.3
    cargo build --release
    python3 benches/text.py                      # 8,000 segments, all cores

Reports, from one run on one machine, alternating and taking medians of --repeats runs:
- segscore one pass (--pass generation) against per-prefix calls (--pass segment), rows/s;
- tokenization's share: seconds spent tokenizing (summed over threads) over the run's
  core-seconds (elapsed x threads);
- segscore against the Python baseline (benches/text_baseline.py) doing the same one-pass job.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import add_binary, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "prm_causal.onnx")
TOKENIZER = os.path.join(ROOT, "models", "gpt2-tokenizer.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=int, default=8000)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    add_binary(ap)
    ap.add_argument("--workdir", default="/tmp/segscore-bench-text")
    ap.add_argument("--provider", default="cpu")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    data = os.path.join(args.workdir, f"text-{args.segments}-{args.files}")
    if not os.path.exists(os.path.join(data, ".complete")):
        shutil.rmtree(data, ignore_errors=True)
        run([args.bin, "generate", "--text", "-o", data, "--segments", str(args.segments), "--files", str(args.files)])
        open(os.path.join(data, ".complete"), "w").close()

    def segscore(pass_):
        out = os.path.join(args.workdir, f"out-{pass_}")
        cmd = [args.bin, "run", "-q", "--provider", args.provider, "--overwrite", "-i", data, "-m", MODEL, "-o", out,
               "--tokenizer", TOKENIZER, "--text-col", "step", "--prompt-col", "prompt", "--segment-separator", "\n",
               "--prediction", "cumulative", "--pass", pass_, "--threads", str(args.threads)]
        secs, rss, _ = run(cmd)
        with open(os.path.join(out, "summary.json")) as f:
            return secs, rss, json.load(f)

    one, per, py = [], [], []
    for _ in range(args.repeats):
        one.append(segscore("generation"))
        per.append(segscore("segment"))
        secs, rss, _ = run([sys.executable, os.path.join(ROOT, "benches", "text_baseline.py"), "--input", data,
                            "--model", MODEL, "--tokenizer", TOKENIZER, "--output", os.path.join(args.workdir, "out-python"),
                            "--threads", str(args.threads)])
        py.append((secs, rss))
    n = one[0][2]["n_segments"]
    rate = lambda runs: n / statistics.median(r[0] for r in runs)
    s = one[-1][2]
    tok_share = statistics.median(r[2]["text"]["tokenize_seconds"] / (r[2]["elapsed_seconds"] * args.threads) for r in one)
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "provider": args.provider, "threads": args.threads, "segments": n,
        "one_pass_rows_per_second": rate(one), "per_prefix_rows_per_second": rate(per),
        "python_one_pass_rows_per_second": rate(py),
        "one_pass_over_per_prefix": rate(one) / rate(per), "segscore_over_python": rate(one) / rate(py),
        "tokenization_share": tok_share, "one_pass_check": s["text"]["one_pass_check"],
        "model_share_one_pass": s["model_seconds"] / args.threads / s["elapsed_seconds"],
        "peak_rss_mib": {"one_pass": max(r[1] for r in one), "python": max(r[1] for r in py)},
    }
    print(f"machine: {results['machine']}; {n} segments of text, {args.threads} threads, provider {args.provider}; "
          f"{args.repeats} runs each, alternating")
    print("| | rows/s (median) |")
    print("|---|---:|")
    print(f"| segscore, one pass per generation | {rate(one):,.0f} |")
    print(f"| segscore, one call per segment prefix | {rate(per):,.0f} |")
    print(f"| Python baseline, one pass (tokenizers + onnxruntime) | {rate(py):,.0f} |")
    print(f"one pass / per prefix: {results['one_pass_over_per_prefix']:.2f}x; segscore / Python: "
          f"{results['segscore_over_python']:.2f}x; tokenization {tok_share:.1%} of core-time; "
          f"model {results['model_share_one_pass']:.0%} of core-time")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
