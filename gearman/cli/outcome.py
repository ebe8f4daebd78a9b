"""Why a submitted job did not complete, in words: one function that both
``submit`` (one job) and ``submit --lines`` (one job per line) report with."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

from gearman.constants import JOB_FAILED
from gearman.errors import ServerError


def server_of(request: Any) -> Optional[str]:
    """The address of the server that took (or last held) the request."""
    holder = getattr(request, "accepted_by", None) or request.job.connection
    return getattr(holder, "address", None)


def warning_texts(request: Any) -> List[str]:
    """The job's WORK_WARNING payloads as text (``gearman-py work`` sends the
    callback's error as a warning before WORK_FAIL)."""
    return [w.decode("utf-8", "replace") if isinstance(w, bytes) else str(w)
            for w in request.warning_updates]


def succeeded(request: Any) -> bool:
    """Foreground: it completed; background: the server gave it a handle."""
    return bool(request.complete) and request.state != JOB_FAILED


def why_not_done(request: Any, timeout: Optional[float], servers: Sequence[str]
                 ) -> Optional[str]:
    """``None`` if the request succeeded, else why not, naming the real cause:
    refused by the server (its code and text), WORK_EXCEPTION (its text),
    WORK_FAIL (the warnings sent before it), the connection lost (to which
    server), never submitted (no server reachable), or the timeout."""
    if succeeded(request):
        return None
    handle = request.job.handle
    background = bool(request.background)
    exception = request.exception
    if request.state == JOB_FAILED:
        if isinstance(exception, ServerError):
            return f"refused by the server: {exception}"
        if exception is not None:
            kind = "" if isinstance(exception, str) else f"{type(exception).__name__}: "
            return f"failed: {kind}{exception}".rstrip()
        details = "; ".join(text.rstrip() for text in warning_texts(request))
        return f"failed: {details}" if details else "failed: WORK_FAIL, no details"
    if request.connection_failed:
        if handle:
            return f"lost the connection to gearmand at {server_of(request)} while " \
                   f"waiting for it"
        return f"not submitted: no gearmand reachable among {', '.join(servers)}"
    goal = "get a handle" if background else "finish"
    if timeout is not None:
        return f"timed out: did not {goal} within {timeout:g} seconds"
    return f"did not {goal} (state {request.state})"
