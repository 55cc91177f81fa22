"""Celery tasks of the storefront: idempotent, they call services."""

from celery import shared_task

from storefront.services import idempotency_keys_purge


@shared_task(name="storefront.idempotency_keys_purge")
def idempotency_keys_purge_task() -> int:
    """Remove idempotency keys older than 24 h (hourly, by beat); safe to run twice."""
    return idempotency_keys_purge()
