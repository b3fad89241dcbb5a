"""Fixed SQL texts for the hot paths (appending, projecting, serving tasks), on both backends.

The ORM builds and compiles its SQL again on every call, which is most of a short query's
cost on the client. The statements run here are constant texts with `%s` parameters:
  * on PostgreSQL, on a plain psycopg cursor (server-side binding), so that a statement is
    prepared once per connection (`prepare_threshold`, see settings) and not planned again;
  * on SQLite, on Django's cursor, with UUIDs and datetimes passed the way Django stores them;
    `uuid_of` and `datetime_of` read such columns back the same on both backends.
Errors are Django's (`OperationalError` ...), as from the ORM.
"""

import json
import uuid
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections


def postgres() -> bool:
    return connection.vendor == "postgresql"


@contextmanager
def _cursor(params: Sequence[Any]):
    """A cursor and the parameters adapted for it."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each attribute of the `connection` proxy is a lookup
    if db.vendor == "postgresql":
        import psycopg

        db.ensure_connection()
        with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
            yield cursor, params
    else:
        with db.cursor() as cursor:
            yield cursor, [_sqlite_value(db, value) for value in params]


def _sqlite_value(db, value):
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return db.ops.adapt_datetimefield_value(value)
    return value


def rows(sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    with _cursor(params) as (cursor, adapted):
        cursor.execute(sql, adapted)
        return cursor.fetchall()


def row(sql: str, params: Sequence[Any] = ()) -> tuple | None:
    with _cursor(params) as (cursor, adapted):
        cursor.execute(sql, adapted)
        return cursor.fetchone()


def execute(sql: str, params: Sequence[Any] = ()) -> int:
    """Run a statement; the number of rows it changed."""
    with _cursor(params) as (cursor, adapted):
        cursor.execute(sql, adapted)
        return cursor.rowcount


def any_of(column: str, values: Sequence[Any]) -> tuple[str, list]:
    """A condition that `column` is one of `values`, and its parameters: one array on
    PostgreSQL (the same statement text whatever the count), one parameter each on SQLite."""
    if postgres():
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def uuid_of(value) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(value)


def datetime_of(value) -> datetime | None:
    """SQLite hands back naive UTC datetimes (or their text); PostgreSQL aware ones."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- model instances from hand-written SELECTs ---------------------------------------------


def columns(model, alias: str) -> str:
    """The select list of every concrete column of `model`, in `instance`'s order."""
    return ", ".join(f"{alias}.{field.column}" for field in model._meta.concrete_fields)


def instance(model, values: Sequence[Any]):
    """A model instance from the values of `columns(model, ...)`, as the ORM would load it."""
    readers = _readers.get(model) or _readers.setdefault(model, [_reader(f) for f in model._meta.concrete_fields])
    return model.from_db(connection.alias, None, [read(value) for read, value in zip(readers, values, strict=True)])


_readers: dict[type, list] = {}


def _reader(field):
    from django.db import models

    if isinstance(field, models.UUIDField):
        return uuid_of
    if isinstance(field, models.DateTimeField):
        return datetime_of
    if isinstance(field, models.JSONField):
        return lambda value: json.loads(value) if isinstance(value, str) else value
    if isinstance(field, models.BooleanField):
        return lambda value: value if value is None else bool(value)
    return lambda value: value
