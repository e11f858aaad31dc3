"""ClientHello building blocks shared by tools/garbage_hello.py and
tools/psk_hello.py: an extension, a list of 16-bit values, the record
around a ClientHello body, and reading a record's bytes."""

import os
import struct


def ext(kind, body):
    return struct.pack("!HH", kind, len(body)) + body


def u16_list(values):
    return struct.pack("!H", 2 * len(values)) + b"".join(struct.pack("!H", v) for v in values)


def client_hello(session_id, suites, extensions):
    """A ClientHello record: legacy version TLS 1.2, a random, `session_id`,
    `suites`, no compression, `extensions` (already encoded)."""
    body = (
        b"\x03\x03"
        + os.urandom(32)
        + bytes([len(session_id)])
        + session_id
        + u16_list(suites)
        + b"\x01\x00"
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("the server closed the connection")
        data += chunk
    return data
