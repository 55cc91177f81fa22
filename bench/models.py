"""The reference schema (`bench/reference/schema.sql`) as unmanaged models.

Only for the naive ORM checkout (`bench.urls.naive_checkout`): the raw-SQL reference
transaction's 12 statements written through the ORM, on the very tables pgbench uses, so the
run measures what the ORM alone costs. The app is installed by `bench.settings` only.
"""

from django.db import models


class Stock(models.Model):
    sku_id = models.IntegerField(primary_key=True)
    on_hand = models.IntegerField()
    reserved = models.IntegerField(default=0)

    class Meta:
        managed = False
        db_table = "stock"

    def __str__(self) -> str:
        return f"sku {self.sku_id}: {self.on_hand} on hand, {self.reserved} reserved"


class Order(models.Model):
    customer = models.CharField(max_length=64)
    status = models.CharField(max_length=16)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "orders"

    def __str__(self) -> str:
        return f"order {self.pk}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.DO_NOTHING, db_constraint=False)
    sku = models.ForeignKey(Stock, on_delete=models.DO_NOTHING, db_constraint=False)
    qty = models.IntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        managed = False
        db_table = "order_lines"

    def __str__(self) -> str:
        return f"{self.qty} × sku {self.sku_id} on order {self.order_id}"


class StockMovement(models.Model):
    sku = models.ForeignKey(Stock, on_delete=models.DO_NOTHING, db_constraint=False)
    delta = models.IntegerField()
    reason = models.CharField(max_length=32)
    order = models.ForeignKey(Order, on_delete=models.DO_NOTHING, db_constraint=False, null=True)
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "stock_movements"

    def __str__(self) -> str:
        return f"{self.delta:+} sku {self.sku_id} ({self.reason})"
