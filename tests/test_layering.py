"""The protocol core and the command handlers never touch sockets (style.md §3.1)."""
from __future__ import annotations

import ast
import pathlib

import pytest

import gearman

PACKAGE = pathlib.Path(gearman.__file__).resolve().parent  # the installed copy under test
IO_MODULES = {"socket", "select", "selectors", "ssl", "asyncio"}
SANS_IO = ["protocol.py", "protocol_compat.py", "admin_text.py", "command_handler.py",
           "client_handler.py", "worker_handler.py", "admin_client_handler.py", "job.py",
           "encoders.py", "errors.py", "constants.py",
           # the driver-free core both drivers share (issue 12)
           "server_pool.py", "request_fate.py", "request_checks.py", "seams.py", "shapes.py"]


def imported_modules(path: pathlib.Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0] if node.level == 0 else node.module)
            if node.module.startswith("gearman."):
                names.add(node.module)
    return names


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_modules_import_no_io(module):
    imports = imported_modules(PACKAGE / module)
    assert not imports & IO_MODULES, f"{module} imports {imports & IO_MODULES}"
    assert not imports & {"gearman.connection", "gearman.connection_manager"}, module


def test_only_connection_touches_socket_and_ssl():
    users = {path.name for path in PACKAGE.glob("*.py")
             if imported_modules(path) & {"ssl"}}
    assert users <= {"connection.py", "testing.py"}


def test_runtime_imports_are_standard_library_only():
    import sys

    stdlib = getattr(sys, "stdlib_module_names", None) or {  # Python 3.9 lacks the list
        "__future__", "argparse", "ast", "builtins", "collections", "contextlib", "datetime",
        "enum", "errno", "functools", "importlib", "inspect", "io", "itertools", "json",
        "logging", "os", "queue", "random", "re", "resource", "selectors", "shlex", "shutil",
        "signal", "socket", "ssl", "struct", "subprocess", "sys", "tempfile", "threading",
        "time", "types", "typing", "weakref", "zlib"}
    allowed = set(stdlib) | {"gearman", "pytest"}
    for path in PACKAGE.glob("*.py"):
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top in allowed, f"{path.name} imports {name}"
