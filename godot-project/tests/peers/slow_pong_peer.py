"""A WebSocket client, written on a plain socket, that answers each ping late: the round-trip
time tests know the delay the server must measure.

  slow_pong_peer.py HOST PORT DELAY_MS SECONDS RESULT_FILE
      Connects to ws://HOST:PORT/, then for SECONDS answers every ping with its pong DELAY_MS
      after reading it (and echoes nothing else). Writes a JSON summary to RESULT_FILE: "pings"
      (how many it answered) and "errors".
"""

import base64
import json
import os
import socket
import struct
import sys
import time


def frames(buf):
    """Yields (opcode, payload) for each whole unmasked frame in buf; returns the rest."""
    out = []
    while len(buf) >= 2:
        opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
        at = 2
        if length == 126:
            if len(buf) < 4:
                break
            (length,) = struct.unpack("!H", buf[2:4])
            at = 4
        elif length == 127:
            if len(buf) < 10:
                break
            (length,) = struct.unpack("!Q", buf[2:10])
            at = 10
        if len(buf) < at + length:
            break
        out.append((opcode, buf[at:at + length]))
        buf = buf[at + length:]
    return out, buf


def masked_frame(opcode, payload):
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def run(host, port, delay_ms, seconds, result_file):
    result = {"pings": 0, "errors": []}
    try:
        sock = socket.create_connection((host, port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode("latin-1"))
        sock.settimeout(0.05)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            parsed, buf = frames(buf)
            for opcode, payload in parsed:
                if opcode == 0x9:
                    time.sleep(delay_ms / 1000)
                    sock.sendall(masked_frame(0xA, payload))
                    result["pings"] += 1
                elif opcode == 0x8:
                    deadline = 0
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
            except socket.timeout:
                pass
        sock.sendall(masked_frame(0x8, struct.pack("!H", 1000)))
        sock.close()
    except Exception as err:  # noqa: BLE001 - every failure is reported to the test
        result["errors"].append(f"{type(err).__name__}: {err}")
    with open(result_file, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
