#!/usr/bin/env python3
"""Offers a TLS 1.3 ClientHello to 127.0.0.1:PORT whose pre_shared_key
identity is SESSION_ID (hex), with a binder no one could verify, and checks
that the server answers with a handshake record, not an alert. A server
looks an identity up before it checks the binder, so this is how anyone who
saw a TLS 1.2 session id in the clear can present it as a TLS 1.3 ticket.

Usage: psk_hello.py PORT SESSION_ID. Exits 0 on a handshake answer."""

import os
import socket
import struct
import sys

from hello import client_hello, ext, read_exact, u16_list


def psk_hello(identity):
    suites = [0x1301, 0x1302, 0x1303]
    sigalgs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    share = struct.pack("!HH", 0x001D, 32) + os.urandom(32)  # x25519
    identities = struct.pack("!H", len(identity)) + identity + struct.pack("!I", 0)
    binders = b"\x20" + os.urandom(32)  # SHA-256 length, made up
    psk = struct.pack("!H", len(identities)) + identities + struct.pack("!H", len(binders)) + binders
    extensions = b"".join(
        [
            ext(0x000A, u16_list([0x001D, 0x0017])),
            ext(0x000D, u16_list(sigalgs)),
            ext(0x002B, b"\x02\x03\x04"),  # supported_versions: TLS 1.3
            ext(0x0033, struct.pack("!H", len(share)) + share),
            ext(0x002D, b"\x01\x01"),  # psk_dhe_ke
            ext(0x0029, psk),  # pre_shared_key, last as it must be
        ]
    )
    return client_hello(os.urandom(32), suites, extensions)


def main():
    port = int(sys.argv[1])
    identity = bytes.fromhex(sys.argv[2])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(psk_hello(identity))
        kind, _, length = struct.unpack("!BHH", read_exact(sock, 5))
        read_exact(sock, length)
    if kind != 0x16:
        print(f"TLS 1.2 session id as a TLS 1.3 ticket: expected a handshake record, got {kind:#x}")
        return 1
    print("TLS 1.2 session id as a TLS 1.3 ticket: answered with a handshake")
    return 0


if __name__ == "__main__":
    sys.exit(main())
