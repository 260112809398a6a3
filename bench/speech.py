#!/usr/bin/env python3
"""Speech benchmark in one run on this machine: real-time factor (synthesis
time / audio time, lower is better) and time to the first audio chunk, for
maximin's neural voice (Piper VITS on ONNX Runtime, `speech-2.8-hd`) and its
espeak-ng path (`speech-2.8-turbo`), over HTTP (the first chunk of a request
with `stream: true`; the real-time factor of whole requests), against
Piper's own Python runtime (`piper-tts` from PyPI) on the same voice file in
the same run. Both sides get the same thread count.

    bench/speech.py [--threads N] [--models DATA_DIR] [--rounds R] [--json PATH]
        [--no-build]

DATA_DIR must hold the default voice (`scripts/provision-models DATA_DIR`);
piper-tts is installed on first use into $MAXIMIN_BENCH_VENVS/piper. Never part
of CI. --json PATH also writes the summary's figures as JSON (bench/all.sh
reads them); --no-build uses the release binary as it is.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_models import ROOT, common_args, log, serving, target_dir, venv  # noqa: E402

PIPER_TTS = "piper-tts==1.8.0"
# Seconds between one side's round and the other's: ONNX Runtime's threads
# keep spinning for a while after a run (piper-tts's do), which would slow
# whichever side runs next. Each side then warms up with one short text right
# before its round, so neither starts from idle cores.
QUIET = 0.3
# Seconds after the last request at which the server's memory is read again
# as an idle server's (maximin's Piper engine shrinks after 1 s idle).
IDLE = 2.0
VOICE = "models/speech-2.8-hd/en_US-joe-medium.onnx"
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    " ".join([
        "The first sentence is short.",
        "The second one follows it closely.",
        "A third sentence adds a little more to say.",
        "The fourth keeps the engine busy for a while longer.",
        "The fifth sentence is here as well.",
        "And the sixth one closes the paragraph at last.",
    ]),
]


def stream_t2a(base, key, model, text, stream=True):
    """(first audio chunk s, total s, audio s) of one request: streamed (the
    first chunk is the first sentence's audio; the final frame leaves out the
    aggregated audio, which the chunks already carried), or whole (one
    response: its time is the synthesis time as a client sees it)."""
    body = json.dumps({
        "model": model, "text": text, "stream": stream,
        "stream_options": {"exclude_aggregated_audio": True},
        "voice_setting": {"voice_id": "English_expressive_narrator"},
        "audio_setting": {"format": "pcm", "sample_rate": 22050},
    }).encode()
    req = urllib.request.Request(base + "/v1/t2a_v2", data=body, method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    start = time.perf_counter()
    first, audio_ms = None, None
    with urllib.request.urlopen(req, timeout=300) as resp:
        if not stream:
            frame = json.loads(resp.read())
            if frame["base_resp"]["status_code"] != 0:
                raise RuntimeError(f"{model}: {frame['base_resp']}")
            total = time.perf_counter() - start
            return total, total, frame["extra_info"]["audio_length"] / 1000.0
        # Events as they arrive (read1 returns what the socket has), each
        # parsed when its blank line is in: iterating the response by lines
        # costs Python tens of ms on long lines, which is not the server's.
        buf = b""
        while True:
            chunk = resp.read1(1 << 16)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                line = event.decode().strip()
                if not line.startswith("data:"):
                    continue
                frame = json.loads(line[5:])
                if frame.get("base_resp", {}).get("status_code", 0) != 0:
                    raise RuntimeError(f"{model}: {frame['base_resp']}")
                data = frame.get("data") or {}
                if data.get("status") == 1 and data.get("audio") and first is None:
                    first = time.perf_counter() - start
                if data.get("status") == 2:
                    audio_ms = frame["extra_info"]["audio_length"]
    total = time.perf_counter() - start
    return first, total, audio_ms / 1000.0


def maximin_round(base, key, model):
    """One round over the texts: (first chunk ms of a streamed request,
    real-time factor of a whole one) per text."""
    stream_t2a(base, key, model, "Warm up.", stream=False)  # as the peer does
    out = []
    for text in TEXTS:
        first, _, _ = stream_t2a(base, key, model, text)
        _, total, audio = stream_t2a(base, key, model, text, stream=False)
        out.append({"first_chunk_ms": first * 1e3, "rtf": total / audio})
    return out


def server_memory(base):
    """(resident MiB now, peak MiB) of the `maximin serve` listening at base."""
    listen = base.removeprefix("http://")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"serve" in cmd and listen.encode() in cmd:
                status = Path(f"/proc/{pid}/status").read_text()
                kb = {l.split(":")[0]: int(l.split()[1]) for l in status.splitlines()
                      if l.startswith(("VmRSS", "VmHWM"))}
                return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024
        except OSError:
            continue
    return None


def median_of(rounds, i, field):
    return statistics.median(r[i][field] for r in rounds)


def main():
    ap = argparse.ArgumentParser()
    common_args(ap)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, metavar="PATH",
                    help="also write the summary figures to PATH as JSON")
    ap.add_argument("--no-build", action="store_true", help="use the release binary as it is")
    a = ap.parse_args()
    voice = a.models / VOICE
    if not voice.exists():
        sys.exit(f"{voice} is missing: run scripts/provision-models {a.models}")
    if not a.no_build:
        log("building maximin (release)")
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "maximin"], cwd=ROOT, check=True)
    binary = target_dir() / "release" / "maximin"
    print(f"machine: {os.cpu_count()} cores; {a.threads} threads on every side", flush=True)

    py = venv("piper", PIPER_TTS, "piper")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    peer = subprocess.Popen([str(py), str(ROOT / "bench" / "speech_peer.py"), str(voice)] + TEXTS,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    json.loads(peer.stdout.readline())  # loaded and warm
    mm, pp, espeak = [], [], []
    with serving(binary, a.models, a.threads) as (base, key):
        for model in ("speech-2.8-hd", "speech-2.8-turbo"):
            stream_t2a(base, key, model, "Warm up.")
        # Rounds alternate between the two sides: a drift in the machine's
        # speed reaches both alike.
        for _ in range(a.rounds):
            mm.append(maximin_round(base, key, "speech-2.8-hd"))
            time.sleep(QUIET)
            peer.stdin.write("round\n")
            peer.stdin.flush()
            pp.append(json.loads(peer.stdout.readline()))
            time.sleep(QUIET)
        for _ in range(a.rounds):
            espeak.append(maximin_round(base, key, "speech-2.8-turbo"))
        memory = server_memory(base)
        # What an idle server holds: the neural engine hands its arena's
        # free memory back once speech has been idle for a second.
        time.sleep(IDLE)
        idle = server_memory(base)
    peer.stdin.close()
    peer_peak = json.loads(peer.stdout.readline())["peak_mib"]
    peer.wait()

    names = ["one sentence (44 chars)", "paragraph (6 sentences)"]
    summary = {"bench": "speech", "rounds": a.rounds, "threads": a.threads, "cores": os.cpu_count(),
               "peer": PIPER_TTS, "neural": [], "espeak": [], "memory": None}
    print(f"\n{'speech (median of ' + str(a.rounds) + ' alternating rounds)':<48} {'maximin':>9} "
          f"{'piper-tts':>10} {'ratio':>7}  per-round ratios")
    for i, name in enumerate(names):
        neural = {"text": name}
        summary["neural"].append(neural)
        for field, label, fmt in (("first_chunk_ms", "first chunk ms", ".0f"), ("rtf", "real-time factor", ".3f")):
            m, p = median_of(mm, i, field), median_of(pp, i, field)
            per = [pr[i][field] / mr[i][field] for mr, pr in zip(mm, pp)]
            neural[field] = {"maximin": m, "piper-tts": p, "per_round_ratios": per}
            print(f"{'neural voice, ' + label + ', ' + name:<48} {m:>9{fmt}} {p:>10{fmt}} "
                  f"{p / m:>6.2f}x  {' '.join(f'{x:.2f}' for x in per)}")
    for i, name in enumerate(names):
        summary["espeak"].append({"text": name, "first_chunk_ms": median_of(espeak, i, "first_chunk_ms"),
                                  "rtf": median_of(espeak, i, "rtf")})
        print(f"{'espeak-ng, first chunk ms, ' + name:<48} {median_of(espeak, i, 'first_chunk_ms'):>9.0f}")
        print(f"{'espeak-ng, real-time factor, ' + name:<48} {median_of(espeak, i, 'rtf'):>9.4f}")
    if memory:
        summary["memory"] = {"maximin_resident_mib": memory[0], "maximin_peak_mib": memory[1],
                             "maximin_idle_mib": idle[0] if idle else None, "idle_after_s": IDLE,
                             "piper_tts_peak_mib": peer_peak}
        idle_text = f", {idle[0]:.0f} MiB once idle ({IDLE:.0f} s later)" if idle else ""
        print(f"memory: maximin server {memory[0]:.0f} MiB resident right after the rounds{idle_text}, "
              f"{memory[1]:.0f} MiB peak (both engines loaded); piper-tts process {peer_peak:.0f} MiB peak")
    print("(maximin over HTTP, pcm 22,050 Hz; piper-tts in process, "
          f"{PIPER_TTS}; ratio > 1: maximin faster)")
    if a.json:
        a.json.write_text(json.dumps(summary, indent=2) + "\n")
        log(f"wrote {a.json}")


if __name__ == "__main__":
    main()
