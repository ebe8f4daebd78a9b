"""The asyncio classes over TLS through stunnel, with the TLS context the blocking
connection builds: verified server, refused unverifiable server, client
certificates, and no fallback to plain TCP."""
from __future__ import annotations

from typing import Any

import pytest

from gearman.aio import AsyncGearmanAdminClient, AsyncGearmanClient
from gearman.testing import StunnelProcess, make_test_certificates

from aio_support import WAIT, Ticker, async_worker, reverse, run

pytestmark = pytest.mark.gearmand


@pytest.fixture
def certs(tmp_path):
    return make_test_certificates(str(tmp_path))


def tls_host(tunnel: Any, ca_certs: Any, **extra: Any) -> dict:
    return dict({"host": "localhost", "port": tunnel.port, "ca_certs": ca_certs}, **extra)


def test_client_worker_and_admin_over_tls(gearmand, certs):
    with StunnelProcess(gearmand.port, certs) as tunnel:
        host = tls_host(tunnel, certs["ca_cert"])

        async def scenario() -> None:
            with Ticker() as ticker:
                async with async_worker([host], {"reverse": reverse}, concurrency=2), \
                        AsyncGearmanClient([host]) as client:
                    assert client.connection_list[0].tls
                    request = await client.submit_job("reverse", "over tls", poll_timeout=WAIT)
                    assert request.result == b"slt revo"
                    big = bytes(range(256)) * 4096  # 1 MiB through the TLS transport
                    request = await client.submit_job("reverse", big, poll_timeout=WAIT)
                    assert request.result == big[::-1]
                async with AsyncGearmanAdminClient([host]) as admin:
                    assert await admin.get_version()
            assert ticker.longest < 0.5

        run(scenario())


def test_unverifiable_server_and_missing_client_certificate_fail_the_connection(
        gearmand, certs, tmp_path):
    other = make_test_certificates(str(tmp_path / "other"))

    async def submit(host: Any) -> Any:
        async with AsyncGearmanClient([host]) as client:
            return await client.submit_job("reverse", "x", poll_timeout=5)

    with StunnelProcess(gearmand.port, certs) as tunnel:
        refused = run(submit(tls_host(tunnel, other["ca_cert"])))
        assert refused.connection_failed and not refused.complete
    with StunnelProcess(gearmand.port, certs, require_client_cert=True) as tunnel:
        bare = tls_host(tunnel, certs["ca_cert"])
        refused = run(submit(bare))
        assert refused.connection_failed and not refused.complete
        full = dict(bare, certfile=certs["client_cert"], keyfile=certs["client_key"])

        async def served() -> None:
            async with async_worker([full], {"reverse": reverse}), \
                    AsyncGearmanClient([full]) as client:
                request = await client.submit_job("reverse", "abc", poll_timeout=WAIT)
                assert request.result == b"cba"

        run(served())


def test_tls_dict_never_falls_back_to_plain_tcp(gearmand):
    async def scenario() -> None:
        host = {"host": "127.0.0.1", "port": gearmand.port, "ca_certs": None}
        async with AsyncGearmanClient([host], connect_timeout=3) as client:
            assert client.connection_list[0].tls
            request = await client.submit_job("reverse", "x", poll_timeout=5)
            assert request.connection_failed

    run(scenario())
