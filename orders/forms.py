"""Forms of the orders admin's actions; the services still validate every value."""

from collections.abc import Iterable

from django import forms

from orders.models import Order

TRACKING_FIELD_PREFIX = "tracking_"


class OrderShipForm(forms.Form):
    """One tracking number per selected order: each parcel has its own."""

    def __init__(self, *args, orders: Iterable[Order], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        max_length = Order._meta.get_field("tracking_number").max_length
        for order in orders:
            self.fields[f"{TRACKING_FIELD_PREFIX}{order.pk}"] = forms.CharField(
                label=f"Tracking number of {order.number}",
                max_length=max_length,
                required=False,
                help_text=f"{order.get_status_display()}, {order.total} {order.currency}",
            )

    def tracking_number_for(self, order: Order) -> str:
        return self.cleaned_data.get(f"{TRACKING_FIELD_PREFIX}{order.pk}", "").strip()


class OrderReasonForm(forms.Form):
    """Why staff cancel or refund: recorded on the order's timeline and in the e-mail."""

    reason = forms.CharField(max_length=200, required=False)


class ResolutionForm(forms.Form):
    """What staff did about a flag: required, recorded on the timeline and in the audit trail."""

    note = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What was done about it (e.g. refunded the duplicate charge at the provider).",
    )
