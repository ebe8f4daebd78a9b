"""One implementation, two drivers: the modules both drivers share do no I/O, and
the asyncio front end reuses the blocking classes' handlers, rules and job objects
instead of having its own."""
from __future__ import annotations

import pathlib

import pytest

import gearman
import gearman.aio
from gearman import admin_client, client, worker
from gearman.aio import AsyncGearmanAdminClient, AsyncGearmanClient, AsyncGearmanWorker

from test_layering import imported_modules
from test_layering import test_sans_io_modules_import_no_io as check_imports_no_io

PACKAGE = pathlib.Path(gearman.__file__).resolve().parent
SHARED = ["connection_state.py", "manager_core.py", "client_rules.py", "worker_rules.py",
          "admin_commands.py", "server_pool.py", "request_fate.py", "request_checks.py"]


@pytest.mark.parametrize("module", SHARED)
def test_shared_modules_import_no_io(module):
    check_imports_no_io(module)


def test_only_the_aio_package_imports_asyncio():
    users = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
             if "asyncio" in imported_modules(path)}
    assert users and all(name.startswith("aio/") for name in users), users


def test_the_async_classes_share_handlers_rules_and_objects():
    pairs = [(client.GearmanClient, AsyncGearmanClient),
             (worker.GearmanWorker, AsyncGearmanWorker),
             (admin_client.GearmanAdminClient, AsyncGearmanAdminClient)]
    for blocking, asynchronous in pairs:
        for attribute in ("command_handler_class", "job_class", "job_request_class",
                          "data_encoder", "closed_error"):
            assert getattr(blocking, attribute) is getattr(asynchronous, attribute), attribute
        shared = set(blocking.__mro__) & set(asynchronous.__mro__) - {object}
        assert any(cls.__module__ in ("gearman.client_rules", "gearman.worker_rules",
                                      "gearman.admin_commands") for cls in shared), shared


def test_the_async_methods_mirror_the_blocking_ones():
    import inspect

    pairs = [(client.GearmanClient, AsyncGearmanClient,
              ["submit_job", "submit_multiple_jobs", "submit_multiple_requests",
               "wait_until_jobs_accepted", "wait_until_jobs_completed", "get_job_status",
               "get_job_statuses", "get_job_status_by_handle", "get_job_status_by_unique",
               "echo"]),
             (admin_client.GearmanAdminClient, AsyncGearmanAdminClient,
              ["ping_server", "get_status", "get_priority_status", "get_version", "get_pid",
               "get_verbose", "get_workers", "get_jobs", "get_unique_jobs", "send_maxqueue",
               "send_shutdown", "cancel_job", "create_function", "drop_function"]),
             (worker.GearmanWorker, AsyncGearmanWorker,
              ["work"])]
    for blocking, asynchronous, names in pairs:
        for name in names:
            method = getattr(asynchronous, name)
            assert inspect.iscoroutinefunction(method), name
            want = list(inspect.signature(getattr(blocking, name)).parameters)
            have = list(inspect.signature(method).parameters)
            assert have == want, (name, have, want)
    assert gearman.aio.__all__


def test_async_public_signatures_name_real_types():
    """As tests/test_typed_seams.py asks of the blocking classes.  The worker's
    senders return an awaitable on the loop and None in a job's thread: ``Any``."""
    from test_typed_seams import any_in_signatures

    allowed = {"AsyncGearmanWorker.__init__(options)",
               "AsyncGearmanAdminClient.establish_admin_connection(return)"} | {
        f"AsyncGearmanWorker.send_job_{kind}(return)"
        for kind in ("data", "warning", "status", "complete", "failure", "exception")}
    found = [name for cls in (AsyncGearmanClient, AsyncGearmanWorker, AsyncGearmanAdminClient)
             for name in any_in_signatures(cls)]
    assert [name for name in found if name not in allowed] == []
