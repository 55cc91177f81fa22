"""Versioned reads of availability for pushes.

Why a counter of reads, not the id of the latest stock movement: two transactions moving one
SKU's stock in different warehouses lock different rows and may commit out of id order; the
push of the one that commits last then carries the lower id, is dropped as a duplicate by
every subscriber, and the SKU shows a stale availability until its next change.

`stock_states_pushed` bumps the SKU's `StockVersion` (INSERT … ON CONFLICT DO UPDATE, which
holds the row's lock until this short transaction commits) and only then reads availability,
in a new statement and so a new snapshot. Pushes of one SKU thus take their versions one after
another, each reading after the previous one committed: a higher version always saw at least
as much committed stock. Each push runs after its own change committed, so the push of the
last change reads the final availability with the highest version, and it is never dropped.
A snapshot (`live.selectors.stock_states`) waits for bumps in flight (a share lock on the
rows) before reading the versions with the availability, so a push with a higher version
than a snapshot read later than it.
"""

from django.db import transaction

from core.sql import upsert_adding
from live.models import StockVersion
from live.selectors import StockState, stock_rows


def stock_states_pushed(*, variant_ids: list[int]) -> list[StockState]:
    """The variants' availability now, each with a new version (see the module)."""
    if not variant_ids:
        return []
    with transaction.atomic():
        upsert_adding(
            StockVersion,
            key=("variant",),
            fields=("version",),
            rows=[(variant_id, 1) for variant_id in set(variant_ids)],
        )
        return stock_rows(variant_ids=variant_ids)
