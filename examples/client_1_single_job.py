"""README client example 1: single job, blocking."""
import gearman
from _hosts import hosts
from check_request_status import check_request_status

gm_client = gearman.GearmanClient(hosts())

# See gearman/job.py to see attributes on the GearmanJobRequest
# Defaults to PRIORITY_NONE, background=False (synchronous task), wait_until_complete=True
completed_job_request = gm_client.submit_job("task_name", "arbitrary binary data",
                                             wait_until_complete=True)
check_request_status(completed_job_request)
