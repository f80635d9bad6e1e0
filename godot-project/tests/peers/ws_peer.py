"""A third-party WebSocket peer for the Godot tests, written with Python's `websockets`.

  ws_peer.py client URL RESULT_FILE
      Connects to URL (offering sub-protocol "game"), expects the server's greeting (a text
      "welcome python" then a binary b"\\x01\\x02\\x03"), sends a text and a binary message, expects
      them echoed with their kinds, then closes with 4001 "python bye".
  ws_peer.py server PORT RESULT_FILE READY_FILE
      Serves on 127.0.0.1:PORT: greets each client with a text "hello from python" and a binary
      b"\\xff\\x00", echoes every message with its kind, and after the first client leaves records
      the close code and reason it sent (binary messages are listed as hex).

Both write a JSON summary to RESULT_FILE; a check that fails is listed under "errors".
TLS: a client given `--cafile PEM` trusts that certificate for a wss:// URL; a server given
`--certfile PEM --keyfile PEM` serves wss://.
"""

import asyncio
import json
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

# The asyncio API, not `websockets.sync`: the sync API reads in a background thread while the
# caller writes, and CPython's ssl module does not make that safe. Over TLS 1.3 the thread that
# processes the server's session tickets can lose the upgrade request the other thread is
# writing (seen about once in 150 connections; the server never receives it).


async def run_client(url, result_file, cafile=None):
    errors = []
    context = None
    if cafile:
        context = ssl.create_default_context(cafile=cafile)
    async with connect(url, subprotocols=["game"], open_timeout=10, ssl=context) as ws:
        greeting = [await asyncio.wait_for(ws.recv(), 10) for _ in range(2)]
        if greeting != ["welcome python", b"\x01\x02\x03"]:
            errors.append(f"greeting was {greeting!r}")
        await ws.send("text from python")
        await ws.send(b"\x00binary\xff")
        echoes = [await asyncio.wait_for(ws.recv(), 10) for _ in range(2)]
        if echoes != ["text from python", b"\x00binary\xff"]:
            errors.append(f"echoes were {echoes!r}")
        await ws.close(4001, "python bye")
    result = {"subprotocol": ws.subprotocol, "errors": errors}
    with open(result_file, "w") as f:
        json.dump(result, f)


async def run_server(port, result_file, ready_file, certfile=None, keyfile=None):
    result = {"errors": [], "received": [], "close_code": None, "close_reason": None, "path": None}
    first_client_done = asyncio.Event()

    async def handler(ws):
        result["path"] = ws.request.path
        await ws.send("hello from python")
        await ws.send(b"\xff\x00")
        try:
            async for message in ws:
                kind = "text" if isinstance(message, str) else "binary"
                result["received"].append([kind, message if kind == "text" else message.hex()])
                await ws.send(message)
        except ConnectionClosed:
            pass
        close = ws.protocol.close_rcvd
        if close is not None:
            result["close_code"] = close.code
            result["close_reason"] = close.reason
        with open(result_file, "w") as f:
            json.dump(result, f)
        first_client_done.set()

    context = None
    if certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
    async with serve(handler, "127.0.0.1", port, ssl=context):
        with open(ready_file, "w") as f:
            f.write("ready")
        await first_client_done.wait()


def main():
    args = sys.argv[1:]
    options = {}
    while len(args) >= 2 and args[-2].startswith("--"):
        options[args[-2][2:]] = args[-1]
        args = args[:-2]
    if len(args) == 3 and args[0] == "client":
        asyncio.run(run_client(args[1], args[2], options.get("cafile")))
    elif len(args) == 4 and args[0] == "server":
        asyncio.run(run_server(int(args[1]), args[2], args[3], options.get("certfile"), options.get("keyfile")))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
