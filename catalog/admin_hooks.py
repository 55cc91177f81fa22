"""The product page's hooks: apps above catalog add panels, inlines and actions to it here.

catalog may not import the apps above it, yet staff read a product's rating and reviews on its
page; reviews registers them with `product_page.extend(...)` (see `core.admin_hooks`).
"""

from core.admin_hooks import PageHooks

product_page = PageHooks()
