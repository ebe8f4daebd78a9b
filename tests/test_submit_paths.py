"""The short submit paths (gearman/submit_paths.py, GearmanClient._submit_new):
the same results and guarantees as the 2.x path through every layer, and every
2.x override still called where a subclass has one."""
from __future__ import annotations

import threading
import time
from typing import Any, Iterator, List, Optional

import pytest

import gearman
import gearman.client
import gearman.submit_paths
from gearman.constants import JOB_COMPLETE
from gearman.job import GearmanJobRequest
from gearman.testing import GearmandProcess

pytestmark = pytest.mark.gearmand


@pytest.fixture
def echo_worker(gearmand: GearmandProcess) -> Iterator[None]:
    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("echo", lambda job: job.data)
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 0.2}, daemon=True)
    thread.start()
    yield
    worker.shutdown()
    thread.join(10)


class PollCounting(gearman.GearmanClient):
    """Records the timeout of each poll pass (0: the pre-send check)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.polls: List[Optional[float]] = []

    def poll_connections_once(self, connections: Any, timeout: Optional[float] = None) -> bool:
        self.polls.append(timeout)
        return super().poll_connections_once(connections, timeout)


def test_a_server_restarted_while_the_client_was_idle_costs_no_job(
        gearmand: GearmandProcess, echo_worker: None) -> None:
    """The pre-send check stays a guarantee: a close that arrived while the client
    was idle is noticed before the next request is written (max_retries=0)."""
    with gearman.GearmanClient([gearmand.address]) as client:
        assert client.submit_job("echo", b"before", poll_timeout=10).result == b"before"
        gearmand.restart()
        time.sleep(0.2)  # the worker reconnects
        request = client.submit_job("echo", b"after", poll_timeout=10)
        assert request.state == JOB_COMPLETE and request.result == b"after"
        assert not request.connection_failed


def test_the_pre_send_poll_runs_only_for_a_connection_not_heard_from_recently(
        gearmand: GearmandProcess, echo_worker: None, monkeypatch: Any) -> None:
    with PollCounting([gearmand.address]) as client:
        client.submit_job("echo", b"first", poll_timeout=10)
        connection = client.connection_list[0]
        monkeypatch.setattr(gearman.submit_paths, "RECENTLY_HEARD", 3600.0)
        client.polls.clear()
        assert client.submit_job("echo", b"right after", poll_timeout=10).result == b"right after"
        assert 0 not in client.polls  # heard from its server a moment ago: no check
        monkeypatch.setattr(gearman.submit_paths, "RECENTLY_HEARD", 0.001)
        connection.last_received = time.monotonic() - 5  # idle for 5 s
        client.polls.clear()
        assert client.submit_job("echo", b"after a while", poll_timeout=10).result == \
            b"after a while"
        assert client.polls[0] == 0  # idle: checked before writing


def test_a_new_socket_has_not_heard_from_its_server(gearmand: GearmandProcess) -> None:
    with gearman.GearmanClient([gearmand.address]) as client:
        client.echo(b"x")
        connection = client.connection_list[0]
        assert connection.last_received > 0
        connection.close()
        assert client.establish_connection(connection)
        assert connection.last_received == 0.0


def test_submit_job_waits_once_and_overrides_of_the_waits_are_still_called(
        gearmand: GearmandProcess, echo_worker: None) -> None:
    calls: List[str] = []

    class Waits(gearman.GearmanClient):
        def wait_until_jobs_accepted(self, job_requests: Any, poll_timeout: Any = None) -> Any:
            calls.append("accepted")
            return super().wait_until_jobs_accepted(job_requests, poll_timeout)

        def wait_until_jobs_completed(self, job_requests: Any, poll_timeout: Any = None) -> Any:
            calls.append(f"completed {poll_timeout is not None}")
            return super().wait_until_jobs_completed(job_requests, poll_timeout)

    with Waits([gearmand.address]) as client:
        assert client.submit_job("echo", b"one", poll_timeout=10).result == b"one"
        requests = client.submit_multiple_jobs([{"task": "echo", "data": b"two"}],
                                               poll_timeout=10)
        assert requests[0].result == b"two"
    assert calls == ["accepted", "completed True"] * 2


def test_overrides_of_the_batch_methods_see_submit_job(gearmand: GearmandProcess,
                                                       echo_worker: None) -> None:
    seen: List[str] = []

    class Batches(gearman.GearmanClient):
        def submit_multiple_jobs(self, jobs_to_submit: Any, **kwargs: Any) -> Any:
            seen.append("jobs")
            return super().submit_multiple_jobs(jobs_to_submit, **kwargs)

        def submit_multiple_requests(self, job_requests: Any, **kwargs: Any) -> Any:
            seen.append("requests")
            return super().submit_multiple_requests(job_requests, **kwargs)

    with Batches([gearmand.address]) as client:
        assert client.submit_job("echo", b"x", poll_timeout=10).result == b"x"
    assert seen == ["jobs", "requests"]


def test_an_overridden_reset_and_send_are_called_for_each_new_request(
        gearmand: GearmandProcess, echo_worker: None) -> None:
    resets: List[str] = []
    sends: List[str] = []

    class Request(GearmanJobRequest):
        def reset(self) -> None:
            resets.append(self.job.unique)
            super().reset()

    class Sends(gearman.GearmanClient):
        job_request_class = Request

        def send_job_request(self, current_request: Any) -> None:
            sends.append(current_request.job.unique)
            super().send_job_request(current_request)

    with Sends([gearmand.address]) as client:
        jobs = [{"task": "echo", "data": b"%d" % n, "unique": f"u{n}"} for n in range(3)]
        requests = client.submit_multiple_jobs(jobs, poll_timeout=10)
        assert [r.result for r in requests] == [b"0", b"1", b"2"]
        assert client.submit_job("echo", b"3", unique="u3", poll_timeout=10).result == b"3"
    assert resets == sends == ["u0", "u1", "u2", "u3"]


def test_plain_clients_take_every_short_path() -> None:
    from gearman.submit_paths import ShortPaths

    paths = ShortPaths.of(gearman.GearmanClient([]), gearman.GearmanClient)
    assert (paths.submit, paths.batch, paths.send, paths.one_wait, paths.no_reset) == (
        True, True, True, True, True)


def test_overrides_of_the_shared_client_rules_are_called_on_the_short_paths(
        gearmand: GearmandProcess, echo_worker: None) -> None:
    """ClientRules' send and fresh-submission steps (shared with the asyncio client)
    are called for each new request when a subclass overrides them."""
    calls: List[str] = []

    class Hooks(gearman.GearmanClient):
        def _send_on(self, connection: Any, request: GearmanJobRequest) -> None:
            calls.append("send " + request.job.unique)
            super()._send_on(connection, request)

        @staticmethod
        def _begin_submission(request: GearmanJobRequest) -> None:
            calls.append("begin " + request.job.unique)
            gearman.GearmanClient._begin_submission(request)

    with Hooks([gearmand.address]) as client:
        assert client.submit_job("echo", b"a", unique="ua", poll_timeout=10).result == b"a"
        done = client.submit_multiple_jobs([{"task": "echo", "data": b"b", "unique": "ub"}],
                                           poll_timeout=10)
        assert done[0].result == b"b"
    assert calls == ["begin ua", "send ua", "begin ub", "send ub"]


def test_a_method_replaced_on_the_client_object_is_called_too(gearmand: GearmandProcess,
                                                              echo_worker: None) -> None:
    """Tests and applications patch a client object (client.send_job_request = ...):
    the short paths step aside for that object alone."""
    with gearman.GearmanClient([gearmand.address]) as client, \
            gearman.GearmanClient([gearmand.address]) as plain:
        sent: List[str] = []
        original = client.send_job_request

        def keep(request: Any) -> None:
            sent.append(request.job.unique)
            original(request)

        client.send_job_request = keep  # type: ignore[method-assign]
        client.submit_job("echo", b"a", unique="ua", poll_timeout=10)
        client.submit_multiple_jobs([{"task": "echo", "data": b"b", "unique": "ub"}],
                                    poll_timeout=10)
        assert sent == ["ua", "ub"]
        from gearman.submit_paths import ShortPaths
        assert ShortPaths.of(plain, gearman.GearmanClient).send  # other objects unaffected


def test_an_overridden_create_request_from_dictionary_builds_every_request(
        gearmand: GearmandProcess, echo_worker: None) -> None:
    built: List[Any] = []

    class Tagging(gearman.GearmanClient):  # a 2.x override: tag each request as it is built
        def _create_request_from_dictionary(self, job_info: Any, background: bool = False,
                                            max_retries: int = 0, index: int = 0) -> Any:
            request = super()._create_request_from_dictionary(job_info, background,
                                                              max_retries, index)
            request.tag = index
            built.append(job_info["data"])
            return request

    with Tagging([gearmand.address]) as client:
        one = client.submit_job("echo", b"a", poll_timeout=10)
        many = client.submit_multiple_jobs([{"task": "echo", "data": b"b"},
                                            {"task": "echo", "data": b"c"}], poll_timeout=10)
        with pytest.raises(TypeError):  # the batch checks still run first
            client.submit_multiple_jobs({"task": "echo", "data": b"d"})
    assert built == [b"a", b"b", b"c"]
    assert [one.tag] + [r.tag for r in many] == [0, 0, 1]
    assert [r.result for r in [one] + many] == [b"a", b"b", b"c"]
