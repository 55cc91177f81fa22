"""Staff admin for payments: payments, refunds, invoices and credit notes, unmatched money.

Read-only, with document downloads, and what the order page shows of them with the refund
action: the order page is orders', so payments adds its part through `orders.admin_hooks`.
Support refund or resolve the payments and refunds that match nothing.
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from core.admin import ReadOnlyAdmin, ReadOnlyInline
from core.admin_actions import ServiceActionsMixin, service_page
from core.admin_hooks import PageAction, PageExtension, PagePanel, PageTool
from orders.admin_hooks import order_page
from orders.forms import OrderReasonForm, ResolutionForm
from orders.models import Order
from orders.services import RETURNABLE
from outbox.subjects import TaskSubject, task_subject_register
from payments.forms import ReturnForm
from payments.models import (
    CreditNote,
    Invoice,
    Payment,
    ProcessedEvent,
    Refund,
    UnmatchedPayment,
)
from payments.selectors import (
    credit_notes_for_order,
    payment_refundable_exists,
    refunded_by_order,
)
from payments.services import (
    RefundError,
    UnmatchedPaymentError,
    refund_issue,
    refund_return,
    unmatched_payment_refund,
    unmatched_payment_resolve,
)


class DocumentAdmin(ReadOnlyAdmin):
    """Show an issued document (invoice, credit note) with a download of its file.

    The download asks for the row's view permission, as the page does.
    """

    date_hierarchy = "issued_at"
    exclude = ("document",)
    readonly_fields = ("document_link",)

    def get_urls(self) -> list:
        opts = self.model._meta
        download = self.admin_site.admin_view(self.document_download)
        return [
            path(
                "<int:pk>/document/",
                download,
                name=f"{opts.app_label}_{opts.model_name}_document",
            ),
            *super().get_urls(),
        ]

    def document_download(self, request: HttpRequest, pk: int) -> FileResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        row = get_object_or_404(self.model, pk=pk)
        if not row.document:
            raise Http404("The document has not been rendered yet.")
        return FileResponse(row.document.open("rb"), as_attachment=True)

    @admin.display(description="document")
    def document_link(self, row) -> str:
        if not row.document:
            return "being rendered"
        return format_html('<a href="{}">Download {}</a>', _admin_url(row, "document"), row.number)


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("order", "provider", "provider_reference", "amount", "currency", "status")
    list_filter = ("status", "provider", "created_at")
    search_fields = ("order__number", "provider_reference", "order__customer__user__email")
    list_select_related = ("order",)
    date_hierarchy = "created_at"


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("order", "amount", "currency", "provider_reference", "reason", "created_at")
    list_filter = ("created_at",)
    search_fields = ("order__number", "provider_reference", "reason")
    list_select_related = ("order",)
    date_hierarchy = "created_at"


@admin.register(Invoice)
class InvoiceAdmin(DocumentAdmin):
    list_display = ("number", "order", "total", "currency", "issued_at", "document_link")
    search_fields = ("number", "order__number", "order__customer__user__email")
    list_select_related = ("order",)


@admin.register(CreditNote)
class CreditNoteAdmin(DocumentAdmin):
    list_display = ("number", "invoice", "amount", "currency", "issued_at", "document_link")
    search_fields = ("number", "invoice__number", "invoice__order__number")
    list_select_related = ("invoice",)


@admin.register(ProcessedEvent)
class ProcessedEventAdmin(ReadOnlyAdmin):
    list_display = ("provider", "event_id", "event_type", "received_at")
    list_filter = ("provider", "event_type")
    search_fields = ("event_id",)


@admin.register(UnmatchedPayment)
class UnmatchedPaymentAdmin(ServiceActionsMixin, ReadOnlyAdmin):
    """Money that matches nothing Stockwire knows, for support to refund or resolve."""

    list_display = (
        "received_at",
        "kind",
        "status",
        "order_number",
        "provider_reference",
        "amount",
        "currency",
    )
    list_filter = ("status", "kind", "provider", "received_at")
    search_fields = ("order_number", "provider_reference", "refund_reference", "event_id")
    date_hierarchy = "received_at"
    actions = ("refund_unmatched", "resolve_unmatched")
    service_argument = "unmatched"
    action_ordering = ("received_at", "id")
    action_errors = (UnmatchedPaymentError,)

    def has_settle_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.issue_refund")

    @admin.action(description="Refund the selected payments in full", permissions=["settle"])
    def refund_unmatched(self, request: HttpRequest, queryset: QuerySet[UnmatchedPayment]):
        return self.run_with_form(
            request,
            queryset,
            form_class=OrderReasonForm,
            action="refund_unmatched",
            title="Refund payments that match no order",
            submit="Refund",
            intro="Each payment is given back in full to whoever paid it.",
            verb="refunded",
            service=unmatched_payment_refund,
        )

    @admin.action(description="Resolve the selected rows (asks for a note)", permissions=["settle"])
    def resolve_unmatched(self, request: HttpRequest, queryset: QuerySet[UnmatchedPayment]):
        return self.run_with_form(
            request,
            queryset,
            form_class=ResolutionForm,
            action="resolve_unmatched",
            title="Resolve payments and refunds that match nothing",
            submit="Resolve",
            intro="For money accounted for some other way; the note says how.",
            verb="resolved",
            service=unmatched_payment_resolve,
        )


class MoneyInline(ReadOnlyInline):
    """Money that moved for the order, narrow enough to sit beside the other kind at the top
    of the order page (`sw-half`)."""

    classes = (*ReadOnlyInline.classes, "sw-half")

    @admin.display(description="amount")
    def money(self, row: Payment | Refund) -> str:
        return f"{row.amount} {row.currency}"

    @admin.display(description="reference")
    def reference(self, row: Payment | Refund) -> str:
        return row.provider_reference


class PaymentInline(MoneyInline):
    model = Payment
    fields = ("created_at", "money", "status", "reference")
    readonly_fields = fields


class RefundInline(MoneyInline):
    model = Refund
    fields = ("created_at", "money", "reason", "reference")
    readonly_fields = fields


@admin.display(description="invoice")
def invoice_link(order: Order) -> str:
    invoice = Invoice.objects.filter(order=order).first()
    if invoice is None:
        return "none (not paid)"
    return _document_cell(invoice)


@admin.display(description="credit notes")
def credit_note_links(order: Order) -> str:
    notes = credit_notes_for_order(order=order)
    if not notes:
        return "none"
    return format_html_join(
        mark_safe("<br>"),
        "{}",
        ((_document_cell(note),) for note in notes),
    )


REFUND_INTRO = (
    "What is left of the payment that paid the order is refunded and credited against its "
    "invoice. Once that payment is refunded, refunding the order again refunds its newest "
    "other payment (a duplicate charge, a late payment)."
)


def _refund_what_is_left(**kwargs) -> Refund:
    """`refund_issue` for staff: an order with nothing left to refund is a refusal to show,
    not the last refund again (the API's answer to a repeated request)."""
    return refund_issue(**kwargs, nothing_left_is_an_error=True)


@admin.action(description="Refund the selected orders in full")
def refund_orders(model_admin, request: HttpRequest, queryset: QuerySet[Order]):
    return model_admin.run_with_form(
        request,
        queryset,
        form_class=OrderReasonForm,
        action="refund_orders",
        title="Refund orders",
        submit="Refund",
        intro=REFUND_INTRO,
        verb="refunded",
        service=_refund_what_is_left,
        errors=(RefundError,),
    )


@admin.display(description="refunded")
def refunded_amount(order: Order) -> str:
    """What was refunded of the order so far: an order refunded in part keeps its status."""
    return f"{refunded_by_order(order_ids=[order.pk])[order.pk]} {order.currency}"


# Warehouse staff read orders but not payments: the inlines ask for the payments' and refunds'
# own view permissions, the documents' numbers and amounts for the invoices' and credit notes'.
order_page.extend(
    app_label="payments",
    extension=PageExtension(
        title="Documents",
        panels=(
            PagePanel(display=invoice_link, permission="payments.view_invoice"),
            PagePanel(display=credit_note_links, permission="payments.view_creditnote"),
            PagePanel(display=refunded_amount, permission="payments.view_refund"),
        ),
        inlines=(PaymentInline, RefundInline),
        actions=(PageAction(function=refund_orders, permission="payments.issue_refund"),),
        tools=(
            PageTool(
                slug="refund",
                label="Refund",
                view=service_page(
                    form_class=OrderReasonForm,
                    title="Refund {obj}",
                    submit="Refund",
                    intro=REFUND_INTRO,
                    verb="refunded",
                    service=_refund_what_is_left,
                    errors=(RefundError,),
                ),
                permission="payments.issue_refund",
                applies=lambda order: payment_refundable_exists(order=order),
            ),
            PageTool(
                slug="return",
                label="Return and refund",
                view=service_page(
                    form_class=ReturnForm,
                    title="Return and refund units of {obj}",
                    submit="Take back and refund",
                    intro="The units are counted as returned and, with a warehouse, put back "
                    "on hand there; their price (and the shipping charge, if ticked) is "
                    "refunded from the payment that paid the order and credited against its "
                    "invoice.",
                    verb="returned and refunded",
                    service=refund_return,
                    errors=(RefundError,),
                ),
                permission="payments.issue_refund",
                applies=lambda order: order.status in RETURNABLE,
            ),
        ),
    ),
)


def _admin_url(row: Invoice | CreditNote, view: str) -> str:
    """The URL of the row's admin `change` page or its `document` download."""
    opts = row._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[row.pk])


def _document_cell(document: Invoice | CreditNote) -> str:
    """The document's number linking to its admin page, and its download once rendered."""
    page = _admin_url(document, "change")
    amount = document.total if isinstance(document, Invoice) else document.amount
    label = f"{document.number} ({amount} {document.currency})"
    if not document.document:
        return format_html('<a href="{}">{}</a>, document being rendered', page, label)
    return format_html(
        '<a href="{}">{}</a> · <a href="{}">download</a>',
        page,
        label,
        _admin_url(document, "document"),
    )


# The credit notes' documents name their refund, by its amount and order.
task_subject_register(
    TaskSubject(
        key="refund_id",
        model=Refund,
        name=lambda refund: f"{refund.amount} {refund.currency} of {refund.order.number}",
        related=("order",),
    )
)
