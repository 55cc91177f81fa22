"""Forms of the inventory admin's stock actions; the services still validate every value."""

import re

from django import forms

from catalog.models import Variant
from core.forms import ShownStateForm
from inventory.models import (
    HOLD_REASONS,
    InventoryPolicy,
    PurchaseOrder,
    StockPolicy,
    Warehouse,
)
from inventory.services import MAX_UNITS, PurchaseUnits

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


class StockHoldForm(forms.Form):
    quantity = forms.IntegerField(
        min_value=1, max_value=MAX_UNITS, help_text="Units of each level to keep from sale."
    )
    reason = forms.ChoiceField(choices=[(reason.value, reason.label) for reason in HOLD_REASONS])
    note = forms.CharField(max_length=200, help_text="What happened (kept in the ledger).")


class StockUnholdForm(forms.Form):
    quantity = forms.IntegerField(
        min_value=1, max_value=MAX_UNITS, help_text="Units of each level leaving unavailable."
    )
    write_off = forms.TypedChoiceField(
        label="Outcome",
        choices=[("", "Back for sale"), ("1", "Written off (leave the warehouse)")],
        coerce=bool,
        empty_value=False,
        required=False,
    )
    note = forms.CharField(max_length=200, help_text="What was decided (kept in the ledger).")


class SafetyStockForm(forms.Form):
    quantity = forms.IntegerField(
        min_value=0,
        max_value=MAX_UNITS,
        label="Safety stock",
        help_text="Units on hand of each level never sold; 0 removes it.",
    )
    note = forms.CharField(max_length=200, required=False)


_UNITS = re.compile(r"[0-9]+")


class PurchaseOrderForm(forms.Form):
    """A purchase order: who supplies what, into which warehouse, and when it is expected.

    The lines are typed one a line as `SKU quantity` (a supplier's order is often pasted).
    """

    number = forms.CharField(max_length=PurchaseOrder._meta.get_field("number").max_length)
    supplier = forms.CharField(max_length=PurchaseOrder._meta.get_field("supplier").max_length)
    warehouse = forms.ModelChoiceField(queryset=Warehouse.objects.filter(is_active=True))
    expected_on = forms.DateField(
        label="Expected on", widget=forms.DateInput(attrs={"type": "date"})
    )
    lines = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="One line per SKU: the SKU, a space, the units ordered (MUG-BLUE 24).",
    )

    def clean_lines(self) -> list[PurchaseUnits]:
        wanted: dict[str, int] = {}
        for number, row in enumerate(self.cleaned_data["lines"].splitlines(), start=1):
            if not row.strip():
                continue
            parts = row.split()
            # ASCII digits only: str.isdigit() also takes "²", which int() then refuses.
            if len(parts) != 2 or not _UNITS.fullmatch(parts[1]):
                raise forms.ValidationError(f"Line {number}: write the SKU and a number of units.")
            digits = parts[1].lstrip("0") or "0"
            # The length first: int() refuses a number of more than 4,300 digits.
            if len(digits) > len(str(MAX_UNITS)) or int(digits) > MAX_UNITS:
                raise forms.ValidationError(f"Line {number}: at most {MAX_UNITS} units.")
            if int(digits) < 1:
                raise forms.ValidationError(f"Line {number}: write the SKU and a number of units.")
            wanted[parts[0]] = wanted.get(parts[0], 0) + int(digits)
        if not wanted:
            raise forms.ValidationError("Name at least one SKU.")
        found = dict(Variant.objects.filter(sku__in=wanted).values_list("sku", "pk"))
        unknown = [sku for sku in wanted if sku not in found]
        if unknown:
            raise forms.ValidationError(f"Unknown SKU: {', '.join(unknown)}.")
        return [
            PurchaseUnits(variant_id=found[sku], quantity=units) for sku, units in wanted.items()
        ]


RECEIVE_FIELD_PREFIX = "line_"


class PurchaseOrderReceiveForm(ShownStateForm):
    """Units delivered per line of an open purchase order (the rest by default)."""

    note = forms.CharField(max_length=200, required=False, help_text="Delivery note number.")

    def __init__(self, *args, purchase_order: PurchaseOrder, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.purchase_order_lines = [
            line
            for line in purchase_order.lines.select_related("variant").order_by("variant__sku")
            if line.outstanding
        ]
        units = {
            f"{RECEIVE_FIELD_PREFIX}{line.pk}": forms.IntegerField(
                label=line.variant.sku,
                min_value=0,
                max_value=line.outstanding,
                initial=line.outstanding,
                help_text=f"{line.outstanding} outstanding of {line.quantity} ordered",
            )
            for line in self.purchase_order_lines
        }
        self.fields = {**units, **self.fields}
        self.state_shown(
            " ".join(
                f"{line.pk}:{line.received}:{line.closed}"
                for line in purchase_order.lines.order_by("pk")
            )
        )

    def units(self) -> list[PurchaseUnits]:
        return [
            PurchaseUnits(variant_id=line.variant_id, quantity=quantity)
            for line in self.purchase_order_lines
            if (quantity := self.cleaned_data.get(f"{RECEIVE_FIELD_PREFIX}{line.pk}"))
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        if not self.errors and not self.units():
            raise forms.ValidationError("Give at least one line at least one unit.")
        return cleaned


class StockPolicyForm(forms.ModelForm):
    """How a variant sells once its available units run out; saved by `stock_policy_set`."""

    class Meta:
        model = StockPolicy
        fields = ["variant", "policy", "limit", "release_date"]
        widgets = {"release_date": forms.DateInput(attrs={"type": "date"})}

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("policy") == InventoryPolicy.PREORDER and (
            cleaned.get("release_date") is None or cleaned.get("limit") is None
        ):
            raise forms.ValidationError("A pre-order needs a release date and a limit.")
        limit, waiting = cleaned.get("limit"), self.instance.backordered
        if limit is not None and limit < waiting:
            self.add_error("limit", f"{waiting} units wait for stock: the limit cannot be lower.")
        return cleaned


class PurchaseOrderCloseForm(forms.Form):
    note = forms.CharField(max_length=200, help_text="Why the rest will not come.")
