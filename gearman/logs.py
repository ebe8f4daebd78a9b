"""Logs that name the job, and a JSON formatter for machines.

Every record the worker logs about a job carries ``gearman_task``,
``gearman_handle`` and ``gearman_unique`` as ``extra`` fields, and says the same
in its message (:func:`describe_job`), so one grep or one query follows a job.
Callbacks can do the same::

    log.info("%s: resized", describe_job(job), extra=job_log_fields(job))
"""
from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Dict

#: The attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message", "asctime", "taskName"}


def job_log_fields(job: Any) -> Dict[str, Any]:
    """The ``extra`` fields naming ``job`` (anything with task, handle, unique)."""
    return {"gearman_task": getattr(job, "task", None),
            "gearman_handle": getattr(job, "handle", None),
            "gearman_unique": getattr(job, "unique", None)}


def describe_job(job: Any) -> str:
    """``job H:host:42 (task 'resize', unique 'img-7')``: how log messages name a job."""
    return (f"job {getattr(job, 'handle', None)} (task {getattr(job, 'task', None)!r}, "
            f"unique {getattr(job, 'unique', None)!r})")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message,
    the record's ``extra`` fields (``gearman_task``, ...), and ``exception`` (the
    formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        entry: Dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=repr, ensure_ascii=False)
