"""The API tests' world (two vendors, their people, labelled data, a served classifier and a
training run) for the reliability tests too."""

from tests.api.conftest import client_for, fresh_throttles, no_job_queue, world  # noqa: F401 - fixtures
