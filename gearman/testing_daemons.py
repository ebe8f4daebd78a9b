"""The processes behind :mod:`gearman.testing`: a private gearmand (and a stunnel
in front of it for TLS) on a free loopback port, and test certificates.

Kept apart from the pytest plugin module so that loading the plugin costs an
application's test run nothing until a test asks for a gearmand.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from gearman.testing import find_gearmand

LIST_COMMANDS = frozenset(
    ["status", "workers", "show jobs", "show unique jobs", "prioritystatus"])


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port the kernel considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _admin(host: str, port: int, command: str, timeout: float) -> str:
    """Send one text admin command; return the raw reply."""
    is_list = command.strip().lower() in LIST_COMMANDS
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(command.encode("utf-8") + b"\r\n")
        buf = b""
        while True:
            if is_list and not buf.startswith(b"ERR "):
                if buf == b".\n" or buf.endswith(b"\n.\n"):
                    break
            elif b"\n" in buf:
                break
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed after {buf!r}")
            buf += chunk
    return buf.decode("utf-8", "replace")


def _tail(paths: Sequence[Optional[str]], limit: int = 3000) -> str:
    """Return the last bytes of the given (log) files, for error messages."""
    parts = []
    for path in paths:
        if path and os.path.exists(path):
            with open(path, "rb") as fh:
                fh.seek(max(0, os.path.getsize(path) - limit))
                text = fh.read().decode("utf-8", "replace").strip()
            parts.append(f"--- {path} ---\n{text}")
    return "\n".join(parts) or "(no log output)"


class _PortTaken(RuntimeError):
    """Something other than our process answers on the chosen port."""


class _Daemon:
    """Bookkeeping shared by GearmandProcess and StunnelProcess."""

    host = "127.0.0.1"

    def __init__(self, port: int | None) -> None:
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port(self.host)
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._keep_dir = bool(os.environ.get("GEARMAN_TEST_KEEP_LOGS"))

    @property
    def address(self) -> str:
        """``host:port`` string for clients."""
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address} pid={self.pid}>"

    def _popen(self, args: List[str], output: str) -> None:
        assert self._dir is not None
        with open(os.path.join(self._dir, output), "ab") as out:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self._dir, start_new_session=True)
        self.pid = self._proc.pid

    def is_running(self) -> bool:
        """True while our process exists (even when paused)."""
        return self._proc is not None and self._proc.poll() is None

    def _reap(self, sig: int, timeout: float = 5.0) -> None:
        """Send sig (plus SIGCONT, in case it is paused), wait; SIGKILL if stuck."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)
        if sig != signal.SIGKILL:
            os.kill(proc.pid, signal.SIGCONT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate (SIGTERM, then SIGKILL) and remove the private dir; idempotent."""
        self._reap(signal.SIGTERM, timeout)
        if self._dir is not None and not self._keep_dir:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def start(self, timeout: float = 10.0) -> Any:  # pragma: no cover
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class GearmandProcess(_Daemon):
    """A private gearmand subprocess on a (free) local port."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1",
                 extra_args: Sequence[str] = (), workdir: str | None = None,
                 threads: int | None = None, verbose: str = "INFO") -> None:
        self.host = host
        self.verbose = verbose  # gearmand's log level (INFO: a line per job)
        super().__init__(port)
        self.extra_args = list(extra_args)
        self.workdir = workdir
        self.threads = threads
        self.log_path: str | None = None
        self._keep_dir = self._keep_dir or workdir is not None

    def _spawn(self) -> None:
        if self._dir is None or not os.path.isdir(self._dir):
            self._dir = tempfile.mkdtemp(prefix="gearmand-", dir=self.workdir)
        self.log_path = os.path.join(self._dir, "gearmand.log")
        args = [find_gearmand(), f"--listen={self.host}", f"--port={self.port}",
                f"--pid-file={os.path.join(self._dir, 'gearmand.pid')}",
                f"--log-file={self.log_path}", f"--verbose={self.verbose}"]
        if not any(a.startswith("--config-file") for a in self.extra_args):
            conf = os.path.join(self._dir, "gearmand.conf")  # not /etc/gearmand.conf
            open(conf, "a").close()
            args.append(f"--config-file={conf}")
        if self.threads is not None:
            args.append(f"--threads={self.threads}")
        self._popen(args + self.extra_args, "gearmand.out")

    def _log_tail(self) -> str:
        out = os.path.join(self._dir, "gearmand.out") if self._dir else None
        return _tail([self.log_path, out])

    def _wait_ready(self, deadline: float) -> None:
        """Wait until *our* gearmand answers ``getpid`` on self.port."""
        while self._proc is not None:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(f"gearmand exited with status {code} before "
                                   f"answering on {self.address}\n{self._log_tail()}")
            try:
                reply: str | None = _admin(self.host, self.port, "getpid", 0.5)
            except ConnectionRefusedError:
                reply = None
            except OSError as exc:  # connected, yet no answer: whose socket is it?
                listening = f"Listening on {self.host}:{self.port}" in self._log_tail()
                reply = None if listening else f"no reply ({exc!r})"
            if reply is not None:
                if reply.strip() == f"OK {self.pid}":
                    return
                raise _PortTaken(f"port {self.port} answered {reply.strip()!r}, not our "
                                 f"gearmand (pid {self.pid})\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gearmand (pid {self.pid}) did not answer on "
                                   f"{self.address} in time\n{self._log_tail()}")
            time.sleep(0.02)

    def _launch(self, timeout: float, move_port: bool) -> GearmandProcess:
        """Spawn until our gearmand answers; on a taken port move or retry."""
        deadline = time.monotonic() + timeout
        while True:
            self._spawn()
            try:
                self._wait_ready(deadline)
                return self
            except _PortTaken:
                self._reap(signal.SIGKILL)
                if (self._fixed_port and move_port) or time.monotonic() > deadline:
                    self.stop()
                    raise
                if move_port:
                    self.port = free_port(self.host)
                else:  # restart: wait for the old/foreign listener to go away
                    time.sleep(0.1)
            except BaseException:
                self.stop()
                raise

    def start(self, timeout: float = 10.0) -> GearmandProcess:
        """Launch gearmand and wait until it answers; return self."""
        return self if self.is_running() else self._launch(timeout, move_port=True)

    def restart(self, timeout: float = 10.0) -> GearmandProcess:
        """Start again on the same port (after stop/kill); return self."""
        self._reap(signal.SIGTERM)
        return self._launch(timeout, move_port=False)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send sig; for SIGKILL/SIGTERM also wait for the process to exit."""
        if not self.is_running():
            return
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self._reap(sig)
        else:
            assert self._proc is not None
            os.kill(self._proc.pid, sig)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections queue but get no answer."""
        self.kill(signal.SIGSTOP)

    def resume(self) -> None:
        """Continue a paused server (SIGCONT)."""
        self.kill(signal.SIGCONT)

    def admin(self, command: str, timeout: float = 5.0) -> str:
        """Send a text admin command (e.g. ``status``) and return the raw reply."""
        return _admin(self.host, self.port, command, timeout)


def _openssl(*args: str, cwd: str) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed:\n"
                           f"{proc.stdout.decode('utf-8', 'replace')}")


_CERT_CONF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def make_test_certificates(directory: str, hostname: str = "localhost") -> Dict[str, str]:
    """Create a test CA plus server and client certificates with openssl."""
    os.makedirs(directory, exist_ok=True)
    names = ["DNS:" + n for n in dict.fromkeys([hostname, "localhost"])]
    conf = os.path.join(directory, "openssl-test.cnf")
    with open(conf, "w") as fh:
        fh.write(_CERT_CONF.format(san=", ".join(names + ["IP:127.0.0.1"])))
    common = ["-config", conf, "-sha256", "-newkey", "rsa:2048", "-nodes"]
    _openssl("req", "-x509", *common, "-days", "2", "-subj", "/CN=gearman test CA",
             "-extensions", "ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=directory)
    for role, cn in (("server", hostname), ("client", "gearman test client")):
        _openssl("req", "-new", *common, "-subj", f"/CN={cn}",
                 "-keyout", f"{role}.key", "-out", f"{role}.csr", cwd=directory)
        _openssl("x509", "-req", "-in", f"{role}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-set_serial", str(random.getrandbits(63)), "-days", "2", "-sha256",
                 "-extfile", conf, "-extensions", role, "-out", f"{role}.pem", cwd=directory)
    def path(name: str) -> str:
        return os.path.join(directory, name)

    return {"ca_cert": path("ca.pem"), "server_cert": path("server.pem"),
            "server_key": path("server.key"), "client_cert": path("client.pem"),
            "client_key": path("client.key")}


class StunnelProcess(_Daemon):
    """A stunnel TLS terminator forwarding 127.0.0.1:port to a gearmand port."""

    def __init__(self, backend_port: int, certs: Dict[str, str],
                 require_client_cert: bool = False, port: int | None = None) -> None:
        super().__init__(port)
        self.backend_port = backend_port
        self.certs = certs
        self.require_client_cert = require_client_cert

    def _spawn(self, binary: str) -> None:
        self._dir = tempfile.mkdtemp(prefix="stunnel-")
        lines = ["foreground = yes", f"pid = {os.path.join(self._dir, 'stunnel.pid')}",
                 "debug = info", "[gearman]", f"accept = {self.host}:{self.port}",
                 f"connect = 127.0.0.1:{self.backend_port}",
                 f"cert = {self.certs['server_cert']}", f"key = {self.certs['server_key']}"]
        if self.require_client_cert:
            lines += [f"CAfile = {self.certs['ca_cert']}", "verify = 2"]
        conf = os.path.join(self._dir, "stunnel.conf")
        with open(conf, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        self._popen([binary, conf], "stunnel.log")

    def start(self, timeout: float = 10.0) -> StunnelProcess:
        """Launch stunnel and wait until its port accepts connections."""
        binary = shutil.which("stunnel4") or shutil.which("stunnel")
        if binary is None:
            raise RuntimeError("stunnel not found; install the Debian package stunnel4 "
                               "(apt-get install stunnel4)")
        deadline = time.monotonic() + timeout
        self._spawn(binary)
        while self._proc is not None and self._dir is not None:
            log = _tail([os.path.join(self._dir, "stunnel.log")])
            if self._proc.poll() is not None:
                self.stop()
                if "Address already in use" not in log or self._fixed_port:
                    raise RuntimeError(f"stunnel exited early\n{log}")
                self.port = free_port()
                self._spawn(binary)
            elif "Accepting new connections" in log or "bound to" in log:
                try:
                    socket.create_connection((self.host, self.port), 0.5).close()
                    return self
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"stunnel did not listen on {self.address}\n{log}")
            time.sleep(0.02)
        raise RuntimeError("stunnel was stopped while starting")
