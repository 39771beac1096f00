#!/usr/bin/env python3
"""Object storage against local disk: the same job (cheap model, 1M segments by default) read
from and written to a local S3-compatible server (moto in server mode, on 127.0.0.1) and from
and to local disk, alternating, several times, in one run.

    pip install "moto[server]==5.2.1"      # scripts/install-python-deps.sh installs it
    cargo build --release
    python3 benches/s3.py                  # 1M segments, 4 files, demo model
    python3 benches/s3.py --segments 200000 --repeats 5
    python3 benches/s3.py --segments 20000 --files 64 --latency 20   # 20 ms a request
    python3 benches/s3.py --segments 200000 --files 3 --row-group-rows 10000 --latency 20

Reports rows/s (median) for local -> local, s3 -> local and s3 -> s3, and the ratios to local
disk; the seconds of `segscore sql -t t=s3://bench/in/ "SELECT count(*) FROM t"`, and of a
query of one small column (`SELECT source, count(*) ... GROUP BY source`) with the bytes it
downloads (counted with `--latency`). With
`--latency MS`, every request segscore sends waits MS milliseconds first (a proxy between it
and moto, as object storage's round trip would): what many objects cost a run before its
first row.

moto is a Python server holding objects in memory: the ratio bounds what segscore's
object-store path costs, not what a real S3 endpoint would give.
"""
import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import add_binary, free_port, run  # noqa: E402


# Bytes the latency proxy has passed from the server to its clients.
DOWNLOADED = [0]


def latency_proxy(target_port, seconds):
    """A TCP proxy on 127.0.0.1 (a free port, returned) to 127.0.0.1:`target_port` that holds
    each piece a client sends for `seconds`: every request waits that long, as a round trip to
    object storage would. It counts the bytes it passes back in DOWNLOADED, and runs on a daemon
    thread until the bench exits."""
    port = free_port()

    async def pipe(reader, writer, delay):
        try:
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                else:
                    DOWNLOADED[0] += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_r, client_w):
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(client_r, server_w, seconds), pipe(server_r, client_w, 0))

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    return port


def main():
    ap = argparse.ArgumentParser()
    add_binary(ap, "--binary")
    ap.add_argument("--segments", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--row-group-rows", type=int, default=None,
                    help="rows per row group of the generated files (generate's default: one per file)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--latency", type=float, default=0.0,
                    help="milliseconds each request of segscore's waits (a proxy in front of moto)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="segscore-s3-bench-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("moto did not start")
                time.sleep(0.1)
        seen = endpoint
        if args.latency:
            seen = f"http://127.0.0.1:{latency_proxy(port, args.latency / 1000)}"
        env = dict(os.environ, AWS_ENDPOINT_URL=seen, AWS_ACCESS_KEY_ID="bench",
                   AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1", AWS_ALLOW_HTTP="true")
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT"))
        data = os.path.join(work, "data")
        generate = [args.binary, "generate", "-o", data, "--segments", str(args.segments),
                    "--files", str(args.files)]
        if args.row_group_rows:
            generate += ["--row-group-rows", str(args.row_group_rows)]
        run(generate, env)
        import boto3  # installed with moto

        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                          aws_secret_access_key="bench", region_name="us-east-1")
        for f in sorted(os.listdir(data)):
            if f.endswith(".parquet"):
                s3.upload_file(os.path.join(data, f), "bench", f"in/{f}")
        model = os.path.join(ROOT, "models", "reward_small.onnx")
        s3.upload_file(model, "bench", "model.onnx")
        common = ["run", "-q", "--threads", str(args.threads), "--overwrite"]
        cases = {
            "local -> local": ["-i", data, "-m", model, "-o", os.path.join(work, "out")],
            "s3 -> local": ["-i", "s3://bench/in/", "-m", "s3://bench/model.onnx",
                            "-o", os.path.join(work, "out")],
            "s3 -> s3": ["-i", "s3://bench/in/", "-m", "s3://bench/model.onnx", "-o", "s3://bench/out"],
        }
        times = {k: [] for k in cases}
        downloaded = {k: [] for k in cases}
        count = [args.binary, "sql", "-t", "t=s3://bench/in/", "SELECT count(*) AS n FROM t"]
        # A query of one small column: what it costs to read a few columns of files whose bulk
        # is token lists.
        narrow = [args.binary, "sql", "-t", "t=s3://bench/in/",
                  "SELECT source, count(*) AS n FROM t GROUP BY source ORDER BY source"]
        count_seconds, narrow_seconds, narrow_bytes = [], [], []
        for _ in range(args.repeats):
            for name, case in cases.items():
                before = DOWNLOADED[0]
                times[name].append(run([args.binary] + common + case, env)[0])
                downloaded[name].append(DOWNLOADED[0] - before)
            count_seconds.append(run(count, env)[0])
            before = DOWNLOADED[0]
            narrow_seconds.append(run(narrow, env)[0])
            narrow_bytes.append(DOWNLOADED[0] - before)
        local = statistics.median(times["local -> local"])
        result = {
            "machine": f"{platform.node()} ({os.cpu_count()} cores)",
            "segments": args.segments,
            "files": args.files,
            "row_group_rows": args.row_group_rows,
            "threads": args.threads,
            "latency_ms": args.latency,
            "seconds": {k: round(statistics.median(v), 3) for k, v in times.items()},
            # Counted by the latency proxy: with --latency only (and only what reads the store).
            "bytes_read": {k: statistics.median(v) for k, v in downloaded.items() if k != "local -> local"}
            if args.latency else None,
            "sql_count_seconds": round(statistics.median(count_seconds), 3),
            "sql_narrow_seconds": round(statistics.median(narrow_seconds), 3),
            # Counted by the latency proxy: with --latency only.
            "sql_narrow_bytes_read": statistics.median(narrow_bytes) if args.latency else None,
            "input_bytes": sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)),
            "rows_per_second": {k: round(args.segments / statistics.median(v)) for k, v in times.items()},
            "ratio_to_local": {k: round(local / statistics.median(v), 3) for k, v in times.items()},
        }
        print(json.dumps(result, indent=2))
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
