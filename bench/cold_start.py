#!/usr/bin/env python3
"""Cold start of `maximin serve`: from exec to the first `/readyz` 200, with
the default models present (DATA_DIR's models linked into a fresh data dir).

    bench/cold_start.py [--models DATA_DIR] [--runs N] [--json PATH]

Two cases, each run N times (the median and the worst are printed):
- first start: an empty data dir (the database created, the owner's account
  made, the default models found and checked);
- restart: the same data dir again, as after `systemctl restart`.

The target is under 200 ms for both. Models are loaded lazily, on their
first request, so neither case reads weights; the default models are
checked by the stamp their last verification left (size and time), not read
again. Never part of CI.
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_models import ROOT, common_args, free_port, log, stop, target_dir  # noqa: E402

TARGET_MS = 200.0


def ready(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/readyz")
        status = conn.getresponse().status
        conn.close()
        return status == 200
    except OSError:
        return False


def one_start(binary, data, threads):
    """Milliseconds from exec to the first /readyz 200."""
    port = free_port()
    with open(data / "serve.log", "a") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(binary), "--data-dir", str(data), "serve",
                                 "--listen", f"127.0.0.1:{port}", "--threads", str(threads)],
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            while not ready(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"maximin serve exited with {proc.returncode}: see {data}/serve.log")
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("/readyz not 200 within 60 s")
                time.sleep(0.002)
            return (time.perf_counter() - t0) * 1000
        finally:
            stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-build", action="store_true", help="use the release binary as it is")
    a = ap.parse_args()
    if not (a.models / "models").is_dir():
        sys.exit(f"{a.models}/models is missing: run scripts/provision-models {a.models}")
    if not a.no_build:
        log("building maximin (release)")
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "maximin"], cwd=ROOT, check=True)
    binary = target_dir() / "release" / "maximin"

    first, again = [], []
    for _ in range(a.runs):
        data = Path(tempfile.mkdtemp(prefix="maximin-cold-"))
        try:
            (data / "models").symlink_to(a.models / "models")
            first.append(one_start(binary, data, a.threads))
            again.append(one_start(binary, data, a.threads))
        finally:
            shutil.rmtree(data, ignore_errors=True)

    print(f"cold start of maximin serve to /readyz 200 ({a.runs} runs, {os.cpu_count()} cores, default models present)")
    figures = {}
    for name, runs in (("first start (empty data dir)", first), ("restart", again)):
        med, worst = statistics.median(runs), max(runs)
        verdict = "met" if med < TARGET_MS else "NOT met"
        print(f"  {name:<30} median {med:7.1f} ms   worst {worst:7.1f} ms   (target < {TARGET_MS:.0f} ms: {verdict})")
        figures["first_start_ms" if runs is first else "restart_ms"] = {"median": med, "worst": worst}
    if a.json:
        a.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
