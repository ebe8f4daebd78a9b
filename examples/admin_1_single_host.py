"""README admin client example 1: checking in on a single host."""
import gearman
from _hosts import hosts

gm_admin_client = gearman.GearmanAdminClient(hosts()[:1])

status_response = gm_admin_client.get_status()
version_response = gm_admin_client.get_version()
workers_response = gm_admin_client.get_workers()
print("status:", status_response)
print("version:", version_response)
print("workers:", workers_response)
