"""Writing rows on the hot paths without the ORM's query compiler.

Placing an order inserts an order, its lines, its first event and its idempotency key, and bumps
the customer's order count; paying and shipping bump counters and take an invoice number.
Through `Model.save()`, `bulk_create`, `QuerySet.update` or a create-then-update each statement
costs about a millisecond of CPU on the bench machine, most of it compiling, several times what
PostgreSQL spends on it (bench/README.md).
"""

from collections.abc import Sequence
from typing import Any

from django.db import connections, router
from django.db.models import Model


def insert_instances(instances: Sequence[Model]) -> None:
    """Insert new instances of one model in one statement and set their primary keys.

    What `bulk_create` does, minus its compiler. Each field prepares its own value
    (`pre_save` fills `auto_now`/`auto_now_add`, `get_db_prep_save` adapts it), so the rows
    are stored exactly as the ORM stores them. Like `bulk_create`, it sends no model signals:
    callers send their own custom signal for what they wrote (design rule 8). For plain models
    only: one table (no multi-table inheritance), no generated columns.
    """
    if not instances:
        return
    model = type(instances[0])
    meta = model._meta
    if meta.parents or any(type(instance) is not model for instance in instances):
        raise TypeError("insert_instances writes instances of one model with its own table")
    connection = connections[router.db_for_write(model)]
    fields = [
        field
        for field in meta.concrete_fields
        if field is not meta.auto_field and not getattr(field, "generated", False)
    ]
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [
        field.get_db_prep_save(field.pre_save(instance, True), connection)
        for instance in instances
        for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} "
            f"({', '.join(quote(field.column) for field in fields)}) "
            f"VALUES {', '.join([row] * len(instances))} RETURNING {quote(meta.pk.column)}",
            params,
        )
        keys = cursor.fetchall()
    for instance, (key,) in zip(instances, keys, strict=True):
        instance.pk = key
        instance._state.adding = False
        instance._state.db = connection.alias


def upsert_adding(
    model: type[Model], *, key: tuple[str, ...], fields: tuple[str, ...], rows: Sequence[tuple]
) -> list[tuple]:
    """Add each row's `fields` values to the stored row whose `key` fields match, creating it
    with these values where there is none, in one statement; return the new values of `fields`
    (in no particular order).

    `INSERT … ON CONFLICT (key) DO UPDATE SET f = f + excluded.f RETURNING` is the SQL form of
    an F() bump with create-if-missing: the database adds under the row lock, so concurrent
    bumps never lose one, and a rolled-back transaction takes its addition back. Rows are
    written in key order, so two transactions bumping the same rows lock them in the same order.
    Each row is the key values followed by the field values. Needs a unique constraint on `key`.
    """
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    columns = [meta.get_field(name) for name in (*key, *fields)]
    names = [quote(column.column) for column in columns]
    key_names, field_names = names[: len(key)], names[len(key) :]
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    params = [
        column.get_db_prep_save(value, connection)
        for values in sorted(rows)
        for column, value in zip(columns, values, strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join([row] * len(rows))} "
            f"ON CONFLICT ({', '.join(key_names)}) DO UPDATE SET "
            + ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in field_names)
            + f" RETURNING {', '.join(field_names)}",
            params,
        )
        return cursor.fetchall()


def update_adding(model: type[Model], *, pk: Any, deltas: dict[str, Any]) -> int:
    """Add each of `deltas` to its field of the row `pk` in one statement; return the number of
    rows changed (0 when there is no such row).

    `UPDATE … SET f = f + %s WHERE pk = %s`, what `filter(pk=…).update(f=F("f") + delta)`
    sends, written out: the customer's order count is bumped after every checkout, where the
    ORM's compilation of that UPDATE cost more CPU than PostgreSQL spends running it.
    """
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [meta.get_field(name) for name in deltas]
    columns = [quote(field.column) for field in fields]
    assignments = ", ".join(f"{column} = {column} + %s" for column in columns)
    params = [
        field.get_db_prep_save(delta, connection)
        for field, delta in zip(fields, deltas.values(), strict=True)
    ]
    params.append(meta.pk.get_db_prep_save(pk, connection))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s",
            params,
        )
        return cursor.rowcount
