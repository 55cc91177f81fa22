"""The order page's hooks: apps above orders add panels, inlines, actions and pages to it here.

orders may not import the apps above it, yet staff read an order's payments and invoices on
its page; payments registers them with `order_page.extend(...)` (see `core.admin_hooks`).
"""

from core.admin_hooks import PageHooks

order_page = PageHooks()
