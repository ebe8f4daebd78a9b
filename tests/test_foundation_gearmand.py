"""The foundation against a real gearmand: ECHO round trip, and TLS through stunnel."""
from __future__ import annotations

import threading

import pytest

import gearman
from gearman.testing import StunnelProcess, make_test_certificates

pytestmark = pytest.mark.gearmand


def test_echo_round_trip_against_real_gearmand(gearmand):
    client = gearman.GearmanClient([gearmand.address])
    try:
        payload = b"\0binary\0echo" + bytes(range(256))
        assert client.echo(payload) == payload
    finally:
        client.close()


@pytest.fixture
def reverse_worker(gearmand):
    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("reverse", lambda job: job.data[::-1])
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 1.0}, daemon=True)
    thread.start()
    yield worker
    worker.shutdown()
    thread.join(5)


@pytest.fixture
def tls_setup(tmp_path, gearmand):
    certs = make_test_certificates(str(tmp_path))
    return certs


def test_tls_client_through_stunnel(gearmand, reverse_worker, tls_setup):
    certs = tls_setup
    with StunnelProcess(gearmand.port, certs) as tunnel:
        host = {"host": "localhost", "port": tunnel.port, "ca_certs": certs["ca_cert"]}
        with gearman.GearmanClient([host]) as client:
            request = client.submit_job("reverse", "over tls", poll_timeout=10)
            assert request.complete and request.result == b"slt revo"


def test_tls_refuses_a_server_it_cannot_verify(gearmand, tls_setup, tmp_path):
    certs = tls_setup
    other = make_test_certificates(str(tmp_path / "other"))
    with StunnelProcess(gearmand.port, certs) as tunnel:
        host = {"host": "localhost", "port": tunnel.port, "ca_certs": other["ca_cert"]}
        with gearman.GearmanClient([host]) as client:
            request = client.submit_job("reverse", "x", poll_timeout=5)
            assert request.connection_failed and not request.complete


def test_tls_client_certificate_required(gearmand, reverse_worker, tls_setup):
    certs = tls_setup
    with StunnelProcess(gearmand.port, certs, require_client_cert=True) as tunnel:
        bare = {"host": "localhost", "port": tunnel.port, "ca_certs": certs["ca_cert"]}
        with gearman.GearmanClient([bare]) as client:
            refused = client.submit_job("reverse", "x", poll_timeout=5)
            assert refused.connection_failed and not refused.complete
        full = dict(bare, certfile=certs["client_cert"], keyfile=certs["client_key"])
        with gearman.GearmanClient([full]) as client:
            request = client.submit_job("reverse", "abc", poll_timeout=10)
            assert request.result == b"cba"


def test_tls_dict_never_falls_back_to_plain_tcp(gearmand):
    # The dict form against a plain gearmand: the TLS handshake fails, the job is not sent.
    host = {"host": "127.0.0.1", "port": gearmand.port, "ca_certs": None}
    with gearman.GearmanClient([host]) as client:
        assert client.connection_list[0].tls
        request = client.submit_job("reverse", "x", poll_timeout=5)
        assert request.connection_failed
