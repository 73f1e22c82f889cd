#!/usr/bin/env python3
"""A minimal interactive board client: prints every frame, sends each stdin line.

Usage: .venv/bin/python scripts/ws-client.py ws://127.0.0.1:8000/ws/boards/demo/
The Origin header is derived from the URL, as the server requires one.
"""

import asyncio
import sys
from urllib.parse import urlsplit

from websockets.asyncio.client import connect


def origin_of(url):
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


async def pump_stdin(ws):
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.strip():
            await ws.send(line.strip())
    await ws.close()


async def main(url):
    async with connect(url, origin=origin_of(url), max_size=None) as ws:
        sender = asyncio.create_task(pump_stdin(ws))
        try:
            async for frame in ws:
                print(frame, flush=True)
        finally:
            sender.cancel()
        print(f"closed: {ws.close_code} {ws.close_reason}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1]))
