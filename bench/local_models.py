#!/usr/bin/env python3
"""The local-model benchmarks in one run on this machine: maximin's engines
against their peers, on the same model files and the same thread count.

    bench/local_models.py [--threads N] [--models DATA_DIR] [--rounds R]
        [--skip-llama-server] [--skip-llama-cpp-python] [--json PATH]

- Chat, over HTTP with bench/chat_bench.py: `maximin serve` (llama.cpp through
  llama-cpp-2, continuous batching) against two peers on the default
  gemma-3-270m GGUF, all with llama.cpp's built-in gemma chat template (the
  GGUF carries none): llama.cpp's own `llama-server` (16 slots, continuous
  batching), built with CMake from the llama.cpp sources that the
  llama-cpp-python sdist vendors, and llama-cpp-python's server as PyPI ships
  it (`llama-cpp-python[server]`, which builds the same llama.cpp from source).
  Figures: prompt tokens/s, generation tokens/s and time to first token on one
  stream, aggregate tokens/s and time to first token with 1, 4 and 16 streams;
  the summary gives maximin's ratio to each peer and checks maximin's targets
  against llama-server.
- Embeddings: the bert engine (crates/maximin-engine-bert/benches/embed.rs)
  against sentence-transformers (bench/embeddings_peer.py) on
  all-MiniLM-L6-v2: sentences/s for batches of 32 short sentences, and the
  latency of one sentence.

DATA_DIR (default $MAXIMIN_TEST_MODELS or ~/.cache/maximin-models) must hold
the default models: `scripts/provision-models DATA_DIR`. The peers live under
$MAXIMIN_BENCH_VENVS (default ~/.cache/maximin-bench), made on first use from
PyPI only: virtual environments for llama-cpp-python (building it takes about
ten CPU-minutes), sentence-transformers (it brings torch, several GB) and CMake
(a wheel), and llama-server/VERSION/bin/llama-server, built from the
llama-cpp-python sdist (Release, native CPU, nothing fetched at build time;
about as long to build as llama-cpp-python). Never part of CI. With --rounds R
each side runs R times, alternating (maximin, llama-cpp-python, llama-server,
maximin, ...), and the best round of each counts. --json PATH also writes the
summary figures as JSON.
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
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chat_bench  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENVS = Path(os.environ.get("MAXIMIN_BENCH_VENVS", Path.home() / ".cache" / "maximin-bench"))
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
LLAMA_CPP_PYTHON = f"llama-cpp-python[server]=={LLAMA_CPP_PYTHON_VERSION}"
CMAKE = "cmake==4.4.5"
# llama-server's slots: each stream of the 16-stream run gets its own, with a
# 4096-token context (--ctx-size is split among the slots).
LLAMA_SERVER_SLOTS = 16
LLAMA_SERVER_CTX_PER_SLOT = 4096
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


def llama_server_binary():
    """llama.cpp's llama-server, built on first use from the llama.cpp sources
    that the llama-cpp-python sdist vendors (so both peers run the same
    llama.cpp) and kept under VENVS/llama-server/VERSION/bin."""
    home = VENVS / "llama-server" / LLAMA_CPP_PYTHON_VERSION
    binary = home / "bin" / "llama-server"
    if binary.exists():
        return binary
    log(f"building llama-server from the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist"
        f" into {home} (first use only)")
    cmake = venv("cmake", CMAKE, "cmake").parent / "cmake"
    sdist = home / "sdist"
    if not list(sdist.glob("*.tar.gz")):
        # The sdist only (--no-binary for this package; pip still fetches the
        # build backend as wheels to read the sdist's metadata).
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--no-binary", "llama-cpp-python",
                        f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(sdist)],
                       check=True)
    archive, = sdist.glob("*.tar.gz")
    top = home / "src" / archive.name[:-len(".tar.gz")]
    if not top.exists():
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(home / "src", filter="data")
            else:
                tar.extractall(home / "src")
    src = top / "vendor" / "llama.cpp"
    # The sdist has no .git, so llama.cpp's build would report commit
    # "unknown"; the package's changelog names the commit it vendors.
    changelog = (top / "CHANGELOG.md").read_text()
    section = changelog.split(f"## [{LLAMA_CPP_PYTHON_VERSION}]", 1)[-1].split("\n## [", 1)[0]
    commit = re.search(r"llama\.cpp@([0-9a-f]{7,40})", section)
    jobs = str(os.cpu_count() or 1)
    configure = [
        str(cmake), "-B", "build", "-DCMAKE_BUILD_TYPE=Release",
        "-DGGML_NATIVE=ON",             # this machine's CPU features
        "-DBUILD_SHARED_LIBS=OFF",      # one self-contained binary to keep
        # Nothing from the network: this llama.cpp has no LLAMA_CURL any more
        # (its downloader is cpp-httplib, HTTPS through OpenSSL), and its web
        # UI is fetched from a Hugging Face bucket unless told otherwise.
        "-DLLAMA_OPENSSL=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_UI=OFF",
        "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_NUMBER=0", f"-DLLAMA_BUILD_COMMIT={commit.group(1) if commit else 'unknown'}",
    ]
    build = [str(cmake), "--build", "build", "--target", "llama-server",
             "-j", jobs]
    for cmd in (configure, build):
        log("(cd " + str(src) + " && " + " ".join(cmd) + ")")
        subprocess.run(cmd, cwd=src, check=True)
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    shutil.copy2(src / "build" / "bin" / "llama-server", tmp)
    tmp.rename(binary)
    return binary


def llama_server_version(binary):
    """`llama-server --version`, e.g. 'version: 0.5.0-dev (build 0, commit 0c1e57098);
    built with GNU 12.2.0 for Linux x86_64'."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    lines = [l.strip() for l in (out.stdout + out.stderr).splitlines()
             if l.startswith(("version:", "built with"))]
    return "; ".join(lines) or "unknown"


def bench_llama_server(binary, gguf, threads, label):
    port = free_port()
    logf = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [str(binary), "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "-t", str(threads), "-tb", str(threads),
         "-np", str(LLAMA_SERVER_SLOTS), "-cb",
         "-c", str(LLAMA_SERVER_SLOTS * LLAMA_SERVER_CTX_PER_SLOT),
         # llama-server renders chat with Jinja by default, which would take
         # "gemma" for a template's source; without it, --chat-template names
         # one of llama.cpp's built-in templates, the one maximin falls back to.
         "--no-jinja", "--chat-template", "gemma",
         "--no-webui"],
        stdout=logf, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/health", proc)  # 503 while the model loads, then 200
        return chat_bench.measure(base, "", "gemma-3-270m", label=label)
    except Exception:
        logf.flush()
        log(f"{label} failed; the end of its log:\n" + Path(logf.name).read_text()[-3000:])
        raise
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


# The chat summary's rows: (name, higher is better, figure of one round).
CHAT_ROWS = [
    ("prompt tokens/s (~500-token prompt)", True, lambda x: x.get("prompt_tps", 0)),
    ("generation tokens/s, one stream", True, lambda x: x["generation_tps"]),
] + [(f"aggregate tokens/s, {n} streams", True, (lambda n: lambda x: x["aggregate"][n]["tps"])(n))
     for n in (1, 4, 16)] + [
    ("time to first token, short prompt (ms)", False, lambda x: x["ttft_ms"]),
    ("time to first token p50, 16 streams (ms)", False, lambda x: x["aggregate"][16]["ttft_p50_ms"]),
]
# maximin's targets against llama-server: (row, comparison, maximin / llama-server).
CHAT_TARGETS = [
    ("prompt tokens/s (~500-token prompt)", ">=", 1.0),
    ("generation tokens/s, one stream", ">=", 1.1),
    ("aggregate tokens/s, 16 streams", ">=", 1.5),
    ("time to first token p50, 16 streams (ms)", "<=", 0.8),
]
CHAT_PEERS = ["llama-server", "llama-cpp-python"]  # the summary's column order


def best_of(runs, higher, f):
    """The best round's figure: the highest rate, the lowest time."""
    return (max if higher else min)(f(x) for x in runs)


def chat_summary(runs):
    """Best round of each side and every row: {side: {row name: figure}}."""
    return {side: {name: best_of(rs, higher, f) for name, higher, f in CHAT_ROWS}
            for side, rs in runs.items()}


def print_chat(runs, versions):
    best = chat_summary(runs)
    peers = [p for p in CHAT_PEERS if p in runs]
    head = f"{'chat (gemma-3-270m Q4_K_M)':<42} {'maximin':>10}"
    for peer in peers:
        head += f" {peer:>16} {'ratio':>6}"
    print(head)
    for name, higher, _ in CHAT_ROWS:
        m = best["maximin"][name]
        fmt = ".1f" if higher else ".0f"
        line = f"{name:<42} {m:>10{fmt}}"
        for peer in peers:
            p = best[peer][name]
            line += f" {p:>16{fmt}} {ratio(m, p) if higher else ratio(p, m):>6}"
        print(line)
    if peers:
        print("(ratio: how many times better maximin is; for times, the peer's over maximin's)")
    for peer in peers:
        print(f"({peer}: {versions[peer]})")
    targets = []
    if "llama-server" in best:
        print("targets against llama-server (maximin / llama-server):")
        for name, op, want in CHAT_TARGETS:
            m, p = best["maximin"][name], best["llama-server"][name]
            got = m / p if p else None
            met = got is not None and (got >= want if op == ">=" else got <= want)
            targets.append({"name": name, "target": f"{op} {want}x", "ratio": got, "met": met,
                            "maximin": m, "llama-server": p})
            print(f"  {name}: {ratio(m, p)} {op} {want:.1f}x: {'met' if met else 'NOT met'}"
                  f" ({m:.1f} against {p:.1f})")
    return best, targets


def chat_json(runs, versions, targets):
    """The chat figures of --json: per side, the best round of each."""
    sides = {}
    for side, rs in runs.items():
        sides[side] = {
            "version": versions[side],
            "prompt_tps": best_of(rs, True, lambda x: x.get("prompt_tps", 0)),
            "generation_tps": best_of(rs, True, lambda x: x["generation_tps"]),
            "aggregate_tps": {str(n): best_of(rs, True, lambda x: x["aggregate"][n]["tps"])
                              for n in (1, 4, 16)},
            "ttft_ms": best_of(rs, False, lambda x: x["ttft_ms"]),
            "ttft_p50_ms_16_streams": best_of(rs, False,
                                              lambda x: x["aggregate"][16]["ttft_p50_ms"]),
            "rounds": rs,
        }
    return {"model": "gemma-3-270m Q4_K_M", "sides": sides, "targets": targets}


def maximin_version():
    out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def dist_version(python, dist):
    return subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        check=True, capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--skip-chat", action="store_true")
    ap.add_argument("--skip-embeddings", action="store_true")
    ap.add_argument("--skip-llama-server", action="store_true",
                    help="chat: leave llama.cpp's llama-server out")
    ap.add_argument("--skip-llama-cpp-python", action="store_true",
                    help="chat: leave llama-cpp-python's server out")
    ap.add_argument("--json", type=Path, metavar="PATH",
                    help="also write the summary figures to PATH as JSON")
    a = ap.parse_args()
    gguf = a.models / GGUF
    minilm = a.models / MINILM
    for p in ([] if a.skip_chat else [gguf]) + ([] if a.skip_embeddings else [minilm]):
        if not p.exists():
            sys.exit(f"{p} is missing: run scripts/provision-models {a.models}")

    log("building maximin (release)")
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "maximin"], cwd=ROOT, check=True)
    binary = target_dir() / "release" / "maximin"
    print(f"machine: {os.cpu_count()} cores; {a.threads} threads on every side", flush=True)
    summary = {"machine": {"cores": os.cpu_count(), "threads": a.threads}, "rounds": a.rounds,
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    results = {}
    if not a.skip_chat:
        # Every peer is made ready first, so no build runs between rounds.
        versions = {"maximin": maximin_version()}
        sides = [("maximin", lambda label: bench_maximin(binary, a.models, a.threads, label))]
        if not a.skip_llama_cpp_python:
            llama_py = venv("llama", LLAMA_CPP_PYTHON, "llama_cpp.server")
            versions["llama-cpp-python"] = "llama-cpp-python " + subprocess.run(
                [str(llama_py), "-c", "import llama_cpp;print(llama_cpp.__version__)"],
                check=True, capture_output=True, text=True).stdout.strip() + " server"
            sides.append(("llama-cpp-python",
                          lambda label: bench_llama_cpp(llama_py, gguf, a.threads, label)))
        if not a.skip_llama_server:
            server = llama_server_binary()
            versions["llama-server"] = (f"llama-server from llama-cpp-python "
                                        f"{LLAMA_CPP_PYTHON_VERSION}'s llama.cpp: "
                                        + llama_server_version(server))
            sides.append(("llama-server",
                          lambda label: bench_llama_server(server, gguf, a.threads, label)))
        runs = {side: [] for side, _ in sides}
        for r in range(a.rounds):
            for side, bench in sides:
                runs[side].append(bench(f"{side} r{r + 1}"))
        results["chat"] = (runs, versions)

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
        results["embeddings"] = (mm, peer, dist_version(st_py, "sentence-transformers"))

    print("\nsummary (best round of each side; higher is better except times)")
    if "chat" in results:
        runs, versions = results["chat"]
        _, targets = print_chat(runs, versions)
        summary["chat"] = chat_json(runs, versions, targets)
    if "embeddings" in results:
        mm, peer, st_version = results["embeddings"]
        m, p = max(x["rate"] for x in mm), max(x["rate"] for x in peer)
        print(f"{'embeddings (all-MiniLM-L6-v2)':<42} {'maximin':>10} {'sent-tr':>10} {'ratio':>6}")
        print(f"{'sentences/s, batches of 32':<42} {m:>10.1f} {p:>10.1f} {ratio(m, p):>6}")
        m50, p50 = min(x["p50_ms"] for x in mm), min(x["p50_ms"] for x in peer)
        print(f"{'one sentence, p50 (ms)':<42} {m50:>10.2f} {p50:>10.2f} {ratio(p50, m50):>6}")
        print(f"(sentence-transformers {st_version})")
        summary["embeddings"] = {
            "model": "all-MiniLM-L6-v2",
            "sides": {
                "maximin": {"version": maximin_version(), "rate": m, "p50_ms": m50},
                "sentence-transformers": {"version": f"sentence-transformers {st_version}",
                                          "rate": p, "p50_ms": p50},
            },
        }
    if a.json:
        a.json.write_text(json.dumps(summary, indent=2) + "\n")
        log(f"wrote {a.json}")


if __name__ == "__main__":
    main()
