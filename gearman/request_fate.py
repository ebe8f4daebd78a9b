"""A request's fate, decided in one place.

Whatever notices an event for a request -- a submit, either wait, a status query,
a shutdown, the blocking driver or the asyncio one -- asks :func:`decide` what
happens next, from the request's own state (its attempts and the server it was
last sent to), and applies the answer with the helpers below.  Nothing else
re-derives "done / retry / failed".

A request moves through these states::

    new (UNKNOWN, 0 attempts) --send--> PENDING --JOB_CREATED--> CREATED
        --WORK_COMPLETE/FAIL/EXCEPTION--> COMPLETE or FAILED
    PENDING --ERROR--> FAILED (refused: no retry; the server said no)
    PENDING or CREATED (foreground) --connection lost--> retry due (UNKNOWN, tries
        left: sent again on the NEXT server in the failover order) or lost
        (UNKNOWN, connection_failed)

Driver-free: no I/O here.  The driver sends the retries it is told to.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from gearman.constants import JOB_COMPLETE, JOB_CREATED, JOB_FAILED, JOB_PENDING, JOB_UNKNOWN

if TYPE_CHECKING:
    from gearman.job import GearmanJobRequest

# Events: what happened to a request.
ACCEPTED = "accepted"  #: JOB_CREATED
COMPLETED = "completed"  #: WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION
REFUSED = "refused"  #: ERROR in place of JOB_CREATED (say QUEUE_ERROR)
CONNECTION_LOST = "connection lost"  #: its connection failed before it finished
TIMED_OUT = "timed out"  #: a wait's deadline passed
CLOSED = "closed"  #: the application closed the client (shutdown)

# Outcomes: what to do next.
DONE = "done"  #: nothing more will happen
WAIT = "wait"  #: an answer is on its way
RETRY = "retry"  #: send it again, on the next server in the failover order
FAILED = "failed"  #: give up: connection_failed

_FOREGROUND_DONE = frozenset({JOB_COMPLETE, JOB_FAILED})
_BACKGROUND_DONE = frozenset({JOB_CREATED, JOB_COMPLETE, JOB_FAILED})


def decide(request: GearmanJobRequest, event: str) -> str:
    """What to do next with ``request`` after ``event``."""
    if event == CONNECTION_LOST:
        if is_complete(request):
            return DONE  # a background job the server accepted lives on without us
        if request.connection_attempts < request.max_connection_attempts:
            return RETRY
        return FAILED
    if event == ACCEPTED:
        return DONE if request.background else WAIT
    if event == COMPLETED:
        return DONE
    if event == TIMED_OUT:
        return DONE if is_finished(request) else WAIT
    return FAILED  # REFUSED, CLOSED


# -- applying an event ---------------------------------------------------------------
def lose(request: GearmanJobRequest) -> str:
    """Its connection failed: returns RETRY (the caller sends it again, see
    :func:`prepare_retry`), FAILED (marked ``connection_failed``) or DONE.  A request
    already lost is left alone (DONE): each loss counts once."""
    if request.state == JOB_UNKNOWN:
        return DONE
    outcome = decide(request, CONNECTION_LOST)
    if outcome != DONE:
        request.state = JOB_UNKNOWN
        request.connection_failed = outcome == FAILED
    return outcome


def close(request: GearmanJobRequest) -> None:
    """The application closed the client: a retry that was due will not happen."""
    if is_retry_due(request):
        request.connection_failed = True


def give_up(request: GearmanJobRequest) -> None:
    """No server could take the request: it is lost (``connection_failed``)."""
    request.state = JOB_UNKNOWN
    request.connection_failed = True
    request.job.connection = None


def prepare_retry(request: GearmanJobRequest) -> None:
    """Forget the lost attempt before the retry is sent.  The attempt count and
    ``job.connection`` (the server that dropped it) stay: the retry starts at the
    server after that one."""
    dropped_by, attempts = request.job.connection, request.connection_attempts
    request.reset()
    request.job.connection, request.connection_attempts = dropped_by, attempts


def refuse(request: GearmanJobRequest, exception: BaseException) -> None:
    """An ERROR took the place of JOB_CREATED: this request alone fails."""
    request.state = JOB_FAILED
    request.exception = exception


# -- questions -----------------------------------------------------------------------
def is_complete(request: GearmanJobRequest) -> bool:
    """Foreground: COMPLETE or FAILED; background: accepted (CREATED) or later."""
    return request.state in (_BACKGROUND_DONE if request.background else _FOREGROUND_DONE)


def is_retry_due(request: GearmanJobRequest) -> bool:
    """Lost with tries left, and not sent again yet."""
    return (request.state == JOB_UNKNOWN and not request.connection_failed
            and request.connection_attempts > 0)


def is_finished(request: GearmanJobRequest) -> bool:
    """Nothing more will happen without a new submission: complete, lost, or never
    sent (what wait_until_jobs_completed waits for)."""
    if request.connection_failed:
        return True
    if request.state == JOB_UNKNOWN:
        return request.connection_attempts == 0
    return is_complete(request)


def is_answered(request: GearmanJobRequest) -> bool:
    """The server answered the submission (JOB_CREATED or ERROR), or it is lost for
    good (what wait_until_jobs_accepted waits for)."""
    state = request.state
    if state == JOB_PENDING:
        return False
    return state != JOB_UNKNOWN or not is_retry_due(request)


def needs_sending(request: GearmanJobRequest) -> bool:
    """Whether submit_multiple_requests must send ``request`` (again): never sent,
    refused, lost, or waiting on a connection that is gone.  One accepted on a live
    connection is only waited for."""
    state = request.state
    if request.connection_failed or state == JOB_UNKNOWN:
        return True
    if state == JOB_FAILED:
        return request.job.handle is None  # refused with an ERROR: never accepted
    if state == JOB_PENDING:
        connection = request.job.connection
        return connection is None or not connection.connected
    if state == JOB_CREATED and not request.background:
        accepted_by = request.accepted_by
        return accepted_by is None or not accepted_by.connected
    return False
