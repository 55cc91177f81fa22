"""Signals the catalog sends. Import this module from anywhere; it imports only django.dispatch."""

from django.dispatch import Signal

# Sent by bulk paths that bypass model signals (catalog import, bulk price changes), inside
# their transaction, once per batch. kwargs: product_ids: list[int].
catalog_changed = Signal()
