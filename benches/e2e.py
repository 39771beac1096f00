#!/usr/bin/env python3
"""End-to-end benchmark: segscore against a Python baseline (benches/baseline.py) doing the
same job, on the same data and model, alternating, several times; plus the model alone on
pre-built tensors of the same batches (`segscore bench-model`), the floor for that model.
Both sides write the segments, one row per generation and the summary's metrics; the last
pair of runs is checked to agree (up to 1M segments: above, the two sample the overall
metrics differently).

    pip install pyarrow numpy scipy onnxruntime==1.31.1
    cargo build --release
    python3 benches/e2e.py                               # 1M segments, demo model
    python3 benches/e2e.py --model transformer --segments 20000
    python3 benches/e2e.py --memory 1000000 10000000     # peak RSS of segscore at 1M and 10M
    python3 benches/e2e.py --scaling --files 1 --layout undeclared   # --threads 1 against all
    python3 benches/e2e.py --scaling --pin          # the same, one core against all
    python3 benches/e2e.py --scaling --files 1 --row-group-rows 1048576   # one row group

Reports rows/s (median of --repeats runs) for each, their ratio, peak RSS (from wait4), and
segscore's time split between the model and the rest. Timings are from one run on one
machine: compare ratios, not absolute numbers across machines.
"""
import argparse
import glob
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "small": os.path.join(ROOT, "models", "reward_small.onnx"),
    "transformer": os.path.join(ROOT, "models", "reward_transformer.onnx"),
}
# `cargo build --release`'s binary, wherever CARGO_TARGET_DIR puts it.
RELEASE = os.path.join(os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")),
                       "release", "segscore")


def binary(path):
    """An argparse type: a segscore binary's path, refused with a word if nothing is there."""
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"{path}: no such file (build it with `cargo build --release`, or name a binary)")
    return path


def add_binary(ap, flag="--bin"):
    """The bench's option naming the segscore binary, by default `cargo build --release`'s."""
    ap.add_argument(flag, type=binary, default=RELEASE, help="the segscore binary (default: %(default)s)")


def free_port():
    """A free TCP port on 127.0.0.1 (for the servers a benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, env=None):
    """Runs cmd; returns (seconds, peak RSS in MiB, stdout)."""
    secs, rss, out, _ = run_on(cmd, env)
    return secs, rss, out


def run_on(cmd, env=None, cpus=None):
    """Runs cmd, confined to the CPUs `cpus` if given; returns (seconds, peak RSS in MiB,
    stdout, CPU seconds: user and system, from wait4)."""
    t0 = time.perf_counter()
    confine = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         preexec_fn=confine)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}\n{err.decode()[-3000:]}")
    return secs, usage.ru_maxrss / 1024.0, out.decode(), usage.ru_utime + usage.ru_stime


def differences(a, b, path="", out=None, rel=1e-6):
    """Where a and b (JSON-like) differ: numbers by more than `rel` relative (the model's
    scores differ in their last bits between batch shapes), anything else at all."""
    out = [] if out is None else out
    if isinstance(a, dict):
        for k in a:
            differences(a[k], b.get(k) if isinstance(b, dict) else None, f"{path}.{k}", out, rel)
    elif isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            out.append(f"{path}: lengths differ")
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                differences(x, y, f"{path}[{i}]", out, rel)
    elif isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if abs(a - b) > rel * max(1.0, abs(a)):
            out.append(f"{path}: {a} vs {b}")
    elif a != b:
        out.append(f"{path}: {a} vs {b}")
    return out


def compare_outputs(segscore_out, python_out):
    """The baseline's summary metrics and generations.parquet against segscore's output."""
    import pyarrow.parquet as pq
    with open(os.path.join(segscore_out, "summary.json")) as f:
        s = json.load(f)
    with open(os.path.join(python_out, "summary.json")) as f:
        p = json.load(f)
    timings = {"model_seconds", "elapsed_seconds", "rows_per_second", "evaluation_seconds"}
    differ = differences({k: v for k, v in p.items() if k not in timings}, s)
    theirs = pq.read_table(os.path.join(python_out, "generations.parquet"))
    ours = pq.read_table(sorted(glob.glob(os.path.join(segscore_out, "generations", "*.parquet"))))
    ours = ours.sort_by("generation_id")
    if theirs.schema.names != ours.schema.names:
        return differ + [f"generations columns: {theirs.schema.names} vs {ours.schema.names}"]
    for c in theirs.schema.names:
        differ += differences(theirs[c].to_pylist(), ours[c].to_pylist(), f"generations.{c}")
    return differ


def data(binary, workdir, segments, files, layout="sorted", row_group_rows=None):
    """The dataset: `sorted` (footers declare the order), `undeclared` (sorted, as pandas,
    polars, DuckDB and pyarrow write it: nothing declared) or `shuffled`; in row groups of
    `row_group_rows` rows (segscore generate's 65536 if None)."""
    suffix = f"-rg{row_group_rows}" if row_group_rows else ""
    d = os.path.join(workdir, f"data-{segments}-{files}-{layout}{suffix}")
    if not os.path.exists(os.path.join(d, ".complete")):
        shutil.rmtree(d, ignore_errors=True)
        cmd = [binary, "generate", "-o", d, "--segments", str(segments), "--files", str(files)]
        if layout != "sorted":
            cmd.append(f"--{layout}")
        if row_group_rows:
            cmd += ["--row-group-rows", str(row_group_rows)]
        run(cmd)
        open(os.path.join(d, ".complete"), "w").close()
    return d


def segscore_run(binary, data_dir, model, out, threads, extra=(), cpus=None):
    """One `segscore run` (confined to the CPUs `cpus` if given); returns (seconds, peak RSS in
    MiB, summary.json with `cpu_seconds` added: the run's user and system time)."""
    cmd = [binary, "run", "-q", "--provider", "cpu", "-i", data_dir, "-m", model, "-o", out, "--overwrite"]
    if threads:
        cmd += ["--threads", str(threads)]
    secs, rss, _, cpu = run_on(cmd + list(extra), cpus=cpus)
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    summary["cpu_seconds"] = cpu
    return secs, rss, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--model", choices=sorted(MODELS), default="small")
    ap.add_argument("--layout", choices=["sorted", "undeclared", "shuffled"], default="sorted",
                    help="sorted files that declare it, sorted files that do not, or shuffled rows")
    ap.add_argument("--row-group-rows", type=int,
                    help="rows per row group of the generated files (default: segscore generate's 65536)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    add_binary(ap)
    ap.add_argument("--workdir", default="/tmp/segscore-bench")
    ap.add_argument("--no-baseline", action="store_true", help="skip the Python baseline")
    ap.add_argument("--memory", type=int, nargs="*", metavar="N",
                    help="instead: peak RSS of segscore on sorted inputs of these sizes")
    ap.add_argument("--scaling", action="store_true",
                    help="instead: segscore at --threads 1 and at --threads, alternating: the speed-up, "
                         "and the speed-up outside the model (the run less model_seconds per thread)")
    ap.add_argument("--pin", action="store_true",
                    help="with --scaling: confine each run to as many cores as it has threads "
                         "(`--threads 1` on one core), so the ratio is one core against N")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    model = MODELS[args.model]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    results = {"machine": machine, "model": args.model, "threads": args.threads, "layout": args.layout}

    if args.memory:
        rows = []
        for n in args.memory:
            # The same layout at every size (files of 250k rows in row groups of 64Ki rows): only
            # the amount of data grows.
            d = data(args.bin, args.workdir, n, max(1, n // 250_000), args.layout)
            secs, rss, s = segscore_run(args.bin, d, model, os.path.join(args.workdir, "out-mem"), args.threads)
            rows.append({"segments": n, "seconds": secs, "peak_rss_mib": rss,
                         "rows_per_second": n / secs, "input_sorted": s["input_sorted"]})
            print(f"{n:>10} segments  {secs:8.1f} s  {n / secs:>10.0f} rows/s  peak RSS {rss:7.1f} MiB  sorted={s['input_sorted']}")
        if len(rows) > 1:
            print(f"peak RSS ratio {rows[-1]['segments']}/{rows[0]['segments']}: {rows[-1]['peak_rss_mib'] / rows[0]['peak_rss_mib']:.2f}")
        results["memory"] = rows
    elif args.scaling:
        d = data(args.bin, args.workdir, args.segments, args.files, args.layout, args.row_group_rows)
        allowed = sorted(os.sched_getaffinity(0))
        if args.pin and args.threads > len(allowed):
            sys.exit(f"--pin: {args.threads} threads, but {len(allowed)} CPUs to run on")
        runs = {1: [], args.threads: []}
        for _ in range(args.repeats):
            for t, rs in runs.items():
                cpus = set(allowed[:t]) if args.pin else None
                # Each thread count replaces its own last output, as a re-run does: in one shared
                # folder each run removed the other count's output (other files, other sizes), so
                # a run's time depended on the run before it.
                out = os.path.join(args.workdir, f"out-scaling-{t}")
                secs, _, s = segscore_run(args.bin, d, model, out, t, cpus=cpus)
                rs.append((secs, secs - s["model_seconds"] / t, s["cpu_seconds"] / secs))
        med = {t: tuple(statistics.median(x[i] for x in rs) for i in range(3)) for t, rs in runs.items()}
        (one, one_out, one_busy), (all_, all_out, all_busy) = med[1], med[args.threads]
        n = args.segments
        print(f"machine: {machine}; model {args.model}; {n} segments; layout {args.layout}; "
              f"{args.files} file(s); {args.repeats} runs each, alternating"
              + (f"; each run confined to as many cores as threads" if args.pin else ""))
        print(f"| `--threads 1` rows/s | `--threads {args.threads}` rows/s | {args.threads} / 1 "
              f"| outside the model, {args.threads} / 1 | cores busy, 1 and {args.threads} |")
        print("|---:|---:|---:|---:|---:|")
        print(f"| {n / one:,.0f} | {n / all_:,.0f} | {one / all_:.2f}x | {one_out / all_out:.2f}x "
              f"| {one_busy:.2f}, {all_busy:.2f} |")
        results["scaling"] = {"segments": n, "pinned": args.pin,
                              "seconds": {str(t): [x[0] for x in rs] for t, rs in runs.items()},
                              "cores_busy": {str(t): [x[2] for x in rs] for t, rs in runs.items()},
                              "speedup": one / all_, "speedup_outside_model": one_out / all_out}
    else:
        d = data(args.bin, args.workdir, args.segments, args.files, args.layout, args.row_group_rows)
        seg, py = [], []
        py_out = os.path.join(args.workdir, "out-python")
        for r in range(args.repeats):
            secs, rss, s = segscore_run(args.bin, d, model, os.path.join(args.workdir, "out-segscore"), args.threads)
            seg.append((secs, rss, s))
            if not args.no_baseline:
                cmd = [sys.executable, os.path.join(ROOT, "benches", "baseline.py"), "--input", d,
                       "--model", model, "--output", py_out, "--threads", str(args.threads)]
                secs, rss, _ = run(cmd)
                with open(os.path.join(py_out, "summary.json")) as f:
                    py.append((secs, rss, json.load(f)["evaluation_seconds"]))
        _, _, mo = run([args.bin, "bench-model", "-q", "-i", d, "-m", model, "--provider", "cpu",
                        "--threads", str(args.threads), "--rows", str(min(args.segments, 200_000))])
        model_only = json.loads(mo)
        n = args.segments
        seg_rate = n / statistics.median(x[0] for x in seg)
        # Without the evaluation: segscore less what follows its pass (its pass still computes
        # generations/ and keeps the sample), Python less its evaluation.
        seg_rate_segments = n / statistics.median(x[0] - x[2]["evaluation_seconds"] for x in seg)
        eval_share = statistics.median(x[2]["evaluation_seconds"] / x[0] for x in seg)
        last = seg[-1][2]
        model_share = last["model_seconds"] / args.threads / last["elapsed_seconds"]
        results.update({
            "segments": n,
            "segscore_rows_per_second": seg_rate,
            "segscore_rows_per_second_without_evaluation": seg_rate_segments,
            "segscore_evaluation_share": eval_share,
            "segscore_peak_rss_mib": max(x[1] for x in seg),
            "segscore_model_share": model_share,
            "segscore_padding_share": last["padding_share"],
            "model_only_rows_per_second": model_only["rows_per_second"],
            "segscore_runs_seconds": [x[0] for x in seg],
        })
        print(f"machine: {machine}; model {args.model}; {n} segments; {args.threads} threads; {args.repeats} runs each, alternating")
        print(f"| | rows/s (median) | peak RSS MiB |")
        print(f"|---|---:|---:|")
        print(f"| segscore | {seg_rate:,.0f} | {results['segscore_peak_rss_mib']:.0f} |")
        print(f"| segscore without the evaluation stage ({eval_share:.0%} of its time) | {seg_rate_segments:,.0f} | |")
        if py:
            py_rate = n / statistics.median(x[0] for x in py)
            py_rate_segments = n / statistics.median(x[0] - x[2] for x in py)
            py_eval_share = statistics.median(x[2] / x[0] for x in py)
            results.update({"python_rows_per_second": py_rate, "python_peak_rss_mib": max(x[1] for x in py),
                            "python_rows_per_second_without_evaluation": py_rate_segments,
                            "python_evaluation_share": py_eval_share,
                            "python_runs_seconds": [x[0] for x in py], "speedup": seg_rate / py_rate})
            print(f"| Python baseline | {py_rate:,.0f} | {results['python_peak_rss_mib']:.0f} |")
            print(f"| Python without its evaluation ({py_eval_share:.0%} of its time) | {py_rate_segments:,.0f} | |")
        print(f"| model only (pre-built tensors) | {model_only['rows_per_second']:,.0f} | |")
        if py:
            results["speedup_without_evaluation"] = seg_rate_segments / py_rate_segments
            print(f"segscore / Python: {results['speedup']:.2f}x, the same output on both sides; "
                  f"{results['speedup_without_evaluation']:.2f}x without the evaluation after the pass "
                  f"(segscore's pass still computes generations/)")
            # The ratio of medians hides how far either side moved on a shared machine.
            spread = lambda runs: f"{min(runs):.2f}-{max(runs):.2f} s"
            print(f"runs: segscore {spread([x[0] for x in seg])}, Python {spread([x[0] for x in py])}; "
                  f"segscore / Python from {min(x[0] for x in py) / max(x[0] for x in seg):.2f}x "
                  f"(its slowest run against Python's fastest) "
                  f"to {max(x[0] for x in py) / min(x[0] for x in seg):.2f}x")
        if py and n <= 1_000_000:
            differ = compare_outputs(os.path.join(args.workdir, "out-segscore"), py_out)
            results["outputs_agree"] = not differ
            print("outputs agree: " + ("yes (summary metrics and generations/ within 1e-6 relative)" if not differ
                                       else f"NO: {len(differ)} values differ, e.g. {differ[:3]}"))
        print(f"input order (summary.json): {last.get('input_order')}; layout {args.layout}; {args.files} file(s)")
        print(f"segscore / model only: {seg_rate / model_only['rows_per_second']:.2f} "
              f"(segscore time in the model: {model_share:.0%}; padding {last['padding_share']:.1%})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
