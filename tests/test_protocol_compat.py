"""python-gearman 2.0.2's module-level protocol names (gearman.protocol_compat,
re-exported from gearman.protocol) and gearman.compat: a 2.x-style script runs
unchanged against a real gearmand; pack and parse meet literal bytes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import gearman.protocol as protocol
from gearman import compat, protocol_compat
from gearman.constants import PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_NONE
from gearman.errors import ProtocolError
from gearman.protocol import Command
from gearman.testing import GearmandProcess

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.gearmand
def test_a_2x_style_script_runs_unchanged_against_gearmand(gearmand: GearmandProcess) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [os.path.dirname(HERE), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "legacy_protocol_script.py"),
                           gearmand.address], capture_output=True, env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines() == [
        "GEARMAN_COMMAND_JOB_CREATED True",
        "status ['legacy'] [b'1']",
        "compat True False 0",
        "header 12 b'\\x00RES'",
    ]


def test_command_numbers_and_tables_are_2_0_2s() -> None:
    numbers = {name: getattr(protocol, name) for name in protocol_compat.__all__
               if name.startswith("GEARMAN_COMMAND_") and name != "GEARMAN_COMMAND_TO_NAME"}
    assert len(numbers) == 34  # 33 commands from 1 to 34 (5 is unused) and TEXT_COMMAND
    assert sorted(numbers.values()) == [n for n in range(1, 35) if n != 5] + [9999]
    assert protocol.GEARMAN_COMMAND_CAN_DO == 1 and protocol.GEARMAN_COMMAND_GRAB_JOB == 9
    assert protocol.GEARMAN_COMMAND_SUBMIT_JOB_LOW_BG == 34
    assert protocol.GEARMAN_COMMAND_TEXT_COMMAND == 9999
    assert protocol.GEARMAN_COMMAND_WORK_EXCEPTION is Command.WORK_EXCEPTION  # the core's
    params = protocol.GEARMAN_PARAMS_FOR_COMMAND
    assert params[7] == ["task", "unique", "data"]
    assert params[11] == ["job_handle", "task", "data"]
    assert params[20] == ["job_handle", "known", "running", "numerator", "denominator"]
    assert params[23] == ["task", "timeout"] and params[19] == ["error_code", "error_text"]
    assert params[31] == ["job_handle", "task", "unique", "data"]
    assert params[9999] == ["raw_text"] and params[6] == []
    assert protocol.GEARMAN_COMMAND_TO_NAME[13] == "GEARMAN_COMMAND_WORK_COMPLETE"
    assert protocol.get_command_name(9999) == "GEARMAN_COMMAND_TEXT_COMMAND"
    assert protocol.get_command_name(4242) == 4242
    assert (protocol.NULL_CHAR, protocol.MAGIC_REQ_STRING, protocol.MAGIC_RES_STRING,
            protocol.COMMAND_HEADER_SIZE) == (b"\0", b"\0REQ", b"\0RES", 12)
    assert [protocol.GEARMAN_SERVER_COMMAND_STATUS, protocol.GEARMAN_SERVER_COMMAND_VERSION,
            protocol.GEARMAN_SERVER_COMMAND_WORKERS, protocol.GEARMAN_SERVER_COMMAND_MAXQUEUE,
            protocol.GEARMAN_SERVER_COMMAND_SHUTDOWN] == [
        "status", "version", "workers", "maxqueue", "shutdown"]


@pytest.mark.parametrize("background, priority, code", [
    (False, PRIORITY_NONE, 7), (False, PRIORITY_LOW, 33), (False, PRIORITY_HIGH, 21),
    (True, PRIORITY_NONE, 18), (True, PRIORITY_LOW, 34), (True, PRIORITY_HIGH, 32)])
def test_submit_cmd_for_background_priority(background, priority, code) -> None:
    assert protocol.submit_cmd_for_background_priority(background, priority) == code


# Each row pinned to literal bytes, written out by hand from protocol.md.
BINARY = [
    (7, {"task": b"rev", "unique": b"u1", "data": b"a\0b"}, False,
     b"\0REQ" b"\0\0\0\x07" b"\0\0\0\x0a" b"rev\0u1\0a\0b"),
    (8, {"job_handle": b"H:x:1"}, True, b"\0RES" b"\0\0\0\x08" b"\0\0\0\x05" b"H:x:1"),
    (6, {}, True, b"\0RES" b"\0\0\0\x06" b"\0\0\0\0"),
    (12, {"job_handle": b"H:1", "numerator": b"1", "denominator": b"10"}, True,
     b"\0RES" b"\0\0\0\x0c" b"\0\0\0\x08" b"H:1\x001\x0010"),
    (19, {"error_code": b"QUEUE_ERROR", "error_text": b"full"}, True,
     b"\0RES" b"\0\0\0\x13" b"\0\0\0\x10" b"QUEUE_ERROR\0full"),
]


@pytest.mark.parametrize("cmd_type, cmd_args, is_response, wire", BINARY)
def test_pack_and_parse_binary_command_against_literal_bytes(cmd_type, cmd_args, is_response,
                                                             wire) -> None:
    assert protocol.pack_binary_command(cmd_type, cmd_args, is_response) == wire
    parsed = protocol.parse_binary_command(wire + b"\0RES", is_response)
    assert parsed == (cmd_type, cmd_args, len(wire))
    assert protocol.parse_binary_command(wire[:-1] if len(wire) > 12 else wire[:11],
                                         is_response) == (None, None, 0)


def test_binary_mistakes_are_named() -> None:
    with pytest.raises(ProtocolError, match="magic"):
        protocol.parse_binary_command(b"\0REQ\0\0\0\x06\0\0\0\0", True)
    with pytest.raises(ProtocolError, match="unknown command"):
        protocol.parse_binary_command(b"\0RES\0\0\x27\x0f\0\0\0\0", True)
    with pytest.raises(ValueError, match="unknown binary command"):
        protocol.pack_binary_command(9999, {"raw_text": b"status"})
    with pytest.raises(TypeError, match="takes arguments"):
        protocol.pack_binary_command(8, {"handle": b"H:1"})
    with pytest.raises(TypeError, match="must be bytes"):
        protocol.pack_binary_command(8, {"job_handle": "H:1"})
    with pytest.raises(ValueError, match="NUL"):
        protocol.pack_binary_command(7, {"task": b"a\0", "unique": b"", "data": b""})


def test_text_commands_against_literal_bytes() -> None:
    assert protocol.parse_text_command(b"OK 1.1.19\n\0RES") == (
        9999, {"raw_text": b"OK 1.1.19"}, 10)
    assert protocol.parse_text_command(b"ERR x y\r\n") == (9999, {"raw_text": b"ERR x y\r"}, 9)
    assert protocol.parse_text_command(b"rev\t1\t0") == (None, None, 0)
    with pytest.raises(ProtocolError, match="NUL"):
        protocol.parse_text_command(b"bad\0line\n")
    assert protocol.pack_text_command(9999, {"raw_text": "status\n"}) == b"status\n"
    assert protocol.pack_text_command(9999, {"raw_text": b"version\r\n"}) == b"version\r\n"
    with pytest.raises(ValueError, match="TEXT_COMMAND"):
        protocol.pack_text_command(7, {"raw_text": "status\n"})
    with pytest.raises(ValueError, match="raw_text"):
        protocol.pack_text_command(9999, {})


def test_compat_module_holds_2_0_2s_names() -> None:
    assert compat.any([0, 1]) and not compat.all([0, 1])
    counts = compat.defaultdict(int)
    counts["x"] += 1
    assert counts == {"x": 1}


def test_unknown_names_still_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="GEARMAN_COMMAND_NOPE"):
        protocol.GEARMAN_COMMAND_NOPE  # noqa: B018
