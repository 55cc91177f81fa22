"""The demo shop's parts, in the order `seed_demo` seeds them (each part needs the ones above).

A step returns one line saying what it created, or None when its part was already in place, so
running the whole list twice changes nothing the second time.
"""

from collections.abc import Callable

from backoffice.demo.catalog import seed_catalog
from backoffice.demo.customers import seed_customers
from backoffice.demo.images import seed_images
from backoffice.demo.orders import seed_orders
from backoffice.demo.reviews import seed_reviews

STEPS: tuple[Callable[[], str | None], ...] = (
    seed_catalog,
    seed_images,
    seed_customers,
    seed_orders,
    seed_reviews,
)
