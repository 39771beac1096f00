#!/usr/bin/env python3
"""Object storage against local disk: the same job (cheap model, 1M segments by default) read
from and written to a local S3-compatible server (moto in server mode, on 127.0.0.1) and from
and to local disk, alternating, several times, in one run.

    pip install "moto[server]==5.2.1"      # scripts/install-python-deps.sh installs it
    cargo build --release
    python3 benches/s3.py                  # 1M segments, 4 files, demo model
    python3 benches/s3.py --segments 200000 --repeats 5

Reports rows/s (median) for local -> local, s3 -> local and s3 -> s3, and the ratios to local
disk. moto is a Python server holding objects in memory: the ratio bounds what segscore's
object-store path costs, not what a real S3 endpoint would give.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import free_port, run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "segscore"))
    ap.add_argument("--segments", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
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
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench",
                   AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT"))
        data = os.path.join(work, "data")
        run([args.binary, "generate", "-o", data, "--segments", str(args.segments),
             "--files", str(args.files)], env)
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
        for _ in range(args.repeats):
            for name, case in cases.items():
                times[name].append(run([args.binary] + common + case, env)[0])
        local = statistics.median(times["local -> local"])
        result = {
            "machine": f"{platform.node()} ({os.cpu_count()} cores)",
            "segments": args.segments,
            "files": args.files,
            "threads": args.threads,
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
