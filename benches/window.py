#!/usr/bin/env python3
"""The window step alone (issue 13): each segment's target, the change in cumulative score, by a
LAG window over one Parquet file of N segments, written to Parquet (zstd), through
`segscore sql`, DuckDB and polars, with the same threads, alternating, --repeats times each.

    pip install duckdb polars pyarrow
    cargo build --release
    python3 benches/window.py                       # 1M segments, one file, all cores

The file is written as users' tools write it: sorted by (generation_id, segment_index) but not
declaring it in its footer (`segscore generate --undeclared --files 1`); `--layout declared`
uses a file whose footer declares the order, `--layout shuffled` one that is not sorted.
segscore is timed as a process (start-up included), DuckDB and polars in this process (from
connecting / building the query to the file written).
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import add_binary, run  # noqa: E402

QUERY = """SELECT generation_id, segment_index, cumulative_score,
  cumulative_score - COALESCE(LAG(cumulative_score) OVER (PARTITION BY generation_id ORDER BY segment_index), 0.0)
    AS target_score
FROM {table}"""


def segscore_sql(binary, path, query, out, threads):
    """`segscore sql` of `query` over table `t` (the Parquet files at `path`), written to the Parquet
    file `out`; returns the seconds, start-up included."""
    secs, _, _ = run([binary, "sql", "-q", "--threads", str(threads), "--table", f"t={path}",
                      "--format", "parquet", "--to", out, query])
    return secs


def duckdb_run(path, out, threads):
    import duckdb
    t0 = time.perf_counter()
    c = duckdb.connect()
    c.execute(f"SET threads={threads}")
    q = QUERY.format(table=f"read_parquet('{path}')")
    c.execute(f"COPY ({q}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    c.close()
    return time.perf_counter() - t0


def polars_run(path, out, threads):
    import polars as pl
    t0 = time.perf_counter()
    (pl.scan_parquet(path)
     .select("generation_id", "segment_index", "cumulative_score",
             (pl.col("cumulative_score") - pl.col("cumulative_score").shift(1).over(
                 "generation_id", order_by="segment_index").fill_null(0.0)).alias("target_score"))
     .sink_parquet(out, compression="zstd"))
    return time.perf_counter() - t0


def same_targets(a, b):
    """Asserts that two outputs hold the same keys and targets (to 1e-12), whatever their row order."""
    import pyarrow.parquet as pq
    keys = [("generation_id", "ascending"), ("segment_index", "ascending")]
    x, y = (pq.read_table(p).sort_by(keys) for p in (a, b))
    for c in ("generation_id", "segment_index"):
        assert x[c].to_pylist() == y[c].to_pylist(), f"{c} differs between {a} and {b}"
    worst = max(abs(u - v) for u, v in zip(x["target_score"].to_pylist(), y["target_score"].to_pylist()))
    assert worst <= 1e-12, f"target_score differs by {worst} between {a} and {b}"


def rows_of(path):
    import pyarrow.parquet as pq
    return pq.ParquetFile(path).metadata.num_rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=int, default=1_000_000)
    ap.add_argument("--layout", choices=["undeclared", "declared", "shuffled"], default="undeclared")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    add_binary(ap)
    ap.add_argument("--workdir", default="/tmp/segscore-bench-window")
    ap.add_argument("--no-polars", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    os.environ["POLARS_MAX_THREADS"] = str(args.threads)
    os.makedirs(args.workdir, exist_ok=True)
    d = os.path.join(args.workdir, f"data-{args.segments}-{args.layout}")
    if not os.path.exists(os.path.join(d, ".complete")):
        shutil.rmtree(d, ignore_errors=True)
        flags = {"undeclared": ["--undeclared"], "declared": [], "shuffled": ["--shuffled"]}[args.layout]
        run([args.bin, "generate", "-q", "-o", d, "--segments", str(args.segments), "--files", "1"] + flags)
        open(os.path.join(d, ".complete"), "w").close()
    path = os.path.join(d, "part-00000.parquet")
    out = {k: os.path.join(args.workdir, f"out-{k}.parquet") for k in ("segscore", "duckdb", "polars")}
    times = {"segscore": [], "duckdb": [], "polars": []}
    for _ in range(args.repeats):
        times["segscore"].append(segscore_sql(args.bin, path, QUERY.format(table="t"), out["segscore"], args.threads))
        times["duckdb"].append(duckdb_run(path, out["duckdb"], args.threads))
        if not args.no_polars:
            times["polars"].append(polars_run(path, out["polars"], args.threads))
    for k in ("segscore", "duckdb") + (() if args.no_polars else ("polars",)):
        assert rows_of(out[k]) == args.segments, f"{k} wrote {rows_of(out[k])} rows"
    same_targets(out["segscore"], out["duckdb"])
    med = {k: statistics.median(v) for k, v in times.items() if v}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    print(f"machine: {machine}; {args.segments} segments, one file ({args.layout}); {args.threads} threads; "
          f"{args.repeats} runs each, alternating; medians")
    print("| | seconds | rows/s | / DuckDB |")
    print("|---|---:|---:|---:|")
    for k, v in med.items():
        print(f"| {k} | {v:.3f} | {args.segments / v:,.0f} | {v / med['duckdb']:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "segments": args.segments, "layout": args.layout,
                       "threads": args.threads, "seconds": times, "median_seconds": med}, f, indent=2)


if __name__ == "__main__":
    main()
