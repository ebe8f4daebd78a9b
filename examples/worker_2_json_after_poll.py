"""README worker example 2: a different data encoder and polling behaviour.

The README's ``self.db_connections`` stands for the application's own database
handle; here a small stand-in counts rollbacks, and the worker stops after
$EXAMPLE_JOBS jobs (default: never) so the example can end.
"""
import json  # Or similarly styled library
import os

import gearman
from _hosts import hosts


class JSONDataEncoder(gearman.DataEncoder):
    @classmethod
    def encode(cls, encodable_object):
        return json.dumps(encodable_object)

    @classmethod
    def decode(cls, decodable_string):
        return json.loads(decodable_string)


class FakeDBConnections:
    rollbacks = 0

    def rollback(self):
        self.rollbacks += 1


class DBRollbackJSONWorker(gearman.GearmanWorker):
    data_encoder = JSONDataEncoder
    db_connections = FakeDBConnections()
    jobs_to_do = int(os.environ.get("EXAMPLE_JOBS", "0"))
    jobs_done = 0

    def after_job(self):
        self.jobs_done += 1
        return True

    def after_poll(self, any_activity):
        # After every select loop, let's rollback our DB connections just to be safe
        continue_working = True
        self.db_connections.rollback()
        if self.jobs_to_do and self.jobs_done >= self.jobs_to_do:
            continue_working = False
        return continue_working


worker = DBRollbackJSONWorker(hosts())
worker.register_task("json_sum", lambda job: {"sum": sum(job.data["numbers"])})
worker.work(poll_timeout=1.0)
print("worker stopped after", worker.jobs_done, "jobs and",
      worker.db_connections.rollbacks, "rollbacks")
