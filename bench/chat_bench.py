#!/usr/bin/env python3
"""Chat throughput of an HTTP server speaking /v1/chat/completions with SSE.

Works against maximin (seed 002 envelope) and OpenAI-compatible peers such as
llama-cpp-python's server, so both are measured the same way, from a second
process on loopback. Standard library only.

    bench/chat_bench.py --base http://127.0.0.1:8080 --key mmx_live_… --model minimax-chat-v2
    bench/chat_bench.py --base http://127.0.0.1:8000 --model gemma  (a peer)

Prints: prompt tokens/s (a ~512-token prompt, max_tokens 1), single-stream
generation tokens/s and time to first token, and aggregate generation tokens/s
with 1, 4 and 16 concurrent streams.
"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse

PROMPT = "Once upon a time, in a small village by the sea, there lived an old lighthouse keeper who"


def stream(base, key, model, content, max_tokens, seed=1):
    """One streamed completion: (ttft_s, total_s, completion_tokens, prompt_tokens)."""
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    body = json.dumps({
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0.8,
        "seed": seed,
        "stream": True,
        "stream_options": {"include_usage": True},
    })
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    t0 = time.perf_counter()
    conn.request("POST", url.path.rstrip("/") + "/v1/chat/completions", body, headers)
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    ttft = None
    deltas = 0
    usage = None
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        chunk = chunk.get("data", chunk)
        choices = chunk.get("choices") or []
        if choices and choices[0].get("delta", {}).get("content"):
            deltas += 1
            if ttft is None:
                ttft = time.perf_counter() - t0
        if chunk.get("usage"):
            usage = chunk["usage"]
    total = time.perf_counter() - t0
    conn.close()
    completion = (usage or {}).get("completion_tokens", deltas)
    prompt = (usage or {}).get("prompt_tokens", 0)
    return ttft or total, total, completion, prompt


def prompt_tokens_of(base, key, model, content):
    """Prompt token count from a non-streamed reply's usage (for servers whose
    streams carry no usage)."""
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": content}],
                       "max_tokens": 1})
    conn.request("POST", url.path.rstrip("/") + "/v1/chat/completions", body, headers)
    reply = json.loads(conn.getresponse().read())
    conn.close()
    reply = reply.get("data", reply)
    return (reply.get("usage") or {}).get("prompt_tokens", 0)


def measure(base, key, model, tokens=128, streams=(1, 4, 16), label="server", out=print):
    """Runs every measurement against one server and returns the figures."""
    stream(base, key, model, PROMPT, 8)  # warm-up: load the model

    long_prompt = " ".join([PROMPT] * 24)  # about 500 tokens
    # Every request opens differently, so that no server answers from a
    # prompt prefix it kept from the previous request (llama-cpp-python does).
    runs = [stream(base, key, model, f"Story {i}. {long_prompt}", 1, seed=i) for i in range(3)]
    ttft = statistics.median(r[0] for r in runs)
    prompt_tokens = runs[0][3] or prompt_tokens_of(base, key, model, f"Story 9. {long_prompt}")
    fig = {"label": label, "prompt_tokens": prompt_tokens, "long_prompt_ttft_ms": ttft * 1e3}
    if prompt_tokens:
        fig["prompt_tps"] = prompt_tokens / ttft
        out(f"{label}: prompt {prompt_tokens} tokens, time to first token {ttft*1000:.0f} ms"
            f" -> prompt {prompt_tokens/ttft:.0f} tokens/s")
    else:
        out(f"{label}: time to first token on a long prompt {ttft*1000:.0f} ms")

    single = [stream(base, key, model, f"Tale {i}. {PROMPT}", tokens, seed=i) for i in range(3)]
    gen = statistics.median((r[2] - 1) / (r[1] - r[0]) for r in single if r[2] > 1)
    ttft_short = statistics.median(r[0] for r in single)
    fig["generation_tps"] = gen
    fig["ttft_ms"] = ttft_short * 1e3
    out(f"{label}: one stream: generation {gen:.1f} tokens/s, time to first token {ttft_short*1000:.0f} ms")

    fig["aggregate"] = {}
    for n in streams:
        results = [None] * n

        def worker(i):
            results[i] = stream(base, key, model, f"Fable {n}.{i}. {PROMPT}", tokens, seed=100 + i)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        if any(r is None for r in results):
            raise RuntimeError(f"{label}: a stream failed with {n} concurrent streams")
        total = sum(r[2] for r in results)
        ttfts = sorted(r[0] for r in results)
        fig["aggregate"][n] = {
            "tps": total / wall,
            "ttft_p50_ms": ttfts[len(ttfts) // 2] * 1e3,
            "ttft_max_ms": ttfts[-1] * 1e3,
        }
        out(f"{label}: {n:>2} streams: aggregate {total/wall:.1f} tokens/s "
            f"({total} tokens in {wall:.1f} s), time to first token p50 {ttfts[len(ttfts)//2]*1000:.0f} ms "
            f"max {ttfts[-1]*1000:.0f} ms")
    return fig


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--key", default="")
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--label", default="server")
    ap.add_argument("--streams", default="1,4,16")
    a = ap.parse_args()
    measure(a.base, a.key, a.model, a.tokens,
            [int(x) for x in a.streams.split(",")], a.label)


if __name__ == "__main__":
    main()
