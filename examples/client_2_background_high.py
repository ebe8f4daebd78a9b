"""README client example 2: single job, high priority, background, blocking."""
import gearman
from _hosts import hosts
from check_request_status import check_request_status

gm_client = gearman.GearmanClient(hosts())

# See gearman/job.py to see attributes on the GearmanJobRequest
submitted_job_request = gm_client.submit_job("task_name", "arbitrary binary data",
                                             priority=gearman.PRIORITY_HIGH, background=True,
                                             wait_until_complete=True)

check_request_status(submitted_job_request)
