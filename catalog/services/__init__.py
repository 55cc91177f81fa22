"""Write operations of the catalog, split by subject; import them from here.

`slugs`: saves that fill unique slugs and SKUs; `search`: search documents; `prices`: bulk
price changes; `images`: thumbnails.
"""

from catalog.services.images import product_image_thumbnail_make
from catalog.services.prices import InvalidPrice, variant_price_bulk_set
from catalog.services.search import product_search_document, product_search_refresh
from catalog.services.slugs import save_with_unique_slug, unique_value_fill

__all__ = [
    "InvalidPrice",
    "product_image_thumbnail_make",
    "product_search_document",
    "product_search_refresh",
    "save_with_unique_slug",
    "unique_value_fill",
    "variant_price_bulk_set",
]
