"""The reference "library": the Gearman protocol on one plain socket, no library at all.

It does the least any Python client or worker can do for a scenario (pack the
packets, one selector loop, match replies by order and handle), with none of a
library's checks, retries or objects.  Its row in the table is the ceiling a
Python library can approach on the machine and gearmand of that run: where even
it is not 4x pygearman, no library is.  Not a usable client: no error handling.
"""
from __future__ import annotations

import os
import selectors
import socket
import struct
from typing import Callable, Dict, List, Tuple

HEADER = struct.Struct("!4sII")
REQ = b"\0REQ"
(CAN_DO, PRE_SLEEP, NOOP, SUBMIT_JOB, JOB_CREATED, NO_JOB, WORK_COMPLETE, SUBMIT_JOB_BG,
 GRAB_JOB_UNIQ, JOB_ASSIGN_UNIQ) = (1, 4, 6, 7, 8, 10, 13, 18, 30, 31)


def packet(command: int, *args: bytes) -> bytes:
    body = b"\0".join(args)
    return HEADER.pack(REQ, command, len(body)) + body


def submit(command: int, task: bytes, data: bytes) -> Tuple[bytes, bytes]:
    """Header and fields of a SUBMIT with a random unique id (as every library sends),
    and the payload apart, so a 1 MiB payload is not copied."""
    fields = task + b"\0" + os.urandom(16).hex().encode() + b"\0"
    return HEADER.pack(REQ, command, len(fields) + len(data)) + fields, data


def take_packets(buf: bytearray) -> List[Tuple[int, bytes]]:
    """Every complete packet at the start of ``buf`` as (command, body), removed from it."""
    found, pos = [], 0
    while len(buf) - pos >= HEADER.size:
        _magic, command, size = HEADER.unpack_from(buf, pos)
        end = pos + HEADER.size + size
        if len(buf) < end:
            break
        found.append((command, bytes(buf[pos + HEADER.size:end])))
        pos = end
    del buf[:pos]
    return found


class Bare:
    """One connection to gearmand; blocking calls that mirror the benchmark's modes."""

    name = "bare"

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.address = (host, int(port))
        self.sock: socket.socket = socket.socket()
        self.buf = bytearray()
        self.chunk = memoryview(bytearray(1 << 20))

    def connect(self) -> None:
        self.sock = socket.create_connection(self.address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- receiving ---------------------------------------------------------------
    def _packets(self) -> List[Tuple[int, bytes]]:
        """Every complete packet in the buffer (after one recv)."""
        received = self.sock.recv_into(self.chunk)
        if not received:
            raise ConnectionError("gearmand closed the connection")
        self.buf += self.chunk[:received]
        return take_packets(self.buf)

    def _exchange(self, outgoing: List[bytes], done: Callable[[int, bytes], bool]) -> None:
        """Send ``outgoing`` while reading; stop once ``done`` says so for a packet."""
        sock = self.sock
        sock.setblocking(False)
        selector = selectors.DefaultSelector()
        pending = [memoryview(chunk) for chunk in outgoing if chunk]
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        try:
            finished = False
            while not finished:
                for _key, mask in selector.select():
                    if mask & selectors.EVENT_WRITE and pending:
                        try:
                            sent = sock.send(pending[0])
                        except BlockingIOError:
                            sent = 0
                        pending[0] = pending[0][sent:]
                        if not len(pending[0]):
                            pending.pop(0)
                        if not pending:
                            selector.modify(sock, selectors.EVENT_READ)
                    if mask & selectors.EVENT_READ:
                        try:
                            packets = self._packets()
                        except BlockingIOError:
                            continue
                        for command, body in packets:
                            finished = done(command, body) or finished
        finally:
            selector.close()
            sock.setblocking(True)

    def _many(self, command: int, task: str, payloads: List[bytes], foreground: bool
              ) -> List[bytes]:
        """Submit all, pipelined; results in order (or handles, for background)."""
        name = task.encode()
        outgoing: List[bytes] = []
        small = bytearray()
        for data in payloads:
            head, payload = submit(command, name, data)
            small += head
            if len(payload) >= 65536:
                outgoing += [bytes(small), payload]
                small = bytearray()
            else:
                small += payload
        outgoing.append(bytes(small))
        order: Dict[bytes, int] = {}
        results: List[bytes] = [b""] * len(payloads)
        state = {"created": 0, "complete": 0}

        def done(command: int, body: bytes) -> bool:
            if command == JOB_CREATED:
                order[body] = state["created"]
                results[state["created"]] = body
                state["created"] += 1
                return not foreground and state["created"] == len(payloads)
            if command == WORK_COMPLETE:
                handle, data = body.split(b"\0", 1)
                results[order.pop(handle)] = data
                state["complete"] += 1
                return state["complete"] == len(payloads)
            return False

        self._exchange(outgoing, done)
        return results

    # -- the benchmark's modes ----------------------------------------------------
    def sequential(self, task: str, payloads: List[bytes]) -> List[bytes]:
        name, sock, results = task.encode(), self.sock, []
        for data in payloads:
            head, payload = submit(SUBMIT_JOB, name, data)
            sock.sendall(head + payload)
            result = None
            while result is None:
                for command, body in self._packets():
                    if command == WORK_COMPLETE:
                        result = body.split(b"\0", 1)[1]
            results.append(result)
        return results

    def batch(self, task: str, payloads: List[bytes]) -> List[bytes]:
        return self._many(SUBMIT_JOB, task, payloads, foreground=True)

    def background(self, task: str, payloads: List[bytes]) -> int:
        return sum(1 for handle in self._many(SUBMIT_JOB_BG, task, payloads, foreground=False)
                   if handle)

    def wait_forever(self, task: str) -> None:
        self.sock.sendall(b"".join(submit(SUBMIT_JOB, task.encode(), b"never done")))
        while True:
            self._packets()

    def work(self, task: str, ready: Callable[[], None]) -> None:
        """The echo worker loop of fast_worker.py, one job at a time."""
        self.connect()
        ready()
        grab = packet(GRAB_JOB_UNIQ)
        self.sock.sendall(packet(CAN_DO, task.encode()) + grab)
        while True:
            for command, body in self._packets():
                if command == JOB_ASSIGN_UNIQ:
                    handle, _task, _unique, data = body.split(b"\0", 3)
                    self.sock.sendall(packet(WORK_COMPLETE, handle, data) + grab)
                elif command == NO_JOB:
                    self.sock.sendall(packet(PRE_SLEEP))
                elif command == NOOP:
                    self.sock.sendall(grab)
