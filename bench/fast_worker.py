"""The common worker behind client scenarios: a minimal echo worker that speaks the
Gearman protocol itself (one blocking socket, no library).

Every client library is measured against the same workers, and these cost about
15 µs of CPU per job (a library worker costs 60 µs or more), so on a small machine
the client, not the worker, is what the scenario measures.  Usage:
``python fast_worker.py HOST:PORT TASK``.
"""
from __future__ import annotations

import socket
import struct
import sys

HEADER = struct.Struct("!4sII")
REQ = b"\0REQ"
CAN_DO, PRE_SLEEP, NOOP, NO_JOB, WORK_COMPLETE = 1, 4, 6, 10, 13
GRAB_JOB_UNIQ, JOB_ASSIGN_UNIQ = 30, 31


def packet(command: int, *args: bytes) -> bytes:
    body = b"\0".join(args)
    return HEADER.pack(REQ, command, len(body)) + body


class Reader:
    """Whole response packets from a blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.chunk = memoryview(bytearray(1 << 20))

    def _fill(self, size: int) -> None:
        while len(self.buf) < size:
            received = self.sock.recv_into(self.chunk)
            if not received:
                raise SystemExit(0)  # gearmand went away: the cell is over
            self.buf += self.chunk[:received]

    def next(self) -> tuple:
        self._fill(HEADER.size)
        _magic, command, size = HEADER.unpack_from(self.buf)
        self._fill(HEADER.size + size)
        body = bytes(self.buf[HEADER.size:HEADER.size + size])
        del self.buf[:HEADER.size + size]
        return command, body


def main() -> None:
    host, port = sys.argv[1].rsplit(":", 1)
    task = sys.argv[2].encode()
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    grab = packet(GRAB_JOB_UNIQ)
    sock.sendall(packet(CAN_DO, task) + grab)
    reader = Reader(sock)
    while True:
        command, body = reader.next()
        if command == JOB_ASSIGN_UNIQ:
            handle, _task, _unique, data = body.split(b"\0", 3)
            sock.sendall(packet(WORK_COMPLETE, handle, data) + grab)
        elif command == NO_JOB:
            sock.sendall(packet(PRE_SLEEP))
        elif command == NOOP:
            sock.sendall(grab)


if __name__ == "__main__":
    main()
