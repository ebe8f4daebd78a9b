"""README client example 3: multiple jobs, non-blocking (wait_until_complete=False)."""
import time

import gearman
from _hosts import hosts
from check_request_status import check_request_status

gm_client = gearman.GearmanClient(hosts())

list_of_jobs = [dict(task="task_name", data="binary data"),
                dict(task="other_task", data="other binary data")]
submitted_requests = gm_client.submit_multiple_jobs(list_of_jobs, background=False,
                                                    wait_until_complete=False)

# Once we know our jobs are accepted, we can do other stuff and wait for results later
# Similar to multithreading and doing a join except this is all done in a single process
time.sleep(1.0)

# Wait at most 5 seconds before timing out incomplete requests
completed_requests = gm_client.wait_until_jobs_completed(submitted_requests, timeout=5.0)
for completed_job_request in completed_requests:
    check_request_status(completed_job_request)
