"""Product pictures for the demo, drawn with Pillow (nothing is downloaded).

Each is a card in its category's colour with the product's initials, added through the
catalog's upload path, so thumbnails are made and the storefront lists both URLs.
"""

import io
import zlib

from PIL import Image, ImageDraw, ImageFont

from backoffice.demo.catalog import SKU_PREFIX
from catalog.models import Product
from catalog.services import product_image_add

SIDE = 640
# Background and ink per top-level category; anything else is grey.
PALETTE = {
    "Kitchen": ("#f2d7b6", "#7a4a1e"),
    "Clothing": ("#c9dbe8", "#24445c"),
    "Home": ("#d8e5cf", "#3d5a2a"),
    "Stationery": ("#eadcf0", "#5b3570"),
    "Outdoor": ("#f5e6a8", "#6b5a10"),
}
DEFAULT_COLOURS = ("#e4e4e4", "#333333")


def _top_category(product: Product) -> str:
    category = product.category
    while category is not None and category.parent is not None:
        category = category.parent
    return category.name if category else ""


def picture(*, name: str, category: str) -> bytes:
    """Draw a product card: the category's colours, a shape that differs by product, initials."""
    background, ink = PALETTE.get(category, DEFAULT_COLOURS)
    canvas = Image.new("RGB", (SIDE, SIDE), background)
    draw = ImageDraw.Draw(canvas)
    # A stable per-product variation (not `hash()`, which changes between runs).
    shape = zlib.crc32(name.encode()) % 3
    box = (SIDE // 5, SIDE // 5, SIDE * 4 // 5, SIDE * 4 // 5)
    if shape == 0:
        draw.ellipse(box, outline=ink, width=14)
    elif shape == 1:
        draw.rounded_rectangle(box, radius=SIDE // 10, outline=ink, width=14)
    else:
        draw.regular_polygon((SIDE // 2, SIDE // 2, SIDE * 3 // 10), 6, outline=ink, width=14)
    initials = "".join(word[0] for word in name.replace("-", " ").split()[:2]).upper()
    font = ImageFont.load_default(size=SIDE // 5)
    draw.text((SIDE // 2, SIDE // 2), initials, fill=ink, font=font, anchor="mm")
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def seed_images() -> str | None:
    """Give every demo product without a picture one; None when all have theirs."""
    products = (
        Product.objects.filter(images__isnull=True, variants__sku__startswith=SKU_PREFIX)
        .select_related("category__parent__parent")
        .distinct()
        .order_by("pk")
    )
    added = 0
    for product in products:
        product_image_add(
            product=product,
            content=picture(name=product.name, category=_top_category(product)),
            filename=f"{product.slug}.jpg",
            alt_text=product.name,
        )
        added += 1
    return f"images: {added} product pictures drawn, thumbnails made" if added else None
