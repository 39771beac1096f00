#!/usr/bin/env python3
"""Writes the same small dataset with the tools users write Parquet with, for
tests/it/writers.rs. Run once; the files are committed (the tools are heavy to install):

    pip install duckdb==2.0.1 polars==2.1.0 pandas==3.1.1 deltalake==1.6.6 pyarrow
    python3 tests/data/writers/make_fixtures.py [delta]

With `delta`, `delta_partitioned`, `delta_escaped` or `spark_int96`, only that fixture is written
again.

The dataset: 12 generations of 1 to 4 segments (30 rows): generation_id, segment_index,
cumulative_score, input_ids (token ids for the demo model), day (1 to 3), split, model_name.
"""
import os
import shutil
import sys
import uuid

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))


def rows():
    out = []
    for g in range(12):
        cum = 0.0
        for k in range(1 + g % 4):
            cum += ((g * 7 + k * 3) % 11 - 5) / 10.0
            out.append({
                "generation_id": f"g{g:03d}",
                "segment_index": k,
                "cumulative_score": round(cum, 6),
                "input_ids": [1 + (g * 37 + k * 11 + i * 7) % 998 for i in range(2 + (g + k) % 5)],
                "day": 1 + g % 3,
                "split": "train" if g % 2 else "test",
                "model_name": ["alpha", "beta", "gamma"][g % 3],
            })
    return out


def fresh(name):
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def delta(table):
    """A Delta Lake table (delta-rs) written twice: the rows with every score negated, then
    overwritten by the dataset. Both files stay in the folder; the log says which is live."""
    from deltalake import write_deltalake

    d = fresh("delta")
    stale = table.set_column(2, "cumulative_score", pc.negate(table["cumulative_score"]))
    write_deltalake(d, stale)
    write_deltalake(d, table, mode="overwrite")


def delta_partitioned(table):
    """A Delta Lake table (delta-rs) partitioned by day: the values are in its log and its
    folder names, not in its files."""
    from deltalake import write_deltalake

    d = fresh("delta_partitioned")
    write_deltalake(d, table, partition_by=["day"])


def delta_escaped(table):
    """A Delta Lake table (delta-rs) partitioned by a text whose values a folder name escapes
    (`x y%` in the folder `tag=x%20y%25`), which its log's paths, URIs, escape again
    (`tag=x%2520y%2525/...`)."""
    from deltalake import write_deltalake

    tags = {1: "x y%", 2: "z#1", 3: "plain"}
    t = table.drop_columns(["day"]).append_column("tag", pa.array([tags[d] for d in table["day"].to_pylist()]))
    d = fresh("delta_escaped")
    write_deltalake(d, t, partition_by=["tag"])


def spark_int96(table):
    """As Spark writes timestamps by default (`spark.sql.parquet.outputTimestampType` INT96):
    INT96 columns and no embedded Arrow schema. valid_to holds 9999-12-31
    (a "no end" date) for even generations, which 64-bit nanoseconds cannot hold."""
    import datetime

    n = table.num_rows
    gens = [int(g[1:]) for g in table["generation_id"].to_pylist()]
    valid_from = pa.array([datetime.datetime(2024, 1, 1 + g, 12, 30, 0, 123456) for g in gens], pa.timestamp("us"))
    valid_to = pa.array([datetime.datetime(9999, 12, 31) if g % 2 == 0 else datetime.datetime(2025, 6, 30)
                         for g in gens], pa.timestamp("us"))
    t = table.append_column("valid_from", valid_from).append_column("valid_to", valid_to)
    assert len(valid_to) == n
    d = fresh("spark_int96")
    pq.write_table(t, f"{d}/part-00000-c000.snappy.parquet", compression="snappy",
                   use_deprecated_int96_timestamps=True, store_schema=False)


def main(names):
    table = pa.Table.from_pylist(rows())
    if names == ["spark_int96"]:
        spark_int96(table)
        return
    if names == ["delta_partitioned"]:
        delta_partitioned(table)
        return
    if names == ["delta_escaped"]:
        delta_escaped(table)
        return
    delta(table)
    if names == ["delta"]:
        return
    delta_partitioned(table)
    delta_escaped(table)
    spark_int96(table)
    # DuckDB COPY: one file, and PARTITION_BY (day) into day=N/ folders (day left out of the files).
    con = duckdb.connect()
    con.register("t", table)
    d = fresh("duckdb")
    con.execute(f"COPY (SELECT * FROM t) TO '{d}/generations.parquet' (FORMAT PARQUET)")
    d = fresh("duckdb_partitioned")
    con.execute(f"COPY (SELECT * FROM t) TO '{d}' (FORMAT PARQUET, PARTITION_BY (day))")
    # polars: plain, and with the ids and the model name as Categorical.
    df = pl.from_arrow(table)
    d = fresh("polars")
    df.write_parquet(f"{d}/generations.parquet")
    d = fresh("polars_categorical")
    df.with_columns(pl.col("generation_id").cast(pl.Categorical), pl.col("model_name").cast(pl.Categorical)).write_parquet(
        f"{d}/generations.parquet"
    )
    # pandas: a category column and the index (a named, non-default one is written as a column).
    pdf = table.to_pandas()
    pdf["split"] = pdf["split"].astype("category")
    pdf.index = pd.Index([f"row{i}" for i in range(len(pdf))], name="row_id")
    d = fresh("pandas")
    pdf.to_parquet(f"{d}/generations.parquet")
    # pyarrow write_dataset: several files, small row groups.
    d = fresh("pyarrow_dataset")
    ds.write_dataset(table, d, format="parquet", max_rows_per_file=8, max_rows_per_group=3, min_rows_per_group=1,
                     basename_template="part-{i}.parquet")
    # A Spark-style folder: part-*.snappy.parquet, one of them with no rows, beside _SUCCESS and
    # the .crc files.
    d = fresh("spark")
    job = uuid.UUID(int=2026_11_28)
    halves = [table.slice(0, 14), table.slice(14), table.slice(0, 0)]
    for i, part in enumerate(halves):
        name = f"part-{i:05d}-{job}-c000.snappy.parquet"
        pq.write_table(part, f"{d}/{name}", compression="snappy")
        with open(f"{d}/.{name}.crc", "wb") as f:
            f.write(b"crc\x00\x01")
    open(f"{d}/_SUCCESS", "w").close()
    open(f"{d}/._SUCCESS.crc", "w").close()
    for name in sorted(os.listdir(HERE)):
        p = os.path.join(HERE, name)
        if os.path.isdir(p):
            for root, _, files in os.walk(p):
                for f in sorted(files):
                    path = os.path.join(root, f)
                    if f.endswith(".parquet"):
                        print(os.path.relpath(path, HERE), pq.read_schema(path).types)


if __name__ == "__main__":
    main(sys.argv[1:])
