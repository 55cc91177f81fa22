"""Receivers of the catalog app: connected when the app is ready.

Slugs, SKUs and previous values are filled in before the row is written; the search document
is kept current inside the saving transaction; image files leave storage and thumbnails are
requested only once the transaction has committed.
"""

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from catalog import services
from catalog.models import Category, Collection, Product, ProductImage, Variant
from catalog.signals import catalog_changed
from core.commit import on_commit_robust
from outbox.services import outbox_enqueue

# The stored values `remember_previous_values` notes as `instance._previous_<name>`.
PREVIOUS_FIELDS = {
    Variant: ("price", "is_active", "sku", "product_id"),
    Category: ("name",),
    ProductImage: ("image", "thumbnail", "product_id"),
}
PREVIOUS_NAMES = {"image": "image_name", "thumbnail": "thumbnail_name"}


@receiver(pre_save, sender=Category, dispatch_uid="catalog.fill_blank_slug.category")
@receiver(pre_save, sender=Product, dispatch_uid="catalog.fill_blank_slug.product")
@receiver(pre_save, sender=Collection, dispatch_uid="catalog.fill_blank_slug.collection")
@receiver(pre_save, sender=Variant, dispatch_uid="catalog.fill_blank_slug.variant")
def fill_blank_slug(sender, instance, raw=False, **kwargs) -> None:
    """Give a row saved without a slug (a variant without a SKU) a unique one from its name.

    A receiver so that every save path (admin, import, shell) gets one; the race with a
    concurrent save is closed by `catalog.services.save_with_unique_slug`.
    """
    if not raw:
        services.unique_value_fill(instance=instance)


@receiver(pre_save, sender=Variant, dispatch_uid="catalog.remember_previous_values.variant")
@receiver(pre_save, sender=Category, dispatch_uid="catalog.remember_previous_values.category")
@receiver(pre_save, sender=ProductImage, dispatch_uid="catalog.remember_previous_values.image")
def remember_previous_values(sender, instance, raw=False, **kwargs) -> None:
    """Note on the instance what the save is about to replace, for the post_save receivers.

    Variants: `_previous_price`, `_previous_is_active`, `_previous_sku`, `_previous_product_id`
    (the storefront cache and the search document need them); categories: `_previous_name`;
    images: `_previous_image_name`, `_previous_thumbnail_name`, `_previous_product_id`. All
    None for a new row.
    """
    fields = PREVIOUS_FIELDS[sender]
    stored = None
    if not raw and instance.pk is not None:
        stored = sender._base_manager.filter(pk=instance.pk).values(*fields).first()
    for field in fields:
        setattr(instance, f"_previous_{PREVIOUS_NAMES.get(field, field)}", stored and stored[field])
    if sender is ProductImage and stored and stored["image"] != instance.image.name:
        # A thumbnail belongs to the image it was made from; the new image gets its own.
        instance.thumbnail = ""


@receiver(post_save, sender=Product, dispatch_uid="catalog.refresh_search_document_of_product")
def refresh_search_document_of_product(sender, instance, raw=False, **kwargs) -> None:
    """Rewrite the saved product's search document (its name, description or category moved)."""
    if not raw:
        services.product_search_refresh(product_ids=[instance.pk])


@receiver(post_save, sender=Variant, dispatch_uid="catalog.refresh_search_document_of_variant")
def refresh_search_document_of_variant(sender, instance, created, raw=False, **kwargs) -> None:
    """Rewrite the product's search document when a SKU appears or changes.

    A variant moved to another product (staff correct a SKU filed under the wrong one) takes
    its SKU out of the previous product's document and into the new one's.
    """
    if raw:
        return
    previous = (instance._previous_sku, instance._previous_product_id)
    if created or previous != (instance.sku, instance.product_id):
        services.product_search_refresh(
            product_ids={instance.product_id, instance._previous_product_id} - {None}
        )


@receiver(
    post_delete, sender=Variant, dispatch_uid="catalog.refresh_search_document_after_variant_delete"
)
def refresh_search_document_after_variant_delete(sender, instance, **kwargs) -> None:
    """Drop a deleted variant's SKU from its product's search document."""
    services.product_search_refresh(product_ids=[instance.product_id])


@receiver(post_save, sender=Category, dispatch_uid="catalog.refresh_search_documents_of_category")
def refresh_search_documents_of_category(sender, instance, raw=False, **kwargs) -> None:
    """Rewrite the search documents of a renamed category's products."""
    if not raw and instance._previous_name not in (None, instance.name):
        services.product_search_refresh(
            product_ids=Product.objects.filter(category=instance).values_list("pk", flat=True)
        )


@receiver(catalog_changed, dispatch_uid="catalog.refresh_search_documents_of_batch")
def refresh_search_documents_of_batch(sender, product_ids, **kwargs) -> None:
    """Rewrite the search documents of products a bulk path wrote without model signals."""
    services.product_search_refresh(product_ids=product_ids)


@receiver(
    post_save, sender=ProductImage, dispatch_uid="catalog.request_thumbnail_and_drop_replaced_files"
)
def request_thumbnail_and_drop_replaced_files(
    sender, instance, created, raw=False, **kwargs
) -> None:
    """Request a thumbnail for a new image file; delete replaced files once the save commits.

    The thumbnail task goes through the outbox (requested in the transaction, published on
    commit); a replaced file is deleted only on commit, so a rolled-back replacement keeps it.
    """
    if raw:
        return
    if instance.image and (created or instance._previous_image_name != instance.image.name):
        outbox_enqueue(task_name="catalog.thumbnail_make", kwargs={"image_id": instance.pk})
    for field_name in ("image", "thumbnail"):
        previous = getattr(instance, f"_previous_{field_name}_name")
        if previous and previous != getattr(instance, field_name).name:
            _delete_file_on_commit(instance, field_name, previous)


@receiver(post_delete, sender=ProductImage, dispatch_uid="catalog.delete_image_files_on_commit")
def delete_image_files_on_commit(sender, instance, **kwargs) -> None:
    """Delete a deleted image's files once the delete commits (a rollback keeps them)."""
    for field_name in ("image", "thumbnail"):
        name = getattr(instance, field_name).name
        if name:
            _delete_file_on_commit(instance, field_name, name)


def _delete_file_on_commit(instance: ProductImage, field_name: str, name: str) -> None:
    """Robust: storage that fails (an object store out of reach) leaves the file behind,
    logged, and never stops the commit's later callbacks (the cache's invalidation)."""
    storage = instance._meta.get_field(field_name).storage
    on_commit_robust(storage.delete, name)
