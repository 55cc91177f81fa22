"""Write operations of the catalog, split by subject; import them from here.

`slugs`: saves that fill unique slugs and SKUs; `search`: search documents; `prices`: bulk
price changes; `images`: pictures added and their thumbnails; `imports`: the catalog import's
categories, products and variants, many at once.
"""

from catalog.services.images import product_image_add, product_image_thumbnail_make
from catalog.services.imports import (
    ProductsUpserted,
    ProductValues,
    VariantValues,
    category_paths_ensure,
    products_upsert,
    slugs_free,
)
from catalog.services.prices import InvalidPrice, variant_price_bulk_set
from catalog.services.search import product_search_document, product_search_refresh
from catalog.services.slugs import save_with_unique_slug, unique_value_fill

__all__ = [
    "InvalidPrice",
    "ProductValues",
    "ProductsUpserted",
    "VariantValues",
    "category_paths_ensure",
    "product_image_add",
    "product_image_thumbnail_make",
    "product_search_document",
    "product_search_refresh",
    "products_upsert",
    "save_with_unique_slug",
    "slugs_free",
    "unique_value_fill",
    "variant_price_bulk_set",
]
