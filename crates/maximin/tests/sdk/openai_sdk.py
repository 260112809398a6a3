"""Drives maximin's /openai/v1 surface with the official `openai` package.

    python openai_sdk.py CASE   (MAXIMIN_BASE, MAXIMIN_KEY, MAXIMIN_CHAT, MAXIMIN_EMBED)

Prints one JSON object with what the SDK returned; the Rust test
(tests/api/sdk.rs) asserts on it. SDK exceptions are reported by class name.
"""
import json
import os
import sys
import threading
import time

import openai

BASE = os.environ["MAXIMIN_BASE"] + "/openai/v1"
KEY = os.environ["MAXIMIN_KEY"]
CHAT = os.environ.get("MAXIMIN_CHAT", "gemma-3-270m")
EMBED = os.environ.get("MAXIMIN_EMBED", "all-minilm-l6-v2")


def client(**kw):
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=BASE, api_key=KEY, **kw)


def spent(*responses):
    """The (prompt, completion) tokens the responses reported."""
    return [sum(r["prompt_tokens"] for r in responses), sum(r["completion_tokens"] for r in responses)]


def chat():
    c = client()
    msgs = [{"role": "developer", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Name three colours."}]}]
    r = c.chat.completions.create(model=CHAT, messages=msgs, max_completion_tokens=24, seed=7, temperature=0)
    out = {
        "text": r.choices[0].message.content,
        "finish_reason": r.choices[0].finish_reason,
        "usage": r.usage.model_dump(),
        "model": r.model,
        "object": r.object,
    }
    parts, usage, n_chunks = [], None, 0
    stream = c.chat.completions.create(model=CHAT, messages=msgs, max_tokens=24, seed=7, temperature=0,
                                       stream=True, stream_options={"include_usage": True})
    for ch in stream:
        n_chunks += 1
        if ch.choices:
            parts.append(ch.choices[0].delta.content or "")
        if ch.usage:
            usage = ch.usage.model_dump()
    out.update(stream_text="".join(parts), stream_usage=usage, chunks=n_chunks,
               spent=spent(out["usage"], usage))
    try:
        c.chat.completions.create(model=CHAT, messages=msgs, n=2)
    except openai.BadRequestError as e:
        out["n2"] = {"status": e.status_code, "param": e.body.get("param") if isinstance(e.body, dict) else None}
    return out


def tools():
    c = client()
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    # Greedy: sampled, the 270M model sometimes wandered into a city name
    # longer than the 64 tokens and the call came back cut short, as text.
    r = c.chat.completions.create(model=CHAT, messages=msgs, tools=tools, tool_choice="required", max_tokens=64,
                                  temperature=0, seed=7)
    call = r.choices[0].message.tool_calls[0]
    args = json.loads(call.function.arguments)
    msgs.append(r.choices[0].message.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21, "sky": "clear"})})
    # The answer in words: tool_choice "none" after the result.
    r2 = c.chat.completions.create(model=CHAT, messages=msgs, tools=tools, tool_choice="none", max_tokens=32,
                                   temperature=0, seed=7)
    return {"finish_reason": r.choices[0].finish_reason, "name": call.function.name, "args": args,
            "call_id": call.id, "answer": r2.choices[0].message.content,
            "answer_finish": r2.choices[0].finish_reason,
            "spent": spent(r.usage.model_dump(), r2.usage.model_dump())}


def json_mode():
    c = client()
    r = c.chat.completions.create(
        model=CHAT, max_tokens=300, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": 'Return this JSON object exactly: {"animal": "cat", "legs": 4}'}])
    text = r.choices[0].message.content
    try:
        obj = json.loads(text)
    except ValueError:
        obj = {"unparsed": text, "finish_reason": r.choices[0].finish_reason}
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
                                               "age": {"type": "integer", "minimum": 0, "maximum": 120}},
              "required": ["name", "age"], "additionalProperties": False}
    r2 = c.chat.completions.create(
        model=CHAT, max_tokens=96,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
        messages=[{"role": "user", "content": "Invent a person."}])
    obj2 = json.loads(r2.choices[0].message.content)
    return {"object": obj, "object_finish": r.choices[0].finish_reason, "person": obj2,
            "spent": spent(r.usage.model_dump(), r2.usage.model_dump())}


def embeddings():
    c = client()
    texts = ["A cat sat on the mat.", "A kitten rested on the rug.", "Stock markets fell sharply."]
    floats = c.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    b64 = c.embeddings.create(model=EMBED, input=texts)  # the SDK asks for base64 and decodes it
    one = c.embeddings.create(model=EMBED, input="A single string.")
    out = {"floats": [d.embedding for d in floats.data], "base64": [d.embedding for d in b64.data],
           "one": len(one.data), "usage": floats.usage.model_dump(), "model": floats.model,
           "spent": [floats.usage.prompt_tokens + b64.usage.prompt_tokens + one.usage.prompt_tokens, 0]}
    try:
        c.embeddings.create(model=EMBED, input=texts, dimensions=64)
    except openai.BadRequestError as e:
        out["dimensions_error"] = {"status": e.status_code, "message": str(e)}
    return out


def models():
    return {"ids": [m.id for m in client().models.list()]}


def auth():
    c = openai.OpenAI(base_url=BASE, api_key="mmx_live_not_a_real_key", max_retries=0)
    try:
        c.models.list()
    except openai.AuthenticationError as e:
        return {"error": type(e).__name__, "status": e.status_code, "request_id": e.response.headers.get("x-request-id")}
    return {"error": None}


def hold_engine():
    """Fills the only slot and the queue with long answers (a grammar keeps
    the model writing); returns the stream to close when done."""
    holder = client()
    fields = {f"field_{i}": {"type": "string", "minLength": 24} for i in range(12)}
    long_answer = {"type": "json_schema", "json_schema": {"name": "form", "schema": {
        "type": "object", "properties": fields, "required": list(fields)}}}
    msgs = [{"role": "user", "content": "Tell a long story."}]
    s1 = holder.chat.completions.create(model=CHAT, messages=msgs, max_tokens=800, stream=True,
                                        response_format=long_answer)
    next(iter(s1))  # the slot is taken

    def queued():
        try:
            holder.chat.completions.create(model=CHAT, messages=msgs, max_tokens=800, response_format=long_answer,
                                           timeout=120)
        except Exception:
            pass
    threading.Thread(target=queued, daemon=True).start()
    time.sleep(1.0)  # the queue is full
    return s1


def rate_limit():
    """A request finds the engine full: 429 with Retry-After, and the SDK
    retries as told before raising."""
    held = hold_engine()
    c = client(max_retries=2)
    start = time.monotonic()
    try:
        c.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
        out = {"error": None}
    except openai.RateLimitError as e:
        out = {"error": type(e).__name__, "status": e.status_code,
               "retry_after": e.response.headers.get("retry-after"),
               "elapsed": time.monotonic() - start}
    held.close()
    return out


def speech():
    c = client()
    r = c.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the speech endpoint.",
                              response_format="mp3")
    path = os.environ["MAXIMIN_OUT"]
    with open(path, "wb") as f:
        f.write(r.content)
    return {"bytes": len(r.content)}


def gateway():
    """Chat and a tool call, whole and streamed, through a gateway model
    (MAXIMIN_CHAT) whose upstream echoes: what the SDK got back."""
    c = client()
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Looks a thing up",
                                                "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}}}}]
    say = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    r = c.chat.completions.create(model=CHAT, messages=say, max_tokens=32)
    parts, usage = [], None
    for ch in c.chat.completions.create(model=CHAT, messages=say, max_tokens=32, stream=True,
                                        stream_options={"include_usage": True}):
        if ch.choices:
            parts.append(ch.choices[0].delta.content or "")
        if ch.usage:
            usage = ch.usage.model_dump()
    ask = [{"role": "user", "content": "please call_tool now"}]
    t = c.chat.completions.create(model=CHAT, messages=ask, tools=tools, max_tokens=32)
    call = t.choices[0].message.tool_calls[0]
    names, args = [], ""
    for ch in c.chat.completions.create(model=CHAT, messages=ask, tools=tools, max_tokens=32, stream=True):
        for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            if tc.function and tc.function.arguments:
                args += tc.function.arguments
    return {"text": r.choices[0].message.content, "usage": r.usage.model_dump(),
            "stream_text": "".join(parts), "stream_usage": usage,
            "finish": t.choices[0].finish_reason, "tool": call.function.name,
            "args": json.loads(call.function.arguments), "stream_tools": names,
            "stream_args": json.loads(args) if args else None}


def images():
    import base64
    c = client()
    r = c.images.generate(model="image-01", prompt="a lighthouse", size="768x512", n=2,
                          response_format="b64_json", extra_body={"seed": 5})
    pngs = [base64.b64decode(d.b64_json) for d in r.data]
    sizes = [[int.from_bytes(p[16:20], "big"), int.from_bytes(p[20:24], "big")] for p in pngs]
    u = c.images.generate(model="image-01", prompt="a lighthouse", size="512x512")
    try:
        c.images.generate(model="image-01", prompt="a lighthouse", size="256x256")
        small = None
    except openai.BadRequestError as e:
        small = e.body
    # An edit starts from an uploaded picture (a 64x64 grey PNG made here).
    import struct, zlib
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x80" * 64 * 3 for _ in range(64))
    grey = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    e = c.images.edit(model="image-01", image=("grey.png", grey, "image/png"), prompt="paint it blue",
                      size="512x512", response_format="b64_json")
    edited = base64.b64decode(e.data[0].b64_json)
    return {"count": len(r.data), "sizes": sizes, "png": all(p[:4] == b"\x89PNG" for p in pngs),
            "distinct": pngs[0] != pngs[1], "url": u.data[0].url, "small": small,
            "edit_size": [int.from_bytes(edited[16:20], "big"), int.from_bytes(edited[20:24], "big")]}


def fine_tuning():
    """Creates, lists, follows and cancels a job (files uploaded by the test)."""
    c = client()
    with open(os.environ["MAXIMIN_TRAINING_PATH"], "rb") as f:
        training = c.files.create(file=("train.jsonl", f), purpose="fine-tune")
    with open(os.environ["MAXIMIN_BAD_PATH"], "rb") as f:
        bad = c.files.create(file=("bad.jsonl", f), purpose="fine-tune")
    out = {"file": {"id": training.id, "object": training.object, "purpose": training.purpose,
                    "bytes": training.bytes},
           "files": [f.id for f in c.files.list(purpose="fine-tune")],
           "content": c.files.content(training.id).text}
    job = c.fine_tuning.jobs.create(model=CHAT, training_file=training.id,
                                    suffix="sdk", seed=5, hyperparameters={"n_epochs": 20, "batch_size": 1})
    out["created"] = {"id": job.id, "object": job.object, "status": job.status, "model": job.model,
                      "n_epochs": job.hyperparameters.n_epochs, "seed": job.seed,
                      "training_file": job.training_file}
    out["listed"] = [j.id for j in c.fine_tuning.jobs.list(limit=10)]
    deadline = time.time() + 300
    events = []
    while time.time() < deadline:
        events = c.fine_tuning.jobs.list_events(job.id, limit=100).data
        if any(e.type == "metrics" for e in events):
            break
        time.sleep(0.5)
    out["events"] = [{"type": e.type, "message": e.message, "level": e.level} for e in events]
    out["metrics"] = next((e.data for e in events if e.type == "metrics"), None)
    out["running"] = c.fine_tuning.jobs.retrieve(job.id).status
    out["cancelled"] = c.fine_tuning.jobs.cancel(job.id).status
    out["after"] = c.fine_tuning.jobs.retrieve(job.id).status
    out["checkpoints"] = len(c.fine_tuning.jobs.checkpoints.list(job.id).data)
    try:
        c.fine_tuning.jobs.retrieve("ftjob-1")
    except openai.NotFoundError as e:
        out["missing"] = e.status_code
    try:
        c.fine_tuning.jobs.create(model=CHAT, training_file=bad.id)
    except openai.BadRequestError as e:
        body = e.body if isinstance(e.body, dict) else {}
        out["bad"] = {"status": e.status_code, "param": body.get("param"), "message": body.get("message")}
    out["deleted"] = c.files.delete(bad.id).deleted
    return out


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()))
