#!/usr/bin/env python3
"""Two segscore binaries on the same job, alternating (A, B, A, B, ...): the ratio of their
median times, from one run on one machine. For changes that should not change speed (a build
profile, say) and need evidence that they do not.

    python3 benches/ab.py --a /tmp/segscore-before --b target/release/segscore
    python3 benches/ab.py --a OLD --b NEW --layout undeclared --files 1 --repeats 7
    python3 benches/ab.py --a OLD --b NEW --sql window     # `segscore sql` instead of the job

The data is `benches/e2e.py`'s (written by binary A); each run is `segscore run` with the demo
model, `--threads` threads, and its output replaced. With `--sql`, each run is `segscore sql`
over the data's files, written to Parquet: `window` is `benches/window.py`'s LAG query,
`aggregate` a GROUP BY generation with count, sum, avg, stddev, min and max (DataFusion's
aggregate functions), `scalar` string and math functions on every row.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import MODELS, binary, data, segscore_run  # noqa: E402
from window import QUERY as WINDOW, segscore_sql  # noqa: E402

SQL = {
    "window": WINDOW.format(table="t"),
    "aggregate": """SELECT generation_id, count(*) AS n, sum(cumulative_score) AS total,
  avg(cumulative_score) AS mean, stddev(cumulative_score) AS sd, min(segment_index) AS first,
  max(segment_index) AS last
FROM t GROUP BY generation_id""",
    "scalar": """SELECT upper(generation_id) AS g, length(generation_id) AS len,
  substr(generation_id, 2, 4) AS part, round(sqrt(abs(cumulative_score)) * 100.0) AS r,
  cardinality(input_ids) AS tokens
FROM t""",
}



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, type=binary, help="binary A (the baseline)")
    ap.add_argument("--b", required=True, type=binary, help="binary B")
    ap.add_argument("--segments", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--layout", choices=["sorted", "undeclared", "shuffled"], default="sorted")
    ap.add_argument("--row-group-rows", type=int, help="rows per row group of the generated files")
    ap.add_argument("--model", choices=sorted(MODELS), default="small")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--workdir", default="/tmp/segscore-bench")
    ap.add_argument("--sql", choices=sorted(SQL), help="time `segscore sql` of this query instead of the job")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    d = data(args.a, args.workdir, args.segments, args.files, args.layout, args.row_group_rows)
    times = {"a": [], "b": []}
    for _ in range(args.repeats):
        for k in ("a", "b"):
            if args.sql:
                secs = segscore_sql(getattr(args, k), d, SQL[args.sql],
                                    os.path.join(args.workdir, f"out-ab-{k}.parquet"), args.threads)
            else:
                secs, _, _ = segscore_run(getattr(args, k), d, MODELS[args.model],
                                          os.path.join(args.workdir, f"out-ab-{k}"), args.threads)
            times[k].append(secs)
    med = {k: statistics.median(v) for k, v in times.items()}
    what = f"`segscore sql` {args.sql}" if args.sql else f"model {args.model}"
    print(f"{args.segments} segments, {args.files} file(s), {args.layout}, {what}, "
          f"{args.threads} threads, {args.repeats} runs each, alternating")
    for k in ("a", "b"):
        print(f"{k}: {getattr(args, k)}: median {med[k]:.3f} s  ({', '.join(f'{t:.2f}' for t in times[k])})")
    print(f"b / a: {med['b'] / med['a']:.3f}")


if __name__ == "__main__":
    main()
