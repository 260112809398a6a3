"""The PEFT (PyTorch, CPU) counterpart of maximin's LoRA fine-tuning, for
bench/fine_tune.py: the same GGUF (dequantised to float32 by transformers),
the same chat jsonl, the same LoRA targets, rank, alpha (2 × rank),
learning rate, schedule and batch, on the same number of threads.

    python bench/fine_tune_peft.py --gguf MODEL.gguf --data train.jsonl \\
        [--rank 8] [--epochs 1] [--batch-size 4] [--threads N] [--seed 1]

Run it in the venv bench/fine_tune.py makes (torch, transformers, peft, gguf
from PyPI); it reaches no network (HF_HUB_OFFLINE). Prints per-step lines on
stderr and one JSON object on the last line of stdout: the steps (tokens run
forward and backward, seconds, loss, learning rate), the data's token count,
the model's load time and the peak RSS.

What it does, step by step as maximin's trainer (crates/maximin-finetune):
- Each example is rendered with the tokenizer's chat template (the GGUF has
  none, so Gemma's own template is set on the tokenizer, the one llama.cpp
  applies for gemma) and the loss is on the assistant's tokens only: an
  assistant turn is what rendering up to it adds to the prompt with the
  generation prompt (its `<end_of_turn>` and newline included).
- A step is a batch of examples run one at a time (no padding), gradients
  accumulated, the loss the mean over the batch's learned tokens; logits are
  computed only at the learned positions (as maximin does); gradient norm
  clipped at 1; AdamW (0.9, 0.999, eps 1e-8, weight decay 0.01); linear
  warm-up over the first 10 % of steps, then cosine decay to a tenth.
- The data order is a seeded shuffle per epoch (Python's, not maximin's:
  the batches differ, so step losses are comparable only on average).
"""

import argparse
import json
import math
import os
import random
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# Gemma's chat template (as Gemma 3's tokenizer_config.json has it, string
# contents only): a system message goes at the head of the first user turn.
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
BASE_LEARNING_RATE = 2e-3


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def tokenize(tok, messages):
    """(tokens, learn): learn[i] says token i is the assistant's."""
    def ids(msgs, gen):
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
        return tok(text, add_special_tokens=False)["input_ids"]

    tokens = ids(messages, False)
    learn = [False] * len(tokens)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before, with_turn = ids(messages[:i], True), ids(messages[:i + 1], False)
        if with_turn[:len(before)] != before or tokens[:len(with_turn)] != with_turn:
            raise SystemExit("the chat template does not keep turns apart")
        for j in range(len(before), len(with_turn)):
            learn[j] = True
    return tokens, learn


def learning_rate(base, step, total):
    """maximin's schedule (Trainer::learning_rate), `step` 0-based."""
    warm = max(total // 10, 1)
    if step < warm:
        return base * (step + 1) / warm
    progress = min((step - warm) / max(total - warm, 1), 1.0)
    floor = base * 0.1
    return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", type=float, default=BASE_LEARNING_RATE)
    a = ap.parse_args()

    import torch
    import transformers
    import peft
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    folder, name = os.path.split(os.path.abspath(a.gguf))

    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not tok.chat_template:
        tok.chat_template = GEMMA_TEMPLATE
    with open(a.data) as f:
        examples = [tokenize(tok, json.loads(line)["messages"]) for line in f if line.strip()]
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.config.use_cache = False
    model = peft.get_peft_model(model, peft.LoraConfig(
        r=a.rank, lora_alpha=2 * a.rank, target_modules=TARGETS, lora_dropout=0.0,
        bias="none", task_type="CAUSAL_LM"))
    model.train()
    causal = model.get_base_model()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    load_s = time.perf_counter() - started
    log(f"peft: loaded in {load_s:.1f} s; {len(examples)} examples, "
        f"{sum(len(t) for t, _ in examples)} tokens; "
        f"{sum(p.numel() for p in trainable)} trainable parameters; {a.threads} threads")

    def loss_sum(tokens, learn):
        """Summed cross-entropy over the learned tokens, and their count."""
        pos = [i - 1 for i in range(1, len(tokens)) if learn[i]]
        ids = torch.tensor([tokens])
        hidden = causal.model(input_ids=ids, use_cache=False).last_hidden_state[0]
        logits = causal.lm_head(hidden[pos])
        target = torch.tensor([tokens[i + 1] for i in pos])
        return torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum"), len(pos)

    spe = math.ceil(len(examples) / a.batch_size)
    total = spe * a.epochs
    steps = []
    for epoch in range(a.epochs):
        order = list(range(len(examples)))
        random.Random(a.seed * 1000 + epoch).shuffle(order)
        for i in range(spe):
            batch = [examples[j] for j in order[i * a.batch_size:(i + 1) * a.batch_size]]
            lr = learning_rate(a.lr, len(steps), total)
            t0 = time.perf_counter()
            learned = sum(sum(learn[1:]) for _, learn in batch)
            opt.zero_grad(set_to_none=True)
            total_loss = 0.0
            for tokens, learn in batch:
                s, _ = loss_sum(tokens, learn)
                (s / learned).backward()
                total_loss += s.item()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
            seconds = time.perf_counter() - t0
            n = sum(len(t) for t, _ in batch)
            steps.append({"step": len(steps) + 1, "epoch": epoch + 1, "loss": total_loss / learned,
                          "learning_rate": lr, "tokens": n, "seconds": seconds})
            log(f"peft r{a.rank}: step {len(steps)}/{total} loss {total_loss / learned:.4f} "
                f"{n} tokens in {seconds:.2f} s ({n / seconds:.1f} tokens/s)")

    print(json.dumps({
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "threads": torch.get_num_threads(),
        "examples": len(examples),
        "tokens": sum(len(t) for t, _ in examples),
        "learned": sum(sum(learn[1:]) for _, learn in examples),
        "load_s": load_s,
        "steps": steps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
