"""A python-gearman 2.x style script: talks to gearmand over a raw socket with the
2.x module-level protocol names only.  Usage: legacy_protocol_script.py HOST:PORT.

Run by tests/test_protocol_compat.py; prints what it saw, one fact a line.
"""
import socket
import sys

from gearman import compat
from gearman.constants import PRIORITY_HIGH, PRIORITY_NONE
from gearman.protocol import (COMMAND_HEADER_SIZE, GEARMAN_COMMAND_JOB_CREATED,
                              GEARMAN_COMMAND_SUBMIT_JOB_HIGH_BG, GEARMAN_COMMAND_TEXT_COMMAND,
                              GEARMAN_PARAMS_FOR_COMMAND, GEARMAN_SERVER_COMMAND_STATUS,
                              MAGIC_RES_STRING, NULL_CHAR, get_command_name,
                              pack_binary_command, pack_text_command, parse_binary_command,
                              parse_text_command, submit_cmd_for_background_priority)


def read_until(sock, parse, buffer):
    while True:
        cmd_type, cmd_args, cmd_len = parse(buffer)
        if cmd_type is not None:
            return cmd_type, cmd_args, buffer[cmd_len:]
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("server closed the connection")
        buffer += chunk


def main(address):
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    cmd_type = submit_cmd_for_background_priority(True, PRIORITY_HIGH)
    assert cmd_type == GEARMAN_COMMAND_SUBMIT_JOB_HIGH_BG
    assert submit_cmd_for_background_priority(False, PRIORITY_NONE) == 7
    cmd_args = dict((name, b"") for name in GEARMAN_PARAMS_FOR_COMMAND[cmd_type])
    cmd_args.update(task=b"legacy", unique=b"legacy-1", data=b"payload" + NULL_CHAR + b"!")
    sock.sendall(pack_binary_command(cmd_type, cmd_args))
    cmd_type, cmd_args, rest = read_until(sock, parse_binary_command, b"")
    assert cmd_type == GEARMAN_COMMAND_JOB_CREATED
    print(get_command_name(cmd_type), cmd_args["job_handle"].startswith(b"H:"))
    line = pack_text_command(GEARMAN_COMMAND_TEXT_COMMAND,
                             {"raw_text": GEARMAN_SERVER_COMMAND_STATUS + "\n"})
    sock.sendall(line)
    rows, buffer = [], rest
    while True:
        cmd_type, cmd_args, buffer = read_until(sock, parse_text_command, buffer)
        if cmd_args["raw_text"] == b".":
            break
        rows.append(cmd_args["raw_text"].split(b"\t"))
    print("status", [row[0].decode() for row in rows], [row[1] for row in rows])
    print("compat", compat.all([1, 2]), compat.any([0]), compat.defaultdict(int)["x"])
    print("header", COMMAND_HEADER_SIZE, MAGIC_RES_STRING)
    sock.close()


if __name__ == "__main__":
    main(sys.argv[1])
