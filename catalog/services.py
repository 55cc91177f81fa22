"""Write operations of the catalog: saves that fill unique slugs and SKUs, search documents,
bulk price changes and image thumbnails."""

import io
import warnings
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import PurePosixPath

from django.core.files.base import ContentFile
from django.db import IntegrityError, models, transaction
from django.utils.text import slugify
from PIL import Image, ImageOps

from audit.models import AuditAction
from audit.services import audit_record_many
from catalog.models import Category, Collection, Product, ProductImage, Variant
from catalog.signals import catalog_changed
from core.sql import update_rows

# A generated slug or SKU that a concurrent transaction took first is regenerated this many
# times; two more than the number of saves that plausibly race for one name.
UNIQUE_SAVE_ATTEMPTS = 5
# Room kept at the end of a generated slug or SKU for a "-<n>" suffix.
SUFFIX_ROOM = 6
# Rows per UPDATE when search documents are rewritten in bulk.
SEARCH_REFRESH_BATCH_SIZE = 1000
# Longest side of a thumbnail in pixels: sharp on a retina product grid, a few kB as JPEG.
THUMBNAIL_SIZE = (320, 320)
PRICE_PLACES = Decimal("0.01")

# The field each model generates when blank, and the text it is generated from.
GENERATED_FIELD = {Category: "slug", Product: "slug", Collection: "slug", Variant: "sku"}


class InvalidPrice(ValueError):
    code = "invalid_price"


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


def product_search_document(*, product: Product, skus: Iterable[str]) -> str:
    """The text full-text search runs over: name, description, category name and SKUs."""
    parts = [product.name, product.description, product.category.name if product.category else ""]
    parts.extend(sorted(skus))
    return "\n".join(part for part in parts if part)


@transaction.atomic
def product_search_refresh(*, product_ids: Iterable[int]) -> int:
    """Rewrite the search documents of these products from their rows; return how many changed.

    Set-based: per batch one SELECT of products with their categories, one of their SKUs and
    one UPDATE of the documents that differ. Sends no signal (the document is derived data),
    requests no tasks.
    """
    ids = sorted(set(product_ids))
    changed = 0
    for start in range(0, len(ids), SEARCH_REFRESH_BATCH_SIZE):
        batch = ids[start : start + SEARCH_REFRESH_BATCH_SIZE]
        skus: dict[int, list[str]] = defaultdict(list)
        for product_id, sku in Variant.objects.filter(product_id__in=batch).values_list(
            "product_id", "sku"
        ):
            skus[product_id].append(sku)
        stale = []
        for product in Product.objects.filter(pk__in=batch).select_related("category"):
            document = product_search_document(product=product, skus=skus[product.pk])
            if document != product.search_document:
                product.search_document = document
                stale.append(product)
        update_rows(Product, stale, ["search_document"])
        changed += len(stale)
    return changed


@transaction.atomic
def variant_price_bulk_set(*, prices: dict[int, Decimal], actor=None) -> int:
    """Set the prices of many variants (by id) at once; return how many prices changed.

    Prices must be positive and are rounded to cents; unknown ids are ignored. The rows are
    locked in primary-key order, so the audit trail's "before" is the price really replaced
    and concurrent bulk changes cannot deadlock. One UPDATE, one audit INSERT, one signal.

    Sends `catalog_changed(product_ids=...)` for the products whose prices changed.
    """
    wanted = {variant_id: _price(value) for variant_id, value in prices.items()}
    variants = list(Variant.objects.select_for_update().filter(pk__in=wanted).order_by("pk"))
    changed: list[tuple[Variant, dict]] = []
    for variant in variants:
        new_price = wanted[variant.pk]
        if variant.price == new_price:
            continue
        changes = {"price": [str(variant.price), str(new_price)]}
        variant.price = new_price
        changed.append((variant, changes))
    if not changed:
        return 0
    update_rows(Variant, [variant for variant, _ in changed], ["price", "updated_at"])
    audit_record_many(action=AuditAction.UPDATE, changes_by_object=changed, actor=actor)
    catalog_changed.send(
        sender=variant_price_bulk_set,
        product_ids=sorted({variant.product_id for variant, _ in changed}),
    )
    return len(changed)


def _price(value) -> Decimal:
    try:
        price = Decimal(value).quantize(PRICE_PLACES)
    except (InvalidOperation, TypeError, ValueError) as error:
        raise InvalidPrice(f"{value!r} is not a price") from error
    if not price.is_finite() or price <= 0:
        raise InvalidPrice(f"a price must be positive, not {value!r}")
    return price


def product_image_thumbnail_make(*, image_id: int) -> bool:
    """Make the thumbnail of an uploaded image; return False when there is nothing to do.

    Idempotent: an image that has a thumbnail is skipped (replacing the image clears it). The
    image is read and scaled outside any transaction; the result is attached only if the image
    row still holds the same file, otherwise the new thumbnail file is removed again.
    Sends no custom signals, requests no tasks (the image file is unchanged, so the save's
    post_save receivers ask for no second thumbnail).
    """
    image = ProductImage.objects.filter(pk=image_id).first()
    if image is None or not image.image or image.thumbnail:
        return False
    source_name = image.image.name
    content, extension = _thumbnail_bytes(image)
    storage = image._meta.get_field("thumbnail").storage
    name = storage.save(
        f"products/thumbnails/{PurePosixPath(source_name).stem}_thumb.{extension}",
        ContentFile(content),
    )
    with transaction.atomic():
        current = ProductImage.objects.select_for_update().filter(pk=image_id).first()
        if current is None or current.image.name != source_name or current.thumbnail:
            transaction.on_commit(partial(storage.delete, name))
            return False
        current.thumbnail.name = name
        current.save(update_fields=["thumbnail", "updated_at"])
    return True


def _thumbnail_bytes(image: ProductImage) -> tuple[bytes, str]:
    """The thumbnail's bytes and file extension.

    Upright as the original shows: phones store a portrait photo as a landscape picture with
    an EXIF orientation, which browsers obey and a re-encoded copy would lose. A picture big
    enough to be a decompression bomb (uploaded before the size check, or not through the
    admin) fails the task instead of taking the worker's memory.
    """
    with (
        image.image.open("rb") as source,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(source) as opened:
            opened.draft("RGB", THUMBNAIL_SIZE)  # JPEG: decode at a fraction of the size
            picture = ImageOps.exif_transpose(opened)
        picture.thumbnail(THUMBNAIL_SIZE)
        keeps_alpha = picture.mode in {"RGBA", "LA"} or "transparency" in picture.info
        output = io.BytesIO()
        if keeps_alpha:
            picture.save(output, format="PNG", optimize=True)
            return output.getvalue(), "png"
        picture.convert("RGB").save(output, format="JPEG", quality=85, optimize=True)
        return output.getvalue(), "jpg"
