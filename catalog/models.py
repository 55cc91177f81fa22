from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from core.json_input import unstorable_text


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Category(TimeStamped):
    """A node of the category tree; `slug` is filled from the name when left blank."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140, unique=True, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(
                fields=["parent", "name"], name="catalog_category_unique_name_per_parent"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse a parent that is this category or one below it.

        The tree would become a loop: the category and its branch would hang under nothing
        and every walk down from them would never end. A database constraint cannot see the
        whole chain, so the admin's form checks it here; code that sets `parent` without
        full_clean() is not checked, which is why the walks down keep a seen set too.
        """
        super().clean()
        if self.pk is None:
            return
        seen: set[int] = set()
        ancestor_id = self.parent_id
        while ancestor_id is not None and ancestor_id not in seen:
            if ancestor_id == self.pk:
                raise ValidationError(
                    {
                        "parent": "A category cannot be placed under itself or one of its "
                        "own subcategories."
                    }
                )
            seen.add(ancestor_id)
            ancestor_id = (
                Category.objects.filter(pk=ancestor_id).values_list("parent_id", flat=True).first()
            )


class Product(TimeStamped):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True, blank=True)
    description = models.TextField(blank=True)
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="products"
    )
    is_active = models.BooleanField(default=True)
    # Name, description, category and SKUs in one text, kept current by catalog receivers;
    # PostgreSQL searches it through a GIN full-text index, SQLite with a contains-match.
    search_document = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        indexes = [
            # The storefront's listing order: a page is read off the index instead of sorting
            # every active product for each uncached page.
            models.Index(
                fields=["name", "id"], condition=Q(is_active=True), name="catalog_product_listing"
            ),
        ]

    def __str__(self) -> str:
        return self.name


def attributes_validate(value) -> None:
    """Refuse attributes the database cannot store (a NUL, an unpaired surrogate): unlike a
    text field's, a JSON field's form lets them through to PostgreSQL, which fails the save."""
    problem = unstorable_text(value)
    if problem is not None:
        raise ValidationError(f"Attributes may not hold {problem}.")


class Variant(TimeStamped):
    """One sellable SKU of a product, with its own price and low-stock threshold."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="variants")
    sku = models.CharField(max_length=64, unique=True, blank=True)
    name = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True, validators=[attributes_validate])
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default=settings.SHOP_CURRENCY, editable=False)
    low_stock_threshold = models.PositiveIntegerField(default=5)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["product_id", "sku"]
        constraints = [
            models.CheckConstraint(
                condition=Q(price__gt=Decimal("0")), name="catalog_variant_price_positive"
            ),
        ]

    def __str__(self) -> str:
        # The SKU identifies a variant; reading the product's name here would cost a query per
        # variant wherever variants are listed (admin inlines, filters, select boxes).
        return f"{self.sku} ({self.name})" if self.name else self.sku


# The largest picture a product image may be: a 40-megapixel camera's. Decoding one takes
# some 120 MB; Pillow itself refuses only beyond 179 million pixels, and a few hundred kB of
# PNG can hold that, enough to exhaust the memory of the worker that makes the thumbnail.
MAX_IMAGE_PIXELS = 40_000_000


def image_size_validate(image) -> None:
    """Refuse a picture of more than MAX_IMAGE_PIXELS (its header tells, nothing is decoded)."""
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise ValidationError(
            f"The image is {image.width} x {image.height} pixels; at most "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels are accepted."
        )


class ProductImage(TimeStamped):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images")
    image = models.ImageField(upload_to="products/%Y/%m/", validators=[image_size_validate])
    thumbnail = models.ImageField(upload_to="products/thumbnails/", blank=True, editable=False)
    alt_text = models.CharField(max_length=200, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["product_id", "position", "id"]

    def __str__(self) -> str:
        return f"image {self.position} of {self.product}"


class Collection(TimeStamped):
    """A hand-picked set of products (a season, a campaign) shown together."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140, unique=True, blank=True)
    products = models.ManyToManyField(Product, related_name="collections", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
