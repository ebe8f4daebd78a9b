"""README worker example 1: listen for a 'reverse' task and return the result."""
import gearman
from _hosts import hosts

gm_worker = gearman.GearmanWorker(hosts())


# See gearman/job.py to see attributes on the GearmanJob
# Send back a reversed version of the 'data' string
def task_listener_reverse(gearman_job):
    return gearman_job.data[::-1]  # the README's reversed() gives an iterator, not bytes


# gm_worker.set_client_id is optional
gm_worker.set_client_id('your_worker_client_id_name')
gm_worker.register_task('reverse', task_listener_reverse)

# Enter our work loop and call gm_worker.after_poll() after each time we timeout/see socket activity
gm_worker.work()
