#!/usr/bin/env python3
"""LoRA fine-tuning throughput on the CPU: maximin's trainer (candle,
crates/maximin-finetune, driven through the API of `maximin serve`) against
PEFT on PyTorch (bench/fine_tune_peft.py), on the same GGUF
(gemma-3-270m Q4_K_M), the same generated chat data, the same
hyperparameters and the same number of threads.

    bench/fine_tune.py [--bin PATH] [--models DATA_DIR] [--threads N]
                       [--ranks 8,16] [--epochs 1] [--batch-size 4] [--examples 32]
                       [--json PATH]

--bin defaults to /root/.cache/maximin-target/release/maximin (build it with
`CARGO_TARGET_DIR=/root/.cache/maximin-target cargo build --release -p
maximin`). DATA_DIR (default $MAXIMIN_TEST_MODELS or ~/.cache/maximin-models)
must hold the default models (`scripts/provision-models DATA_DIR`).

maximin: for each rank, a fresh `maximin serve` on a new data dir (its
`models/` linked to DATA_DIR's, `[fine_tune] threads = N` in its
maximin.toml), a pay-as-you-go account with an admin key made with the CLI;
the data is uploaded (`POST /v1/files/upload`, purpose fine-tune), a job
created (`POST /v1/fine-tunes`, seed 1) and polled to its end, and the steps
read from its events (tokens/s there is the tokens run forward and backward
in a step over the step's seconds). Peak RSS is the server's VmHWM.

PEFT: bench/fine_tune_peft.py in a venv at $MAXIMIN_BENCH_PEFT_VENV (default
~/.cache/maximin-bench-peft), made on first use from PyPI with pinned
versions (see PEFT_REQUIREMENTS). PyPI's torch wheel for Linux brings the
CUDA libraries and triton, unused here: 67 wheels, 3.1 GB downloaded,
5.6 GB installed (3.0 GB of it nvidia-*), about 2.5 minutes to install.
transformers reads the GGUF itself (its gemma3 support, dequantised to
float32) and builds the tokenizer from it, offline; the GGUF has no chat
template, so Gemma's is set on the tokenizer (the one llama.cpp applies).
Peak RSS is the child's ru_maxrss (model loading included, as on maximin's
side).

Both sides: LoRA on the attention projections (q, k, v, o), alpha = 2 ×
rank, learning rate 2e-3 with maximin's warm-up and cosine decay, AdamW,
clipping at 1, loss on the assistant's tokens only (logits computed at
those positions only), each batch run one example at a time with gradients
accumulated. The data's token counts are printed for both sides: they
agree when both render and tokenize alike. Figures: tokens/s is the
median over the steps after the first (the first pays one-time costs; model
loading is never counted); final loss is the last step's; mean loss is over
all steps (each side shuffles the data its own way, so single steps hold
different examples). Never part of CI; the whole run takes about four
minutes on 2 cores, once the venv is made. --json PATH also writes the
table's figures as JSON (bench/all.sh reads them).
"""
import argparse
import json
import os
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GGUF = "models/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf"
MODEL = "gemma-3-270m"
DEFAULT_BIN = Path("/root/.cache/maximin-target/release/maximin")
PEFT_VENV = Path(os.environ.get("MAXIMIN_BENCH_PEFT_VENV",
                                Path.home() / ".cache" / "maximin-bench-peft"))
PEFT_REQUIREMENTS = ["torch==2.15.0", "transformers==5.25.0", "peft==0.21.2", "gguf==0.19.0"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- the data ---------------------------------------------------------------

TOWNS = [
    # name, river, founded, dish, festival month, trade
    ("Velmora", "Sarn", 1214, "smoked eel pie", "May", "glassblowing"),
    ("Quillhaven", "Teth", 1388, "barley dumplings", "October", "paper making"),
    ("Ostrava Minor", "Lune", 1102, "plum stew", "August", "clockwork"),
    ("Brackenfold", "Orrin", 1561, "honey oat cakes", "March", "wool dyeing"),
    ("Caldrith", "Wend", 1290, "peppered trout", "June", "bell casting"),
    ("Dunmarrow", "Ash", 1433, "cabbage rolls", "January", "shipbuilding"),
    ("Elsweyr Cross", "Mire", 1175, "saffron bread", "September", "lacework"),
    ("Feldspar Hollow", "Gleam", 1612, "mushroom broth", "November", "gem cutting"),
]

SENTENCES = [
    "{town} stands on the banks of the river {river} and was founded in {founded}.",
    "Visitors usually come for {dish}, which every tavern in {town} serves with dark bread.",
    "The town's great festival is held each {month}, when the streets are lit with lanterns.",
    "For centuries the local guilds have been famous for {trade}, and their work is sold far away.",
    "The old bridge over the {river} was rebuilt in stone about a hundred years after the founding.",
    "Most families in {town} still keep a small garden behind the house, even in the centre.",
]

QUESTIONS = [
    "Tell me about {town}.",
    "What is {town} known for?",
    "I am planning a trip to {town}. What should I know before I go?",
    "When was {town} founded, and what river runs through it?",
]


def examples(n, seed):
    """`n` chat examples (user question, assistant answer) about made-up
    towns; the same for a given seed, about 40 to 120 tokens each."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        town, river, founded, dish, month, trade = TOWNS[i % len(TOWNS)]
        facts = dict(town=town, river=river, founded=founded, dish=dish, month=month, trade=trade)
        question = QUESTIONS[(i // len(TOWNS)) % len(QUESTIONS)].format(**facts)
        picked = [0] + rng.sample(range(1, len(SENTENCES)), rng.randint(0, 3))
        answer = " ".join(SENTENCES[k].format(**facts) for k in picked)
        out.append({"messages": [{"role": "user", "content": question},
                                 {"role": "assistant", "content": answer}]})
    return out


def jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


# --- maximin ----------------------------------------------------------------

class ServerDied(RuntimeError):
    pass


def api(base, key, method, path, body=None, form=None, timeout=60):
    """One request; the `data` of a seed-002 envelope (or the whole body)."""
    headers = {"Authorization": f"Bearer {key}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if form is not None:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in form.items():
            if isinstance(value, tuple):  # (file name, bytes)
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                             f'filename="{value[0]}"\r\nContent-Type: application/jsonl\r\n\r\n'
                             .encode() + value[1] + b"\r\n")
            else:
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                             f'\r\n\r\n{value}\r\n'.encode())
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    for attempt in range(5):
        req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                reply = json.loads(r.read())
            return reply.get("data", reply) if isinstance(reply, dict) and "data" in reply \
                and "meta" in reply else reply
        except urllib.error.HTTPError as e:
            text = e.read()[:500].decode(errors="replace")
            if e.code == 429 and attempt < 4:
                time.sleep(float(e.headers.get("Retry-After") or 1))
                continue
            raise RuntimeError(f"{method} {path}: HTTP {e.code}: {text}") from None
    raise RuntimeError(f"{method} {path}: still rate limited")


def vm_hwm_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Serve:
    """`maximin serve` on a fresh data dir linked to DATA_DIR's models, with
    a pay-as-you-go account and an admin key."""

    def __init__(self, binary, models, threads):
        self.binary = binary
        self.data = Path(tempfile.mkdtemp(prefix="maximin-bench-ft-"))
        (self.data / "models").symlink_to(models / "models")
        self.config = self.data / "maximin.toml"
        self.config.write_text(f"[fine_tune]\nthreads = {threads}\n")
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("MAXIMIN_LISTEN", "MAXIMIN_DATA_DIR", "MAXIMIN_DATABASE_URL",
                                 "MAXIMIN_REDIS_URL", "MAXIMIN_CLOCK_OFFSET")}
        self.env.update(MAXIMIN_NO_PULL="true", MAXIMIN_BOOTSTRAP="off",
                        MAXIMIN_CONFIG=str(self.config))
        self.proc = None
        self.log_path = self.data / "serve.log"

    def cli(self, *args):
        out = subprocess.run([str(self.binary), *args, "--data-dir", str(self.data), "--json"],
                             cwd=self.data, env=self.env, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"maximin {' '.join(args)}: {out.stdout} {out.stderr}")
        return json.loads(out.stdout)

    def __enter__(self):
        account = self.cli("accounts", "create", "--email", "bench@example.com",
                           "--plan", "payg")["id"]
        self.key = self.cli("keys", "create", "--account", account, "--name", "bench",
                            "--scope", "admin")["secret"]
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data)],
            cwd=self.data, env=self.env, stdout=subprocess.PIPE, stderr=self.logf, text=True)
        first = queue.Queue()

        def pump():
            first.put(self.proc.stdout.readline())
            for line in self.proc.stdout:
                self.logf.write(line)

        threading.Thread(target=pump, daemon=True).start()
        try:
            line = first.get(timeout=120)
        except queue.Empty:
            self.__exit__(None, None, None)
            raise RuntimeError("maximin serve printed nothing in 120 s") from None
        if not line.startswith("maximin listening on "):
            self.__exit__(None, None, None)
            raise ServerDied(f"maximin serve did not start: {line!r}\n{self.tail()}")
        self.base = line.strip().removeprefix("maximin listening on ")
        return self

    def tail(self, n=20):
        """The log's last lines, less the per-request ones."""
        self.logf.flush()
        lines = [x for x in self.log_path.read_text(errors="replace").splitlines()
                 if "maximin_http: request" not in x]
        return "\n".join(lines[-n:])

    def check(self):
        if self.proc.poll() is not None:
            raise ServerDied(f"maximin serve exited with {self.proc.returncode}:\n{self.tail()}")

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        shutil.rmtree(self.data, ignore_errors=True)


def bench_maximin(binary, models, threads, data, rank, epochs, batch, seed, limit_s):
    with Serve(binary, models, threads) as s:
        up = api(s.base, s.key, "POST", "/v1/files/upload",
                 form={"purpose": "fine-tune", "file": ("train.jsonl", data)})
        file_id = up["file"]["file_id"]
        job = api(s.base, s.key, "POST", "/v1/fine-tunes", body={
            "model": MODEL, "training_file": file_id, "seed": seed,
            "hyperparameters": {"n_epochs": epochs, "batch_size": batch, "lora_rank": rank}})
        jid = job["id"]
        tokens = job.get("training", {}).get("tokens")
        log(f"maximin r{rank}: {jid}, {job.get('training', {}).get('examples')} examples, "
            f"{tokens} tokens")
        deadline = time.time() + limit_s
        seen = 0
        while True:
            s.check()
            try:
                job = api(s.base, s.key, "GET", f"/v1/fine-tunes/{jid}")
                steps = step_events(s, jid)
            except (OSError, RuntimeError):
                time.sleep(0.5)
                s.check()  # a server that died says so rather than a refused connection
                raise
            for e in steps[seen:]:
                d = e["data"]
                log(f"maximin r{rank}: step {d['step']}/{d['total_steps']} loss {d['train_loss']:.4f}"
                    f" {d['tokens_per_s']:.1f} tokens/s")
            seen = len(steps)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            if time.time() > deadline:
                try:
                    api(s.base, s.key, "POST", f"/v1/fine-tunes/{jid}/cancel")
                finally:
                    raise RuntimeError(f"maximin r{rank}: {jid} still {job['status']} after "
                                       f"{limit_s} s (cancelled)")
            time.sleep(1)
        hwm = vm_hwm_mb(s.proc.pid)
        s.check()
        if job["status"] != "succeeded":
            raise RuntimeError(f"maximin r{rank}: {jid} {job['status']}: {job.get('error')}\n"
                               f"{s.tail()}")
        steps = [e["data"] for e in step_events(s, jid)]
    return {"tokens": tokens, "tokens_per_s": [d["tokens_per_s"] for d in steps],
            "losses": [d["train_loss"] for d in steps], "peak_rss_mb": hwm}


def step_events(s, jid):
    """The job's step events, in order (every page)."""
    out, after = [], 0
    while True:
        page = api(s.base, s.key, "GET", f"/v1/fine-tunes/{jid}/events?limit=1000&after={after}")
        out += [e for e in page if isinstance(e.get("data"), dict) and "step" in e["data"]]
        if len(page) < 1000:
            return sorted(out, key=lambda e: e["data"]["step"])
        after = page[-1]["seq"]


# --- PEFT -------------------------------------------------------------------

def peft_python():
    """The venv's python, made from PyPI with pinned versions if missing."""
    py = PEFT_VENV / "bin" / "python"
    probe = "import torch, transformers, peft, gguf; print(torch.__version__, transformers.__version__, peft.__version__)"
    if py.exists() and subprocess.run([str(py), "-c", probe], capture_output=True).returncode == 0:
        return py
    log(f"installing {' '.join(PEFT_REQUIREMENTS)} into {PEFT_VENV} (first use only: "
        f"3.1 GB from PyPI, a few minutes)")
    started = time.time()
    subprocess.run([sys.executable, "-m", "venv", str(PEFT_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *PEFT_REQUIREMENTS], check=True)
    log(f"installed in {time.time() - started:.0f} s")
    return py


def bench_peft(py, gguf, data_path, threads, rank, epochs, batch, seed, limit_s):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               HF_HUB_OFFLINE="1", TQDM_DISABLE="1", TRANSFORMERS_VERBOSITY="error",
               PYTHONWARNINGS="ignore")
    cmd = [str(py), str(ROOT / "bench" / "fine_tune_peft.py"), "--gguf", str(gguf),
           "--data", str(data_path), "--rank", str(rank), "--epochs", str(epochs),
           "--batch-size", str(batch), "--threads", str(threads), "--seed", str(seed)]
    try:
        out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, timeout=limit_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"peft r{rank}: no result in {limit_s} s") from None
    if out.returncode != 0:
        raise RuntimeError(f"peft r{rank}: exited with {out.returncode}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["tokens_per_s"] = [st["tokens"] / st["seconds"] for st in r["steps"]]
    r["losses"] = [st["loss"] for st in r["steps"]]
    return r


# --- the table --------------------------------------------------------------

def figures(r):
    """A run's figures as the table shows them: (tokens/s, steps, final loss,
    mean loss, peak RSS MB or None)."""
    tps = r["tokens_per_s"][1:] or r["tokens_per_s"]
    return (statistics.median(tps), len(r["losses"]), r["losses"][-1], statistics.mean(r["losses"]),
            r.get("peak_rss_mb"))


def row(name, r, machine):
    tps, steps, final, mean, rss = figures(r)
    return [name, f"{tps:.1f}", str(steps), f"{final:.3f}",
            f"{mean:.3f}", f"{rss:.0f}" if rss else "-", machine]


def record(side, rank, r):
    """A run's entry in --json."""
    tps, steps, final, mean, rss = figures(r)
    return {"side": side, "rank": rank, "tokens": r.get("tokens"), "tokens_per_s": tps, "steps": steps,
            "final_loss": final, "mean_loss": mean, "peak_rss_mb": rss or None,
            "versions": r.get("versions")}


def run_all(a, ranks, gguf, py, data, data_path, machine, rows, notes, runs):
    """Every run, maximin's first; a row, a note and a --json entry for each."""
    if not a.skip_maximin:
        for rank in ranks:
            r = bench_maximin(a.bin, a.models, a.threads, data, rank, a.epochs, a.batch_size,
                              a.seed, a.limit)
            rows.append(row(f"maximin rank {rank}", r, machine))
            runs.append(record("maximin", rank, r))
            notes.append(f"maximin r{rank}: {r['tokens']} tokens in the data")
    if not a.skip_peft:
        for rank in ranks:
            r = bench_peft(py, gguf, data_path, a.threads, rank, a.epochs, a.batch_size,
                           a.seed, a.limit)
            rows.append(row(f"PEFT rank {rank}", r, machine))
            runs.append(record("peft", rank, r))
            v = r["versions"]
            notes.append(f"PEFT r{rank}: {r['tokens']} tokens in the data, model load "
                         f"{r['load_s']:.1f} s (torch {v['torch']}, transformers "
                         f"{v['transformers']}, peft {v['peft']}, {r['threads']} threads)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", type=Path, default=DEFAULT_BIN)
    ap.add_argument("--models", type=Path,
                    default=Path(os.environ.get("MAXIMIN_TEST_MODELS",
                                                Path.home() / ".cache" / "maximin-models")))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ranks", default="8,16")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--examples", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=int, default=900, help="seconds one run may take")
    ap.add_argument("--skip-maximin", action="store_true")
    ap.add_argument("--skip-peft", action="store_true")
    ap.add_argument("--json", type=Path, metavar="PATH",
                    help="also write the table's figures to PATH as JSON")
    a = ap.parse_args()
    ranks = [int(x) for x in a.ranks.split(",")]
    gguf = a.models / GGUF
    if not gguf.exists():
        sys.exit(f"{gguf} is missing: run scripts/provision-models {a.models}")
    if not a.skip_maximin and not a.bin.exists():
        sys.exit(f"{a.bin} is missing: CARGO_TARGET_DIR={a.bin.parent.parent} "
                 "cargo build --release -p maximin")
    py = None if a.skip_peft else peft_python()

    data = jsonl(examples(a.examples, a.seed))
    work = Path(tempfile.mkdtemp(prefix="maximin-bench-ft-data-"))
    data_path = work / "train.jsonl"
    data_path.write_bytes(data)
    machine = f"{os.cpu_count()} cores, {a.threads} threads"
    load = lambda: open("/proc/loadavg").read().split()[:3]
    log(f"machine: {machine}; load average {' '.join(load())}")

    rows, notes, runs = [], [], []
    try:
        run_all(a, ranks, gguf, py, data, data_path, machine, rows, notes, runs)
    except (RuntimeError, OSError) as e:
        sys.exit(f"fine_tune.py: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nLoRA fine-tuning of gemma-3-270m (Q4_K_M GGUF), {a.examples} examples, "
          f"{a.epochs} epoch(s), batch {a.batch_size}, lr 2e-3, seed {a.seed}")
    head = ["run", "tokens/s", "steps", "final loss", "mean loss", "peak RSS MB", "machine"]
    widths = [max(len(x[i]) for x in rows + [head]) for i in range(len(head))]
    for x in [head] + rows:
        print("  ".join(c.ljust(w) if i in (0, 6) else c.rjust(w)
                        for i, (c, w) in enumerate(zip(x, widths))).rstrip())
    print("(tokens/s: median over the steps after the first, tokens run forward and backward)")
    for n in notes:
        print(n)
    print(f"load average after: {' '.join(load())}")
    if a.json:
        a.json.write_text(json.dumps({
            "bench": "fine_tune", "model": f"{MODEL} Q4_K_M", "examples": a.examples,
            "epochs": a.epochs, "batch_size": a.batch_size, "seed": a.seed,
            "threads": a.threads, "cores": os.cpu_count(), "runs": runs,
        }, indent=2) + "\n")
        log(f"wrote {a.json}")


if __name__ == "__main__":
    main()
