"""Catalog endpoints: categories, product pages and product details, served from the read cache.

Bodies are rendered to JSON once and cached as text, so a cached answer costs no database query
and no serialisation. Details carry a strong ETag (the SHA-256 of the body) and answer a
matching `If-None-Match` (weak comparison, a list, or `*`) with 304.
"""

import hashlib
import json
from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse
from django.utils.cache import get_conditional_response
from ninja import Path, Query, Router

from catalog import selectors as catalog_selectors
from catalog.models import Product
from core.replicas import replica_reads
from inventory import selectors as inventory_selectors
from reviews import selectors as review_selectors
from storefront import cache
from storefront.api.errors import ApiError, Problem, ValidationProblem
from storefront.api.pages import DEFAULT_PAGE_SIZE, Limit, Offset, listing_total
from storefront.api.schemas import (
    NO_NUL,
    CategoryOut,
    ProductDetailOut,
    ProductPageOut,
    money,
)

router = Router(tags=["catalog"])

# Clients may keep a page or detail this long without asking again; after that they revalidate
# (a detail with its ETag, answered 304 when unchanged). Short, because availability moves.
CACHE_CONTROL = "public, max-age=10, must-revalidate"

SlugPath = Annotated[str, Path(pattern=r"^[-a-zA-Z0-9_]{1,220}$")]


def _json_response(body: str, *, etag: str | None = None) -> HttpResponse:
    response = HttpResponse(body, content_type="application/json")
    response["Cache-Control"] = CACHE_CONTROL
    if etag:
        response["ETag"] = etag
    return response


def rating_body(*, count: int, total: int) -> dict[str, Any]:
    """A product's `{average, count}` from its approved ratings' count and sum."""
    average = review_selectors.rating_average(count=count, total=total)
    return {"average": None if average is None else float(average), "count": count}


def _render_products(products: list[Product], *, outlook: bool = False) -> list[dict]:
    """Products as the API shows them; each carries `rating_count` and `rating_sum`
    (`reviews.selectors.products_with_rating`). With `outlook` (a product page), each variant
    also says how it sells beyond its available units and what is incoming (one query more)."""
    variant_ids = [variant.pk for product in products for variant in product.active_variants]
    available = inventory_selectors.availability_by_variant(variant_ids=variant_ids)
    outlooks = inventory_selectors.stock_outlook(variant_ids=variant_ids) if outlook else {}
    return [
        {
            "id": product.pk,
            "slug": product.slug,
            "name": product.name,
            "description": product.description,
            "category": product.category.slug if product.category else None,
            "images": [
                {
                    "url": image.image.url,
                    "thumbnail_url": image.thumbnail.url if image.thumbnail else None,
                    "alt_text": image.alt_text,
                }
                for image in product.ordered_images
            ],
            "variants": [
                {
                    "sku": variant.sku,
                    "name": variant.name,
                    "price": money(variant.price),
                    "currency": variant.currency,
                    "available": max(0, available.get(variant.pk, 0)),
                    **(_outlook_body(outlooks[variant.pk]) if outlook else {}),
                }
                for variant in product.active_variants
            ],
            "rating": rating_body(count=product.rating_count, total=product.rating_sum),
        }
        for product in products
    ]


def _outlook_body(outlook: inventory_selectors.StockOutlook) -> dict[str, Any]:
    return {
        "inventory_policy": outlook.policy,
        "release_date": outlook.release_date.isoformat() if outlook.release_date else None,
        "incoming": {"expected_on": outlook.incoming_on.isoformat(), "quantity": outlook.incoming}
        if outlook.incoming_on
        else None,
    }


@router.get("/categories", response={200: list[CategoryOut]}, summary="List categories")
def category_list(request: HttpRequest):
    """Every category with its parent's slug, parents and children alike."""

    @replica_reads
    def build() -> str:
        categories = catalog_selectors.category_list()
        return json.dumps(
            [
                {
                    "slug": category.slug,
                    "name": category.name,
                    "parent": category.parent.slug if category.parent else None,
                }
                for category in categories
            ]
        )

    return _json_response(cache.category_list(build=build))


@router.get(
    "/products",
    response={200: ProductPageOut, 422: ValidationProblem},
    summary="List products",
)
def product_list(
    request: HttpRequest,
    category: Annotated[str | None, Query(max_length=140, pattern=NO_NUL)] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    in_stock: bool | None = None,
    min_rating: Annotated[float | None, Query(ge=1, le=5)] = None,
    sort: Literal["name", "-rating"] = "name",
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
):
    """A page of active products, ordered by name, or best rated first with `sort=-rating`
    (unrated last); `limit` is at most 100.

    `category` is a slug and includes its descendants; `q` searches names, descriptions,
    categories and SKUs; `in_stock=true` keeps products with any unit available;
    `min_rating=4` keeps products whose average rating is at least 4.
    """
    by_rating = sort == "-rating"
    params = {
        "category": category,
        "q": q,
        "in_stock": in_stock,
        "min_rating": min_rating,
        "sort": sort,
        "limit": limit,
        "offset": offset,
    }

    @replica_reads
    def build() -> cache.Page:
        products = catalog_selectors.product_list(category=category or None, query=q or None)
        if in_stock:
            products = inventory_selectors.products_in_stock(products)
        products = review_selectors.products_with_rating(
            products, min_rating=min_rating, by_rating=by_rating
        )
        page = list(products[offset : offset + limit])
        count = listing_total(products, offset=offset, limit=limit, page=page)
        return cache.Page(
            body=json.dumps({"count": count, "items": _render_products(page)}),
            product_ids=tuple(product.pk for product in page),
        )

    body = cache.product_page(
        params=params,
        filtered_by_stock=bool(in_stock),
        by_rating=by_rating or min_rating is not None,
        build=build,
    )
    return _json_response(body)


ETAG_HEADER = {
    "description": "The answer's strong ETag; send it as `If-None-Match` to get a 304 instead.",
    "schema": {"type": "string"},
}


@router.get(
    "/products/{slug}",
    response={200: ProductDetailOut, 304: None, 404: Problem, 412: Problem, 422: ValidationProblem},
    summary="Get one product",
    openapi_extra={
        "responses": {
            200: {"headers": {"ETag": ETAG_HEADER}},
            304: {"headers": {"ETag": ETAG_HEADER}},
        }
    },
)
def product_detail(request: HttpRequest, slug: SlugPath):
    """One active product with its variants' prices, live availability and rating, and for
    each variant how it sells beyond what is available and the next units incoming on a date.

    Answers 304 when `If-None-Match` holds the current ETag.
    """

    @replica_reads
    def build() -> dict | None:
        products = review_selectors.products_with_rating(catalog_selectors.product_list())
        try:
            product = products.get(slug=slug)
        except Product.DoesNotExist:
            return None
        body = json.dumps(_render_products([product], outlook=True)[0])
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:40] + '"'
        return {"id": product.pk, "slug": product.slug, "body": body, "etag": etag}

    entry = cache.product_detail(slug=slug, build=build)
    if entry is None:
        raise ApiError(404, "not_found", f"No product {slug!r}.")
    # Django's conditional GET: If-None-Match is compared weakly (RFC 9110, 13.1.2), as proxies
    # that compress an answer weaken its ETag (nginx's gzip does); a 304 keeps the ETag and
    # Cache-Control of the answer it stands for.
    answer = get_conditional_response(
        request,
        etag=entry["etag"],
        response=_json_response(entry["body"], etag=entry["etag"]),
    )
    if answer.status_code == 412:  # an If-Match naming another version: Django's is bare
        raise ApiError(
            412, "precondition_failed", "If-Match names no current version of this product."
        )
    return answer
