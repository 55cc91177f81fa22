"""When availability crosses a line: a variant's low-stock threshold, or a level's zero."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class LowStockCrossing:
    variant_id: int
    available: int
    threshold: int


def crossings(
    *, before: Mapping[int, int], after: Mapping[int, int], thresholds: Mapping[int, int]
) -> list[LowStockCrossing]:
    """Variants whose availability fell through their threshold: before > threshold >= after."""
    return [
        LowStockCrossing(variant_id=variant_id, available=after[variant_id], threshold=threshold)
        for variant_id, threshold in sorted(thresholds.items())
        if before[variant_id] > threshold >= after[variant_id]
    ]


def availability_crossed_zero(levels: Iterable[tuple[int, int]]) -> bool:
    """Whether any level's available units, as (before, after), reached zero or left it.

    A product is in stock while any level of its active variants in an active warehouse has
    a unit available, so only a level crossing zero can sell it out or bring it back. Levels
    are what a movement knows without reading more: True when the level was in a closed
    warehouse or its variant still has units elsewhere too (a needless rebuild of listings
    filtered by availability), never False when a product flipped.
    """
    return any((before > 0) != (after > 0) for before, after in levels)
