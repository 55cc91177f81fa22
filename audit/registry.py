"""Which models the audit trail records, and which of their fields.

Apps register their models in `AppConfig.ready()`; the audit receivers are then connected for
exactly those models (one `dispatch_uid` per model and signal), so unregistered models pay
nothing on save. The audit trail is the lowest layer: it never imports the apps it records.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import models


@dataclass(frozen=True)
class AuditedModel:
    model: type[models.Model]
    fields: tuple[models.Field, ...]


_audited: dict[type[models.Model], AuditedModel] = {}
_connectors: list[Callable[[AuditedModel], None]] = []


def audit_register(
    model: type[models.Model],
    *,
    fields: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> AuditedModel:
    """Record every create, update and delete of `model` with a field-level diff.

    `fields` limits the diff to those field names (default: every concrete field); `exclude`
    drops some (derived columns such as a search document). The primary key and `auto_now` /
    `auto_now_add` timestamps are always left out: they change on every save and would make a
    save that changed nothing look like an update. Registering a model twice replaces the
    first registration.
    """
    wanted = set(fields) if fields is not None else None
    excluded = set(exclude)
    concrete = [field for field in model._meta.concrete_fields]
    unknown = (wanted or set()) | excluded
    unknown -= {field.name for field in concrete}
    if unknown:
        raise ValueError(f"{model._meta.label} has no field(s) {sorted(unknown)}")
    chosen = tuple(
        field
        for field in concrete
        if not field.primary_key
        and not getattr(field, "auto_now", False)
        and not getattr(field, "auto_now_add", False)
        and (wanted is None or field.name in wanted)
        and field.name not in excluded
    )
    audited = AuditedModel(model=model, fields=chosen)
    _audited[model] = audited
    for connect in _connectors:
        connect(audited)
    return audited


def audited_model(model: type[models.Model]) -> AuditedModel | None:
    """Return the registration of `model`, or None when it is not audited."""
    return _audited.get(model)


def audited_fields(
    model: type[models.Model], names: Iterable[str] | None = None
) -> tuple[models.Field, ...]:
    """The fields of `model` the audit trail records, of those named (default: all).

    An updated row is loaded with the imported columns only: reading another would cost a
    query per row.
    """
    audited = audited_model(model)
    if audited is None:
        raise ValueError(f"{model._meta.label} is not audited")
    fields = audited.fields
    if names is None:
        return fields
    wanted = set(names)
    return tuple(field for field in fields if field.name in wanted)


def on_register(connect: Callable[[AuditedModel], None]) -> None:
    """Call `connect` for every registered model, now and for each one registered later.

    The audit receivers module uses this to connect itself to each registered model, which
    keeps the registry free of imports of the receivers (nothing imports a receivers module).
    """
    _connectors.append(connect)
    for audited in list(_audited.values()):
        connect(audited)
