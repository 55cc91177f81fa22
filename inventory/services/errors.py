"""Inventory's domain errors and the validation that raises them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog.models import Variant

# The largest count of units a stock column holds (PostgreSQL `integer`, also the range of
# `PositiveIntegerField`). SQLite would store more; input is refused alike on both.
MAX_UNITS = 2_147_483_647


@dataclass(frozen=True)
class Shortage:
    """One variant an order cannot have: how many it asked for and how many are available."""

    variant_id: int
    requested: int
    available: int


class OutOfStock(Exception):
    """Not enough available units for at least one variant; nothing was reserved.

    `retryable` is True when the failure came from a stale plan (another buyer took the units
    of one warehouse between our read and our update) and the fresh availability in `shortages`
    would now cover every request: the caller may run its whole transaction once more.
    """

    code = "out_of_stock"

    def __init__(self, shortages: list[Shortage], *, retryable: bool = False) -> None:
        self.shortages = shortages
        self.retryable = retryable
        super().__init__(
            "out of stock: "
            + ", ".join(
                f"variant {s.variant_id} requested {s.requested}, available {s.available}"
                for s in shortages
            )
        )


class InvalidStockOperation(ValueError):
    """A stock request that can never succeed as asked (bad quantity, missing reason, ...)."""

    code = "invalid_stock_operation"


def positive_quantity(value: Any) -> int:
    """Return `value` if it is a whole number of units above zero that a stock column holds.

    Raises InvalidStockOperation otherwise. bool is an int subclass, and True units of stock is a
    bug in the caller.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidStockOperation(f"quantity must be a whole number, got {value!r}")
    if value <= 0:
        raise InvalidStockOperation(f"quantity must be positive, got {value}")
    if value > MAX_UNITS:
        raise InvalidStockOperation(f"quantity must be at most {MAX_UNITS} units, got {value}")
    return value


class UnitsNotHeld(InvalidStockOperation):
    """A reference holds fewer units than asked to ship, release or return; nothing moved.

    `shortages` names each variant short, with the units the reference holds of it (in the
    warehouse asked for, when one was) as `available`.
    """

    code = "units_not_held"

    def __init__(self, *, reference: str, shortages: list[Shortage], action: str) -> None:
        self.reference = reference
        self.shortages = shortages
        super().__init__(
            f"{reference!r} cannot {action} "
            + ", ".join(
                f"{s.requested} of variant {s.variant_id} (it has {s.available})" for s in shortages
            )
        )


def sku_of(variant_id: int) -> str:
    """The SKU staff know a variant by, for an error message (read on the error path only)."""
    sku = Variant.objects.filter(pk=variant_id).values_list("sku", flat=True).first()
    return sku or f"variant {variant_id}"
