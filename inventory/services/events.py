"""Tell other apps that stock moved: `stock_low` per threshold crossed, then `stock_changed`."""

from collections.abc import Callable, Iterable

from inventory.services.thresholds import LowStockCrossing
from inventory.signals import stock_changed, stock_low


def stock_changed_send(
    *,
    sender: Callable[..., object],
    variant_ids: list[int],
    product_ids: list[int],
    availability_crossed_zero: bool,
    availability_grew: bool,
    low: Iterable[LowStockCrossing] = (),
) -> None:
    """Send `stock_low` for each crossing in `low`, then `stock_changed` once.

    Every stock service ends this way, inside its transaction, so the receivers get the same
    arguments in the same order whichever service moved the stock.
    """
    for crossing in low:
        stock_low.send(
            sender=sender,
            variant_id=crossing.variant_id,
            available=crossing.available,
            threshold=crossing.threshold,
        )
    stock_changed.send(
        sender=sender,
        variant_ids=variant_ids,
        product_ids=product_ids,
        availability_crossed_zero=availability_crossed_zero,
        availability_grew=availability_grew,
    )
