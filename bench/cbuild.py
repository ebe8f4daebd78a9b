"""The C client (``bench/cclient.c``): built with the system compiler, run as a cell.

It is the benchmark's physical limit for a client: the protocol in C on one plain
socket, checking every result.  run.py builds it into ``bench/build/`` (not
committed) when the source is newer than the binary, and runs it in place of
``cell.py`` for the client scenarios whose mode it has.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import List

BENCH = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(BENCH, "cclient.c")
BUILD = os.path.join(BENCH, "build")
BINARY = os.path.join(BUILD, "cclient")
#: The client modes cclient.c runs (cell.py's ``--mode`` values).
MODES = ("sequential", "batch", "background", "windows")
FLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra"]


def compiler() -> str:
    """The system C compiler (``$CC``, else ``cc``), or '' if there is none."""
    return shutil.which(os.environ.get("CC", "cc")) or ""


def build() -> str:
    """Compile cclient.c if the binary is missing or older; return why not, or ''."""
    cc = compiler()
    if not cc:
        return "no C compiler (cc): install gcc, or leave cclient out of --libs"
    if os.path.exists(BINARY) and os.path.getmtime(BINARY) >= os.path.getmtime(SOURCE):
        return ""
    os.makedirs(BUILD, exist_ok=True)
    proc = subprocess.run([cc, *FLAGS, "-o", BINARY, SOURCE], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    return "" if proc.returncode == 0 else "cc failed:\n" + proc.stdout.decode()


def version() -> str:
    """What the table's header says of the C client: its compiler."""
    if not os.path.exists(BINARY) or not compiler():
        return "not installed"
    out = subprocess.run([compiler(), "--version"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout.decode().splitlines()
    return f"cc -O2 ({out[0].strip()})" if out else "cc -O2"


def command(address: str, task: str, mode: str, jobs: int, size: int) -> List[str]:
    return [BINARY, address, task, mode, str(jobs), str(size)]
