"""asyncio front end: :class:`AsyncGearmanClient`, :class:`AsyncGearmanWorker` and
:class:`AsyncGearmanAdminClient`, on the same protocol core, handlers, job
objects, encoders and rules as the blocking classes (see docs/asyncio)."""
from gearman.aio.admin_client import AsyncGearmanAdminClient
from gearman.aio.client import AsyncGearmanClient
from gearman.aio.waits import Update
from gearman.aio.worker import AsyncGearmanWorker

__all__ = ["AsyncGearmanAdminClient", "AsyncGearmanClient", "AsyncGearmanWorker", "Update"]
