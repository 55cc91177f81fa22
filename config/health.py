"""Liveness and readiness probes for load balancers and orchestrators.

`/healthz` says only that the process answers. `/readyz` checks what a request needs: the
database, the cache and the broker, each bounded by a short timeout so a hung dependency makes the
probe fail instead of hang; the answer names the failing component. The outbox backlog is
reported (not judged) so an operator sees a relay that has fallen behind, and so are the read
replicas, if any: a replica down only moves reads to the primary, so it never fails the probe.
"""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.replicas import replica_report
from outbox.selectors import outbox_backlog

logger = logging.getLogger(__name__)

BROKER_PROBE_TIMEOUT_SECONDS = 1.0


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_cache() -> str:
    probe = f"readyz:{time.monotonic_ns()}"
    cache.set(probe, "1", timeout=5)
    if cache.get(probe) != "1":
        raise RuntimeError("cache did not return what was just written")
    cache.delete(probe)
    return "ok"


def _check_broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "eager (no broker configured)"
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0, timeout=BROKER_PROBE_TIMEOUT_SECONDS)
        client = getattr(conn.default_channel, "client", None)
        if client is not None and hasattr(client, "ping"):
            client.ping()
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_database,
    "cache": _check_cache,
    "broker": _check_broker,
}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    components: dict[str, str] = {}
    failing: list[str] = []
    for name, check in CHECKS.items():
        try:
            components[name] = check()
        except Exception as error:
            logger.warning(
                "readiness check failed", extra={"component": name, "error": repr(error)}
            )
            components[name] = f"unavailable: {type(error).__name__}"
            failing.append(name)
    body: dict = {"status": "ok" if not failing else "unavailable", "components": components}
    if failing:
        body["failing"] = failing
    if "database" not in failing:
        backlog = outbox_backlog()
        body["outbox"] = {
            "pending": backlog.pending,
            "oldest_pending_age_seconds": (
                round((timezone.now() - backlog.oldest_created_at).total_seconds(), 1)
                if backlog.oldest_created_at
                else None
            ),
            "in_progress": backlog.in_progress,
            "overdue": backlog.overdue,
        }
    if settings.DATABASE_REPLICAS:
        body["replicas"] = replica_report()
    return JsonResponse(body, status=503 if failing else 200)
