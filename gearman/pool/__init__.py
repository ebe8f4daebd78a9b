"""``gearman-py pool``: a supervisor that keeps worker processes running.

- :mod:`gearman.pool.target` -- ``module:attribute`` to a configured worker (in the child);
- :mod:`gearman.pool.child` -- one worker process (``python -m gearman.pool.child``);
- :mod:`gearman.pool.report` -- what a child tells the supervisor, over a pipe;
- :mod:`gearman.pool.supervisor` -- starts, replaces, recycles and drains children;
- :mod:`gearman.pool.pool_metrics` -- ``/metrics`` summed over the children, ``/healthz``.

Children are fresh interpreters (``subprocess``, not ``os.fork``): the supervisor
never imports the target, so a SIGHUP's new children import the code as it is on
disk now, and no thread or lock of the supervisor is inherited half-held.
"""
from __future__ import annotations

# Nothing imported here: a child (python -m gearman.pool.child) loads only what it needs.
