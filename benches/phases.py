#!/usr/bin/env python3
"""Where a `segscore run`'s time goes, at `--threads 1` and at `--threads N`: the phases read
from the run's debug log (`SEGSCORE_LOG=segscore=debug`), medians of `--repeats` runs, the
thread counts alternating, each replacing its own last output.

    python3 benches/phases.py --files 1 --layout undeclared     # the README's table
    python3 benches/phases.py --files 4 --layout sorted --threads 2

The phases, from the process's start to its exit:

- start: to the job's partitions starting to stream (the model loaded, the inputs checked,
  the query planned);
- pass: to the last partition's last row (the window, checks, model, losses, writing);
- tail: to the overall metrics' end (the last partition's sample sorted, the metrics over the
  whole sample; its part files close beside them);
- end: to the process's exit (the summary, the commit, removing the replaced output, the exit).

"Outside the model" is a phase less `model_seconds` (summed over sessions) per thread, as in
`benches/e2e.py --scaling`.

`--ceiling` also runs N `--threads 1` runs at once (N = `--threads`, each its own output) and
says what that costs each of them against one alone: what the machine itself (shared caches,
memory bandwidth, the disk) takes from N threads, whatever the program; and times a plain CPU
loop in N processes against one (no memory, no disk: what the cores themselves give, which on a
shared VM is less than N). With the start and the
end counted serial and the rest of one thread's run outside the model spread over N threads at
that cost, it gives the most `--threads N` could reach, and how close the run comes. The data is `benches/e2e.py`'s. Timings are from one run on one
machine: compare the two thread counts, not runs on different days.
"""
import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import MODELS, add_binary, data  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PHASES = ["start", "pass", "tail", "end"]


def stamp(line):
    """The log line's UTC timestamp in seconds since the epoch."""
    t = line.split()[0]
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()


def runs_at_once(binary, data_dir, model, jobs):
    """Runs `jobs` ((output folder, threads) each) at once, started together; each run's phases
    (seconds) and its model seconds per thread, in order."""
    env = dict(os.environ, SEGSCORE_LOG="segscore=debug", NO_COLOR="1")
    done = [None] * len(jobs)

    def one(i, out, threads):
        cmd = [binary, "run", "-q", "--provider", "cpu", "-i", data_dir, "-m", model, "-o", out, "--overwrite",
               "--threads", str(threads)]
        launched = time.time()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        done[i] = (launched, time.time(), p)

    workers = [threading.Thread(target=one, args=(i, out, t)) for i, (out, t) in enumerate(jobs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [phases_of(*d, out, t) for d, (out, t) in zip(done, jobs)]


def _spin(count):
    x = 0
    for i in range(count):
        x += i
    return x


def loop_scaling(n, count=30_000_000):
    """How much faster `n` processes each running the same plain CPU loop (no memory, no I/O)
    finish `n` loops than one process finishes one: the most any program could gain from `n`
    cores on this machine at this moment (a neighbour on the host shows here first)."""
    import multiprocessing

    def timed(k):
        ps = [multiprocessing.Process(target=_spin, args=(count,)) for _ in range(k)]
        t = time.perf_counter()
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        return time.perf_counter() - t

    return n * timed(1) / timed(n)


def one_run(binary, data_dir, model, out, threads):
    """One run's phases (seconds) and its model seconds per thread."""
    return runs_at_once(binary, data_dir, model, [(out, threads)])[0]


def phases_of(launched, exited, p, out, threads):
    """The phases of a finished run `p` (launched and exited at those times) from its debug log,
    and its model seconds per thread."""
    if p.returncode != 0:
        sys.exit(f"segscore failed:\n{p.stderr}")
    lines = [ANSI.sub("", l) for l in p.stderr.splitlines() if "DEBUG" in l]

    def find(text, last=False):
        found = [l for l in lines if text in l]
        if not found:
            sys.exit(f"no debug line with {text!r}: the phases need the evaluation in the pass")
        return found[-1] if last else found[0]

    streaming = stamp(find("partitions streaming"))
    # Each partition's "part files closed" line comes once its files have closed; the line's
    # `seconds` is how long that took, so its last row came that much before the line.
    last_row = max(stamp(l) - float(re.search(r"seconds=([0-9.e-]+)", l).group(1))
                   for l in lines if "part files closed" in l)
    overall = stamp(find("overall metrics from the sample", last=True))
    with open(os.path.join(out, "summary.json")) as f:
        model_per_thread = json.load(f)["model_seconds"] / threads
    phases = [streaming - launched, last_row - streaming, overall - last_row, exited - overall]
    return phases, model_per_thread


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=1)
    ap.add_argument("--layout", choices=["sorted", "undeclared", "shuffled"], default="undeclared")
    ap.add_argument("--model", choices=sorted(MODELS), default="small")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    add_binary(ap)
    ap.add_argument("--workdir", default="/tmp/segscore-bench")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--ceiling", action="store_true",
                    help="also run as many `--threads 1` runs at once as `--threads`, each with its own output, "
                         "for what the machine itself costs a second thread (the ceiling below)")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    d = data(args.bin, args.workdir, args.segments, args.files, args.layout)
    runs = {1: [], args.threads: []}
    together = []
    loops = []
    for _ in range(args.repeats):
        for t, rs in runs.items():
            rs.append(one_run(args.bin, d, MODELS[args.model], os.path.join(args.workdir, f"out-phases-{t}"), t))
        if args.ceiling:
            jobs = [(os.path.join(args.workdir, f"out-phases-together-{i}"), 1) for i in range(args.threads)]
            together.extend(runs_at_once(args.bin, d, MODELS[args.model], jobs))
            loops.append(loop_scaling(args.threads))
    med = {}
    for t, rs in runs.items():
        phases = [statistics.median(r[0][i] for r in rs) for i in range(len(PHASES))]
        model = statistics.median(r[1] for r in rs)
        total = statistics.median(sum(r[0]) for r in rs)
        outside = statistics.median(sum(r[0]) - r[1] for r in rs)
        med[t] = {"phases": dict(zip(PHASES, phases)), "model_per_thread": model, "total": total,
                  "outside_model": outside,
                  "pass_outside_model": statistics.median(r[0][1] - r[1] for r in rs)}
    print(f"{args.segments} segments; layout {args.layout}; {args.files} file(s); model {args.model}; "
          f"{args.repeats} runs each, alternating; medians, seconds")
    print("| `--threads` | start | pass | pass outside the model | tail | end | whole run | outside the model |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t, m in med.items():
        p = m["phases"]
        print(f"| {t} | {p['start']:.3f} | {p['pass']:.3f} | {m['pass_outside_model']:.3f} | {p['tail']:.3f} "
              f"| {p['end']:.3f} | {m['total']:.3f} | {m['outside_model']:.3f} |")
    one, n = med[1], med[args.threads]
    ratio = lambda a, b: f"{a / b:.2f}x" if b > 0 else "-"  # noqa: E731
    print(f"| 1 / {args.threads} | {ratio(one['phases']['start'], n['phases']['start'])} "
          f"| {ratio(one['phases']['pass'], n['phases']['pass'])} "
          f"| {ratio(one['pass_outside_model'], n['pass_outside_model'])} "
          f"| {ratio(one['phases']['tail'], n['phases']['tail'])} | {ratio(one['phases']['end'], n['phases']['end'])} "
          f"| {ratio(one['total'], n['total'])} | {ratio(one['outside_model'], n['outside_model'])} |")
    ceiling = None
    if together:
        # What running N single-thread jobs at once costs each of them (the machine's shared
        # caches, memory and disk), applied to the part of one thread's run outside the start and
        # the end: the most `--threads N` could gain outside the model with nothing else lost.
        cost = statistics.median(sum(r[0]) - r[1] for r in together) / one["outside_model"]
        serial = one["phases"]["start"] + one["phases"]["end"]
        best = one["outside_model"] / (serial + (one["outside_model"] - serial) * cost / args.threads)
        got = one["outside_model"] / n["outside_model"]
        loop = statistics.median(loops)
        ceiling = {"cost": cost, "serial": serial, "ceiling": best, "measured": got, "cpu_loop": loop,
                   "cpu_loops": loops}
        print(f"\n{args.threads} runs of `--threads 1` at once: each {cost:.3f}x the time outside the model of one "
              f"alone ({len(together)} runs). With the start and end ({serial:.3f} s) serial and the rest spread "
              f"over {args.threads} threads at that cost, `--threads {args.threads}` could reach {best:.2f}x "
              f"outside the model; it reached {got:.2f}x ({got / best:.0%} of that). A plain CPU loop in "
              f"{args.threads} processes ran {loop:.2f}x as fast as in one (median of {len(loops)}: "
              f"{min(loops):.2f}x-{max(loops):.2f}x).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"segments": args.segments, "layout": args.layout, "files": args.files,
                       "threads": {str(t): m for t, m in med.items()}, "ceiling": ceiling,
                       "runs": {str(t): [{"phases": r[0], "model_per_thread": r[1]} for r in rs]
                                for t, rs in runs.items()}}, f, indent=2)


if __name__ == "__main__":
    main()
