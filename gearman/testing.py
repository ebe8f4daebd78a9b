"""Helpers for testing against a real gearmand (also a pytest plugin).

Use from pytest via ``pytest_plugins = ["gearman.testing"]`` (or the
``pytest11`` entry point) to get the ``gearmand``, ``gearmand_session`` and
``gearmand_factory`` fixtures.

Loading this module as a plugin costs nothing: the process helpers
(:class:`GearmandProcess`, :class:`StunnelProcess`, :func:`make_test_certificates`,
:func:`free_port`) live in :mod:`gearman.testing_daemons` and are imported the
first time a fixture or a name here asks for them; the gearman client, worker
and connection code is never imported by the plugin itself.
"""
from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any, Callable, Iterator, List

__all__ = [
    "free_port", "GearmandNotFound", "find_gearmand", "require_gearmand",
    "GearmandProcess", "make_test_certificates", "StunnelProcess",
]
_INSTALL_HINT = ("install the Debian package gearman-job-server "
                 "(apt-get install gearman-job-server) or set $GEARMAND")
#: Names served from gearman.testing_daemons on first use.
_LAZY = frozenset({"free_port", "GearmandProcess", "StunnelProcess", "make_test_certificates",
                   "LIST_COMMANDS"})

if TYPE_CHECKING:
    from gearman.testing_daemons import LIST_COMMANDS as LIST_COMMANDS
    from gearman.testing_daemons import (GearmandProcess, StunnelProcess, free_port,
                                         make_test_certificates)
else:
    def __getattr__(name: str) -> Any:
        if name in _LAZY:
            from gearman import testing_daemons
            return getattr(testing_daemons, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class GearmandNotFound(RuntimeError):
    """No gearmand binary could be found."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"gearmand not found{detail}; {_INSTALL_HINT}")


def find_gearmand() -> str:
    """Locate gearmand: $GEARMAND, then PATH, then the usual sbin dirs."""
    env = os.environ.get("GEARMAND")
    if env:
        found = shutil.which(env)
        if found is None:
            raise GearmandNotFound(f" ($GEARMAND={env!r} is not an executable)")
        return found
    for candidate in ("gearmand", "/usr/sbin/gearmand", "/usr/local/sbin/gearmand"):
        found = shutil.which(candidate)
        if found:
            return found
    raise GearmandNotFound()


# ---------------------------------------------------------------- pytest plugin
try:
    import pytest
except ImportError:  # pragma: no cover - the helpers work without pytest
    pytest = None  # type: ignore[assignment]


def require_gearmand() -> str:
    """Return gearmand's path; else fail the test with the install hint.

    A missing gearmand is a broken test setup, not a reason to skip: skipping
    would silently hide every test that needs the real server (the project's
    test command installs it).  Outside pytest, GearmandNotFound is raised.
    """
    try:
        return find_gearmand()
    except GearmandNotFound as exc:
        if pytest is None:
            raise
        pytest.fail(str(exc), pytrace=False)
        raise  # unreachable


if pytest is not None:

    def pytest_configure(config: Any) -> None:
        """Register the ``gearmand`` marker."""
        config.addinivalue_line("markers", "gearmand: needs a real gearmand")

    @pytest.fixture
    def gearmand() -> Iterator[GearmandProcess]:
        """A fresh gearmand for one test."""
        require_gearmand()
        from gearman.testing_daemons import GearmandProcess
        with GearmandProcess() as server:
            yield server

    @pytest.fixture(scope="session")
    def gearmand_session() -> Iterator[GearmandProcess]:
        """One gearmand shared by the session (don't stop/pause/kill it)."""
        require_gearmand()
        from gearman.testing_daemons import GearmandProcess
        with GearmandProcess() as server:
            yield server

    @pytest.fixture
    def gearmand_factory() -> Iterator[Callable[..., GearmandProcess]]:
        """``factory(**kwargs)`` starts GearmandProcess(**kwargs); all stopped at teardown."""
        require_gearmand()
        from gearman.testing_daemons import GearmandProcess
        servers: List[GearmandProcess] = []

        def factory(**kwargs: Any) -> GearmandProcess:
            server = GearmandProcess(**kwargs)
            servers.append(server)
            return server.start()

        yield factory
        for server in servers:
            server.stop()
