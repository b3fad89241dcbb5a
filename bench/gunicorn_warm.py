"""gunicorn settings for bench/load.py: each worker loads the promoted classifier before it takes
a request (else its first score query loads it: tens of seconds on a busy 2-core machine, in
the middle of the measurement, and again in every worker respawned after a kill -9), then
leaves a file in $LOAD_READY_DIR so that the load starts only once every worker is ready."""

import os
from pathlib import Path


def post_worker_init(worker):
    from django.db import connections

    from modelserve.interface import inference
    from modelserve.models import ClassifierVersion

    for version in ClassifierVersion.objects.filter(promoted=True).values_list("version", flat=True):
        inference().classifier(version)
    connections.close_all()  # this thread serves no request: its connection is not kept
    ready = os.environ.get("LOAD_READY_DIR")
    if ready:
        Path(ready, str(os.getpid())).touch()
