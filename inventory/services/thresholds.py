"""When a variant's availability falls through its low-stock threshold."""

from __future__ import annotations

from collections.abc import Mapping
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
