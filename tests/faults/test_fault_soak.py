"""The short soak (CI): 50,000 small jobs through one client, gearmand and two
worker processes; after the warm-up no process's memory grows.

The long run (1,000,000 jobs) is ``python tests/faults/soak.py`` by hand; its
table is in bench/results/soak-1m.md.
"""
from __future__ import annotations

import os

import pytest

from soak import growth_after_warmup, run_soak

pytestmark = pytest.mark.gearmand

JOBS = int(os.environ.get("GEARMAN_SOAK_JOBS", "50000"))
WARMUP = JOBS // 5
#: RSS noise on a quiet process is a few KiB; a leak of even 20 bytes a job would
#: show as 800 KiB over the 40,000 jobs after the warm-up.
MAX_GROWTH_KB = 512


def test_no_memory_growth_after_warmup(fault_figures):
    result = run_soak(JOBS, batch=500, sample_every=JOBS // 20)
    assert result["failed"] == 0
    assert result["worker_exit_codes"] == [0, 0]
    samples = result["samples"]
    assert len(samples) == 20
    growth = {key: growth_after_warmup(samples, key, WARMUP)
              for key in ("client_kb", "worker1_kb", "worker2_kb")}
    fault_figures["soak_ci"] = {"jobs": JOBS, "failed": result["failed"],
                                "growth_kb_after_warmup": growth,
                                "seconds": samples[-1]["seconds"]}
    assert all(kb <= MAX_GROWTH_KB for kb in growth.values()), (growth, samples)
