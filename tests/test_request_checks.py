"""The request checks (gearman/request_checks.py) and the request fate
(gearman/request_fate.py): driver-free, so tested without any server.

Defect 5 of issue 12: an argument the library cannot honour (``when=`` with
``reducer=``, ``reducer=`` with a priority, unique ids over 63 bytes) was
dropped silently; each is now a ValueError/TypeError before anything is sent.
"""
from __future__ import annotations

from typing import Any, List

import pytest

import gearman
from gearman import request_fate
from gearman.constants import (JOB_COMPLETE, JOB_CREATED, JOB_FAILED, JOB_PENDING, JOB_UNKNOWN,
                               PRIORITY_HIGH, PRIORITY_LOW)
from gearman.job import GearmanJob, GearmanJobRequest
from gearman.request_checks import RequestMaker, check_random_unique_bytes
from gearman.testing import free_port


class NeverConnected(gearman.GearmanClient):
    """A client whose every connect is recorded (and refused): checks come first."""

    connects: List[str] = []

    def establish_connection(self, connection: Any, timeout: Any = None) -> bool:
        NeverConnected.connects.append(connection.address)
        return False


@pytest.fixture
def client() -> Any:
    NeverConnected.connects = []
    made = NeverConnected([f"127.0.0.1:{free_port()}"])
    yield made
    made.close()
    assert NeverConnected.connects == [], "a check came after a connect"


@pytest.mark.parametrize("kwargs, words", [
    (dict(background=True, when=1893456000, reducer="sum"), ["when", "reducer"]),
    (dict(reducer="sum", priority=PRIORITY_HIGH), ["reducer", "priority", "HIGH"]),
    (dict(reducer="sum", priority=PRIORITY_LOW), ["reducer", "priority", "LOW"]),
    (dict(background=True, reducer="sum", priority=PRIORITY_HIGH), ["reducer", "priority"]),
])
def test_arguments_a_packet_cannot_carry_are_refused_before_sending(
        client: Any, kwargs: Any, words: List[str]) -> None:
    with pytest.raises(ValueError) as info:
        client.submit_job("t", b"d", **kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("size, error", [
    (32, ValueError), (40, ValueError), (0, ValueError), (-1, ValueError),
    (1.5, TypeError), ("16", TypeError), (True, TypeError), (None, TypeError),
])
def test_random_unique_bytes_that_would_break_the_limit_fail_at_construction(
        size: Any, error: Any) -> None:
    with pytest.raises(error, match="random_unique_bytes"):
        gearman.GearmanClient([f"127.0.0.1:{free_port()}"], random_unique_bytes=size)


def test_random_unique_ids_of_the_largest_size_fit_gearmand() -> None:
    maker = RequestMaker(check_random_unique_bytes(31))
    assert {len(maker.random_unique()) for _ in range(100)} == {62}
    assert len(RequestMaker(1).random_unique()) == 2


def test_reducer_and_when_alone_still_reach_the_job() -> None:
    maker = RequestMaker()
    encode = gearman.GearmanClient.data_encoder.encode
    reduce = maker.make({"task": "t", "data": b"d", "reducer": b"sum"}, 0, False, 0,
                        GearmanJob, GearmanJobRequest, encode)
    epoch = maker.make({"task": "t", "data": b"d", "when": 5}, 0, True, 0, GearmanJob,
                       GearmanJobRequest, encode)
    assert (reduce.job.reducer, reduce.job.when) == ("sum", None)
    assert (epoch.job.when, epoch.job.reducer) == (5, None)


# -- the request fate ------------------------------------------------------------------------

def request(background: bool = False, attempts: int = 1, tries: int = 2) -> GearmanJobRequest:
    made = GearmanJobRequest(GearmanJob(None, None, "t", "u", b"d"), background=background,
                             max_attempts=tries)
    made.connection_attempts = attempts
    made.state = JOB_PENDING
    return made


@pytest.mark.parametrize("background, attempts, tries, expected", [
    (False, 1, 1, request_fate.FAILED),  # max_retries=0: the only try is gone
    (False, 1, 2, request_fate.RETRY),
    (False, 2, 2, request_fate.FAILED),
    (True, 1, 2, request_fate.RETRY),  # a background job not yet accepted
])
def test_a_lost_request_is_retried_while_it_has_tries(background: bool, attempts: int,
                                                      tries: int, expected: str) -> None:
    lost = request(background, attempts, tries)
    assert request_fate.lose(lost) == expected
    assert lost.state == JOB_UNKNOWN
    assert lost.connection_failed is (expected == request_fate.FAILED)
    assert request_fate.is_retry_due(lost) is (expected == request_fate.RETRY)
    assert lost.finished is (expected == request_fate.FAILED)
    assert request_fate.is_answered(lost) is (expected == request_fate.FAILED)
    assert request_fate.lose(lost) == request_fate.DONE  # a loss counts once


def test_an_accepted_background_job_outlives_its_connection() -> None:
    accepted = request(background=True)
    accepted.state = JOB_CREATED
    assert request_fate.decide(accepted, request_fate.CONNECTION_LOST) == request_fate.DONE
    assert request_fate.lose(accepted) == request_fate.DONE and accepted.complete


def test_a_retry_keeps_its_attempts_and_the_server_that_dropped_it() -> None:
    lost = request(attempts=1, tries=3)
    lost.job.connection = dropped_by = object()
    lost.job.handle = "H:1"
    assert request_fate.lose(lost) == request_fate.RETRY
    request_fate.prepare_retry(lost)
    assert (lost.connection_attempts, lost.job.connection, lost.job.handle) == (1, dropped_by,
                                                                                None)
    request_fate.close(lost)  # the client was shut down before the retry went out
    assert lost.connection_failed and lost.finished


@pytest.mark.parametrize("state, background, complete", [
    (JOB_COMPLETE, False, True), (JOB_FAILED, False, True), (JOB_CREATED, False, False),
    (JOB_CREATED, True, True), (JOB_PENDING, True, False), (JOB_UNKNOWN, False, False),
])
def test_complete_is_the_fates_answer(state: str, background: bool, complete: bool) -> None:
    made = request(background)
    made.state = state
    assert made.complete is complete is request_fate.is_complete(made)
    assert request_fate.decide(made, request_fate.REFUSED) == request_fate.FAILED
    assert request_fate.decide(made, request_fate.COMPLETED) == request_fate.DONE
