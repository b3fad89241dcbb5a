"""Contract: the database refuses to change or remove events, whatever the code path."""

import pytest
from django.db import DatabaseError, connection, transaction

from eventlog import guards
from eventlog.models import Event
from eventlog.store import NewEvent, Stream, append
from tests.fixture_app.events import Tick

pytestmark = [pytest.mark.contract, pytest.mark.django_db]


@pytest.fixture
def stored():
    append([NewEvent(Stream("t", "1"), Tick(n=1)), NewEvent(Stream("t", "1"), Tick(n=2))])
    return Event.objects.order_by("position")


def refused(fn):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        fn()


def test_orm_update_and_delete_are_refused(stored):
    event = stored.first()
    event.payload = {"n": 99}
    refused(event.save)
    refused(lambda: Event.objects.filter(pk=event.pk).update(type="fixture.other"))
    refused(event.delete)
    refused(lambda: Event.objects.all().delete())
    assert list(Event.objects.values_list("payload", flat=True)) == [{"n": 1}, {"n": 2}]


def test_raw_sql_update_and_delete_are_refused(stored):
    def raw(sql):
        def run():
            with connection.cursor() as cursor:
                cursor.execute(sql)

        return run

    refused(raw("UPDATE eventlog_event SET version = version + 10"))
    refused(raw("DELETE FROM eventlog_event"))
    assert Event.objects.count() == 2


def test_truncate_is_refused_on_postgresql(stored, postgres_only):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE eventlog_event")
    assert Event.objects.count() == 2


def test_application_role_may_only_select_and_insert(stored, postgres_only):
    role = "advtrain_contract_app_role"
    with transaction.atomic():  # rolled back with the test: the role does not outlive it
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {role}")
            for statement in guards.app_role_grants_sql(role):
                cursor.execute(statement)
            cursor.execute(f"SET LOCAL ROLE {role}")
            append([NewEvent(Stream("t", "2"), Tick(n=3))])
            for sql in ("UPDATE eventlog_event SET version = 7", "DELETE FROM eventlog_event",
                        "TRUNCATE eventlog_event"):
                with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
                    cursor.execute(sql)
            cursor.execute("RESET ROLE")
    assert Event.objects.count() == 3


def test_app_role_sql_command_prints_the_grants():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("eventlog_app_role_sql", "advtrain_app", stdout=out)
    assert 'REVOKE UPDATE, DELETE, TRUNCATE ON eventlog_event FROM "advtrain_app";' in out.getvalue()
