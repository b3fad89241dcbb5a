"""Settings of the real `manage.py qcluster` processes that tests/reliability/test_worker_crashes.py
starts and kills: the test settings, but tasks go through the ORM broker to the cluster (not
run in-process), one worker, and a training heartbeat every fraction of a second so that a
run is seen in progress quickly. The database comes from DATABASE_URL (the test database)."""

import os

from config.settings_test import *  # noqa: F401,F403
from config.settings_test import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "sync": False, "workers": 1, "poll": 0.1}
MODELSERVE_HEARTBEAT_SECONDS = float(os.environ.get("MODELSERVE_HEARTBEAT_SECONDS", "0.2"))
