"""The pytest plugin (entry point pytest11 -> gearman.testing) costs an
application's test run nothing until a test uses its fixtures: loading it
imports none of the client, worker, connection or process-helper code."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEAVY = ["gearman.client", "gearman.worker", "gearman.admin_client", "gearman.connection",
         "gearman.connection_manager", "gearman.protocol", "gearman.testing_daemons"]


def env_with_checkout() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugin named with -p
    return env


def test_importing_the_plugin_module_loads_no_gearman_machinery() -> None:
    code = ("import sys, pytest, gearman.testing; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('gearman'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env_with_checkout(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = proc.stdout.split()
    assert "gearman.testing" in loaded
    assert not set(loaded) & set(HEAVY), loaded


@pytest.mark.gearmand
def test_a_test_run_with_only_the_plugin_loads_it_lazily(tmp_path: pathlib.Path) -> None:
    (tmp_path / "test_app.py").write_text(textwrap.dedent(f"""
        import sys

        HEAVY = {HEAVY!r}

        def test_1_without_fixtures():
            assert "gearman.testing" in sys.modules
            assert [m for m in HEAVY if m in sys.modules] == []

        def test_2_with_the_gearmand_fixture(gearmand):
            assert gearmand.admin("getpid") == "OK %d\\n" % gearmand.pid
            assert "gearman.testing_daemons" in sys.modules
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "gearman.testing",
                           "-p", "no:cacheprovider", "-q", str(tmp_path / "test_app.py")],
                          capture_output=True, text=True, cwd=tmp_path,
                          env=env_with_checkout(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_a_missing_gearmand_fails_with_the_install_hint(tmp_path: pathlib.Path) -> None:
    (tmp_path / "test_app.py").write_text("def test_needs_it(gearmand):\n    pass\n")
    env = env_with_checkout()
    env["GEARMAND"] = "/nonexistent/gearmand"
    env.pop("CI", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "gearman.testing",
                           "-p", "no:cacheprovider", "-q", "-rs", str(tmp_path / "test_app.py")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout
    assert "apt-get install gearman-job-server" in proc.stdout
