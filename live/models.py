"""What the live app keeps in the database: each SKU's availability version."""

from django.db import models


class StockVersion(models.Model):
    """How many times a SKU's availability was read for a push: the version of its `stock`
    messages (`live.services.stock_states_pushed`), in the order those reads saw the stock.

    A row is created by the SKU's first push; a SKU never pushed has version 0.
    """

    variant = models.OneToOneField(
        "catalog.Variant", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.variant_id}: {self.version}"
