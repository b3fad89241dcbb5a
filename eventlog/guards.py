"""Database-side guards of the event table: commit order and immutability.

PostgreSQL
  * Ordering: a BEFORE INSERT ... FOR EACH STATEMENT trigger calls
    `eventlog_take_append_lock()`, a transaction-level advisory lock. A second writer blocks
    before it draws a position, so position order equals commit order whichever code path
    inserts (ORM, bulk_create, admin, raw SQL). A writer that had to wait for the lock finds
    `WAITED_SETTING` set for the rest of its transaction (`eventlog.store` then lets
    it commit before its flush: see "durability" there).
  * Versions: `eventlog.store`'s INSERT numbers each stream's events from the stream's head,
    read by `eventlog_stream_head()` under that lock, and checks the versions the writer
    expects (`eventlog_version_conflict()`, SQLSTATE EV409), so an append is one statement.
    The unique (stream, version) constraint backs this for any other code path.
  * Immutability: row triggers refuse UPDATE and DELETE, a statement trigger refuses TRUNCATE.

SQLite
  * Ordering: a single writer; with IMMEDIATE transactions the write lock is taken at BEGIN.
  * Versions: assigned by `eventlog.store` inside that transaction.
  * Immutability: row triggers RAISE(ABORT) on UPDATE and DELETE (SQLite has no TRUNCATE).

Triggers are guard rails (an owner can disable them). The boundary in production is the
application role, which has only SELECT and INSERT on the event table: `app_role_grants_sql`.

SQLite drops a table's triggers when a migration rebuilds the table: a migration that alters
`eventlog_event` must call `install` again afterwards.
"""

from contextlib import contextmanager

from django.db import connection as default_connection

TABLE = "eventlog_event"
# Fixed key of the append lock: the bytes of "eventlog" read as an integer.
APPEND_LOCK_KEY = int.from_bytes(b"eventlog", "big")
VERSION_CONFLICT_SQLSTATE = "EV409"

WAITED_SETTING = "eventlog.append_waited"  # "on" once a transaction waited for the lock
_PG_LOCK_BODY = f"""BEGIN
    IF NOT pg_try_advisory_xact_lock({APPEND_LOCK_KEY}) THEN
        PERFORM set_config('{WAITED_SETTING}', 'on', true);
        PERFORM pg_advisory_xact_lock({APPEND_LOCK_KEY});
    END IF;
END;"""

_POSTGRES_INSTALL = [
    f"""
    CREATE OR REPLACE FUNCTION eventlog_take_append_lock() RETURNS void
    LANGUAGE plpgsql AS $$ {_PG_LOCK_BODY} $$
    """,
    """
    CREATE OR REPLACE FUNCTION eventlog_serialise_append() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN PERFORM eventlog_take_append_lock(); RETURN NULL; END; $$
    """,
    """
    CREATE OR REPLACE FUNCTION eventlog_stream_head(p_type text, p_id text) RETURNS integer
    LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        head integer;
    BEGIN
        -- VOLATILE: a fresh snapshot, so it sees every append committed before the append
        -- lock was granted to the calling statement. ORDER BY ... LIMIT 1 reads one index
        -- entry, where max() may scan the whole stream.
        SELECT version INTO head FROM eventlog_event
            WHERE stream_type = p_type AND stream_id = p_id ORDER BY version DESC LIMIT 1;
        RETURN coalesce(head, 0);
    END;
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION eventlog_version_conflict(
        p_type text, p_id text, p_actual integer, p_expected integer) RETURNS integer
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'stream %/% is at version %, expected %', p_type, p_id, p_actual, p_expected
            USING ERRCODE = 'EV409',
                  DETAIL = json_build_object('stream_type', p_type, 'stream_id', p_id,
                      'actual', p_actual, 'expected', p_expected)::text;
    END;
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION eventlog_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'eventlog_event is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$
    """,
    f"DROP TRIGGER IF EXISTS eventlog_event_serialise ON {TABLE}",
    f"""CREATE TRIGGER eventlog_event_serialise BEFORE INSERT ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION eventlog_serialise_append()""",
    f"DROP TRIGGER IF EXISTS eventlog_event_immutable ON {TABLE}",
    f"""CREATE TRIGGER eventlog_event_immutable BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION eventlog_refuse_change()""",
    f"DROP TRIGGER IF EXISTS eventlog_event_no_truncate ON {TABLE}",
    f"""CREATE TRIGGER eventlog_event_no_truncate BEFORE TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION eventlog_refuse_change()""",
]

_SQLITE_TRIGGERS = {
    "eventlog_event_no_update": "UPDATE",
    "eventlog_event_no_delete": "DELETE",
}


def _sqlite_install() -> list[str]:
    return [
        f"""CREATE TRIGGER IF NOT EXISTS {name} BEFORE {op} ON {TABLE}
            BEGIN SELECT RAISE(ABORT, 'eventlog_event is append-only: {op} refused'); END"""
        for name, op in _SQLITE_TRIGGERS.items()
    ]


def _sqlite_uninstall() -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {name}" for name in _SQLITE_TRIGGERS]


def install(connection=default_connection) -> None:
    statements = _POSTGRES_INSTALL if connection.vendor == "postgresql" else _sqlite_install()
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def uninstall(connection=default_connection) -> None:
    if connection.vendor == "postgresql":
        statements = [
            f"DROP TRIGGER IF EXISTS eventlog_event_serialise ON {TABLE}",
            f"DROP TRIGGER IF EXISTS eventlog_event_immutable ON {TABLE}",
            f"DROP TRIGGER IF EXISTS eventlog_event_no_truncate ON {TABLE}",
            "DROP FUNCTION IF EXISTS eventlog_serialise_append()",
            "DROP FUNCTION IF EXISTS eventlog_stream_head(text, text)",
            "DROP FUNCTION IF EXISTS eventlog_version_conflict(text, text, integer, integer)",
            "DROP FUNCTION IF EXISTS eventlog_refuse_change()",
            "DROP FUNCTION IF EXISTS eventlog_take_append_lock()",
        ]
    else:
        statements = _sqlite_uninstall()
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


@contextmanager
def immutability_suspended(connection=default_connection):
    """Let the table be emptied; used only by `manage.py flush` under test settings."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
    else:
        with connection.cursor() as cursor:
            for sql in _sqlite_uninstall():
                cursor.execute(sql)
        try:
            yield
        finally:
            install(connection)


@contextmanager
def ordering_guard_disabled(connection=default_connection):
    """Make the append lock a no-op, for the control run that proves the order test can fail.

    PostgreSQL only: SQLite's single writer orders appends by itself.
    """
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION eventlog_take_append_lock() RETURNS void "
            "LANGUAGE plpgsql AS $$ BEGIN RETURN; END; $$"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(_POSTGRES_INSTALL[0])


def app_role_grants_sql(role: str) -> list[str]:
    """Grants for the production application role: SELECT and INSERT only on the event table.

    Run by the owner role (the one that runs migrations) after `migrate`.
    """
    quoted = '"' + role.replace('"', '""') + '"'
    return [
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {TABLE} FROM {quoted}",
        f"GRANT EXECUTE ON FUNCTION eventlog_take_append_lock() TO {quoted}",
        f"GRANT EXECUTE ON FUNCTION eventlog_stream_head(text, text) TO {quoted}",
    ]
