"""Many categories, products and variants written at once, for the catalog import.

Set-based, so a batch of thousands of rows costs a handful of statements, not a save per row.
Such writes send no model signals: `products_upsert` records the audit entries of what it
created or changed itself and sends `catalog_changed` for the products it touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Min, Q
from django.utils.text import slugify

from audit.registry import audited_fields
from audit.services import AuditBatch
from catalog.models import Category, Product, Variant
from catalog.services.search import product_search_document
from catalog.signals import catalog_changed
from core.sql import insert_rows, update_rows

# Slug lookups of clashing names are OR-ed prefix queries; more per query makes a slow plan.
SLUG_PREFIX_QUERY_SIZE = 200
DEFAULT_THRESHOLD = Variant._meta.get_field("low_stock_threshold").default


@dataclass(frozen=True)
class ProductValues:
    """A product by name, as a batch gives it; a `description` of None leaves the stored one."""

    name: str
    category: Category | None
    description: str | None


@dataclass(frozen=True)
class VariantValues:
    """A variant by SKU, of the product named `product`, as a batch gives it.

    A None leaves the stored value; a new variant gets the model's default.
    """

    sku: str
    product: str
    name: str
    price: Decimal
    low_stock_threshold: int | None
    is_active: bool | None


@dataclass
class ProductsUpserted:
    """What `products_upsert` wrote, and the id of every SKU it was given."""

    variant_ids: dict[str, int]
    products_created: int = 0
    products_updated: int = 0
    variants_created: int = 0
    variants_updated: int = 0


@transaction.atomic
def category_paths_ensure(
    *, paths: set[tuple[str, ...]]
) -> tuple[dict[tuple[str, ...], Category], int]:
    """Return the category of every path (`("Parent", "Child")`) and how many were created.

    The missing nodes are saved one by one: categories are few, and their model signals keep
    the audit trail and caches right. Sends no custom signal; requests no tasks.
    """
    found: dict[tuple[str, ...], Category] = {}
    created_count = 0
    nodes = sorted({path[:depth] for path in paths for depth in range(1, len(path) + 1)}, key=len)
    for node in nodes:
        parent_id = found[node[:-1]].pk if len(node) > 1 else None
        category = Category.objects.filter(parent_id=parent_id, name=node[-1]).first()
        if category is None:
            slug = slugs_free(model=Category, names=["-".join(node)])[0]
            category, created = Category.objects.get_or_create(
                parent_id=parent_id, name=node[-1], defaults={"slug": slug}
            )
            created_count += created
        found[node] = category
    return found, created_count


def slugs_free(
    *, model: type[Product] | type[Category], names: list[str], taken: set[str] | None = None
) -> list[str]:
    """Return free slugs for `names`, in order: `base`, else `base-2`, `base-3`, ...

    Set-based: one query for the bases, one prefix query per few hundred bases that clash.
    `taken` collects the slugs handed out, so later calls in one import do not reuse them.
    """
    max_length = model._meta.get_field("slug").max_length - 8
    fallback = model._meta.model_name
    bases = [slugify(name)[:max_length].strip("-") or fallback for name in names]
    taken = taken if taken is not None else set()
    wanted = sorted(set(bases))
    stored = set(model.objects.filter(slug__in=wanted).values_list("slug", flat=True))
    clashing = sorted(base for base in wanted if base in stored or base in taken)
    for start in range(0, len(clashing), SLUG_PREFIX_QUERY_SIZE):
        prefixes = Q()
        for base in clashing[start : start + SLUG_PREFIX_QUERY_SIZE]:
            prefixes |= Q(slug__startswith=f"{base}-")
        stored.update(model.objects.filter(prefixes).values_list("slug", flat=True))
    slugs = []
    for base in bases:
        candidate, number = base, 1
        while candidate in stored or candidate in taken:
            number += 1
            candidate = f"{base}-{number}"
        taken.add(candidate)
        slugs.append(candidate)
    return slugs


@transaction.atomic
def products_upsert(
    *,
    products: list[ProductValues],
    variants: list[VariantValues],
    product_ids: dict[str, int],
    actor=None,
) -> ProductsUpserted:
    """Create or update products by name and their variants by SKU; return what changed.

    `product_ids` maps names to ids and gains the products found and created, so a caller writing
    many batches looks each name up once; a name it lacks is the oldest product of that name, else
    a new one with a free slug. Every write compares with what is stored, so the same values twice
    change nothing; the audit trail gets one INSERT per action. Sends
    `catalog_changed(product_ids=...)` for the products created or changed (a variant moved to
    another product: both); requests no tasks.
    """
    skus_of: dict[str, list[str]] = {}
    for variant in variants:
        skus_of.setdefault(variant.product, []).append(variant.sku)
    audit = AuditBatch()
    upserted = ProductsUpserted(variant_ids={})
    changed = _products_write(products, skus_of, product_ids, upserted, audit)
    changed |= _variants_write(variants, product_ids, upserted, audit)
    audit.record(actor=actor)
    if changed:
        catalog_changed.send(sender=products_upsert, product_ids=sorted(changed))
    return upserted


def _products_write(
    products: list[ProductValues],
    skus_of: dict[str, list[str]],
    product_ids: dict[str, int],
    upserted: ProductsUpserted,
    audit: AuditBatch,
) -> set[int]:
    """Update changed products and create new ones; return the ids of both."""
    unknown = [values.name for values in products if values.name not in product_ids]
    if unknown:
        product_ids.update(
            Product.objects.filter(name__in=unknown)
            .values("name")
            .annotate(first=Min("pk"))
            .values_list("name", "first")
        )
    changed: set[int] = set()
    stored = {
        product.pk: product
        for product in Product.objects.filter(
            pk__in=[product_ids[values.name] for values in products if values.name in product_ids]
        ).only("pk", "name", "category_id", "description")
    }
    stale = []
    imported = audited_fields(Product, ("category", "description"))
    for values in products:
        product = stored.get(product_ids.get(values.name))
        if product is None:
            continue
        wanted: dict[str, Any] = {"category_id": values.category.pk if values.category else None}
        if values.description is not None:
            wanted["description"] = values.description
        if audit.assign(product, wanted, imported):
            stale.append(product)
    if stale:
        update_rows(Product, stale, ["category", "description", "updated_at"])
        upserted.products_updated += len(stale)
        changed.update(product.pk for product in stale)

    new = [values for values in products if values.name not in product_ids]
    if new:
        slugs = slugs_free(model=Product, names=[values.name for values in new])
        fresh = []
        built = []
        for values, slug in zip(new, slugs, strict=True):
            product = Product(
                name=values.name,
                slug=slug,
                description=values.description or "",
                category=values.category,
            )
            fresh.append(
                {
                    "name": values.name,
                    "slug": slug,
                    "description": product.description,
                    "category_id": product.category_id,
                    # Written with the row, the search document is already right when the
                    # batch's `catalog_changed` refresh compares it: nothing left to rewrite.
                    "search_document": product_search_document(
                        product=product, skus=skus_of.get(values.name, [])
                    ),
                }
            )
            built.append(product)
        by_slug = insert_rows(Product, fresh, key="slug")
        for row in fresh:
            product_ids[row["name"]] = by_slug[row["slug"]]
        audited = audited_fields(Product)
        for product in built:
            product.pk = by_slug[product.slug]
            audit.create(product, audited)
        upserted.products_created += len(fresh)
        changed.update(by_slug.values())
    return changed


def _variants_write(
    variants: list[VariantValues],
    product_ids: dict[str, int],
    upserted: ProductsUpserted,
    audit: AuditBatch,
) -> set[int]:
    """Create new SKUs and update changed ones, noting their ids; return the products touched."""
    stored = {
        variant.sku: variant
        for variant in Variant.objects.filter(sku__in=[values.sku for values in variants]).only(
            "pk", "sku", "product_id", "name", "price", "low_stock_threshold", "is_active"
        )
    }
    touched: set[int] = set()
    stale = []
    fresh = []
    imported = audited_fields(
        Variant, ("product", "name", "price", "low_stock_threshold", "is_active")
    )
    for values in variants:
        product_id = product_ids[values.product]
        variant = stored.get(values.sku)
        if variant is None:
            fresh.append(
                {
                    "sku": values.sku,
                    "product_id": product_id,
                    "name": values.name,
                    "price": values.price,
                    "low_stock_threshold": (
                        values.low_stock_threshold
                        if values.low_stock_threshold is not None
                        else DEFAULT_THRESHOLD
                    ),
                    "is_active": values.is_active if values.is_active is not None else True,
                }
            )
            continue
        wanted = {
            "product_id": product_id,
            "name": values.name,
            "price": values.price,
            "low_stock_threshold": values.low_stock_threshold,
            "is_active": values.is_active,
        }
        moved_from = variant.product_id
        if audit.assign(
            variant, {name: value for name, value in wanted.items() if value is not None}, imported
        ):
            touched.add(moved_from)
            stale.append(variant)
    if stale:
        update_rows(
            Variant,
            stale,
            ["product", "name", "price", "low_stock_threshold", "is_active", "updated_at"],
        )
        upserted.variants_updated += len(stale)
        touched.update(variant.product_id for variant in stale)
    upserted.variant_ids.update({sku: variant.pk for sku, variant in stored.items()})
    if fresh:
        upserted.variant_ids.update(insert_rows(Variant, fresh, key="sku"))
        upserted.variants_created += len(fresh)
        touched.update(row["product_id"] for row in fresh)
    audited = audited_fields(Variant)
    for row in fresh:
        audit.create(Variant(pk=upserted.variant_ids[row["sku"]], **row), audited)
    return touched
