"""Record creates, updates and deletes of every model registered with `audit.registry`.

Connected per registered model (one dispatch_uid per model and signal) when the model is
registered, so unregistered models pay nothing. They run inside the saving transaction: an
entry commits or rolls back with the change it records.
"""

from django.db.models.signals import post_delete, post_save, pre_save

from audit import registry
from audit.models import AuditAction
from audit.services import audit_diff, audit_record, audit_snapshot

# Where the pre_save snapshot waits for post_save on the instance being saved.
SNAPSHOT_ATTRIBUTE = "_audit_before"


def snapshot_before_save(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    """Read the stored values of an existing row, so post_save can tell what changed.

    The stored row, not the instance's loaded state: the instance may have been loaded long
    ago or built by hand with the pk of an existing row.
    """
    setattr(instance, SNAPSHOT_ATTRIBUTE, None)
    if raw or instance.pk is None:
        return
    fields = _fields(sender, update_fields)
    stored = (
        sender._base_manager.using(kwargs.get("using"))
        .filter(pk=instance.pk)
        .only(*(field.attname for field in fields))
        .first()
    )
    if stored is not None:
        setattr(instance, SNAPSHOT_ATTRIBUTE, audit_snapshot(instance=stored, fields=fields))


def record_save(sender, instance, created, raw=False, update_fields=None, **kwargs) -> None:
    """Write a create entry, or an update entry with the changed fields; nothing for no-ops."""
    if raw:
        return
    after = audit_snapshot(instance=instance, fields=_fields(sender, update_fields))
    before = getattr(instance, SNAPSHOT_ATTRIBUTE, None)
    setattr(instance, SNAPSHOT_ATTRIBUTE, None)
    if created or before is None:
        changes = {name: [None, value] for name, value in after.items()}
        audit_record(action=AuditAction.CREATE, obj=instance, changes=changes)
        return
    changes = audit_diff(before=before, after=after)
    if changes:
        audit_record(action=AuditAction.UPDATE, obj=instance, changes=changes)


def record_delete(sender, instance, **kwargs) -> None:
    """Write a delete entry with the values the object had."""
    fields = registry.audited_model(sender).fields
    changes = {
        name: [value, None]
        for name, value in audit_snapshot(instance=instance, fields=fields).items()
    }
    audit_record(action=AuditAction.DELETE, obj=instance, changes=changes)


def _fields(model, update_fields):
    fields = registry.audited_model(model).fields
    if update_fields is None:
        return fields
    return tuple(
        field for field in fields if field.name in update_fields or field.attname in update_fields
    )


def _connect(audited: registry.AuditedModel) -> None:
    label = audited.model._meta.label_lower
    pre_save.connect(
        snapshot_before_save,
        sender=audited.model,
        dispatch_uid=f"audit.snapshot_before_save.{label}",
    )
    post_save.connect(record_save, sender=audited.model, dispatch_uid=f"audit.record_save.{label}")
    post_delete.connect(
        record_delete, sender=audited.model, dispatch_uid=f"audit.record_delete.{label}"
    )


registry.on_register(_connect)
