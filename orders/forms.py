"""Forms of the orders admin's actions; the services still validate every value."""

from collections.abc import Callable, Iterable

from django import forms

from core.forms import SHOWN_FIELD, ShownStateForm
from inventory.models import Warehouse
from inventory.selectors import allocated_units
from orders.models import Order, OrderLine
from orders.services import LineRequest
from orders.services.shipments import CARRIER_MAX_LENGTH, TRACKING_NUMBER_MAX_LENGTH

TRACKING_FIELD_PREFIX = "tracking_"
LINE_FIELD_PREFIX = "units_"


class OrderShipForm(forms.Form):
    """One tracking number per selected order: each parcel has its own, and the shipping
    e-mail gives it to the customer, so none may be left empty."""

    def __init__(self, *args, orders: Iterable[Order], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for order in orders:
            self.fields[f"{TRACKING_FIELD_PREFIX}{order.pk}"] = forms.CharField(
                label=f"Tracking number of {order.number}",
                max_length=TRACKING_NUMBER_MAX_LENGTH,
                help_text=f"{order.get_status_display()}, {order.total} {order.currency}",
            )

    def tracking_number_for(self, order: Order) -> str:
        return self.cleaned_data.get(f"{TRACKING_FIELD_PREFIX}{order.pk}", "").strip()


class OrderForm(forms.Form):
    """A form of one order's page (`run_on_page`), made for the order as its service takes it;
    its fields are the service's keywords. Without fields it is a confirmation (mark delivered).

    The reason and note forms below also serve the list's actions on many orders (no `order`).
    """

    def __init__(self, *args, order: Order | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.order = order

    def service_kwargs(self) -> dict:
        return dict(self.cleaned_data)


class ParcelForm(OrderForm):
    """The parcel's tracking number (the service and the customer's e-mail need it) and
    carrier."""

    tracking_number = forms.CharField(max_length=TRACKING_NUMBER_MAX_LENGTH)
    carrier = forms.CharField(max_length=CARRIER_MAX_LENGTH, required=False)


class OrderReasonForm(OrderForm):
    """Why staff cancel or refund: recorded on the order's timeline and in the e-mail."""

    reason = forms.CharField(max_length=200, required=False)


class ResolutionForm(OrderForm):
    """What staff did about a flag: required, recorded on the timeline and in the audit trail."""

    note = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What was done about it (e.g. refunded the duplicate charge at the provider).",
    )


class LineUnitsForm(ShownStateForm, OrderForm):
    """Units per line of one order (one field a line, 0 to what the line has `left`), and
    what else an action on those units needs.

    `left(line)` is what the action may take of the line; `initial_all` proposes all of it
    (a shipment ships the rest by default), otherwise 0. At least one unit is required.
    """

    left: Callable[[OrderLine], int]
    initial_all = False

    def __init__(self, *args, order: Order, **kwargs) -> None:
        super().__init__(*args, order=order, **kwargs)
        self.order_lines = [line for line in order.lines.order_by("id") if self.left(line) > 0]
        units = {}
        for line in self.order_lines:
            left = self.left(line)
            units[f"{LINE_FIELD_PREFIX}{line.pk}"] = forms.IntegerField(
                label=f"{line.sku} ({line.name})",
                min_value=0,
                max_value=left,
                initial=left if self.initial_all else 0,
                help_text=f"{left} left of {line.quantity} ordered",
            )
        # The lines first, then the form's own fields.
        self.fields = {**units, **self.fields}
        self.state_shown(
            " ".join(
                f"{line.pk}:{line.shipped_quantity}:{line.cancelled_quantity}:"
                f"{line.returned_quantity}:{line.backordered_quantity}"
                for line in order.lines.order_by("id")
            )
        )

    def line_units(self) -> list[tuple[OrderLine, int]]:
        return [
            (line, self.cleaned_data.get(f"{LINE_FIELD_PREFIX}{line.pk}") or 0)
            for line in self.order_lines
            if self.cleaned_data.get(f"{LINE_FIELD_PREFIX}{line.pk}")
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        if not self.errors and not self.line_units():
            raise forms.ValidationError("Give at least one line at least one unit.")
        return cleaned

    def service_kwargs(self) -> dict:
        """The keywords of the action's service: the lines, then the form's own fields."""
        own = {name: value for name, value in self.cleaned_data.items() if name in self.own}
        return {
            "lines": [
                LineRequest(sku=line.sku, quantity=quantity) for line, quantity in self.line_units()
            ],
            **own,
        }

    @property
    def own(self) -> set[str]:
        return {
            name
            for name in self.fields
            if not name.startswith(LINE_FIELD_PREFIX) and name != SHOWN_FIELD
        }


class ShipmentForm(LineUnitsForm, ParcelForm):
    """A shipment: units per line (the rest by default), the warehouse they leave (the one
    holding the order's units first), tracking number and carrier."""

    left = staticmethod(lambda line: line.shippable)
    initial_all = True
    field_order = ["warehouse", "tracking_number", "carrier"]

    warehouse = forms.ModelChoiceField(
        queryset=Warehouse.objects.none(),
        required=False,
        empty_label="wherever the order holds them",
        help_text="Only warehouses holding units of this order.",
    )

    def __init__(self, *args, order: Order, **kwargs) -> None:
        super().__init__(*args, order=order, **kwargs)
        self.held = allocated_units(reference=order.number)
        holding = [units.warehouse_id for units in self.held if units.held > 0]
        self.fields["warehouse"].queryset = Warehouse.objects.filter(pk__in=holding)
        self.fields["warehouse"].initial = holding[0] if holding else None

    def clean(self) -> dict:
        cleaned = super().clean()
        warehouse = cleaned.get("warehouse")
        if warehouse is None or self.errors:
            return cleaned
        held = {
            units.variant_id: units.held
            for units in self.held
            if units.warehouse_id == warehouse.pk
        }
        for line, quantity in self.line_units():
            if quantity > held.get(line.variant_id, 0):
                self.add_error(
                    f"{LINE_FIELD_PREFIX}{line.pk}",
                    f"{warehouse.code} holds {held.get(line.variant_id, 0)} of these for the "
                    "order.",
                )
        return cleaned


class LinesCancelForm(LineUnitsForm):
    """Units not yet shipped to cancel, and why (on the timeline and in the e-mail)."""

    left = staticmethod(lambda line: line.unshipped)

    reason = forms.CharField(max_length=200, required=False)
