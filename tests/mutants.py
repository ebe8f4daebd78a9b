"""Planted bugs: how strong is the suite?  (Opt-in; not part of the default run.)

Each mutant is one deliberate, realistic bug put into a fresh copy of the
``gearman`` package in a temporary directory; the tests meant to guard that
spot then run against the copy (``PYTHONPATH`` points at it).  A mutant that
no test catches marks a blind spot.  docs/testing.rst lists the results.

    python tests/mutants.py                 # every mutant, its own tests
    python tests/mutants.py size-limit retry-count
    python tests/mutants.py --list
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, NamedTuple, Optional, Sequence

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


class Mutant(NamedTuple):
    name: str
    what: str
    path: str  # inside gearman/
    original: str  # must occur exactly once
    planted: str
    tests: Sequence[str]  # test files (relative to tests/) or globs


MUTANTS: List[Mutant] = [
    Mutant("size-limit", "the packet size check is off by one (accepts one byte over)",
           "protocol.py", "        if size > self.max_packet_size:\n",
           "        if size > self.max_packet_size + 1:\n",
           ["test_protocol.py", "test_limits.py", "test_connection.py"]),
    Mutant("size-limit-strict", "the packet size check refuses exactly the maximum",
           "protocol.py", "        if size > self.max_packet_size:\n",
           "        if size >= self.max_packet_size:\n",
           ["test_protocol.py", "test_limits.py", "test_connection.py"]),
    Mutant("line-limit", "the admin text line limit is off by one",
           "protocol.py", "            if len(buf) - pos > self.max_packet_size:\n",
           "            if len(buf) - pos > self.max_packet_size + 1:\n",
           ["test_protocol.py", "test_limits.py"]),
    Mutant("payload-limit", "the payload check refuses a payload of exactly the maximum",
           "connection_manager.py", "        if len(payload) > self.max_packet_size:\n",
           "        if len(payload) >= self.max_packet_size:\n",
           ["test_limits.py", "test_client_unit.py"]),
    Mutant("failover-wrap", "the failover order loses its wrap-around (after the server the "
           "hash picks, the servers before it come first)",
           "server_pool.py", "        return connections[start:] + connections[:start]\n",
           "        return [connections[start]] + connections[:start] + connections[start + 1:]\n",
           ["test_client.py", "test_client_unit.py", "test_server_pool.py", "*failover*.py",
            "*retr*.py"]),
    Mutant("retry-count", "one retry too many (max_retries + 2 attempts)",
           "request_checks.py", "max_attempts=max_retries + 1)",
           "max_attempts=max_retries + 2)",
           ["test_client.py", "test_client_unit.py", "test_server_pool.py", "*failover*.py",
            "*retr*.py"]),
    Mutant("partial-write", "a partial write of the queued small packets drops the unsent rest",
           "connection.py",
           "            elif type(chunk) is bytearray:\n                del chunk[:sent]\n",
           "            elif type(chunk) is bytearray:\n                out.popleft()\n",
           ["test_connection.py", "test_client.py"]),
]


def test_files(patterns: Sequence[str]) -> List[str]:
    found: List[str] = []
    for pattern in patterns:
        for path in sorted(TESTS.glob(pattern)):
            if str(path) not in found:
                found.append(str(path))
    return found


def plant(mutant: Mutant, into: pathlib.Path) -> Optional[str]:
    """Copy gearman/ into ``into`` with the bug planted; an error text if it cannot be."""
    shutil.copytree(ROOT / "gearman", into / "gearman",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = into / "gearman" / mutant.path
    source = target.read_text(encoding="utf-8")
    count = source.count(mutant.original)
    if count != 1:
        return f"{mutant.path}: the code to mutate was found {count} times (it changed: " \
               "update this mutant)"
    target.write_text(source.replace(mutant.original, mutant.planted), encoding="utf-8")
    return None


def run(mutant: Mutant, extra: Sequence[str]) -> Dict[str, object]:
    files = test_files(mutant.tests)
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        copy = pathlib.Path(tmp)
        problem = plant(mutant, copy)
        if problem:
            return {"name": mutant.name, "error": problem, "caught_by": []}
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, [str(copy), os.environ.get("PYTHONPATH")])))
        where = subprocess.run([sys.executable, "-c", "import gearman; print(gearman.__file__)"],
                               cwd=tmp, env=env, capture_output=True, text=True)
        if not where.stdout.startswith(str(copy)):
            return {"name": mutant.name, "error": f"the copy is not the one imported: "
                    f"{where.stdout.strip()} {where.stderr.strip()}", "caught_by": []}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                               "-rf", "--tb=no", *extra, *files], cwd=tmp, env=env,
                              capture_output=True, text=True)
    caught = sorted({re.sub(r" - .*$", "", line[len("FAILED "):])
                     for line in proc.stdout.splitlines() if line.startswith("FAILED ")})
    summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return {"name": mutant.name, "caught_by": [re.sub(r"^.*?(?=tests/)", "", c) for c in caught],
            "summary": summary, "files": [pathlib.Path(f).name for f in files]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--pytest-arg", action="append", default=[],
                        help="extra argument for pytest (repeatable), e.g. -x")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    if args.list or not chosen:
        for mutant in MUTANTS:
            print(f"{mutant.name:18} {mutant.what}")
        return 0 if args.list else 2
    escaped = 0
    for mutant in chosen:
        result = run(mutant, args.pytest_arg)
        print(f"== {mutant.name}: {mutant.what}")
        if "error" in result:
            print(f"   NOT RUN: {result['error']}")
            escaped += 1
            continue
        print(f"   ran {', '.join(result['files'])}: {result['summary']}")  # type: ignore
        caught_by = result["caught_by"]
        assert isinstance(caught_by, list)
        if caught_by:
            for test in caught_by:
                print(f"   caught by {test}")
        else:
            escaped += 1
            print("   ESCAPED: no test failed")
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main())
