"""Forms of the inventory admin's stock actions; the services still validate every value."""

from django import forms

from catalog.models import Variant
from inventory.models import Warehouse
from inventory.services import MAX_UNITS

RECEIVE_REASONS = [
    ("Supplier delivery", "Supplier delivery"),
    ("Customer return put back on the shelf", "Customer return put back on the shelf"),
    ("Transfer from another warehouse", "Transfer from another warehouse"),
    ("Other", "Other"),
]
ADJUST_REASONS = [
    ("Stocktake correction", "Stocktake correction"),
    ("Damaged", "Damaged"),
    ("Lost or stolen", "Lost or stolen"),
    ("Found", "Found"),
    ("Other", "Other"),
]


class StockReceiveForm(forms.Form):
    quantity = forms.IntegerField(
        min_value=1, max_value=MAX_UNITS, help_text="Units received into each level."
    )
    reason = forms.ChoiceField(choices=RECEIVE_REASONS)
    reference = forms.CharField(
        max_length=64, required=False, help_text="Delivery note or purchase order number."
    )
    note = forms.CharField(max_length=200, required=False)

    def ledger_note(self) -> str:
        """The reason and the free note as one line of the ledger."""
        return _joined(self.cleaned_data["reason"], self.cleaned_data["note"])


class StockReceiveNewForm(StockReceiveForm):
    """Receive a SKU into a warehouse where it has no stock level yet (or any level)."""

    variant = forms.ModelChoiceField(queryset=Variant.objects.order_by("sku"), label="SKU")
    warehouse = forms.ModelChoiceField(queryset=Warehouse.objects.filter(is_active=True))
    field_order = ["variant", "warehouse", "quantity", "reason", "reference", "note"]


class StockAdjustForm(forms.Form):
    quantity = forms.IntegerField(
        min_value=-MAX_UNITS,
        max_value=MAX_UNITS,
        help_text="Change of units on hand in each level: negative removes, positive adds.",
    )
    reason = forms.ChoiceField(choices=ADJUST_REASONS)
    note = forms.CharField(max_length=200, required=False)

    def clean_quantity(self) -> int:
        quantity = self.cleaned_data["quantity"]
        if quantity == 0:
            raise forms.ValidationError("An adjustment of 0 changes nothing.")
        return quantity

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("reason") == "Other" and not cleaned.get("note", "").strip():
            self.add_error("note", 'Say what happened when the reason is "Other".')
        return cleaned

    def ledger_note(self) -> str:
        return _joined(self.cleaned_data["reason"], self.cleaned_data["note"])


def _joined(reason: str, note: str) -> str:
    note = note.strip()
    return f"{reason}: {note}" if note else reason
