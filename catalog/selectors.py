"""Read queries of the catalog shared by the API, the admin and the order service.

Each selector decides its own joins and prefetches, so a caller cannot cause N+1 queries.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Prefetch, QuerySet

from catalog.models import Category, Product, ProductImage, Variant

# The text search configuration of the search index; the query must use the same one, or
# PostgreSQL cannot use the index (the migration builds it from `product_search_vector()`).
SEARCH_CONFIG = "english"


def product_search_vector() -> SearchVector:
    """The expression the GIN index is built on and every full-text query filters by."""
    return SearchVector("search_document", config=SEARCH_CONFIG)


def category_list() -> QuerySet[Category]:
    return Category.objects.select_related("parent").order_by("name", "id")


def product_list(*, category: str | None = None, query: str | None = None) -> QuerySet[Product]:
    """Active products by name, optionally in a category (or below it) and matching a search.

    `category` is a slug; an unknown slug matches nothing. `query` is full-text on PostgreSQL
    (web-search syntax: words, "quoted phrases", -excluded) and a case-insensitive
    contains-match of every word on SQLite.
    """
    products = _with_storefront_relations(Product.objects.filter(is_active=True))
    if category:
        products = products.filter(category_id__in=_category_and_descendant_ids(slug=category))
    if query and query.strip():
        products = _matching(products, query.strip())
    return products.order_by("name", "id")


def product_id_active(*, slug: str) -> int | None:
    """The id of the active product with `slug`; None when there is none (one query)."""
    return Product.objects.filter(slug=slug, is_active=True).values_list("pk", flat=True).first()


@dataclass(frozen=True)
class PricedSku:
    """What an order line needs of a variant: its id, SKU, display name and current price."""

    variant_id: int
    sku: str
    name: str  # the variant's own name, or its product's when it has none
    price: Decimal


# Written out, as inventory's checkout statements are: on the checkout's hot path the ORM's
# compilation of this join and the two model instances per row cost several times the query.
_PRICED_SKUS_SQL = (
    "SELECT v.id, v.sku, COALESCE(NULLIF(v.name, ''), p.name), v.price "
    f"FROM {Variant._meta.db_table} v JOIN {Product._meta.db_table} p ON p.id = v.product_id "
    "WHERE v.sku IN ({skus}) AND v.is_active AND p.is_active"
)


def priced_skus(*, skus: Iterable[str]) -> dict[str, PricedSku]:
    """Active variants of active products by SKU, in one query; unknown SKUs are absent."""
    skus = sorted(set(skus))
    if not skus:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_PRICED_SKUS_SQL.format(skus=", ".join(["%s"] * len(skus))), skus)
        rows = cursor.fetchall()
    return {
        sku: PricedSku(variant_id=variant_id, sku=sku, name=name, price=_price(price))
        for variant_id, sku, name, price in rows
    }


def _price(stored: Decimal | float) -> Decimal:
    """The stored price as its exact Decimal (SQLite hands decimals back as floats)."""
    field = Variant._meta.get_field("price")
    return field.to_python(stored).quantize(Decimal(1).scaleb(-field.decimal_places))


def product_ids_of_variants(*, variant_ids: Iterable[int]) -> list[int]:
    """The distinct products these variants belong to, in one query (sorted)."""
    return sorted(
        set(Variant.objects.filter(pk__in=list(variant_ids)).values_list("product_id", flat=True))
    )


def _with_storefront_relations(products: QuerySet[Product]) -> QuerySet[Product]:
    """Load what the storefront renders of each product in three queries, whatever their number.

    Its category, its active variants as `active_variants` and its images as `ordered_images`:
    plain lists in display order (`to_attr`), since the related managers build a queryset per
    product and relation, which costs more CPU than the queries on an uncached page, and
    `product.variants.all()` would query again and include inactive variants. Only the columns
    the storefront renders are read (bench/README.md has both figures); rendering another column
    means adding it here, or every row queries it (tests/test_api_budgets.py counts them).
    """
    return (
        products.select_related("category")
        .only("name", "slug", "description", "category__slug")
        .prefetch_related(
            Prefetch(
                "variants",
                queryset=Variant.objects.filter(is_active=True)
                .order_by("sku")
                .only("product_id", "sku", "name", "price", "currency"),
                to_attr="active_variants",
            ),
            Prefetch(
                "images",
                queryset=ProductImage.objects.only("product_id", "image", "thumbnail", "alt_text"),
                to_attr="ordered_images",
            ),
        )
    )


def _category_and_descendant_ids(*, slug: str) -> list[int]:
    """Ids of the category with `slug` and of every category below it.

    Reads the whole tree (id and parent only) in one query: a shop's category tree is
    hundreds of rows, and this avoids a query per level. A parent chain that loops (the admin
    refuses one, but `update()` and code that skips full_clean() do not) is walked once.
    """
    children: dict[int | None, list[int]] = defaultdict(list)
    root = None
    for pk, parent_id, category_slug in Category.objects.values_list("pk", "parent_id", "slug"):
        children[parent_id].append(pk)
        if category_slug == slug:
            root = pk
    if root is None:
        return []
    found, pending, seen = [], [root], {root}
    while pending:
        pk = pending.pop()
        found.append(pk)
        for child in children[pk]:
            if child not in seen:
                seen.add(child)
                pending.append(child)
    return found


def _matching(products: QuerySet[Product], query: str) -> QuerySet[Product]:
    if connection.vendor == "postgresql":
        return products.annotate(search=product_search_vector()).filter(
            search=SearchQuery(query, config=SEARCH_CONFIG, search_type="websearch")
        )
    for word in query.split():
        products = products.filter(search_document__icontains=word)
    return products
