"""``TARGET`` (``module:attribute``) to a configured :class:`~gearman.GearmanWorker`.

The attribute may be a ``GearmanWorker`` subclass (made with no arguments), a
no-argument callable returning a configured worker, or a mapping of task name
to callback.  Only children import the target; the supervisor checks the spelling.
"""
from __future__ import annotations

import importlib
import re
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

from gearman.worker import GearmanWorker

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def parse_target(text: str) -> Tuple[str, str]:
    """``"pkg.mod:attr"`` -> ``("pkg.mod", "attr")``, or a ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise TypeError(f"TARGET must be a str, got {type(text).__name__}")
    module, sep, attribute = text.partition(":")
    if not sep or not _DOTTED.match(module) or not _DOTTED.match(attribute):
        raise ValueError(f"TARGET {text!r} must be module:attribute (for example "
                         "myapp.workers:ResizeWorker)")
    return module, attribute


def load_target(text: str) -> Any:
    """Import the target's module and return the attribute."""
    module_name, attribute = parse_target(text)
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ValueError(f"TARGET {text!r}: {module_name} has no attribute "
                             f"{attribute!r}") from None
    return value


def build_worker(text: str, hosts: Sequence[str], task: Optional[str] = None,
                 concurrency: Optional[int] = None) -> GearmanWorker:
    """The worker ``TARGET`` describes, with ``hosts`` if it has none, registered for
    ``task`` alone when given, running ``concurrency`` jobs at once when given."""
    target = load_target(text)
    worker = _make(text, target, hosts)
    if not worker.connection_list:
        for host in hosts:
            worker.add_connection(host)
    if task is not None:
        if task not in worker.worker_abilities:
            raise ValueError(f"--dedicated {task}: TARGET {text!r} has no task {task!r} "
                             f"(it has: {', '.join(sorted(worker.worker_abilities)) or 'none'})")
        for other in list(worker.worker_abilities):
            if other != task:
                worker.unregister_task(other)
    if not worker.worker_abilities:
        raise ValueError(f"TARGET {text!r} registers no task")
    if concurrency is not None:
        worker.concurrency = concurrency
    return worker


def _make(text: str, target: Any, hosts: Sequence[str]) -> GearmanWorker:
    if isinstance(target, type) and issubclass(target, GearmanWorker):
        return target()
    if isinstance(target, Mapping):
        worker = GearmanWorker(list(hosts))
        for task, callback in target.items():
            worker.register_task(task, _callable(text, task, callback))
        return worker
    if callable(target):
        worker = target()
        if not isinstance(worker, GearmanWorker):
            raise TypeError(f"TARGET {text!r} returned {type(worker).__name__}, not a "
                            "GearmanWorker")
        return worker
    raise TypeError(f"TARGET {text!r} is a {type(target).__name__}: expected a GearmanWorker "
                    "subclass, a callable returning a worker, or a mapping task -> callback")


def _callable(text: str, task: Any, callback: Any) -> Callable[..., Any]:
    if not callable(callback):
        raise TypeError(f"TARGET {text!r}: the callback for task {task!r} is a "
                        f"{type(callback).__name__}, not callable")
    return callback  # type: ignore[no-any-return]
