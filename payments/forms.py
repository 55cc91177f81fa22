"""Forms of the payments admin's pages; the services still validate every value."""

from django import forms

from inventory.models import Warehouse
from orders.forms import LineUnitsForm


class ReturnForm(LineUnitsForm):
    """Shipped units coming back: how many per line, where they go back on hand (if they
    do), whether the shipping charge is refunded too, and why."""

    left = staticmethod(lambda line: line.returnable)

    restock_warehouse = forms.ModelChoiceField(
        queryset=Warehouse.objects.filter(is_active=True),
        required=False,
        empty_label="not restocked (kept by the customer, damaged)",
    )
    refund_shipping = forms.BooleanField(
        required=False, help_text="Once per order: the charge of the whole order's shipping."
    )
    reason = forms.CharField(max_length=200, required=False)
