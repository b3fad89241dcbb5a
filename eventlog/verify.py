"""Does every read model equal a replay of the log? (Used by bench/load.py and the crash tests.)

    before = snapshot()                 # every projection's tables, as multisets of rows
    rebuild_all()                       # what `manage.py rebuild_projections` does
    assert differences(before, snapshot()) == {}

A projection's tables are found from its own `reset()`: it is run in a transaction that is
rolled back, and every table its statements touch is read. A row is compared by its values,
not by an auto-increment id (a rebuild numbers rows afresh); a foreign key to a table with
such ids is replaced by the referenced row's values. Knows no other app.
"""

import re
from collections import Counter

from django.apps import apps
from django.db import connection, models, transaction

from eventlog import projections

_TABLE = re.compile(r'\b(?:FROM|JOIN|UPDATE|INTO)\s+"([A-Za-z0-9_]+)"', re.IGNORECASE)


class _Rollback(Exception):
    pass


def tables_of(projection: projections.Projection) -> set[str]:
    """The tables a projection's `reset()` reads or deletes (nothing is changed)."""
    seen: set[str] = set()

    def record(execute, sql, params, many, context):
        seen.update(_TABLE.findall(sql))
        return execute(sql, params, many, context)

    try:
        with transaction.atomic(), connection.execute_wrapper(record):
            projection.reset()
            raise _Rollback
    except _Rollback:
        pass
    return seen


def _models_by_table() -> dict[str, type[models.Model]]:
    return {model._meta.db_table: model for model in apps.get_models()}


def _auto_pk(model) -> bool:
    return isinstance(model._meta.pk, models.AutoField | models.BigAutoField | models.SmallAutoField)


def _rows(model, natural: dict) -> Counter:
    """The table's rows as a multiset of value tuples (auto ids left out, keys resolved)."""
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and _auto_pk(model))]
    names = [f.attname for f in fields]
    resolve = []
    for field in fields:
        target = field.related_model if field.is_relation else None
        resolve.append(natural.get(target) if target is not None and _auto_pk(target) else None)
    out = Counter()
    for values in model._default_manager.order_by().values_list(*names):
        out[tuple(repr(m.get(v)) if m is not None else repr(v) for v, m in zip(values, resolve))] += 1
    return out


def _natural_keys(model, natural: dict) -> dict:
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    return {
        pk: tuple(repr(v) for v in values)
        for pk, *values in model._default_manager.order_by().values_list("pk", *[f.attname for f in fields])
    }


def snapshot(names: list[str] | None = None) -> dict[str, Counter]:
    """Every row of the selected projections' tables (default: all projections)."""
    selected = [projections.get(n) for n in names] if names else projections.all_projections()
    by_table = _models_by_table()
    tables = sorted({t for p in selected for t in tables_of(p)} & set(by_table))
    chosen = [by_table[t] for t in tables]
    natural = {}
    for model in chosen:  # ids referenced by other read models: replaced by the row's values
        for field in model._meta.concrete_fields:
            target = field.related_model if field.is_relation else None
            if target is not None and _auto_pk(target) and target not in natural:
                natural[target] = _natural_keys(target, natural)
    return {model._meta.db_table: _rows(model, natural) for model in chosen}


def rebuild_all(names: list[str] | None = None) -> dict[str, int]:
    selected = [projections.get(n) for n in names] if names else projections.all_projections()
    return {p.name: projections.rebuild(p) for p in selected}


def differences(before: dict[str, Counter], after: dict[str, Counter]) -> dict[str, dict]:
    """Per table whose rows differ: how many rows only before, only after, and an example of each."""
    out = {}
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table, Counter()), after.get(table, Counter())
        if old != new:
            gone, added = old - new, new - old
            out[table] = {
                "only_before": sum(gone.values()), "only_after": sum(added.values()),
                "example_before": next(iter(gone), None), "example_after": next(iter(added), None),
            }
    return out


def replay_check(names: list[str] | None = None) -> tuple[dict[str, dict], dict[str, int]]:
    """Catch up, snapshot, rebuild from zero, snapshot again: (differences, rows per table)."""
    projections.run_all(names)
    before = snapshot(names)
    rebuild_all(names)
    after = snapshot(names)
    return differences(before, after), {t: sum(c.values()) for t, c in after.items()}
