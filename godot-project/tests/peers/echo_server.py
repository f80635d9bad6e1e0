"""An echo server for the reconnect tests, written with Python's `websockets`.

  echo_server.py PORT READY_FILE
      Serves on 127.0.0.1:PORT with sub-protocol "game": greets each client with a text
      "hello " + its X-Session request header, then sends every message back with its kind.
      Writes READY_FILE once it listens. Runs until it is killed; the tests kill it with SIGKILL
      (no close frame reaches the clients, as when a server's process dies) and start it again on
      the same port.
"""

import asyncio
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def echo(ws):
    await ws.send("hello " + ws.request.headers.get("X-Session", "(no X-Session header)"))
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main(port, ready_file):
    # asyncio sets SO_REUSEADDR, so a restarted server binds the port its killed predecessor left.
    async with serve(echo, "127.0.0.1", port, subprotocols=["game"]):
        with open(ready_file, "w") as f:
            f.write("ready")
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
