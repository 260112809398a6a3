#!/usr/bin/env python3
"""Piper's own Python runtime (piper-tts from PyPI) on a voice file, as a
helper of bench/speech.py: loads the voice, warms up, then for every line
read on stdin runs one round over the texts and prints one JSON line with
each text's time to the first audio chunk (ms) and real-time factor
(synthesis time / audio time); at the end of stdin, its peak memory. Rounds alternate with maximin's, so a VM
whose speed drifts slows both sides alike.

    speech_peer.py VOICE.onnx TEXT...
"""
import json
import resource
import sys
import time

from piper import PiperVoice

voice_path, texts = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
voice = PiperVoice.load(voice_path)
load_ms = (time.perf_counter() - t0) * 1e3
list(voice.synthesize("Warm up."))
print(json.dumps({"load_ms": load_ms}), flush=True)
for _ in sys.stdin:
    list(voice.synthesize("Warm up."))  # as maximin's round does
    out = []
    for text in texts:
        start = time.perf_counter()
        first, samples, rate = None, 0, 22050
        for chunk in voice.synthesize(text):
            if first is None:
                first = time.perf_counter() - start
            samples += len(chunk.audio_int16_array)
            rate = chunk.sample_rate
        total = time.perf_counter() - start
        out.append({"first_chunk_ms": first * 1e3, "rtf": total / (samples / rate)})
    print(json.dumps(out), flush=True)
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
