"""Staff admin for stock: levels (receive, adjust, hold, safety stock), the ledger, warehouses,
allocations, purchase orders (place, receive, close), stock policies and backorders.

No bucket is ever edited in a form: every move goes through `inventory.services`, which
write the ledger row, the audit entry and send `stock_changed` (the storefront cache
follows), exactly as the API and the CSV import do.
"""

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.db.models import F, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from core.admin import PermissionRequired, ReadOnlyAdmin, ReadOnlyInline
from inventory.forms import (
    PurchaseOrderCloseForm,
    PurchaseOrderForm,
    PurchaseOrderReceiveForm,
    SafetyStockForm,
    StockAdjustForm,
    StockHoldForm,
    StockPolicyForm,
    StockReceiveForm,
    StockReceiveNewForm,
    StockUnholdForm,
)
from inventory.models import (
    Backorder,
    PurchaseOrder,
    PurchaseOrderLine,
    PurchaseOrderStatus,
    StockAllocation,
    StockLevel,
    StockMovement,
    StockPolicy,
    Warehouse,
    available_units,
    stock_level_label,
)
from inventory.services import (
    InvalidStockOperation,
    purchase_order_close,
    purchase_order_create,
    purchase_order_receive,
    stock_adjust,
    stock_hold,
    stock_policy_set,
    stock_receive,
    stock_safety_set,
    stock_unhold,
    warehouse_active_set,
)


@admin.register(Warehouse)
class WarehouseAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "priority", "is_active")
    list_editable = ("priority", "is_active")
    search_fields = ("code", "name")
    prepopulated_fields = {"code": ("name",)}

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Levels and the ledger point at a warehouse forever; deactivate it instead.
        return False

    def save_model(self, request: HttpRequest, obj: Warehouse, form, change: bool) -> None:
        """Save the warehouse; opening or closing it goes through `warehouse_active_set`, so
        the orders waiting for its units get them as soon as it opens."""
        opening_or_closing = change and "is_active" in form.changed_data
        is_active = obj.is_active
        if opening_or_closing:
            obj.is_active = not is_active  # as stored: the service moves it
        super().save_model(request, obj, form, change)
        if opening_or_closing:
            warehouse_active_set(warehouse=obj, is_active=is_active)


class LowStockFilter(admin.SimpleListFilter):
    title = "stock"
    parameter_name = "stock"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [
            ("low", "Low (at or below the variant's threshold)"),
            ("out", "None available"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "low":
            return queryset.filter(available_units__lte=F("variant__low_stock_threshold"))
        if self.value() == "out":
            return queryset.filter(available_units__lte=0)
        return queryset


@admin.register(StockLevel)
class StockLevelAdmin(ReadOnlyAdmin):
    list_display = (
        "sku",
        "product",
        "warehouse",
        "on_hand",
        "reserved",
        "unavailable",
        "safety_stock",
        "available",
        "incoming",
        "threshold",
    )
    list_filter = (LowStockFilter, "warehouse")
    search_fields = ("variant__sku", "variant__product__name")
    actions = ("receive_stock", "adjust_stock", "hold_stock", "unhold_stock", "set_safety_stock")
    readonly_fields = (
        "variant",
        "warehouse",
        "on_hand",
        "reserved",
        "unavailable",
        "safety_stock",
        "available",
        "incoming",
        "updated_at",
    )
    fields = readonly_fields
    change_list_template = "admin/inventory/stocklevel/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[StockLevel]:
        return (
            super()
            .get_queryset(request)
            .select_related("variant__product", "warehouse")
            .annotate(available_units=available_units())
        )

    @admin.display(description="SKU", ordering="variant__sku")
    def sku(self, level: StockLevel) -> str:
        return level.variant.sku

    @admin.display(description="product", ordering="variant__product__name")
    def product(self, level: StockLevel) -> str:
        return level.variant.product.name

    @admin.display(description="available", ordering="available_units")
    def available(self, level: StockLevel) -> int:
        return level.available

    @admin.display(description="low-stock threshold")
    def threshold(self, level: StockLevel) -> int:
        return level.variant.low_stock_threshold

    def has_receive_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("inventory.receive_stock")

    def has_adjust_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("inventory.adjust_stock")

    def has_hold_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("inventory.hold_stock")

    def has_safety_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("inventory.set_safety_stock")

    def get_urls(self) -> list:
        receive = self.admin_site.admin_view(self.receive_view)
        return [path("receive/", receive, name="inventory_stocklevel_receive"), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {
            **(extra_context or {}),
            "can_receive": self.has_receive_permission(request),
        }
        return super().changelist_view(request, extra_context)

    @admin.action(description="Receive stock into the selected levels", permissions=["receive"])
    def receive_stock(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        return self._each_level(
            request,
            queryset,
            StockReceiveForm,
            "receive_stock",
            "Receive stock",
            stock_receive,
            verb=lambda form: "received",
            arguments=lambda form: {
                "quantity": form.cleaned_data["quantity"],
                "reference": form.cleaned_data["reference"],
                "note": form.ledger_note(),
            },
        )

    @admin.action(description="Adjust stock of the selected levels", permissions=["adjust"])
    def adjust_stock(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        return self._each_level(
            request,
            queryset,
            StockAdjustForm,
            "adjust_stock",
            "Adjust stock",
            stock_adjust,
            verb=lambda form: "adjusted",
            arguments=lambda form: {
                "on_hand_delta": form.cleaned_data["quantity"],
                "note": form.ledger_note(),
            },
        )

    @admin.action(
        description="Move units of the selected levels to unavailable", permissions=["hold"]
    )
    def hold_stock(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        return self._each_level(
            request,
            queryset,
            StockHoldForm,
            "hold_stock",
            "Move to unavailable",
            stock_hold,
            verb=lambda form: "held",
            arguments=lambda form: {
                "quantity": form.cleaned_data["quantity"],
                "reason": form.cleaned_data["reason"],
                "note": form.cleaned_data["note"],
            },
        )

    @admin.action(
        description="Take units of the selected levels out of unavailable", permissions=["hold"]
    )
    def unhold_stock(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        return self._each_level(
            request,
            queryset,
            StockUnholdForm,
            "unhold_stock",
            "Take out of unavailable",
            stock_unhold,
            verb=lambda form: "written off" if form.cleaned_data["write_off"] else "back for sale",
            arguments=lambda form: {
                "quantity": form.cleaned_data["quantity"],
                "write_off": form.cleaned_data["write_off"],
                "note": form.cleaned_data["note"],
            },
        )

    @admin.action(description="Set the safety stock of the selected levels", permissions=["safety"])
    def set_safety_stock(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        return self._each_level(
            request,
            queryset,
            SafetyStockForm,
            "set_safety_stock",
            "Set safety stock",
            stock_safety_set,
            verb=lambda form: "given its safety stock",
            arguments=lambda form: {
                "quantity": form.cleaned_data["quantity"],
                "note": form.cleaned_data["note"],
            },
        )

    def _each_level(
        self,
        request: HttpRequest,
        queryset: QuerySet[StockLevel],
        form_class: type[forms.Form],
        action: str,
        title: str,
        service: Callable[..., StockLevel],
        *,
        verb: Callable[[forms.Form], str],
        arguments: Callable[[forms.Form], dict],
    ) -> TemplateResponse | None:
        """What every bulk action on stock levels does: ask for its values on a page of its own
        until the form is valid, then call the service once per selected level with them."""
        form = form_class(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._action_page(request, queryset, form, action, title)
        for level in queryset:
            self._run(
                request,
                verb(form),
                service,
                variant=level.variant,
                warehouse=level.warehouse,
                **arguments(form),
            )
        return None

    def receive_view(self, request: HttpRequest) -> HttpResponse:
        """Receive a SKU into any warehouse, including one where it has no level yet."""
        if not self.has_receive_permission(request):
            raise PermissionRequired("inventory.receive_stock")
        form = StockReceiveNewForm(request.POST if request.method == "POST" else None)
        # Search SKUs as you type instead of a select holding the whole catalog.
        variant_field = form.fields["variant"]
        variant_field.widget = AutocompleteSelect(
            StockLevel._meta.get_field("variant"), self.admin_site, choices=variant_field.choices
        )
        if form.is_valid():
            data = form.cleaned_data
            self._run(
                request,
                "received",
                stock_receive,
                variant=data["variant"],
                warehouse=data["warehouse"],
                quantity=data["quantity"],
                reference=data["reference"],
                note=form.ledger_note(),
            )
            changelist = reverse("admin:inventory_stocklevel_changelist")
            return HttpResponseRedirect(f"{changelist}?q={data['variant'].sku}")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Receive stock",
            "intro": "Units arrive in a warehouse: the ledger records a receipt.",
            "form": form,
            "objects": [],
            "submit_label": "Receive",
        }
        return TemplateResponse(request, "admin/action_form.html", context)

    def _action_page(
        self, request: HttpRequest, queryset: QuerySet, form, action: str, title: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "intro": f"{title}: the same quantity for each selected level.",
            "objects": queryset,
            "form": form,
            "action": action,
            "submit_label": title,
        }
        return TemplateResponse(request, "admin/action_form.html", context)

    def _run(
        self, request: HttpRequest, verb: str, service: Callable[..., StockLevel], **kwargs
    ) -> None:
        """Call one stock service as the request's user; say per level what happened or why not.

        Each call is its own transaction, so one refused level does not undo the others.
        """
        label = stock_level_label(variant=kwargs["variant"], warehouse=kwargs["warehouse"])
        try:
            changed = service(actor=request.user, **kwargs)
        except InvalidStockOperation as error:
            self.message_user(request, f"{label} not {verb}: {error}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"{label} {verb}: {changed.on_hand} on hand, "
                + (f"{changed.unavailable} unavailable, " if changed.unavailable else "")
                + f"{changed.available} available.",
                messages.SUCCESS,
            )


@admin.register(StockMovement)
class StockMovementAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "sku",
        "warehouse",
        "reason",
        "on_hand_delta",
        "reserved_delta",
        "unavailable_delta",
        "incoming_delta",
        "safety_stock_delta",
        "reference",
        "actor",
        "note",
    )
    list_filter = (
        "reason",
        "level__warehouse",
        ("level__variant", admin.RelatedOnlyFieldListFilter),
        "created_at",
    )
    search_fields = ("level__variant__sku", "reference", "note")
    date_hierarchy = "created_at"
    list_select_related = ("level__variant", "level__warehouse", "actor")

    @admin.display(description="SKU", ordering="level__variant__sku")
    def sku(self, movement: StockMovement) -> str:
        return movement.level.variant.sku

    @admin.display(description="warehouse", ordering="level__warehouse__code")
    def warehouse(self, movement: StockMovement) -> str:
        return movement.level.warehouse.code


@admin.register(StockAllocation)
class StockAllocationAdmin(ReadOnlyAdmin):
    list_display = (
        "reference",
        "sku",
        "warehouse",
        "quantity",
        "shipped",
        "released",
        "returned",
        "state",
        "updated_at",
    )
    list_filter = ("state", "level__warehouse")
    search_fields = ("reference", "level__variant__sku")
    list_select_related = ("level__variant", "level__warehouse")

    @admin.display(description="SKU", ordering="level__variant__sku")
    def sku(self, allocation: StockAllocation) -> str:
        return allocation.level.variant.sku

    @admin.display(description="warehouse")
    def warehouse(self, allocation: StockAllocation) -> str:
        return allocation.level.warehouse.code


# Set on the request when `stock_policy_set` refused the save the form had allowed.
_POLICY_REFUSED = "_stock_policy_refused"


@admin.register(StockPolicy)
class StockPolicyAdmin(admin.ModelAdmin):
    """How each variant sells beyond its available units; saved through `stock_policy_set`."""

    form = StockPolicyForm
    list_display = ("sku", "product", "policy", "limit", "release_date", "backordered")
    list_filter = ("policy",)
    search_fields = ("variant__sku", "variant__product__name")
    list_select_related = ("variant__product",)
    autocomplete_fields = ("variant",)
    readonly_fields = ("backordered",)

    @admin.display(description="SKU", ordering="variant__sku")
    def sku(self, policy: StockPolicy) -> str:
        return policy.variant.sku

    @admin.display(description="product", ordering="variant__product__name")
    def product(self, policy: StockPolicy) -> str:
        return policy.variant.product.name

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple[str, ...]:
        # A policy belongs to its variant for good.
        return ("variant", "backordered") if obj else ("backordered",)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Backorders are counted on the policy: set it to deny instead.
        return False

    def save_model(self, request: HttpRequest, obj: StockPolicy, form, change: bool) -> None:
        try:
            saved = stock_policy_set(
                variant=form.cleaned_data.get("variant") or obj.variant,
                policy=form.cleaned_data["policy"],
                limit=form.cleaned_data["limit"],
                release_date=form.cleaned_data["release_date"],
                actor=request.user,
            )
        except InvalidStockOperation as error:
            # Checked again under the policy's lock: units may have been back-ordered since
            # the form was validated. Nothing was written: the variant keeps what it had,
            # and the page comes back with the reason instead of "changed successfully".
            setattr(request, _POLICY_REFUSED, True)
            self.message_user(request, f"Not saved: {error}", messages.ERROR)
            return
        obj.pk = saved.pk
        obj.refresh_from_db()

    def log_addition(self, request: HttpRequest, obj, message):
        if getattr(request, _POLICY_REFUSED, False):
            return None
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj, message):
        if getattr(request, _POLICY_REFUSED, False):
            return None
        return super().log_change(request, obj, message)

    def response_add(self, request: HttpRequest, obj, post_url_continue=None) -> HttpResponse:
        if getattr(request, _POLICY_REFUSED, False):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj) -> HttpResponse:
        if getattr(request, _POLICY_REFUSED, False):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_change(request, obj)


@admin.register(Backorder)
class BackorderAdmin(ReadOnlyAdmin):
    list_display = (
        "reference",
        "sku",
        "quantity",
        "allocated",
        "cancelled",
        "waiting",
        "created_at",
    )
    search_fields = ("reference", "variant__sku")
    list_select_related = ("variant",)
    date_hierarchy = "created_at"

    @admin.display(description="SKU", ordering="variant__sku")
    def sku(self, backorder: Backorder) -> str:
        return backorder.variant.sku


class PurchaseOrderLineInline(ReadOnlyInline):
    model = PurchaseOrderLine
    fields = ("sku", "product", "quantity", "received", "closed", "outstanding")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[PurchaseOrderLine]:
        return super().get_queryset(request).select_related("variant__product")

    @admin.display(description="SKU")
    def sku(self, line: PurchaseOrderLine) -> str:
        return line.variant.sku

    @admin.display(description="product")
    def product(self, line: PurchaseOrderLine) -> str:
        return line.variant.product.name


@admin.register(PurchaseOrder)
class PurchaseOrderAdmin(ReadOnlyAdmin):
    """Purchase orders: placed, received (in parts) and closed through their own pages, so
    every unit moves incoming and on hand with its ledger row."""

    list_display = ("number", "supplier", "warehouse", "expected_on", "status", "created_at")
    list_filter = ("status", "warehouse")
    search_fields = ("number", "supplier", "lines__variant__sku")
    list_select_related = ("warehouse",)
    date_hierarchy = "expected_on"
    inlines = (PurchaseOrderLineInline,)
    fields = ("number", "supplier", "warehouse", "expected_on", "status", "created_by")
    readonly_fields = fields
    change_list_template = "admin/inventory/purchaseorder/change_list.html"
    change_form_template = "admin/inventory/purchaseorder/change_form.html"

    def has_place_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("inventory.add_purchaseorder")

    def has_receive_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("inventory.receive_purchase_order")

    def get_urls(self) -> list:
        def view(function):
            return self.admin_site.admin_view(function)

        return [
            path("place/", view(self.place_view), name="inventory_purchaseorder_place"),
            path(
                "<int:pk>/receive/",
                view(self.receive_view),
                name="inventory_purchaseorder_receive",
            ),
            path("<int:pk>/close/", view(self.close_view), name="inventory_purchaseorder_close"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {**(extra_context or {}), "can_place": self.has_place_permission(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None):
        purchase_order = self.get_object(request, object_id)
        is_open = purchase_order is not None and purchase_order.status == PurchaseOrderStatus.OPEN
        extra_context = {
            **(extra_context or {}),
            "can_receive": is_open and self.has_receive_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def place_view(self, request: HttpRequest) -> HttpResponse:
        """Place a purchase order: its lines' units become incoming in the warehouse."""
        if not self.has_place_permission(request):
            raise PermissionRequired("inventory.add_purchaseorder")
        form = PurchaseOrderForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            data = form.cleaned_data
            try:
                purchase_order = purchase_order_create(
                    number=data["number"],
                    supplier=data["supplier"],
                    warehouse=data["warehouse"],
                    expected_on=data["expected_on"],
                    lines=data["lines"],
                    actor=request.user,
                )
            except InvalidStockOperation as error:
                form.add_error(None, str(error))
            else:
                self.message_user(
                    request, f"{purchase_order} placed: its units are incoming.", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:inventory_purchaseorder_change", args=[purchase_order.pk])
                )
        return self._page(
            request,
            form,
            title="Place a purchase order",
            intro="Units ordered from a supplier are incoming in the warehouse until received.",
            submit_label="Place",
        )

    def receive_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Receive a delivery of an open purchase order, all of it or in part."""
        if not self.has_receive_permission(request):
            raise PermissionRequired("inventory.receive_purchase_order")
        purchase_order = self._open_or_redirect(request, pk)
        if isinstance(purchase_order, HttpResponse):
            return purchase_order
        form = PurchaseOrderReceiveForm(
            request.POST if request.method == "POST" else None, purchase_order=purchase_order
        )
        if form.is_valid():
            try:
                purchase_order_receive(
                    purchase_order=purchase_order,
                    units=form.units(),
                    actor=request.user,
                    note=form.cleaned_data["note"],
                )
            except InvalidStockOperation as error:
                form.add_error(None, str(error))
            else:
                self.message_user(
                    request,
                    f"{purchase_order} received: {purchase_order.get_status_display().lower()}.",
                    messages.SUCCESS,
                )
                return self._back_to(purchase_order)
        return self._page(
            request,
            form,
            original=purchase_order,
            title=f"Receive {purchase_order.number}",
            intro="Units delivered move from incoming to on hand; the rest stays incoming.",
            submit_label="Receive",
        )

    def close_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Close an open purchase order short: what never came leaves incoming."""
        if not self.has_receive_permission(request):
            raise PermissionRequired("inventory.receive_purchase_order")
        purchase_order = self._open_or_redirect(request, pk)
        if isinstance(purchase_order, HttpResponse):
            return purchase_order
        form = PurchaseOrderCloseForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                purchase_order_close(
                    purchase_order=purchase_order,
                    actor=request.user,
                    note=form.cleaned_data["note"],
                )
            except InvalidStockOperation as error:
                # Another clerk closed or received it since this page read it open.
                self.message_user(request, str(error), messages.ERROR)
                return self._back_to(purchase_order)
            self.message_user(request, f"{purchase_order} closed short.", messages.SUCCESS)
            return self._back_to(purchase_order)
        return self._page(
            request,
            form,
            original=purchase_order,
            title=f"Close {purchase_order.number} short",
            intro="The units not received leave incoming; the purchase order is closed.",
            submit_label="Close",
        )

    def _open_or_redirect(self, request: HttpRequest, pk: int) -> PurchaseOrder | HttpResponse:
        purchase_order = PurchaseOrder.objects.filter(pk=pk).first()
        if purchase_order is None:
            raise Http404("No such purchase order.")
        if purchase_order.status != PurchaseOrderStatus.OPEN:
            self.message_user(
                request,
                f"{purchase_order} is {purchase_order.get_status_display().lower()}.",
                messages.ERROR,
            )
            return self._back_to(purchase_order)
        return purchase_order

    def _back_to(self, purchase_order: PurchaseOrder) -> HttpResponse:
        return HttpResponseRedirect(
            reverse("admin:inventory_purchaseorder_change", args=[purchase_order.pk])
        )

    def _page(self, request: HttpRequest, form, **context) -> TemplateResponse:
        return TemplateResponse(
            request,
            "admin/action_form.html",
            {**self.admin_site.each_context(request), "opts": self.opts, "form": form, **context},
        )
