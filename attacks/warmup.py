"""Load and warm the classifiers of open campaigns when a web process starts.

Otherwise the first contractor to pause typing after a start waits for the model to load and
for the CPU runtime to be built (19 s on a busy 2-core machine), and the first click on a word
for the sentence encoder. `config/wsgi.py` starts this in a background thread, so the process
serves pages meanwhile; a request that comes first loads the model itself, once.
"""

import logging
import threading

from django.conf import settings
from django.db import connections

from attacks.selectors import open_campaign_classifiers
from modelserve.errors import ModelserveError
from modelserve.interface import inference

logger = logging.getLogger(__name__)


def warm_open_campaign_classifiers() -> list[str]:
    """Warm each classifier an open campaign uses; the versions warmed."""
    warmed = []
    for version in open_campaign_classifiers():
        try:
            inference().warm(version)
            warmed.append(version)
        except ModelserveError as exc:  # retired, failed: its campaign's pages say so
            logger.warning("classifier %s was not warmed: %s", version, exc)
    return warmed


def warm_in_background() -> threading.Thread | None:
    if not settings.MODELSERVE_WARM_ON_START:
        return None
    thread = threading.Thread(target=_warm_logging_failures, name="warm-classifiers", daemon=True)
    thread.start()
    return thread


def _warm_logging_failures() -> None:
    try:
        warmed = warm_open_campaign_classifiers()
        if warmed:
            logger.info("classifiers ready: %s", ", ".join(warmed))
    except Exception:  # a database not migrated yet, say: the first request loads the model instead
        logger.exception("warming the open campaigns' classifiers failed")
    finally:
        connections.close_all()  # this thread serves no request: its connections are not kept
