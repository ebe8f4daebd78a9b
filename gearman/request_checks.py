"""The checks a submission passes before anything is sent, and the request they build.

Driver-free (no I/O): the blocking client and the asyncio client share them, so
a bad argument is the same clear ``TypeError``/``ValueError`` from either, and
an argument the library cannot honour is refused instead of silently dropped
(API.md, "Callers' objects are theirs").
"""
from __future__ import annotations

import datetime
import random
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from gearman.constants import MAX_UNIQUE_LENGTH, PRIORITIES
from gearman.job import GearmanJob, GearmanJobRequest
from gearman.util import check_name, to_bytes, to_text

#: gearmand keeps a job handle in 64 bytes with its NUL; a longer GET_STATUS
#: handle makes it close the connection, failing every job on it.
MAX_HANDLE_LENGTH = 63

JOB_KEYS = frozenset({"task", "data", "unique", "priority", "when", "reducer"})


def resolve_timeout(poll_timeout: Optional[float], timeout: Optional[float],
                    default: Optional[float] = None) -> Optional[float]:
    """``poll_timeout`` and the README's ``timeout`` are one setting; give one of them."""
    if poll_timeout is not None and timeout is not None and poll_timeout != timeout:
        raise ValueError(f"poll_timeout={poll_timeout!r} and timeout={timeout!r} disagree; "
                         "they are the same setting, pass one")
    value = poll_timeout if poll_timeout is not None else timeout
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"poll_timeout must be None or a number >= 0, got {value!r}")
    return float(value)


def check_random_unique_bytes(size: Any) -> int:
    """Random unique ids are ``size`` random bytes in hex: 2 characters a byte, and
    gearmand keeps at most 63 bytes of a unique id."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"random_unique_bytes must be an int, got {type(size).__name__}")
    limit = MAX_UNIQUE_LENGTH // 2
    if not 1 <= size <= limit:
        raise ValueError(f"random_unique_bytes must be 1 to {limit} (its hex unique id has "
                         f"2 characters a byte; gearmand keeps {MAX_UNIQUE_LENGTH}), got {size}")
    return size


def check_batch(jobs: Any, background: Any, max_retries: Any) -> None:
    """The arguments of submit_multiple_jobs that apply to the whole batch."""
    if isinstance(jobs, dict):
        raise TypeError("jobs_to_submit must be a list of dicts, got a single dict; "
                        "wrap it in [...] or use submit_job()")
    if not isinstance(jobs, (list, tuple)):
        raise TypeError(f"jobs_to_submit must be a list or tuple of dicts, got "
                        f"{type(jobs).__name__}")
    check_options(background, max_retries)


def check_options(background: Any, max_retries: Any) -> None:
    """``background`` and ``max_retries``, for one job or a batch."""
    if not isinstance(background, bool):
        raise TypeError(f"background must be True or False, got {background!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")


def as_request_list(job_requests: Any) -> List[GearmanJobRequest]:
    """``job_requests`` as a list, after checking it holds requests."""
    if not isinstance(job_requests, (list, tuple)):
        raise TypeError(f"job_requests must be a list of GearmanJobRequest, got "
                        f"{type(job_requests).__name__}")
    for request in job_requests:
        if not hasattr(request, "gearman_job"):
            raise TypeError(f"job_requests must hold GearmanJobRequest objects, got "
                            f"{type(request).__name__}")
    return list(job_requests)


def check_unique(unique: Any) -> str:
    """A caller's unique id as ``str``: at most 63 bytes, no NUL."""
    raw = to_bytes(unique, "unique")
    if b"\0" in raw:
        raise ValueError(f"unique {unique!r} must not contain a NUL byte")
    if len(raw) > MAX_UNIQUE_LENGTH:
        raise ValueError(f"unique is {len(raw)} bytes; gearmand keeps at most "
                         f"{MAX_UNIQUE_LENGTH}")
    return to_text(raw)


def check_handle(handle: Any) -> bytes:
    """A job handle to ask about: a name of at most 63 bytes."""
    raw = check_name(handle, "handle")
    if len(raw) > MAX_HANDLE_LENGTH:  # gearmand drops the connection (protocol.md §4)
        raise ValueError(f"handle is {len(raw)} bytes; gearmand job handles have at most "
                         f"{MAX_HANDLE_LENGTH}")
    return raw


def check_when(when: Any, background: bool, priority: Optional[str],
               reducer: Any = None) -> Optional[int]:
    """``when=`` as a Unix time: background jobs only, at normal priority, no reducer
    (SUBMIT_JOB_EPOCH carries neither a priority nor a reducer)."""
    if when is None:
        return None
    if not background:
        raise ValueError("when= schedules a background job (SUBMIT_JOB_EPOCH); "
                         "pass background=True")
    if priority is not None:
        raise ValueError("when= jobs run at normal priority; leave priority unset")
    if reducer is not None:
        raise ValueError("when= and reducer= cannot be combined: SUBMIT_JOB_EPOCH carries "
                         "no reducer; submit the reduce job without when=")
    if isinstance(when, datetime.datetime):
        return int(when.timestamp())
    if isinstance(when, bool) or not isinstance(when, (int, float)) or when < 0:
        raise ValueError(f"when must be a Unix time or a datetime, got {when!r}")
    return int(when)


def check_reducer(reducer: Any, priority: Optional[str]) -> Optional[str]:
    """``reducer=`` as ``str``: SUBMIT_REDUCE_JOB has no priority, so none may be asked."""
    if reducer is None:
        return None
    if priority is not None:
        raise ValueError(f"reducer= jobs run at normal priority (SUBMIT_REDUCE_JOB has no "
                         f"priority); got priority={priority!r}")
    return to_text(check_name(reducer, "reducer"))


class RequestMaker:
    """Builds checked requests from job dicts; keeps the task name cache and the
    random unique id source of one client."""

    def __init__(self, random_unique_bytes: Any = 16) -> None:
        self.random_unique_bytes = check_random_unique_bytes(random_unique_bytes)
        self._rng = random.Random()
        self._task_names: Dict[Any, str] = {}

    def task_name(self, task: Any) -> str:
        """The checked, interned ``str`` name of ``task``: 100,000 jobs of one task
        share one str (not 5 MiB of copies), and a name seen before costs one lookup."""
        names = self._task_names
        cacheable = type(task) is str or type(task) is bytes  # hashable, immutable
        name = names.get(task) if cacheable else None
        if name is None:
            name = sys.intern(to_text(check_name(task, "task")))
            if cacheable:
                if len(names) >= 1024:  # many distinct names: stay bounded
                    names.clear()
                names[task] = name
        return name

    def random_unique(self) -> str:
        size = self.random_unique_bytes
        return "%0*x" % (size * 2, self._rng.getrandbits(size * 8))

    def unique(self, unique: Any) -> str:
        """The caller's unique id, checked, or a random one when none is given."""
        if unique is None or unique == "" or unique == b"":
            return self.random_unique()
        return check_unique(unique)

    def make(self, job_info: Any, index: int, background: bool, max_retries: int,
             job_class: Callable[..., GearmanJob],
             job_request_class: Callable[..., GearmanJobRequest],
             encode_payload: Callable[[Any], bytes]) -> GearmanJobRequest:
        """Check one job dict and build its request (nothing is sent).

        This runs once per job of a batch before anything is sent, so the common
        case (known keys, a task name seen before, no unique) takes no detours.
        """
        if not isinstance(job_info, dict):
            raise TypeError(f"jobs_to_submit[{index}] must be a dict with 'task' and 'data', "
                            f"got {type(job_info).__name__}")
        if not JOB_KEYS.issuperset(job_info):
            raise ValueError(f"jobs_to_submit[{index}] has unknown keys "
                             f"{sorted(set(job_info) - JOB_KEYS, key=repr)}")
        if "task" not in job_info or "data" not in job_info:
            raise ValueError(f"jobs_to_submit[{index}] needs both 'task' and 'data'")
        task = self.task_name(job_info["task"])
        priority = job_info.get("priority")
        if priority is not None and priority not in PRIORITIES:
            raise ValueError("priority must be PRIORITY_NONE, PRIORITY_LOW or PRIORITY_HIGH, "
                             f"got {priority!r}")
        unique = job_info.get("unique")  # the common case (none given) without a call
        if unique is None or unique == "" or unique == b"":
            unique = self.random_unique()
        else:
            unique = check_unique(unique)
        data = job_info["data"]
        job = job_class(None, None, task, unique, data)  # 2.x signature, for subclasses
        when, reducer = job_info.get("when"), job_info.get("reducer")
        if when is not None or reducer is not None:
            try:
                epoch = check_when(when, background, priority, reducer)
                reducer = check_reducer(reducer, priority)
            except ValueError as exc:
                raise ValueError(f"jobs_to_submit[{index}]: {exc}") from exc
            if epoch is not None:  # set per job only when used: class defaults otherwise
                job.when = epoch
            if reducer is not None:
                job.reducer = reducer
        request = job_request_class(job, initial_priority=priority, background=background,
                                    max_attempts=max_retries + 1)
        try:
            request.encoded_data = encode_payload(data)
        except TypeError as exc:
            raise TypeError(f"jobs_to_submit[{index}] data: {exc}") from exc
        return request


def make_requests(maker: RequestMaker, jobs: Sequence[Any], background: bool,
                  max_retries: int, job_class: Callable[..., GearmanJob],
                  job_request_class: Callable[..., GearmanJobRequest],
                  encode_payload: Callable[[Any], bytes]) -> List[GearmanJobRequest]:
    """Check a whole batch and build its requests; raises before anything is sent."""
    check_batch(jobs, background, max_retries)
    make = maker.make
    return [make(job, index, background, max_retries, job_class, job_request_class,
                 encode_payload) for index, job in enumerate(jobs)]


def make_request(maker: RequestMaker, job: Any, background: bool, max_retries: int,
                 job_class: Callable[..., GearmanJob],
                 job_request_class: Callable[..., GearmanJobRequest],
                 encode_payload: Callable[[Any], bytes]) -> GearmanJobRequest:
    """:func:`make_requests` for submit_job's one job, without a batch around it."""
    check_options(background, max_retries)
    return maker.make(job, 0, background, max_retries, job_class, job_request_class,
                      encode_payload)
