"""Tools for the fault suite: worker processes, a fault-injecting TCP proxy, a
fake gearmand that sends hostile bytes, and memory/CPU probes.

Standard library only: the proxy and the fake server are threads on 127.0.0.1.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

import gearman
from gearman.protocol import REQ, RES, Command, Packet, PacketParser, pack

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WORKER_SCRIPT = os.path.join(HERE, "fault_worker.py")


# -- probes -----------------------------------------------------------------------------
def rss_kb(pid: Any = "self") -> int:
    """VmRSS of a process in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: Any = "self") -> float:
    """User plus system CPU time of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_used_during(seconds: float, pid: Any = "self") -> float:
    """CPU seconds a process uses while the caller sleeps ``seconds``: a spin shows up."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# -- workers ----------------------------------------------------------------------------
class WorkerProcess:
    """``fault_worker.py`` in a subprocess: tasks ``echo`` and ``record``."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self.hosts = list(hosts)
        self.dir = tempfile.mkdtemp(prefix="fault-worker-")
        self.log_path = os.path.join(self.dir, "executions.log")
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> WorkerProcess:
        ready = os.path.join(self.dir, "ready")
        args = [sys.executable, WORKER_SCRIPT, *self.hosts, "--log", self.log_path,
                "--ready", ready]
        env = dict(os.environ, PYTHONPATH=REPO)
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr"), "wb"))
        if not wait_for(lambda: os.path.exists(ready) or self.proc.poll() is not None, 10):
            raise RuntimeError("worker process did not start")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def executions(self) -> List[str]:
        """Unique ids of the ``record`` jobs it ran, one entry per run."""
        try:
            with open(self.log_path) as fh:
                return fh.read().split()
        except FileNotFoundError:
            return []

    def stderr(self) -> str:
        with open(os.path.join(self.dir, "stderr"), "rb") as fh:
            return fh.read().decode("utf-8", "replace")

    def remove_files(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM (the worker shuts down cleanly), SIGKILL if it does not."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class ThreadWorker:
    """A GearmanWorker running ``work()`` in a daemon thread of the test process."""

    def __init__(self, worker: gearman.GearmanWorker, poll_timeout: float = 0.5) -> None:
        self.worker = worker
        self.errors: List[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(poll_timeout,), daemon=True)

    def _run(self, poll_timeout: float) -> None:
        try:
            self.worker.work(poll_timeout=poll_timeout)
        except BaseException as exc:  # surfaced by the test through .errors
            self.errors.append(exc)

    def start(self) -> ThreadWorker:
        self.thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask work() to end; True if the thread ended within ``timeout``."""
        self.worker.shutdown()
        self.thread.join(timeout)
        alive = self.thread.is_alive()
        if not alive:
            self.worker.close()
        return not alive


# -- a fault-injecting TCP proxy ----------------------------------------------------------
UP, DOWN = "up", "down"  # client -> server, server -> client


class _Pair:
    """One proxied connection: the client's socket and ours to the backend."""

    def __init__(self, client: socket.socket, backend: socket.socket) -> None:
        self.client, self.backend = client, backend
        self.closed = False
        self.lock = threading.Lock()

    def abort(self, reset: bool = False) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.backend):
            try:
                if reset:  # linger 0: the close sends RST instead of FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                # SHUT_RD wakes the pump blocked in recv(): until it lets go of the
                # socket, the kernel would not really close it.
                sock.shutdown(socket.SHUT_RD if reset else socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass


class _LoopbackListener:
    """A listening socket on 127.0.0.1 (kernel-chosen port) whose accept loop runs in a
    thread and hands each connection to :meth:`_accepted`; :meth:`_stop_listening`
    ends it."""

    def _listen(self, backlog: int) -> None:
        self._closed = False
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(backlog)
        self.port = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while True:
            ready, _, _ = select.select([self._listener, self._wake_r], [], [])
            if self._closed or self._wake_r in ready:
                return
            try:
                sock, _ = self._listener.accept()
            except OSError:
                continue
            self._accepted(sock)

    def _accepted(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def _stop_listening(self) -> None:
        self._closed = True
        self._wake_w.send(b"x")
        self._thread.join(5)
        self._listener.close()


class FaultProxy(_LoopbackListener):
    """A TCP proxy on 127.0.0.1:port in front of ``backend_port`` that injects faults.

    ``split`` forwards every chunk one byte per send; ``delay`` waits that long
    before forwarding each chunk; :meth:`cut_next` forwards only half of the next
    chunk in one direction and closes both sides (a cut in mid-packet);
    :meth:`reset_all` aborts every connection with a TCP RST.
    """

    def __init__(self, backend_port: int, backend_host: str = "127.0.0.1") -> None:
        self.backend = (backend_host, backend_port)
        self.split = False
        self.delay = 0.0
        self.accepted = 0
        self.cuts = 0
        self._armed: Dict[str, Optional[bytes]] = {UP: None, DOWN: None}
        self._last_match: Dict[str, bytes] = {}
        self._pairs: List[_Pair] = []
        self._lock = threading.Lock()
        self._listen(64)

    def _accepted(self, client: socket.socket) -> None:
        try:
            backend = socket.create_connection(self.backend, timeout=2)
        except OSError:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            return
        backend.settimeout(None)
        for sock in (client, backend):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(client, backend)
        with self._lock:
            self.accepted += 1
            self._pairs.append(pair)
        for src, dst, direction in ((client, backend, UP), (backend, client, DOWN)):
            threading.Thread(target=self._pump, args=(pair, src, dst, direction),
                             daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while not pair.closed:
                data = src.recv(65536)
                if not data:
                    break
                if self.delay:
                    time.sleep(self.delay)
                if self._take_cut(direction, data):
                    dst.sendall(data[:self._cut_point(data, direction)])
                    break
                if self.split:
                    for i in range(len(data)):
                        dst.sendall(data[i:i + 1])
                else:
                    dst.sendall(data)
        except OSError:
            pass
        pair.abort()

    def _take_cut(self, direction: str, data: bytes) -> bool:
        with self._lock:
            match = self._armed[direction]
            if match is not None and match in data:
                self._armed[direction] = None
                self._last_match[direction] = match
                self.cuts += 1
                return True
        return False

    def _cut_point(self, data: bytes, direction: str) -> int:
        """Middle of the matched packet (or of the chunk): never a packet boundary."""
        match = self._last_match.get(direction) or b""
        start = data.find(match) if match else -1
        if start < 0 or len(data) < start + 12:
            return max(1, len(data) // 2)
        size = 12 + struct.unpack("!I", data[start + 8:start + 12])[0]
        return start + max(1, min(size, len(data) - start) // 2)

    def cut_next(self, direction: str = DOWN, match: bytes = b"") -> None:
        """Cut the connection in the middle of the next chunk going ``direction``
        (that contains ``match``): half of it is forwarded, then both sides close."""
        with self._lock:
            self._armed[direction] = match

    def reset_all(self) -> int:
        """Abort every open connection with RST; return how many there were."""
        with self._lock:
            pairs, self._pairs = [p for p in self._pairs if not p.closed], []
        for pair in pairs:
            pair.abort(reset=True)
        return len(pairs)

    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for p in self._pairs if not p.closed)

    def close(self) -> None:
        self._stop_listening()
        self.reset_all()
        self._wake_r.close()
        self._wake_w.close()


# -- a fake gearmand that sends hostile bytes -------------------------------------------------
def packet(command: Command, *args: bytes, magic: bytes = RES) -> bytes:
    """Wire bytes of one packet (no argument checks: tests build bad ones on purpose)."""
    return pack(Packet(command, tuple(args), magic))


def header_of(command: Command, magic: bytes = RES) -> bytes:
    """The first 8 bytes of any packet of ``command``: what :meth:`FaultProxy.cut_next` matches."""
    return magic + struct.pack("!I", int(command))


def raw_header(code: int, size: int, magic: bytes = RES) -> bytes:
    return struct.pack("!4sII", magic, code, size)


class PeerReader:
    """Reads the REQ packets and admin lines a client sends to the fake server."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = PacketParser(expect_magic=REQ)

    def next(self, timeout: float = 5.0) -> Any:
        """The next packet or text line from the peer, or None at EOF or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.parser.next_event()
            if event is not None:
                return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return None
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self.parser.feed(data)

    def until(self, command: Command, timeout: float = 5.0) -> Optional[Packet]:
        """Skip events until a packet of ``command``; None at EOF or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.0, deadline - time.monotonic()))
            if event is None:
                return None
            if isinstance(event, Packet) and event.command == command:
                return event


Script = Callable[[socket.socket, int, "FakeServer"], None]


class FakeServer(_LoopbackListener):
    """A listening socket on 127.0.0.1 whose every connection runs ``script(sock, n, server)``.

    The script plays gearmand and sends whatever bytes it likes; the socket is
    closed when the script returns unless it set ``hold=True`` (then at :meth:`close`).
    """

    def __init__(self, script: Script, hold: bool = True) -> None:
        self.script = script
        self.hold = hold
        self.connections = 0
        self.disconnects = 0
        self.errors: List[BaseException] = []
        self._socks: List[socket.socket] = []
        self._listen(16)

    def _accepted(self, sock: socket.socket) -> None:
        self.connections += 1
        self._socks.append(sock)
        threading.Thread(target=self._run, args=(sock, self.connections), daemon=True).start()

    def _run(self, sock: socket.socket, number: int) -> None:
        try:
            self.script(sock, number, self)
            if self.hold:
                self._wait_closed(sock)
        except OSError:
            pass
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.disconnects += 1
            if not self.hold:
                sock.close()

    def _wait_closed(self, sock: socket.socket) -> None:
        """Read and discard until the peer closes (or the server is closed)."""
        while not self._closed:
            ready, _, _ = select.select([sock, self._wake_r], [], [], 1.0)
            if self._wake_r in ready:
                return
            if sock in ready and not sock.recv(65536):
                return

    def close(self) -> None:
        self._stop_listening()
        for sock in self._socks:
            try:
                sock.close()
            except OSError:
                pass


def stream_forever(sock: socket.socket, chunk: bytes, server: FakeServer,
                   limit_seconds: float = 10.0) -> int:
    """Send ``chunk`` again and again until the peer goes away; return bytes sent."""
    sent = 0
    deadline = time.monotonic() + limit_seconds
    sock.settimeout(1.0)
    while not server._closed and time.monotonic() < deadline:
        try:
            sock.sendall(chunk)
        except socket.timeout:
            continue
        except OSError:
            break
        sent += len(chunk)
    return sent


def matching_records(records: Iterable[Any], *needles: str) -> List[str]:
    """Log messages (formatted) that contain every one of ``needles``."""
    found = []
    for record in records:
        message = record.getMessage()
        if all(needle in message for needle in needles):
            found.append(message)
    return found


def executions_by_unique(workers: Iterable[WorkerProcess]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for worker in workers:
        for unique in worker.executions():
            counts[unique] = counts.get(unique, 0) + 1
    return counts
