"""Search documents: the text full-text search runs over, kept in the product's row."""

from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction

from catalog.models import Product, Variant
from core.sql import update_rows

# Rows per UPDATE when search documents are rewritten in bulk.
SEARCH_REFRESH_BATCH_SIZE = 1000


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
