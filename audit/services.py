"""Write audit entries: explicitly (stock receipts, bulk paths) or from the model receivers.

Entries are written with the caller's connection inside its transaction, so an entry commits
or rolls back with the change it describes.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, router
from django.utils import timezone

from audit.context import SYSTEM_ACTOR_LABEL, current_actor
from audit.models import AuditAction, AuditEntry

Changes = dict[str, list[Any]]
# Types JSON stores as they are (exact types: a str enum is written by its value), so a
# snapshot skips the encoder round trip for most fields of a row.
_JSON_SCALARS = frozenset({str, int, bool})


def audit_record(*, action: str, obj: models.Model, changes: Changes, actor=None) -> AuditEntry:
    """Record one change of `obj`: `changes` is `{field: [before, after]}` of JSON values.

    `actor` defaults to the current actor (the request's user, or "system").
    Sends no signals, requests no tasks.
    """
    entry = _entry(action=action, obj=obj, changes=changes, actor=actor)
    entry.save()
    return entry


def audit_record_many(
    *, action: str, changes_by_object: Iterable[tuple[models.Model, Changes]], actor=None
) -> int:
    """Record the same kind of change of many objects in one INSERT; return the entries written.

    For bulk paths. On PostgreSQL the entries travel as one JSON array that the INSERT unpacks:
    building an AuditEntry per object and binding its eight values is what `bulk_create` would
    spend on the tens of thousands of rows of a catalog import. Elsewhere: `bulk_create`. Sends no
    signals, requests no tasks.
    """
    pairs = list(changes_by_object)
    connection = connections[router.db_for_write(AuditEntry)]
    if not pairs or connection.vendor != "postgresql":
        entries = [
            _entry(action=action, obj=obj, changes=changes, actor=actor) for obj, changes in pairs
        ]
        return len(AuditEntry.objects.bulk_create(entries))
    _check_action(action)
    user, label = _actor(actor)
    rows = [(obj._meta.label, str(obj.pk), str(obj)[:200], changes) for obj, changes in pairs]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {AuditEntry._meta.db_table} (actor_id, actor_label, action, "
            "object_type, object_id, object_repr, changes, created_at) "
            "SELECT %s, %s, %s, e->>0, e->>1, e->>2, e->3, %s "
            "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS r(e, n) ORDER BY n",
            [
                user.pk if user is not None else None,
                label,
                action,
                timezone.now(),
                json.dumps(rows),
            ],
        )
        return cursor.rowcount


def audit_snapshot(*, instance: models.Model, fields: Iterable[models.Field]) -> dict[str, Any]:
    """Return the JSON values of `fields` as `instance` holds them."""
    return {
        field.attname: _json_value(field, field.value_from_object(instance)) for field in fields
    }


def audit_diff(*, before: dict[str, Any], after: dict[str, Any]) -> Changes:
    """Return `{field: [before, after]}` for the fields whose value differs."""
    return {
        name: [before.get(name), value]
        for name, value in after.items()
        if name in before and before[name] != value
    }


def _actor(actor) -> tuple[Any, str]:
    """The user an entry names and its label: `actor`, else the current actor, else system."""
    user = actor if actor is not None else current_actor.get()
    if user is not None and not user.is_authenticated:
        user = None
    return user, user.get_username() if user is not None else SYSTEM_ACTOR_LABEL


def _check_action(action: str) -> None:
    if action not in AuditAction.values:
        raise ValueError(f"unknown audit action {action!r}")


def _entry(*, action: str, obj: models.Model, changes: Changes, actor) -> AuditEntry:
    _check_action(action)
    user, label = _actor(actor)
    return AuditEntry(
        actor=user,
        actor_label=label,
        action=action,
        object_type=obj._meta.label,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        changes=changes,
    )


def _json_value(field: models.Field, value: Any) -> Any:
    """Normalise a field value so that equal values compare equal and store as JSON.

    Decimals are written with the field's places ("10" and "10.00" are one price); files by
    their storage name; dates, times and UUIDs as Django's JSON encoder writes them.
    """
    if value is None:
        return None
    if isinstance(field, models.FileField):
        return (value.name or "") if hasattr(value, "name") else str(value)
    value = field.to_python(value)
    if type(value) in _JSON_SCALARS:
        return value
    if isinstance(field, models.DecimalField) and isinstance(value, Decimal):
        return str(value.quantize(Decimal(1).scaleb(-field.decimal_places)))
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


@dataclass
class AuditBatch:
    """Collect the audit entries of a bulk write, to record them together when it is done.

    Bulk writes send no model signals, so the audit receivers never see them; the writer notes
    each row it creates or changes here (the changes as the receivers would write them) and
    records them with one INSERT per action.
    """

    created: list[tuple[models.Model, Changes]] = field(default_factory=list)
    updated: list[tuple[models.Model, Changes]] = field(default_factory=list)

    def create(self, instance: models.Model, fields: tuple[models.Field, ...]) -> None:
        """Note a row the bulk write created, with the values of its audited `fields`."""
        snapshot = audit_snapshot(instance=instance, fields=fields)
        self.created.append((instance, {name: [None, value] for name, value in snapshot.items()}))

    def assign(
        self, instance: models.Model, values: dict[str, Any], fields: tuple[models.Field, ...]
    ) -> bool:
        """Set the `values` (by attname) that differ on `instance`; return whether any did.

        The change is noted for the audit trail, with the audited `fields` before and after.
        """
        changed = {
            name: value for name, value in values.items() if getattr(instance, name) != value
        }
        if not changed:
            return False
        before = audit_snapshot(instance=instance, fields=fields)
        for name, value in changed.items():
            setattr(instance, name, value)
        after = audit_snapshot(instance=instance, fields=fields)
        self.updated.append((instance, audit_diff(before=before, after=after)))
        return True

    def record(self, *, actor) -> None:
        """Write the entries noted so far, as done by `actor`."""
        audit_record_many(action=AuditAction.CREATE, changes_by_object=self.created, actor=actor)
        audit_record_many(action=AuditAction.UPDATE, changes_by_object=self.updated, actor=actor)
