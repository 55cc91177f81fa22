"""Writing new rows on the checkout's hot path without the ORM's query compiler.

Placing an order inserts an order, its lines, its first event and its idempotency key. Through
`Model.save()` or `bulk_create` each INSERT costs about a millisecond of CPU on the bench machine,
most of it compiling the statement, several times what PostgreSQL spends on it (bench/README.md).
"""

from collections.abc import Sequence

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
