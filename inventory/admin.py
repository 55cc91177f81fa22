"""Staff admin for stock: levels (receive, adjust), the ledger, warehouses and allocations.

Units on hand and reserved are never edited in a form: receiving and adjusting go through
`inventory.services`, which write the ledger row, the audit entry and send `stock_changed`
(the storefront cache follows), exactly as the API and the CSV import do.
"""

from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from core.admin import PermissionRequired, ReadOnlyAdmin
from inventory.forms import StockAdjustForm, StockReceiveForm, StockReceiveNewForm
from inventory.models import (
    StockAllocation,
    StockLevel,
    StockMovement,
    Warehouse,
    stock_level_label,
)
from inventory.services import InvalidStockOperation, stock_adjust, stock_receive


@admin.register(Warehouse)
class WarehouseAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "priority", "is_active")
    list_editable = ("priority", "is_active")
    search_fields = ("code", "name")
    prepopulated_fields = {"code": ("name",)}

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Levels and the ledger point at a warehouse forever; deactivate it instead.
        return False


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
    list_display = ("sku", "product", "warehouse", "on_hand", "reserved", "available", "threshold")
    list_filter = (LowStockFilter, "warehouse")
    search_fields = ("variant__sku", "variant__product__name")
    actions = ("receive_stock", "adjust_stock")
    readonly_fields = ("variant", "warehouse", "on_hand", "reserved", "available", "updated_at")
    fields = readonly_fields
    change_list_template = "admin/inventory/stocklevel/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[StockLevel]:
        return (
            super()
            .get_queryset(request)
            .select_related("variant__product", "warehouse")
            .annotate(available_units=F("on_hand") - F("reserved"))
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
        form = StockReceiveForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._action_page(request, queryset, form, "receive_stock", "Receive stock")
        for level in queryset:
            self._run(
                request,
                "received",
                stock_receive,
                variant=level.variant,
                warehouse=level.warehouse,
                quantity=form.cleaned_data["quantity"],
                reference=form.cleaned_data["reference"],
                note=form.ledger_note(),
            )
        return None

    @admin.action(description="Adjust stock of the selected levels", permissions=["adjust"])
    def adjust_stock(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        form = StockAdjustForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._action_page(request, queryset, form, "adjust_stock", "Adjust stock")
        for level in queryset:
            self._run(
                request,
                "adjusted",
                stock_adjust,
                variant=level.variant,
                warehouse=level.warehouse,
                on_hand_delta=form.cleaned_data["quantity"],
                note=form.ledger_note(),
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
                f"{label} {verb}: {changed.on_hand} on hand, {changed.available} available.",
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
