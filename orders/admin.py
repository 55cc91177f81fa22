"""Staff admin for orders: find an order, read its whole story, ship (whole or in shipments),
cancel (whole or some units), mark delivered.

Nothing about money or status is edited in a form: every change is an action that calls
`orders.services`, so the same guarded transitions, ledger rows, signals and e-mails follow as
from the API. Apps above orders add their panels, inlines and actions to the order page through
`orders.admin_hooks` (payments: payments, refunds, invoice, credit notes and the refund action).
"""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from core.admin import ReadOnlyAdmin, ReadOnlyInline, admin_datetime
from core.admin_actions import ServiceActionsMixin
from core.admin_hooks import ExtendedPageMixin, PageTool
from inventory.models import StockMovement
from orders.admin_hooks import order_page
from orders.forms import (
    LinesCancelForm,
    OrderReasonForm,
    OrderShipForm,
    ResolutionForm,
    ShipmentForm,
)
from orders.models import Customer, Fulfilment, Order, OrderEvent, OrderLine
from orders.services import (
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


def shipment_page(model_admin: "OrderAdmin", request: HttpRequest, order: Order) -> HttpResponse:
    """Ship some units of the order in one shipment (the rest by default)."""
    return model_admin.run_on_page(
        request,
        order,
        form_class=ShipmentForm,
        title=f"Create a shipment of {order.number}",
        submit="Ship",
        intro="The units leave the order's reservation in the warehouse chosen; the customer "
        "gets an e-mail with the tracking number.",
        verb="shipped in part or whole",
        service=fulfilment_create,
    )


def cancel_units_page(
    model_admin: "OrderAdmin", request: HttpRequest, order: Order
) -> HttpResponse:
    """Cancel units of the order that have not shipped."""
    return model_admin.run_on_page(
        request,
        order,
        form_class=LinesCancelForm,
        title=f"Cancel units of {order.number}",
        submit="Cancel these units",
        intro="Their stock is released and the totals fall by their price (the shipping "
        "charge stays); a paid order is refunded that amount. Cancelling everything left "
        "cancels the order, or completes it when some of it shipped.",
        verb="changed",
        service=order_lines_cancel,
    )


ORDER_TOOLS = (
    PageTool(
        slug="shipment",
        label="Create shipment",
        view=shipment_page,
        permission="orders.ship_order",
    ),
    PageTool(
        slug="cancel-units",
        label="Cancel units",
        view=cancel_units_page,
        permission="orders.cancel_order",
    ),
)


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    verbose_name = "event"
    verbose_name_plural = "timeline"
    fields = ("created_at", "kind", "from_status", "to_status", "actor", "note")
    readonly_fields = fields
    ordering = ("created_at", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderEvent]:
        # Each row shows its actor: one join instead of a query per event.
        return super().get_queryset(request).select_related("actor")


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
        "status",
        "amount",
        "needs_attention",
        "tracking_number",
        "placed_at",
    )
    list_filter = ("status", "needs_attention", "placed_at")
    date_hierarchy = "placed_at"
    search_fields = ("number", "customer__user__email", "tracking_number")
    list_select_related = ("customer__user",)
    actions = ("ship_orders", "cancel_orders", "mark_delivered", "resolve_orders")
    inlines = (OrderLineInline, ShipmentInline, OrderEventInline)
    service_argument = "order"
    action_ordering = ("placed_at", "id")
    action_errors = (OrderError,)
    fieldsets = (
        (None, {"fields": ("number", "customer", "status", "needs_attention", "attention_reason")}),
        ("Money", {"fields": ("currency", "subtotal", "shipping", "total")}),
        ("Delivery", {"fields": ("address", "tracking_number", "stock_ledger")}),
        (
            "Dates",
            {
                "fields": (
                    "placed_at",
                    "paid_at",
                    "shipped_at",
                    "delivered_at",
                    "cancelled_at",
                    "refunded_at",
                )
            },
        ),
    )
    readonly_fields = ("address", "stock_ledger")
    page_hooks = order_page
    tools = ORDER_TOOLS

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
