"""A WebSocket client for the reverse-proxy tests, written with Python's `websockets`: it can
connect from a chosen local address and send extra request headers, which our GDScript client
cannot.

  proxy_client.py URL RESULT_FILE [--source ADDRESS] [--header "Name: value"]...
                  [--cafile PEM] [--server-hostname NAME]

Connects to URL from ADDRESS (any port; the system's choice without --source), with the extra
headers, expects the server's greeting (a text "welcome" then a binary b"\\x01\\x02\\x03"), sends
a text and a binary message, expects them echoed with their kinds, then closes with 1000.
For a wss:// URL, --cafile names the certificate to trust and --server-hostname the name to
check it against (when the URL's host is an address).

Writes a JSON summary to RESULT_FILE: "local_address" ([host, port] the connection came from),
"status" (the HTTP status of a refused handshake, else null) and "errors" (every check that
failed, or the exception that ended the session).
"""

import argparse
import asyncio
import json
import ssl

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

GREETING = ["welcome", b"\x01\x02\x03"]
MESSAGES = ["text through the proxy", b"\x00binary\xffthrough the proxy"]


async def session(args, result):
    options = {"open_timeout": 10, "additional_headers": [tuple(part.strip() for part in h.split(":", 1)) for h in args.header]}
    if args.source:
        options["local_addr"] = (args.source, 0)
    if args.cafile:
        options["ssl"] = ssl.create_default_context(cafile=args.cafile)
    if args.server_hostname:
        options["server_hostname"] = args.server_hostname
    async with connect(args.url, **options) as ws:
        result["local_address"] = list(ws.local_address[:2])
        greeting = [await asyncio.wait_for(ws.recv(), 10) for _ in GREETING]
        if greeting != GREETING:
            result["errors"].append(f"greeting was {greeting!r}")
        for message in MESSAGES:
            await ws.send(message)
        echoes = [await asyncio.wait_for(ws.recv(), 10) for _ in MESSAGES]
        if echoes != MESSAGES:
            result["errors"].append(f"echoes were {echoes!r}")
        await ws.close(1000, "done")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("result_file")
    parser.add_argument("--source")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--cafile")
    parser.add_argument("--server-hostname")
    args = parser.parse_args()
    result = {"local_address": None, "status": None, "errors": []}
    try:
        asyncio.run(session(args, result))
    except InvalidStatus as refused:
        result["status"] = refused.response.status_code
        result["errors"].append(f"handshake refused with HTTP {refused.response.status_code}")
    except Exception as error:  # reported to the test, which fails with it
        result["errors"].append(f"{type(error).__name__}: {error}")
    with open(args.result_file, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
