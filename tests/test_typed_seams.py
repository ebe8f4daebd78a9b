"""The typed seams: public signatures name real types, and each role is what its
handlers may ask of it (mypy checks that statically: see ``_seam_check`` in client.py,
worker.py and admin_client.py; here at run time with the protocols' member lists)."""
from __future__ import annotations

import inspect
import typing
from typing import Any, Iterator, List, Tuple

import pytest

import gearman
from gearman import seams
from gearman.command_handler import GearmanCommandHandler
from gearman.connection import GearmanConnection
from gearman.connection_manager import GearmanConnectionManager
from gearman.encoders import DataEncoder
from gearman.job import GearmanJob, GearmanJobRequest

#: Where ``Any`` is the honest type: payloads (an encoder decides them), host_list
#: items (many forms, checked by parse_host) and the job dicts that carry payloads.
PAYLOAD_OR_HOST = {"data", "job_result", "result", "host_list", "server", "host",
                   "jobs_to_submit", "job_info", "callback_function", "decodable_string",
                   "encodable_object"}

#: Members whose value is a payload or a collection of payloads.
PAYLOAD_MEMBERS = {"data_updates", "warning_updates"}

CLASSES = [gearman.GearmanClient, gearman.GearmanWorker, gearman.GearmanAdminClient,
           GearmanJob, GearmanJobRequest]


def mentions_any(hint: Any) -> bool:
    if hint is Any:
        return True
    return any(mentions_any(arg) for arg in typing.get_args(hint))


def public_members(cls: type) -> Iterator[Tuple[str, Any]]:
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(member, property):
            yield name, member.fget
        elif inspect.isfunction(member):
            yield name, member


def any_in_signatures(cls: type) -> List[str]:
    found = []
    for name, function in public_members(cls):
        if function is None or function.__module__.split(".")[0] != "gearman":
            continue
        for arg, hint in typing.get_type_hints(function).items():
            if arg == "return" and name in PAYLOAD_MEMBERS:
                continue
            if mentions_any(hint) and arg not in PAYLOAD_OR_HOST:
                found.append(f"{cls.__name__}.{name}({arg})")
    return found


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_public_signatures_name_real_types(cls: type) -> None:
    # The worker's constructor options are spelled out by the concurrency work.
    allowed = {"GearmanWorker.__init__(options)"}
    assert [name for name in any_in_signatures(cls) if name not in allowed] == []


@pytest.mark.parametrize("attribute, expected", [
    ("command_handler_class", GearmanCommandHandler), ("connection_class", GearmanConnection),
    ("job_class", GearmanJob), ("job_request_class", GearmanJobRequest),
    ("data_encoder", DataEncoder),
])
def test_class_attributes_are_types(attribute: str, expected: type) -> None:
    hints = typing.get_type_hints(GearmanConnectionManager)
    assert hints[attribute] == typing.Type[expected]


def protocol_members(protocol: type) -> List[str]:
    names = set()
    for klass in protocol.__mro__:
        if klass in (object, typing.Generic) or klass.__name__ == "Protocol":
            continue
        names.update(name for name in vars(klass) if not name.startswith("_"))
    return sorted(names)


@pytest.mark.parametrize("role, protocol", [
    (gearman.GearmanClient, seams.ClientOwner),
    (gearman.GearmanWorker, seams.WorkerOwner),
    (gearman.GearmanAdminClient, seams.AdminOwner),
    (GearmanConnection, seams.Connection),
])
def test_each_role_has_what_its_seam_promises(role: type, protocol: type) -> None:
    missing = [name for name in protocol_members(protocol) if not hasattr(role, name)
               and name not in getattr(role, "__slots__", ())
               and name not in ("gearman_host", "gearman_port", "connected")]
    assert missing == []
