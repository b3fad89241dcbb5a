"""Property-based requests against the served schema (schemathesis, in process over WSGI).

Every operation is called with generated, schema-conforming requests under a PM's token (and
the labelling operations under a contractor's too); no response may be a 5xx, and each must
conform to the schema: a documented status, content type and body. Bounded to a few examples
per operation so the suite stays fast; part of `make test`.
"""

from contextlib import contextmanager

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.authtoken.models import Token
from rest_framework.throttling import UserRateThrottle
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.django_db

EXAMPLES = 12  # per operation and strategy
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@contextmanager
def in_the_test_transaction():
    """A WSGI request closes "old" connections when it starts and ends, which would end the
    test's transaction: Django's test client turns that off in the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def run(strategy, headers: dict) -> int:
    calls = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def fuzz(case):
        response = case.call(headers=headers)
        calls.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    fuzz()
    return len(calls)


def test_every_operation_answers_within_its_schema(world, monkeypatch):
    # A fuzz run makes hundreds of requests a minute as one user: lift the per-user rate here.
    monkeypatch.setattr(UserRateThrottle, "rate", "100000/min", raising=False)
    with in_the_test_transaction():
        schema = schemathesis.openapi.from_wsgi("/api/v1/schema", WSGIHandler())
        pm = {"Authorization": f"Token {Token.objects.get_or_create(user=world.users['pm'])[0].key}"}
        contractor = {"Authorization": f"Token {Token.objects.get_or_create(user=world.users['contractor'])[0].key}"}
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15
        calls = 0
        for operation in operations:
            positive = GenerationMode.POSITIVE
            calls += run(operation.as_strategy(positive), pm)
            if "{version}" in operation.path:  # also the served classifier, not only unknown versions
                calls += run(operation.as_strategy(positive, path_parameters={"version": world.version}), pm)
            if "labelling" in operation.definition.raw.get("tags", []):
                calls += run(operation.as_strategy(positive), contractor)
        assert calls >= len(operations) * EXAMPLES // 2
