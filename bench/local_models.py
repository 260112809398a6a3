#!/usr/bin/env python3
"""The local-model benchmarks in one run on this machine: maximin's engines
against their peers, on the same model files and the same thread count.

    bench/local_models.py [--threads N] [--models DATA_DIR] [--rounds R]

- Chat, over HTTP with bench/chat_bench.py: `maximin serve` (llama.cpp through
  llama-cpp-2, continuous batching) against llama.cpp's own server as PyPI
  ships it (`llama-cpp-python[server]`, which builds llama.cpp from source), on
  the default gemma-3-270m GGUF: prompt tokens/s, generation tokens/s and time
  to first token on one stream, aggregate tokens/s with 1, 4 and 16 streams.
- Embeddings: the bert engine (crates/maximin-engine-bert/benches/embed.rs)
  against sentence-transformers (bench/embeddings_peer.py) on
  all-MiniLM-L6-v2: sentences/s for batches of 32 short sentences, and the
  latency of one sentence.

DATA_DIR (default $MAXIMIN_TEST_MODELS or ~/.cache/maximin-models) must hold
the default models: `scripts/provision-models DATA_DIR`. The peers live in
virtual environments under $MAXIMIN_BENCH_VENVS (default
~/.cache/maximin-bench), made on first use from PyPI; building llama-cpp-python
takes about ten CPU-minutes, and sentence-transformers brings torch (several
GB). Never part of CI. With --rounds R each side runs R times, alternating, and
the best round of each counts.
"""
import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chat_bench  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENVS = Path(os.environ.get("MAXIMIN_BENCH_VENVS", Path.home() / ".cache" / "maximin-bench"))
LLAMA_CPP_PYTHON = "llama-cpp-python[server]==0.3.36"
SENTENCE_TRANSFORMERS = "sentence-transformers==6.2.0"
GGUF = "models/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf"
MINILM = "models/all-minilm-l6-v2"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def venv(name, requirement, probe):
    """The python of a venv where `probe` imports, made from PyPI if needed."""
    home = VENVS / name
    py = home / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    if subprocess.run([str(py), "-c", f"import {probe}"], capture_output=True).returncode != 0:
        log(f"installing {requirement} into {home} (first use only)")
        env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 1))
        subprocess.run([str(py), "-m", "pip", "install", "-q", requirement], check=True, env=env)
    return py


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer in {seconds} s")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def target_dir():
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                          cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return Path(json.loads(meta)["target_directory"])


@contextlib.contextmanager
def serving(binary, models, threads):
    """`maximin serve` on a fresh data dir linked to DATA_DIR's models, with an
    enterprise account and key: yields (base URL, key)."""
    data = Path(tempfile.mkdtemp(prefix="maximin-bench-"))
    try:
        (data / "models").symlink_to(models / "models")
        cli = [str(binary), "--data-dir", str(data), "--json"]
        account = json.loads(subprocess.run(
            cli + ["accounts", "create", "--email", "bench@example.com", "--plan", "enterprise",
                   "--rpm", "100000000"], check=True, capture_output=True, text=True).stdout)["id"]
        key = json.loads(subprocess.run(
            cli + ["keys", "create", "--account", account, "--name", "bench"],
            check=True, capture_output=True, text=True).stdout)["secret"]
        port = free_port()
        with open(data / "serve.log", "w") as out:
            proc = subprocess.Popen(cli[:-1] + ["serve", "--listen", f"127.0.0.1:{port}",
                                                "--threads", str(threads)],
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz", proc)
            yield base, key
        finally:
            stop(proc)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def bench_maximin(binary, models, threads, label):
    with serving(binary, models, threads) as (base, key):
        return chat_bench.measure(base, key, "minimax-chat-v2", label=label)


def bench_llama_cpp(python, gguf, threads, label):
    port = free_port()
    logf = tempfile.NamedTemporaryFile(prefix="llama-cpp-python-", suffix=".log", delete=False)
    # The GGUF carries no chat template; maximin falls back to llama.cpp's
    # built-in gemma template, and the peer is given the same one.
    proc = subprocess.Popen(
        [str(python), "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
         "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads),
         "--n_ctx", "4096", "--chat_format", "gemma",
         # Queue concurrent requests instead of cancelling the running one
         # (its default), so every stream runs to the end as with maximin.
         "--interrupt_requests", "False"],
        stdout=logf, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/v1/models", proc)
        return chat_bench.measure(base, "", "gemma-3-270m", label=label)
    finally:
        stop(proc)
        logf.close()
        os.unlink(logf.name)


EMBED_RATE = re.compile(r"batch of 32 short sentences: ([\d.]+) sentences/s")
EMBED_P50 = re.compile(r"single sentence latency: p50 ([\d.]+) ms")


def embed_figures(cmd, env, label):
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        print(f"{label}: {line}", flush=True)
    return {"rate": float(EMBED_RATE.search(out).group(1)),
            "p50_ms": float(EMBED_P50.search(out).group(1))}


def common_args(ap):
    """`--threads` and `--models` (DATA_DIR), as every bench takes them."""
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--models", type=Path,
                    default=Path(os.environ.get("MAXIMIN_TEST_MODELS",
                                                Path.home() / ".cache" / "maximin-models")))


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--skip-chat", action="store_true")
    ap.add_argument("--skip-embeddings", action="store_true")
    a = ap.parse_args()
    gguf = a.models / GGUF
    minilm = a.models / MINILM
    for p in (gguf, minilm):
        if not p.exists():
            sys.exit(f"{p} is missing: run scripts/provision-models {a.models}")

    log("building maximin (release)")
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "maximin"], cwd=ROOT, check=True)
    binary = target_dir() / "release" / "maximin"
    print(f"machine: {os.cpu_count()} cores; {a.threads} threads on every side", flush=True)

    results = {}
    if not a.skip_chat:
        llama_py = venv("llama", LLAMA_CPP_PYTHON, "llama_cpp.server")
        version = subprocess.run([str(llama_py), "-c", "import llama_cpp;print(llama_cpp.__version__)"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        mm, peer = [], []
        for r in range(a.rounds):
            mm.append(bench_maximin(binary, a.models, a.threads, f"maximin r{r + 1}"))
            peer.append(bench_llama_cpp(llama_py, gguf, a.threads,
                                        f"llama-cpp-python {version} r{r + 1}"))
        results["chat"] = (mm, peer, version)

    if not a.skip_embeddings:
        st_py = venv("st", SENTENCE_TRANSFORMERS, "sentence_transformers")
        env = dict(os.environ, MAXIMIN_TEST_MODELS=str(a.models))
        mm, peer = [], []
        for r in range(a.rounds):
            mm.append(embed_figures(
                ["cargo", "bench", "--locked", "-q", "-p", "maximin-engine-bert", "--bench", "embed",
                 "--", str(a.threads)], env, f"maximin r{r + 1}"))
            peer.append(embed_figures([str(st_py), "bench/embeddings_peer.py", str(minilm),
                                       str(a.threads)], env, f"sentence-transformers r{r + 1}"))
        results["embeddings"] = (mm, peer)

    print("\nsummary (best round of each side; higher is better except times)")
    if "chat" in results:
        mm, peer, version = results["chat"]
        best = lambda runs, f: max(f(x) for x in runs)
        least = lambda runs, f: min(f(x) for x in runs)
        rows = [
            ("prompt tokens/s (~500-token prompt)", best, lambda x: x.get("prompt_tps", 0)),
            ("generation tokens/s, one stream", best, lambda x: x["generation_tps"]),
        ] + [(f"aggregate tokens/s, {n} streams", best, (lambda n: lambda x: x["aggregate"][n]["tps"])(n))
             for n in (1, 4, 16)]
        print(f"{'chat (gemma-3-270m Q4_K_M)':<40} {'maximin':>10} {'llama.cpp':>10} {'ratio':>7}")
        for name, pick, f in rows:
            m, p = pick(mm, f), pick(peer, f)
            print(f"{name:<40} {m:>10.1f} {p:>10.1f} {ratio(m, p):>7}")
        for name, f in [("time to first token, short prompt (ms)", lambda x: x["ttft_ms"]),
                        ("time to first token p50, 16 streams (ms)",
                         lambda x: x["aggregate"][16]["ttft_p50_ms"])]:
            m, p = least(mm, f), least(peer, f)
            print(f"{name:<40} {m:>10.0f} {p:>10.0f} {ratio(p, m):>7}")
        print(f"(llama.cpp: llama-cpp-python {version} server, built from source by pip)")
    if "embeddings" in results:
        mm, peer = results["embeddings"]
        m, p = max(x["rate"] for x in mm), max(x["rate"] for x in peer)
        print(f"{'embeddings (all-MiniLM-L6-v2)':<40} {'maximin':>10} {'sent-tr':>10} {'ratio':>7}")
        print(f"{'sentences/s, batches of 32':<40} {m:>10.1f} {p:>10.1f} {ratio(m, p):>7}")
        m, p = min(x["p50_ms"] for x in mm), min(x["p50_ms"] for x in peer)
        print(f"{'one sentence, p50 (ms)':<40} {m:>10.2f} {p:>10.2f} {ratio(p, m):>7}")


if __name__ == "__main__":
    main()
