"""The typed seams between the layers, as :class:`typing.Protocol` classes.

A command handler knows its connection and its owner (the client, worker or
admin client) only through these: any driver whose objects have these methods
-- the blocking ``selectors`` loop or the asyncio front end -- can reuse the
handlers unchanged.  mypy checks each role against its protocol.

- :class:`Connection`: what an owner or handler may ask of a connection.
- :class:`HandlerOwner`: what every handler may ask of its owner.
- :class:`ClientOwner`, :class:`WorkerOwner`, :class:`AdminOwner`: what each
  role's handler reports to its owner.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Protocol, Tuple, Type

from gearman.encoders import DataEncoder
from gearman.protocol import Command
from gearman.shapes import Payload

if TYPE_CHECKING:
    from gearman.admin_client_handler import AdminQuery
    from gearman.client_handler import StatusQuery
    from gearman.job import GearmanJob, GearmanJobRequest
    from gearman.worker_handler import GearmanWorkerCommandHandler


class Connection(Protocol):
    """What an owner or a handler may ask of one server connection."""

    @property
    def gearman_host(self) -> str: ...

    @property
    def gearman_port(self) -> int: ...

    @property
    def address(self) -> str:
        """``host:port``, for messages."""

    @property
    def connected(self) -> bool: ...

    def send_command(self, command: Command, args: Tuple[bytes, ...] = ...) -> None:
        """Queue one packet; the connection copies what it does not own."""

    def send_text(self, line: bytes) -> None:
        """Queue one admin text line."""


class HandlerOwner(Protocol):
    """What every command handler may ask of the object that owns it."""

    @property
    def data_encoder(self) -> Type[DataEncoder]: ...

    def encode_payload(self, data: Payload) -> bytes:
        """``data`` as the bytes to send, by the owner's data encoder, size-checked."""


class ClientOwner(HandlerOwner, Protocol):
    """What a client handler reports to its client."""

    def note_updated(self, request: GearmanJobRequest) -> None:
        """``request`` changed (accepted, refused, an update, done)."""

    def note_status(self, query: StatusQuery) -> None:
        """A status, status-unique or echo query got its answer (or its connection died)."""

    def note_lost(self, request: GearmanJobRequest) -> None:
        """The connection ``request`` depended on failed: the request fate decides
        whether it is retried on the next server or has failed."""


class WorkerOwner(HandlerOwner, Protocol):
    """What a worker handler reports to its worker."""

    def note_may_have_work(self, handler: GearmanWorkerCommandHandler) -> None:
        """The server behind ``handler`` may have work (connected, NOOP, NO_JOB elsewhere)."""

    def on_job_assigned(self, handler: GearmanWorkerCommandHandler, handle: str, task: str,
                        unique: Optional[str], reducer: Optional[str], data: bytes) -> None:
        """A JOB_ASSIGN* arrived: the worker decodes ``data`` and queues the job."""

    def on_connection_lost(self, handler: GearmanWorkerCommandHandler) -> None:
        """``handler``'s connection failed: forget the jobs it assigned."""


class AdminOwner(HandlerOwner, Protocol):
    """What an admin handler reports to its admin client."""

    def note_status(self, query: AdminQuery) -> None:
        """``query`` got its reply (or its connection died)."""


class JobObserver(Protocol):
    """What a worker tells an observer (``GearmanWorker.add_job_observer``), on the
    thread doing the job: gearman.metrics.instrument_worker is one."""

    def job_started(self, job: GearmanJob) -> None: ...

    def job_finished(self, job: GearmanJob, outcome: str) -> None:
        """``outcome``: ``'complete'``, ``'fail'`` or ``'exception'``.  (An observer may
        also have ``job_abandoned(job)``: told when a job is dropped unanswered,
        which the asyncio worker's ``close()`` does to its running jobs.)"""
