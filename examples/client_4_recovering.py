"""README client example 4: recovering from failed connections.

Run it with every server in $GEARMAN_SERVERS down; it waits for a line on stdin
(press Enter once a server is up) before it retries the same request objects.
"""
import sys

import gearman
from _hosts import hosts

gm_client = gearman.GearmanClient(hosts())

list_of_jobs = [dict(task="task_name", data="task binary string"),
                dict(task="other_task", data="other binary string")]
failed_requests = gm_client.submit_multiple_jobs(list_of_jobs, background=False)

# Let's pretend our assigned requests' Gearman servers all failed
assert all(request.connection_failed for request in failed_requests), "All connections didn't fail!"
print("all connections failed; start a server and press Enter")
sys.stdin.readline()

# Let's pretend our assigned requests' don't fail but some simply timeout
retried_connection_failed_requests = gm_client.submit_multiple_requests(
    failed_requests, wait_until_complete=True, timeout=1.0)

timed_out_requests = [job_request for job_request in retried_connection_failed_requests
                      if job_request.timed_out]

# For our timed out requests, lets wait a little longer until they're complete
retried_timed_out_requests = gm_client.submit_multiple_requests(
    timed_out_requests, wait_until_complete=True, timeout=4.0)

for request in failed_requests:
    print(request.job.task, request.state, request.result)
