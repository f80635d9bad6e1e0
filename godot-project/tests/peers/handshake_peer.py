"""A Python `websockets` client that sends its own upgrade headers, for the handshake tests.

  handshake_peer.py URL RESULT_FILE [HEADER ...]
      Connects to URL with each HEADER ("Name: value") added to the upgrade request. When the
      server accepts, sends the text "hello", expects it echoed, and closes with 1000. Writes a
      JSON summary to RESULT_FILE: "status" (101, or the HTTP status of a refusal), "body" (a
      refusal's body), "response_headers" (names in lower case), "echo" and "errors".
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


async def run(url, result_file, header_lines):
    headers = []
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    result = {"status": None, "body": None, "response_headers": {}, "echo": None, "errors": []}
    try:
        async with connect(url, additional_headers=headers, open_timeout=10) as ws:
            result["status"] = ws.response.status_code
            result["response_headers"] = {k.lower(): v for k, v in ws.response.headers.raw_items()}
            await ws.send("hello")
            result["echo"] = await asyncio.wait_for(ws.recv(), 10)
            await ws.close(1000, "done")
    except InvalidStatus as refused:
        result["status"] = refused.response.status_code
        result["body"] = refused.response.body.decode("utf-8", "replace")
        result["response_headers"] = {k.lower(): v for k, v in refused.response.headers.raw_items()}
    except Exception as err:  # noqa: BLE001 - every failure is reported to the test
        result["errors"].append(f"{type(err).__name__}: {err}")
    with open(result_file, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], sys.argv[2], sys.argv[3:]))
