"""Test data for the inventory tests: variants, warehouses, a signal recorder."""

from decimal import Decimal
from itertools import count

from model_bakery import baker

_numbers = count(1)


def make_variant(*, threshold: int = 5, product=None):
    number = next(_numbers)
    return baker.make(
        "catalog.Variant",
        sku=f"SKU-{number:05d}",
        price=Decimal("9.99"),
        low_stock_threshold=threshold,
        product=product
        or baker.make("catalog.Product", name=f"Mug {number}", slug=f"mug-{number}"),
    )


def make_warehouse(code: str, priority: int = 100, **kwargs):
    return baker.make("inventory.Warehouse", code=code, name=code, priority=priority, **kwargs)


class Recorder:
    """Collect the keyword arguments of every `signal.send` while the block runs."""

    def __init__(self, signal) -> None:
        self.signal = signal
        self.calls: list[dict] = []
        self.uid = f"test-recorder-{id(self)}"

    def __call__(self, sender, signal=None, **kwargs) -> None:
        self.calls.append(kwargs)

    def __enter__(self) -> "Recorder":
        self.signal.connect(self, weak=False, dispatch_uid=self.uid)
        return self

    def __exit__(self, *exc) -> None:
        self.signal.disconnect(dispatch_uid=self.uid)
