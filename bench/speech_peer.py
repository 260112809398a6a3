#!/usr/bin/env python3
"""Piper's own Python runtime (piper-tts from PyPI) on a voice file: prints,
as one JSON line, the median time to the first audio chunk and the real-time
factor (synthesis time / audio time) for each text of bench/speech.py.

    speech_peer.py VOICE.onnx ROUNDS TEXT...
"""
import json
import statistics
import sys
import time

from piper import PiperVoice

voice_path, rounds, texts = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
t0 = time.perf_counter()
voice = PiperVoice.load(voice_path)
load_ms = (time.perf_counter() - t0) * 1e3
list(voice.synthesize("Warm up."))
out = {"load_ms": load_ms, "texts": []}
for text in texts:
    firsts, rtfs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        first, samples, rate = None, 0, 22050
        for chunk in voice.synthesize(text):
            if first is None:
                first = time.perf_counter() - start
            samples += len(chunk.audio_int16_array)
            rate = chunk.sample_rate
        total = time.perf_counter() - start
        firsts.append(first * 1e3)
        rtfs.append(total / (samples / rate))
    out["texts"].append({"first_chunk_ms": statistics.median(firsts), "rtf": statistics.median(rtfs)})
print(json.dumps(out))
