"""A third-party peer with permessage-deflate (RFC 7692) for test_deflate_peers.gd, written with
Python's `websockets`, which compresses every message once the extension is agreed.

  deflate_peer.py client URL
      Connects to URL offering permessage-deflate as `websockets` does by default
      ("permessage-deflate; client_max_window_bits") and runs one session (below).
  deflate_peer.py server PORT READY_FILE VARIANT
      Serves on 127.0.0.1:PORT and REQUIRES permessage-deflate: a handshake that did not agree on
      it is refused with HTTP 400 "permessage-deflate is required" (counted in the report's
      "refused"). Runs one session with the first client that agreed on it, then exits. VARIANT
      is how it answers an offer: "default" (`websockets`' own server settings: both windows
      12 bits) or "small-windows" (server_max_window_bits=10, client_max_window_bits=8, and no
      *_no_context_takeover of its own, so the client's offer decides whether contexts are kept).
      READY_FILE is written once it listens.

A session: the peer sends MESSAGES (text and binary, small, about 2 KB and 1 MiB) and checks that
each comes back with its content, kind and order; then it echoes, with its kind, each of the
same number of messages the other side sends; then it sends its report as one text message (JSON,
below) and closes with 4001 "python done".

The report: "offer" and "answer" (the Sec-WebSocket-Extensions request and response headers),
"agreed" (the parameters in effect, written as test_deflate_peers.gd writes
get_permessage_deflate()), "sent" and "received" (one "kind:size:sha256" per message, echoes left
out), "sent_compressed" and "received_compressed" (whether each message's first frame had RSV1
set, in wire order, echoes included), "refused" (servers) and "errors" (checks that failed).
"""

import asyncio
import hashlib
import http
import json
import os
import struct
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import OP_BINARY, OP_TEXT

# Messages up to 1 MiB and a little more; `websockets` refuses more than 1 MiB by default.
MAX_SIZE = 8 << 20
# Time for one message to arrive.
TIMEOUT = 30


def json_text(size):
    """JSON-like text of about `size` bytes, with a few characters beyond ASCII."""
    parts = []
    length = 0
    i = 0
    while length < size:
        part = '{"id":%d,"name":"python\u00e9%d","x":%d.25,"ok":false}' % (i, i % 41, i * 7)
        parts.append(part)
        length += len(part.encode()) + 1
        i += 1
    return "[" + ",".join(parts) + "]"


def messages():
    """What the peer sends: small, JSON-like and 1 MiB text and binary (the last one random)."""
    return [
        "python \u00e9\U0001F600 small",
        bytes(range(0, 200, 2)),
        json_text(2000),
        json_text(2100).encode(),
        json_text(1 << 20),
        b"".join(struct.pack("<If", i, i * 0.5) for i in range(1 << 17)),
        os.urandom(1 << 20),
    ]


def digest(message):
    """"kind:size:sha256" of a message (text as UTF-8)."""
    kind, data = ("text", message.encode()) if isinstance(message, str) else ("binary", message)
    return f"{kind}:{len(data)}:{hashlib.sha256(data).hexdigest()}"


class RecordingPerMessageDeflate(PerMessageDeflate):
    """`websockets`' permessage-deflate, noting whether each message's first frame has RSV1."""

    def decode(self, frame, *, max_size=None):
        if frame.opcode in (OP_TEXT, OP_BINARY):
            self.received_rsv1.append(frame.rsv1)
        return super().decode(frame, max_size=max_size)

    def encode(self, frame):
        frame = super().encode(frame)
        if frame.opcode in (OP_TEXT, OP_BINARY):
            self.sent_rsv1.append(frame.rsv1)
        return frame


def recording(extension):
    """The agreed extension, made to record RSV1 (RecordingPerMessageDeflate)."""
    extension.__class__ = RecordingPerMessageDeflate
    extension.received_rsv1 = []
    extension.sent_rsv1 = []
    return extension


class RecordingClientFactory(ClientPerMessageDeflateFactory):
    """The client's factory whose agreed extension records RSV1."""

    def process_response_params(self, params, accepted_extensions):
        return recording(super().process_response_params(params, accepted_extensions))


class RecordingServerFactory(ServerPerMessageDeflateFactory):
    """The server's factory whose agreed extension records RSV1."""

    def process_request_params(self, params, accepted_extensions):
        response_params, extension = super().process_request_params(params, accepted_extensions)
        return response_params, recording(extension)


def agreement(extension, role):
    """The parameters in effect, as test_deflate_peers.gd writes get_permessage_deflate()."""
    if role == "client":
        server, client = "remote", "local"
    else:
        server, client = "local", "remote"
    values = [
        ("server_no_context_takeover", str(getattr(extension, f"{server}_no_context_takeover")).lower()),
        ("client_no_context_takeover", str(getattr(extension, f"{client}_no_context_takeover")).lower()),
        ("server_max_window_bits", getattr(extension, f"{server}_max_window_bits")),
        ("client_max_window_bits", getattr(extension, f"{client}_max_window_bits")),
    ]
    return ", ".join(f"{name}={value}" for name, value in values)


def describe(message):
    """A short description of a message for an error line."""
    return f"{digest(message)} starting {message[:24]!r}"


async def session(ws, role, report):
    """Sends MESSAGES and checks their echoes, echoes as many messages, then sends `report`."""
    report["offer"] = ws.request.headers.get("Sec-WebSocket-Extensions")
    report["answer"] = ws.response.headers.get("Sec-WebSocket-Extensions")
    extensions = ws.protocol.extensions
    report["agreed"] = agreement(extensions[0], role) if extensions else None
    if not extensions:
        report["errors"].append("no extension agreed")
    mine = messages()
    for message in mine:
        report["sent"].append(digest(message))
        await ws.send(message)
    for i, message in enumerate(mine):
        echo = await asyncio.wait_for(ws.recv(), TIMEOUT)
        if type(echo) is not type(message) or echo != message:
            report["errors"].append(f"echo {i}: {describe(echo)} instead of {describe(message)}")
    for _ in mine:
        message = await asyncio.wait_for(ws.recv(), TIMEOUT)
        report["received"].append(digest(message))
        await ws.send(message)
    if extensions:
        report["sent_compressed"] = list(extensions[0].sent_rsv1)
        report["received_compressed"] = list(extensions[0].received_rsv1)
    await ws.send(json.dumps(report))
    await ws.close(4001, "python done")


def new_report():
    """A report with nothing in it yet."""
    return {"offer": None, "answer": None, "agreed": None, "sent": [], "received": [],
            "sent_compressed": [], "received_compressed": [], "errors": []}


async def run_client(url):
    factory = RecordingClientFactory(client_max_window_bits=True, compress_settings={"memLevel": 5})
    async with connect(url, extensions=[factory], max_size=MAX_SIZE, open_timeout=10) as ws:
        await session(ws, "client", new_report())


SERVER_VARIANTS = {
    "default": dict(server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}),
    "small-windows": dict(server_max_window_bits=10, client_max_window_bits=8),
}


async def run_server(port, ready_file, variant):
    refused = []
    done = asyncio.Event()

    def require_deflate(connection, request, response):
        agreed = response.headers.get("Sec-WebSocket-Extensions", "")
        if response.status_code == 101 and "permessage-deflate" not in agreed:
            refused.append(request.headers.get("Sec-WebSocket-Extensions"))
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "permessage-deflate is required\n")
        return None

    async def handler(ws):
        report = new_report()
        report["refused"] = len(refused)
        try:
            await session(ws, "server", report)
            await ws.wait_closed()
        finally:
            done.set()

    factory = RecordingServerFactory(**SERVER_VARIANTS[variant])
    async with serve(handler, "127.0.0.1", port, extensions=[factory], process_response=require_deflate,
                     max_size=MAX_SIZE):
        with open(ready_file, "w") as f:
            f.write("ready")
        await done.wait()


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "client":
        asyncio.run(run_client(args[1]))
    elif len(args) == 4 and args[0] == "server" and args[3] in SERVER_VARIANTS:
        asyncio.run(run_server(int(args[1]), args[2], args[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
