"""Paging for the API's lists: `limit` and `offset` as the schema states them, and the total.

Every list answers `{count, items}`; `limit` is at most MAX_PAGE_SIZE, and a larger one is a
422 naming the field (the schema's `maximum`), so a client learns the rule from the document.
"""

from typing import Annotated

from django.db.models import QuerySet
from ninja import Query

# A page is at most this many items: bigger pages cost more queries' worth of rows than any
# storefront shows at once.
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
# Far beyond any listing, and small enough that no database refuses the OFFSET.
MAX_OFFSET = 1_000_000

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]


def listing_total(listing: QuerySet, *, offset: int, limit: int, page: list) -> int:
    """How many items the whole listing holds, counted only when the page cannot tell.

    A page cut short by the end of the listing (or the first page of an empty one) already
    knows the total. Otherwise the count is its own query rather than a window over the page
    query: a window makes PostgreSQL read and sort every matching row for each page, where
    the page alone is read off the listing's index and the count off that index's entries.
    """
    if 0 < len(page) < limit or (not page and offset == 0):
        return offset + len(page)
    return listing.count()
