"""The README's shared helper, in Python 3."""
from __future__ import annotations


def check_request_status(job_request):
    if job_request.complete:
        print("Job %s finished!  Result: %s - %s" % (job_request.job.unique, job_request.state,
                                                   job_request.result))
    elif job_request.timed_out:
        print("Job %s timed out!" % job_request.unique)
    elif job_request.connection_failed:
        print("Job %s connection failed!" % job_request.unique)
