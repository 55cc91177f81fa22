"""Celery tasks of the catalog app: idempotent, take ids, call services."""

from celery import shared_task

from catalog import services
from core.retries import STORAGE_RETRY


@shared_task(name="catalog.thumbnail_make", ignore_result=True, **STORAGE_RETRY)
def thumbnail_make(image_id: int) -> bool:
    """Make the thumbnail of one product image (requested on commit of its upload)."""
    return services.product_image_thumbnail_make(image_id=image_id)
