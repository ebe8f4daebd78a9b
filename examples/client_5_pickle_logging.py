"""README client example 5: a different data encoder and logging options."""
import logging
import pickle

import gearman
from _hosts import hosts


class PickleDataEncoder(gearman.DataEncoder):
    @classmethod
    def encode(cls, encodable_object):
        return pickle.dumps(encodable_object)

    @classmethod
    def decode(cls, decodable_string):
        return pickle.loads(decodable_string)


class LoggingPickleExampleClient(gearman.GearmanClient):
    data_encoder = PickleDataEncoder

    def wait_until_jobs_completed(self, job_requests, timeout=None):
        self.log.info("Waiting for jobs to complete...")
        output_results = super(LoggingPickleExampleClient, self).wait_until_jobs_completed(
            job_requests, timeout=timeout)
        self.log.info("Finished waiting for jobs to complete...")
        return output_results


logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
client = LoggingPickleExampleClient(hosts())
request = client.submit_job("pickle_echo", {"numbers": [1, 2, 3], "text": "héllo"},
                            poll_timeout=10)
print(request.state, request.result)
