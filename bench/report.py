#!/usr/bin/env python3
"""One markdown table of maximin against each peer, from the JSON files of a
bench/all.sh run directory (standard library only), so the table can be
rebuilt without running anything again.

    bench/report.py RUN_DIR [--out FILE] [--quiet]
    bench/report.py --init RUN_DIR [--args TEXT]

--init writes RUN_DIR/meta.json before a run: the date (UTC), the machine
(cores as nproc counts them, the CPU model from /proc/cpuinfo, memory) and
maximin's commit (`git describe --always --dirty`), with TEXT (all.sh's
arguments). Without --init it reads RUN_DIR: meta.json, status.tsv (one line
per benchmark that all.sh got to: name, ok|failed|skipped, detail, seconds)
and NAME.json / NAME.log for each benchmark, and writes the markdown to FILE
(default: print only) and prints it unless --quiet. A benchmark that was
skipped, failed or left no readable figures gets a row saying so, with its
log, never no row.

The table's columns: benchmark | figure | maximin | peer | peer figure |
ratio, one row per headline figure. The ratio is oriented so that > 1 means
maximin is better: maximin / peer for rates, peer / maximin for times and
memory.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# all.sh's names, in its order; chat and embeddings both come from local_models.py.
BENCHES = ["request_path", "gateway", "cluster", "chat", "embeddings", "speech", "media",
           "fine_tune", "cold_start"]
SCRIPTS = {
    "request_path": "bench/request_path.sh", "gateway": "bench/gateway.sh",
    "cluster": "bench/cluster.sh", "chat": "bench/local_models.py",
    "embeddings": "bench/local_models.py", "speech": "bench/speech.py",
    "media": "bench/media.py", "fine_tune": "bench/fine_tune.py",
    "cold_start": "bench/cold_start.py",
}
COLD_START_TARGET_MS = 200.0
HIGHER, LOWER = True, False  # is a higher figure better?


# ---------------------------------------------------------------- meta

def machine():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith(("model name", "Model", "cpu model")):
                cpu = line.split(":", 1)[1].strip() or cpu
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {"cores": cores, "cpu": cpu, "memory_gib": mem_gib}


def commit():
    out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def init(run, args):
    run.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()) + " UTC",
            "machine": machine(), "commit": commit(), "args": args}
    (run / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


# ---------------------------------------------------------------- formatting

def num(x):
    """A figure with about three significant digits, thousands grouped."""
    if x is None or x != x:
        return "–"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def ratio(m, p, higher):
    if m is None or p is None or m != m or p != p or m <= 0 or p <= 0:
        return "–"
    r = m / p if higher else p / m
    return f"{r:.0f}×" if r >= 100 else f"{r:.1f}×" if r >= 10 else f"{r:.2f}×"


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def shown(path):
    """A path relative to the repository when it is inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- figures
# Each takes a benchmark's JSON and returns (rows, notes): rows are
# (figure, maximin, peer, peer figure, higher is better), notes short lines.

def request_path(d):
    rows = {(r["path"], r["connections"]): r for r in d["rows"]}
    models64, chat64, floor64 = rows[("/v1/models", 64)], rows[("/v1/chat/completions", 64)], \
        rows[("/healthz", 64)]
    out = [("GET /v1/models, req/s at 64 conn", models64["rps"],
            "POST /v1/chat/completions (503), same server", chat64["rps"], HIGHER),
           ("GET /v1/models, req/s at 64 conn", models64["rps"],
            "GET /healthz (no auth: the floor)", floor64["rps"], HIGHER)]
    if ("/v1/models", 1) in rows and ("/healthz", 1) in rows:
        out.append(("GET /v1/models, p50 ms at 1 conn", rows[("/v1/models", 1)]["p50_ms"],
                    "GET /healthz (no auth: the floor)", rows[("/healthz", 1)]["p50_ms"], LOWER))
    return out, [f"request_path: wrk on loopback, {d.get('seconds', 0):g} s per run; "
                 "its peer is maximin itself: the chat POST (parsed, validated, answered 503 "
                 "without weights) and /healthz (no auth, no storage)"]


def gateway(d):
    rows = {(r["target"], r["connections"], r["mode"]): r for r in d["rows"]}
    out = []
    for peer, name in (("litellm", "LiteLLM"), ("floor", "floor (bare axum + reqwest forwarder)")):
        for mode in ("plain", "stream"):
            m, p = rows.get(("maximin", 64, mode)), rows.get((peer, 64, mode))
            if m and p:
                out.append((f"req/s at 64 conn, {mode}", m["rps"], name, p["rps"], HIGHER))
        for mode in ("plain", "stream"):
            m, p = rows.get(("maximin", 1, mode)), rows.get((peer, 1, mode))
            if m and p:
                out.append((f"p50 ms at 1 conn, {mode}", m["p50_ms"], name, p["p50_ms"], LOWER))
    if not out:
        raise KeyError("no maximin rows with a peer")
    v = d.get("versions") or {}
    return out, [f"gateway: in front of an nginx mock, {d.get('seconds', 0):g} s per run; "
                 + ", ".join(x for x in (v.get("litellm"), v.get("nginx"), v.get("wrk")) if x)]


def cluster(d):
    single = next(r for r in d["rows"] if not r["shared_state"] and r["replicas"] == 1)
    out = []
    for r in d["rows"]:
        if r is single:
            continue
        out.append((f"req/s at 64 conn, {r['setup']}", r["rps"], single["setup"], single["rps"], HIGHER))
        out.append((f"p99 ms at 64 conn, {r['setup']}", r["p99_ms"], single["setup"], single["p99_ms"],
                    LOWER))
    return out, [f"cluster: GET /v1/models, {d.get('seconds', 0):g} s per run; its peer is "
                 "maximin itself on one machine's state (what sharing the state costs)"]


CHAT_FIGURES = [
    ("prompt tokens/s (~500-token prompt)", lambda s: s["prompt_tps"], HIGHER),
    ("generation tokens/s, one stream", lambda s: s["generation_tps"], HIGHER),
    ("aggregate tokens/s, 16 streams", lambda s: s["aggregate_tps"]["16"], HIGHER),
    ("time to first token p50 ms, 16 streams", lambda s: s["ttft_p50_ms_16_streams"], LOWER),
]


def chat(d):
    sides = d["chat"]["sides"]
    m = sides["maximin"]
    out, notes = [], []
    for peer in ("llama-server", "llama-cpp-python"):
        if peer not in sides:
            continue
        for figure, f, higher in CHAT_FIGURES:
            out.append((figure, f(m), peer, f(sides[peer]), higher))
        notes.append(f"chat: {sides[peer].get('version', peer)}")
    if not out:
        raise KeyError("no peer in the chat figures")
    return out, [f"chat: {d['chat'].get('model', '')}, best of {d.get('rounds', 1)} round(s)"] + notes


def embeddings(d):
    e = d["embeddings"]
    m, p = e["sides"]["maximin"], e["sides"]["sentence-transformers"]
    return ([("sentences/s, batches of 32", m["rate"], "sentence-transformers", p["rate"], HIGHER),
             ("one sentence p50 ms", m["p50_ms"], "sentence-transformers", p["p50_ms"], LOWER)],
            [f"embeddings: {e.get('model', '')}; {p.get('version', 'sentence-transformers')}"])


def speech(d):
    out = []
    for field, label in (("rtf", "real-time factor"), ("first_chunk_ms", "first chunk ms")):
        for t in d["neural"]:
            x = t[field]
            out.append((f"neural voice, {label}, {t['text']}", x["maximin"], "piper-tts", x["piper-tts"],
                        LOWER))
    mem = d.get("memory")
    if mem:
        out.append(("memory MiB: maximin server resident right after the rounds (both engines loaded)",
                    mem["maximin_resident_mib"], "piper-tts process, peak", mem["piper_tts_peak_mib"], LOWER))
        if mem.get("maximin_idle_mib"):
            out.append((f"memory MiB: maximin server resident once idle ({mem.get('idle_after_s', 2):g} s after the rounds)",
                        mem["maximin_idle_mib"], "piper-tts process, peak", mem["piper_tts_peak_mib"], LOWER))
        out.append(("memory MiB: maximin server peak", mem["maximin_peak_mib"], "piper-tts process, peak",
                    mem["piper_tts_peak_mib"], LOWER))
    return out, [f"speech: median of {d.get('rounds')} alternating round(s); maximin over HTTP, "
                 f"{d.get('peer', 'piper-tts')} in process"]


def media(d):
    out = [(r["figure"], r["maximin"], r.get("peer_name") or "– (maximin only)", r.get("peer"), LOWER)
           for r in d["rows"]]
    if not out:
        raise KeyError("no rows")
    return out, [f"media: sd.cpp {d.get('sd_cpp', '?')} on SD-Turbo-shaped random weights; "
                 f"{d.get('threads')} threads on every side"]


def fine_tune(d):
    by = {(r["side"], r["rank"]): r for r in d["runs"]}
    ranks = sorted({r["rank"] for r in d["runs"]})
    out = []
    for rank in ranks:
        m, p = by.get(("maximin", rank)), by.get(("peft", rank))
        peer = "PEFT on PyTorch" if p else "– (PEFT not run)"
        out.append((f"LoRA training tokens/s, rank {rank}", m and m["tokens_per_s"], peer,
                    p and p["tokens_per_s"], HIGHER))
        out.append((f"peak RSS MB, rank {rank}", m and m["peak_rss_mb"], peer, p and p["peak_rss_mb"], LOWER))
    return out, [f"fine_tune: {d.get('model')}, {d.get('examples')} examples, {d.get('epochs')} epoch(s), "
                 f"batch {d.get('batch_size')}, {d.get('threads')} threads"]


def cold_start(d):
    out, worst = [], []
    for key, label in (("first_start_ms", "first start (empty data dir)"), ("restart_ms", "restart")):
        x = d[key]
        out.append((f"{label} to /readyz 200, median ms", x["median"], "target",
                    COLD_START_TARGET_MS, LOWER))
        worst.append(f"{label} {num(x['worst'])} ms")
    return out, ["cold_start: worst " + ", ".join(worst) + " (ratio > 1: under the target)"]


FIGURES = {"request_path": request_path, "gateway": gateway, "cluster": cluster, "chat": chat,
           "embeddings": embeddings, "speech": speech, "media": media, "fine_tune": fine_tune,
           "cold_start": cold_start}


# ---------------------------------------------------------------- the table

def statuses(run):
    """{name: (state, detail, seconds)} from status.tsv (the last line of a name wins)."""
    out = {}
    path = run / "status.tsv"
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0]:
                parts += [""] * (4 - len(parts))
                out[parts[0]] = (parts[1], parts[2], parts[3])
    return out


def report(run):
    meta = {}
    if (run / "meta.json").exists():
        meta = json.loads((run / "meta.json").read_text())
    mach = meta.get("machine") or machine()
    mem = mach.get("memory_gib")
    args = meta.get("args")
    head = (f"Measured {meta.get('date', 'on an unknown date')} on {mach.get('cores')} cores "
            f"({mach.get('cpu')}), {f'{mem:.1f} GiB' if mem else 'unknown'} memory; "
            f"maximin {meta.get('commit', 'unknown')}; `bench/all.sh{' ' + args if args else ''}`.")
    if args and "--quick" in args.split():
        head += " Quick run (short durations, one round): figures are indicative only."
    lines = [head, "", "| benchmark | figure | maximin | peer | peer figure | ratio |",
             "|---|---|---:|---|---:|---:|"]
    notes = []
    status = statuses(run)
    for name in BENCHES:
        log = run / f"{name}.log"
        where = f"see {shown(log)}" if log.exists() else "no log"
        state, detail, _ = status.get(name, ("", "", ""))
        path = run / f"{name}.json"
        if not state:
            state = "ok" if path.exists() else "not run"
        if state != "ok":
            what = {"skipped": "skipped", "failed": "failed"}.get(state, state)
            why = f" ({detail})" if detail else ""
            tail = f"; {where}" if state != "skipped" or log.exists() else ""
            lines.append(f"| {name} | – | {cell(what + why + tail)} | – | – | – |")
            continue
        try:
            rows, more = FIGURES[name](json.loads(path.read_text()))
        except FileNotFoundError:
            lines.append(f"| {name} | – | {cell(f'failed (no figures: {shown(path)} missing); {where}')}"
                         " | – | – | – |")
            continue
        except (ValueError, KeyError, TypeError, StopIteration, AttributeError) as e:
            err = f"{type(e).__name__}: {e}"
            lines.append(f"| {name} | – | {cell(f'failed (figures unreadable in {shown(path)}: {err}); {where}')}"
                         " | – | – | – |")
            continue
        for figure, m, peer, p, higher in rows:
            lines.append(f"| {name} | {cell(figure)} | {num(m)} | {cell(peer)} | {num(p)} | "
                         f"{ratio(m, p, higher)} |")
        notes += more
    lines += ["", "ratio: how many times better maximin is than the peer, so > 1 means maximin is "
              "better (maximin / peer for rates, peer / maximin for times and memory; for cold "
              "start, the 200 ms target over maximin's time)."]
    if notes:
        lines += [""] + [f"- {cell(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, metavar="RUN_DIR")
    ap.add_argument("--init", action="store_true", help="write RUN_DIR/meta.json (before a run)")
    ap.add_argument("--args", default="", help="with --init: the arguments all.sh was given")
    ap.add_argument("--out", type=Path, metavar="FILE", help="write the markdown to FILE")
    ap.add_argument("--quiet", action="store_true", help="do not print the markdown")
    a = ap.parse_args()
    if a.init:
        init(a.run, a.args)
        return
    if not a.run.is_dir():
        sys.exit(f"{a.run}: no such run directory")
    text = report(a.run)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    if not a.quiet:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
