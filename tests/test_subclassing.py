"""python-gearman 2.x subclasses keep working: overrides with the 2.x signatures."""
from __future__ import annotations

import threading

import pytest

import gearman
from gearman.job import GearmanJob, GearmanJobRequest
from gearman.testing import free_port

pytestmark = pytest.mark.gearmand


class LegacyJob(GearmanJob):
    def __init__(self, connection, handle, task, unique, data):  # 2.x: five arguments
        super().__init__(connection, handle, task, unique, data)
        self.created_by = "legacy"


class LegacyClient(gearman.GearmanClient):
    job_class = LegacyJob

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.errors, self.sent = [], []

    def handle_error(self, current_connection):  # 2.x: one argument
        self.errors.append(current_connection.address)
        return super().handle_error(current_connection)

    def send_job_request(self, current_request):  # 2.x: one argument
        self.sent.append(current_request.job.unique)
        return super().send_job_request(current_request)

    def establish_request_connection(self, current_request):
        return super().establish_request_connection(current_request)


class LegacyWorker(gearman.GearmanWorker):
    def create_job(self, command_handler, job_handle, task, unique, data):
        job = super().create_job(command_handler, job_handle, task, unique, data)
        job.seen_data = data  # 2.x passed data already decoded; tags are allowed
        return job

    def handle_error(self, current_connection):
        return super().handle_error(current_connection)


def test_legacy_overrides_round_trip(gearmand):
    worker = LegacyWorker([gearmand.address])
    worker.register_task("echo", lambda worker, job: job.seen_data)
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 0.5}, daemon=True)
    thread.start()
    try:
        client = LegacyClient([gearmand.address])
        request = client.submit_job("echo", "hello", unique="u-1", poll_timeout=10)
        assert request.result == b"hello"
        assert client.sent == ["u-1"]
        assert request.job.created_by == "legacy"
        request.tag = "mine"  # applications may tag requests, as with 2.x objects
        assert isinstance(request, GearmanJobRequest) and request.tag == "mine"
        gearmand.kill()
        lost = client.submit_job("echo", "x", poll_timeout=5)
        assert lost.connection_failed
        assert client.errors == [gearmand.address]
        client.close()
    finally:
        worker.shutdown()
        thread.join(5)


def test_legacy_handle_error_on_a_dead_server_never_raises_type_error():
    client = LegacyClient([f"127.0.0.1:{free_port()}"])
    request = client.submit_job("echo", "x", poll_timeout=1)
    assert request.connection_failed
    client.close()
