"""Image thumbnails, made by a task after the upload commits."""

import io
import warnings
from pathlib import PurePosixPath

from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image, ImageOps

from catalog.models import Product, ProductImage
from core.commit import on_commit_robust

# Longest side of a thumbnail in pixels: sharp on a retina product grid, a few kB as JPEG.
THUMBNAIL_SIZE = (320, 320)


@transaction.atomic
def product_image_add(
    *, product: Product, content: bytes, filename: str, alt_text: str = "", position: int = 0
) -> ProductImage:
    """Attach a picture to a product, as the admin's upload does (a script's or an import's).

    Saved through the model, so its post_save receiver requests the thumbnail (the
    `catalog.thumbnail_make` task, on commit) and the storefront cache forgets the product.
    Sends no custom signals.
    """
    image = ProductImage(product=product, alt_text=alt_text, position=position)
    image.image.save(filename, ContentFile(content), save=False)
    image.full_clean(exclude=["product"])
    image.save()
    return image


def product_image_thumbnail_make(*, image_id: int) -> bool:
    """Make the thumbnail of an uploaded image; return False when there is nothing to do.

    Idempotent: an image that has a thumbnail is skipped (replacing the image clears it). The
    image is read and scaled outside any transaction; the result is attached only if the image
    row still holds the same file, otherwise the new thumbnail file is removed again.
    Sends no custom signals, requests no tasks (the image file is unchanged, so the save's
    post_save receivers ask for no second thumbnail).
    """
    image = ProductImage.objects.filter(pk=image_id).first()
    if image is None or not image.image or image.thumbnail:
        return False
    source_name = image.image.name
    content, extension = _thumbnail_bytes(image)
    storage = image._meta.get_field("thumbnail").storage
    name = storage.save(
        f"products/thumbnails/{PurePosixPath(source_name).stem}_thumb.{extension}",
        ContentFile(content),
    )
    with transaction.atomic():
        current = ProductImage.objects.select_for_update().filter(pk=image_id).first()
        if current is None or current.image.name != source_name or current.thumbnail:
            on_commit_robust(storage.delete, name)
            return False
        current.thumbnail.name = name
        current.save(update_fields=["thumbnail", "updated_at"])
    return True


def _thumbnail_bytes(image: ProductImage) -> tuple[bytes, str]:
    """The thumbnail's bytes and file extension.

    Upright as the original shows: phones store a portrait photo as a landscape picture with
    an EXIF orientation, which browsers obey and a re-encoded copy would lose. A picture big
    enough to be a decompression bomb (uploaded before the size check, or not through the
    admin) fails the task instead of taking the worker's memory.
    """
    with (
        image.image.open("rb") as source,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(source) as opened:
            opened.draft("RGB", THUMBNAIL_SIZE)  # JPEG: decode at a fraction of the size
            picture = ImageOps.exif_transpose(opened)
        picture.thumbnail(THUMBNAIL_SIZE)
        keeps_alpha = picture.mode in {"RGBA", "LA"} or "transparency" in picture.info
        output = io.BytesIO()
        if keeps_alpha:
            picture.save(output, format="PNG", optimize=True)
            return output.getvalue(), "png"
        picture.convert("RGB").save(output, format="JPEG", quality=85, optimize=True)
        return output.getvalue(), "jpg"
