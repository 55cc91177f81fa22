"""Writing rows on the hot paths without the ORM's query compiler, and many rows at once.

Placing an order inserts an order, its lines, its first event and its idempotency key, and bumps
the customer's order count; paying and shipping bump counters and take an invoice number.
Through `Model.save()`, `bulk_create`, `QuerySet.update` or a create-then-update each statement
costs more CPU compiling than PostgreSQL spends running it (bench/README.md, "Figures behind
the code"). The bulk paths (the catalog import, the stock
ledger, bulk price changes) send their rows as one array per column (`with_rows`), so a
statement's cost does not grow with placeholders or CASE branches per row.
"""

from collections.abc import Sequence
from typing import Any

from django.db import connection, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.utils import timezone


def insert_instances(instances: Sequence[Model]) -> None:
    """Insert new instances of one model in one statement and set their primary keys.

    What `bulk_create` does, minus its compiler. Each field prepares its own value
    (`pre_save` fills `auto_now`/`auto_now_add`, `get_db_prep_save` adapts it), so the rows
    are stored exactly as the ORM stores them. Like `bulk_create`, it sends no model signals:
    callers send their own custom signal for what they wrote. For plain models only: one table
    (no multi-table inheritance), no generated columns.
    """
    if not instances:
        return
    model = _model_of(instances)
    connection = connections[router.db_for_write(model)]
    sql, params = _insert_sql(instances, connection)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {_pk_column(model, connection)}", params)
        keys = [key for (key,) in cursor.fetchall()]
    _keys_set(instances, keys, connection)


def insert_with_children(parent: Model, *families: Sequence[Model]) -> None:
    """Insert `parent` and its children in one round trip, setting every key and foreign key.

    An order with its lines and its first event: a checkout made one round trip per table. Each
    family is a sequence of new instances of one model with exactly one foreign key to the
    parent's model. On PostgreSQL the parent's INSERT feeds its key to the children's INSERTs as
    data-modifying CTEs; SQLite, which has no such CTEs, gets one `insert_instances` per table.
    Rows are stored as `insert_instances` stores them, without model signals. The keys come back
    in one column, so the parent's and the children's keys must share a type.
    """
    model = _model_of([parent])
    linked = [(family, _link_to(model, _model_of(family))) for family in families if family]
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        insert_instances([parent])
        for family, link in linked:
            _point_at(parent, family, link)
            insert_instances(family)
        return
    _insert_together(parent, linked, connection)
    for family, link in linked:
        _point_at(parent, family, link)


def _point_at(parent: Model, family: Sequence[Model], link: Field) -> None:
    for child in family:
        setattr(child, link.name, parent)


def _insert_together(
    parent: Model, linked: list[tuple[Sequence[Model], Field]], connection: BaseDatabaseWrapper
) -> None:
    """`insert_with_children` on PostgreSQL: one statement, keys set on every instance."""
    pk = _pk_column(type(parent), connection)
    parent_sql, params = _insert_sql([parent], connection)
    ctes = [f"p AS ({parent_sql} RETURNING {pk})"]
    # Each key comes back tagged with its table: 0 for the parent, n for the n-th family.
    selects = [f"SELECT 0, {pk} FROM p"]
    for tag, (family, link) in enumerate(linked, start=1):
        child_sql, child_params = _insert_sql(
            family, connection, link=(link, f"(SELECT {pk} FROM p)")
        )
        child_pk = _pk_column(type(family[0]), connection)
        ctes.append(f"c{tag} AS ({child_sql} RETURNING {child_pk})")
        selects.append(f"SELECT {tag}, {child_pk} FROM c{tag}")
        params += child_params
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} {' UNION ALL '.join(selects)}", params)
        rows = cursor.fetchall()
    # Within one table, RETURNING gives the keys in the order of the VALUES rows, which
    # `bulk_create` relies on too.
    keys: dict[int, list] = {}
    for tag, key in rows:
        keys.setdefault(tag, []).append(key)
    _keys_set([parent], keys[0], connection)
    for tag, (family, _) in enumerate(linked, start=1):
        _keys_set(family, keys[tag], connection)


def _model_of(instances: Sequence[Model]) -> type[Model]:
    model = type(instances[0])
    if model._meta.parents or any(type(instance) is not model for instance in instances):
        raise TypeError("inserts write instances of one model with its own table")
    return model


def _link_to(parent: type[Model], child: type[Model]) -> Field:
    links = [
        field
        for field in child._meta.concrete_fields
        if field.is_relation and field.related_model is parent
    ]
    if len(links) != 1:
        raise TypeError(f"{child.__name__} needs exactly one foreign key to {parent.__name__}")
    return links[0]


def _pk_column(model: type[Model], connection: BaseDatabaseWrapper) -> str:
    return connection.ops.quote_name(model._meta.pk.column)


def _insert_sql(
    instances: Sequence[Model],
    connection: BaseDatabaseWrapper,
    *,
    link: tuple[Field, str] | None = None,
) -> tuple[str, list]:
    """Return `INSERT INTO table (columns) VALUES (…), …` for `instances` and its parameters.

    `link` is a foreign key written as the given SQL expression in every row instead of a value.
    """
    meta = instances[0]._meta
    fields = [
        field
        for field in meta.concrete_fields
        if field is not meta.auto_field
        and not getattr(field, "generated", False)
        and (link is None or field is not link[0])
    ]
    quote = connection.ops.quote_name
    columns = [quote(field.column) for field in fields]
    placeholders = ["%s"] * len(fields)
    if link is not None:
        columns.insert(0, quote(link[0].column))
        placeholders.insert(0, link[1])
    row = "(" + ", ".join(placeholders) + ")"
    params = [
        field.get_db_prep_save(field.pre_save(instance, True), connection)
        for instance in instances
        for field in fields
    ]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) "
        f"VALUES {', '.join([row] * len(instances))}"
    )
    return sql, params


def _keys_set(instances: Sequence[Model], keys: list, connection: BaseDatabaseWrapper) -> None:
    for instance, key in zip(instances, keys, strict=True):
        instance.pk = key
        instance._state.adding = False
        instance._state.db = connection.alias


def upsert_adding(
    model: type[Model], *, key: tuple[str, ...], fields: tuple[str, ...], rows: Sequence[tuple]
) -> list[tuple]:
    """Add each row's `fields` values to the row matching its `key`, creating it if missing.

    `INSERT … ON CONFLICT (key) DO UPDATE SET f = f + excluded.f RETURNING` is the SQL form of an
    F() bump with create-if-missing: the database adds under the row lock, so concurrent bumps
    never lose one, and a rolled-back transaction takes its addition back. Rows are written in key
    order, so two transactions lock the same rows in the same order. Each row is the key values,
    then the field values; `key` needs a unique constraint. Returns the new values of `fields`.
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
    """Add each of `deltas` to its field of the row `pk`; return the rows changed (0 or 1).

    `UPDATE … SET f = f + %s WHERE pk = %s`, what `filter(pk=…).update(f=F("f") + delta)` sends,
    written out: the customer's order count is bumped after every checkout, where the ORM's
    compilation of that UPDATE cost more CPU than PostgreSQL spends running it.
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


def with_rows(
    *, names: tuple[str, ...], types: tuple[str, ...], rows: list[tuple], sql: str, tail: list
) -> list[tuple]:
    """Run `sql` (which starts `WITH v(...) AS ({rows}) ...`) for `rows`; return what it returns.

    On PostgreSQL the rows travel as one array per column through `unnest`, so the statement
    has a handful of parameters whatever the number of rows (thousands of placeholders cost
    more to bind than the work they describe). SQLite gets a VALUES list, in chunks that stay
    under its limit of bound parameters. `tail` are the parameters after the rows.
    """
    if not rows:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{kind}[]" for kind in types)
            columns = [list(column) for column in zip(*rows, strict=True)]
            cursor.execute(sql.format(rows=f"SELECT * FROM unnest({arrays})"), columns + tail)
            return list(cursor.fetchall()) if cursor.description else []
        result: list[tuple] = []
        chunk = max(1, (connection.features.max_query_params - len(tail)) // len(names))
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            row = "(" + ", ".join(["%s"] * len(names)) + ")"
            params = [value for values in part for value in values]
            cursor.execute(sql.format(rows="VALUES " + ", ".join([row] * len(part))), params + tail)
            if cursor.description:
                result.extend(cursor.fetchall())
        return result


def update_rows(model: type[Model], instances: Sequence[Model], names: Sequence[str]) -> None:
    """Write the fields `names` of saved instances back in one statement, matched by primary key.

    `bulk_update` writes a CASE per field with a branch per row, which PostgreSQL evaluates for
    every row it updates, so its cost grows with the square of the rows; here they are joined
    instead (`with_rows`: one array per column on PostgreSQL, VALUES on SQLite). An `auto_now`
    field among `names` is stamped as `save()` would. Like `bulk_update`, it sends no model signals.
    """
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in names)]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    values = ", ".join(quote(column.column) for column in columns)
    assignments = ", ".join(
        f"{quote(column.column)} = v.{quote(column.column)}" for column in columns[1:]
    )
    pk = quote(meta.pk.column)
    with_rows(
        names=tuple(column.column for column in columns),
        types=tuple(column.db_type(connection).split("(")[0] for column in columns),
        rows=[
            tuple(
                column.get_db_prep_save(column.pre_save(instance, False), connection)
                for column in columns
            )
            for instance in instances
        ],
        sql=(
            f"WITH v({values}) AS ({{rows}}) "
            f"UPDATE {table} SET {assignments} FROM v WHERE {table}.{pk} = v.{pk}"
        ),
        tail=[],
    )


def insert_rows(model: type[Model], rows: list[dict[str, Any]], *, key: str) -> dict[Any, int]:
    """Insert new rows given as {attname: value}; return their ids by the unique `key`.

    Every row names the same fields. Building a model instance and binding a placeholder per value
    is most of what a 100,000-row import would spend otherwise, so on PostgreSQL this is one
    `INSERT ... SELECT ... FROM unnest(...)`: the columns that differ per row as one array each,
    every other column as one parameter holding the model's default (timestamps: now). Elsewhere:
    `bulk_create`. Like `bulk_create`, it sends no model signals.
    """
    if connection.vendor != "postgresql":
        created = model.objects.bulk_create([model(**row) for row in rows])
        return {getattr(instance, key): instance.pk for instance in created}
    template = model()
    now = timezone.now()
    varying = list(rows[0])
    columns_of = [column for column in model._meta.concrete_fields if not column.primary_key]
    selected, constants, arrays, names = [], [], [], []
    for column in columns_of:
        if column.attname in varying:
            selected.append(f"v.{column.column}")
            names.append(column.column)
            kind = column.db_type(connection).split("(")[0]
            arrays.append((f"%s::{kind}[]", [row[column.attname] for row in rows]))
            continue
        if getattr(column, "auto_now", False) or getattr(column, "auto_now_add", False):
            value = now
        else:
            value = getattr(template, column.attname)
        selected.append("%s")
        constants.append(column.get_db_prep_save(value, connection))
    table = model._meta.db_table
    key_column = model._meta.get_field(key).column
    sql = (
        f"INSERT INTO {table} ({', '.join(column.column for column in columns_of)}) "
        f"SELECT {', '.join(selected)} FROM unnest({', '.join(cast for cast, _ in arrays)}) "
        f"AS v({', '.join(names)}) RETURNING id, {key_column}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, constants + [values for _, values in arrays])
        return {row_key: pk for pk, row_key in cursor.fetchall()}
