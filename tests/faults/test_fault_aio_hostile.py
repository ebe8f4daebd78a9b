"""Hostile bytes from a fake gearmand against the asyncio client: the same inputs as
``test_fault_hostile.py`` (its table, its fake-server scripts and its memory bound).
Each costs that one connection at once: the request fails with
``connection_failed``, the error is logged naming the server, memory stays bounded,
and the event loop keeps turning."""
from __future__ import annotations

import time

import pytest

from gearman.aio import AsyncGearmanClient

from aio_support import Ticker, run
from faultkit import FakeServer, matching_records, wait_for
from test_fault_hostile import (DROPPING_INPUTS, TIMEOUT, logs, memory_bound,  # noqa: F401
                                serve)

pytestmark = pytest.mark.gearmand


@pytest.mark.parametrize("name", sorted(DROPPING_INPUTS))
def test_async_client_drops_the_connection(name, logs):  # noqa: F811
    then, command = DROPPING_INPUTS[name]
    fake = FakeServer(serve(then))

    async def scenario() -> None:
        with Ticker() as ticker:
            async with AsyncGearmanClient([fake.address]) as client:
                start = time.monotonic()
                request = await client.submit_job("f", b"data", poll_timeout=TIMEOUT)
                elapsed = time.monotonic() - start
                assert request.connection_failed and not request.complete, request
                assert elapsed < TIMEOUT, f"dropped only after {elapsed:.2f}s"
                assert not client.connection_list[0].connected
        assert ticker.longest < 0.5, ticker.longest

    try:
        run(scenario())
        needles = [fake.address] + ([command] if command else [])
        assert matching_records(logs.records, *needles), [r.getMessage() for r in logs.records]
        assert wait_for(lambda: fake.disconnects == 1, 5)  # the library closed its socket
    finally:
        fake.close()
