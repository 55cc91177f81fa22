"""Staff admin for orders: find an order, read its whole story, ship (whole or in shipments),
cancel (whole or some units), mark delivered, resolve a flag.

Nothing about money or status is edited in a form: every change calls `orders.services`, so the
same guarded transitions, ledger rows, signals and e-mails follow as from the API. One order is
acted on from its page, whose buttons lead to a form page each (the tools the user may use on
the order as it stands); many at once by the list's actions. Apps above orders add their
panels, inlines, actions and tools to the order page through `orders.admin_hooks` (payments:
payments, refunds, invoice, credit notes, refund and return).
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from core.admin import ReadOnlyAdmin, ReadOnlyInline, admin_datetime
from core.admin_actions import ServiceActionsMixin, service_page
from core.admin_hooks import ExtendedPageMixin, PageTool
from inventory.models import StockMovement
from orders.admin_hooks import order_page
from orders.forms import (
    LinesCancelForm,
    OrderForm,
    OrderReasonForm,
    OrderShipForm,
    ParcelForm,
    ResolutionForm,
    ShipmentForm,
)
from orders.models import Customer, Fulfilment, Order, OrderEvent, OrderLine, OrderStatus
from orders.services import (
    CANCELLABLE,
    CANCELLABLE_IN_PART,
    DELIVERABLE,
    SHIPPABLE,
    OrderError,
    fulfilment_create,
    order_cancel,
    order_lines_cancel,
    order_mark_delivered,
    order_resolve,
    order_ship,
)
from outbox.subjects import TaskSubject, task_subject_register


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = (
        "sku",
        "name",
        "quantity",
        "shipped_quantity",
        "cancelled_quantity",
        "returned_quantity",
        "backordered_quantity",
        "unit_price",
        "line_total",
    )
    readonly_fields = fields


class ShipmentInline(ReadOnlyInline):
    model = Fulfilment
    verbose_name_plural = "shipments"
    fields = ("created_at", "tracking_number", "carrier", "shipped_by", "units")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Fulfilment]:
        return (
            super()
            .get_queryset(request)
            .select_related("shipped_by")
            .prefetch_related("lines__line", "lines__warehouse")
        )

    @admin.display(description="units")
    def units(self, shipment: Fulfilment) -> str:
        return ", ".join(
            f"{item.quantity} × {item.line.sku} from {item.warehouse.code}"
            for item in shipment.lines.all()
        )


def _status_in(statuses: tuple[str, ...]) -> Callable[[Order], bool]:
    """Whether an order's status is one of `statuses`: when its page offers a tool."""
    return lambda order: order.status in statuses


ORDER_TOOLS = (
    PageTool(
        slug="ship",
        label="Ship everything",
        view=service_page(
            form_class=ParcelForm,
            title="Ship {obj}",
            submit="Ship",
            intro="Every unit still to ship leaves the order's reservation in one parcel; the "
            "customer gets an e-mail with the tracking number.",
            verb="shipped",
            service=order_ship,
        ),
        permission="orders.ship_order",
        applies=_status_in(SHIPPABLE),
    ),
    PageTool(
        slug="shipment",
        label="Create shipment",
        view=service_page(
            form_class=ShipmentForm,
            title="Create a shipment of {obj}",
            submit="Ship",
            intro="The units leave the order's reservation in the warehouse chosen; the "
            "customer gets an e-mail with the tracking number.",
            verb="shipped in part or whole",
            service=fulfilment_create,
        ),
        permission="orders.ship_order",
        applies=_status_in(SHIPPABLE),
    ),
    PageTool(
        slug="deliver",
        label="Mark delivered",
        view=service_page(
            form_class=OrderForm,
            title="Mark {obj} delivered",
            submit="Mark delivered",
            intro="The carrier delivered the parcel: the order is complete.",
            verb="marked delivered",
            service=order_mark_delivered,
        ),
        permission="orders.deliver_order",
        applies=_status_in(DELIVERABLE),
    ),
    PageTool(
        slug="cancel",
        label="Cancel order",
        view=service_page(
            form_class=OrderReasonForm,
            title="Cancel {obj}",
            submit="Cancel the order",
            intro="Reserved stock is released; a paid order is refunded. The customer gets "
            "an e-mail with the reason.",
            verb="cancelled",
            service=order_cancel,
        ),
        permission="orders.cancel_order",
        applies=_status_in(CANCELLABLE),
    ),
    PageTool(
        slug="cancel-units",
        label="Cancel units",
        view=service_page(
            form_class=LinesCancelForm,
            title="Cancel units of {obj}",
            submit="Cancel these units",
            intro="Their stock is released and the totals fall by their price (the shipping "
            "charge stays); a paid order is refunded that amount. Cancelling everything left "
            "cancels the order, or completes it when some of it shipped.",
            verb="changed",
            service=order_lines_cancel,
        ),
        permission="orders.cancel_order",
        applies=_status_in(CANCELLABLE_IN_PART),
    ),
    PageTool(
        slug="resolve",
        label="Resolve attention",
        view=service_page(
            form_class=ResolutionForm,
            title="Resolve what {obj} needs attention for",
            submit="Resolve",
            intro="The flag is cleared; the note goes on the order's timeline and in the "
            "audit trail.",
            verb="resolved",
            service=order_resolve,
        ),
        permission="orders.resolve_order",
        applies=lambda order: order.needs_attention,
    ),
)

# Timeline entries whose code does not read as a label once capitalised.
EVENT_LABELS = {
    "lines_cancelled": "Units cancelled",
    "returned": "Units returned",
    "flagged": "Flagged for attention",
    "resolved": "Attention resolved",
}


def status_label(status: str) -> str:
    """The status as staff read it ("Pending payment"), whatever the code."""
    return OrderStatus(status).label if status in OrderStatus.values else status


def event_label(event: OrderEvent) -> str:
    """What happened, as staff read it ("Units cancelled"), whatever the code."""
    return EVENT_LABELS.get(event.kind, event.kind.replace("_", " ").capitalize())


def event_status(event: OrderEvent) -> str:
    """The change of status ("Paid → Shipped"), or the status the event left as it was."""
    after = status_label(event.to_status)
    if not event.from_status or event.from_status == event.to_status:
        return after
    return f"{status_label(event.from_status)} → {after}"


@dataclass(frozen=True)
class TimelineRow:
    """One event of an order's timeline as its History page shows it."""

    when: datetime.datetime
    what: str
    status: str
    who: str
    note: str


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    verbose_name = "event"
    verbose_name_plural = "timeline"
    fields = ("created_at", "event", "status_change", "actor", "note")
    readonly_fields = fields
    ordering = ("created_at", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderEvent]:
        # Each row shows its actor: one join instead of a query per event.
        return super().get_queryset(request).select_related("actor")

    @admin.display(description="what")
    def event(self, event: OrderEvent) -> str:
        return event_label(event)

    @admin.display(description="status")
    def status_change(self, event: OrderEvent) -> str:
        return event_status(event)


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    """The shop's customers. Every user gets a profile, staff too; staff are listed as users."""

    list_display = ("email", "order_count", "lifetime_value", "created_at")
    search_fields = ("user__email", "user__username")
    list_select_related = ("user",)
    fields = ("user", "order_count", "lifetime_value", "created_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        return super().get_queryset(request).filter(user__is_staff=False)

    @admin.display(description="e-mail", ordering="user__email")
    def email(self, customer: Customer) -> str:
        return customer.user.email or customer.user.username


@admin.register(Order)
class OrderAdmin(ExtendedPageMixin, ServiceActionsMixin, ReadOnlyAdmin):
    """Show an order's whole story, read-only, with what apps above orders add to the page.

    Orders are placed through the API and change only by actions calling services; apps above
    orders contribute through `orders.admin_hooks`.
    """

    list_display = (
        "number",
        "customer_email",
        "status_and_flag",
        "amount",
        "tracking_number",
        "placed_at",
    )
    list_filter = ("status", "needs_attention", "placed_at")
    date_hierarchy = "placed_at"
    search_fields = ("number", "customer__user__email", "tracking_number")
    list_select_related = ("customer__user",)
    actions = ("ship_orders", "cancel_orders", "mark_delivered", "resolve_orders")
    # The timeline first, then what apps above add (payments, refunds), then lines and
    # shipments: what staff look for first comes first on the page.
    inlines = (OrderEventInline, OrderLineInline, ShipmentInline)
    extension_inlines_at = 1
    service_argument = "order"
    action_ordering = ("placed_at", "id")
    action_errors = (OrderError,)
    # The first fieldset is the page's summary at its top (admin/orders/order/change_form.html).
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "customer",
                    "status",
                    "amount",
                    "attention",
                    "placed_at",
                    "tracking_number",
                )
            },
        ),
        ("Money", {"fields": ("currency", "subtotal", "shipping", "total")}),
        ("Delivery", {"fields": ("address", "stock_ledger")}),
        (
            "Dates",
            {
                "fields": (
                    "paid_at",
                    "shipped_at",
                    "delivered_at",
                    "cancelled_at",
                    "refunded_at",
                )
            },
        ),
    )
    readonly_fields = ("amount", "attention", "address", "stock_ledger")
    page_hooks = order_page
    tools = ORDER_TOOLS

    def history_view(self, request: HttpRequest, object_id: str, extra_context=None):
        """The order's History: its timeline above the audit trail (what staff did through
        the services, which Django's log never sees)."""
        order = self.get_object(request, unquote(object_id))
        events = order.events.select_related("actor").order_by("created_at", "id") if order else []
        timeline = [
            TimelineRow(
                when=event.created_at,
                what=event_label(event),
                status=event_status(event),
                who=event.actor.get_username() if event.actor else "system",
                note=event.note,
            )
            for event in events
        ]
        return super().history_view(
            request, object_id, {**(extra_context or {}), "history_before": timeline}
        )

    def has_ship_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.ship_order")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.cancel_order")

    def has_deliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.deliver_order")

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.resolve_order")

    @admin.display(description="customer", ordering="customer__user__email")
    def customer_email(self, order: Order) -> str:
        return order.customer.user.email or order.customer.user.username

    @admin.display(description="total", ordering="total")
    def amount(self, order: Order) -> str:
        return f"{order.total} {order.currency}"

    @admin.display(description="status", ordering="status")
    def status_and_flag(self, order: Order) -> str:
        """The status, and under it a flag staff must act on: one column where two would not
        fit a laptop's list beside its filters."""
        if not order.needs_attention:
            return order.get_status_display()
        return format_html(
            '{}<br><strong class="sw-flag">needs attention</strong>', order.get_status_display()
        )

    @admin.display(description="needs attention", ordering="needs_attention")
    def attention(self, order: Order) -> str:
        """A flag staff must act on stands out, with its reason; no flag is a plain "no",
        not the red cross of a failure."""
        if not order.needs_attention:
            return "no"
        return format_html(
            '<strong class="sw-flag">yes</strong>{}',
            f": {order.attention_reason}" if order.attention_reason else "",
        )

    @admin.display(description="shipping address")
    def address(self, order: Order) -> str:
        """The address as a label reads, whatever keys the storefront sent."""
        address = dict(order.shipping_address or {})
        city_line = " ".join(
            part for part in (address.pop("postal_code", ""), address.pop("city", "")) if part
        )
        lines = [
            address.pop("name", ""),
            address.pop("line1", ""),
            address.pop("line2", ""),
            city_line,
            address.pop("country", ""),
            *(f"{key}: {value}" for key, value in address.items()),
        ]
        return format_html(
            '<div class="sw-address">{}</div>',
            format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines if line)),
        )

    @admin.display(description="stock ledger")
    def stock_ledger(self, order: Order) -> str:
        """The ledger rows this order caused: reservation, release, shipment, return."""
        movements = StockMovement.objects.filter(reference=order.number).select_related(
            "level__variant", "level__warehouse"
        )
        if not movements:
            return "No stock movement."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    admin_datetime(movement.created_at),
                    movement.get_reason_display(),
                    movement.level.variant.sku,
                    movement.level.warehouse.code,
                    f"{movement.on_hand_delta:+d}",
                    f"{movement.reserved_delta:+d}",
                )
                for movement in movements
            ),
        )
        return format_html(
            '<table id="stock-ledger"><thead><tr><th>when</th><th>movement</th><th>SKU</th>'
            "<th>warehouse</th><th>on hand</th><th>reserved</th></tr></thead>"
            '<tbody>{}</tbody></table><p><a href="{}?q={}">In the stock ledger</a></p>',
            rows,
            reverse("admin:inventory_stockmovement_changelist"),
            order.number,
        )

    @admin.action(
        description="Ship the selected orders (asks for tracking numbers)", permissions=["ship"]
    )
    def ship_orders(self, request: HttpRequest, queryset: QuerySet[Order]):
        orders = list(queryset.order_by(*self.action_ordering))
        form = OrderShipForm(request.POST if "apply" in request.POST else None, orders=orders)
        if not form.is_valid():
            return self.action_page(
                request, orders, form, action="ship_orders", title="Ship orders", submit="Ship"
            )
        for order in orders:
            self.run_for_object(
                request,
                order,
                "shipped",
                order_ship,
                tracking_number=form.tracking_number_for(order),
            )
        return None

    @admin.action(description="Cancel the selected orders", permissions=["cancel"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]):
        return self.run_with_form(
            request,
            queryset,
            form_class=OrderReasonForm,
            action="cancel_orders",
            title="Cancel orders",
            submit="Cancel orders",
            intro="Reserved stock is released; a paid order is refunded.",
            verb="cancelled",
            service=order_cancel,
        )

    @admin.action(
        description="Resolve the selected orders that need attention (asks for a note)",
        permissions=["resolve"],
    )
    def resolve_orders(self, request: HttpRequest, queryset: QuerySet[Order]):
        return self.run_with_form(
            request,
            queryset,
            form_class=ResolutionForm,
            action="resolve_orders",
            title="Resolve orders that need attention",
            submit="Resolve",
            intro="The flag is cleared; the note goes on the order's timeline and in the audit "
            "trail.",
            verb="resolved",
            service=order_resolve,
        )

    @admin.action(description="Mark the selected orders delivered", permissions=["deliver"])
    def mark_delivered(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        for order in queryset.order_by(*self.action_ordering):
            self.run_for_object(request, order, "marked delivered", order_mark_delivered)


# The orders' e-mails and the invoice documents name their order.
task_subject_register(TaskSubject(key="order_id", model=Order))
