"""Drives maximin's /anthropic surface with the official `anthropic` package.

    python anthropic_sdk.py CASE   (MAXIMIN_BASE, MAXIMIN_KEY, MAXIMIN_CHAT)

Prints one JSON object with what the SDK returned; the Rust test
(tests/api/sdk.rs) asserts on it.
"""
import json
import os
import sys
import time

import anthropic

from openai_sdk import hold_engine  # the same way to fill the engine

BASE = os.environ["MAXIMIN_BASE"] + "/anthropic"
KEY = os.environ["MAXIMIN_KEY"]
CHAT = os.environ.get("MAXIMIN_CHAT", "gemma-3-270m")


def client(**kw):
    kw.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=BASE, api_key=KEY, **kw)


def spent(*usages):
    """The (input, output) tokens the responses reported."""
    return [sum(u.input_tokens for u in usages), sum(u.output_tokens for u in usages)]


def chat():
    c = client()
    # This SDK has no temperature argument; the API takes it in the body.
    kw = dict(model=CHAT, max_tokens=24, system="You are terse.", extra_body={"temperature": 0},
              messages=[{"role": "user", "content": "Name three colours."}])
    m = c.messages.create(**kw)
    out = {"text": m.content[0].text, "stop_reason": m.stop_reason, "usage": m.usage.model_dump(),
           "type": m.type, "role": m.role}
    events = []
    with c.messages.stream(**kw) as s:
        for e in s:
            events.append(e.type)
        final = s.get_final_message()
    out.update(events=events, stream_text="".join(b.text for b in final.content if b.type == "text"),
               stream_usage=final.usage.model_dump(), stream_stop=final.stop_reason,
               spent=spent(m.usage, final.usage))
    return out


def tools():
    c = client()
    tools = [{"name": "get_weather", "description": "Current weather of a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    # Greedy (see chat()): sampled, the call could run past max_tokens.
    greedy = {"temperature": 0}
    m = c.messages.create(model=CHAT, max_tokens=64, tools=tools, tool_choice={"type": "any"}, messages=msgs,
                          extra_body=greedy)
    use = [b for b in m.content if b.type == "tool_use"][0]
    msgs.append({"role": "assistant", "content": [b.model_dump() for b in m.content]})
    msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                              "content": json.dumps({"temp_c": 21, "sky": "clear"})}]})
    m2 = c.messages.create(model=CHAT, max_tokens=32, tools=tools, tool_choice={"type": "none"}, messages=msgs,
                           extra_body=greedy)
    # The same call, streamed: the tool_use block arrives as input_json_delta.
    with c.messages.stream(model=CHAT, max_tokens=64, tools=tools, tool_choice={"type": "any"},
                           messages=msgs[:1], extra_body=greedy) as s:
        streamed = s.get_final_message()
    suse = [b for b in streamed.content if b.type == "tool_use"][0]
    return {"stop_reason": m.stop_reason, "name": use.name, "input": use.input, "id": use.id,
            "answer": "".join(b.text for b in m2.content if b.type == "text"), "answer_stop": m2.stop_reason,
            "stream_name": suse.name, "stream_input": suse.input,
            "spent": spent(m.usage, m2.usage, streamed.usage)}


def auth():
    c = anthropic.Anthropic(base_url=BASE, api_key="mmx_live_not_a_real_key", max_retries=0)
    try:
        c.messages.create(model=CHAT, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    except anthropic.AuthenticationError as e:
        return {"error": type(e).__name__, "status": e.status_code, "type": e.body["error"]["type"]}
    return {"error": None}


def rate_limit():
    held = hold_engine()
    c = client(max_retries=2)
    start = time.monotonic()
    try:
        c.messages.create(model=CHAT, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
        out = {"error": None}
    except anthropic.RateLimitError as e:
        out = {"error": type(e).__name__, "status": e.status_code,
               "retry_after": e.response.headers.get("retry-after"), "elapsed": time.monotonic() - start,
               "type": e.body["error"]["type"]}
    held.close()
    return out


def gateway():
    """The same as openai_sdk.py's gateway case, through the Anthropic SDK."""
    c = client()
    tools = [{"name": "lookup", "description": "Looks a thing up",
              "input_schema": {"type": "object", "properties": {"echo": {"type": "string"}}}}]
    kw = dict(model=CHAT, max_tokens=32, system="Be brief.", messages=[{"role": "user", "content": "Hello there"}])
    m = c.messages.create(**kw)
    with c.messages.stream(**kw) as s:
        final = s.get_final_message()
    ask = dict(model=CHAT, max_tokens=32, tools=tools, messages=[{"role": "user", "content": "please call_tool now"}])
    t = c.messages.create(**ask)
    use = [b for b in t.content if b.type == "tool_use"][0]
    with c.messages.stream(**ask) as s:
        streamed = s.get_final_message()
    suse = [b for b in streamed.content if b.type == "tool_use"][0]
    return {"text": m.content[0].text, "usage": m.usage.model_dump(),
            "stream_text": "".join(b.text for b in final.content if b.type == "text"),
            "stream_usage": final.usage.model_dump(), "stop": t.stop_reason, "tool": use.name,
            "args": use.input, "stream_tool": suse.name, "stream_args": suse.input}


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()))
