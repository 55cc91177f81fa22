"""Unique slugs and SKUs: filled from the name when blank, regenerated when a race takes them."""

from django.db import IntegrityError, models, transaction
from django.utils.text import slugify

from catalog.models import Category, Collection, Product, Variant

# A generated slug or SKU that a concurrent transaction took first is regenerated this many
# times; two more than the number of saves that plausibly race for one name.
UNIQUE_SAVE_ATTEMPTS = 5
# Room kept at the end of a generated slug or SKU for a "-<n>" suffix.
SUFFIX_ROOM = 6

# The field each model generates when blank, and the text it is generated from.
GENERATED_FIELD = {Category: "slug", Product: "slug", Collection: "slug", Variant: "sku"}


def unique_value_fill(*, instance: models.Model) -> None:
    """Fill a blank slug (or a variant's blank SKU) with a free value derived from its name.

    Check-then-write: another transaction may take the same value before this one commits;
    `save_with_unique_slug` catches the unique violation and generates again.
    """
    field_name = GENERATED_FIELD[type(instance)]
    if getattr(instance, field_name):
        return
    field = instance._meta.get_field(field_name)
    base = _base_value(instance)[: field.max_length - SUFFIX_ROOM].strip("-")
    taken = set(
        type(instance)
        ._base_manager.filter(**{f"{field_name}__startswith": base})
        .exclude(pk=instance.pk)
        .values_list(field_name, flat=True)
    )
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}-{number}"
    setattr(instance, field_name, candidate)
    instance._generated_field = field_name


def _base_value(instance: models.Model) -> str:
    if isinstance(instance, Variant):
        parts = [instance.product.slug or slugify(instance.product.name), slugify(instance.name)]
        return "-".join(part for part in parts if part).upper() or "SKU"
    return slugify(instance.name) or instance._meta.model_name


def save_with_unique_slug(*, instance: models.Model) -> models.Model:
    """Save a category, product, collection or variant, regenerating a taken slug or SKU.

    A slug or SKU filled in by `unique_value_fill` may be taken by a concurrent transaction
    between the check and the INSERT; the unique constraint then fails the save, which is
    rolled back to a savepoint and retried with a freshly generated value. A value the caller
    chose is never replaced: its collision is raised.
    """
    attempts_left = UNIQUE_SAVE_ATTEMPTS
    while True:
        instance._generated_field = None
        try:
            with transaction.atomic():
                instance.save()
            return instance
        except IntegrityError:
            attempts_left -= 1
            field_name = instance._generated_field
            if field_name is None or attempts_left == 0 or not _taken(instance, field_name):
                raise
            setattr(instance, field_name, "")


def _taken(instance: models.Model, field_name: str) -> bool:
    """Whether another row now holds the value `instance` failed to save with."""
    return (
        type(instance)
        ._base_manager.filter(**{field_name: getattr(instance, field_name)})
        .exclude(pk=instance.pk)
        .exists()
    )
