#!/usr/bin/env python3
"""Offers a TLS 1.2 ClientHello with a made-up 32-byte session id to
127.0.0.1:PORT and checks that the server answers with a ServerHello for a
full handshake (a session id other than the one offered), not an alert.

Usage: garbage_hello.py PORT. Exits 0 on a full handshake, 1 otherwise."""

import os
import socket
import struct
import sys

from hello import client_hello, ext, read_exact, u16_list


def garbage_hello(session_id):
    suites = [0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]
    groups = [0x001D, 0x0017, 0x0018]
    sigalgs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    extensions = b"".join(
        [
            ext(0x000A, u16_list(groups)),
            ext(0x000B, b"\x01\x00"),
            ext(0x000D, u16_list(sigalgs)),
            ext(0x0017, b""),  # extended master secret
            ext(0xFF01, b"\x00"),  # renegotiation info
        ]
    )
    return client_hello(session_id, suites, extensions)


def main():
    port = int(sys.argv[1])
    offered = os.urandom(32)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(garbage_hello(offered))
        kind, _, length = struct.unpack("!BHH", read_exact(sock, 5))
        record = read_exact(sock, length)
    if kind != 0x16 or record[0] != 0x02:
        print(f"garbage session id: expected a ServerHello, got record {kind:#x} {record[:8].hex()}")
        return 1
    sid_len = record[4 + 2 + 32]
    answered = record[4 + 2 + 32 + 1 : 4 + 2 + 32 + 1 + sid_len]
    if answered == offered:
        print("garbage session id: the server claimed to resume it")
        return 1
    print("garbage session id: full handshake")
    return 0


if __name__ == "__main__":
    sys.exit(main())
