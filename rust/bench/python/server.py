"""Reference echo server on Python's `websockets` (the PyPI package, asyncio API), run by
`cargo xtask bench` for the compression part. Command line:

    python server.py <port> <on|off>

on: permessage-deflate configured like ours by default (level 6, server_no_context_takeover,
client_no_context_takeover, windows of 2^15; `websockets` has no threshold: it compresses every
message, and the bench's are all over 128 bytes); off: no permessage-deflate. Every message goes
back to its sender as it arrives, text as text. It prints READY once listening and, once a
second, the line the Godot bench servers print, with the number of connections that agreed to
permessage-deflate:

    BENCH peers=N frames=0 busy_us=0 echoed=E deflated=D
"""

import asyncio
import sys

from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

peers = 0
echoed = 0
deflated = 0


async def echo(connection):
    """Sends every message back to its sender, counting the connection and its messages."""
    global peers, echoed, deflated
    peers += 1
    if connection.protocol.extensions:
        deflated += 1
    try:
        async for message in connection:
            await connection.send(message)
            echoed += 1
    finally:
        peers -= 1


async def report():
    """Prints the BENCH line once a second."""
    while True:
        await asyncio.sleep(1)
        print(f"BENCH peers={peers} frames=0 busy_us=0 echoed={echoed} deflated={deflated}", flush=True)


async def main(port, deflate):
    extensions = None
    if deflate:
        extensions = [
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=15,
                client_max_window_bits=15,
                compress_settings={"level": 6},
            )
        ]
    async with serve(echo, "127.0.0.1", port, compression=None, extensions=extensions, max_size=64 << 20, max_queue=64, ping_interval=None):
        print("READY", flush=True)
        await report()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in ("on", "off"):
        sys.exit(f"usage: python server.py <port> <on|off>, not {' '.join(sys.argv[1:])}")
    asyncio.run(main(int(sys.argv[1]), sys.argv[2] == "on"))
