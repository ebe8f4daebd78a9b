"""Tests of gearman.testing against a real gearmand (and stunnel)."""
from __future__ import annotations

import os
import signal
import socket
import ssl
from typing import Callable, Dict, Optional, Tuple

import pytest

import gearman.testing as gt
from gearman.testing import (
    GearmandNotFound, GearmandProcess, StunnelProcess, find_gearmand,
    make_test_certificates,
)

pytestmark = pytest.mark.gearmand


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_start_answers_with_our_pid(gearmand: GearmandProcess) -> None:
    assert gearmand.is_running()
    assert gearmand.admin("getpid") == f"OK {gearmand.pid}\n"
    assert gearmand.address == f"127.0.0.1:{gearmand.port}"
    assert gearmand.log_path and os.path.exists(gearmand.log_path)


def test_admin_list_and_line_commands(gearmand_session: GearmandProcess) -> None:
    assert gearmand_session.admin("status") == ".\n"
    assert gearmand_session.admin("workers").endswith("\n.\n")
    assert gearmand_session.admin("version").startswith("OK 1.1")
    assert gearmand_session.admin("bogus").startswith("ERR UNKNOWN_COMMAND")


def test_two_servers_get_different_ports(
        gearmand_factory: Callable[..., GearmandProcess]) -> None:
    one, two = gearmand_factory(), gearmand_factory(threads=1)
    assert one.port != two.port and one.pid != two.pid
    assert one.admin("getpid") == f"OK {one.pid}\n"
    assert two.admin("getpid") == f"OK {two.pid}\n"


def test_stop_removes_process_and_is_idempotent() -> None:
    server = GearmandProcess().start()
    pid, log = server.pid, server.log_path
    assert pid is not None and log is not None
    server.stop()
    assert _gone(pid) and not server.is_running()
    assert not os.path.exists(os.path.dirname(log))
    server.stop()


def test_context_manager_and_fixed_port() -> None:
    port = gt.free_port()
    with GearmandProcess(port=port) as server:
        assert server.port == port
        assert server.admin("getpid") == f"OK {server.pid}\n"
    assert server.pid is not None and _gone(server.pid)


def test_kill_then_restart_on_same_port(gearmand: GearmandProcess) -> None:
    port, old_pid = gearmand.port, gearmand.pid
    assert old_pid is not None
    gearmand.kill(signal.SIGKILL)
    assert _gone(old_pid) and not gearmand.is_running()
    with pytest.raises(OSError):
        gearmand.admin("getpid", timeout=1.0)
    gearmand.restart()
    assert gearmand.port == port and gearmand.pid != old_pid
    assert gearmand.admin("getpid") == f"OK {gearmand.pid}\n"


def test_pause_and_resume(gearmand: GearmandProcess) -> None:
    gearmand.pause()
    try:
        with pytest.raises(socket.timeout):
            gearmand.admin("getpid", timeout=0.3)
    finally:
        gearmand.resume()
    assert gearmand.admin("getpid") == f"OK {gearmand.pid}\n"


def test_fixed_port_taken_by_other_server_is_an_error(gearmand: GearmandProcess) -> None:
    intruder = GearmandProcess(port=gearmand.port)
    with pytest.raises(RuntimeError, match="not our gearmand"):
        intruder.start(timeout=5.0)
    assert not intruder.is_running()
    assert gearmand.admin("getpid") == f"OK {gearmand.pid}\n"


def test_fixed_port_held_by_silent_listener_is_an_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = GearmandProcess(port=busy.getsockname()[1])
        with pytest.raises(RuntimeError, match="not our gearmand"):
            server.start(timeout=5.0)
        assert not server.is_running()


def test_automatic_port_retries_when_taken(gearmand: GearmandProcess,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from gearman import testing_daemons
    real_free_port = gt.free_port
    ports = iter([gearmand.port])
    monkeypatch.setattr(testing_daemons, "free_port", lambda host="127.0.0.1": next(ports, None)
                        or real_free_port(host))
    with GearmandProcess() as server:
        assert server.port != gearmand.port
        assert server.admin("getpid") == f"OK {server.pid}\n"


def test_gearmand_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEARMAND", "/nonexistent")
    with pytest.raises(GearmandNotFound) as info:
        find_gearmand()
    assert "gearman-job-server" in str(info.value)
    assert "apt-get install gearman-job-server" in str(info.value)
    # A missing gearmand fails the test with the install hint, in CI and outside it:
    # a skip would hide every test that needs the real server.
    for ci in ("true", "false", None):
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        with pytest.raises(pytest.fail.Exception, match="apt-get install gearman-job-server"):
            gt.require_gearmand()


# ------------------------------------------------------------------------ TLS
@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    return make_test_certificates(str(tmp_path_factory.mktemp("certs")))


def _tls_version(port: int, ca: str, client: Optional[Tuple[str, str]] = None) -> bytes:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.verify_flags |= getattr(ssl, "VERIFY_X509_STRICT", 0)
    if client:
        ctx.load_cert_chain(*client)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"version\r\n")
            return tls.recv(1024)


def test_tls_round_trip(gearmand: GearmandProcess, certs: Dict[str, str]) -> None:
    with StunnelProcess(gearmand.port, certs) as tunnel:
        assert tunnel.address == f"127.0.0.1:{tunnel.port}"
        assert _tls_version(tunnel.port, certs["ca_cert"]).startswith(b"OK 1.1")
    assert tunnel.pid is not None and _gone(tunnel.pid)


def test_tls_requires_client_certificate(gearmand: GearmandProcess,
                                         certs: Dict[str, str]) -> None:
    with StunnelProcess(gearmand.port, certs, require_client_cert=True) as tunnel:
        try:  # TLS 1.2 fails in the handshake; TLS 1.3 on the first read
            reply = _tls_version(tunnel.port, certs["ca_cert"])
        except (ssl.SSLError, ConnectionError):
            reply = b""
        assert reply == b""
        client = (certs["client_cert"], certs["client_key"])
        assert _tls_version(tunnel.port, certs["ca_cert"], client).startswith(b"OK 1.1")
