"""Staff admin for the catalog: products with their variants and images, categories, collections.

Catalog rows are edited directly here (there is no workflow behind a product); the catalog's
receivers fill slugs and SKUs, refresh the search document and the storefront cache, and the
audit trail records every change with the acting user, prices included.
"""

from django.contrib import admin
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from audit.changes import changes_text
from audit.models import AuditEntry
from catalog.admin_hooks import product_page
from catalog.forms import StorableJSONField
from catalog.models import Category, Collection, Product, ProductImage, Variant
from core.admin import PanelPermissionsMixin, admin_datetime
from core.admin_hooks import ExtendedPageMixin
from outbox.subjects import TaskSubject, task_subject_register

# The most recent changes shown on a product page; the audit trail has the rest.
HISTORY_ROWS = 15


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = ("sku", "name", "price", "currency", "low_stock_threshold", "is_active")
    readonly_fields = ("currency",)
    show_change_link = True


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    extra = 0
    fields = ("preview", "image", "alt_text", "position")
    readonly_fields = ("preview",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProductImage]:
        # Each row is labelled "image N of <product>": one join instead of a query per image.
        return super().get_queryset(request).select_related("product")

    @admin.display(description="preview")
    def preview(self, image: ProductImage) -> str:
        return image_preview(image)


def image_preview(image: ProductImage) -> str:
    """The thumbnail when the task has made it, else the original scaled down by the browser."""
    picture = image.thumbnail or image.image
    if not picture:
        return "—"
    return format_html(
        '<img src="{}" alt="{}" style="max-height:80px;max-width:120px;border-radius:4px">',
        picture.url,
        image.alt_text,
    )


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "parent")
    list_select_related = ("parent",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("parent",)


@admin.register(Product)
class ProductAdmin(ExtendedPageMixin, PanelPermissionsMixin, admin.ModelAdmin):
    list_display = ("name", "first_image", "category", "variant_count", "is_active", "updated_at")
    list_filter = ("is_active", "category", "collections")
    search_fields = ("name", "slug", "description", "variants__sku")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("category",)
    fields = ("name", "slug", "category", "description", "is_active", "change_history")
    readonly_fields = ("change_history",)
    # The audit trail is refused to warehouse staff; so are its entries on a product page.
    panel_permissions = {"change_history": "audit.view_auditentry"}
    inlines = (VariantInline, ProductImageInline)
    # Apps above catalog add their panels (reviews: the rating and latest reviews).
    page_hooks = product_page

    def get_queryset(self, request: HttpRequest) -> QuerySet[Product]:
        return (
            super()
            .get_queryset(request)
            .select_related("category")
            .prefetch_related("images")
            .annotate(variant_total=Count("variants", distinct=True))
        )

    @admin.display(description="variants", ordering="variant_total")
    def variant_count(self, product: Product) -> int:
        return product.variant_total

    @admin.display(description="image")
    def first_image(self, product: Product) -> str:
        images = list(product.images.all())
        return image_preview(images[0]) if images else "—"

    @admin.display(description="recent changes (audit trail)")
    def change_history(self, product: Product) -> str:
        """Who changed this product or its variants (prices included), newest first."""
        if product.pk is None:
            return "—"
        variant_ids = [str(pk) for pk in product.variants.values_list("pk", flat=True)]
        entries = AuditEntry.objects.filter(
            Q(object_type="catalog.Product", object_id=str(product.pk))
            | Q(object_type="catalog.Variant", object_id__in=variant_ids)
        )[:HISTORY_ROWS]
        if not entries:
            return "No recorded change yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    admin_datetime(entry.created_at),
                    entry.actor_label,
                    entry.get_action_display(),
                    entry.object_repr,
                    changes_text(entry.changes),
                )
                for entry in entries
            ),
        )
        return format_html(
            '<table class="sw-history"><thead><tr><th>when</th><th>who</th><th>what</th>'
            "<th>object</th><th>changes</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}?q={}">All audit entries of this product</a></p>',
            rows,
            reverse("admin:audit_auditentry_changelist"),
            product.name,
        )


@admin.register(Variant)
class VariantAdmin(admin.ModelAdmin):
    list_display = (
        "sku",
        "product",
        "name",
        "price",
        "currency",
        "low_stock_threshold",
        "is_active",
    )
    list_select_related = ("product",)
    list_filter = ("is_active", "product__category")
    search_fields = ("sku", "name", "product__name")
    autocomplete_fields = ("product",)
    formfield_overrides = {models.JSONField: {"form_class": StorableJSONField}}
    readonly_fields = ("currency",)


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "product_count")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("products",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Collection]:
        return super().get_queryset(request).annotate(product_total=Count("products"))

    @admin.display(description="products", ordering="product_total")
    def product_count(self, collection: Collection) -> int:
        return collection.product_total


# The low-stock alerts name their variant; thumbnails their image, shown on its product's page.
task_subject_register(TaskSubject(key="variant_id", model=Variant))
task_subject_register(
    TaskSubject(
        key="image_id",
        model=ProductImage,
        name=lambda image: f"{image.position} of {image.product.name}",
        related=("product",),
        page=lambda image: image.product,
    )
)
