#!/usr/bin/env python3
"""The job on a Ballista cluster of this machine: a scheduler and 1 or 2 executors started
from the binary on 127.0.0.1 (stopped at the end, whatever happens), against a local run, in
one run, alternating, several times.

    cargo build --release
    python3 benches/cluster.py                                  # transformer, 20k segments
    python3 benches/cluster.py --model small --segments 1000000 # the client's write ceiling
    python3 benches/cluster.py --model text --segments 8000     # text: tokenized and scored on the executors

Reports rows/s (median) for: local (--threads = all cores), 1 executor (1 vcore), 2 executors
(1 vcore each), and 1 executor with all cores; and, from summary.json's `cluster`, the
client's receive-and-write rate (rows over the time from each shard's first row, which comes
once the cluster has finished the shard, to its files' close): the ceiling of this design,
since the client writes the whole output.
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import MODELS, add_binary, data, free_port, segscore_run  # noqa: E402


def wait_log(path, text, proc):
    while True:
        with open(path, errors="replace") as f:
            if text in f.read():
                return
        if proc.poll() is not None:
            sys.exit(f"{path}: exited before {text!r}")
        time.sleep(0.05)


class Cluster:
    def __init__(self, binary, work, executors, vcores):
        self.procs = []
        self.port = free_port()
        log = os.path.join(work, "scheduler.log")
        p = subprocess.Popen(
            [binary, "cluster", "scheduler", "--bind", f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=open(log, "w"),
        )
        self.procs.append(p)
        wait_log(log, "scheduler listening", p)
        for i in range(executors):
            log = os.path.join(work, f"executor-{i}.log")
            cmd = [
                binary, "cluster", "executor",
                "--scheduler", f"127.0.0.1:{self.port}",
                "--bind", f"127.0.0.1:{free_port()}",
                "--grpc-port", str(free_port()),
                "--work-dir", os.path.join(work, f"executor-{i}"),
                "--vcores", str(vcores),
                "--provider", "cpu",
            ]
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
            self.procs.append(p)
            wait_log(log, "flight server listening", p)

    def url(self):
        return f"df://127.0.0.1:{self.port}"

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `--model text`: the bundled causal per-token model on `segscore generate --text`'s steps, in
# one pass per generation (benches/text.py's job).
TEXT_MODEL = os.path.join(ROOT, "models", "prm_causal.onnx")
TEXT_FLAGS = ["--tokenizer", os.path.join(ROOT, "models", "gpt2-tokenizer.json"), "--text-col", "step",
              "--prompt-col", "prompt", "--segment-separator", "\n"]


def text_data(binary, work, segments, files):
    d = os.path.join(work, f"text-{segments}-{files}")
    subprocess.run([binary, "generate", "--text", "-q", "-o", d, "--segments", str(segments), "--files", str(files)],
                   check=True)
    return d


def main():
    ap = argparse.ArgumentParser()
    add_binary(ap, "--binary")
    ap.add_argument("--model", choices=sorted(MODELS) + ["text"], default="transformer")
    ap.add_argument("--segments", type=int, default=20_000)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cores = os.cpu_count()
    work = tempfile.mkdtemp(prefix="segscore-cluster-bench-")
    clusters = []
    try:
        if args.model == "text":
            inputs, model, flags = text_data(args.binary, work, args.segments, args.files), TEXT_MODEL, TEXT_FLAGS
        else:
            inputs, model, flags = data(args.binary, work, args.segments, args.files), MODELS[args.model], []
        setups = {
            "local": None,
            "1 executor x 1 vcore": (1, 1),
            "2 executors x 1 vcore": (2, 1),
            f"1 executor x {cores} vcores": (1, cores),
        }
        urls = {}
        for name, shape in setups.items():
            if shape is not None:
                d = os.path.join(work, name.replace(" ", "_"))
                os.makedirs(d)
                c = Cluster(args.binary, d, *shape)
                clusters.append(c)
                urls[name] = c.url()
        times = {name: [] for name in setups}
        client = {name: [] for name in setups}
        for _ in range(args.repeats):
            for name in setups:
                out = os.path.join(work, "out")
                # On a cluster, the plan's partitions: every vcore of the cluster busy.
                threads, extra = (max(2, cores), ["--cluster", urls[name]]) if name in urls else (None, [])
                secs, _, s = segscore_run(args.binary, inputs, model, out, threads, flags + extra)
                times[name].append(secs)
                if s.get("cluster"):
                    client[name].append(s["cluster"]["client_rows_per_second"])
        local = statistics.median(times["local"])
        print(f"# segscore on a Ballista cluster of one machine: {args.model} model, "
              f"{args.segments} segments in {args.files} files, median of {args.repeats}")
        print(f"# machine: {platform.machine()}, {cores} cores, {platform.platform()}")
        print()
        print("| setup | seconds | rows/s | vs local | client write rate (rows/s) |")
        print("|---|---|---|---|---|")
        for name in setups:
            t = statistics.median(times[name])
            w = f"{statistics.median(client[name]):,.0f}" if client[name] else "-"
            print(f"| {name} | {t:.2f} | {args.segments / t:,.0f} | {local / t:.2f}x | {w} |")
    finally:
        for c in clusters:
            c.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
