#!/usr/bin/env python3
"""Speech benchmark in one run on this machine: real-time factor (synthesis
time / audio time, lower is better) and time to the first audio chunk, for
maximin's neural voice (Piper VITS on ONNX Runtime, `speech-2.8-hd`) and its
espeak-ng path (`speech-2.8-turbo`), over HTTP (the first chunk of a request
with `stream: true`; the real-time factor of whole requests), against
Piper's own Python runtime (`piper-tts` from PyPI) on the same voice file in
the same run. Both sides get the same thread count.

    bench/speech.py [--threads N] [--models DATA_DIR] [--rounds R]

DATA_DIR must hold the default voice (`scripts/provision-models DATA_DIR`);
piper-tts is installed on first use into $MAXIMIN_BENCH_VENVS/piper. Never part
of CI.
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
from local_models import ROOT, log, serving, target_dir, venv  # noqa: E402

PIPER_TTS = "piper-tts==1.8.0"
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
        for line in resp:
            line = line.decode().strip()
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


def bench_maximin(binary, models, threads, rounds):
    with serving(binary, models, threads) as (base, key):
        results = {}
        for model in ("speech-2.8-hd", "speech-2.8-turbo"):
            stream_t2a(base, key, model, "Warm up.")
            per_text = []
            for text in TEXTS:
                streamed = [stream_t2a(base, key, model, text) for _ in range(rounds)]
                whole = [stream_t2a(base, key, model, text, stream=False) for _ in range(rounds)]
                per_text.append({
                    "first_chunk_ms": statistics.median(r[0] for r in streamed) * 1e3,
                    "rtf": statistics.median(r[1] / r[2] for r in whole),
                })
            results[model] = per_text
        return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--models", type=Path, default=Path(os.environ.get(
        "MAXIMIN_TEST_MODELS", Path.home() / ".cache" / "maximin-models")))
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    voice = a.models / VOICE
    if not voice.exists():
        sys.exit(f"{voice} is missing: run scripts/provision-models {a.models}")
    log("building maximin (release)")
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "maximin"], cwd=ROOT, check=True)
    binary = target_dir() / "release" / "maximin"
    print(f"machine: {os.cpu_count()} cores; {a.threads} threads on every side", flush=True)

    mm = bench_maximin(binary, a.models, a.threads, a.rounds)
    py = venv("piper", PIPER_TTS, "piper")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    peer = json.loads(subprocess.run([str(py), str(ROOT / "bench" / "speech_peer.py"), str(voice),
                                      str(a.rounds)] + TEXTS,
                                     check=True, capture_output=True, text=True, env=env).stdout)

    names = ["one sentence (44 chars)", "paragraph (6 sentences)"]
    print(f"\n{'speech (median of ' + str(a.rounds) + ')':<44} {'maximin':>10} {'piper-tts':>10} {'ratio':>7}")
    for i, name in enumerate(names):
        m, p = mm["speech-2.8-hd"][i], peer["texts"][i]
        print(f"{'neural voice, first chunk ms, ' + name:<44} {m['first_chunk_ms']:>10.0f} "
              f"{p['first_chunk_ms']:>10.0f} {p['first_chunk_ms'] / m['first_chunk_ms']:>6.2f}x")
        print(f"{'neural voice, real-time factor, ' + name:<44} {m['rtf']:>10.3f} "
              f"{p['rtf']:>10.3f} {p['rtf'] / m['rtf']:>6.2f}x")
    for i, name in enumerate(names):
        m = mm["speech-2.8-turbo"][i]
        print(f"{'espeak-ng, first chunk ms, ' + name:<44} {m['first_chunk_ms']:>10.0f}")
        print(f"{'espeak-ng, real-time factor, ' + name:<44} {m['rtf']:>10.4f}")
    print("(maximin over HTTP, pcm 22,050 Hz; piper-tts in process, "
          f"{PIPER_TTS}; ratio > 1: maximin faster)")


if __name__ == "__main__":
    main()
