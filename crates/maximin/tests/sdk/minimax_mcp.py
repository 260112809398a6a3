"""Drives maximin with the official MiniMax MCP server (`minimax-mcp` from PyPI,
unmodified), spawned over stdio by the `mcp` client library.

    python minimax_mcp.py OUT_DIR   (MAXIMIN_BASE, MAXIMIN_KEY)

The MCP server saves what it makes under OUT_DIR (its local resource mode:
it downloads the files maximin links to). Prints one JSON object with each
tool's text and the files written; the Rust test (tests/api/media.rs)
asserts on them.
"""
import asyncio
import json
import os
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

OUT = sys.argv[1]


def text(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def main():
    env = dict(os.environ)
    env.update({
        "MINIMAX_API_KEY": os.environ["MAXIMIN_KEY"],
        "MINIMAX_API_HOST": os.environ["MAXIMIN_BASE"],
        "MINIMAX_MCP_BASE_PATH": OUT,
        "MINIMAX_API_RESOURCE_MODE": "local",
    })
    server = os.path.join(os.path.dirname(sys.executable), "minimax-mcp")
    params = StdioServerParameters(command=server, args=[], env=env)
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            tools = [t.name for t in (await s.list_tools()).tools]
            out["tools"] = tools
            r = await s.call_tool("text_to_image", {"prompt": "a lighthouse at dusk", "aspect_ratio": "1:1", "n": 1})
            out["image"] = text(r)
            r = await s.call_tool("generate_video", {"prompt": "waves on a beach [Pan left]", "async_mode": True})
            out["video_submit"] = text(r)
            task = out["video_submit"].split("Task ID:")[1].split(".")[0].strip()
            deadline = time.time() + 240
            while True:
                r = await s.call_tool("query_video_generation", {"task_id": task})
                out["video"] = text(r)
                if "still processing" not in out["video"] or time.time() > deadline:
                    break
                await asyncio.sleep(1)
            r = await s.call_tool("music_generation", {
                "prompt": "upbeat folk, acoustic guitar",
                "lyrics": "[Verse]\nMorning light upon the water\n[Chorus]\nSing it loud",
            })
            out["music"] = text(r)
    files = []
    for root, _, names in os.walk(OUT):
        for n in names:
            p = os.path.join(root, n)
            files.append(p)
    out["files"] = sorted(files)
    print(json.dumps(out))


asyncio.run(main())
