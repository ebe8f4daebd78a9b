"""Test configuration: the real-gearmand fixtures come from gearman.testing.

An installed package registers gearman.testing as the pytest plugin "gearman";
from a plain source checkout it is not registered, so load it here then.
"""
from __future__ import annotations


def pytest_addhooks(pluginmanager):  # the earliest hook a conftest gets
    if not pluginmanager.has_plugin("gearman") and not pluginmanager.has_plugin(
            "gearman.testing"):
        pluginmanager.import_plugin("gearman.testing")
