"""Receivers of the storefront app: keep the read cache true after every committed change.

Each one only schedules `storefront.cache` invalidation after the commit (robust): a change
that rolls back invalidates nothing, and a reader never rebuilds an entry from data a still-open
transaction is about to change. Fixture loading (`raw`) is left alone, as everywhere.
"""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from catalog.models import Category, Collection, Product, ProductImage, Variant
from catalog.signals import catalog_changed
from core.commit import on_commit_robust
from inventory.models import Warehouse
from inventory.signals import stock_changed
from reviews.signals import product_reviews_changed
from storefront import cache


@receiver(post_save, sender=Product, dispatch_uid="storefront.product_saved")
@receiver(post_delete, sender=Product, dispatch_uid="storefront.product_deleted")
def invalidate_cached_product(sender, instance, raw=False, **kwargs) -> None:
    """A product's name, text, state or slug changed, or it went: its detail and all pages."""
    if raw:
        return
    on_commit_robust(cache.products_invalidate, product_ids=[instance.pk])


@receiver(post_save, sender=Variant, dispatch_uid="storefront.variant_saved")
@receiver(post_delete, sender=Variant, dispatch_uid="storefront.variant_deleted")
@receiver(post_save, sender=ProductImage, dispatch_uid="storefront.image_saved")
@receiver(post_delete, sender=ProductImage, dispatch_uid="storefront.image_deleted")
def invalidate_cached_product_of_part(sender, instance, signal, raw=False, **kwargs) -> None:
    """A variant (its price, name, state) or an image is part of its product's entry.

    One moved to another product (staff refile a SKU) was part of the previous product's entry
    too, which catalog's pre_save noted as `_previous_product_id`; a delete moves nothing.
    """
    if raw:
        return
    product_ids = {instance.product_id}
    if signal is post_save and instance._previous_product_id is not None:
        product_ids.add(instance._previous_product_id)
    on_commit_robust(cache.products_invalidate, product_ids=sorted(product_ids))


@receiver(post_save, sender=Category, dispatch_uid="storefront.category_saved")
@receiver(post_delete, sender=Category, dispatch_uid="storefront.category_deleted")
def invalidate_cached_category(sender, instance, raw=False, **kwargs) -> None:
    """Entries show their category's slug, and category filters span the tree."""
    if raw:
        return
    on_commit_robust(cache.category_invalidate, category_id=instance.pk)


@receiver(post_save, sender=Collection, dispatch_uid="storefront.collection_saved")
@receiver(post_delete, sender=Collection, dispatch_uid="storefront.collection_deleted")
def invalidate_cached_pages_for_collection(sender, instance, raw=False, **kwargs) -> None:
    """A collection changes what lists around it show; product details are unaffected."""
    if raw:
        return
    on_commit_robust(cache.products_invalidate, product_ids=[])


@receiver(
    m2m_changed, sender=Collection.products.through, dispatch_uid="storefront.collection_products"
)
def invalidate_cached_collection_products(sender, instance, action, pk_set, **kwargs) -> None:
    """Products joined or left a collection (from either side of the relation)."""
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    product_ids = [instance.pk] if isinstance(instance, Product) else sorted(pk_set or [])
    on_commit_robust(cache.products_invalidate, product_ids=product_ids)


@receiver(catalog_changed, dispatch_uid="storefront.catalog_changed")
def invalidate_cached_products_changed_in_bulk(sender, product_ids, **kwargs) -> None:
    """Bulk paths (import, price changes) send no model signals, only this one."""
    on_commit_robust(cache.products_invalidate, product_ids=list(product_ids))


@receiver(post_save, sender=Warehouse, dispatch_uid="storefront.warehouse_saved")
@receiver(post_delete, sender=Warehouse, dispatch_uid="storefront.warehouse_deleted")
def invalidate_cache_for_warehouse(sender, instance, raw=False, **kwargs) -> None:
    """Availability counts active warehouses only, so opening or closing one changes every
    product it stocks, without a stock movement. Warehouses change rarely (staff, in the
    admin): every entry is dropped rather than the warehouse's products looked up."""
    if raw:
        return
    on_commit_robust(cache.everything_invalidate)


@receiver(stock_changed, dispatch_uid="storefront.stock_changed")
def invalidate_cached_availability(
    sender, product_ids, availability_crossed_zero, **kwargs
) -> None:
    """Entries show each variant's availability, which every stock movement changes.

    This also covers placing and cancelling an order: both move stock (reserve, release) and
    so send `stock_changed` with exactly the order's products. Separate `order_placed` and
    `order_cancelled` receivers would invalidate the same entries a second time on every
    checkout (bench/README.md, "Figures behind the code", has the cost). The signal
    carries the product ids, so nothing is read from the database after the commit. Only the
    pages showing these products are rebuilt, and the pages filtered by availability only when
    a level ran out or came back: the rest of the catalog stays cached while orders come in.
    """
    on_commit_robust(
        cache.stock_invalidate,
        product_ids=list(product_ids),
        in_stock_may_have_changed=availability_crossed_zero,
    )


@receiver(product_reviews_changed, dispatch_uid="storefront.product_reviews_changed")
def invalidate_cached_reviews(sender, product_ids, rating_changed, **kwargs) -> None:
    """Review pages show approved reviews; details and pages show the rating, and pages ordered
    or filtered by rating hold other products once it moves. A vote or a text change rebuilds
    only the review pages."""
    on_commit_robust(
        cache.reviews_invalidate, product_ids=list(product_ids), rating_changed=rating_changed
    )
